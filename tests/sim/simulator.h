// Simulator: drives C clusters x N nodes of core::Engine over a simulated
// network, disk and clock, with seeded faults (delay spread and reordering,
// drop, duplicate delivery, partitions of single nodes, whole clusters or
// random halves, crashes and restarts, slow storage), a client workload over
// a small key space and the invariant Checker. Everything is a function of
// SimConfig: one event queue ordered by (virtual time, sequence) and one
// seeded generator, so a seed replays bit for bit, and the history digest
// (every event, client calls and answers included) proves it.
//
//   SimConfig config = SimConfig::ForProfile("crash");
//   config.seed = 42;
//   SimResult result = RunSimulation(config);
//   if (!result.ok()) std::cerr << result.Report();
//
// Single-threaded; a Simulator is used for one run.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/engine.h"
#include "core/messages.h"
#include "core/types.h"
#include "sim/checker.h"
#include "sim/sim_store.h"

namespace replicator::sim {

// Seeded fault probabilities and ranges. All times are virtual ms.
struct FaultParams {
  core::TimeMs net_min_ms = 1;  // one-way delay, uniform in [min, max]
  core::TimeMs net_max_ms = 5;
  // Every message gets its own delay, so messages overtake each other even
  // between one pair of nodes (reordering). A slow message is later still.
  double slow_message = 0;  // extra delay up to slow_message_max_ms
  core::TimeMs slow_message_max_ms = 0;
  double drop = 0;       // per request and per response
  double duplicate = 0;  // a request is delivered twice
  // A partition cuts one node off, one whole cluster off (with 2+ clusters)
  // or splits the nodes in two random sides, a third of the time each.
  core::TimeMs partition_every_ms = 0;  // mean gap between partitions; 0: none
  core::TimeMs partition_min_ms = 0;
  core::TimeMs partition_max_ms = 0;
  core::TimeMs crash_every_ms = 0;  // mean gap between crashes; 0: none
  core::TimeMs down_min_ms = 0;
  core::TimeMs down_max_ms = 0;
  int max_down = 1;  // nodes down at once
  core::TimeMs disk_min_ms = 0;  // write latency, uniform in [min, max]
  core::TimeMs disk_max_ms = 2;
  double slow_disk = 0;  // a write takes up to slow_disk_max_ms more
  core::TimeMs slow_disk_max_ms = 0;
};

struct SimConfig {
  uint64_t seed = 1;
  int clusters = 2;
  int nodes_per_cluster = 3;
  // Fault profile: none, net (delay spread, drop, duplicate), partition,
  // crash (crash/restart, slow disk), all.
  std::string faults = "none";
  FaultParams fault;
  int clients = 4;
  int keys = 3;  // window of live keys, small so puts race on one key
  int ops = 40;  // client operations per run
  double put_share = 0.6;
  double linearizable_share = 0.5;  // of gets
  double invalid_share = 0.02;      // puts with an empty key
  core::TimeMs think_max_ms = 30;   // client pause between operations
  // A client whose put timed out (no answer within client_timeout_ms; 0:
  // twice the call deadline), answered unavailable, or was lost with its
  // node retries it with the same request id, at a random node, with this
  // probability, at most client_max_retries times.
  double client_retry = 0.7;
  int client_max_retries = 2;
  core::TimeMs client_timeout_ms = 0;
  core::TimeMs workload_max_ms = 60'000;
  // Engine timing.
  core::TimeMs call_deadline_ms = 1000;
  core::TimeMs lease_ms = 2000;
  core::TimeMs catchup_interval_ms = 2000;  // every engine also catches up at its start
  // Quiet phase: faults healed, every node up; long enough for lease
  // recovery to settle. 0: derived from lease_ms and call_deadline_ms.
  core::TimeMs quiet_ms = 0;
  // With crashes in the profile, the quiet phase starts with one node of
  // every cluster still down (a minority) for this long, after which no up
  // node may hold a reservation (invariant K). 0: 2 leases + 12 call
  // deadlines; -1: skip this part.
  core::TimeMs quiet_minority_down_ms = 0;
  // Invariant 5 in full: after the quiet phase every node holds every
  // committed key and has completed a catch-up round.
  bool check_convergence = true;
  bool probe = true;               // RunProbe after the quiet phase
  // RunProbe also requires its race of every node on one fresh key to end
  // with exactly one ok (DESIGN.md "Contention").
  bool check_race = true;
  // A deliberately broken configuration, to prove that the checker bites.
  // "" (safe) or "no-sync-before-vote": a disk acknowledges a write (so the
  // engine votes, accepts, answers) before syncing it; the sync follows up
  // to unsafe_sync_lag_ms later, and a crash loses what was not yet synced.
  std::string unsafe;
  core::TimeMs unsafe_sync_lag_ms = 3000;
  // Invariant 4 at every ok (see CheckerOptions::check_durable_at_ok).
  bool check_durable_at_ok = true;
  bool trace = false;              // print every event as it happens
  size_t trace_tail = 50;          // events in a report when nothing narrower fits
  uint64_t max_events = 3'000'000;  // a run beyond this is a livelock

