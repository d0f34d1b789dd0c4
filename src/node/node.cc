#include "node/node.h"

#include <algorithm>
#include <chrono>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/wire_limits.h"
#include "fmt/format.h"
#include "net/address.h"
#include "net/reactor.h"
#include "net/rpc.h"
#include "node/convert.h"
#include "node/directory_client.h"
#include "node/directory_service.h"
#include "node/engine_driver.h"
#include "node/failpoints.h"
#include "node/http_server.h"
#include "node/metrics.h"
#include "node/node_context.h"
#include "node/peer_network.h"
#include "node/servers.h"
#include "node/tls_files.h"
#include "util/log.h"
#include "util/prometheus_text.h"

namespace replicator::node {
namespace {

// How long a host name given as the listen address may take to resolve at start.
constexpr std::chrono::seconds kListenResolveTimeout{10};

}  // namespace

// ---------------------------------------------------------------------------
// Node::Impl: one node, wired from its parts. Members are declared in
// dependency order: each part refers only to those above it, and the
// context to the fields above it.

class Node::Impl {
 public:
  Impl(net::Reactor& reactor, NodeOptions options, Identity identity,
       std::unique_ptr<storage::Storage> storage, core::DurableState recovered,
       uint64_t incarnation);
  ~Impl();

  asio::awaitable<absl::Status> Serve();
  void Shutdown();

  NodeOptions options_;
  Identity identity_;
  std::string address_;
  std::string metrics_address_;

 private:
  StatusReport Status() const;
  // /metrics and /healthz; reactor thread.
  HttpResponse ServeHttp(std::string_view path) const;

