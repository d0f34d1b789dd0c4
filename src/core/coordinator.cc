#include "core/coordinator.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/backoff.h"
#include "core/check.h"
#include "core/founding.h"
#include "core/quorum.h"
#include "core/rendezvous.h"
#include "core/representative.h"
#include "core/shard.h"

namespace replicator::core {
namespace {

// A put of (value, request_id) over a key committed with `c` was already
// applied: an earlier attempt of the same client put (a retry after a
// timeout or an unknown outcome) committed it.
bool SamePut(const Replica::Committed& c, const Value& value, uint64_t request_id) {
  return request_id != 0 && c.request_id == request_id && c.value == value;
}

PutOutcome OutcomeOverCommitted(Replica::Committed c, const Value& value, uint64_t request_id) {
  if (SamePut(c, value, request_id)) return PutOutcome{PutOutcome::Kind::kOk, {}, {}};
  return PutOutcome{PutOutcome::Kind::kKeyExists, std::move(c.value), {}};
}

}  // namespace

Coordinator::PutOp& Coordinator::Get(uint64_t id) {
  auto it = puts_.find(id);
  RP_CHECK(it != puts_.end(), "put ", id, " is not in flight");
  return it->second;
}

const std::vector<PeerId>& Coordinator::Voters(const PutOp& op, const ClusterId& cluster) {
  auto it = op.voters.find(cluster);
  RP_CHECK(it != op.voters.end(), "put of ", op.key, " has no voters of cluster ", cluster);
  return it->second;
}

Coordinator::PutOp* Coordinator::Find(uint64_t id, int attempt, PutOp::Phase phase) {
  auto it = puts_.find(id);
  if (it == puts_.end() || it->second.attempt != attempt || it->second.phase != phase) {
    return nullptr;
  }
  return &it->second;
}

std::optional<std::string> Coordinator::QuorumShortfall() const {
  // A put counts the clusters founded (whose configuration is known here);
  // a cluster whose members are shown but that is not founded yet is no
  // part of the federation until it is (core/founding.h).
  if (uint64_t removed = membership_.RemovedAt(ctx_.cluster()); removed != 0) {
    return absl::StrCat("cluster ", ctx_.cluster(),
                        " was removed from the federation at generation ", removed,
                        "; use a node of another cluster");
  }
  if (membership_.Latest(ctx_.cluster()) != nullptr) return std::nullopt;
  const ClusterId& c = ctx_.cluster();
  size_t n = 0;
  for (const Member& m : ctx_.topology().members) n += m.cluster == c ? 1 : 0;
  return absl::StrCat("cluster ", c, " is not founded yet (", n, " member", n == 1 ? "" : "s",
                      " known; a cluster is founded once it has 3)");
}

void Coordinator::AddVote(PutOp& op, Vote vote, TimeMs now) {
  if (vote.kind == Vote::Kind::kWrongEpoch) {
    op.epoch_moved = true;
    membership_.OnWrongEpoch(vote.peer, vote.epoch, vote.configs, now);
    vote.configs.clear();  // learned; the tally needs none of it
  } else if (vote.kind == Vote::Kind::kWrongGeneration) {
    // A cluster founded since this node's generation: adopted, counted by
    // the next attempt (core/federation.h), which starts at once if this
    // one falls short.
    op.epoch_moved = true;
    membership_.Learn(vote.configs, now);
    vote.configs.clear();
  }
  op.votes.push_back(std::move(vote));
  RepairStaleReservation(op, op.votes.back(), now);
}

void Coordinator::StartPut(uint64_t put_id, Key key, Value value, uint64_t request_id,
                           TimeMs now, TimeMs started_wall_ms) {
  if (std::optional<std::string> bad = ValidatePut(ctx_.config().limits, key, value)) {
    EmitPutDone(put_id, PutOutcome{PutOutcome::Kind::kInvalidArgument, {}, *bad});
    return;
  }
  if (std::optional<std::string> other = KeyOutsideShard(ctx_.config().shard, key)) {
    EmitPutDone(put_id, PutOutcome{PutOutcome::Kind::kInvalidArgument, {}, *other});
    return;
  }
  if (IsSystemKey(key)) {
    EmitPutDone(put_id, PutOutcome{PutOutcome::Kind::kInvalidArgument,
                                   {},
                                   "keys beginning with a NUL byte are reserved for the system"});
    return;
  }
  if (std::optional<Replica::Committed> c = replica_.LookupCommitted(key)) {
    EmitPutDone(put_id, OutcomeOverCommitted(std::move(*c), value, request_id));
    return;
  }
  if (request_id != 0) {
    // The same client put is in flight here (the client retried before it
    // answered): share its outcome rather than race it. A different value
    // under the same request id is a different put and goes its own way.
    if (auto it = puts_by_request_.find(std::make_pair(key, request_id));
        it != puts_by_request_.end()) {
      PutOp& first = Get(it->second);
      if (first.value == value) {
        first.joined.push_back(put_id);
        ++ctx_.stats().puts_joined;
        return;
      }
    }
  }
  if (std::optional<std::string> shortfall = QuorumShortfall()) {
    EmitPutDone(put_id, PutOutcome{PutOutcome::Kind::kUnavailable, {}, *shortfall});
    return;
  }
  uint64_t id = ctx_.NextOpId();
  PutOp& op = puts_[id];
  op.put_id = put_id;
  op.key = std::move(key);
  op.value = std::move(value);
  op.request_id = request_id;
  op.started = now;
  op.started_wall_ms = static_cast<uint64_t>(std::max<TimeMs>(started_wall_ms, 0));
  if (request_id != 0) puts_by_request_.emplace(std::make_pair(op.key, request_id), id);
  StartAttempt(id, now);
}

void Coordinator::StartSystemPut(Key key, Value value, PutDoneFn done, TimeMs now,
                                 std::optional<ClusterId> excluded) {
  RP_CHECK(excluded != ctx_.cluster(), "a system put excludes this node's own cluster");
  if (std::optional<Replica::Committed> c = replica_.LookupCommitted(key)) {
    done(OutcomeOverCommitted(std::move(*c), value, 0), now);
    return;
  }
  if (std::optional<std::string> shortfall = QuorumShortfall()) {
    done(PutOutcome{PutOutcome::Kind::kUnavailable, {}, *shortfall}, now);
    return;
  }
  uint64_t id = ctx_.NextOpId();
  PutOp& op = puts_[id];
  op.system_done = std::move(done);
  op.excluded = std::move(excluded);
  op.key = std::move(key);
  op.value = std::move(value);
  op.started = now;
  op.started_wall_ms = static_cast<uint64_t>(std::max<TimeMs>(now, 0));
  StartAttempt(id, now);
}

void Coordinator::Tick(TimeMs now) {
  std::vector<uint64_t> retries;
  std::vector<std::pair<uint64_t, ClusterId>> hedges;
  for (const auto& [id, op] : puts_) {
    if (op.phase == PutOp::Phase::kBackoff && op.retry_at <= now) retries.push_back(id);
    if (op.phase != PutOp::Phase::kReserve) continue;
    for (const auto& [cluster, rc] : op.remotes) {
      if (!rc.settled && rc.hedge_at && *rc.hedge_at <= now) hedges.emplace_back(id, cluster);
    }
  }
  std::sort(retries.begin(), retries.end());  // deterministic order
  std::sort(hedges.begin(), hedges.end());
  for (uint64_t id : retries) StartAttempt(id, now);
  // A representative silent for half the time left: ask the next one too.
  for (const auto& [id, cluster] : hedges) SendReserveForward(id, cluster, now);
}

std::optional<TimeMs> Coordinator::NextRetry() const {
  std::optional<TimeMs> next;
  auto consider = [&next](TimeMs t) {
    if (!next || t < *next) next = t;
  };
  for (const auto& [id, op] : puts_) {
    if (op.phase == PutOp::Phase::kBackoff) consider(op.retry_at);
    if (op.phase != PutOp::Phase::kReserve) continue;
    for (const auto& [cluster, rc] : op.remotes) {
      if (!rc.settled && rc.hedge_at) consider(*rc.hedge_at);
    }
  }
  return next;
}

bool Coordinator::AwaitOwnDecision(const ProposalId& p, DecisionFn& answer) {
  if (!(p.coordinator == ctx_.self() && p.incarnation == ctx_.config().incarnation)) return false;
  // TODO(perf): index puts by proposal if resolves become frequent.
  for (auto& [id, op] : puts_) {
    if (op.proposal == p &&
        (op.phase == PutOp::Phase::kReserve || op.phase == PutOp::Phase::kAccept)) {
      op.resolve_waiters.push_back(std::move(answer));
      return true;
    }
  }
  return false;
}

// --- One attempt: reserve everywhere, then tally ------------------------------

void Coordinator::StartAttempt(uint64_t id, TimeMs now) {
  PutOp& op = Get(id);
  if (op.attempt > 0) {
    // A retry after backoff: the facts may have changed meanwhile.
    if (std::optional<Replica::Committed> c = replica_.LookupCommitted(op.key)) {
      FinishPut(id, OutcomeOverCommitted(std::move(*c), op.value, op.request_id), now);
      return;
    }
    if (std::optional<std::string> shortfall = QuorumShortfall()) {
      FinishPut(id, PutOutcome{PutOutcome::Kind::kUnavailable, {}, *shortfall}, now);
      return;
    }
  }
  ++op.attempt;
  op.attempt_started = now;
  op.accept_started = 0;
  const Configuration& own = membership_.Current();
  op.proposal = ProposalId{ctx_.self(), ctx_.config().incarnation, ctx_.NextSequence(),
                           op.started_wall_ms, own.epoch};
  op.phase = PutOp::Phase::kReserve;
  op.voters.clear();
  // Every cluster founded, known from its configurations, whether or not
  // the membership view shows it yet (a voter that refused an earlier
  // attempt for its generation told this node of it, core/federation.h);
  // none that is not founded yet.
  // A removed cluster is not counted (core/founding.h), nor the one a
  // removal excludes.
  for (const Configuration& c : membership_.Counted()) {
    if (c.cluster != op.excluded) op.voters[c.cluster] = c.voters;
  }
  op.voters[ctx_.cluster()] = own.voters;
  op.generation = membership_.generation();
  op.epoch_moved = false;
  op.reserve_deadline = now + ctx_.config().call_deadline_ms;
  op.votes.clear();
  op.outstanding = 0;
  op.remotes.clear();

  const int attempt = op.attempt;
  const ReserveOp reserve{op.key, op.value, op.proposal, op.request_id, own.epoch, op.generation};
  for (const PeerId& v : op.voters[ctx_.cluster()]) {
    ++op.outstanding;
    ctx_.Send(v, HandleRequest{reserve}, op.reserve_deadline,
              [this, id, attempt, v](Response&& r, TimeMs t) {
                PutOp* put = Find(id, attempt, PutOp::Phase::kReserve);
                if (put == nullptr) return;
                --put->outstanding;
                AddVote(*put, Context::VoteFrom(v, ctx_.cluster(), r), t);
                OnOwnVote(id, t);
                MaybeTally(id, t);
              });
  }
  op.remotes_deferred = local_first_ && op.voters.size() > 1;
  if (!op.remotes_deferred) SendRemoteReserves(id, now);
}

void Coordinator::SendRemoteReserves(uint64_t id, TimeMs now) {
  PutOp& op = Get(id);
  op.remotes_deferred = false;
  for (const auto& [cluster, voters] : op.voters) {
    if (cluster == ctx_.cluster()) continue;
    op.remotes[cluster].candidates = RepresentativeOrder(op.key, voters, ctx_.topology());
  }
  std::vector<ClusterId> remote_clusters;
  for (const auto& [cluster, rc] : op.remotes) remote_clusters.push_back(cluster);
  for (const ClusterId& cluster : remote_clusters) SendReserveForward(id, cluster, now);
}

TallyOutcome Coordinator::OwnTally(const PutOp& op) const {
  const VoterSnapshot own{{ctx_.cluster(), Voters(op, ctx_.cluster())}};
  return Tally(own, op.votes, op.proposal);
}

bool Coordinator::OwnMajorityOk(const PutOp& op) const {
  return OwnTally(op).kind == TallyOutcome::Kind::kCommit;
}

void Coordinator::OnOwnVote(uint64_t id, TimeMs now) {
  PutOp& op = Get(id);
  // Nothing to learn on the common path: the flag is clear and every
  // cluster was asked at once.
  if (!local_first_ && !op.remotes_deferred) return;
  if (!OwnMajorityOk(op)) return;
  local_first_ = false;
  if (op.remotes_deferred && now < op.reserve_deadline) SendRemoteReserves(id, now);
}

void Coordinator::SendReserveForward(uint64_t id, const ClusterId& cluster, TimeMs now) {
  PutOp& op = Get(id);
  auto rc = op.remotes.find(cluster);
  RP_CHECK(rc != op.remotes.end(), "put ", id, " has no remote cluster ", cluster);
  RemoteCluster& remote = rc->second;
  RP_CHECK(remote.next < remote.candidates.size(), "put ", id, " has no representative of ",
           cluster, " left to ask");
  const size_t index = remote.next++;
  const PeerId peer = remote.candidates[index];
  const int attempt = op.attempt;
  ++op.outstanding;
  ++remote.in_flight;
  // A silent representative must not use up the attempt: if it has not
  // answered by half the time left, the next is asked too (Tick), and the
  // first answer with votes counts. A failure reported early moves on at
  // once (OnForwardReply).
  remote.hedge_at = RepresentativeHedgeAt(now, op.reserve_deadline,
                                          remote.candidates.size() - remote.next);
  ctx_.Send(
      peer,
      ForwardRequest{ReserveOp{op.key, op.value, op.proposal, op.request_id, 0, op.generation},
                     RepresentativeBudget(op.reserve_deadline - now)},
      op.reserve_deadline, [this, id, attempt, cluster, index](Response&& r, TimeMs t) {
        OnForwardReply(id, attempt, cluster, index, std::move(r), t);
      });
}

void Coordinator::OnForwardReply(uint64_t id, int attempt, const ClusterId& cluster,
                                 size_t index, Response&& r, TimeMs now) {
  PutOp* put = Find(id, attempt, PutOp::Phase::kReserve);
  if (put == nullptr) return;
  --put->outstanding;
  auto rc = put->remotes.find(cluster);
  RP_CHECK(rc != put->remotes.end(), "put ", id, " has no remote cluster ", cluster);
  RemoteCluster& remote = rc->second;
  --remote.in_flight;
  auto* fr = std::get_if<ForwardResponse>(&r);
  if (fr != nullptr && fr->config.epoch == 0) {
    r = Unreachable{absl::StrCat("representative ", remote.candidates[index],
                                 " knows no configuration of cluster ", cluster)};
    fr = nullptr;
  }
  if (remote.settled) {
    // Another representative of the cluster answered first; its votes count.
  } else if (fr != nullptr) {
    remote.settled = true;
    remote.settled_at = now;
    remote.hedge_at.reset();
    remote.answered = index;
    // The cluster's votes count over the configuration they were asked
    // under, which the representative names.
    membership_.Learn({fr->config}, now);
    put->voters[cluster] = std::move(fr->config.voters);
    for (Vote& v : fr->votes) AddVote(*put, std::move(v), now);
  } else if (remote.in_flight > 0) {
    // A representative asked later is still on it.
  } else if (remote.next < remote.candidates.size() && now < put->reserve_deadline) {
    SendReserveForward(id, cluster, now);
    return;
  } else {
    remote.settled = true;
    remote.settled_at = now;
    remote.hedge_at.reset();
    const PeerId& peer = remote.candidates[index];
    for (const PeerId& v : Voters(*put, cluster)) {
      Vote vote;
      vote.peer = v;
      vote.cluster = cluster;
      vote.kind = Vote::Kind::kUnreachable;
      vote.reason = absl::StrCat("no representative of cluster ", cluster,
                                 " answered; last tried ", peer, ": ", ReasonOf(r));
      put->votes.push_back(std::move(vote));
    }
  }
  MaybeTally(id, now);
}

void Coordinator::MaybeTally(uint64_t id, TimeMs now) {
  PutOp& op = Get(id);
  TallyOutcome t = Tally(op.voters, op.votes, op.proposal);
  if (op.outstanding > 0 && !t.final()) return;
  using K = TallyOutcome::Kind;
  switch (t.kind) {
    case K::kCommit:
      StartAccept(id, now);
      return;
    case K::kKeyExists: {
      AbortAttempt(op, now);
      Replica::Committed stored{std::move(t.existing), t.existing_request_id, 0, {}};
      FinishPut(id, OutcomeOverCommitted(std::move(stored), op.value, op.request_id), now);
      return;
    }
    case K::kContention:
      AbortAttempt(op, now);
      if (op.attempt < ctx_.config().max_attempts &&
          now - op.started < ctx_.config().max_retry_ms) {
        op.phase = PutOp::Phase::kBackoff;
        op.retry_at = now + ContentionBackoff(op.proposal, op.attempt, t.holders,
                                              now - op.attempt_started,
                                              ctx_.config().backoff_base_ms, ctx_.rng());
        ++ctx_.stats().put_retries;
        return;
      }
      FinishPut(id, PutOutcome{PutOutcome::Kind::kConflict, {},
                               absl::StrCat(t.message, " (gave up after ", op.attempt,
                                            " attempt", op.attempt == 1 ? "" : "s", ")")}, now);
      return;
    case K::kUnavailable:
      if (op.remotes_deferred) {
        // Only this cluster was asked: say why it fell short, not that the
        // clusters never asked did.
        t.message = absl::StrCat(OwnTally(op).message,
                                 " (the other clusters were not asked: this node's last attempt "
                                 "did not reach a majority of its own cluster either)");
      }
      if (!OwnMajorityOk(op)) local_first_ = true;
      AbortAttempt(op, now);
      if (op.epoch_moved && op.attempt < ctx_.config().max_attempts &&
          now - op.started < ctx_.config().max_retry_ms) {
        // Asked under an epoch some voter has left: again, under the newest.
        op.phase = PutOp::Phase::kBackoff;
        op.retry_at = now;
        ++ctx_.stats().put_retries;
        return;
      }
      FinishPut(id, PutOutcome{PutOutcome::Kind::kUnavailable, {},
                               absl::StrCat(t.message, "; aborted, nothing stored")}, now);
      return;
  }
}

// --- Ballot 0: record the commit at a majority of this cluster ----------------

void Coordinator::StartAccept(uint64_t id, TimeMs now) {
  PutOp& op = Get(id);
  op.phase = PutOp::Phase::kAccept;
  op.accept_started = now;
  op.accepts_ok = op.accepts_failed = 0;
  const int attempt = op.attempt;
  // Ballot 0 belongs to the coordinator alone, so no prepare is needed.
  const AcceptRequest accept{op.proposal, Ballot{0, ctx_.self()}, Decision::kCommit, op.key};
  for (const PeerId& v : Voters(op, ctx_.cluster())) {
    ctx_.Send(v, accept, now + ctx_.config().call_deadline_ms,
              [this, id, attempt](Response&& r, TimeMs t) {
                OnAcceptReply(id, attempt, std::move(r), t);
              });
  }
}

void Coordinator::OnAcceptReply(uint64_t id, int attempt, Response&& r, TimeMs now) {
  PutOp* put = Find(id, attempt, PutOp::Phase::kAccept);
  if (put == nullptr) return;
  auto* ar = std::get_if<AcceptResponse>(&r);
  if (ar != nullptr && ar->accepted) {
    ++put->accepts_ok;
  } else {
    ++put->accepts_failed;
  }
  const size_t n = Voters(*put, ctx_.cluster()).size();
  if (IsMajority(put->accepts_ok, n)) {
    CommitChosen(id, now);
  } else if (!IsMajority(n - put->accepts_failed, n)) {
    // Ballot 0 cannot win now; a recovery may already have chosen either
    // way. Learn (or settle) the decision before answering.
    put->phase = PutOp::Phase::kRecover;
    std::vector<DecisionFn> waiters = std::move(put->resolve_waiters);
    put->resolve_waiters.clear();
    const ProposalId p = put->proposal;
    for (DecisionFn& w : waiters) recovery_.StartRecovery(p, put->key, std::move(w), now);
    recovery_.StartRecovery(
        p, put->key,
        [this, id, attempt](std::optional<Decision> d, const std::string& reason, TimeMs t) {
          OnPutRecovered(id, attempt, d, reason, t);
        },
        now);
  }
}

void Coordinator::OnPutRecovered(uint64_t id, int attempt, std::optional<Decision> d,
                                 const std::string& reason, TimeMs now) {
  PutOp* op = Find(id, attempt, PutOp::Phase::kRecover);
  if (op == nullptr) return;
  if (!d) {
    FinishPut(id, PutOutcome{PutOutcome::Kind::kOutcomeUnknown, {},
                             absl::StrCat("the decision could not be learned: ", reason)},
              now);
    return;
  }
  if (*d == Decision::kCommit) {
    CommitChosen(id, now);
    return;
  }
  Fanout(*op, AbortOp{op->key, op->proposal}, now);
  FinishPut(id, PutOutcome{PutOutcome::Kind::kUnavailable, {},
                           "aborted by a concurrent recovery; nothing stored"}, now);
}

// --- Decisions and their fan-out ----------------------------------------------

void Coordinator::CommitChosen(uint64_t id, TimeMs now) {
  PutOp& op = Get(id);
  ctx_.RecordDecision(op.proposal, Decision::kCommit);
  NotifyResolveWaiters(op, Decision::kCommit, now);
  EmitPutDone(op, PutOutcome{PutOutcome::Kind::kOk, {}, {}}, now);
  Fanout(op, CommitOp{op.key, op.value, op.proposal, op.request_id}, now);
  ErasePut(id);
}

void Coordinator::AbortAttempt(PutOp& op, TimeMs now) {
  // No Paxos round is needed to abort: only the coordinator ever proposes
  // commit, at ballot 0, and it did not for this proposal. So no acceptor
  // holds an accepted commit, and any recovery adopts nothing and chooses
  // abort as well.
  ctx_.RecordDecision(op.proposal, Decision::kAbort);
  NotifyResolveWaiters(op, Decision::kAbort, now);
  Fanout(op, AbortOp{op.key, op.proposal}, now);
}

void Coordinator::NotifyResolveWaiters(PutOp& op, Decision d, TimeMs now) {
  std::vector<DecisionFn> waiters = std::move(op.resolve_waiters);
  op.resolve_waiters.clear();
  for (DecisionFn& fn : waiters) fn(d, "", now);
}

void Coordinator::Fanout(const PutOp& op, const ReplicaOp& rop, TimeMs now) {
  const TimeMs deadline = now + ctx_.config().call_deadline_ms;
  for (const PeerId& v : Voters(op, ctx_.cluster())) {
    ctx_.Send(v, HandleRequest{rop}, deadline, nullptr);
  }
  // Remote clusters go through the representative that answered the
  // reserve; a cluster that never answered still gets the decision, since
  // the reserve may have arrived without its answer.
  for (const auto& [cluster, rc] : op.remotes) {
    if (rc.candidates.empty()) continue;
    uint64_t fid = ctx_.NextOpId();
    FanoutOp& f = fanouts_[fid];
    f.op = rop;
    f.candidates = rc.candidates;
    f.start = rc.answered.value_or(0);
    SendFanout(fid, now);
  }
}

void Coordinator::SendFanout(uint64_t fid, TimeMs now) {
  auto found = fanouts_.find(fid);
  RP_CHECK(found != fanouts_.end(), "fan-out ", fid, " is not in flight");
  FanoutOp& f = found->second;
  const PeerId peer = f.candidates[(f.start + f.tried) % f.candidates.size()];
  ++f.tried;
  const TimeMs deadline = ctx_.config().call_deadline_ms;
  ctx_.Send(peer, ForwardRequest{f.op, RepresentativeBudget(deadline)}, now + deadline,
            [this, fid](Response&& r, TimeMs t) {
              auto it = fanouts_.find(fid);
              if (it == fanouts_.end()) return;
              // Once around the candidates; lease recovery and catch-up
              // repair whatever is still missed.
              if (std::holds_alternative<Unreachable>(r) &&
                  it->second.tried < it->second.candidates.size()) {
                SendFanout(fid, t);
                return;
              }
              fanouts_.erase(it);
            });
}

void Coordinator::RepairStaleReservation(const PutOp& op, const Vote& vote, TimeMs now) {
  if (vote.kind != Vote::Kind::kReserved) return;
  // A voter still holds the key for a proposal of this engine it knows
  // aborted (its own earlier attempt whose abort was lost): tell it, so the
  // next attempt is not blocked until the lease runs out. Only aborts are
  // repaired this way; a commit needs the value, which lease recovery has.
  // Only its own: a voter takes an abort only from the proposal's
  // coordinator or its representative (core/admission.h).
  if (vote.holder.coordinator != ctx_.self()) return;
  if (ctx_.FindDecision(vote.holder) != Decision::kAbort) return;
  ctx_.Send(vote.peer, HandleRequest{AbortOp{op.key, vote.holder}},
            now + ctx_.config().call_deadline_ms, nullptr);
}

// --- Answers ------------------------------------------------------------------

void Coordinator::FinishPut(uint64_t id, PutOutcome outcome, TimeMs now) {
  auto it = puts_.find(id);
  if (it == puts_.end()) return;
  PutOp& op = it->second;
  // Waiters for an undecided proposal (outcome unknown) must still be
  // answered; recovery will settle it.
  if (!op.resolve_waiters.empty()) {
    std::vector<DecisionFn> waiters = std::move(op.resolve_waiters);
    for (DecisionFn& w : waiters) {
      w(ctx_.FindDecision(op.proposal),
        absl::StrCat("coordinator gave up on proposal ", op.proposal.ToString()), now);
    }
  }
  EmitPutDone(op, std::move(outcome), now);
  ErasePut(id);
}

void Coordinator::EmitPutDone(const PutOp& op, PutOutcome outcome, TimeMs now) {
  PutTimings t;
  if (op.attempt > 0) {
    t.attempts = op.attempt;
    const TimeMs decided = op.accept_started != 0 ? op.accept_started : now;
    t.reserve_ms = decided - op.attempt_started;
    t.accept_ms = op.accept_started != 0 ? now - op.accept_started : 0;
    for (const auto& [cluster, rc] : op.remotes) {
      if (rc.settled && rc.settled_at - op.attempt_started >= t.slowest_ms) {
        t.slowest = cluster;
        t.slowest_ms = rc.settled_at - op.attempt_started;
      }
    }
  }
  if (op.system_done) {
    op.system_done(std::move(outcome), now);
    return;
  }
  // Joined puts are one client put with `op`: counted once, by op.
  for (uint64_t joined : op.joined) ctx_.Emit(PutDoneEffect{joined, outcome, t});
  EmitPutDone(op.put_id, std::move(outcome), t);
}

void Coordinator::ErasePut(uint64_t id) {
  auto it = puts_.find(id);
  if (it == puts_.end()) return;
  if (it->second.request_id != 0) {
    auto idx = puts_by_request_.find(std::make_pair(it->second.key, it->second.request_id));
    if (idx != puts_by_request_.end() && idx->second == id) puts_by_request_.erase(idx);
  }
  puts_.erase(it);
}

void Coordinator::EmitPutDone(uint64_t put_id, PutOutcome outcome, const PutTimings& timings) {
  EngineStats& s = ctx_.stats();
  switch (outcome.kind) {
    case PutOutcome::Kind::kOk: ++s.puts_ok; break;
    case PutOutcome::Kind::kKeyExists: ++s.puts_key_exists; break;
    case PutOutcome::Kind::kConflict: ++s.puts_conflict; break;
    case PutOutcome::Kind::kUnavailable: ++s.puts_unavailable; break;
    case PutOutcome::Kind::kInvalidArgument: ++s.puts_invalid; break;
    case PutOutcome::Kind::kOutcomeUnknown: ++s.puts_outcome_unknown; break;
  }
  ctx_.Emit(PutDoneEffect{put_id, std::move(outcome), timings});
}

void Coordinator::CheckInvariants() const {
  for (const auto& [id, op] : puts_) {
    RP_CHECK(op.attempt >= 1 && op.attempt <= ctx_.config().max_attempts, "put ", id,
             " is in attempt ", op.attempt);
    RP_CHECK(op.voters.contains(ctx_.cluster()), "put ", id,
             " has no voters of its own cluster");
    RP_CHECK(op.proposal.coordinator == ctx_.self() &&
                 op.proposal.incarnation == ctx_.config().incarnation,
             "put ", id, " runs proposal ", op.proposal.ToString(), ", not its own");
    // A reserve round ends in a tally once its last answer is in; only a
    // final tally (commit, key exists) may leave answers outstanding.
    RP_CHECK(op.phase != PutOp::Phase::kReserve || op.outstanding > 0, "put ", id,
             " is reserving with no answer outstanding");
    RP_CHECK(op.phase != PutOp::Phase::kBackoff || op.outstanding == 0, "put ", id,
             " backs off with ", op.outstanding, " answers outstanding");
    for (const auto& [cluster, rc] : op.remotes) {
      RP_CHECK(rc.in_flight <= rc.next && rc.next <= rc.candidates.size(), "put ", id,
               " asked ", rc.next, " of ", rc.candidates.size(), " representatives of ", cluster,
               " with ", rc.in_flight, " in flight");
      RP_CHECK(!rc.settled || !rc.hedge_at, "put ", id, " would hedge settled cluster ",
               cluster);
    }
  }
  for (const auto& [index, id] : puts_by_request_) {
    auto it = puts_.find(id);
    RP_CHECK(it != puts_.end(), "request index names put ", id, ", which is not in flight");
    RP_CHECK(it->second.key == index.first && it->second.request_id == index.second,
             "request index of put ", id, " does not match its key and request id");
  }
  for (const auto& [fid, f] : fanouts_) {
    RP_CHECK(!f.candidates.empty() && f.tried >= 1 && f.tried <= f.candidates.size(),
             "fan-out ", fid, " tried ", f.tried, " of ", f.candidates.size(), " candidates");
  }
}

}  // namespace replicator::core
