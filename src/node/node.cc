#include "node/node.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <tuple>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/shard.h"
#include "core/wire_limits.h"
#include "fmt/format.h"
#include "net/address.h"
#include "net/reactor.h"
#include "net/rpc.h"
#include "node/convert.h"
#include "node/directory_client.h"
#include "node/directory_service.h"
#include "node/durable_file.h"
#include "node/failpoints.h"
#include "node/http_server.h"
#include "node/metrics.h"
#include "node/node_context.h"
#include "node/peer_network.h"
#include "node/servers.h"
#include "node/shards.h"
#include "node/tls_files.h"
#include "util/log.h"
#include "util/prometheus_text.h"

namespace replicator::node {
namespace {

// How long a host name given as the listen address may take to resolve at start.
constexpr std::chrono::seconds kListenResolveTimeout{10};

// The data dir's shard count, fixed at its first start (NodeOptions::shards).
constexpr const char* kShardsFile = "shards";

// Where shard `shard`'s RocksDB lives: `db` for shard 0, as before shards.
std::string ShardDbPath(const std::string& data_dir, uint32_t shard) {
  if (shard == 0) return data_dir + "/db";
  return absl::StrCat(data_dir, "/db-shard-", shard);
}

// Records `shards` in a data dir that has no count yet, or checks it against
// the recorded one: each shard's storage holds the keys of its range only,
// so the data dir serves only the count it was first started with.
absl::Status CheckShardCount(const std::string& data_dir, uint32_t shards) {
  const std::string path = absl::StrCat(data_dir, "/", kShardsFile);
  absl::StatusOr<std::string> saved = ReadWholeFile(path, "shard count");
  if (saved.ok()) {
    uint32_t recorded = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*saved), &recorded) ||
        core::ValidateShardCount(recorded)) {
      return absl::DataLossError(
          absl::StrCat(path, " holds no shard count (1 to ", core::kMaxShards, ")"));
    }
    if (recorded == shards) return absl::OkStatus();
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", data_dir, " holds ", recorded, " shard", recorded == 1 ? "" : "s",
                     " and this start asks for ", shards, ": start it with --shards=", recorded,
                     " (a data dir keeps the count it was first started with)"));
  }
  if (!absl::IsNotFound(saved.status())) return saved.status();
  // No count yet: a new data dir, or one from a build without shards,
  // whose storage (db/) is shard 0 of 1.
  std::error_code ec;
  if (shards != 1 && std::filesystem::exists(ShardDbPath(data_dir, 0), ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "data dir ", data_dir, " holds the storage of 1 shard (from a build ",
        "without --shards) and this start asks for ", shards, ": start it with --shards=1"));
  }
  return ReplaceFileDurably(data_dir, kShardsFile, absl::StrCat(shards, "\n"), "shard count");
}

}  // namespace

// ---------------------------------------------------------------------------
// Node::Impl: one node, wired from its parts. Members are declared in
// dependency order: each part refers only to those above it, and the
// context to the fields above it.

class Node::Impl {
 public:
  // `opened[i]` is shard i's state, in `storages[i]`.
  Impl(net::Reactor& reactor, NodeOptions options, Identity identity,
       std::vector<std::unique_ptr<storage::Storage>> storages, std::vector<OpenedShard> opened);
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

  std::atomic<bool> shut_down_{false};
  bool serving_ = false;  // joined (or started) the federation
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  NodeMetrics metrics_;  // the node's reactor's own (each shard has its own)
  BatchStats batches_;
  NodeContext context_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::vector<std::unique_ptr<storage::Storage>> storages_;  // by shard
  // Queried from const status and metrics: the shards' own threads answer.
  mutable Shards shards_;
  DirectoryService directory_;
  DirectoryClient registrar_;
  std::unique_ptr<net::RpcServer> server_;
  std::unique_ptr<HttpServer> metrics_server_;
};

Node::Impl::Impl(net::Reactor& reactor, NodeOptions options, Identity identity,
                 std::vector<std::unique_ptr<storage::Storage>> storages,
                 std::vector<OpenedShard> opened)
    : options_(std::move(options)),
      identity_(std::move(identity)),
      context_{reactor, options_, identity_, address_, shut_down_, alive_, metrics_},
      storages_(std::move(storages)),
      shards_(context_, std::move(opened)),
      directory_(context_, shards_),
      registrar_(context_, directory_) {}

Node::Impl::~Impl() {
  Shutdown();
  alive_.reset();
  // No shard runs a handler from here on (their threads wait, to destroy
  // them with shards_); storage then drains queued writes, whose
  // completions find the token gone.
  shards_.Stop();
  storages_.clear();
}

