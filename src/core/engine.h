// Engine: one node's whole protocol as a sans-IO state machine. It owns the
// node's reservation table, Paxos acceptor state, the puts it coordinates,
// the fan-outs it runs as a representative and the decisions it resolves.
//
// Inputs are calls (a request arrived, a response arrived, a write became
// durable, time passed, a client put/get began); outputs are Effects the
// driver carries out. No sockets, threads, clocks or randomness of its own:
// `now` is an argument and the random source is seeded by the owner. The
// same engine runs under src/node (Cap'n Proto on Asio) and tests/sim
// (a seeded, simulated network). Not thread-safe: one engine per reactor.
//
//   Engine e(config, committed_view, recovered_state);
//   e.SetTopology(topology, now);
//   e.StartPut(/*put_id=*/1, "k", "v", /*request_id=*/0, now);
//   for (Effect& fx : e.TakeEffects()) { ...send, reply, write, finish... }
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/messages.h"
#include "core/shard.h"
#include "core/types.h"

namespace replicator::core {

// A committed entry as stored.
struct CommittedEntry {
  Value value;
  uint64_t request_id = 0;
  // The proposal that committed it, identity only; empty when not known
  // (stored by an older build, or pulled from one).
  ProposalId proposal;
};

// Read access to this node's durable state: committed entries and Paxos
// acceptor records. The engine calls it synchronously; it must reflect every
// mutation whose WriteBatch was reported done by OnWriteDone.
class CommittedView {
 public:
  virtual ~CommittedView() = default;
  virtual std::optional<CommittedEntry> GetEntry(const Key& key) const = 0;
  // GetEntry of each key: out[i] is *keys[i]'s. A store that reads many keys
  // in one go faster than one by one (RocksDB's MultiGet) overrides it.
  virtual std::vector<std::optional<CommittedEntry>> GetEntries(
      const std::vector<const Key*>& keys) const {
    std::vector<std::optional<CommittedEntry>> out;
    out.reserve(keys.size());
    for (const Key* k : keys) out.push_back(GetEntry(*k));
    return out;
  }
  std::optional<Value> GetCommitted(const Key& key) const {
    std::optional<CommittedEntry> e = GetEntry(key);
    if (!e) return std::nullopt;
    return std::move(e->value);
  }
  // kDigestBuckets values: bucket b is the XOR of EntryHash(k, v) over the
  // committed entries with BucketOf(k) == b.
  virtual std::vector<uint64_t> Digest() const = 0;
  // Visits the committed entries of `bucket` with keys greater than `after`,
  // in key order, until `visit` returns false.
  virtual void ForEachInBucket(
      uint32_t bucket, const Key& after,
      const std::function<bool(const Key&, const CommittedEntry&)>& visit) const = 0;
  // The durable acceptor record of decision(p), if any. Read on demand (a
  // prepare, an accept, a recovery) rather than held in memory: there is
  // one per proposal ever accepted here.
  virtual std::optional<AcceptorRecord> GetAcceptor(const ProposalId& p) const = 0;
  // Whether a durable acceptor record of decision(p) exists; a store that
  // can tell without decoding it overrides this.
  virtual bool HasAcceptor(const ProposalId& p) const { return GetAcceptor(p).has_value(); }
};

struct EngineConfig {
  PeerId self;
  ClusterId cluster;
  uint64_t incarnation = 0;  // unique per run of this node (never reused)
  uint64_t random_seed = 0;  // seeds backoff jitter; deterministic in tests
  Limits limits;
  // The keys this engine owns, when its node runs several (core/shard.h):
  // requests, puts and gets of other keys are refused. By default all.
  ShardRange shard;
  TimeMs call_deadline_ms = 1000;  // reserve fan-out and each Paxos round
  // Contention: a put whose only obstacle was concurrent reservations retries
  // with a new proposal after a randomized backoff scaled by how long its
  // last attempt took, while fewer than `max_attempts` attempts were made and
  // less than `max_retry_ms` passed since the put began.
  int max_attempts = 16;
  TimeMs max_retry_ms = 1500;
  TimeMs backoff_base_ms = 10;
  TimeMs lease_ms = 2000;  // reservation age after which its holder resolves it
  // Catch-up: a round compares digests with a random peer of this cluster
  // and pulls the buckets that differ; one starts this often (and at once
  // when the engine is told to StartCatchUp). 0: only StartCatchUp starts
  // rounds. A round asks the cluster's other members in turn (round robin
  // from a random start), so n-1 rounds compare with every one of them.
  TimeMs catchup_interval_ms = 5000;
  // Catch-up: the size of one pull's page, in bytes of keys and values. A
  // round holds at most 8 pages (in flight or not yet durable).
  uint32_t catchup_pull_max_bytes = 1 << 20;
  // Decisions remembered in memory (oldest evicted); a forgotten decision is
  // re-learned from the acceptors by recovery.
  size_t decision_cache_capacity = 100000;
  // Membership: a member of this cluster that is not a voter (a learner)
  // proposes its own promotion once it caught up, retrying this often.
  // A node that was a voter once and was removed never does.
  bool auto_promote = true;
  TimeMs promote_retry_ms = 1000;
  // A deliberately broken membership rule, for the simulator's proof that
  // its checker catches one; never set outside tests. kSkipSettle: an
  // acceptor votes on config(e+1) without having settled epoch e.
  // kIgnoreEpoch: a voter votes under whatever epoch a request names.
  // kSkipFederationSettle: a voter of a cluster founded after others
  // answers reads as if it had settled with the federation from the start.
  enum class UnsafeMembership : uint8_t { kNone, kSkipSettle, kIgnoreEpoch, kSkipFederationSettle };
  UnsafeMembership unsafe_membership = UnsafeMembership::kNone;
  // A deliberately broken acceptor rule, for the same proof; never set
  // outside tests: an acceptor drops its record when the key commits here
  // but answers later requests as a fresh register, not from the committed
  // entry (core/acceptor.h).
  bool unsafe_forget_decided = false;
  // RP_CHECK every role's invariants after every input (CheckInvariants):
  // O(state) per input, for the simulator and tests.
  bool check_invariants = false;
};

enum class Consistency : uint8_t { kLocal, kLinearizable };

struct PutOutcome {
  // kUnavailable: nothing was stored. kOutcomeUnknown: the put may still
  // commit (its decision could not be learned in time).
  enum class Kind : uint8_t {
    kOk,
    kKeyExists,
    kConflict,
    kUnavailable,
    kInvalidArgument,
    kOutcomeUnknown,
  };
  Kind kind = Kind::kUnavailable;
  Value existing;       // kKeyExists: the committed value
  std::string message;  // every kind but kOk and kKeyExists
};

// Where a put's time went, for the node's slow-put log line (all 0 for a
// put answered without a round, e.g. over a key committed here).
struct PutTimings {
  int attempts = 0;       // reserve rounds started
  TimeMs reserve_ms = 0;  // the last attempt: from its reserves to its votes tallied
  TimeMs accept_ms = 0;   // from the accept (and any recovery) to the answer
  ClusterId slowest;      // the remote cluster whose votes came in last (last attempt)
  TimeMs slowest_ms = 0;  // when they came in, from the attempt's start
};

struct GetOutcome {
  enum class Kind : uint8_t { kFound, kNotFound, kUnavailable, kInvalidArgument };
  Kind kind = Kind::kNotFound;
  Value value;          // kFound
  std::string message;  // kUnavailable, kInvalidArgument
};

// --- Effects: what the driver must do ---------------------------------------

// Deliver `request` to peer `to`, never this node itself (the engine handles
// its calls to itself before the input that made them returns). The driver must
// call OnResponse(call_id, ...) exactly once: with the peer's response, or
// with Unreachable when the call fails or `deadline` (engine time) passes.
struct SendEffect {
  uint64_t call_id = 0;
  PeerId to;
  Request request;
  TimeMs deadline = 0;
};
// Answer the inbound request `inbound_id` given to OnRequest.
struct RespondEffect {
  uint64_t inbound_id = 0;
  Response response;
};
// Make `batch` durable (atomically, synced), then call OnWriteDone(write_id).
struct WriteEffect {
  uint64_t write_id = 0;
  WriteBatch batch;
};
struct PutDoneEffect {
  uint64_t put_id = 0;
  PutOutcome outcome;
  PutTimings timings;
};
struct GetDoneEffect {
  uint64_t get_id = 0;
  GetOutcome outcome;
};
// Two different values were seen for one key: a safety violation. The
// driver logs it loudly; the engine also counts it in Stats.
struct ViolationEffect {
  Key key;
  std::string detail;
};
struct ChangeDoneEffect {
  uint64_t change_id = 0;
  ChangeOutcome outcome;
};
using Effect = std::variant<SendEffect, RespondEffect, WriteEffect, PutDoneEffect, GetDoneEffect,
                            ViolationEffect, ChangeDoneEffect>;

// Who an inbound request came from: the peer id the transport proved
// (authenticated: TLS with a certificate of the federation) or, without
// that, the one the call itself claims. Admission (core/admission.h) checks
// the request against `peer` either way; `authenticated` decides whether a
// safety-violation report it causes is counted.
struct Sender {
  PeerId peer;
  bool authenticated = false;
};

struct EngineStats {
  uint64_t reservations = 0;  // held now
  // One per PutDone answered, except that puts sharing an in-flight put's
  // outcome (same key and request id) are counted once, in puts_joined.
  uint64_t puts_ok = 0;
  uint64_t puts_key_exists = 0;
  uint64_t puts_conflict = 0;
  uint64_t puts_unavailable = 0;
  uint64_t puts_outcome_unknown = 0;
  uint64_t puts_invalid = 0;
  uint64_t put_retries = 0;
  uint64_t puts_joined = 0;  // StartPuts that shared an in-flight put's outcome
  uint64_t gets = 0;
  uint64_t safety_violations = 0;
  uint64_t catchup_rounds = 0;        // completed
  uint64_t catchup_keys_pulled = 0;   // entries applied from pulls
  uint64_t catchup_pulls = 0;         // pull calls sent (pages asked for)
  uint64_t config_epoch = 0;          // of this node's cluster (0: none yet)
  uint64_t config_changes = 0;        // configurations this node got chosen
  uint64_t stale_epoch_refusals = 0;  // requests refused for a wrong epoch
  // The federation generation (core/federation.h): every cluster founded
  // up to it is known here and counted by the puts coordinated here.
  uint64_t federation_generation = 0;
  // This node holds every key committed by a put counted without its
  // cluster, and answers linearizable reads (always, for the first cluster).
  bool federation_settled = false;
  uint64_t generation_refusals = 0;  // reserves refused for a lower generation
  uint64_t reads_not_ready = 0;      // reads refused while not settled
  // Prepares and accepts refused (acceptor.h): an absurd ballot round, or
  // a request without its key that only a record could answer.
  uint64_t ballot_refusals = 0;
  // Acceptor records of decision registers deleted because the key
  // committed here by the register's proposal (acceptor.h).
  uint64_t acceptor_records_dropped = 0;
  // Requests refused for their sender (core/admission.h) or, for a commit,
  // for contradicting what this node knows of its proposal.
  uint64_t sender_refusals = 0;
  // Requests refused for naming a key of another shard (core/shard.h).
  uint64_t shard_refusals = 0;
  // Violations seen in requests of a sender that is not an authenticated
  // member of the federation: reported (ViolationEffect) but not counted
  // in safety_violations, which anyone could otherwise drive up.
  uint64_t unverified_violation_reports = 0;
  // Reservations dropped because their coordinator stayed unknown to every
  // membership view and configuration (replica.h, kOrphanLeases).
  uint64_t orphan_reservations_dropped = 0;
};

class Engine {
 public:
  // `committed` must outlive the engine. `recovered` is what storage held at
  // start (empty for a fresh node).
  Engine(EngineConfig config, const CommittedView* committed, DurableState recovered);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  const EngineConfig& config() const;

