#include "replicator/client.h"

#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "net/bridge.h"
#include "net/reactor.h"
#include "net/rpc.h"
#include "schema/replicator.capnp.h"

namespace replicator {
namespace {

capnp::Data::Reader AsData(const std::string& s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}
std::string ToString(capnp::Data::Reader d) {
  return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
}
std::string ToString(capnp::Text::Reader t) { return std::string(t.cStr(), t.size()); }

PeerStatus FromWire(wire::PeerInfo::Reader p) {
  PeerStatus out{ToString(p.getId()), ToString(p.getCluster()), ToString(p.getAddress()), ""};
  switch (p.getState()) {
    case wire::PeerState::VOTER:
      out.state = "voter";
      break;
    case wire::PeerState::CATCHING_UP:
      out.state = "catching up";
      break;
    case wire::PeerState::DOWN:
      out.state = "down";
      break;
    default:
      out.state = "unknown";
  }
  return out;
}

Configuration ConfigurationFromWire(wire::Configuration::Reader c) {
  Configuration out{ToString(c.getCluster()), c.getEpoch(), {}, c.getGeneration(), c.getRemoved()};
  for (auto v : c.getVoters()) out.voters.push_back(ToString(v));
  return out;
}

// A call the node refused for this client's role fails with a message
// starting "permission denied: " (node/caller.h): PermissionDenied, which is
// final (a put is not retried).
absl::Status Classify(const absl::Status& s) {
  constexpr std::string_view kDenied = "permission denied: ";
  const std::string message(s.message());
  const size_t at = message.find(kDenied);
  if (s.ok() || at == std::string::npos) return s;
  return absl::PermissionDeniedError(message.substr(at + kDenied.size()));
}

// A membership change waits for a majority of a cluster to settle and agree.
std::chrono::milliseconds ChangeTimeout(const ClientOptions& options) {
  return std::max(options.call_timeout, std::chrono::milliseconds(15000));
}

}  // namespace

class Client::Impl {
 public:
  Impl(net::Reactor& reactor, std::string address, ClientOptions options,
       std::unique_ptr<net::RpcConnection> connection)
      : reactor_(reactor),
        address_(std::move(address)),
        options_(std::move(options)),
        connection_(std::move(connection)),
        node_(connection_->Bootstrap<wire::Node>()),
        key_value_(node_.keyValueRequest().send().getKeyValue()),
        request_ids_(std::random_device{}()) {}

  // Replaces a connection that failed.
  asio::awaitable<absl::Status> Reconnect() {
    auto connection = co_await net::RpcConnection::Connect(reactor_, address_,
                                                           options_.connect_timeout, options_.tls);
    if (!connection.ok()) co_return connection.status();
    connection_ = std::move(*connection);
    node_ = connection_->Bootstrap<wire::Node>();
    key_value_ = node_.keyValueRequest().send().getKeyValue();
    co_return absl::OkStatus();
  }

  // Reconnects first if the connection is known to have failed (the node
  // restarted, say), so one lost connection does not fail every later call.
  asio::awaitable<absl::Status> EnsureConnected() {
    if (!connection_->disconnected()) co_return absl::OkStatus();
    co_return co_await Reconnect();
  }

  asio::awaitable<absl::StatusOr<PutResult>> PutOnce(std::string key, std::string value,
                                                     uint64_t request_id);
  asio::awaitable<absl::StatusOr<GetResult>> GetOnce(const std::string& key,
                                                     Consistency consistency);

