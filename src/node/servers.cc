#include "node/servers.h"

#include <kj/debug.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/validate.h"
#include "core/wire_limits.h"
#include "net/bridge.h"
#include "node/directory_service.h"
#include "node/engine_driver.h"
#include "node/fan_in.h"
#include "node/shards.h"

namespace replicator::node {
namespace {

// A refused call: FAILED, so the caller's client does not retry it.
kj::Exception Refused(const std::string& why) { return KJ_EXCEPTION(FAILED, why.c_str()); }

class PeerServer final : public wire::Peer::Server {
 public:
  // Reached only by a caller that Authorize() let have the Peer face;
  // serves shard `shard`, on its thread.
  PeerServer(const ServedParts& parts, uint32_t shard, const Caller& caller)
      : ctx_(parts.ctx),
        shards_(parts.shards),
        shard_(shard),
        caller_(caller),
        token_(parts.ctx->alive) {}

  // The authenticated sender of every call on this face (caller.h).
  const Caller& caller() const { return caller_; }

  kj::Promise<void> call(CallContext context) override {
    if (token_.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    // Refused whole before anything is read from it: memory per call read
    // must stay bounded by the batch limit, not by what a sender claims.
    if (size_t n = context.getParams().getCalls().size(); n > core::kMaxBatchCalls) {
      return KJ_EXCEPTION(FAILED, absl::StrCat("refused batch: ", n, " calls, over the limit of ",
                                               core::kMaxBatchCalls, " per batch")
                                      .c_str());
    }
    core::Sender from = SenderOf(caller_, context);
    return net::ToPromise(ctx_->io(),
                          Call(shards_, shard_, ctx_->options.limits, std::move(from), context));
  }
  kj::Promise<void> digest(DigestContext context) override {
    if (token_.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    return net::ToPromise(ctx_->io(), Digest(shards_, shard_, context));
  }
  kj::Promise<void> pull(PullContext context) override {
    if (token_.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    core::PullRequest pull = FromWire(context.getParams());
    if (auto bad = core::ValidateRequest(ctx_->options.limits, pull)) {
      return KJ_EXCEPTION(FAILED, absl::StrCat("refused call: ", *bad).c_str());
    }
    return net::ToPromise(ctx_->io(), Pull(shards_, shard_, std::move(pull), context));
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

  // The one seam for who a batch came from: with TLS, the peer id the
  // connection's certificate proved (caller.h), whatever the call claims;
  // with --insecure, the id the call claims, unauthenticated.
  static core::Sender SenderOf(const Caller& caller, CallContext& context) {
    if (caller.authenticated) return core::Sender{std::string(caller.peer_id()), true};
    return core::Sender{ToString(context.getParams().getFrom()), /*authenticated=*/false};
  }

  static asio::awaitable<void> Call(Shards* shards, uint32_t shard, core::Limits limits,
                                    core::Sender from, CallContext context) {
    auto calls = context.getParams().getCalls();
    // A call this node cannot read (a kind from a newer peer) fails alone.
    std::vector<core::Response> responses(calls.size());
    std::vector<core::Request> requests;
    std::vector<size_t> positions;
    requests.reserve(calls.size());
    positions.reserve(calls.size());
    for (size_t i = 0; i < calls.size(); ++i) {
      core::Request request;
      KJ_IF_MAYBE (e, kj::runCatchingExceptions([&] { request = FromWire(calls[i]); })) {
        responses[i] = Unreachable(absl::StrCat("malformed call: ", e->getDescription().cStr()));
      } else if (auto bad = core::ValidateRequest(limits, request)) {
        responses[i] = Unreachable(absl::StrCat("refused call: ", *bad));
      } else {
        requests.push_back(std::move(request));
        positions.push_back(i);
      }
    }
    // A named local, not a temporary of the awaited call: g++ 12 (docs/design.md).
    auto work = [requests = std::move(requests), from](EngineDriver& d) mutable {
      return d.Inbound(std::move(requests), std::move(from));
    };
    std::vector<core::Response> answered = co_await shards->Run(shard, std::move(work));
    for (size_t j = 0; j < positions.size(); ++j) responses[positions[j]] = std::move(answered[j]);
    auto out = context.getResults().initReplies(responses.size());
    for (size_t i = 0; i < responses.size(); ++i) ToWire(responses[i], out[i]);
  }

  // Catch-up asks nothing of its sender.
  static asio::awaitable<std::vector<core::Response>> Alone(Shards* shards, uint32_t shard,
                                                            core::Request request) {
    return shards->Run(shard, [request = std::move(request)](EngineDriver& d) mutable {
      std::vector<core::Request> one;
      one.push_back(std::move(request));
      return d.Inbound(std::move(one), core::Sender{});
    });
  }
  static asio::awaitable<void> Digest(Shards* shards, uint32_t shard, DigestContext context) {
    // Awaited apart from the call: g++ 12 and temporaries (docs/design.md).
    auto answer = Alone(shards, shard, core::DigestRequest{});
    std::vector<core::Response> r = co_await std::move(answer);
    ToWire(Expect<core::DigestResponse>(r.at(0)), context.getResults());
  }
  static asio::awaitable<void> Pull(Shards* shards, uint32_t shard, core::PullRequest pull,
                                    PullContext context) {
    auto answer = Alone(shards, shard, std::move(pull));
    std::vector<core::Response> r = co_await std::move(answer);
    ToWire(Expect<core::PullResponse>(r.at(0)), context.getResults());
  }

  const NodeContext* ctx_;
  Shards* shards_;
  uint32_t shard_;
  Caller caller_;
  std::weak_ptr<bool> token_;
};

class KeyValueServer final : public wire::KeyValue::Server {
 public:
  KeyValueServer(const ServedParts& parts, const Caller& caller)
      : ctx_(parts.ctx),
        shards_(parts.shards),
        status_(parts.status),
        batches_(parts.batches),
        caller_(caller),
        token_(parts.ctx->alive) {}

  kj::Promise<void> put(PutContext context) override {
    if (token_.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    if (auto refused = Authorize(caller_, Action::kPut)) return Refused(*refused);
    return net::ToPromise(ctx_->io(), Put(shards_, context));
  }
  kj::Promise<void> get(GetContext context) override {
    if (token_.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    if (auto refused = Authorize(caller_, Action::kGet)) return Refused(*refused);
    auto p = context.getParams();
    std::string key = ToString(p.getKey());
    const uint32_t shard = shards_->ShardOf(key);
    EngineDriver* here = shards_->InlineDriver(shard);
    if (here == nullptr) {
      return net::ToPromise(ctx_->io(), GetThere(shards_, shard, std::move(key),
                                                 FromWire(p.getConsistency()), context));
    }
    // On the node's reactor: a local get is answered in this call.
    auto slot = here->StartGet(std::move(key), FromWire(p.getConsistency()));
    if (slot->value) {
      ToWire(*slot->value, context.getResults().initResult());
      return kj::READY_NOW;
    }
    return net::ToPromise(ctx_->io(), FinishGet(std::move(slot), context));
  }
  // Each item exactly as put() and get() take one: the same authorization
  // (for the whole call, since every item asks for the same action), the
  // same driver calls and so the same checks, limits and request ids.
  kj::Promise<void> putMany(PutManyContext context) override {
    if (token_.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    if (auto refused = Authorize(caller_, Action::kPut)) return Refused(*refused);
    const size_t n = context.getParams().getItems().size();
    if (auto refused = RefuseLongList(n, "puts")) {
      context.getResults().setRefused(*refused);
      return kj::READY_NOW;
    }
    ++batches_->calls;
    batches_->items += n;
    if (n == 0) {
      context.getResults().initResults(0);
      return kj::READY_NOW;
    }
    return net::ToPromise(ctx_->io(), PutMany(ctx_, shards_, context));
  }
  kj::Promise<void> getMany(GetManyContext context) override {
    if (token_.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    if (auto refused = Authorize(caller_, Action::kGet)) return Refused(*refused);
    auto p = context.getParams();
    auto keys = p.getKeys();
    if (auto refused = RefuseLongList(keys.size(), "gets")) {
      context.getResults().setRefused(*refused);
      return kj::READY_NOW;
    }
    ++batches_->calls;
    batches_->items += keys.size();
    const core::Consistency consistency = FromWire(p.getConsistency());
    if (shards_->InlineDriver(0) == nullptr) {
      return net::ToPromise(ctx_->io(), GetManyThere(ctx_, shards_, consistency, context));
    }
    std::vector<std::shared_ptr<Waiters<core::GetOutcome>::Slot>> slots;
    slots.reserve(keys.size());
    bool all_ready = true;
    for (auto key : keys) {
      std::string k = ToString(key);
      EngineDriver* here = shards_->InlineDriver(shards_->ShardOf(k));
      slots.push_back(here->StartGet(std::move(k), consistency));
      all_ready = all_ready && slots.back()->value.has_value();
    }
    if (all_ready) {
      std::vector<core::GetOutcome> outcomes;
      outcomes.reserve(slots.size());
      for (auto& slot : slots) outcomes.push_back(std::move(*slot->value));
      AnswerMany(outcomes, context.getResults().initResults(outcomes.size()));
      return kj::READY_NOW;
    }
    return net::ToPromise(ctx_->io(), FinishGetMany(std::move(slots), context));
  }
  kj::Promise<void> status(StatusContext context) override {
    if (token_.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    if (auto refused = Authorize(caller_, Action::kStatus)) return Refused(*refused);
    ToWire(status_(), context.getResults().initStatus());
    return kj::READY_NOW;
  }
  kj::Promise<void> changeMember(ChangeMemberContext context) override {
    if (token_.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    if (auto refused = Authorize(caller_, Action::kChangeMember)) return Refused(*refused);
    core::MembershipChange change;
    KJ_IF_MAYBE (e, kj::runCatchingExceptions(
                        [&] { change = FromWire(context.getParams().getChange()); })) {
      ToWire(core::ChangeOutcome{core::ChangeOutcome::Kind::kInvalidArgument,
                                 e->getDescription().cStr(), shards_->configuration()},
             context.getResults().initResult());
      return kj::READY_NOW;
    }
    return net::ToPromise(ctx_->io(), ChangeMember(ctx_, shards_, std::move(change), context));
  }

 private:
  static asio::awaitable<void> ChangeMember(const NodeContext* ctx, Shards* shards,
                                            core::MembershipChange change,
                                            ChangeMemberContext context) {
    using Slot = Waiters<core::ChangeOutcome>::Slot;
    auto slot = std::make_shared<Slot>(ctx->io().get_executor());
    // Every shard makes the change by its own consensus (node/shards.h).
    shards->ChangeMembership(change, [slot](core::ChangeOutcome o) {
      slot->value = std::move(o);
      slot->timer.cancel();
    });
    core::ChangeOutcome o = co_await Waiters<core::ChangeOutcome>::Wait(std::move(slot));
    ToWire(o, context.getResults().initResult());
  }

  static asio::awaitable<void> Put(Shards* shards, PutContext context) {
    auto p = context.getParams();
    std::string key = ToString(p.getKey());
    std::string value = ToString(p.getValue());
    uint64_t request_id = p.getRequestId();
    const uint32_t shard = shards->ShardOf(key);
    // A named local, not a temporary of the awaited call: g++ 12 (docs/design.md).
    auto work = [key = std::move(key), value = std::move(value),
                 request_id](EngineDriver& d) mutable {
      return d.Put(std::move(key), std::move(value), request_id);
    };
    core::PutOutcome o = co_await shards->Run(shard, std::move(work));
    ToWire(o, context.getResults().initResult());
  }
  // Refused whole before any item is read, so that what a call makes this
  // node hold is bounded by the limit, not by what a caller claims.
  static std::optional<std::string> RefuseLongList(size_t n, const char* what) {
    if (n <= core::kMaxBatchCalls) return std::nullopt;
    return absl::StrCat("refused: ", n, " ", what, " in one call, over the limit of ",
                        core::kMaxBatchCalls, "; nothing was applied");
  }

  // Writes results[i] for outcomes[i], keeping the values the answer
  // carries within kMaxBatchAnswerBytes: an item whose value would pass it
  // answers answerTooLarge (its client asks for it alone).
  template <typename Outcome, typename Results>
  static void AnswerMany(const std::vector<Outcome>& outcomes, Results out) {
    size_t bytes = 0;
    for (size_t i = 0; i < outcomes.size(); ++i) {
      const size_t value_bytes = ValueBytes(outcomes[i]);
      if (value_bytes > 0 && bytes + value_bytes > core::kMaxBatchAnswerBytes) {
        out[i].setAnswerTooLarge();
        continue;
      }
      bytes += value_bytes;
      ToWire(outcomes[i], out[i]);
    }
  }
  static size_t ValueBytes(const core::PutOutcome& o) {
    return o.kind == core::PutOutcome::Kind::kKeyExists ? o.existing.size() : 0;
  }
  static size_t ValueBytes(const core::GetOutcome& o) {
    return o.kind == core::GetOutcome::Kind::kFound ? o.value.size() : 0;
  }

  static asio::awaitable<void> PutOne(Shards* shards, core::Key key, core::Value value,
                                      uint64_t request_id,
                                      std::shared_ptr<FanIn<core::PutOutcome>> outcomes,
                                      size_t index) {
    const uint32_t shard = shards->ShardOf(key);
    // A named local, not a temporary of the awaited call: g++ 12 (docs/design.md).
    auto work = [key = std::move(key), value = std::move(value),
                 request_id](EngineDriver& d) mutable {
      return d.Put(std::move(key), std::move(value), request_id);
    };
    core::PutOutcome o = co_await shards->Run(shard, std::move(work));
    outcomes->Set(index, std::move(o));
  }
  static asio::awaitable<void> GetOne(Shards* shards, core::Key key, core::Consistency consistency,
                                      std::shared_ptr<FanIn<core::GetOutcome>> outcomes,
                                      size_t index) {
    const uint32_t shard = shards->ShardOf(key);
    // A named local, not a temporary of the awaited call: g++ 12 (docs/design.md).
    auto work = [key = std::move(key), consistency](EngineDriver& d) mutable {
      return d.Get(std::move(key), consistency);
    };
    core::GetOutcome o = co_await shards->Run(shard, std::move(work));
    outcomes->Set(index, std::move(o));
  }

  // A get of a shard on a thread of its own.
  static asio::awaitable<void> GetThere(Shards* shards, uint32_t shard, core::Key key,
                                        core::Consistency consistency, GetContext context) {
    // A named local, not a temporary of the awaited call: g++ 12 (docs/design.md).
    auto work = [key = std::move(key), consistency](EngineDriver& d) mutable {
      return d.Get(std::move(key), consistency);
    };
    core::GetOutcome o = co_await shards->Run(shard, std::move(work));
    ToWire(o, context.getResults().initResult());
  }
  // Every key's get on its shard's thread, concurrently.
  static asio::awaitable<void> GetManyThere(const NodeContext* ctx, Shards* shards,
                                            core::Consistency consistency, GetManyContext context) {
    auto keys = context.getParams().getKeys();
    auto parts = std::make_shared<FanIn<core::GetOutcome>>(ctx->io().get_executor(), keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      ctx->Spawn(GetOne(shards, ToString(keys[i]), consistency, parts, i));
    }
    std::vector<core::GetOutcome> outcomes = co_await parts->Wait();
    co_await net::ThrowIfCancelled();
    AnswerMany(outcomes, context.getResults().initResults(outcomes.size()));
  }

  // Every item runs as a put of its own, concurrently; the answer waits for
  // the last. A cancelled call (the client went away) leaves its items to
  // finish, as a cancelled put() leaves its engine put.
  static asio::awaitable<void> PutMany(const NodeContext* ctx, Shards* shards,
                                       PutManyContext context) {
    auto items = context.getParams().getItems();
    auto parts = std::make_shared<FanIn<core::PutOutcome>>(ctx->io().get_executor(), items.size());
    for (size_t i = 0; i < items.size(); ++i) {
      auto item = items[i];
      ctx->Spawn(PutOne(shards, ToString(item.getKey()), ToString(item.getValue()),
                        item.getRequestId(), parts, i));
    }
    std::vector<core::PutOutcome> outcomes = co_await parts->Wait();
    co_await net::ThrowIfCancelled();
    AnswerMany(outcomes, context.getResults().initResults(outcomes.size()));
  }

  static asio::awaitable<void> FinishGetMany(
      std::vector<std::shared_ptr<Waiters<core::GetOutcome>::Slot>> slots, GetManyContext context) {
    std::vector<core::GetOutcome> outcomes;
    outcomes.reserve(slots.size());
    for (auto& slot : slots) {
      outcomes.push_back(co_await Waiters<core::GetOutcome>::Wait(std::move(slot)));
    }
    co_await net::ThrowIfCancelled();
    AnswerMany(outcomes, context.getResults().initResults(outcomes.size()));
  }

  static asio::awaitable<void> FinishGet(std::shared_ptr<Waiters<core::GetOutcome>::Slot> slot,
                                         GetContext context) {
    core::GetOutcome o = co_await Waiters<core::GetOutcome>::Wait(std::move(slot));
    ToWire(o, context.getResults().initResult());
  }

  const NodeContext* ctx_;
  Shards* shards_;
  std::function<StatusReport()> status_;
  BatchStats* batches_;
  Caller caller_;
  std::weak_ptr<bool> token_;
};

// Not in the server: g++ 12 and KJ exceptions, as in directory_client.cc.
absl::Status MergeNotification(DirectoryService* directory, wire::Watcher::ChangedParams::Reader p,
                               const std::string& from) {
  std::vector<Entry> entries;
  std::vector<core::Configuration> founding;
  KJ_IF_MAYBE (e, kj::runCatchingExceptions([&] {
                 entries = EntriesFromWire(p.getMembers());
                 founding = FromWire(p.getFounding());
               })) {
    return absl::InvalidArgumentError(e->getDescription().cStr());
  }
  return directory->OnMap(entries, founding, p.getFederation(), from);
}

class WatcherServer final : public wire::Watcher::Server {
 public:
  WatcherServer(const NodeContext& ctx, DirectoryService* directory, std::string from)
      : directory_(directory), from_(std::move(from)), token_(ctx.alive) {}

  kj::Promise<void> changed(ChangedContext context) override {
    if (token_.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    // A map this node cannot take (malformed, another federation) fails the
    // call: the sender hears of it.
    absl::Status s = MergeNotification(directory_, context.getParams(), from_);
    if (!s.ok()) return KJ_EXCEPTION(FAILED, std::string(s.message()).c_str());
    return kj::READY_NOW;
  }
  kj::Promise<void> ping(PingContext) override {
    if (token_.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    return kj::READY_NOW;
  }

 private:
  DirectoryService* directory_;
  std::string from_;
  std::weak_ptr<bool> token_;
};

class DirectoryServer final : public wire::Directory::Server {
 public:
  DirectoryServer(const ServedParts& parts, const Caller& caller)
      : directory_(parts.directory), caller_(caller), token_(parts.ctx->alive) {}

  kj::Promise<void> join(JoinContext context) override {
    if (token_.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    auto p = context.getParams();
    Entry self = EntryFromWire(p.getSelf());
    // An authenticated node registers only the peer id its certificate
    // proved: no identity takeover.
    if (auto refused = AuthorizeJoin(caller_, self.member.id)) return Refused(*refused);
    auto members =
        directory_->Join(std::move(self), p.getFederation(), p.getShards(), p.getWatcher());
    if (!members.ok()) {
      return KJ_EXCEPTION(FAILED, std::string(members.status().message()).c_str());
    }
    auto results = context.getResults();
    ToWire(*members, results.initMembers(members->size()));
    const std::vector<core::Configuration>& founding = directory_->founding();
    ToWire(founding, results.initFounding(founding.size()));
    results.setFederation(directory_->federation());
    results.setVersion(directory_->version());
    return kj::READY_NOW;
  }
  kj::Promise<void> list(ListContext context) override {
    if (token_.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    auto members = directory_->Members();
    ToWire(members, context.getResults().initMembers(members.size()));
    return kj::READY_NOW;
  }

 private:
  DirectoryService* directory_;
  Caller caller_;
  std::weak_ptr<bool> token_;
};

class NodeServer final : public wire::Node::Server {
 public:
  // The Peer and Directory faces exist only for a caller that may have
  // them; KeyValue checks each method (a read client may get, not put).
  NodeServer(const ServedParts& parts, const Caller& caller)
      : parts_(parts),
        caller_(caller),
        key_value_(kj::heap<KeyValueServer>(parts, caller)),
        directory_(kj::heap<DirectoryServer>(parts, caller)) {}

  kj::Promise<void> keyValue(KeyValueContext context) override {
    context.getResults().setKeyValue(key_value_);
    return kj::READY_NOW;
  }
  kj::Promise<void> peer(PeerContext context) override {
    if (auto refused = Authorize(caller_, Action::kPeer)) return Refused(*refused);
    if (parts_.ctx->alive.expired()) return KJ_EXCEPTION(DISCONNECTED, ShuttingDown());
    const uint32_t mine = parts_.shards->count();
    auto p = context.getParams();
    // A build without shards asks for shard 0 of 0: one.
    const uint32_t theirs = std::max<uint32_t>(p.getShards(), 1);
    if (theirs != mine || p.getShard() >= mine) {
      return Refused(absl::StrCat("refused: this node runs ", mine, " shard", mine == 1 ? "" : "s",
                                  " (--shards) and the caller ", theirs, " (asking for shard ",
                                  p.getShard(),
                                  "): every node of a federation runs the same "
                                  "number"));
    }
    // One face per shard, made when first asked for.
    if (peers_.empty()) peers_.resize(mine);
    std::optional<wire::Peer::Client>& face = peers_[p.getShard()];
    if (!face) {
      face = kj::heap<PeerServer>(parts_, p.getShard(), caller_);
    }
    context.getResults().setPeer(*face);
    return kj::READY_NOW;
  }
  kj::Promise<void> directory(DirectoryContext context) override {
    if (auto refused = Authorize(caller_, Action::kDirectory)) return Refused(*refused);
    context.getResults().setDirectory(directory_);
    return kj::READY_NOW;
  }
  kj::Promise<void> echo(EchoContext context) override {
    context.getResults().setPayload(context.getParams().getPayload());
    return kj::READY_NOW;
  }

 private:
  ServedParts parts_;
  Caller caller_;
  wire::KeyValue::Client key_value_;
  std::vector<std::optional<wire::Peer::Client>> peers_;  // by shard
  wire::Directory::Client directory_;
};

}  // namespace

kj::Own<wire::Node::Server> NewNodeServer(ServedParts parts, Caller caller) {
  return kj::heap<NodeServer>(parts, caller);
}

kj::Own<wire::Watcher::Server> NewWatcherServer(const NodeContext& ctx, DirectoryService* directory,
                                                std::string from) {
  return kj::heap<WatcherServer>(ctx, directory, std::move(from));
}

}  // namespace replicator::node
