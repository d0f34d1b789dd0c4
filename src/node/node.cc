#include "node/node.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <utility>
#include <variant>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <kj/debug.h>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "fmt/format.h"
#include "net/bridge.h"
#include "net/reactor.h"
#include "net/rpc.h"
#include "node/convert.h"
#include "node/waiters.h"
#include "schema/replicator.capnp.h"

namespace replicator::node {
namespace {

using std::chrono::milliseconds;

// Engine time: wall-clock milliseconds, so proposal start times are
// comparable across nodes for backoff priority.
core::TimeMs Now() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

core::Response Unreachable(std::string reason) { return core::Unreachable{std::move(reason)}; }

// A rejected Cap'n Proto call carries its reason in the status message.
std::string Reason(const absl::Status& s) { return std::string(s.message()); }

}  // namespace

// ---------------------------------------------------------------------------
// Node::Impl: all state of one node. Servers below hold a raw pointer plus a
// liveness token; they answer "shutting down" once the Impl is gone.

class Node::Impl {
 public:
  Impl(net::Reactor& reactor, NodeOptions options, Identity identity,
       std::unique_ptr<storage::Storage> storage, core::DurableState recovered,
       uint64_t incarnation);
  ~Impl();

  asio::awaitable<absl::Status> Serve();
  void Shutdown();

  // Client calls.
  asio::awaitable<core::PutOutcome> Put(core::Key key, core::Value value, uint64_t request_id);
  // Starts a get. The slot holds the outcome at once for a local read (no
  // coroutine, no hop through Asio), later for a linearizable one.
  std::shared_ptr<Waiters<core::GetOutcome>::Slot> StartGet(core::Key key,
                                                            core::Consistency consistency);
  void FillStatus(wire::NodeStatus::Builder out);

  // Peer calls: hand `requests` to the engine and await all their
  // responses, in order.
  asio::awaitable<std::vector<core::Response>> Inbound(std::vector<core::Request> requests);

  // Directory (bootstrap peer only).
  bool is_directory() const { return options_.bootstrap.empty(); }
  absl::StatusOr<std::vector<core::Member>> Join(core::Member member,
                                                 wire::Watcher::Client watcher);
  std::vector<core::Member> DirectoryMembers() const;

  // A new membership map from the directory.
  void OnMembers(std::vector<core::Member> members);

  std::weak_ptr<bool> token() const { return alive_; }
  asio::io_context& io();

  NodeOptions options_;
  Identity identity_;
  std::string address_;

 private:
  void Pump();
  void Carry(core::Effect& effect);
  // Hands the engine every storage write completed since the last drain.
  void DrainCompletedWrites();
  // Starts `work` on the reactor from a later handler: co_spawn alone may run
  // it inline, and this may be called from inside a KJ event.
  void Spawn(asio::awaitable<void> work);
  // Test-only: exits the process at the point --failpoint names.
  void MaybeCrash(const core::Request& request) const;
  void ScheduleWakeup();
  // Outbound calls. Protocol calls are queued per peer and sent as one
  // Peer.call batch per turn of the loop (Flush); calls to this node itself
  // go straight to the engine. Catch-up calls go one by one (CallCatchUp).
  void Enqueue(core::SendEffect effect);
  void Flush();
  asio::awaitable<void> SendBatch(std::weak_ptr<bool> token, core::PeerId to,
                                  std::vector<core::SendEffect> calls);
  asio::awaitable<std::vector<core::Response>> CallBatch(const core::PeerId& to,
                                                         const std::vector<core::SendEffect>& calls);
  asio::awaitable<void> Call(std::weak_ptr<bool> token, core::SendEffect effect);
  asio::awaitable<core::Response> CallCatchUp(core::SendEffect effect);
  // Answers inbound call `id` (a RespondEffect).
  void Respond(uint64_t id, core::Response response);
  asio::awaitable<absl::StatusOr<wire::Peer::Client>> PeerClient(core::PeerId id,
                                                                milliseconds timeout);
  void Broadcast();
  asio::awaitable<void> Notify(std::weak_ptr<bool> token, core::PeerId id, uint64_t generation,
                               wire::Watcher::Client watcher, std::vector<core::Member> members);
  asio::awaitable<void> Ping(std::weak_ptr<bool> token, core::PeerId id, uint64_t generation,
                             wire::Watcher::Client watcher);
  // Shows a registration down when a call to its watcher failed.
  void MarkDown(const core::PeerId& id, uint64_t generation);
  asio::awaitable<void> WatchHealth(std::weak_ptr<bool> token);
  asio::awaitable<absl::Status> JoinDirectory();
  asio::awaitable<void> StayJoined(std::weak_ptr<bool> token);
  core::Member Self() const;

  net::Reactor& reactor_;
  std::unique_ptr<storage::Storage> storage_;
  std::unique_ptr<core::Engine> engine_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();

  std::unique_ptr<net::RpcServer> server_;
  std::vector<core::Member> members_;  // as the directory reported them
  absl::flat_hash_map<core::PeerId, size_t> cluster_size_of_;  // members of a peer's cluster

  struct PeerConnection {
    std::unique_ptr<net::RpcConnection> connection;
    wire::Peer::Client peer;
  };
  absl::flat_hash_map<std::string, PeerConnection> peers_;  // by address

  // Directory state (bootstrap peer only).
  struct Registration {
    core::Member member;  // state: kVoter or kCatchingUp
    std::optional<wire::Watcher::Client> watcher;  // empty for this node itself
    bool down = false;  // its watcher stopped answering
    uint64_t generation = 0;  // which join `watcher` came from
  };
  uint64_t registry_generation_ = 0;
  std::map<core::PeerId, Registration> registry_;
  std::map<core::ClusterId, std::chrono::steady_clock::time_point> last_promotion_;

  // Connection to the directory (other nodes).
  std::unique_ptr<net::RpcConnection> directory_connection_;

