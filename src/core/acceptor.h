// Paxos acceptor for the decision registers decision(p) of this node: the
// rules as pure functions over one register's record (thread-safe), and
// Acceptors, the engine's role that serves prepare and accept with them,
// persists every changed record (PutAcceptor), deletes it once the key is
// committed here by its proposal (DeleteAcceptor), and answers only once
// the write is durable. Acceptors is part of one Engine; single-threaded.
#pragma once

#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "core/context.h"
#include "core/membership.h"
#include "core/messages.h"
#include "core/replica.h"

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
// ballot, or a request this acceptor cannot answer safely): the call is
// answered as failed with it, and nothing changes. `drop` is set when the
// register is decided and its record, held still, is to be deleted.
struct PrepareStep {
  PrepareResponse response;
  std::optional<AcceptorRecord> updated;  // set iff the record changed
  std::optional<std::string> refusal;
  bool drop = false;
};
struct AcceptStep {
  AcceptResponse response;
  std::optional<AcceptorRecord> updated;  // set iff the record changed
  std::optional<std::string> refusal;
  bool drop = false;
};

// `current` is null when nothing is recorded for the register (nothing was
// promised yet, or the record was dropped). `decided` is true when this
// node has the request's key committed by the request's proposal: commit
// was chosen, and the record, if any, may go (see Acceptors).
//
// Decided: promise, answering an accepted commit at ballot 0 and
// `decided`; nothing is recorded. Else a round CheckBallotRound refuses is
// refused. Else a request without a key (from an older build) finding no
// record is refused: the register may be one whose record was dropped.
// Else promise iff b > promised; the answer carries the accepted value, if
// any. Otherwise refuse, naming the promised ballot.
PrepareStep OnPrepare(const AcceptorRecord* current, const PrepareRequest& request, bool decided);

// Decided: accept a commit without recording it; reject an abort (an
// outbid proposer's), answering `decided`. Else as
// OnPrepare for the ballot and for a keyless request, which is refused
// only for an abort (accepting commit is safe on any register). Accept iff
// b >= promised (so ballot 0 of the coordinator is accepted by a fresh
// register without a prepare): promised = accepted ballot = b. Otherwise
// refuse, naming the promised ballot.
AcceptStep OnAccept(const AcceptorRecord* current, const AcceptRequest& request, bool decided);

// Serves prepare and accept, and deletes the record of decision(p) once
// this node commits p's key by p: the committed entry, which names p,
// answers for the register from then on.
//
// Why that is safe: a node commits a key by p only once commit was chosen
// for decision(p) (from p's coordinator, a resolve, or a peer that had it
// committed by p). Every accepted value of a register whose commit was
// chosen is commit (ballot 0 proposes only commit, and every higher
// proposer adopts it), so an acceptor that answers "decided" as an accepted
// commit reports what Paxos would, and refusing every abort only refuses
// what no honest proposer sends. Requests carry the key for that; one
// without it is answered only from a record (OnPrepare, OnAccept).
//
// Records that stay: those of proposals aborted by a recovery (a late
// ballot-0 accept must still find the promise), and those whose key was
// committed here without its proposal (an entry pulled from an older
// build). Durable records are read through CommittedView::GetAcceptor, so
// memory holds only the records still being written.
class Acceptors {
 public:
  Acceptors(Context& ctx, const Replica& replica, const Membership& membership)
      : ctx_(ctx), replica_(replica), membership_(membership) {}

  void HandlePrepare(uint64_t inbound_id, const PrepareRequest& request);
  void HandleAccept(uint64_t inbound_id, const AcceptRequest& request);
  // Replica's hook: a key was committed here by `p` (empty: not known), in
  // the current input. Deletes the record of decision(p), in the same write.
  void OnCommitted(const ProposalId& p);
  // The current record of decision(p): in flight here, else durable. A
  // record being deleted may still be read from storage until the delete is
  // durable; Decided() is asked first wherever that matters.
  std::optional<AcceptorRecord> Find(const ProposalId& p) const;
  // Whether `key` is committed here by `p`.
  bool Decided(const ProposalId& p, const Key& key) const;

  void CheckInvariants() const;

 private:
  struct Pending {
    AcceptorRecord record;
    uint64_t write = 0;  // the write that makes `record` durable
  };
  // Persists `updated` (if set; `new_register`: no record existed), or
  // deletes the record (`drop`), and answers `response` once that is
  // durable.
  void Apply(uint64_t inbound_id, const ProposalId& proposal,
             const std::optional<AcceptorRecord>& updated, bool new_register, bool drop,
             Response response);
  // Whether this node may hold a record of decision(p): it is one of the
  // register's acceptors, or a record is being written. Saves a storage
  // read for every commit of another cluster's proposal.
  bool MayHold(const ProposalId& p) const;
  void Drop(const ProposalId& p);

  Context& ctx_;
  const Replica& replica_;
  const Membership& membership_;
  absl::flat_hash_map<ProposalId, Pending> pending_;
};

}  // namespace replicator::core
