// Coordinator: runs the client puts that arrive at this node. An attempt
// reserves the key at every voter of this cluster and, through one
// representative each, of every other cluster; tallies the votes; records
// a commit at ballot 0 in decision(p) at a majority of this cluster (no
// prepare: ballot 0 is the coordinator's alone); then fans the decision out.
// Contention retries with a new proposal after a backoff; a second put of
// the same (key, request id) joins the first. Part of one Engine;
// single-threaded.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/context.h"
#include "core/membership.h"
#include "core/recovery.h"
#include "core/replica.h"
#include "core/tally.h"

namespace replicator::core {

class Coordinator {
 public:
  Coordinator(Context& ctx, Replica& replica, Recovery& recovery, Membership& membership)
      : ctx_(ctx), replica_(replica), recovery_(recovery), membership_(membership) {}

  // A client's put. Keys in the system's key space (core/founding.h) are
  // refused.
  void StartPut(uint64_t put_id, Key key, Value value, uint64_t request_id, TimeMs now,
                TimeMs started_wall_ms);
  // A put of this engine's own (a founding), run as a client's but
  // answered to `done` instead of a PutDoneEffect and counted in no put
  // statistics.
  using PutDoneFn = std::function<void(PutOutcome, TimeMs)>;
  // `excluded`, if set, is a cluster the put does not count (the removal of
  // that cluster, core/founding.h); never this node's own.
  void StartSystemPut(Key key, Value value, PutDoneFn done, TimeMs now,
                      std::optional<ClusterId> excluded = std::nullopt);
  // Starts the attempts whose backoff ended.
  void Tick(TimeMs now);
  std::optional<TimeMs> NextRetry() const;
  // If `p` is one of this engine's proposals still being decided, keeps
  // `answer` to be called with its decision and returns true.
  bool AwaitOwnDecision(const ProposalId& p, DecisionFn& answer);

  void CheckInvariants() const;

 private:
  // Remote cluster of one put attempt.
  struct RemoteCluster {
    std::vector<PeerId> candidates;  // rendezvous order for the key
    size_t next = 0;                 // the next candidate not asked yet
    size_t in_flight = 0;            // forwards asked and not answered
    std::optional<TimeMs> hedge_at;  // when to ask the next one too
    bool settled = false;            // its votes (or their absence) are in
    std::optional<size_t> answered;  // the representative that answered
    TimeMs settled_at = 0;           // when settled
  };
  struct PutOp {
    enum class Phase : uint8_t { kReserve, kBackoff, kAccept, kRecover };
    uint64_t put_id = 0;
    PutDoneFn system_done;  // set for a system put (put_id unused)
    std::optional<ClusterId> excluded;  // a system put's cluster not counted
    Key key;
    Value value;
    uint64_t request_id = 0;
    // Later StartPuts of the same (key, request_id, value) that share this
    // put's outcome.
    std::vector<uint64_t> joined;
    TimeMs started = 0;
    uint64_t started_wall_ms = 0;  // the proposals' priority (ProposalId::started_ms)
    int attempt = 0;  // 1-based number of the current attempt
    Phase phase = Phase::kReserve;
    // The current attempt.
    ProposalId proposal;
    // This cluster's voters of proposal.epoch; another cluster's, those of
    // the configuration its representative answered under (until then, the
    // newest known here, to pick representatives from).
    VoterSnapshot voters;
    // The federation generation the attempt counts at: every cluster
    // founded up to it is in `voters`. Carried by all its reserves.
    uint64_t generation = 0;
    // Some voter is at another epoch than the one it was asked under, or at
    // a higher federation generation: an attempt that falls short retries
    // at once under the newer epoch, counting the clusters learned.
    bool epoch_moved = false;
    TimeMs reserve_deadline = 0;
    // Local first (local_first_): the other clusters are asked only once a
    // majority of this one voted ok; until then `remotes` is empty.
    bool remotes_deferred = false;
    std::vector<Vote> votes;
    size_t outstanding = 0;  // reserve calls not yet answered
    std::map<ClusterId, RemoteCluster> remotes;
    TimeMs retry_at = 0;         // kBackoff
    TimeMs attempt_started = 0;  // when the current attempt sent its reserves
    TimeMs accept_started = 0;   // when the current attempt's decision began (0: not yet)
    size_t accepts_ok = 0;
    size_t accepts_failed = 0;
    // ResolveRequests for `proposal` that arrived while this engine was
    // still deciding it; answered as soon as it is decided.
    std::vector<DecisionFn> resolve_waiters;
  };
  // Commit/abort fan-out to one remote cluster, fire-and-forget.
  struct FanoutOp {
    ReplicaOp op;
    std::vector<PeerId> candidates;
    size_t start = 0;
    size_t tried = 0;
  };