  // Replaces the membership view. Puts in flight keep the view they began
  // with; fan-outs started later use the new one.
  void SetTopology(Topology topology, TimeMs now);
  const Topology& topology() const;

  // Changes the cluster of `change.peer` by consensus among its voters (see
  // core/membership.h): here if it is this node's cluster, else through one
  // of that cluster's voters. Finishes with exactly one ChangeDoneEffect
  // for `change_id`.
  void ChangeMembership(uint64_t change_id, MembershipChange change, TimeMs now);
  // This node's cluster's newest configuration it knows (epoch 0: none).
  const Configuration& configuration() const;
  // Every configuration known here: this cluster's whole history, the
  // newest of each other cluster heard of.
  std::vector<Configuration> configurations() const;

  // A client's put. Finishes with exactly one PutDoneEffect for `put_id`.
  // `request_id` (0: none) names the client's put across retries: a put
  // whose key is already committed with the same request id answers kOk,
  // and a second put with the same (key, request_id) while the first is in
  // flight here shares its outcome.
  // `now` is engine time (monotonic); `wall_ms`, this node's wall clock,
  // orders racing puts of one key across nodes (ProposalId::started_ms)
  // and defaults to `now` where the two are one clock (the simulator).
  void StartPut(uint64_t put_id, Key key, Value value, uint64_t request_id, TimeMs now,
                std::optional<TimeMs> wall_ms = std::nullopt);
  // A client's get. Finishes with exactly one GetDoneEffect for `get_id`
  // (at once for kLocal).
  void StartGet(uint64_t get_id, Key key, Consistency consistency, TimeMs now);

