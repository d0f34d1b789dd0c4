// Paxos acceptor for the decision registers decision(p) of this node: the
// rules as pure functions over one register's record (thread-safe), and
// Acceptors, the engine's role that serves prepare and accept with them,
// persists every changed record (PutAcceptor) and answers only once the
// write is durable. Acceptors is part of one Engine; single-threaded.
#pragma once

#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "core/context.h"
#include "core/messages.h"

namespace replicator::core {

// Ballot rounds an acceptor takes. No honest proposer comes near the cap
// (each recovery round adds one to the highest round it saw), so a round
// above it, or more than kMaxBallotStep above the register's promise, is
// an attempt to lock the register (a promise at 2^64-1 could never be
// outbid) and is refused, never promised. A proposer never makes a round
// above kMaxBallotRound, so its increments cannot wrap.
inline constexpr uint64_t kMaxBallotRound = uint64_t{1} << 62;
inline constexpr uint64_t kMaxBallotStep = uint64_t{1} << 20;

// Empty when an acceptor whose register promised `promised_round` (0:
// nothing promised) may consider a prepare or accept at `round`, else why
// not.
std::optional<std::string> CheckBallotRound(uint64_t round, uint64_t promised_round);

// `refusal` is set when the request was refused outright (an absurd
// ballot): the call is answered as failed with it, and nothing changes.
struct PrepareStep {
  PrepareResponse response;
  std::optional<AcceptorRecord> updated;  // set iff the record changed
  std::optional<std::string> refusal;
};
struct AcceptStep {
  AcceptResponse response;
  std::optional<AcceptorRecord> updated;  // set iff the record changed
  std::optional<std::string> refusal;
};

// `current` is null when nothing was promised for the register yet (lower
// than any ballot). A round CheckBallotRound refuses is refused. Promise
// iff b > promised; the answer carries the
// accepted value, if any. Otherwise refuse, naming the promised ballot.
PrepareStep OnPrepare(const AcceptorRecord* current, const PrepareRequest& request);

// Accept iff b >= promised (so ballot 0 of the coordinator is accepted by a
// fresh register without a prepare): promised = accepted ballot = b.
// Otherwise refuse, naming the promised ballot.
AcceptStep OnAccept(const AcceptorRecord* current, const AcceptRequest& request);

// Serves prepare and accept. Durable records are read through
// CommittedView::GetAcceptor, so memory holds only the records still being
// written, however many proposals were ever decided.
// TODO(perf): records stay on disk forever. They may go only once no
// recovery can ask for them: once every voter holding a reservation of the
// proposal has applied its decision and no resolve is in flight.
class Acceptors {
 public:
  explicit Acceptors(Context& ctx) : ctx_(ctx) {}

  void HandlePrepare(uint64_t inbound_id, const PrepareRequest& request);
  void HandleAccept(uint64_t inbound_id, const AcceptRequest& request);
  // The current record of decision(p): in flight here, else durable.
  std::optional<AcceptorRecord> Find(const ProposalId& p) const;

  void CheckInvariants() const;

 private:
  struct Pending {
    AcceptorRecord record;
    uint64_t write = 0;  // the write that makes `record` durable
  };
  // Persists `updated` (if set) and answers `response` once it is durable.
  void Apply(uint64_t inbound_id, const ProposalId& proposal,
             const std::optional<AcceptorRecord>& updated, Response response);

  Context& ctx_;
  absl::flat_hash_map<ProposalId, Pending> pending_;
};

}  // namespace replicator::core
