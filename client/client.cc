#include "replicator/client.h"

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <iterator>
#include <optional>
#include <random>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "core/wire_limits.h"
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

// Coalesced messages stay small enough for any node to read (every node
// reads at least kMaxBatchCalls framed calls, core/wire_limits.h) and their
// answers small enough for this process: a put answered keyExists or a get
// answered found carries a value, so a message asks at most as many calls as
// one message may carry full-size values.
constexpr size_t kMaxCoalescedCalls = core::kMaxValuesPerMessage;
constexpr size_t kCoalescedMessageBytes = core::kMaxBatchCalls * core::kCallOverheadBytes;
// Framing of one item of a putMany or getMany, beyond its key and value.
constexpr size_t kItemOverheadBytes = 64;

// One call queued in a coalescer: its caller waits here for its own result.
template <typename T>
struct Pending {
  explicit Pending(asio::any_io_executor ex) : timer(std::move(ex)) {
    timer.expires_at(asio::steady_timer::time_point::max());
  }
  // Resumption is posted by the timer, never run inline.
  void Complete(absl::StatusOr<T> r) {
    result = std::move(r);
    timer.cancel();
  }
  asio::steady_timer timer;
  std::optional<absl::StatusOr<T>> result;
};

// Cancellation of the waiting coroutine throws, as for net::AwaitWithin.
template <typename T>
asio::awaitable<absl::StatusOr<T>> Wait(std::shared_ptr<Pending<T>> pending) {
  while (!pending->result) {
    asio::error_code ec;
    co_await pending->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (!pending->result) co_await net::ThrowIfCancelled();
  }
  co_return std::move(*pending->result);
}

struct QueuedPut {
  using Result = PutResult;
  std::string key;
  std::string value;
  uint64_t request_id = 0;
  std::shared_ptr<Pending<PutResult>> done;
};
struct QueuedGet {
  using Result = GetResult;
  std::string key;
  std::shared_ptr<Pending<GetResult>> done;
};

// [begin, end) ranges of `items` that each fit one coalesced message.
template <typename Item, typename Bytes>
std::vector<std::pair<size_t, size_t>> Chunks(const std::vector<Item>& items, Bytes bytes_of) {
  std::vector<std::pair<size_t, size_t>> out;
  size_t begin = 0;
  while (begin < items.size()) {
    size_t end = begin;
    size_t bytes = 0;
    while (end < items.size() && end - begin < kMaxCoalescedCalls) {
      const size_t b = bytes_of(items[end]) + kItemOverheadBytes;
      if (end > begin && bytes + b > kCoalescedMessageBytes) break;
      bytes += b;
      ++end;
    }
    out.emplace_back(begin, end);
    begin = end;
  }
  return out;
}

// A node's answer to one put (or one item of a putMany). `outcomeUnknown`
// becomes Unavailable, so that Client::Put asks again with the same id.
absl::StatusOr<PutResult> PutResultFromWire(wire::PutResult::Reader r) {
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
      return absl::UnavailableError(
          absl::StrCat("outcome unknown: ", ToString(r.getOutcomeUnknown())));
    default:
      return absl::InternalError("node answered put with an unknown result kind");
  }
  return out;
}

absl::StatusOr<GetResult> GetResultFromWire(wire::GetResult::Reader r) {
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
      return absl::InternalError("node answered get with an unknown result kind");
  }
  return out;
}

