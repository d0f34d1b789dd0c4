// Messages between engines (one Request, one Response per call) and the
// durable mutations an engine asks storage to make. These mirror the Peer
// interface of schema/replicator.capnp; src/net translates at the edge.
// Plain values; thread-compatible.
#pragma once

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/types.h"

namespace replicator::core {

// --- Operations on one node's replica --------------------------------------

// `request_id` is the client's id for the put (0: none). It travels with the
// value and is stored with the committed entry, so a client retrying the
// same put learns that it was applied (see PutOutcome).
struct ReserveOp {
  Key key;
  Value value;
  ProposalId proposal;
  uint64_t request_id = 0;
};
struct CommitOp {
  Key key;
  Value value;
  ProposalId proposal;
  uint64_t request_id = 0;
};
struct AbortOp {
  Key key;
  ProposalId proposal;
};
using ReplicaOp = std::variant<ReserveOp, CommitOp, AbortOp>;

// --- Requests ---------------------------------------------------------------

// Apply `op` at the receiving node only. Answer: HandleResponse.
struct HandleRequest {
  ReplicaOp op;
};
// Representative: apply `op` at every voter of the receiver's cluster,
// itself included, within `deadline_ms` of receipt. Answer: ForwardResponse.
struct ForwardRequest {
  ReplicaOp op;
  uint32_t deadline_ms = 0;
};
// Paxos phase 2 on decision(proposal). Answer: AcceptResponse.
struct AcceptRequest {
  ProposalId proposal;
  Ballot ballot;
  Decision decision = Decision::kAbort;
};
// Paxos phase 1 on decision(proposal). Answer: PrepareResponse.
struct PrepareRequest {
  ProposalId proposal;
  Ballot ballot;
};
// The receiver's view of `key`. Answer: ReadResponse.
struct ReadRequest {
  Key key;
};
// To a node of the proposal's coordinator cluster: learn or settle
// decision(proposal). Answer: ResolveResponse.
struct ResolveRequest {
  ProposalId proposal;
};

// Catch-up: the receiver's committed-set digest (kDigestBuckets values).
// Answer: DigestResponse.
struct DigestRequest {};
// Catch-up: the receiver's committed entries of one bucket, in key order,
// after `after` (exclusive; empty: from the start), at most about
// `max_bytes` of keys and values. Answer: PullResponse.
struct PullRequest {
  uint32_t bucket = 0;
  Key after;
  uint32_t max_bytes = 4 << 20;
};

using Request = std::variant<HandleRequest, ForwardRequest, AcceptRequest, PrepareRequest,
                             ReadRequest, ResolveRequest, DigestRequest, PullRequest>;

// --- Responses --------------------------------------------------------------

struct HandleResponse {
  Vote vote;
};
struct ForwardResponse {
  std::vector<Vote> votes;
};
struct AcceptResponse {
  bool accepted = false;
  Ballot promised;  // when !accepted: the higher ballot promised
};
struct AcceptedValue {
  Ballot ballot;
  Decision decision = Decision::kAbort;
};
struct PrepareResponse {
  bool promised = false;
  Ballot higher;                          // when !promised
  std::optional<AcceptedValue> accepted;  // when promised
};
struct ReadResponse {
  enum class Kind : uint8_t { kCommitted, kReserved, kAbsent };
  Kind kind = Kind::kAbsent;
  Value value;        // kCommitted: the value; kReserved: the reserved value
  ProposalId holder;  // kReserved
};
struct ResolveResponse {
  std::optional<Decision> decision;  // empty: unavailable
  std::string reason;                // why unavailable
};
struct DigestResponse {
  std::vector<uint64_t> buckets;
};
struct PulledEntry {
  Key key;
  Value value;
  uint64_t request_id = 0;
};
struct PullResponse {
  std::vector<PulledEntry> entries;
  bool complete = true;  // false: more entries follow the last one
};
// The call did not complete: transport failure or deadline. Delivered by the
// driver, never sent by a peer.
struct Unreachable {
  std::string reason;
};

using Response = std::variant<HandleResponse, ForwardResponse, AcceptResponse, PrepareResponse,
                              ReadResponse, ResolveResponse, DigestResponse, PullResponse,
                              Unreachable>;

// --- Durable state ----------------------------------------------------------

// A reservation as stored: key -> (proposal, value, since, request_id).
struct Reservation {
  Key key;
  ProposalId proposal;
  Value value;
  TimeMs since = 0;  // local clock when reserved; not meaningful after restart
  // The put's client request id (0: none), stored with the value if lease
  // recovery commits the reservation. Must survive a restart like the value.
  uint64_t request_id = 0;
};

// Paxos acceptor state for one decision register.
struct AcceptorRecord {
  ProposalId proposal;
  Ballot promised;
  std::optional<AcceptedValue> accepted;
};

struct PutReservation {
  Reservation reservation;
};
struct DeleteReservation {
  Key key;
};
struct PutCommitted {
  Key key;
  Value value;
  uint64_t request_id = 0;
};
struct PutAcceptor {
  AcceptorRecord record;
};
struct DeleteAcceptor {
  ProposalId proposal;
};
using Mutation =
    std::variant<PutReservation, DeleteReservation, PutCommitted, PutAcceptor, DeleteAcceptor>;

// Applied atomically and synced before it is reported done.
struct WriteBatch {
  std::vector<Mutation> mutations;
};

// What a node recovers from storage at start. Acceptor records stay in
// storage; the engine reads them on demand (CommittedView::GetAcceptor).
struct DurableState {
  std::vector<Reservation> reservations;
};

}  // namespace replicator::core