  bool shut_down_ = false;
  bool serving_ = false;  // joined (or started) the federation
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  NodeMetrics metrics_;
  BatchStats batches_;
  NodeContext context_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::unique_ptr<storage::Storage> storage_;
  Failpoints failpoints_;
  PeerNetwork network_;
  EngineDriver driver_;
  DirectoryService directory_;
  DirectoryClient registrar_;
  std::unique_ptr<net::RpcServer> server_;
  std::unique_ptr<HttpServer> metrics_server_;
};

Node::Impl::Impl(net::Reactor& reactor, NodeOptions options, Identity identity,
                 std::unique_ptr<storage::Storage> storage, core::DurableState recovered,
                 uint64_t incarnation)
    : options_(std::move(options)),
      identity_(std::move(identity)),
      context_{reactor, options_, identity_, address_, shut_down_, alive_, metrics_},
      storage_(std::move(storage)),
      failpoints_(options_.failpoint, identity_.peer_id),
      // The network's answers go to the driver, constructed just below and
      // before any call can be sent.
      network_(context_,
               [this](const std::vector<core::SendEffect>& calls,
                      std::vector<core::Response> responses) {
                 driver_.OnResponses(calls, std::move(responses));
               }),
      driver_(context_, storage_.get(), std::move(recovered), incarnation, network_, failpoints_),
      directory_(context_, driver_, network_),
      registrar_(context_, directory_) {}

Node::Impl::~Impl() {
  Shutdown();
  alive_.reset();
  // Storage drains queued writes; their completions find the token gone.
  storage_.reset();
}

asio::awaitable<absl::Status> Node::Impl::Serve() {
  ServedParts parts{&context_, &driver_, &directory_, [this] { return Status(); }, &batches_};
  // Each connection gets its own bootstrap, knowing who is calling.
  net::BootstrapFactory bootstrap =
      [parts](const net::PeerCertificate* peer) -> capnp::Capability::Client {
    return NewNodeServer(
        parts, peer != nullptr ? Caller::FromCertificate(*peer) : Caller::Unauthenticated());
  };
  // A name binds its first address only: the node serves, and advertises by default, one
  // address, and with port 0 several sockets would each get a port of their own.
  auto endpoint =
      co_await net::ResolveListenEndpoint(context_.io(), options_.listen, kListenResolveTimeout);
  if (!endpoint.ok()) {
    co_return absl::Status(
        endpoint.status().code(),
        absl::StrCat("cannot listen on ", options_.listen, ": ", endpoint.status().message()));
  }
  if (endpoint->address().is_unspecified() && options_.advertise.empty()) {
    co_return absl::InvalidArgumentError(absl::StrCat(
        "listen address ", options_.listen, " resolves to ", net::FormatEndpoint(*endpoint),
        ", which serves on every interface but says none to dial: give --advertise=HOST:PORT"));
  }
  auto server =
      net::RpcServer::Listen(context_.reactor, *endpoint, std::move(bootstrap), options_.tls);
  if (!server.ok()) {
    // "cannot listen on ADDRESS: reason", naming the name too if one was resolved.
    std::string bound = net::FormatEndpoint(*endpoint);
    if (bound == options_.listen) co_return server.status();
    co_return absl::Status(
        server.status().code(),
        absl::StrCat(options_.listen, " (resolved): ", server.status().message()));
  }
  server_ = std::move(*server);
  server_->set_limits(options_.server_limits);
  server_->set_handshake_failure_handler([](const std::string& peer, const std::string& reason) {
    util::Log(util::LogLevel::kWarn, "security", "refused a connection from {}: {}", peer, reason);
  });
  address_ = options_.advertise.empty() ? server_->address() : options_.advertise;
  if (!options_.metrics_listen.empty()) {
    // Up before the join, so /healthz can say the node is still joining.
    auto metrics = HttpServer::Listen(context_.io(), options_.metrics_listen,
                                      [this](std::string_view path) { return ServeHttp(path); });
    if (!metrics.ok()) co_return metrics.status();
    metrics_server_ = std::move(*metrics);
    metrics_address_ = metrics_server_->address();
    util::Log(util::LogLevel::kInfo, "metrics", "serving /metrics and /healthz on {}",
              metrics_address_);
  }
  absl::StatusOr<bool> known = directory_.Load();
  if (!known.ok()) co_return known.status();
  if (!*known && options_.bootstrap.empty()) {
    // Data of a federation but no map: this is no new node (its membership
    // file was lost or predates this release). Starting a second
    // federation here could name a second founding set for its cluster.
    if (!driver_.configurations().empty()) {
      co_return absl::FailedPreconditionError(
          absl::StrCat("data dir ", options_.data_dir,
                       " holds configurations of a federation but no "
                       "membership file: start this node with --bootstrap=HOST:PORT of a member"));
    }
    directory_.StartFederation();
  } else if (!*known) {
    absl::Status joined = co_await registrar_.JoinFederation();
    if (!joined.ok()) co_return joined;
  }
  // A restarted node serves from the map it had, whoever is up.
  if (absl::Status s = directory_.Run(); !s.ok()) co_return s;
  context_.Spawn(registrar_.StayRegistered(context_.alive));
  // Converge with the cluster at once: this node may have been down while
  // keys were committed, or be new.
  driver_.StartCatchUp();
  serving_ = true;
  co_return absl::OkStatus();
}

HttpResponse Node::Impl::ServeHttp(std::string_view path) const {
  if (path == "/metrics") {
    const util::Histogram* fsync = storage_->fsync_duration();
    std::optional<util::HistogramSnapshot> fsync_snapshot;
    if (fsync != nullptr) fsync_snapshot = fsync->Snapshot();
    return HttpResponse{
        200, util::PrometheusText::kContentType,
        RenderMetrics(Status(), metrics_, fsync_snapshot ? &*fsync_snapshot : nullptr)};
  }
  if (path == "/healthz") {
    if (shut_down_) return HttpResponse{503, "text/plain; charset=utf-8", "shutting down\n"};
    if (!serving_) {
      return HttpResponse{503, "text/plain; charset=utf-8", "joining the federation\n"};
    }
    if (std::optional<std::string> why = NotReady(Status())) {
      return HttpResponse{503, "text/plain; charset=utf-8", *why + "\n"};
    }
    return HttpResponse{200, "text/plain; charset=utf-8", "ok\n"};
  }
  return HttpResponse{404, "text/plain; charset=utf-8", "not found: try /metrics or /healthz\n"};
}

void Node::Impl::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  metrics_server_.reset();
  driver_.Shutdown();
  network_.DropQueued();
  server_.reset();
  network_.Disconnect();
  registrar_.Disconnect();
}