// One plain KeyValue.put / get on `kv`.
asio::awaitable<absl::StatusOr<PutResult>> PlainPut(wire::KeyValue::Client kv, std::string key,
                                                    std::string value, uint64_t request_id,
                                                    std::chrono::milliseconds timeout) {
  auto req = kv.putRequest();
  req.setKey(AsData(key));
  req.setValue(AsData(value));
  req.setRequestId(request_id);
  auto sent = req.send();
  auto reply = co_await net::AwaitWithin(kj::mv(sent), timeout);
  if (!reply.ok()) co_return Classify(reply.status());
  co_return PutResultFromWire(reply->getResult());
}
asio::awaitable<absl::StatusOr<GetResult>> PlainGet(wire::KeyValue::Client kv, std::string key,
                                                    Consistency consistency,
                                                    std::chrono::milliseconds timeout) {
  auto req = kv.getRequest();
  req.setKey(AsData(key));
  req.setConsistency(consistency == Consistency::kLinearizable ? wire::Consistency::LINEARIZABLE
                                                               : wire::Consistency::LOCAL);
  auto sent = req.send();
  auto reply = co_await net::AwaitWithin(kj::mv(sent), timeout);
  if (!reply.ok()) co_return Classify(reply.status());
  co_return GetResultFromWire(reply->getResult());
}

// Completes `done` with a plain call's result.
template <typename T>
asio::awaitable<void> CompleteWith(asio::awaitable<absl::StatusOr<T>> call,
                                   std::shared_ptr<Pending<T>> done) {
  absl::StatusOr<T> result = co_await std::move(call);
  done->Complete(std::move(result));
}

// True if a call failed because the node does not serve its method: a node
// of a release before putMany and getMany, say (Cap'n Proto's UNIMPLEMENTED,
// which reaches us as its description).
bool NotImplemented(const absl::Status& s) {
  return absl::StrContains(s.message(), "Method not implemented");
}

// Answers every caller of one coalesced message: each its own result, or
// all the call's failure. An item the node answered `answerTooLarge` (the
// answer's values were full) is asked again alone, through `alone`; so is
// every item if the node does not serve the batched method at all, which
// sets `no_batches` so that this client sends no more of them. Touches
// nothing but its arguments, so it may outlive the client that sent it.
template <typename Results, typename Item, typename Convert, typename TooLarge, typename Alone>
asio::awaitable<void> AnswerMany(kj::Promise<capnp::Response<Results>> sent,
                                 std::vector<Item> items, std::chrono::milliseconds timeout,
                                 Convert from_wire, TooLarge too_large, Alone alone,
                                 std::shared_ptr<bool> no_batches) {
  auto reply = co_await net::AwaitWithin(kj::mv(sent), timeout);
  if (!reply.ok() && NotImplemented(reply.status())) {
    // Nothing of the message was applied: the node refused the method.
    *no_batches = true;
    const auto executor = co_await asio::this_coro::executor;
    for (auto& item : items) {
      std::shared_ptr<Pending<typename Item::Result>> done = item.done;
      asio::co_spawn(executor, CompleteWith(alone(std::move(item)), std::move(done)),
                     asio::detached);
    }
    co_return;
  }
  if (!reply.ok()) {
    const absl::Status failed = Classify(reply.status());
    for (auto& item : items) item.done->Complete(failed);
    co_return;
  }
  if (reply->hasRefused() && reply->getRefused().size() > 0) {
    const absl::Status refused = absl::InvalidArgumentError(ToString(reply->getRefused()));
    for (auto& item : items) item.done->Complete(refused);
    co_return;
  }
  auto results = reply->getResults();
  if (results.size() != items.size()) {
    const absl::Status wrong = absl::InternalError(
        absl::StrCat("node answered ", results.size(), " results to ", items.size(), " calls"));
    for (auto& item : items) item.done->Complete(wrong);
    co_return;
  }
  std::vector<size_t> again;
  for (size_t i = 0; i < items.size(); ++i) {
    if (too_large(results[i])) {
      again.push_back(i);
    } else {
      items[i].done->Complete(from_wire(results[i]));
    }
  }
  for (size_t i : again) {
    std::shared_ptr<Pending<typename Item::Result>> done = items[i].done;
    auto call = alone(std::move(items[i]));
    absl::StatusOr<typename Item::Result> result = co_await std::move(call);
    done->Complete(std::move(result));
  }
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

  // One attempt: queued for the turn's coalesced message, or (coalescing
  // off) sent alone.
  asio::awaitable<absl::StatusOr<PutResult>> PutOnce(std::string key, std::string value,
                                                     uint64_t request_id);
  asio::awaitable<absl::StatusOr<GetResult>> GetOnce(std::string key, Consistency consistency);
  // One plain KeyValue.put / get.
  asio::awaitable<absl::StatusOr<PutResult>> SendPut(std::string key, std::string value,
                                                     uint64_t request_id);
  asio::awaitable<absl::StatusOr<GetResult>> SendGet(std::string key, Consistency consistency);

  // The coalescer: the calls queued in one turn go out together at its end.
  void PostFlush();
  void Flush();
  void SendPuts(std::vector<QueuedPut> puts);
  void SendGets(std::vector<QueuedGet> gets, Consistency consistency);

  net::Reactor& reactor_;
  std::string address_;
  ClientOptions options_;
  std::unique_ptr<net::RpcConnection> connection_;
  wire::Node::Client node_;
  wire::KeyValue::Client key_value_;
  std::mt19937_64 request_ids_;
  // Set once the node answered a putMany or getMany "not implemented" (an
  // older release): from then on every call goes alone. Shared with the
  // coroutines answering coalesced messages, which may outlive this.
  std::shared_ptr<bool> node_lacks_batches_ = std::make_shared<bool>(false);
  std::vector<QueuedPut> queued_puts_;
  std::vector<QueuedGet> queued_gets_[2];  // by Consistency: local, linearizable
  bool flush_posted_ = false;
  // Expires with the client: a flush posted before then does nothing.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
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
  if (!options_.coalesce) co_return co_await SendPut(std::move(key), std::move(value), request_id);
  auto done = std::make_shared<Pending<PutResult>>(reactor_.io().get_executor());
  queued_puts_.push_back(QueuedPut{std::move(key), std::move(value), request_id, done});
  PostFlush();
  co_return co_await Wait(std::move(done));
}