  // Inbound calls in flight: one batch per Peer.call, answered when its
  // last call is.
  struct InboundBatch {
    InboundBatch(asio::any_io_executor ex, size_t n) : responses(n), remaining(n), done(ex) {
      done.expires_at(asio::steady_timer::time_point::max());
    }
    std::vector<core::Response> responses;
    size_t remaining;
    asio::steady_timer done;  // cancelled when remaining reaches 0
  };
  struct InboundSlot {
    std::shared_ptr<InboundBatch> batch;
    size_t index = 0;
  };
  absl::flat_hash_map<uint64_t, InboundSlot> inbound_;
  // Calls this node made to itself: inbound id -> the engine's call id.
  absl::flat_hash_map<uint64_t, uint64_t> self_calls_;
  // Outbound calls waiting for this turn's Flush.
  struct Outbox {
    std::vector<core::SendEffect> calls;
    size_t bytes = 0;        // of the calls
    size_t reply_bytes = 0;  // the most their replies may carry
  };
  // The most the reply to `effect` may carry: a reserve's vote can be
  // `stored` with a value of up to the value limit, one per voter for a
  // forward, and a read can return one.
  size_t ReplyBound(const core::SendEffect& effect) const;
  absl::flat_hash_map<core::PeerId, Outbox> outboxes_;
  std::vector<core::SendEffect> local_calls_;
  bool flush_posted_ = false;
  // Writes made durable by the storage thread, not yet given to the engine.
  struct CompletedWrites {
    std::mutex mu;
    std::vector<std::pair<uint64_t, absl::Status>> writes;  // guarded by mu
  };
  std::shared_ptr<CompletedWrites> completed_writes_ = std::make_shared<CompletedWrites>();
  Waiters<core::PutOutcome> puts_;
  Waiters<core::GetOutcome> gets_;
  uint64_t next_id_ = 1;
  bool pumping_ = false;
  bool slowed_reply_ = false;
  bool shut_down_ = false;
  asio::steady_timer wakeup_;
  std::optional<core::TimeMs> wakeup_at_;
};

namespace {

const char* ShuttingDown() { return "node is shutting down"; }

// Least time between two voter additions in one cluster (see Join).
constexpr std::chrono::seconds kPromotionSpacing{5};

// Cap'n Proto servers. Each call becomes an Asio coroutine on the reactor.

class PeerServer final : public wire::Peer::Server {
 public:
  explicit PeerServer(Node::Impl* impl) : impl_(impl), token_(impl->token()) {}