StatusReport Node::Impl::Status() const {
  StatusReport s;
  s.self = directory_.self().member;
  s.members = directory_.Members();
  for (const core::Member& m : s.members) {
    if (m.id == s.self.id) s.self = m;  // as shown: a founder is a voter
  }
  std::sort(s.members.begin(), s.members.end(),
            [](const core::Member& a, const core::Member& b) {
              return std::tie(a.cluster, a.id) < std::tie(b.cluster, b.id);
            });
  s.engine = driver_.stats();
  // The newest of each cluster, this node's own first.
  for (core::Configuration& c : driver_.configurations()) {
    if (c.cluster == s.self.cluster) continue;
    s.configurations.push_back(std::move(c));
  }
  const core::Configuration& own = driver_.configuration();
  if (own.epoch != 0) s.configurations.insert(s.configurations.begin(), own);
  s.committed_keys = storage_->CommittedCount();
  s.storage = storage_->stats();
  s.insecure = options_.tls == nullptr;
  s.batches = batches_;
  s.uptime_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - started_)
                    .count();
  return s;
}

// ---------------------------------------------------------------------------

Node::Node(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Node::~Node() = default;

const Identity& Node::identity() const { return impl_->identity_; }
const std::string& Node::address() const { return impl_->address_; }
const std::string& Node::metrics_address() const { return impl_->metrics_address_; }
void Node::Shutdown() { impl_->Shutdown(); }

asio::awaitable<absl::StatusOr<std::unique_ptr<Node>>> Node::Start(net::Reactor& reactor,
                                                                   NodeOptions options) {
  if (auto bad = core::ValidateClusterId(options.cluster)) {
    co_return absl::InvalidArgumentError(*bad);
  }
  if (options.data_dir.empty()) co_return absl::InvalidArgumentError("--data-dir is required");
  // Every connection of this process, served or dialed, reads messages of
  // at most what this node's limits need (core/wire_limits.h).
  net::SetMaxMessageBytes(core::MaxMessageBytes(options.limits));
  auto identity = LoadOrCreateIdentity(options.data_dir);
  if (!identity.ok()) co_return identity.status();
  util::SetLogPeer(identity->peer_id);
  if (options.tls != nullptr) {
    // The key the handshake proves must be this node's identity, or peers
    // would know it by another peer id than the one it registers.
    absl::Status own = CheckNodeCertificate(options.tls->certificate(), identity->peer_id,
                                            identity->public_key, "--cert");
    if (!own.ok()) co_return own;
  }
  std::unique_ptr<storage::Storage> storage;
  if (options.memory_storage) {
    storage = storage::OpenMemoryStorage();
  } else {
    storage::RocksDbOptions rocks;
    rocks.verify = options.storage_verify;
    rocks.verified = [](uint64_t keys, double seconds) {
      util::Log(util::LogLevel::kInfo, "storage",
                "verified every record: {} committed keys in {:.1f}s", keys, seconds);
    };
    auto opened = storage::OpenRocksDbStorage(options.data_dir + "/db", std::move(rocks));
    if (!opened.ok()) co_return opened.status();
    storage = std::move(*opened);
  }
  auto recovered = storage->Recover();
  if (!recovered.ok()) co_return recovered.status();
  auto incarnation = storage->NextIncarnation();
  if (!incarnation.ok()) co_return incarnation.status();
  if (options.memory_storage) {
    // Memory storage forgets its counter; proposal ids must still never
    // repeat across runs, since peers may hold reservations of the last run.
    *incarnation = static_cast<uint64_t>(
        std::chrono::system_clock::now().time_since_epoch().count());
  }
  auto impl = std::make_unique<Impl>(reactor, std::move(options), std::move(*identity),
                                     std::move(storage), std::move(*recovered), *incarnation);
  absl::Status served = co_await impl->Serve();
  if (!served.ok()) co_return served;
  co_return std::unique_ptr<Node>(new Node(std::move(impl)));
}

}  // namespace replicator::node
