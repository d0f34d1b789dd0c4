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

PrepareStep OnPrepare(const AcceptorRecord* current, const PrepareRequest& request) {
  PrepareStep step;
  step.refusal =
      CheckBallotRound(request.ballot.round, current != nullptr ? current->promised.round : 0);
  if (step.refusal) return step;
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

AcceptStep OnAccept(const AcceptorRecord* current, const AcceptRequest& request) {
  AcceptStep step;
  step.refusal =
      CheckBallotRound(request.ballot.round, current != nullptr ? current->promised.round : 0);
  if (step.refusal) return step;
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

void Acceptors::HandlePrepare(uint64_t inbound_id, const PrepareRequest& request) {
  std::optional<AcceptorRecord> current = Find(request.proposal);
  PrepareStep step = OnPrepare(current ? &*current : nullptr, request);
  if (step.refusal) {
    ++ctx_.stats().ballot_refusals;
    ctx_.Respond(inbound_id, Unreachable{absl::StrCat("refused prepare: ", *step.refusal)});
    return;
  }
  Apply(inbound_id, request.proposal, step.updated, std::move(step.response));
}

void Acceptors::HandleAccept(uint64_t inbound_id, const AcceptRequest& request) {
  std::optional<AcceptorRecord> current = Find(request.proposal);
  AcceptStep step = OnAccept(current ? &*current : nullptr, request);
  if (step.refusal) {
    ++ctx_.stats().ballot_refusals;
    ctx_.Respond(inbound_id, Unreachable{absl::StrCat("refused accept: ", *step.refusal)});
    return;
  }
  Apply(inbound_id, request.proposal, step.updated, std::move(step.response));
}

void Acceptors::Apply(uint64_t inbound_id, const ProposalId& proposal,
                      const std::optional<AcceptorRecord>& updated, Response response) {
  // A promise or an accept is answered only once it is durable.
  if (!updated) {
    ctx_.Respond(inbound_id, std::move(response));
    return;
  }
  uint64_t w = ctx_.Mutate(PutAcceptor{*updated});
  pending_[proposal] = Pending{*updated, w};
  ctx_.AfterWrite(w, [this, inbound_id, proposal, w, resp = std::move(response)]() {
    // Durable: storage answers for it from now on.
    if (auto it = pending_.find(proposal); it != pending_.end() && it->second.write == w) {
      pending_.erase(it);
    }
    ctx_.Respond(inbound_id, resp);
  });
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
