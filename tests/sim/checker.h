// Checker: the invariants of DESIGN.md, checked while a simulation runs and
// after its quiet phase. The Simulator reports what it observes (durable
// mutations before they apply, messages sent and delivered, client answers);
// the checker keeps a global, omniscient history and records every
// violation with the key or proposal it concerns. Single-threaded.
//
// Invariant ids in reports:
//   1  at most one value ever committed per key, on any node
//   2  at most one client put (request id) per key answers ok, with the
//      committed value: a retry of the same client put (same request id)
//      may answer ok again, two different client puts may not; every other
//      answer agrees with the committed value; a put whose own proposal is
//      decided commit did not answer conflict, unavailable or keyExists of
//      another value (outcomeUnknown is allowed); a put with a
//      request id never answers keyExists of its own value (it answers ok)
//   3  a proposal's decision is chosen once: commit/abort messages, chosen
//      acceptor majorities and resolve answers agree; Paxos acceptor state
//      only moves forward; an acceptor deletes its record of decision(p)
//      only once it holds p's key committed by p, and never writes one again
//   4  when a put answers ok, (key, value) is durable (reserved for the
//      committed proposal or committed) at a strict majority of every
//      cluster founded up to the federation generation its reserves carried
//      (every cluster it must count), counting only what the simulated
//      disks have synced
//   5  after the quiet phase every committed key is committed at a strict
//      majority of every cluster (and, with check_convergence, at every node)
//   K  no key stays reserved forever: once faults stop and every cluster has
//      a majority up, every reservation held by an up node is resolved
//      within a bound (CheckNoReservations)
//   L  a linearizable get that started after the key was known to exist (a
//      put answered ok or keyExists, or a get found it) finds it; so does
//      the healed system's probe of committed keys (notFound there is L,
//      any other failure V)
//   R  a node never replaces a reservation held for another proposal, nor
//      reserves a key it has committed
//   M  membership: no two engines ever know different voters for one
//      (cluster, epoch); epoch 1 is the founding set; consecutive epochs
//      differ by exactly one voter; a voter once removed is never a voter
//      again (the simulator never adds one back); an engine restarts at
//      least at the epoch of its cluster it made durable; a change answered
//      ok names a configuration with the change applied; after the quiet
//      phase every node knows its cluster's newest epoch and every epoch
//      before it (its whole history); every configuration carries its
//      cluster's founding generation; a node's federation generation never
//      goes down, not even across a restart (it is derived from durable
//      configurations, and the one a digest answer reports is durable)
//   E  the engine raised a ViolationEffect
//   C  engine contract (exactly one answer per request / put / get /
//      membership change)
//   V  liveness in fault-free runs, and of the healed system (probe)
//
// Majorities are counted over configurations: a decision is chosen by a
// majority of the voters of its proposal's epoch (of the coordinator's
// cluster), an ok must be durable at a majority of the voters of an epoch
// the proposal's reserves were counted under in each cluster (invariant 4),
// and invariant 5 counts the voters of each cluster's newest epoch. A
// configuration no engine knew (epoch 0, as in hand-built checker worlds)
// is the founding set.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/engine.h"
#include "core/messages.h"
#include "core/types.h"
#include "core/memory_state.h"

namespace replicator::sim {

// What a violation is about: its key, its proposal, a cluster's membership,
// some of them or none. The simulator cuts a failure's history excerpt down
// to the events touching it.
struct Subject {
  std::optional<core::Key> key;
  std::optional<core::ProposalId> proposal;
  std::optional<core::ClusterId> cluster = std::nullopt;  // its membership

  std::string ToString() const;  // "key='k1' proposal=c0n0/1/3 cluster=c0", or ""
};

struct Violation {
  std::string invariant;  // see the list above
  core::TimeMs time = 0;
  Subject subject;
  std::string detail;