  kj::Promise<void> call(CallContext context) override {
    if (token_.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    return net::ToPromise(impl_->io(), Call(impl_, context));
  }
  kj::Promise<void> digest(DigestContext context) override {
    if (token_.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    return net::ToPromise(impl_->io(), Digest(impl_, context));
  }
  kj::Promise<void> pull(PullContext context) override {
    if (token_.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    return net::ToPromise(impl_->io(), Pull(impl_, context));
  }

 private:
  // The engine answered with a response of another kind, or the node shut
  // down (Unreachable): the caller sees a failed call.
  template <typename T>
  static const T& Expect(const core::Response& r) {
    if (const auto* t = std::get_if<T>(&r)) return *t;
    if (const auto* u = std::get_if<core::Unreachable>(&r)) throw std::runtime_error(u->reason);
    throw std::logic_error("engine answered with the wrong response type");
  }

  static asio::awaitable<void> Call(Node::Impl* impl, CallContext context) {
    auto calls = context.getParams().getCalls();
    // A call this node cannot read (a kind from a newer peer) fails alone.
    std::vector<core::Response> responses(calls.size());
    std::vector<core::Request> requests;
    std::vector<size_t> positions;
    requests.reserve(calls.size());
    positions.reserve(calls.size());
    for (size_t i = 0; i < calls.size(); ++i) {
      KJ_IF_MAYBE(e, kj::runCatchingExceptions([&] { requests.push_back(FromWire(calls[i])); })) {
        responses[i] = Unreachable(absl::StrCat("malformed call: ", e->getDescription().cStr()));
      } else {
        positions.push_back(i);
      }
    }
    std::vector<core::Response> answered = co_await impl->Inbound(std::move(requests));
    for (size_t j = 0; j < positions.size(); ++j) responses[positions[j]] = std::move(answered[j]);
    auto out = context.getResults().initReplies(responses.size());
    for (size_t i = 0; i < responses.size(); ++i) ToWire(responses[i], out[i]);
  }

  static asio::awaitable<void> Digest(Node::Impl* impl, DigestContext context) {
    std::vector<core::Request> request{core::DigestRequest{}};
    std::vector<core::Response> r = co_await impl->Inbound(std::move(request));
    const auto& d = Expect<core::DigestResponse>(r.at(0));
    auto out = context.getResults().initBuckets(d.buckets.size());
    for (size_t i = 0; i < d.buckets.size(); ++i) out.set(i, d.buckets[i]);
  }
  static asio::awaitable<void> Pull(Node::Impl* impl, PullContext context) {
    auto p = context.getParams();
    std::vector<core::Request> request{
        core::PullRequest{p.getBucket(), ToString(p.getAfter()), p.getMaxBytes()}};
    std::vector<core::Response> r = co_await impl->Inbound(std::move(request));
    const auto& pr = Expect<core::PullResponse>(r.at(0));
    auto results = context.getResults();
    auto out = results.initEntries(pr.entries.size());
    for (size_t i = 0; i < pr.entries.size(); ++i) {
      out[i].setKey(AsData(pr.entries[i].key));
      out[i].setValue(AsData(pr.entries[i].value));
      out[i].setRequestId(pr.entries[i].request_id);
    }
    results.setComplete(pr.complete);
  }

  Node::Impl* impl_;
  std::weak_ptr<bool> token_;
};

class KeyValueServer final : public wire::KeyValue::Server {
 public:
  explicit KeyValueServer(Node::Impl* impl) : impl_(impl), token_(impl->token()) {}

  kj::Promise<void> put(PutContext context) override {
    if (token_.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    return net::ToPromise(impl_->io(), Put(impl_, context));
  }
  kj::Promise<void> get(GetContext context) override {
    if (token_.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    auto p = context.getParams();
    auto consistency = p.getConsistency() == wire::Consistency::LINEARIZABLE
                           ? core::Consistency::kLinearizable
                           : core::Consistency::kLocal;
    auto slot = impl_->StartGet(ToString(p.getKey()), consistency);
    if (slot->value) {
      ToWire(*slot->value, context.getResults().initResult());
      return kj::READY_NOW;
    }
    return net::ToPromise(impl_->io(), FinishGet(std::move(slot), context));
  }
  kj::Promise<void> status(StatusContext context) override {
    if (token_.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    impl_->FillStatus(context.getResults().initStatus());
    return kj::READY_NOW;
  }

 private:
  static asio::awaitable<void> Put(Node::Impl* impl, PutContext context) {
    auto p = context.getParams();
    std::string key = ToString(p.getKey());
    std::string value = ToString(p.getValue());
    core::PutOutcome o = co_await impl->Put(std::move(key), std::move(value), p.getRequestId());
    ToWire(o, context.getResults().initResult());
  }
  static asio::awaitable<void> FinishGet(std::shared_ptr<Waiters<core::GetOutcome>::Slot> slot,
                                         GetContext context) {
    core::GetOutcome o = co_await Waiters<core::GetOutcome>::Wait(std::move(slot));
    ToWire(o, context.getResults().initResult());
  }

  Node::Impl* impl_;
  std::weak_ptr<bool> token_;
};

class WatcherServer final : public wire::Watcher::Server {
 public:
  explicit WatcherServer(Node::Impl* impl) : impl_(impl), token_(impl->token()) {}

  kj::Promise<void> changed(ChangedContext context) override {
    if (token_.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    std::vector<core::Member> members;
    for (auto m : context.getParams().getMembers()) members.push_back(FromWire(m));
    impl_->OnMembers(std::move(members));
    return kj::READY_NOW;
  }
  kj::Promise<void> ping(PingContext) override {
    if (token_.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    return kj::READY_NOW;
  }

 private:
  Node::Impl* impl_;
  std::weak_ptr<bool> token_;
};

void FillMembers(const std::vector<core::Member>& members,
                 capnp::List<wire::PeerInfo>::Builder out) {
  for (size_t i = 0; i < members.size(); ++i) ToWire(members[i], out[i]);
}

class DirectoryServer final : public wire::Directory::Server {
 public:
  explicit DirectoryServer(Node::Impl* impl) : impl_(impl), token_(impl->token()) {}

  kj::Promise<void> join(JoinContext context) override {
    if (token_.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    auto p = context.getParams();
    auto members = impl_->Join(FromWire(p.getSelf()), p.getWatcher());
    if (!members.ok()) {
      return KJ_EXCEPTION(FAILED, std::string(members.status().message()).c_str());
    }
    FillMembers(*members, context.getResults().initMembers(members->size()));
    return kj::READY_NOW;
  }
  kj::Promise<void> list(ListContext context) override {
    if (token_.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    auto members = impl_->DirectoryMembers();
    FillMembers(members, context.getResults().initMembers(members.size()));
    return kj::READY_NOW;
  }

 private:
  Node::Impl* impl_;
  std::weak_ptr<bool> token_;
};

class NodeServer final : public wire::Node::Server {
 public:
  explicit NodeServer(Node::Impl* impl)
      : impl_(impl),
        key_value_(kj::heap<KeyValueServer>(impl)),
        peer_(kj::heap<PeerServer>(impl)),
        directory_(kj::heap<DirectoryServer>(impl)) {}

  kj::Promise<void> keyValue(KeyValueContext context) override {
    context.getResults().setKeyValue(key_value_);
    return kj::READY_NOW;
  }
  kj::Promise<void> peer(PeerContext context) override {
    context.getResults().setPeer(peer_);
    return kj::READY_NOW;
  }
  kj::Promise<void> directory(DirectoryContext context) override {
    if (!impl_->is_directory()) {
      return KJ_EXCEPTION(FAILED, "this node is not the bootstrap peer; it serves no directory");
    }
    context.getResults().setDirectory(directory_);
    return kj::READY_NOW;
  }
  kj::Promise<void> echo(EchoContext context) override {
    context.getResults().setPayload(context.getParams().getPayload());
    return kj::READY_NOW;
  }

 private:
  Node::Impl* impl_;
  wire::KeyValue::Client key_value_;
  wire::Peer::Client peer_;
  wire::Directory::Client directory_;
};

}  // namespace

// ---------------------------------------------------------------------------

Node::Impl::Impl(net::Reactor& reactor, NodeOptions options, Identity identity,
                 std::unique_ptr<storage::Storage> storage, core::DurableState recovered,
                 uint64_t incarnation)
    : options_(std::move(options)),
      identity_(std::move(identity)),
      reactor_(reactor),
      storage_(std::move(storage)),
      puts_(reactor.io().get_executor()),
      gets_(reactor.io().get_executor()),
      wakeup_(reactor.io()) {
  core::EngineConfig config;
  config.self = identity_.peer_id;
  config.cluster = options_.cluster;
  config.incarnation = incarnation;
  config.random_seed = std::hash<std::string>()(identity_.peer_id) ^ incarnation;
  config.limits = options_.limits;
  config.call_deadline_ms = options_.call_deadline.count();
  config.lease_ms = options_.lease.count();
  engine_ = std::make_unique<core::Engine>(config, storage_.get(), std::move(recovered));
}

Node::Impl::~Impl() {
  Shutdown();
  alive_.reset();
  // Storage drains queued writes; their completions find the token gone.
  storage_.reset();
}

asio::io_context& Node::Impl::io() { return reactor_.io(); }

core::Member Node::Impl::Self() const {
  // As the directory last reported it; a node it has not listed yet is
  // catching up.
  core::PeerState state = core::PeerState::kCatchingUp;
  for (const core::Member& m : members_) {
    if (m.id == identity_.peer_id) state = m.state;
  }
  return core::Member{identity_.peer_id, options_.cluster, address_, state};
}

asio::awaitable<absl::Status> Node::Impl::Serve() {
  auto server = net::RpcServer::Listen(reactor_, options_.listen, kj::heap<NodeServer>(this));
  if (!server.ok()) co_return server.status();
  server_ = std::move(*server);
  address_ = server_->address();
  if (is_directory()) {
    core::Member self = Self();
    self.state = core::PeerState::kVoter;
    registry_[identity_.peer_id] = Registration{self, std::nullopt, false, 0};
    Broadcast();
    Spawn(WatchHealth(token()));
  } else {
    absl::Status joined = co_await JoinDirectory();
    if (!joined.ok()) co_return joined;
    Spawn(StayJoined(token()));
  }
  // Converge with the cluster at once: this node may have been down while
  // keys were committed, or be new.
  engine_->StartCatchUp(Now());
  Pump();
  co_return absl::OkStatus();
}

void Node::Impl::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  wakeup_.cancel();
  // A put in flight may have reached its voters: its outcome is unknown.
  core::PutOutcome gone{core::PutOutcome::Kind::kOutcomeUnknown, {},
                        std::string(ShuttingDown())};
  puts_.CompleteAll(gone);
  gets_.CompleteAll(core::GetOutcome{core::GetOutcome::Kind::kUnavailable, {},
                                     std::string(ShuttingDown())});
  auto inbound = std::move(inbound_);
  inbound_.clear();
  for (auto& [id, slot] : inbound) {
    slot.batch->responses[slot.index] = Unreachable(std::string(ShuttingDown()));
    if (--slot.batch->remaining == 0) slot.batch->done.cancel();
  }
  self_calls_.clear();
  outboxes_.clear();
  local_calls_.clear();
  server_.reset();
  peers_.clear();
  directory_connection_.reset();
}

// --- Driving the engine -----------------------------------------------------

void Node::Impl::Pump() {
  // Effects carried out here may feed the engine again (a call that fails at
  // once); the outer loop picks up whatever that produced.
  if (pumping_ || shut_down_) return;
  pumping_ = true;
  while (engine_->HasEffects()) {
    for (core::Effect& effect : engine_->TakeEffects()) Carry(effect);
  }
  pumping_ = false;
  ScheduleWakeup();
}

void Node::Impl::MaybeCrash(const core::Request& request) const {
  if (options_.failpoint.empty()) return;
  bool crash = false;
  if (options_.failpoint == "crash-before-decide") {
    // The coordinator's own accept(ballot 0): reservations are out, the
    // decision is not recorded anywhere.
    const auto* a = std::get_if<core::AcceptRequest>(&request);
    crash = a && a->ballot.round == 0 && a->ballot.proposer == identity_.peer_id;
  } else if (options_.failpoint == "crash-before-commit") {
    // The decision is chosen; no voter has heard the commit yet.
    const core::ReplicaOp* op = nullptr;
    if (const auto* h = std::get_if<core::HandleRequest>(&request)) op = &h->op;
    if (const auto* f = std::get_if<core::ForwardRequest>(&request)) op = &f->op;
    crash = op && std::holds_alternative<core::CommitOp>(*op);
  }
  if (crash) {
    fmt::print(stderr, "replicatord: failpoint {}: exiting\n", options_.failpoint);
    std::fflush(stderr);
    _exit(86);
  }
}

void Node::Impl::Spawn(asio::awaitable<void> work) {
  asio::post(io(), [this, alive = token(), work = std::move(work)]() mutable {
    if (!alive.expired()) asio::co_spawn(io(), std::move(work), asio::detached);
  });
}

void Node::Impl::Carry(core::Effect& effect) {
  std::visit(
      [&](auto& fx) {
        using T = std::decay_t<decltype(fx)>;
        if constexpr (std::is_same_v<T, core::SendEffect>) {
          MaybeCrash(fx.request);
          // Catch-up calls to another node go one by one; everything else,
          // and every call to this node itself, through Enqueue.
          if (fx.to != identity_.peer_id &&
              (std::holds_alternative<core::DigestRequest>(fx.request) ||
               std::holds_alternative<core::PullRequest>(fx.request))) {
            Spawn(Call(token(), std::move(fx)));
          } else {
            Enqueue(std::move(fx));
          }
        } else if constexpr (std::is_same_v<T, core::RespondEffect>) {
          Respond(fx.inbound_id, std::move(fx.response));
        } else if constexpr (std::is_same_v<T, core::WriteEffect>) {
          // Called on the storage thread. Completions of one group commit
          // reach the reactor as one posted handler, so the engine takes
          // them all in one turn and the node pumps once.
          storage_->Write(std::move(fx.batch),
                          [done = completed_writes_, &ctx = io(), alive = token(), this,
                           id = fx.write_id](absl::Status s) {
                            bool first = false;
                            {
                              std::lock_guard<std::mutex> lock(done->mu);
                              first = done->writes.empty();
                              done->writes.emplace_back(id, std::move(s));
                            }
                            if (!first) return;  // a drain is already posted
                            asio::post(ctx, [alive, this] {
                              if (!alive.expired()) DrainCompletedWrites();
                            });
                          });
        } else if constexpr (std::is_same_v<T, core::PutDoneEffect>) {
          puts_.Complete(fx.put_id, std::move(fx.outcome));
        } else if constexpr (std::is_same_v<T, core::GetDoneEffect>) {
          gets_.Complete(fx.get_id, std::move(fx.outcome));
        } else if constexpr (std::is_same_v<T, core::ViolationEffect>) {
          fmt::print(stderr,
                     "replicatord: SAFETY VIOLATION: two values for one key ({} bytes): {}\n",
                     fx.key.size(), fx.detail);
          std::fflush(stderr);
        }
      },
      effect);
}

void Node::Impl::DrainCompletedWrites() {
  std::vector<std::pair<uint64_t, absl::Status>> writes;
  {
    std::lock_guard<std::mutex> lock(completed_writes_->mu);
    writes.swap(completed_writes_->writes);
  }
  core::TimeMs now = Now();
  for (auto& [id, status] : writes) {
    if (!status.ok()) {
      // A replica that cannot make its promises durable must not make them
      // at all: stop rather than answer.
      fmt::print(stderr, "replicatord: fatal: storage write failed: {}\n", status.ToString());
      std::fflush(stderr);
      std::abort();
    }
    engine_->OnWriteDone(id, now);
  }
  Pump();
}

void Node::Impl::ScheduleWakeup() {
  std::optional<core::TimeMs> next = engine_->NextWakeup();
  if (!next || shut_down_) return;
  if (wakeup_at_ && *wakeup_at_ <= *next) return;  // an earlier wake-up is armed
  wakeup_at_ = next;
  wakeup_.expires_after(milliseconds(std::max<core::TimeMs>(0, *next - Now())));
  std::weak_ptr<bool> alive = token();
  wakeup_.async_wait([this, alive](asio::error_code ec) {
    if (ec || alive.expired()) return;
    wakeup_at_.reset();
    engine_->Tick(Now());
    Pump();
  });
}

// --- Outbound calls ---------------------------------------------------------

namespace {

// A batch is sent early once its calls hold this much, or once their
// replies could: one message must stay under the connections' traversal
// limit (net/rpc.cc: 1 GiB) however many of a batch's reserves find the key
// stored with a large value.
constexpr size_t kMaxBatchBytes = 8 << 20;
constexpr size_t kMaxBatchReplyBytes = 256 << 20;
constexpr size_t kMaxBatchCalls = 1024;
constexpr size_t kReplyOverhead = 256;  // ids, ballots and framing of one answer

size_t ApproxBytes(const core::Request& r) {
  const core::ReplicaOp* op = nullptr;
  if (const auto* h = std::get_if<core::HandleRequest>(&r)) op = &h->op;
  if (const auto* f = std::get_if<core::ForwardRequest>(&r)) op = &f->op;
  size_t bytes = 64;
  if (op) {
    std::visit(
        [&](const auto& o) {
          bytes += o.key.size();
          if constexpr (!std::is_same_v<std::decay_t<decltype(o)>, core::AbortOp>) {
            bytes += o.value.size();
          }
        },
        *op);
  }
  return bytes;
}

}  // namespace

size_t Node::Impl::ReplyBound(const core::SendEffect& effect) const {
  const size_t value = options_.limits.max_value_bytes + kReplyOverhead;
  if (const auto* h = std::get_if<core::HandleRequest>(&effect.request)) {
    return std::holds_alternative<core::ReserveOp>(h->op) ? value : kReplyOverhead;
  }
  if (const auto* f = std::get_if<core::ForwardRequest>(&effect.request)) {
    auto known = cluster_size_of_.find(effect.to);
    const size_t voters = known == cluster_size_of_.end() ? 1 : std::max<size_t>(known->second, 1);
    return voters * (std::holds_alternative<core::ReserveOp>(f->op) ? value : kReplyOverhead);
  }
  if (std::holds_alternative<core::ReadRequest>(effect.request)) return value;
  return kReplyOverhead;
}

void Node::Impl::Enqueue(core::SendEffect effect) {
  if (effect.to == identity_.peer_id) {
    local_calls_.push_back(std::move(effect));
  } else {
    Outbox& box = outboxes_[effect.to];
    box.bytes += ApproxBytes(effect.request);
    box.reply_bytes += ReplyBound(effect);
    box.calls.push_back(std::move(effect));
    if (box.bytes >= kMaxBatchBytes || box.reply_bytes >= kMaxBatchReplyBytes ||
        box.calls.size() >= kMaxBatchCalls) {
      std::vector<core::SendEffect> calls = std::move(box.calls);
      core::PeerId to = calls.front().to;
      box = Outbox{};
      Spawn(SendBatch(token(), std::move(to), std::move(calls)));
    }
  }
  if (flush_posted_) return;
  flush_posted_ = true;
  // Everything the engine asks for in this turn of the loop goes out together.
  asio::post(io(), [this, alive = token()] {
    if (!alive.expired()) Flush();
  });
}

void Node::Impl::Flush() {
  flush_posted_ = false;
  if (shut_down_) return;
  // Take every batch first: a send that fails at once feeds the engine,
  // which may queue more calls (into outboxes_) before this loop is done.
  std::vector<std::pair<core::PeerId, std::vector<core::SendEffect>>> ready;
  for (auto& [to, box] : outboxes_) {
    if (box.calls.empty()) continue;
    ready.emplace_back(to, std::move(box.calls));
    box = Outbox{};
  }
  for (auto& [to, calls] : ready) {
    // Runs inline up to the send: this is a plain Asio handler, not a KJ event.
    asio::co_spawn(io(), SendBatch(token(), std::move(to), std::move(calls)), asio::detached);
  }
  // Calls to this node itself skip Cap'n Proto. They have no deadline of
  // their own: the engine answers each once its writes are durable.
  std::vector<core::SendEffect> local = std::move(local_calls_);
  local_calls_.clear();
  core::TimeMs now = Now();
  for (core::SendEffect& fx : local) {
    uint64_t id = next_id_++;
    self_calls_[id] = fx.call_id;
    engine_->OnRequest(id, identity_.peer_id, std::move(fx.request), now);
  }
  Pump();
}

void Node::Impl::Respond(uint64_t id, core::Response response) {
  if (auto self = self_calls_.find(id); self != self_calls_.end()) {
    uint64_t call_id = self->second;
    self_calls_.erase(self);
    engine_->OnResponse(call_id, std::move(response), Now());
    return;  // Pump's loop picks up what this produced
  }
  auto it = inbound_.find(id);
  if (it == inbound_.end()) return;
  InboundBatch& batch = *it->second.batch;
  batch.responses[it->second.index] = std::move(response);
  if (--batch.remaining == 0) batch.done.cancel();
  inbound_.erase(it);
}

asio::awaitable<void> Node::Impl::SendBatch(std::weak_ptr<bool> token, core::PeerId to,
                                            std::vector<core::SendEffect> calls) {
  std::vector<core::Response> responses = co_await CallBatch(to, calls);
  if (token.expired() || shut_down_) co_return;
  core::TimeMs now = Now();
  for (size_t i = 0; i < calls.size(); ++i) {
    engine_->OnResponse(calls[i].call_id, std::move(responses[i]), now);
  }
  Pump();
}

asio::awaitable<std::vector<core::Response>> Node::Impl::CallBatch(
    const core::PeerId& to, const std::vector<core::SendEffect>& calls) {
  auto failed = [&](std::string reason) {
    return std::vector<core::Response>(calls.size(), Unreachable(std::move(reason)));
  };
  // Calls queued in one turn have (nearly) the same deadline; the batch
  // waits for the latest, so none is cut short.
  core::TimeMs deadline = 0;
  for (const core::SendEffect& fx : calls) deadline = std::max(deadline, fx.deadline);
  milliseconds remaining(deadline - Now());
  if (remaining.count() <= 0) co_return failed("deadline passed before the call was sent");
  std::weak_ptr<bool> alive = token();
  auto peer = co_await PeerClient(to, remaining);
  if (alive.expired()) co_return failed(std::string(ShuttingDown()));
  if (!peer.ok()) co_return failed(Reason(peer.status()));
  remaining = milliseconds(std::max<core::TimeMs>(1, deadline - Now()));
  try {
    auto req = peer->callRequest();
    auto list = req.initCalls(calls.size());
    for (size_t i = 0; i < calls.size(); ++i) ToWire(calls[i].request, list[i]);
    auto sent = req.send();
    auto r = co_await net::AwaitWithin(kj::mv(sent), remaining);
    if (!r.ok()) co_return failed(Reason(r.status()));
    auto replies = r->getReplies();
    if (replies.size() != calls.size()) {
      co_return failed(absl::StrCat("peer answered ", calls.size(), " calls with ",
                                    replies.size(), " replies"));
    }
    std::vector<core::Response> out;
    out.reserve(calls.size());
    for (auto reply : replies) out.push_back(FromWire(reply));
    co_return out;
  } catch (const kj::Exception& e) {
    // A malformed answer from a peer: as good as none.
    co_return failed(e.getDescription().cStr());
  } catch (const std::exception& e) {
    co_return failed(e.what());
  }
}

asio::awaitable<void> Node::Impl::Call(std::weak_ptr<bool> token, core::SendEffect effect) {
  uint64_t call_id = effect.call_id;
  core::Response response = co_await CallCatchUp(std::move(effect));
  if (token.expired() || shut_down_) co_return;
  engine_->OnResponse(call_id, std::move(response), Now());
  Pump();
}

asio::awaitable<core::Response> Node::Impl::CallCatchUp(core::SendEffect effect) {
  milliseconds remaining(effect.deadline - Now());
  if (remaining.count() <= 0) co_return Unreachable("deadline passed before the call was sent");
  std::weak_ptr<bool> alive = token();
  auto peer = co_await PeerClient(effect.to, remaining);
  if (alive.expired()) co_return Unreachable(std::string(ShuttingDown()));
  if (!peer.ok()) co_return Unreachable(Reason(peer.status()));
  remaining = milliseconds(std::max<core::TimeMs>(1, effect.deadline - Now()));
  try {
    if (std::holds_alternative<core::DigestRequest>(effect.request)) {
      auto req = peer->digestRequest();
      auto sent = req.send();
      auto r = co_await net::AwaitWithin(kj::mv(sent), remaining);
      if (!r.ok()) co_return Unreachable(Reason(r.status()));
      core::DigestResponse out;
      for (uint64_t b : r->getBuckets()) out.buckets.push_back(b);
      co_return out;
    }
    const auto& pl = std::get<core::PullRequest>(effect.request);
    auto req = peer->pullRequest();
    req.setBucket(pl.bucket);
    req.setAfter(AsData(pl.after));
    req.setMaxBytes(pl.max_bytes);
    auto sent = req.send();
    auto r = co_await net::AwaitWithin(kj::mv(sent), remaining);
    if (!r.ok()) co_return Unreachable(Reason(r.status()));
    core::PullResponse out;
    for (auto e : r->getEntries()) {
      out.entries.push_back(
          core::PulledEntry{ToString(e.getKey()), ToString(e.getValue()), e.getRequestId()});
    }
    out.complete = r->getComplete();
    co_return out;
  } catch (const kj::Exception& e) {
    co_return Unreachable(e.getDescription().cStr());
  } catch (const std::exception& e) {
    co_return Unreachable(e.what());
  }
}

asio::awaitable<absl::StatusOr<wire::Peer::Client>> Node::Impl::PeerClient(core::PeerId id,
                                                                          milliseconds timeout) {
  // Calls to this node never get here: Enqueue hands them to the engine.
  if (id == identity_.peer_id) co_return absl::InternalError("a node does not call itself");
  std::string address;
  for (const core::Member& m : members_) {
    if (m.id == id) address = m.address;
  }
  if (address.empty()) co_return absl::NotFoundError(absl::StrCat("peer ", id, " is not known"));
  if (auto it = peers_.find(address); it != peers_.end()) {
    if (!it->second.connection->disconnected()) co_return it->second.peer;
    peers_.erase(it);
  }
  std::weak_ptr<bool> alive = token();
  auto connection = co_await net::RpcConnection::Connect(reactor_, address, timeout);
  if (alive.expired()) co_return absl::UnavailableError(ShuttingDown());
  if (!connection.ok()) co_return connection.status();
  // A concurrent call may have connected first; keep one connection.
  if (auto it = peers_.find(address); it != peers_.end() && !it->second.connection->disconnected()) {
    co_return it->second.peer;
  }
  wire::Peer::Client peer =
      (*connection)->Bootstrap<wire::Node>().peerRequest().send().getPeer();
  peers_.insert_or_assign(address, PeerConnection{std::move(*connection), peer});
  co_return peer;
}

// --- Client operations ------------------------------------------------------

asio::awaitable<core::PutOutcome> Node::Impl::Put(core::Key key, core::Value value,
                                                  uint64_t request_id) {
  if (shut_down_) {
    co_return core::PutOutcome{core::PutOutcome::Kind::kUnavailable, {},
                               std::string(ShuttingDown())};
  }
  uint64_t id = next_id_++;
  auto slot = puts_.Add(id);
  engine_->StartPut(id, std::move(key), std::move(value), request_id, Now());
  Pump();
  core::PutOutcome outcome = co_await Waiters<core::PutOutcome>::Wait(slot);
  if (options_.failpoint == "slow-first-put-reply" && !slowed_reply_) {
    // Test-only: the client times out although the put was applied.
    slowed_reply_ = true;
    asio::steady_timer delay(io(), std::chrono::seconds(3));
    asio::error_code ec;
    co_await delay.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return outcome;
}

std::shared_ptr<Waiters<core::GetOutcome>::Slot> Node::Impl::StartGet(
    core::Key key, core::Consistency consistency) {
  if (shut_down_) {
    auto slot = std::make_shared<Waiters<core::GetOutcome>::Slot>(io().get_executor());
    slot->value = core::GetOutcome{core::GetOutcome::Kind::kUnavailable, {},
                                   std::string(ShuttingDown())};
    return slot;
  }
  uint64_t id = next_id_++;
  auto slot = gets_.Add(id);
  engine_->StartGet(id, std::move(key), consistency, Now());
  Pump();
  return slot;
}

asio::awaitable<std::vector<core::Response>> Node::Impl::Inbound(
    std::vector<core::Request> requests) {
  if (shut_down_) {
    co_return std::vector<core::Response>(requests.size(),
                                          Unreachable(std::string(ShuttingDown())));
  }
  auto batch = std::make_shared<InboundBatch>(io().get_executor(), requests.size());
  core::TimeMs now = Now();
  for (size_t i = 0; i < requests.size(); ++i) {
    uint64_t id = next_id_++;
    inbound_[id] = InboundSlot{batch, i};
    engine_->OnRequest(id, core::PeerId(), std::move(requests[i]), now);
  }
  Pump();
  while (batch->remaining > 0) {
    asio::error_code ec;
    co_await batch->done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return std::move(batch->responses);
}

void Node::Impl::FillStatus(wire::NodeStatus::Builder out) {
  ToWire(Self(), out.initSelf());
  std::vector<core::Member> members = members_;
  std::sort(members.begin(), members.end(), [](const core::Member& a, const core::Member& b) {
    return std::tie(a.cluster, a.id) < std::tie(b.cluster, b.id);
  });
  FillMembers(members, out.initMembers(members.size()));
  core::EngineStats s = engine_->stats();
  out.setCommittedKeys(storage_->CommittedCount());
  out.setReservations(s.reservations);
  out.setPutsOk(s.puts_ok);
  out.setPutsKeyExists(s.puts_key_exists);
  out.setPutsConflict(s.puts_conflict);
  out.setPutsUnavailable(s.puts_unavailable);
  out.setPutsOutcomeUnknown(s.puts_outcome_unknown);
  out.setPutsInvalid(s.puts_invalid);
  out.setGets(s.gets);
  out.setSafetyViolations(s.safety_violations);
  storage::StorageStats st = storage_->stats();
  out.setStorageWrites(st.writes);
  out.setStorageBatches(st.batches_written);
  out.setStorageSyncs(st.syncs);
  out.setUptimeMs(std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() -
                                                           started_)
                      .count());
}

// --- Membership -------------------------------------------------------------

void Node::Impl::OnMembers(std::vector<core::Member> members) {
  members_ = std::move(members);
  // How many members each peer's cluster has: a forward's reply holds a
  // vote per member (ReplyBound), looked up per call.
  absl::flat_hash_map<std::string_view, size_t> per_cluster;
  for (const core::Member& m : members_) ++per_cluster[m.cluster];
  cluster_size_of_.clear();
  for (const core::Member& m : members_) cluster_size_of_[m.id] = per_cluster[m.cluster];
  // `down` is a liveness hint for people reading `status`; a down voter
  // still counts in its cluster's quorum, or a partition could shrink a
  // majority below half of the real voters.
  core::Topology topology;
  for (core::Member m : members_) {
    if (m.state == core::PeerState::kDown) m.state = core::PeerState::kVoter;
    topology.members.push_back(std::move(m));
  }
  engine_->SetTopology(std::move(topology), Now());
  Pump();
}

std::vector<core::Member> Node::Impl::DirectoryMembers() const {
  std::vector<core::Member> out;
  for (const auto& [id, reg] : registry_) {
    out.push_back(reg.member);
    // Only a voter is shown down: the state must still say it votes.
    if (reg.down && reg.member.state == core::PeerState::kVoter) {
      out.back().state = core::PeerState::kDown;
    }
  }
  return out;
}

absl::StatusOr<std::vector<core::Member>> Node::Impl::Join(core::Member member,
                                                           wire::Watcher::Client watcher) {
  if (auto bad = core::ValidateClusterId(member.cluster)) return absl::InvalidArgumentError(*bad);
  if (member.id.empty() || member.address.empty()) {
    return absl::InvalidArgumentError("join needs a peer id and an address");
  }
  // TODO(security): a joining node should prove it holds the key behind its
  // peer id (sign a challenge); until then any caller can take an id over.
  auto it = registry_.find(member.id);
  if (it != registry_.end() && it->second.member.cluster != member.cluster) {
    return absl::FailedPreconditionError(
        absl::StrCat("peer ", member.id, " is registered in cluster ",
                     it->second.member.cluster, "; a peer cannot move to cluster ",
                     member.cluster));
  }
  // A voter stays a voter (it kept its durable state across a restart). A
  // node new to a cluster that already has the minimum of voters first
  // catches up and then asks to be promoted by joining with state voter; a
  // cluster still forming takes it as a voter at once. Voters are added one
  // join at a time, so any two consecutive voter sets' majorities intersect.
  size_t voters = 0;
  for (const auto& [id, reg] : registry_) {
    voters += id != member.id && reg.member.cluster == member.cluster &&
              reg.member.state == core::PeerState::kVoter;
  }
  bool was_voter = it != registry_.end() && it->second.member.state == core::PeerState::kVoter;
  bool promotion = it != registry_.end() && member.state == core::PeerState::kVoter;
  // Promotions in one cluster are spaced out, so that every node has heard
  // of one voter set before the next is formed: a coordinator whose view
  // lagged two additions behind could count a majority that misses another
  // view's majority. TODO(safety): record membership changes through
  // consensus (joint majorities) instead of relying on spacing.
  auto now = std::chrono::steady_clock::now();
  auto& last = last_promotion_[member.cluster];
  if (promotion && !was_voter && voters >= 3 && now - last < kPromotionSpacing) promotion = false;
  member.state = was_voter || promotion || voters < 3 ? core::PeerState::kVoter
                                                      : core::PeerState::kCatchingUp;
  if (!was_voter && member.state == core::PeerState::kVoter) last = now;
  Registration& reg = registry_[member.id];
  reg.member = std::move(member);
  reg.watcher = std::move(watcher);
  reg.down = false;
  reg.generation = ++registry_generation_;
  Broadcast();
  return DirectoryMembers();
}

void Node::Impl::Broadcast() {
  std::vector<core::Member> members = DirectoryMembers();
  for (auto& [id, reg] : registry_) {
    if (reg.watcher) Spawn(Notify(token(), id, reg.generation, *reg.watcher, members));
  }
  OnMembers(std::move(members));
}

asio::awaitable<void> Node::Impl::Notify(std::weak_ptr<bool> token, core::PeerId id,
                                         uint64_t generation, wire::Watcher::Client watcher,
                                         std::vector<core::Member> members) {
  auto req = watcher.changedRequest();
  FillMembers(members, req.initMembers(members.size()));
  kj::Promise<void> sent = req.send().ignoreResult();
  absl::Status s = co_await net::AwaitWithin(kj::mv(sent), options_.call_deadline);
  if (token.expired() || s.ok()) co_return;
  MarkDown(id, generation);
}

asio::awaitable<void> Node::Impl::Ping(std::weak_ptr<bool> token, core::PeerId id,
                                       uint64_t generation, wire::Watcher::Client watcher) {
  kj::Promise<void> sent = watcher.pingRequest().send().ignoreResult();
  absl::Status s = co_await net::AwaitWithin(kj::mv(sent), options_.call_deadline);
  if (token.expired() || s.ok()) co_return;
  MarkDown(id, generation);
}

void Node::Impl::MarkDown(const core::PeerId& id, uint64_t generation) {
  // Only the registration the failed call was made for: the node may have
  // joined again since, with a new watcher.
  auto it = registry_.find(id);
  if (it == registry_.end() || it->second.down || it->second.generation != generation) return;
  it->second.down = true;
  it->second.watcher.reset();
  Broadcast();
}

asio::awaitable<void> Node::Impl::WatchHealth(std::weak_ptr<bool> token) {
  asio::steady_timer timer(io());
  while (!token.expired() && !shut_down_) {
    timer.expires_after(std::chrono::seconds(2));
    asio::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (token.expired() || shut_down_) co_return;
    for (auto& [id, reg] : registry_) {
      if (reg.watcher && !reg.down) Spawn(Ping(token, id, reg.generation, *reg.watcher));
    }
  }
}

asio::awaitable<absl::Status> Node::Impl::JoinDirectory() {
  std::weak_ptr<bool> alive = token();
  // Nodes of a deployment often start together: keep trying for the whole
  // bootstrap timeout before giving up.
  auto give_up = std::chrono::steady_clock::now() + options_.bootstrap_timeout;
  asio::steady_timer pause(io());
  absl::StatusOr<std::unique_ptr<net::RpcConnection>> connection;
  while (true) {
    auto left = std::chrono::duration_cast<milliseconds>(give_up - std::chrono::steady_clock::now());
    connection = co_await net::RpcConnection::Connect(reactor_, options_.bootstrap,
                                                      std::max(left, milliseconds(1)));
    if (alive.expired()) co_return absl::UnavailableError(ShuttingDown());
    if (connection.ok() || absl::IsInvalidArgument(connection.status()) ||
        std::chrono::steady_clock::now() + milliseconds(200) >= give_up) {
      break;
    }
    pause.expires_after(milliseconds(200));
    asio::error_code ec;
    co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (alive.expired()) co_return absl::UnavailableError(ShuttingDown());
  }
  if (!connection.ok()) {
    co_return absl::UnavailableError(absl::StrCat("cannot reach bootstrap peer ",
                                                  options_.bootstrap, ": ",
                                                  connection.status().message()));
  }
  auto directory = (*connection)->Bootstrap<wire::Node>().directoryRequest().send().getDirectory();
  auto req = directory.joinRequest();
  core::Member self = Self();
  if (self.state == core::PeerState::kCatchingUp && engine_->caught_up()) {
    self.state = core::PeerState::kVoter;  // ask to be promoted
  }
  ToWire(self, req.initSelf());
  req.setWatcher(kj::heap<WatcherServer>(this));
  auto sent = req.send();
  auto reply = co_await net::AwaitWithin(kj::mv(sent), options_.bootstrap_timeout);
  if (alive.expired()) co_return absl::UnavailableError(ShuttingDown());
  if (!reply.ok()) {
    co_return absl::UnavailableError(absl::StrCat("bootstrap peer ", options_.bootstrap,
                                                  " refused to register this node: ",
                                                  reply.status().message()));
  }
  std::vector<core::Member> members;
  for (auto m : reply->getMembers()) members.push_back(FromWire(m));
  directory_connection_ = std::move(*connection);
  OnMembers(std::move(members));
  co_return absl::OkStatus();
}

asio::awaitable<void> Node::Impl::StayJoined(std::weak_ptr<bool> token) {
  // Nodes keep working while the bootstrap peer is down, and re-register
  // when it is back (it keeps its directory in memory only).
  asio::steady_timer timer(io());
  while (!token.expired() && !shut_down_) {
    timer.expires_after(std::chrono::seconds(1));
    asio::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (token.expired() || shut_down_) co_return;
    bool connected = directory_connection_ && !directory_connection_->disconnected();
    bool promote = Self().state == core::PeerState::kCatchingUp && engine_->caught_up();
    if (connected && !promote) continue;
    absl::Status s = co_await JoinDirectory();
    if (token.expired()) co_return;
    if (s.ok() && !connected) {
      fmt::print(stderr, "replicatord: re-registered with {}\n", options_.bootstrap);
    }
  }
}

// ---------------------------------------------------------------------------

Node::Node(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Node::~Node() = default;

const Identity& Node::identity() const { return impl_->identity_; }
const std::string& Node::address() const { return impl_->address_; }
void Node::Shutdown() { impl_->Shutdown(); }

asio::awaitable<absl::StatusOr<std::unique_ptr<Node>>> Node::Start(net::Reactor& reactor,
                                                                   NodeOptions options) {
  if (auto bad = core::ValidateClusterId(options.cluster)) {
    co_return absl::InvalidArgumentError(*bad);
  }
  if (options.data_dir.empty()) co_return absl::InvalidArgumentError("--data-dir is required");
  auto identity = LoadOrCreateIdentity(options.data_dir);
  if (!identity.ok()) co_return identity.status();
  std::unique_ptr<storage::Storage> storage;
  if (options.memory_storage) {
    storage = storage::OpenMemoryStorage();
  } else {
    auto opened = storage::OpenRocksDbStorage(options.data_dir + "/db");
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
