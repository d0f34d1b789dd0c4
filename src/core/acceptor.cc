#include "core/acceptor.h"

#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace replicator::core {

std::optional<std::string> CheckBallotRound(uint64_t round, uint64_t promised_round) {
  if (round > kMaxBallotRound) {
    return absl::StrCat("ballot round ", round, " is above the highest round taken (2^62)");
  }
  if (round > promised_round && round - promised_round > kMaxBallotStep) {
    return absl::StrCat("ballot round ", round, " is more than 2^20 above the round promised (",
                        promised_round, ")");
  }
  return std::nullopt;
}

namespace {

// What a decided register answers for: commit, accepted at the
// coordinator's ballot 0 (the only ballot that proposes commit first).
AcceptedValue DecidedCommit(const ProposalId& p) {
  return AcceptedValue{Ballot{0, p.coordinator}, Decision::kCommit};
}

}  // namespace

PrepareStep OnPrepare(const AcceptorRecord* current, const PrepareRequest& request, bool decided) {
  PrepareStep step;
  if (decided) {
    step.response.promised = true;
    step.response.accepted = DecidedCommit(request.proposal);
    step.response.decided = true;
    step.drop = current != nullptr;
    return step;
  }
  step.refusal =
      CheckBallotRound(request.ballot.round, current != nullptr ? current->promised.round : 0);
  if (step.refusal) return step;
  if (current == nullptr && request.key.empty()) {
    step.refusal =
        "a prepare without its key, for a register with no record here (its record "
        "may have been dropped when the key committed)";
    return step;
  }
  if (current != nullptr && !(current->promised < request.ballot)) {
    step.response.promised = false;
    step.response.higher = current->promised;
    return step;
  }
  AcceptorRecord record;
  if (current != nullptr) record = *current;
  record.proposal = request.proposal;
  record.promised = request.ballot;
  step.response.promised = true;
  step.response.accepted = record.accepted;
  step.updated = std::move(record);
  return step;
}

AcceptStep OnAccept(const AcceptorRecord* current, const AcceptRequest& request, bool decided) {
  AcceptStep step;
  if (decided) {
    // An abort can come only from a proposer outbid since it prepared (a
    // higher ballot chose commit), which a record would refuse by ballot.
    step.response.accepted = request.decision == Decision::kCommit;
    if (!step.response.accepted) step.response.promised = request.ballot;
    step.response.decided = true;
    step.drop = current != nullptr;
    return step;
  }
  step.refusal =
      CheckBallotRound(request.ballot.round, current != nullptr ? current->promised.round : 0);
  if (step.refusal) return step;
  if (current == nullptr && request.key.empty() && request.decision != Decision::kCommit) {
    step.refusal =
        "an accept of abort without its key, for a register with no record here (its "
        "record may have been dropped when the key committed)";
    return step;
  }
  if (current != nullptr && request.ballot < current->promised) {
    step.response.accepted = false;
    step.response.promised = current->promised;
    return step;
  }
  AcceptorRecord record;
  record.proposal = request.proposal;
  record.promised = request.ballot;
  record.accepted = AcceptedValue{request.ballot, request.decision};
  step.response.accepted = true;
  step.updated = std::move(record);
  return step;
}

bool Acceptors::Decided(const ProposalId& p, const Key& key) const {
  if (key.empty() || ctx_.config().unsafe_forget_decided) return false;
  // A reservation held for p means the key is not committed by p here: a
  // commit by p drops it in the same write. That answers the ballot-0
  // accept of every put without a storage read.
  if (const Replica::Entry* held = replica_.Find(key);
      held != nullptr && held->reservation.proposal == p) {
    return false;
  }
  std::optional<Replica::Committed> c = replica_.LookupCommitted(key);
  return c && c->proposal == p;
}