  std::string ToString() const;
};

struct CheckerOptions {
  bool check_convergence = false;  // invariant 5, full form (catch-up)
  bool expect_liveness = false;    // fault-free run: invariant V
  // Invariant 4 at the moment of each ok. Off only to show that a lost
  // write is also caught by its consequences (sim_test).
  bool check_durable_at_ok = true;
};

// Liveness of client puts (valid keys; probes excluded): a definite answer
// is ok, keyExists, conflict or unavailable with nothing stored; the rest
// answered outcomeUnknown or never answered (their node
// crashed first).
struct Liveness {
  int64_t puts = 0;
  int64_t ok = 0, key_exists = 0, conflict = 0, unavailable = 0;
  int64_t outcome_unknown = 0, no_answer = 0;

  int64_t definite() const { return ok + key_exists + conflict + unavailable; }
  void Add(const Liveness& other);
  // "1180/1200 puts definite (98.3%): ok 400, keyExists ..., no answer 5"
  std::string ToString() const;
};

// One client operation as the checker sees it.
struct ClientOp {
  enum class Type : uint8_t { kPut, kGetLocal, kGetLinearizable };
  Type type = Type::kPut;
  int node = 0;
  core::Key key;
  core::Value value;             // kPut; unique per client put
  uint64_t request_id = 0;       // kPut; unique per client put, 0: none
  int retry_of = -1;             // kPut: the first op of the client put this retries
  bool probe = false;            // issued by the simulator's probe, not a client
  core::TimeMs started = 0;
  core::TimeMs finished = -1;  // -1 while pending
  // Positions in the history (start and answer events are numbered in the
  // order they happen), so "after" is exact even within one virtual ms.
  uint64_t started_seq = 0;
  uint64_t finished_seq = 0;
  bool abandoned = false;      // its node crashed first
  std::optional<core::PutOutcome> put;
  std::optional<core::GetOutcome> get;
};

class Checker {
 public:
  // `node_cluster[i]` is node i's cluster index in [0, clusters); `stores[i]`
  // its durable store, valid for the checker's lifetime.
  Checker(std::vector<int> node_cluster, std::vector<core::PeerId> node_ids,
          std::vector<const core::MemoryState*> stores, int clusters, CheckerOptions options,
          const core::TimeMs* now);

  bool failed() const { return !violations_.empty(); }
  const std::vector<Violation>& violations() const { return violations_; }
  void Fail(std::string invariant, Subject subject, std::string detail);

  // The clusters' ids (`cluster_ids[c]` is cluster index c's), founding
  // voters (epoch 1) and founding generations (empty, or 0: unknown, then
  // the cluster counts in every put). Without this call cluster c is
  // "c<c>", every node of it is a founder and its generation is unknown.
  void SetMembership(std::vector<core::ClusterId> cluster_ids,
                     std::vector<std::vector<core::PeerId>> founders,
                     std::vector<uint64_t> generations = {});

  // The synced state of each node's disk, for invariant 4. By default the
  // stores given to the constructor (they hold only synced writes); a
  // simulation whose disks acknowledge before syncing passes the synced
  // copies here.
  void SetDurableStores(std::vector<const core::MemoryState*> durable);

  // --- Observations -------------------------------------------------------
  // Node `node` is about to apply `m` (its WriteBatch completed).
  void BeforeApply(int node, const core::Mutation& m);
  // Node `node` sent `request` (as coordinator, representative or resolver).
  void OnSend(int node, const core::Request& request);
  // `request` was handed to node `node`'s engine.
  void OnDeliver(int node, const core::Request& request);
  // Node `node` sends `response` to a request (a digest answer reports an
  // epoch and a federation generation, which must be durable by then: M).
  void OnRespond(int node, const core::Response& response);
  // Node `node` answered a ResolveRequest for `proposal`.
  void OnResolveAnswered(int node, const core::ProposalId& proposal,
                         const core::ResolveResponse& response);
  void OnEngineViolation(int node, const core::ViolationEffect& v);

