#include "core/recovery.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/coordinator.h"
#include "core/quorum.h"

namespace replicator::core {
namespace {

// Prepare/accept rounds a recovery proposer makes before it gives up.
constexpr int kMaxRecoveryRounds = 4;
// A resolve may take a prepare and an accept round, and a retry.
constexpr TimeMs kResolveDeadlineCalls = 4;

}  // namespace

// --- Recovery proposer --------------------------------------------------------

void Recovery::StartRecovery(const ProposalId& p, const Key& key, DecisionFn then, TimeMs now) {
  if (std::optional<Decision> d = ctx_.FindDecision(p)) {
    then(d, "", now);
    return;
  }
  if (auto it = recoveries_.find(p); it != recoveries_.end()) {
    if (it->second.key.empty()) it->second.key = key;
    it->second.waiters.push_back(std::move(then));
    return;
  }
  // decision(p)'s acceptors are fixed when p is made: the voters of the
  // epoch it was made under, whatever the cluster's voters are now.
  // A proposal stored before epochs existed (epoch 0, from an older data
  // dir) was counted over the founding voters.
  const Configuration* acceptors = membership_.At(p.epoch == 0 ? 1 : p.epoch);
  if (acceptors == nullptr) {
    then(std::nullopt,
         absl::StrCat("epoch ", p.epoch, " of cluster ", ctx_.cluster(), " (proposal ",
                      p.ToString(), ") is not known at ", ctx_.self()),
         now);
    return;
  }
  Proposer& op = recoveries_[p];
  op.proposal = p;
  op.key = key;
  op.voters = acceptors->voters;
  op.waiters.push_back(std::move(then));
  if (std::optional<AcceptorRecord> a = acceptors_.Find(p)) {
    op.max_round_seen = a->promised.round;
    if (a->accepted) op.max_round_seen = std::max(op.max_round_seen, a->accepted->ballot.round);
  }
  Prepare(op, now);
}

void Recovery::Prepare(Proposer& op, TimeMs now) {
  // Rounds never wrap: an acceptor takes none above kMaxBallotRound, so a
  // register whose rounds reached it (a promise made before that rule)
  // cannot be settled by a higher ballot.
  if (op.max_round_seen >= kMaxBallotRound) {
    FinishRecovery(op.proposal, std::nullopt,
                   absl::StrCat("decision of proposal ", op.proposal.ToString(),
                                " cannot be settled: ballot round ", op.max_round_seen,
                                " seen, no higher round may be made"),
                   now);
    return;
  }
  ++op.rounds;
  op.ballot = Ballot{op.max_round_seen + 1, ctx_.self()};
  op.max_round_seen = op.ballot.round;
  op.phase = Proposer::Phase::kPrepare;
  op.granted = op.failed = 0;
  op.rejected = false;
  op.highest.reset();
  if (op.voters.empty()) {
    FinishRecovery(op.proposal, std::nullopt,
                   absl::StrCat("cluster ", ctx_.cluster(), " has no voters"), now);
    return;
  }
  const ProposalId p = op.proposal;
  const uint64_t round = op.ballot.round;
  const std::vector<PeerId> voters = op.voters;
  for (const PeerId& v : voters) {
    ctx_.Send(v, PrepareRequest{p, Ballot{round, ctx_.self()}, op.key},
              now + ctx_.config().call_deadline_ms, [this, p, round](Response&& r, TimeMs t) {
                OnPrepareReply(p, round, std::move(r), t);
              });
  }
}

void Recovery::Refused(Proposer& op, const char* step, const Ballot& higher) {
  ++op.failed;
  op.rejected = true;
  op.max_round_seen = std::max(op.max_round_seen, higher.round);
  op.last_error =
      absl::StrCat(step, " refused: ballot round ", higher.round, " promised to ", higher.proposer);
}

void Recovery::OnPrepareReply(const ProposalId& p, uint64_t round, Response&& r, TimeMs now) {
  auto it = recoveries_.find(p);
  if (it == recoveries_.end()) return;
  Proposer& op = it->second;
  if (op.ballot.round != round || op.phase != Proposer::Phase::kPrepare) return;
  if (auto* pr = std::get_if<PrepareResponse>(&r)) {
    if (pr->promised && pr->decided) {
      // The acceptor has p's key committed by p: commit was chosen.
      FinishRecovery(p, Decision::kCommit, "", now);
      return;
    }
    if (pr->promised) {
      ++op.granted;
      if (pr->accepted && (!op.highest || op.highest->ballot < pr->accepted->ballot)) {
        op.highest = pr->accepted;
      }
    } else {
      Refused(op, "prepare", pr->higher);
    }
  } else {
    ++op.failed;
    op.last_error = ReasonOf(r);
  }
  const size_t n = op.voters.size();
  if (IsMajority(op.granted, n)) {
    // Adopt the highest accepted decision; none accepted means the
    // coordinator's ballot 0 (the only commit proposal) was not chosen.
    op.decision = op.highest ? op.highest->decision : Decision::kAbort;
    Accept(op, now);
  } else if (!IsMajority(n - op.failed, n)) {
    RoundFailed(p, now);
  }
}

void Recovery::Accept(Proposer& op, TimeMs now) {
  op.phase = Proposer::Phase::kAccept;
  op.granted = op.failed = 0;
  op.rejected = false;
  const ProposalId p = op.proposal;
  const uint64_t round = op.ballot.round;
  const Decision d = op.decision;
  const std::vector<PeerId> voters = op.voters;
  for (const PeerId& v : voters) {
    ctx_.Send(v, AcceptRequest{p, Ballot{round, ctx_.self()}, d, op.key},
              now + ctx_.config().call_deadline_ms, [this, p, round](Response&& r, TimeMs t) {
                OnAcceptReply(p, round, std::move(r), t);
              });
  }
}

void Recovery::OnAcceptReply(const ProposalId& p, uint64_t round, Response&& r, TimeMs now) {
  auto it = recoveries_.find(p);
  if (it == recoveries_.end()) return;
  Proposer& op = it->second;
  if (op.ballot.round != round || op.phase != Proposer::Phase::kAccept) return;
  if (auto* ar = std::get_if<AcceptResponse>(&r)) {
    if (ar->decided) {
      // The acceptor has p's key committed by p: commit was chosen.
      FinishRecovery(p, Decision::kCommit, "", now);
      return;
    }
    if (ar->accepted) {
      ++op.granted;
    } else {
      Refused(op, "accept", ar->promised);
    }
  } else {
    ++op.failed;
    op.last_error = ReasonOf(r);
  }
  const size_t n = op.voters.size();
  if (IsMajority(op.granted, n)) {
    FinishRecovery(p, op.decision, "", now);
  } else if (!IsMajority(n - op.failed, n)) {
    RoundFailed(p, now);
  }
}

void Recovery::RoundFailed(const ProposalId& p, TimeMs now) {
  auto it = recoveries_.find(p);
  RP_CHECK(it != recoveries_.end(), "round of recovery ", p.ToString(), " failed after it ended");
  Proposer& op = it->second;
  // Only a competing proposer is worth outbidding; lost answers would be
  // lost again at once.
  if (op.rejected && op.rounds < kMaxRecoveryRounds) {
    Prepare(op, now);
    return;
  }
  FinishRecovery(p, std::nullopt,
                 absl::StrCat("decision of proposal ", p.ToString(), " not settled in cluster ",
                              ctx_.cluster(), " after ", op.rounds, " round",
                              op.rounds == 1 ? "" : "s", " over ", op.voters.size(),
                              " voters; last error: ", op.last_error),
                 now);
}

template <typename Ops>
void Recovery::Finish(Ops& ops, const ProposalId& p, std::optional<Decision> d,
                      const std::string& reason, TimeMs now) {
  auto it = ops.find(p);
  if (it == ops.end()) return;
  std::vector<DecisionFn> waiters = std::move(it->second.waiters);
  ops.erase(it);
  if (d) ctx_.RecordDecision(p, *d);
  for (DecisionFn& fn : waiters) fn(d, reason, now);
}

void Recovery::FinishRecovery(const ProposalId& p, std::optional<Decision> d,
                              const std::string& reason, TimeMs now) {
  Finish(recoveries_, p, d, reason, now);
}

// --- Resolve: decision(p) from p's coordinator cluster ------------------------

void Recovery::ResolveRemote(const ProposalId& p, const Key& key, DecisionFn then, TimeMs now) {
  if (std::optional<Decision> d = ctx_.FindDecision(p)) {
    then(d, "", now);
    return;
  }
  if (auto it = resolves_.find(p); it != resolves_.end()) {
    if (it->second.key.empty()) it->second.key = key;
    it->second.waiters.push_back(std::move(then));
    return;
  }
  const Member* coordinator = ctx_.topology().Find(p.coordinator);
  // A coordinator the membership view does not show yet (of a cluster
  // founded since, known here from its configurations) is found among the
  // voters of the clusters known.
  std::optional<ClusterId> cluster;
  if (coordinator != nullptr) cluster = coordinator->cluster;
  for (const Configuration& c : membership_.Newest()) {
    if (!cluster && c.Has(p.coordinator)) cluster = c.cluster;
  }
  if (!cluster) {
    then(std::nullopt,
         absl::StrCat("coordinator ", p.coordinator, " of proposal ", p.ToString(),
                      " is not in the membership"),
         now);
    return;
  }
  // The coordinator knows its own decisions best; any voter of its cluster
  // can settle the decision by recovery. One shown down is asked last.
  std::vector<PeerId> candidates;
  const bool coordinator_down = coordinator != nullptr && coordinator->state == PeerState::kDown;
  if (!coordinator_down) candidates.push_back(p.coordinator);
  const Configuration* known = membership_.Latest(*cluster);
  for (const PeerId& v : known != nullptr ? known->voters : ctx_.topology().Voters(*cluster)) {
    if (v != p.coordinator) candidates.push_back(v);
  }
  if (coordinator_down) candidates.push_back(p.coordinator);
  if (candidates.empty()) {
    then(std::nullopt, absl::StrCat("cluster ", *cluster, " has no voters"), now);
    return;
  }
  Resolve& op = resolves_[p];
  op.key = key;
  op.candidates = std::move(candidates);
  op.waiters.push_back(std::move(then));
  SendResolve(p, now);
}

void Recovery::SendResolve(const ProposalId& p, TimeMs now) {
  auto it = resolves_.find(p);
  RP_CHECK(it != resolves_.end(), "resolve of ", p.ToString(), " sent after it ended");
  const PeerId peer = it->second.candidates[it->second.next];
  ctx_.Send(peer, ResolveRequest{p, it->second.key},
            now + kResolveDeadlineCalls * ctx_.config().call_deadline_ms,
            [this, p, peer](Response&& r, TimeMs t) { OnResolveReply(p, peer, std::move(r), t); });
}

void Recovery::OnResolveReply(const ProposalId& p, const PeerId& peer, Response&& r, TimeMs now) {
  auto it = resolves_.find(p);
  if (it == resolves_.end()) return;
  auto* rr = std::get_if<ResolveResponse>(&r);
  if (rr != nullptr && rr->decision) {
    FinishResolve(p, rr->decision, rr->reason, now);
    return;
  }
  // No decision from this one (unreachable, no majority there, or it does
  // not know p's epoch yet): the next candidate may do better.
  Resolve& cur = it->second;
  if (++cur.next < cur.candidates.size()) {
    SendResolve(p, now);
    return;
  }
  FinishResolve(p, std::nullopt,
                absl::StrCat("no node of the coordinator's cluster resolved ", p.ToString(),
                             "; last: ", peer, ": ", rr != nullptr ? rr->reason : ReasonOf(r)),
                now);
}

void Recovery::FinishResolve(const ProposalId& p, std::optional<Decision> d,
                             const std::string& reason, TimeMs now) {
  Finish(resolves_, p, d, reason, now);
}

void Recovery::HandleResolve(uint64_t inbound_id, const ResolveRequest& request, TimeMs now) {
  const ProposalId& p = request.proposal;
  DecisionFn answer = [this, inbound_id](std::optional<Decision> d, const std::string& reason,
                                         TimeMs) {
    ResolveResponse resp;
    resp.decision = d;
    if (!d) resp.reason = reason;
    ctx_.Respond(inbound_id, std::move(resp));
  };
  if (std::optional<Decision> d = ctx_.FindDecision(p)) {
    answer(d, "", now);
    return;
  }
  // Our own proposal, still being decided: wait for the coordinator's own
  // decision rather than abort it from under the put.
  RP_CHECK(coordinator_ != nullptr, "recovery has no coordinator");
  if (coordinator_->AwaitOwnDecision(p, answer)) return;
  // decision(p) lives in the acceptors of p's coordinator cluster only.
  const Member* coordinator = ctx_.topology().Find(p.coordinator);
  if (coordinator == nullptr) {
    answer(std::nullopt,
           absl::StrCat("coordinator ", p.coordinator, " of proposal ", p.ToString(),
                        " is not in this node's membership view"),
           now);
    return;
  }
  if (coordinator->cluster != ctx_.cluster()) {
    answer(std::nullopt,
           absl::StrCat("proposal ", p.ToString(), " belongs to cluster ", coordinator->cluster,
                        ", not to this node's cluster ", ctx_.cluster()),
           now);
    return;
  }
  StartRecovery(p, request.key, std::move(answer), now);
}

// --- Lease recovery -----------------------------------------------------------

void Recovery::RecoverLeases(TimeMs now) {
  for (const Key& key : replica_.DueForRecovery(now)) RecoverLease(key, now);
}

void Recovery::RecoverLease(const Key& key, TimeMs now) {
  const Replica::Entry* e = replica_.Find(key);
  if (e == nullptr) return;
  const ProposalId p = e->reservation.proposal;
  if (std::optional<Decision> d = ctx_.FindDecision(p)) {
    replica_.ApplyDecision(key, p, *d);
    return;
  }
  if (ctx_.topology().Find(p.coordinator) == nullptr) {
    // Nobody to ask; a later membership view may know the coordinator. One
    // that no view and no configuration shows, lease after lease, is no
    // node of the federation (a forged reserve, before peers were
    // authenticated): its reservation is dropped rather than kept forever.
    bool configured = false;
    for (const Configuration& c : membership_.Known()) configured |= c.Has(p.coordinator);
    const int orphan_leases = configured ? 0 : e->orphan_leases + 1;
    if (orphan_leases >= kOrphanLeases) {
      replica_.DropOrphan(key);
      return;
    }
    replica_.SetOrphanLeases(key, orphan_leases);
    replica_.SetRecovery(key, false, now + ctx_.config().lease_ms);
    return;
  }
  replica_.SetOrphanLeases(key, 0);
  replica_.SetRecovery(key, true, e->recover_at);
  ResolveRemote(
      p, key,
      [this, key, p](std::optional<Decision> d, const std::string&, TimeMs t) {
        const Replica::Entry* held = replica_.Find(key);
        if (held == nullptr || !(held->reservation.proposal == p)) return;
        if (!d) {
          replica_.SetRecovery(key, false, t + ctx_.config().lease_ms);  // try again later
          return;
        }
        replica_.SetRecovery(key, false, held->recover_at);
        replica_.ApplyDecision(key, p, *d);
      },
      now);
}

void Recovery::CheckInvariants() const {
  for (const auto& [p, op] : recoveries_) {
    RP_CHECK(op.proposal == p, "recovery of ", op.proposal.ToString(), " filed under ",
             p.ToString());
    RP_CHECK(!op.waiters.empty(), "recovery of ", p.ToString(), " has nobody waiting");
    RP_CHECK(op.rounds >= 1 && op.rounds <= kMaxRecoveryRounds, "recovery of ", p.ToString(),
             " is in round ", op.rounds);
    RP_CHECK(op.ballot.round >= 1 && op.ballot.proposer == ctx_.self(), "recovery of ",
             p.ToString(), " runs a ballot that is not its own");
    RP_CHECK(op.granted + op.failed <= op.voters.size(), "recovery of ", p.ToString(),
             " counted more answers than voters");
  }
  for (const auto& [p, op] : resolves_) {
    RP_CHECK(!op.waiters.empty(), "resolve of ", p.ToString(), " has nobody waiting");
    RP_CHECK(op.next < op.candidates.size(), "resolve of ", p.ToString(),
             " is past its last candidate");
  }
}

}  // namespace replicator::core