  // `profile` must be one of the names above; false otherwise.
  bool SetProfile(const std::string& profile);
  // `mode` must be "" or one of the unsafe modes above; false otherwise.
  static bool ValidUnsafe(const std::string& mode);
  static SimConfig ForProfile(const std::string& profile);
  // The command line that replays this run.
  std::string Reproducer() const;
};

struct SimStats {
  uint64_t events = 0;
  core::TimeMs end_ms = 0;
  int puts = 0, puts_ok = 0, puts_exists = 0, puts_conflict = 0, puts_unavailable = 0,
      puts_invalid = 0, puts_abandoned = 0;
  int gets = 0, gets_found = 0, gets_not_found = 0, gets_unavailable = 0;
  int puts_outcome_unknown = 0;  // outcomeUnknown (counted in puts_unavailable too): may yet commit
  int client_timeouts = 0, client_retries = 0;
  int puts_retry_ok = 0;  // ok answers to retries
  uint64_t puts_joined = 0, catchup_rounds = 0, catchup_keys_pulled = 0;  // engines' sums
  int messages = 0, dropped = 0, duplicated = 0, crashes = 0, partitions = 0;
  int partitions_node = 0, partitions_cluster = 0;  // of partitions: shapes
  int unsynced_lost = 0;           // unsafe mode: acknowledged writes lost in crashes
  int prepares = 0, resolves = 0;  // recovery traffic
  int probe_race_conflicts = 0;
  int probe_race_winners = -1;  // oks in the probe's race; -1: no probe
};

struct SimResult {
  SimConfig config;
  std::vector<Violation> violations;  // the first one stopped the run
  // The first violation's history: every event touching its key or
  // proposal, with the crashes and restarts of the nodes involved and the
  // partitions and phases in between; the last trace_tail events when the
  // violation names neither.
  std::vector<std::string> excerpt;
  std::string excerpt_of;       // what the excerpt was cut to
  uint64_t history_events = 0;  // events in the whole history
  // FNV-1a over the whole history: every event line in order, client calls
  // and their answers included. Equal runs, equal digest.
  uint64_t history_digest = 0;
  SimStats stats;
  Liveness liveness;

  bool ok() const { return violations.empty(); }
  // "history digest: 0123456789abcdef"
  std::string DigestLine() const;
  // Reproducer line, first violation, its history excerpt.
  std::string Report() const;
  std::string StatsLine() const;
};

class Simulator {
 public:
  explicit Simulator(SimConfig config);
  ~Simulator();
  Simulator(const Simulator&) = delete;
  Simulator& operator=(const Simulator&) = delete;

  // The whole run: workload with faults, quiet phase, final checks.
  SimResult Run();

  // Phases, for tests that inject faults into the checker's world.
  void RunWorkload();
  // Faults off, partitions healed; with crashes in the profile, first a
  // while with one node per cluster down (then invariant K at the up
  // nodes), then every node up.
  void RunQuiet();
  // After the quiet phase, on a healed cluster: a put of a fresh key at every
  // node must answer ok; every node racing on one fresh key must produce
  // exactly one ok and no unavailable; a linearizable get of every committed
  // key must find it. Catches a cluster left wedged by the faults.
  void RunProbe();
  void CheckFinal();
  SimResult Result() const;

  // Test hooks: corrupt the durable world through the same path real writes
  // take, so the checker must notice.
  void InjectMutationForTest(int node, const core::Mutation& mutation);
  const Checker& checker() const { return *checker_; }
  const SimStore& store(int node) const { return *nodes_[node].store; }
  int node_count() const { return static_cast<int>(nodes_.size()); }

 private:
  // Interned key and proposal tags of trace lines (see Excerpt).
  using Tags = std::vector<int32_t>;
  struct Event {
    core::TimeMs time;
    uint64_t seq;
    std::function<void()> fn;
  };
  struct Inbound {
    uint64_t call;  // key of calls_
    bool duplicate;
    size_t request_kind;                      // Request::index()
    std::optional<core::ProposalId> resolve;  // a ResolveRequest's proposal
    Tags tags;                                // the request's
  };
  enum class LineKind : uint8_t {
    kEvent,      // tagged with the keys and proposals it touches
    kNodeFault,  // a node crashed or started: kept for the nodes involved
    kGlobal,     // partition, heal, phase: kept inside the excerpt's window
  };
  struct TraceLine {
    std::string text;
    uint32_t tags_begin;
    uint32_t tags_count;
    LineKind kind;
    int node;  // kNodeFault
  };
  struct PendingWrite {
    uint64_t write_id;
    core::WriteBatch batch;
    Tags tags;
  };
  // Unsafe mode: a write acknowledged to the engine, synced later.
  struct UnsyncedWrite {
    uint64_t write_id;
    core::WriteBatch batch;
    Tags tags;
  };
  struct Node {
    int index = 0;
    int cluster = 0;
    core::PeerId id;
    // What the engine reads and what survives a crash. In unsafe mode the
    // engine reads `store` (acknowledged writes) and a crash rolls it back
    // to `synced`; otherwise every write is synced before it is
    // acknowledged and `synced` is unused.
    std::unique_ptr<SimStore> store;
    std::unique_ptr<SimStore> synced;
    std::deque<UnsyncedWrite> unsynced;  // in order
    core::TimeMs sync_free_at = 0;
    std::unique_ptr<core::Engine> engine;  // null while down
    uint64_t incarnation = 0;              // of the current or last engine
    int group = 0;                         // partition side
    uint64_t next_inbound = 1;
    absl::flat_hash_map<uint64_t, Inbound> inbound;
    std::deque<PendingWrite> writes;  // completes in order
    core::TimeMs disk_free_at = 0;
    std::optional<core::TimeMs> tick_at;
    std::vector<int> client_ops;  // checker op indexes started here, pending
  };
  struct Call {
    int from;
    uint64_t from_incarnation;
    uint64_t call_id;
    int to;
    core::TimeMs deadline;
    Tags tags;  // the request's
  };