  // Membership. Node `node` started an engine (after a crash, from its
  // durable state); its next OnConfigurations is checked against that.
  void OnEngineStart(int node);
  // Every node of cluster index `cluster` was stopped for good and the
  // cluster's removal asked: its nodes are left out of the final checks.
  void OnClusterRetired(int cluster);
  // The generation at which `cluster` was removed, as first heard of (0:
  // not removed).
  uint64_t RemovedAt(const core::ClusterId& cluster) const {
    const int c = ClusterIndex(cluster);
    return c >= 0 && c < static_cast<int>(removed_at_.size()) ? removed_at_[c] : 0;
  }
  // Node `node`'s engine knows `known` (Engine::configurations()) after an
  // input. True iff some (cluster, epoch) in it no engine knew before.
  bool OnConfigurations(int node, const std::vector<core::Configuration>& known);
  // An operator's change asked of node `node`'s engine, and its answer.
  void OnChangeRequested(uint64_t change_id, int node, const core::MembershipChange& change);
  void OnChangeDone(int node, const core::ChangeDoneEffect& done);
  // `node` crashed: its changes in flight will never be answered. Returns
  // how many there were.
  int OnNodeCrashed(int node);
  // Every configuration any engine knew, by (cluster, epoch).
  using ConfigKey = std::pair<core::ClusterId, uint64_t>;
  const std::map<ConfigKey, core::Configuration>& configurations() const { return configs_; }
  // The newest configuration of `cluster` any engine knew, or null.
  const core::Configuration* Newest(const core::ClusterId& cluster) const;
  // True iff some configuration any engine knew has `peer` as a voter.
  bool EverVoter(const core::PeerId& peer) const;

  // Client operations; `op` indexes ops() and is stable.
  int OnOpStarted(ClientOp op);
  void OnPutDone(int op, const core::PutOutcome& outcome);
  void OnGetDone(int op, const core::GetOutcome& outcome);
  void OnOpAbandoned(int op);
  const std::vector<ClientOp>& ops() const { return ops_; }

  // Invariant K: faults have been off for long enough and every cluster
  // has a majority up; no node with `up[i]` may still hold a reservation.
  // `when` says which phase, for the report.
  void CheckNoReservations(const std::vector<bool>& up, const std::string& when);

  // After the quiet phase, every node up. `open_inbound[i]` counts requests
  // node i's engine never answered. With check_convergence, every node must
  // know its cluster's newest epoch (invariant M).
  void CheckFinal(const std::vector<int>& open_inbound);

  Liveness CountLiveness() const;

  // Test hook: the committed value the checker believes in.
  std::optional<core::Value> GlobalCommitted(const core::Key& key) const;

 private:
  int ClusterOfPeer(const core::PeerId& peer) const;
  int NodeOfPeer(const core::PeerId& peer) const;
  int ClusterIndex(const core::ClusterId& cluster) const;
  // Node indexes of the voters of cluster index `cluster` at `epoch`: the
  // founders when no engine knew that epoch. Newest: at its newest epoch.
  std::vector<int> VoterNodes(int cluster, uint64_t epoch) const;
  std::vector<int> NewestVoterNodes(int cluster) const;
  // Invariant M for one configuration node `node` knows.
  bool RecordConfiguration(int node, const core::Configuration& c);
  void CheckConfigSequence(const core::ClusterId& cluster, uint64_t epoch);
  void CheckConfigurationsConverged();  // M
  void CheckEveryChangeFinished();      // C
  void RecordDecision(const core::ProposalId& p, core::Decision d, const std::string& source);
  void CheckClaim(const core::Key& key, const core::Value& value, const std::string& source);
  void CheckPutOk(int op);
  // BeforeApply, one per kind of mutation.
  void BeforePutReservation(int node, const core::Reservation& r);
  void BeforeDeleteReservation(int node, const core::Key& key);
  void BeforePutCommitted(int node, const core::PutCommitted& pc);
  void BeforePutAcceptor(int node, const core::AcceptorRecord& rec);
  void BeforeDeleteAcceptor(int node, const core::ProposalId& p);
  // Invariants 1 and 2 when `self` commits (key, value): the first commit of
  // the key settles the claims made before it.
  void CheckCommitAgainstHistory(const core::PeerId& self, const core::Key& key,
                                 const core::Value& value);
  bool SomeProposalDecidedCommit(const core::Value& value) const;
  void CountAccept(int node, const core::ProposalId& proposal, const core::AcceptedValue& accepted);
  // The checks of CheckFinal, by invariant id.
  void CheckKeyReplicated(const core::Key& key);                         // 5
  void CheckNoClaimLeft();                                               // 2
  void CheckEveryOpFinished();                                           // C
  void CheckEveryRequestAnswered(const std::vector<int>& open_inbound);  // C
  void CheckFaultFreeLiveness();                                         // V
  static bool MayCommit(const ClientOp& op, const core::PutOutcome& outcome);