asio::awaitable<absl::StatusOr<PutResult>> Client::Impl::SendPut(std::string key, std::string value,
                                                                 uint64_t request_id) {
  co_return co_await PlainPut(key_value_, std::move(key), std::move(value), request_id,
                              options_.call_timeout);
}

asio::awaitable<absl::StatusOr<GetResult>> Client::Impl::GetOnce(std::string key,
                                                                 Consistency consistency) {
  if (!options_.coalesce) co_return co_await SendGet(std::move(key), consistency);
  auto done = std::make_shared<Pending<GetResult>>(reactor_.io().get_executor());
  queued_gets_[consistency == Consistency::kLinearizable ? 1 : 0].push_back(
      QueuedGet{std::move(key), done});
  PostFlush();
  co_return co_await Wait(std::move(done));
}

void Client::Impl::PostFlush() {
  if (flush_posted_) return;
  flush_posted_ = true;
  // Posted: every call made before the loop comes to this handler (the
  // rest of this turn) joins the message.
  asio::post(reactor_.io(), [this, alive = std::weak_ptr<bool>(alive_)] {
    if (!alive.expired()) Flush();
  });
}

void Client::Impl::Flush() {
  flush_posted_ = false;
  SendPuts(std::exchange(queued_puts_, {}));
  SendGets(std::exchange(queued_gets_[0], {}), Consistency::kLocal);
  SendGets(std::exchange(queued_gets_[1], {}), Consistency::kLinearizable);
}