  PutOp& Get(uint64_t id);
  // The attempt's voters of `cluster`, as it saw them.
  static const std::vector<PeerId>& Voters(const PutOp& op, const ClusterId& cluster);
  PutOp* Find(uint64_t id, int attempt, PutOp::Phase phase);
  // Counts `vote` into the attempt (learning from a wrong-epoch refusal).
  void AddVote(PutOp& op, Vote vote, TimeMs now);
  // Why a put cannot be attempted with the current membership, if so.
  std::optional<std::string> QuorumShortfall() const;

  void StartAttempt(uint64_t id, TimeMs now);
  // Asks one representative of every other cluster the attempt counts.
  void SendRemoteReserves(uint64_t id, TimeMs now);
  // The attempt's votes tallied over this cluster alone, and whether that
  // tally commits: a strict majority of its voters voted ok (and none
  // answered stored).
  TallyOutcome OwnTally(const PutOp& op) const;
  bool OwnMajorityOk(const PutOp& op) const;
  // A vote of this cluster arrived: once a majority is ok, this node
  // reaches its cluster again, and deferred remote reserves go out.
  void OnOwnVote(uint64_t id, TimeMs now);
  void SendReserveForward(uint64_t id, const ClusterId& cluster, TimeMs now);
  void OnForwardReply(uint64_t id, int attempt, const ClusterId& cluster, size_t index,
                      Response&& r, TimeMs now);
  void MaybeTally(uint64_t id, TimeMs now);
  void StartAccept(uint64_t id, TimeMs now);
  void OnAcceptReply(uint64_t id, int attempt, Response&& r, TimeMs now);
  void OnPutRecovered(uint64_t id, int attempt, std::optional<Decision> d,
                      const std::string& reason, TimeMs now);
  void CommitChosen(uint64_t id, TimeMs now);
  void AbortAttempt(PutOp& op, TimeMs now);
  void NotifyResolveWaiters(PutOp& op, Decision d, TimeMs now);
  void Fanout(const PutOp& op, const ReplicaOp& rop, TimeMs now);
  void SendFanout(uint64_t fid, TimeMs now);
  void RepairStaleReservation(const PutOp& op, const Vote& vote, TimeMs now);
  void FinishPut(uint64_t id, PutOutcome outcome, TimeMs now);
  void ErasePut(uint64_t id);
  void EmitPutDone(const PutOp& op, PutOutcome outcome, TimeMs now);
  void EmitPutDone(uint64_t put_id, PutOutcome outcome, const PutTimings& timings = {});

  Context& ctx_;
  Replica& replica_;
  Recovery& recovery_;
  Membership& membership_;
  // Node-based maps: handlers hold references across calls that insert.
  std::unordered_map<uint64_t, PutOp> puts_;
  std::unordered_map<uint64_t, FanoutOp> fanouts_;
  // Puts in flight with a request id, by (key, request_id): later StartPuts
  // of the same client put join them.
  absl::flat_hash_map<std::pair<Key, uint64_t>, uint64_t> puts_by_request_;
  // Set when an attempt ended without a majority of this cluster voting ok
  // (this node is cut off from its cluster, or its cluster is down);
  // cleared by the first attempt that gets one. While set, attempts reserve
  // here first and ask the other clusters only once this one's majority
  // said ok: a node on the minority side of a partition, whose puts cannot
  // commit, then holds no reservation in other clusters, where it would
  // stall the majority side's puts of the same keys for an attempt each
  // time its clients retry. Costs one round trip in this cluster, once,
  // when the node reaches its cluster again.
  bool local_first_ = false;
};

}  // namespace replicator::core
