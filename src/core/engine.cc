// Engine: the public API and dispatch only. Each input goes to the role
// that owns it (see the role headers: membership, replica, acceptor,
// representative, coordinator, recovery, reader, catch-up, federation,
// founding); the roles share one Context.
//
// Shape of the code: every outgoing call carries a continuation in the
// Context; every in-flight operation is a small struct in its role's map,
// found again by id when a continuation runs, so a continuation whose
// operation finished (or moved on to a later attempt or phase) is ignored.
// Mutations of one input are batched into one WriteEffect; replies that
// depend on a mutation wait for its OnWriteDone.
//
// Assumption on the driver: WriteEffects are applied in the order they are
// emitted (a later write never overtakes an earlier one). Storage's group
// commit preserves it.
#include "core/engine.h"

#include "absl/strings/str_cat.h"
#include "core/acceptor.h"
#include "core/admission.h"
#include "core/catchup.h"
#include "core/context.h"
#include "core/coordinator.h"
#include "core/federation.h"
#include "core/founding.h"
#include "core/membership.h"
#include "core/reader.h"
#include "core/recovery.h"
#include "core/replica.h"
#include "core/representative.h"
#include "core/shard.h"

namespace replicator::core {

class Engine::Impl {
 public:
  Impl(EngineConfig config, const CommittedView* committed, DurableState recovered)
      : ctx_(std::move(config), committed),
        membership_(ctx_, std::move(recovered.configs), std::move(recovered.config_acceptors)),
        federation_(ctx_, membership_),
        replica_(ctx_, membership_, federation_, std::move(recovered.reservations)),
        acceptors_(ctx_, replica_, membership_),
        representative_(ctx_, membership_),
        recovery_(ctx_, replica_, acceptors_, membership_),
        coordinator_(ctx_, replica_, recovery_, membership_),
        reader_(ctx_, replica_, recovery_, membership_),
        catchup_(ctx_, replica_, recovery_, membership_, federation_),
        founding_(ctx_, membership_, coordinator_) {
    recovery_.set_coordinator(&coordinator_);
    replica_.set_on_committed([this](const Key& key, const Value& value, const ProposalId& p) {
      acceptors_.OnCommitted(p);
      founding_.OnCommitted(key, value, ctx_.now());
    });
    membership_.set_settled([this]() { return catchup_.settled(); });
    membership_.set_caught_up([this]() { return catchup_.caught_up(); });
    membership_.set_on_epoch([this](TimeMs now) { catchup_.OnEpoch(now); });
    membership_.set_on_generation([this](TimeMs now) { catchup_.OnGeneration(now); });
  }

  // Brackets every input: gives recovered state this run's clock on the
  // first one, and emits the input's mutations as one WriteEffect.
  class Input {
   public:
    Input(Impl* impl, TimeMs now) : impl_(impl) {
      impl_->ctx_.BeginInput(now);
      if (!impl_->seeded_) {
        impl_->seeded_ = true;
        impl_->catchup_.Observe(now);
        impl_->replica_.Observe(now);
      }
    }
    ~Input() {
      impl_->HandleSelfWork();
      impl_->ctx_.EndInput();
      if (impl_->ctx_.config().check_invariants) impl_->CheckInvariants();
    }
    Input(const Input&) = delete;
    Input& operator=(const Input&) = delete;

   private:
    Impl* impl_;
  };

  void OnRequest(uint64_t inbound_id, Request request, TimeMs now, const Sender& from) {
    Input in(this, now);
    if (std::optional<std::string> why =
            Admit(from, request, [this](const PeerId& p) { return InOwnCluster(p); })) {
      ++ctx_.stats().sender_refusals;
      ctx_.Respond(inbound_id, Unreachable{absl::StrCat("refused: ", *why)});
      return;
    }
    if (std::optional<std::string> why = KeyOutsideShard(ctx_.config().shard, request)) {
      ++ctx_.stats().shard_refusals;
      ctx_.Respond(inbound_id, Unreachable{absl::StrCat("refused: ", *why)});
      return;
    }
    ctx_.set_input_trusted(from.authenticated && InFederation(from.peer));
    Dispatch(inbound_id, std::move(request), now);
  }

