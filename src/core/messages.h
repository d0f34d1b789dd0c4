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
// `epoch` is the configuration epoch of the receiving node's cluster that
// the vote is counted under; a voter whose epoch differs refuses
// (Vote::kWrongEpoch). Commit and abort carry none: a decision is final
// under every configuration. `generation` is the coordinator's federation
// generation (core/federation.h): the clusters it counts are those founded
// up to it. A representative forwards it unchanged.
struct ReserveOp {
  Key key;
  Value value;
  ProposalId proposal;
  uint64_t request_id = 0;
  uint64_t epoch = 0;
  uint64_t generation = 0;
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

// An operator's change of a cluster: one voter added or removed, or the
// whole cluster removed from the federation (core/founding.h).
struct MembershipChange {
  enum class Kind : uint8_t { kAdd, kRemove, kRemoveCluster };
  Kind kind = Kind::kAdd;
  PeerId peer;  // kAdd, kRemove
  // Removing below 3 voters is refused unless forced.
  bool force = false;
  ClusterId cluster;  // kRemoveCluster
};

struct ChangeOutcome {
  enum class Kind : uint8_t {
    kOk,               // chosen; `config` is the new configuration
    kInvalidArgument,  // not a change that may be made (`message` says why)
    kBusy,             // another change of the cluster won or is in progress
    kUnavailable,      // no majority of the voters answered in time
  };
  Kind kind = Kind::kUnavailable;
  std::string message;
  Configuration config;  // kOk: the new one; else the newest known
};

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
// `key` is the proposal's key: an acceptor that has it committed by the
// proposal has dropped its record of decision(proposal) and answers from
// the committed entry instead (core/acceptor.h). Empty from a build that
// did not send it; an acceptor holding no record refuses such a request.
struct AcceptRequest {
  ProposalId proposal;
  Ballot ballot;
  Decision decision = Decision::kAbort;
  Key key;
};
// Paxos phase 1 on decision(proposal). Answer: PrepareResponse. `key`: as
// for AcceptRequest.
struct PrepareRequest {
  ProposalId proposal;
  Ballot ballot;
  Key key;
};
// The receiver's view of `key`, counted under `epoch` of its cluster.
// Answer: ReadResponse.
struct ReadRequest {
  Key key;
  uint64_t epoch = 0;
};
// To a node of the proposal's coordinator cluster: learn or settle
// decision(proposal), whose key is `key` (empty from a build that did not
// send it: its recovery's prepares carry none). Answer: ResolveResponse.
struct ResolveRequest {
  ProposalId proposal;
  Key key;
};

// Catch-up: the receiver's committed-set digest (kDigestBuckets values),
// its epoch and the reservations it holds, all taken at one instant.
// Answer: DigestResponse.
struct DigestRequest {};
// Catch-up: the receiver's committed entries of buckets [bucket,
// bucket_end), in (bucket, key) order, starting after key `after` of
// `bucket` (exclusive; empty: from the start), at most about `max_bytes` of
// keys and values. A bucket_end at or below `bucket` asks for `bucket`
// alone. Answer: PullResponse.
struct PullRequest {
  uint32_t bucket = 0;
  Key after;
  uint32_t max_bytes = 4 << 20;
  uint32_t bucket_end = 0;
};

// Membership (core/membership.h): Paxos phase 1 and 2 on the register
// config(cluster, epoch), whose acceptors are the voters of epoch - 1.
// `known` is what the sender knows of the cluster's configurations, for a
// receiver that lags to adopt first. Answer: ConfigVoteResponse.
struct ConfigPrepareRequest {
  ClusterId cluster;
  uint64_t epoch = 0;
  Ballot ballot;
  std::vector<Configuration> known;
};
struct ConfigAcceptRequest {
  ClusterId cluster;
  uint64_t epoch = 0;
  Ballot ballot;
  std::vector<PeerId> voters;  // the proposed configuration `epoch`
  std::vector<Configuration> known;
};
// Tells the receiver the configurations the sender knows; the receiver
// adopts what is newer and answers with what it knows (so either side
// learns). Answer: ConfigLearnResponse.
struct ConfigLearnRequest {
  std::vector<Configuration> known;
};

// An operator's change of the receiver's cluster, asked of one of its
// voters by a node of another cluster. Answer: ChangeResponse.
struct ChangeRequest {
  MembershipChange change;
};

using Request =
    std::variant<HandleRequest, ForwardRequest, AcceptRequest, PrepareRequest, ReadRequest,
                 ResolveRequest, DigestRequest, PullRequest, ConfigPrepareRequest,
                 ConfigAcceptRequest, ConfigLearnRequest, ChangeRequest>;

// --- Responses --------------------------------------------------------------

struct HandleResponse {
  Vote vote;
};
// `config` is the configuration of the representative's cluster the votes
// were asked under (epoch 0: it knows none, and there are no votes).
struct ForwardResponse {
  std::vector<Vote> votes;
  Configuration config;
};
struct AcceptResponse {
  bool accepted = false;
  Ballot promised;  // when !accepted: the higher ballot promised
  // As PrepareResponse::decided: commit was chosen. Sent with !accepted to
  // an accept of abort (from a proposer whose ballot was outbid), naming
  // its own ballot as promised.
  bool decided = false;
};
struct AcceptedValue {
  Ballot ballot;
  Decision decision = Decision::kAbort;
};
struct PrepareResponse {
  bool promised = false;
  Ballot higher;                          // when !promised
  std::optional<AcceptedValue> accepted;  // when promised
  // The acceptor has the key committed by the proposal: commit was chosen.
  // Sent with promised and an accepted commit at ballot 0, which is what
  // a proposer that does not know `decided` adopts.
  bool decided = false;
};
struct ReadResponse {
  // kWrongEpoch: as Vote::Kind::kWrongEpoch. kNotReady: the receiver's
  // cluster was founded after others and the receiver has not yet learned
  // every key committed before it counted (core/federation.h); nothing
  // was read, `reason` says so.
  enum class Kind : uint8_t { kCommitted, kReserved, kAbsent, kWrongEpoch, kNotReady };
  Kind kind = Kind::kAbsent;
  Value value;        // kCommitted: the value; kReserved: the reserved value
  ProposalId holder;  // kReserved
  uint64_t epoch = 0;                  // kWrongEpoch: the receiver's epoch
  std::vector<Configuration> configs;  // kWrongEpoch
  std::string reason;                  // kNotReady
};
struct ResolveResponse {
  std::optional<Decision> decision;  // empty: unavailable
  std::string reason;                // why unavailable
};
// `epoch`: the responder's epoch of its cluster, and `generation` its
// federation generation, both durable before it answered (0: none).
// `reservations`: every reservation it held when the digest was taken;
// `epoch`, `generation` and `federation_settled` are as of that instant
// too (core/federation.h). `known`: the newest configuration of every
// cluster it knows, for the asker to adopt.
struct DigestResponse {
  std::vector<uint64_t> buckets;
  uint64_t epoch = 0;
  std::vector<Reservation> reservations;
  uint64_t generation = 0;
  bool federation_settled = false;
  std::vector<Configuration> known;
};
// `proposal`: the proposal that committed the entry, as far as the server
// knows (empty for an entry stored before proposals were kept with it).
struct PulledEntry {
  Key key;
  Value value;
  uint64_t request_id = 0;
  ProposalId proposal;
};
struct PullResponse {
  std::vector<PulledEntry> entries;
  // false: more entries of the range follow the last one, which is in
  // bucket BucketOf(key) of it.
  bool complete = true;
  // The end of the range this page's buckets are in (the request's, capped
  // at kDigestBuckets); 0 from a build that serves one bucket per pull.
  uint32_t bucket_end = 0;
};
struct ConfigAccepted {
  Ballot ballot;
  std::vector<PeerId> voters;
  friend bool operator==(const ConfigAccepted&, const ConfigAccepted&) = default;
};
struct ConfigVoteResponse {
  enum class Kind : uint8_t {
    kGranted,   // promised (prepare) or accepted (accept), durably
    kRejected,  // promised to `higher`
    kChosen,    // the register is decided: `known` holds its configuration
    kNotReady,  // the acceptor cannot vote yet (`reason`: e.g. settling)
  };
  Kind kind = Kind::kNotReady;
  Ballot higher;                           // kRejected
  std::optional<ConfigAccepted> accepted;  // kGranted to a prepare
  std::vector<Configuration> known;        // kChosen
  std::string reason;                      // kNotReady
};
struct ConfigLearnResponse {
  std::vector<Configuration> known;
};
struct ChangeResponse {
  ChangeOutcome outcome;
};

// The call did not complete: transport failure or deadline. Delivered by the
// driver, never sent by a peer.
struct Unreachable {
  std::string reason;
};

using Response = std::variant<HandleResponse, ForwardResponse, AcceptResponse, PrepareResponse,
                              ReadResponse, ResolveResponse, DigestResponse, PullResponse,
                              ConfigVoteResponse, ConfigLearnResponse, ChangeResponse, Unreachable>;

// --- Durable state ----------------------------------------------------------

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
// `proposal`: the proposal that committed it (empty when not known, as for
// an entry pulled from a build that did not send it). Only its identity
// (coordinator, incarnation, sequence) is kept.
struct PutCommitted {
  Key key;
  Value value;
  uint64_t request_id = 0;
  ProposalId proposal;
};
// `new_register`: no record of the register existed (none in flight, none
// durable) when the engine wrote this one, so storage need not look for an
// older copy (false: it may have to).
struct PutAcceptor {
  AcceptorRecord record;
  bool new_register = false;
};
// Paxos acceptor state for one configuration register config(cluster, epoch).
struct ConfigAcceptorRecord {
  ClusterId cluster;
  uint64_t epoch = 0;
  Ballot promised;
  std::optional<ConfigAccepted> accepted;
};
// A configuration this node learned was chosen; one record per (cluster,
// epoch), never changed once written.
struct PutConfig {
  Configuration config;
};
struct PutConfigAcceptor {
  ConfigAcceptorRecord record;
};
struct DeleteAcceptor {
  ProposalId proposal;
};
using Mutation = std::variant<PutReservation, DeleteReservation, PutCommitted, PutAcceptor,
                              DeleteAcceptor, PutConfig, PutConfigAcceptor>;

// Applied atomically and synced before it is reported done.
struct WriteBatch {
  std::vector<Mutation> mutations;
};

// What a node recovers from storage at start. Acceptor records stay in
// storage; the engine reads them on demand (CommittedView::GetAcceptor).
// Configurations and configuration acceptor records are few (one per
// membership change) and are all recovered.
struct DurableState {
  std::vector<Reservation> reservations;
  std::vector<Configuration> configs;
  std::vector<ConfigAcceptorRecord> config_acceptors;
};

}  // namespace replicator::core