// A call alone in its turn goes as a plain put: the message it would be
// without coalescing, understood by every node.
void Client::Impl::SendPuts(std::vector<QueuedPut> puts) {
  auto bytes = [](const QueuedPut& p) { return p.key.size() + p.value.size(); };
  for (auto [begin, end] : Chunks(puts, bytes)) {
    if (end - begin == 1 || *node_lacks_batches_) {
      for (size_t i = begin; i < end; ++i) {
        QueuedPut& p = puts[i];
        asio::co_spawn(reactor_.io(),
                       CompleteWith(SendPut(std::move(p.key), std::move(p.value), p.request_id),
                                    std::move(p.done)),
                       asio::detached);
      }
      continue;
    }
    auto req = key_value_.putManyRequest();
    auto items = req.initItems(end - begin);
    for (size_t i = begin; i < end; ++i) {
      auto item = items[i - begin];
      item.setKey(AsData(puts[i].key));
      item.setValue(AsData(puts[i].value));
      item.setRequestId(puts[i].request_id);
    }
    kj::Promise<capnp::Response<wire::KeyValue::PutManyResults>> sent = req.send();
    std::vector<QueuedPut> chunk(std::make_move_iterator(puts.begin() + begin),
                                 std::make_move_iterator(puts.begin() + end));
    // Again alone with the same request id: the put is already done, so
    // the node answers as it did, with the value this time.
    auto alone = [kv = key_value_, timeout = options_.call_timeout](QueuedPut p) mutable {
      return PlainPut(kv, std::move(p.key), std::move(p.value), p.request_id, timeout);
    };
    asio::co_spawn(reactor_.io(),
                   AnswerMany(
                       kj::mv(sent), std::move(chunk), options_.call_timeout,
                       [](wire::PutResult::Reader r) { return PutResultFromWire(r); },
                       [](wire::PutResult::Reader r) { return r.isAnswerTooLarge(); },
                       std::move(alone), node_lacks_batches_),
                   asio::detached);
  }
}

void Client::Impl::SendGets(std::vector<QueuedGet> gets, Consistency consistency) {
  auto bytes = [](const QueuedGet& g) { return g.key.size(); };
  for (auto [begin, end] : Chunks(gets, bytes)) {
    if (end - begin == 1 || *node_lacks_batches_) {
      for (size_t i = begin; i < end; ++i) {
        QueuedGet& g = gets[i];
        asio::co_spawn(reactor_.io(),
                       CompleteWith(SendGet(std::move(g.key), consistency), std::move(g.done)),
                       asio::detached);
      }
      continue;
    }
    auto req = key_value_.getManyRequest();
    req.setConsistency(consistency == Consistency::kLinearizable ? wire::Consistency::LINEARIZABLE
                                                                 : wire::Consistency::LOCAL);
    auto keys = req.initKeys(end - begin);
    for (size_t i = begin; i < end; ++i) keys.set(i - begin, AsData(gets[i].key));
    kj::Promise<capnp::Response<wire::KeyValue::GetManyResults>> sent = req.send();
    std::vector<QueuedGet> chunk(std::make_move_iterator(gets.begin() + begin),
                                 std::make_move_iterator(gets.begin() + end));
    auto alone = [kv = key_value_, consistency,
                  timeout = options_.call_timeout](QueuedGet g) mutable {
      return PlainGet(kv, std::move(g.key), consistency, timeout);
    };
    asio::co_spawn(reactor_.io(),
                   AnswerMany(
                       kj::mv(sent), std::move(chunk), options_.call_timeout,
                       [](wire::GetResult::Reader r) { return GetResultFromWire(r); },
                       [](wire::GetResult::Reader r) { return r.isAnswerTooLarge(); },
                       std::move(alone), node_lacks_batches_),
                   asio::detached);
  }
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

asio::awaitable<absl::StatusOr<GetResult>> Client::Impl::SendGet(std::string key,
                                                                 Consistency consistency) {
  co_return co_await PlainGet(key_value_, std::move(key), consistency, options_.call_timeout);
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
  out.batched_calls = s.getBatchedCalls();
  out.batched_items = s.getBatchedItems();
  out.shards = std::max<uint32_t>(s.getShards(), 1);  // 0 from a build without shards
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