  bool InOwnCluster(const PeerId& peer) const {
    if (const Member* m = ctx_.topology().Find(peer);
        m != nullptr && m->cluster == ctx_.cluster()) {
      return true;
    }
    for (const Configuration& c : membership_.Known()) {
      if (c.cluster == ctx_.cluster() && c.Has(peer)) return true;
    }
    return false;
  }
  bool InFederation(const PeerId& peer) const {
    if (peer == ctx_.self() || ctx_.topology().Find(peer) != nullptr) return true;
    for (const Configuration& c : membership_.Known()) {
      if (c.Has(peer)) return true;
    }
    return false;
  }

  // Calls this engine made to itself, and their answers, in the order made,
  // until none is left: one input's self calls join its write batch.
  void HandleSelfWork() {
    while (std::optional<Context::SelfWork> w = ctx_.TakeSelfWork()) {
      if (auto* r = std::get_if<Context::SelfRequest>(&*w)) {
        Dispatch(r->inbound_id, std::move(r->request), ctx_.now());
      } else {
        auto& s = std::get<Context::SelfResponse>(*w);
        ctx_.OnResponse(s.call_id, std::move(s.response), ctx_.now());
      }
    }
  }

  void Dispatch(uint64_t inbound_id, Request request, TimeMs now) {
    if (auto* h = std::get_if<HandleRequest>(&request)) {
      replica_.Handle(
          h->op,
          [this, inbound_id](Vote v) { ctx_.Respond(inbound_id, HandleResponse{std::move(v)}); },
          now);
    } else if (auto* f = std::get_if<ForwardRequest>(&request)) {
      representative_.HandleForward(inbound_id, std::move(*f), now);
    } else if (auto* a = std::get_if<AcceptRequest>(&request)) {
      acceptors_.HandleAccept(inbound_id, *a);
    } else if (auto* p = std::get_if<PrepareRequest>(&request)) {
      acceptors_.HandlePrepare(inbound_id, *p);
    } else if (auto* r = std::get_if<ReadRequest>(&request)) {
      replica_.HandleRead(inbound_id, *r);
    } else if (auto* s = std::get_if<ResolveRequest>(&request)) {
      recovery_.HandleResolve(inbound_id, *s, now);
    } else if (std::holds_alternative<DigestRequest>(request)) {
      catchup_.HandleDigest(inbound_id);
    } else if (auto* q = std::get_if<PullRequest>(&request)) {
      catchup_.HandlePull(inbound_id, *q);
    } else if (auto* cp = std::get_if<ConfigPrepareRequest>(&request)) {
      membership_.HandlePrepare(inbound_id, *cp, now);
    } else if (auto* ca = std::get_if<ConfigAcceptRequest>(&request)) {
      membership_.HandleAccept(inbound_id, *ca, now);
    } else if (auto* cl = std::get_if<ConfigLearnRequest>(&request)) {
      membership_.HandleLearn(inbound_id, *cl, now);
    } else if (auto* ch = std::get_if<ChangeRequest>(&request)) {
      membership_.HandleChange(inbound_id, *ch, now);
    }
  }

  void Tick(TimeMs now) {
    Input in(this, now);
    coordinator_.Tick(now);
    recovery_.RecoverLeases(now);
    catchup_.Tick(now);
    membership_.Tick(now);
    federation_.Tick(now);
    founding_.Tick(now);
  }

  std::optional<TimeMs> NextWakeup() const {
    std::optional<TimeMs> next;
    for (std::optional<TimeMs> t :
         {coordinator_.NextRetry(), replica_.NextRecovery(), catchup_.NextRound(),
          membership_.NextWakeup(), federation_.NextWakeup(), founding_.NextWakeup()}) {
      if (t && (!next || *t < *next)) next = t;
    }
    return next;
  }