  net::Reactor& reactor_;
  std::string address_;
  ClientOptions options_;
  std::unique_ptr<net::RpcConnection> connection_;
  wire::Node::Client node_;
  wire::KeyValue::Client key_value_;
  std::mt19937_64 request_ids_;
};

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

const std::string& Client::address() const { return impl_->address_; }

asio::awaitable<absl::StatusOr<std::unique_ptr<Client>>> Client::Connect(net::Reactor& reactor,
                                                                         std::string address,
                                                                         ClientOptions options) {
  auto connection =
      co_await net::RpcConnection::Connect(reactor, address, options.connect_timeout, options.tls);
  if (!connection.ok()) co_return connection.status();
  co_return std::unique_ptr<Client>(new Client(
      std::make_unique<Impl>(reactor, std::move(address), std::move(options),
                             std::move(*connection))));
}

asio::awaitable<absl::StatusOr<PutResult>> Client::Put(std::string key, std::string value) {
  uint64_t request_id = impl_->request_ids_() | 1;  // never 0 (0 means none)
  co_return co_await Put(std::move(key), std::move(value), request_id);
}

asio::awaitable<absl::StatusOr<PutResult>> Client::Put(std::string key, std::string value,
                                                       uint64_t request_id) {
  if (request_id == 0) co_return absl::InvalidArgumentError("request id 0 means none");
  absl::StatusOr<PutResult> result = absl::UnavailableError("no attempt made");
  int attempts = std::max(1, impl_->options_.put_attempts);
  for (int attempt = 1; attempt <= attempts; ++attempt) {
    if (attempt > 1 && impl_->options_.on_put_retry) {
      impl_->options_.on_put_retry(result.status(), attempt);
    }
    absl::Status connected = co_await impl_->EnsureConnected();
    if (!connected.ok()) {
      result = connected;
      continue;
    }
    result = co_await impl_->PutOnce(key, value, request_id);
    // A failed call, or a node that could not learn its own decision
    // (PutOnce turns `outcomeUnknown` into Unavailable), leaves the outcome
    // unknown: the same request id asks again. Every answer is final.
    bool unknown = !result.ok() && (absl::IsDeadlineExceeded(result.status()) ||
                                    absl::IsUnavailable(result.status()));
    if (!unknown) break;
  }
  co_return result;
}

asio::awaitable<absl::StatusOr<PutResult>> Client::Impl::PutOnce(std::string key,
                                                                 std::string value,
                                                                 uint64_t request_id) {
  auto req = key_value_.putRequest();
  req.setKey(AsData(key));
  req.setValue(AsData(value));
  req.setRequestId(request_id);
  auto sent = req.send();
  auto reply = co_await net::AwaitWithin(kj::mv(sent), options_.call_timeout);
  if (!reply.ok()) co_return Classify(reply.status());
  auto r = reply->getResult();
  PutResult out;
  switch (r.which()) {
    case wire::PutResult::OK:
      out.kind = PutResult::Kind::kOk;
      break;
    case wire::PutResult::KEY_EXISTS:
      out.kind = PutResult::Kind::kKeyExists;
      out.existing = ToString(r.getKeyExists());
      break;
    case wire::PutResult::CONFLICT:
      out.kind = PutResult::Kind::kConflict;
      out.message = ToString(r.getConflict());
      break;
    case wire::PutResult::UNAVAILABLE:
      out.kind = PutResult::Kind::kUnavailable;
      out.message = ToString(r.getUnavailable());
      break;
    case wire::PutResult::INVALID_ARGUMENT:
      out.kind = PutResult::Kind::kInvalidArgument;
      out.message = ToString(r.getInvalidArgument());
      break;
    case wire::PutResult::OUTCOME_UNKNOWN:
      co_return absl::UnavailableError(
          absl::StrCat("outcome unknown: ", ToString(r.getOutcomeUnknown())));
    default:
      co_return absl::InternalError("node answered put with an unknown result kind");
  }
  co_return out;
}

asio::awaitable<absl::StatusOr<GetResult>> Client::Get(std::string key, Consistency consistency) {
  // A get changes nothing, so a call lost with its connection is asked once
  // more on a new one.
  absl::StatusOr<GetResult> result = absl::UnavailableError("no attempt made");
  for (int attempt = 1; attempt <= 2; ++attempt) {
    absl::Status connected = co_await impl_->EnsureConnected();
    if (!connected.ok()) co_return connected;
    result = co_await impl_->GetOnce(key, consistency);
    if (result.ok() || !impl_->connection_->disconnected()) break;
  }
  co_return result;
}

asio::awaitable<absl::StatusOr<GetResult>> Client::Impl::GetOnce(const std::string& key,
                                                                 Consistency consistency) {
  auto req = key_value_.getRequest();
  req.setKey(AsData(key));
  req.setConsistency(consistency == Consistency::kLinearizable ? wire::Consistency::LINEARIZABLE
                                                               : wire::Consistency::LOCAL);
  auto sent = req.send();
  auto reply = co_await net::AwaitWithin(kj::mv(sent), options_.call_timeout);
  if (!reply.ok()) co_return Classify(reply.status());
  auto r = reply->getResult();
  GetResult out;
  switch (r.which()) {
    case wire::GetResult::FOUND:
      out.kind = GetResult::Kind::kFound;
      out.value = ToString(r.getFound());
      break;
    case wire::GetResult::NOT_FOUND:
      out.kind = GetResult::Kind::kNotFound;
      break;
    case wire::GetResult::UNAVAILABLE:
      out.kind = GetResult::Kind::kUnavailable;
      out.message = ToString(r.getUnavailable());
      break;
    case wire::GetResult::INVALID_ARGUMENT:
      out.kind = GetResult::Kind::kInvalidArgument;
      out.message = ToString(r.getInvalidArgument());
      break;
    default:
      co_return absl::InternalError("node answered get with an unknown result kind");
  }
  co_return out;
}

asio::awaitable<absl::StatusOr<NodeStatus>> Client::Status() {
  absl::Status connected = co_await impl_->EnsureConnected();
  if (!connected.ok()) co_return connected;
  auto sent = impl_->key_value_.statusRequest().send();
  auto reply = co_await net::AwaitWithin(kj::mv(sent), impl_->options_.call_timeout);
  if (!reply.ok()) co_return Classify(reply.status());
  auto s = reply->getStatus();
  NodeStatus out;
  out.self = FromWire(s.getSelf());
  for (auto m : s.getMembers()) out.members.push_back(FromWire(m));
  out.committed_keys = s.getCommittedKeys();
  out.reservations = s.getReservations();
  out.puts_ok = s.getPutsOk();
  out.puts_key_exists = s.getPutsKeyExists();
  out.puts_conflict = s.getPutsConflict();
  out.puts_unavailable = s.getPutsUnavailable();
  out.puts_invalid = s.getPutsInvalid();
  out.puts_outcome_unknown = s.getPutsOutcomeUnknown();
  out.gets = s.getGets();
  out.uptime_ms = s.getUptimeMs();
  out.safety_violations = s.getSafetyViolations();
  out.storage_writes = s.getStorageWrites();
  out.storage_batches = s.getStorageBatches();
  out.storage_syncs = s.getStorageSyncs();
  out.put_retries = s.getPutRetries();
  out.puts_joined = s.getPutsJoined();
  out.catchup_rounds = s.getCatchupRounds();
  out.catchup_keys_pulled = s.getCatchupKeysPulled();
  out.storage_mutations = s.getStorageMutations();
  out.storage_write_errors = s.getStorageWriteErrors();
  out.storage_writes_refused = s.getStorageWritesRefused();
  out.config_epoch = s.getConfigEpoch();
  out.config_changes = s.getConfigChanges();
  out.stale_epoch_refusals = s.getStaleEpochRefusals();
  out.federation_generation = s.getFederationGeneration();
  out.federation_settled = s.getFederationSettled();
  out.generation_refusals = s.getGenerationRefusals();
  out.insecure = s.getInsecure();
  for (auto c : s.getConfigurations()) out.configurations.push_back(ConfigurationFromWire(c));
  co_return out;
}

namespace {

asio::awaitable<absl::StatusOr<MemberChangeResult>> ChangeMember(wire::KeyValue::Client& key_value,
                                                                 std::chrono::milliseconds timeout,
                                                                 wire::MemberChange::Kind kind,
                                                                 const std::string& peer,
                                                                 bool force) {
  auto req = key_value.changeMemberRequest();
  auto change = req.initChange();
  change.setKind(kind);
  if (kind == wire::MemberChange::Kind::REMOVE_CLUSTER) {
    change.setCluster(peer);  // the cluster's id
  } else {
    change.setPeer(peer);
    change.setForce(force);
  }
  auto sent = req.send();
  auto reply = co_await net::AwaitWithin(kj::mv(sent), timeout);
  if (!reply.ok()) co_return Classify(reply.status());
  auto r = reply->getResult();
  MemberChangeResult out;
  switch (r.which()) {
    case wire::MemberChangeResult::OK:
      out.kind = MemberChangeResult::Kind::kOk;
      break;
    case wire::MemberChangeResult::INVALID_ARGUMENT:
      out.kind = MemberChangeResult::Kind::kInvalidArgument;
      out.message = ToString(r.getInvalidArgument());
      break;
    case wire::MemberChangeResult::BUSY:
      out.kind = MemberChangeResult::Kind::kBusy;
      out.message = ToString(r.getBusy());
      break;
    case wire::MemberChangeResult::UNAVAILABLE:
      out.kind = MemberChangeResult::Kind::kUnavailable;
      out.message = ToString(r.getUnavailable());
      break;
    default:
      co_return absl::UnimplementedError("unknown membership change result (a newer node?)");
  }
  out.config = ConfigurationFromWire(r.getConfig());
  co_return out;
}

}  // namespace

asio::awaitable<absl::StatusOr<MemberChangeResult>> Client::PromoteMember(std::string peer) {
  absl::Status connected = co_await impl_->EnsureConnected();
  if (!connected.ok()) co_return connected;
  const std::chrono::milliseconds timeout = ChangeTimeout(impl_->options_);
  co_return co_await ChangeMember(impl_->key_value_, timeout, wire::MemberChange::Kind::PROMOTE,
                                  peer, false);
}

asio::awaitable<absl::StatusOr<MemberChangeResult>> Client::RemoveMember(std::string peer,
                                                                         bool force) {
  absl::Status connected = co_await impl_->EnsureConnected();
  if (!connected.ok()) co_return connected;
  const std::chrono::milliseconds timeout = ChangeTimeout(impl_->options_);
  co_return co_await ChangeMember(impl_->key_value_, timeout, wire::MemberChange::Kind::REMOVE,
                                  peer, force);
}

asio::awaitable<absl::StatusOr<MemberChangeResult>> Client::RemoveCluster(std::string cluster) {
  absl::Status connected = co_await impl_->EnsureConnected();
  if (!connected.ok()) co_return connected;
  const std::chrono::milliseconds timeout = ChangeTimeout(impl_->options_);
  co_return co_await ChangeMember(impl_->key_value_, timeout,
                                  wire::MemberChange::Kind::REMOVE_CLUSTER, cluster, false);
}

asio::awaitable<absl::StatusOr<std::string>> Client::Echo(std::string payload) {
  absl::Status connected = co_await impl_->EnsureConnected();
  if (!connected.ok()) co_return connected;
  auto req = impl_->node_.echoRequest();
  req.setPayload(AsData(payload));
  auto sent = req.send();
  auto reply = co_await net::AwaitWithin(kj::mv(sent), impl_->options_.call_timeout);
  if (!reply.ok()) co_return Classify(reply.status());
  co_return ToString(reply->getPayload());
}

}  // namespace replicator