asio::awaitable<absl::Status> Node::Impl::Serve() {
  ServedParts parts{&context_, &shards_, &directory_, [this] { return Status(); }, &batches_};
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
    if (!shards_.configurations().empty()) {
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
  shards_.StartCatchUp();
  serving_ = true;
  co_return absl::OkStatus();
}

HttpResponse Node::Impl::ServeHttp(std::string_view path) const {
  if (path == "/metrics") {
    // Every shard's syncs, in one histogram (they share the bounds).
    std::optional<util::HistogramSnapshot> fsync_snapshot;
    for (const auto& storage : storages_) {
      const util::Histogram* fsync = storage->fsync_duration();
      if (fsync == nullptr) continue;
      util::HistogramSnapshot one = fsync->Snapshot();
      if (!fsync_snapshot) {
        fsync_snapshot = std::move(one);
        continue;
      }
      for (size_t b = 0; b < one.buckets.size() && b < fsync_snapshot->buckets.size(); ++b) {
        fsync_snapshot->buckets[b] += one.buckets[b];
      }
      fsync_snapshot->count += one.count;
      fsync_snapshot->sum += one.sum;
    }
    NodeMetrics merged;
    shards_.AddMetrics(merged);
    return HttpResponse{
        200, util::PrometheusText::kContentType,
        RenderMetrics(Status(), merged, fsync_snapshot ? &*fsync_snapshot : nullptr)};
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
  shards_.Shutdown();
  server_.reset();
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
  s.shards = shards_.count();
  s.engine = shards_.stats();
  // The newest of each cluster, this node's own first (shard 0's).
  for (core::Configuration& c : shards_.configurations()) {
    if (c.cluster == s.self.cluster) continue;
    s.configurations.push_back(std::move(c));
  }
  const core::Configuration own = shards_.configuration();
  if (own.epoch != 0) s.configurations.insert(s.configurations.begin(), own);
  for (const auto& storage : storages_) {
    s.committed_keys += storage->CommittedCount();
    const storage::StorageStats one = storage->stats();
    s.storage.batches_written += one.batches_written;
    s.storage.syncs += one.syncs;
    s.storage.mutations += one.mutations;
    s.storage.committed_keys += one.committed_keys;
    s.storage.writes += one.writes;
    s.storage.write_errors += one.write_errors;
    s.storage.writes_refused += one.writes_refused;
    s.storage.log_acceptor_records += one.log_acceptor_records;
    s.storage.acceptor_records_moved += one.acceptor_records_moved;
    s.storage.pages_ingested += one.pages_ingested;
  }
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
  if (auto bad = core::ValidateShardCount(options.shards)) {
    co_return absl::InvalidArgumentError(absl::StrCat("--shards: ", *bad));
  }
  if (!options.memory_storage) {
    if (absl::Status s = CheckShardCount(options.data_dir, options.shards); !s.ok()) co_return s;
  }
  std::vector<std::unique_ptr<storage::Storage>> storages;
  std::vector<OpenedShard> opened;
  for (uint32_t shard = 0; shard < options.shards; ++shard) {
    std::unique_ptr<storage::Storage> storage;
    if (options.memory_storage) {
      storage = storage::OpenMemoryStorage();
    } else {
      storage::RocksDbOptions rocks;
      rocks.verify = options.storage_verify;
      const std::string which =
          options.shards == 1 ? std::string() : absl::StrCat("shard ", shard, ": ");
      rocks.verified = [which](uint64_t keys, double seconds) {
        util::Log(util::LogLevel::kInfo, "storage",
                  "{}verified every record: {} committed keys in {:.1f}s", which, keys, seconds);
      };
      auto db = storage::OpenRocksDbStorage(ShardDbPath(options.data_dir, shard), std::move(rocks));
      if (!db.ok()) co_return db.status();
      storage = std::move(*db);
    }
    auto recovered = storage->Recover();
    if (!recovered.ok()) co_return recovered.status();
    auto incarnation = storage->NextIncarnation();
    if (!incarnation.ok()) co_return incarnation.status();
    if (options.memory_storage) {
      // Memory storage forgets its counter; proposal ids must still never
      // repeat across runs, since peers may hold reservations of the last run.
      *incarnation =
          static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
    }
    opened.push_back(OpenedShard{storage.get(), std::move(*recovered), *incarnation});
    storages.push_back(std::move(storage));
  }
  auto impl = std::make_unique<Impl>(reactor, std::move(options), std::move(*identity),
                                     std::move(storages), std::move(opened));
  absl::Status served = co_await impl->Serve();
  if (!served.ok()) co_return served;
  co_return std::unique_ptr<Node>(new Node(std::move(impl)));
}

}  // namespace replicator::node