  // A peer's request, from `from`. Finishes with exactly one RespondEffect
  // for `inbound_id`, which must be below 2^63 (the engine numbers its
  // calls to itself from there). A request admission refuses
  // (core/admission.h) is answered Unreachable with the reason, unapplied.
  void OnRequest(uint64_t inbound_id, Request request, TimeMs now, Sender from);
  // The outcome of SendEffect `call_id`.
  void OnResponse(uint64_t call_id, Response response, TimeMs now);
  // WriteEffect `write_id` is durable.
  void OnWriteDone(uint64_t write_id, TimeMs now);
  // Time passed; runs backoff retries and lease recovery that are due.
  void Tick(TimeMs now);
  // Starts a catch-up round now (at start, or when the node joined).
  void StartCatchUp(TimeMs now);
  // True once a catch-up round has completed (every bucket that differed
  // from the peer's was pulled), or when there is no peer to catch up from.
  bool caught_up() const;
  // The earliest time Tick has work to do, if any.
  std::optional<TimeMs> NextWakeup() const;

  // Effects produced since the last call, in order.
  std::vector<Effect> TakeEffects();
  bool HasEffects() const;

  EngineStats stats() const;

  // RP_CHECKs the engine's own invariants (every role's bookkeeping agrees
  // with itself and with the writes in flight). Costs O(state); meant for
  // the simulator and tests, between inputs.
  void CheckInvariants() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace replicator::core