void Acceptors::HandlePrepare(uint64_t inbound_id, const PrepareRequest& request) {
  const bool decided = Decided(request.proposal, request.key);
  std::optional<AcceptorRecord> current = Find(request.proposal);
  PrepareStep step = OnPrepare(current ? &*current : nullptr, request, decided);
  if (step.refusal) {
    ++ctx_.stats().ballot_refusals;
    ctx_.Respond(inbound_id, Unreachable{absl::StrCat("refused prepare: ", *step.refusal)});
    return;
  }
  Apply(inbound_id, request.proposal, step.updated, !current, step.drop, std::move(step.response));
}

void Acceptors::HandleAccept(uint64_t inbound_id, const AcceptRequest& request) {
  const bool decided = Decided(request.proposal, request.key);
  std::optional<AcceptorRecord> current = Find(request.proposal);
  AcceptStep step = OnAccept(current ? &*current : nullptr, request, decided);
  if (step.refusal) {
    ++ctx_.stats().ballot_refusals;
    ctx_.Respond(inbound_id, Unreachable{absl::StrCat("refused accept: ", *step.refusal)});
    return;
  }
  Apply(inbound_id, request.proposal, step.updated, !current, step.drop, std::move(step.response));
}

void Acceptors::Apply(uint64_t inbound_id, const ProposalId& proposal,
                      const std::optional<AcceptorRecord>& updated, bool new_register, bool drop,
                      Response response) {
  // A promise or an accept is answered only once it is durable. A decided
  // register's answer promises nothing this node must remember: commit was
  // chosen before the key could commit here, whether or not that commit is
  // durable yet.
  if (drop) Drop(proposal);
  if (!updated) {
    ctx_.Respond(inbound_id, std::move(response));
    return;
  }
  uint64_t w = ctx_.Mutate(PutAcceptor{*updated, new_register});
  pending_[proposal] = Pending{*updated, w};
  ctx_.AfterWrite(w, [this, inbound_id, proposal, w, resp = std::move(response)]() {
    // Durable: storage answers for it from now on.
    if (auto it = pending_.find(proposal); it != pending_.end() && it->second.write == w) {
      pending_.erase(it);
    }
    ctx_.Respond(inbound_id, resp);
  });
}

void Acceptors::OnCommitted(const ProposalId& p) {
  if (p.coordinator.empty() || !MayHold(p)) return;
  if (pending_.contains(p) || ctx_.committed().HasAcceptor(p)) Drop(p);
}

bool Acceptors::MayHold(const ProposalId& p) const {
  if (pending_.contains(p)) return true;
  // decision(p)'s acceptors are the voters of epoch p.epoch of p's
  // coordinator's cluster (epoch 0: stored before epochs, the founders).
  const Member* coordinator = ctx_.topology().Find(p.coordinator);
  if (coordinator != nullptr && coordinator->cluster != ctx_.cluster()) return false;
  const Configuration* acceptors = membership_.At(p.epoch == 0 ? 1 : p.epoch);
  return acceptors == nullptr || acceptors->Has(ctx_.self());
}

void Acceptors::Drop(const ProposalId& p) {
  ctx_.Mutate(DeleteAcceptor{p});
  pending_.erase(p);
  ++ctx_.stats().acceptor_records_dropped;
}

std::optional<AcceptorRecord> Acceptors::Find(const ProposalId& p) const {
  if (auto it = pending_.find(p); it != pending_.end()) return it->second.record;
  return ctx_.committed().GetAcceptor(p);
}

void Acceptors::CheckInvariants() const {
  for (const auto& [p, a] : pending_) {
    RP_CHECK(a.record.proposal == p, "acceptor record of ", a.record.proposal.ToString(),
             " filed under ", p.ToString());
    RP_CHECK(ctx_.WritePending(a.write), "acceptor record of ", p.ToString(),
             " waits for write ", a.write, ", which is not in flight");
    RP_CHECK(!a.record.accepted || !(a.record.promised < a.record.accepted->ballot),
             "acceptor of ", p.ToString(), " accepted above its promise");
  }
}

}  // namespace replicator::core