  // Event queue and randomness.
  void At(core::TimeMs time, std::function<void()> fn);
  bool Step();
  void RunUntil(core::TimeMs end, const std::function<bool()>& stop);
  uint64_t Uniform(uint64_t lo, uint64_t hi);  // inclusive
  bool Chance(double p);
  core::TimeMs Exponential(core::TimeMs mean);
  void Trace(std::string line, const Tags& tags = {}, LineKind kind = LineKind::kEvent,
             int node = -1);
  // Tags: interned "key" and "proposal" identities. A proposal's tag set
  // also carries its key once the key is known.
  int32_t Intern(std::string tag);
  void TagKey(Tags& tags, const core::Key& key);
  void TagClientKey(Tags& tags, const core::Key& key);  // a client call or answer
  void TagProposal(Tags& tags, const core::ProposalId& p);
  Tags TagsOf(const core::Request& request);
  void AddTags(Tags& tags, const core::Response& response);
  void AddTags(Tags& tags, const core::Mutation& mutation);
  // The shortest history that shows `v`; see SimResult::excerpt.
  void Excerpt(const Violation& v, SimResult* result) const;

  // Nodes.
  void StartEngine(Node& node);
  void Crash(Node& node);
  void Restart(Node& node);
  void Drain(Node& node, bool after_tick = false);
  void ScheduleTick(Node& node, bool after_tick);
  void StartQuiet();
  bool Connected(int a, int b) const;
  int NodeOf(const core::PeerId& id) const;

  // Effects.
  void HandleSend(Node& node, core::SendEffect send);
  void HandleRespond(Node& node, core::RespondEffect respond);
  void HandleWrite(Node& node, core::WriteEffect write);
  void DeliverRequest(uint64_t call, int from, int to, uint64_t to_incarnation,
                      core::Request request, bool duplicate);
  void DeliverResponse(uint64_t call, core::Response response);
  void CallDeadline(uint64_t call);
  void CompleteWrite(int node, uint64_t incarnation, uint64_t write_id);
  void SyncWrite(int node, uint64_t incarnation, uint64_t write_id);

  // Faults and workload.
  void SchedulePartition(core::TimeMs after);
  // Sets every node's partition side; returns the shape's description.
  std::string ChoosePartition();
  void ScheduleCrash(core::TimeMs after);
  void ClientNext(int client);
  // Plans a retry of put `op` for its client, if the dice say so.
  void PlanRetry(int client, int op);
  void ClientTimeout(int client, int op);
  // `client` < 0: a probe, which issues nothing further when it finishes.
  // `attempt`: retries of the same client put before this one.
  int StartOp(Node& node, ClientOp op, int client, int attempt = 0);
  void OpFinished(int op);
  core::TimeMs NetDelay(bool self);

  SimConfig config_;
  core::TimeMs now_ = 0;
  uint64_t next_seq_ = 0;
  std::vector<Event> queue_;  // a min-heap on (time, seq)
  std::mt19937_64 rng_;
  bool faults_active_ = true;
  uint64_t partition_generation_ = 0;
  bool workload_done_ = false;
  bool stopped_ = false;

  core::Topology topology_;
  std::vector<Node> nodes_;
  std::unique_ptr<Checker> checker_;
  absl::flat_hash_map<uint64_t, Call> calls_;
  uint64_t next_call_ = 1;

  int ops_issued_ = 0;
  int ops_pending_ = 0;
  std::vector<int> client_seq_;
  std::vector<int> op_client_;   // checker op index -> client; -1: probe or detached
  std::vector<int> op_attempt_;  // checker op index -> retries before it (puts)
  struct RetryPlan {
    int first_op;
    int attempt;
  };
  std::vector<std::optional<RetryPlan>> client_retry_;
  core::EngineStats dead_engines_;  // stats of engines lost in crashes, summed

  std::vector<TraceLine> trace_;  // the whole history
  Tags tag_pool_;                 // TraceLine tags, concatenated
  absl::flat_hash_map<std::string, int32_t> tag_ids_;
  absl::flat_hash_map<std::string, core::Key> proposal_key_;  // Describe(p) -> key
  uint64_t digest_ = 1469598103934665603ull;                  // FNV-1a offset basis
  SimStats stats_;
};

SimResult RunSimulation(const SimConfig& config);

}  // namespace replicator::sim