  std::vector<int> node_cluster_;
  std::vector<core::PeerId> node_ids_;
  std::vector<const core::MemoryState*> stores_;
  std::vector<const core::MemoryState*> durable_stores_;
  int clusters_;
  std::vector<core::ClusterId> cluster_ids_;
  std::vector<std::vector<core::PeerId>> founders_;
  std::vector<uint64_t> generations_;  // by cluster index; 0: unknown
  // By cluster index: the generation of its removal (0: none known), and
  // whether it was retired (OnClusterRetired).
  std::vector<uint64_t> removed_at_;
  std::vector<bool> retired_;
  bool NodeRetired(size_t node) const { return retired_[node_cluster_[node]]; }
  CheckerOptions options_;
  const core::TimeMs* now_;

  std::vector<Violation> violations_;
  std::vector<ClientOp> ops_;
  uint64_t history_seq_ = 0;

  // Invariant 1: the first value ever committed per key.
  std::map<core::Key, core::Value> committed_;
  // The value of the first proposal decided commit, per key (durable or not).
  std::map<core::Key, core::Value> decided_value_;
  // Claims (key, value, source) made before any commit of the key was seen.
  std::map<core::Key, std::vector<std::pair<core::Value, std::string>>> pending_claims_;
  // Invariant 2.
  std::map<core::Key, int> ok_put_;
  // Which put ops a proposal belongs to: the puts of its key and value
  // pending at its coordinator when its first reserve was sent.
  std::map<core::ProposalId, std::vector<int>> ops_of_proposal_;
  std::map<int, std::vector<core::ProposalId>> proposals_of_op_;
  // Invariant 3.
  struct DecisionRecord {
    core::Decision decision;
    std::string source;
  };
  std::map<core::ProposalId, DecisionRecord> decisions_;
  struct AcceptSet {
    core::Decision decision;
    std::set<int> nodes;
  };
  std::map<std::pair<core::ProposalId, core::Ballot>, AcceptSet> accepts_;
  std::map<core::ProposalId, std::pair<core::Key, core::Value>> proposal_kv_;
  // (node, proposal) of every acceptor record deleted, durably.
  std::set<std::pair<int, core::ProposalId>> dropped_acceptors_;
  std::map<core::Value, std::set<core::ProposalId>> proposals_of_value_;
  // Linearizable get: the earliest answer revealing the key (its time and
  // history position).
  struct Known {
    core::TimeMs time;
    uint64_t seq;
  };
  std::map<core::Key, Known> known_since_;
  // Invariant 4: the epochs the reserves of a proposal named, per cluster
  // index (a reserve is counted under its receiver's cluster's epoch).
  std::map<std::pair<core::ProposalId, int>, std::set<uint64_t>> reserve_epochs_;
  // The federation generation a proposal's reserves carried (its
  // coordinator's when it made it): the clusters founded up to it count.
  std::map<core::ProposalId, uint64_t> proposal_generation_;
  // Invariant M.
  std::map<ConfigKey, core::Configuration> configs_;
  std::map<ConfigKey, core::PeerId> config_known_first_at_;
  std::vector<std::vector<core::Configuration>> known_by_node_;  // at the last observation
  std::vector<uint64_t> own_epoch_;      // of its cluster, at the last observation
  std::vector<uint64_t> durable_epoch_;  // of its cluster, the newest PutConfig applied
  std::vector<bool> started_;            // an engine started, not observed since
  // Federation generations: each node's at the last observation, and each
  // node's clusters' generations as its durable configurations hold them.
  std::vector<uint64_t> generation_;
  std::vector<std::map<core::ClusterId, uint64_t>> durable_generations_;
  std::vector<std::map<core::ClusterId, uint64_t>> durable_removals_;
  struct Change {
    int node;
    core::MembershipChange change;
    bool done = false;
    bool lost = false;
  };
  std::map<uint64_t, Change> changes_;
};

}  // namespace replicator::sim