  void CheckInvariants() const {
    ctx_.CheckInvariants();
    membership_.CheckInvariants();
    federation_.CheckInvariants();
    replica_.CheckInvariants();
    acceptors_.CheckInvariants();
    representative_.CheckInvariants();
    recovery_.CheckInvariants();
    coordinator_.CheckInvariants();
    reader_.CheckInvariants();
    catchup_.CheckInvariants();
    founding_.CheckInvariants();
  }

  Context ctx_;
  Membership membership_;
  Federation federation_;
  Replica replica_;
  Acceptors acceptors_;
  Representative representative_;
  Recovery recovery_;
  Coordinator coordinator_;
  Reader reader_;
  CatchUp catchup_;
  Founding founding_;
  bool seeded_ = false;
};

Engine::Engine(EngineConfig config, const CommittedView* committed, DurableState recovered)
    : impl_(std::make_unique<Impl>(std::move(config), committed, std::move(recovered))) {}
Engine::~Engine() = default;

const EngineConfig& Engine::config() const { return impl_->ctx_.config(); }

void Engine::SetTopology(Topology topology, TimeMs now) {
  Impl::Input in(impl_.get(), now);
  impl_->ctx_.set_topology(std::move(topology));
  impl_->membership_.OnTopology(now);
  impl_->catchup_.OnTopology(now);
  impl_->founding_.OnTopology();
}

void Engine::ChangeMembership(uint64_t change_id, MembershipChange change, TimeMs now) {
  Impl::Input in(impl_.get(), now);
  auto done = [this, change_id](ChangeOutcome outcome) {
    impl_->ctx_.Emit(ChangeDoneEffect{change_id, std::move(outcome)});
  };
  if (change.kind == MembershipChange::Kind::kRemoveCluster) {
    impl_->founding_.Remove(change.cluster, std::move(done), now);
    return;
  }
  impl_->membership_.Change(change, std::move(done), now);
}

const Configuration& Engine::configuration() const { return impl_->membership_.Current(); }

std::vector<Configuration> Engine::configurations() const { return impl_->membership_.Known(); }

const Topology& Engine::topology() const { return impl_->ctx_.topology(); }

void Engine::StartPut(uint64_t put_id, Key key, Value value, uint64_t request_id, TimeMs now,
                      std::optional<TimeMs> wall_ms) {
  Impl::Input in(impl_.get(), now);
  impl_->coordinator_.StartPut(put_id, std::move(key), std::move(value), request_id, now,
                               wall_ms.value_or(now));
}

void Engine::StartGet(uint64_t get_id, Key key, Consistency consistency, TimeMs now) {
  Impl::Input in(impl_.get(), now);
  impl_->reader_.StartGet(get_id, std::move(key), consistency, now);
}

void Engine::OnRequest(uint64_t inbound_id, Request request, TimeMs now, Sender from) {
  impl_->OnRequest(inbound_id, std::move(request), now, from);
}

void Engine::OnResponse(uint64_t call_id, Response response, TimeMs now) {
  Impl::Input in(impl_.get(), now);
  impl_->ctx_.OnResponse(call_id, std::move(response), now);
}

void Engine::OnWriteDone(uint64_t write_id, TimeMs now) {
  Impl::Input in(impl_.get(), now);
  impl_->ctx_.OnWriteDone(write_id);
}

void Engine::Tick(TimeMs now) { impl_->Tick(now); }
std::optional<TimeMs> Engine::NextWakeup() const { return impl_->NextWakeup(); }

void Engine::StartCatchUp(TimeMs now) {
  Impl::Input in(impl_.get(), now);
  impl_->catchup_.StartRound(now);
}

bool Engine::caught_up() const { return impl_->catchup_.caught_up(); }
std::vector<Effect> Engine::TakeEffects() { return impl_->ctx_.TakeEffects(); }
bool Engine::HasEffects() const { return impl_->ctx_.HasEffects(); }

EngineStats Engine::stats() const {
  EngineStats s = impl_->ctx_.stats();
  s.reservations = impl_->replica_.size();
  s.federation_settled = impl_->federation_.settled();
  return s;
}

void Engine::CheckInvariants() const { impl_->CheckInvariants(); }

}  // namespace replicator::core
