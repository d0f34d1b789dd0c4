// Simulator: drives C clusters x N nodes of core::Engine over a simulated
// network, disk and clock, with seeded faults (delay spread and reordering,
// drop, duplicate delivery, partitions of single nodes, whole clusters or
// random halves, crashes and restarts, slow storage, long pauses of single
// nodes, and membership: spares that join and promote themselves, voters an
// operator removes), a client workload over a small key space and the
// invariant Checker. Everything is a function of
// SimConfig: one event queue ordered by (virtual time, sequence) and one
// seeded generator, so a seed replays bit for bit, and the history digest
// (every event, client calls and answers included) proves it.
//
// The Simulator owns the run loop, the engines' lifecycle (start, crash,
// restart, ticks), the membership directory (the topology every engine is
// shown, joins, operator changes), the phases and the wiring of engine
// effects to the parts: SimNetwork (sim_network.h), SimDisk (sim_disk.h) and Workload
// (workload.h), which share one World (sim_world.h).
//
//   SimConfig config = SimConfig::ForProfile("crash");
//   config.seed = 42;
//   SimResult result = RunSimulation(config);
//   if (!result.ok()) std::cerr << result.Report();
//
// Single-threaded; a Simulator is used for one run.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/engine.h"
#include "core/memory_state.h"
#include "core/messages.h"
#include "core/types.h"
#include "sim/checker.h"
#include "sim/sim_config.h"
#include "sim/sim_disk.h"
#include "sim/sim_network.h"
#include "sim/sim_world.h"
#include "sim/workload.h"

namespace replicator::sim {

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
  const Checker& checker() const { return world_.checker(); }
  const History& history() const { return world_.history(); }
  const core::MemoryState& store(int node) const { return disk_.store(node); }
  int node_count() const { return world_.node_count(); }

 private:
  const SimConfig& config() const { return world_.config(); }

  // The run loop: one event, then every event due by `end` unless `stop`.
  bool Step();
  void RunUntil(core::TimeMs end, const std::function<bool()>& stop);

  // Engines.
  void StartEngine(SimNode& node);
  void Crash(SimNode& node);
  void Restart(SimNode& node);
  // Hands every effect of `node`'s engine to its part, then schedules the
  // engine's next Tick.
  void Drain(int node, bool after_tick = false);
  void Dispatch(int node, core::Effect& effect);
  void ScheduleTick(SimNode& node, bool after_tick);
  void ScheduleCrash(core::TimeMs after);

  // Liveness hints, as the directory's pings give them: a crashed node is
  // shown down a while after it crashed and up a while after it restarts;
  // under partitions and crashes a live node is sometimes shown down when
  // it is not (a ping lost or late). Hints only steer whom engines ask
  // first; the checker's invariants must hold whatever they say.
  void ShowDown(int node, bool down);
  void ScheduleFalseHint(core::TimeMs after);

  // The directory. The topology: every node that joined, a voter (or down)
  // if its cluster's newest configuration any engine knows has it, else
  // catching up — as nodes tell the directory whether they vote.
  core::Topology BuildTopology() const;
  // Updates the directory's map and shows every live engine its view of it
  // if that changed; true if the map did.
  bool PublishTopology();
  // The directory's map as node `node` has heard it: a cluster founded
  // mid-run (its members and founding set) appears once the node was told.
  core::Topology TopologyFor(int node) const;
  // Shows `node`'s engine (if up) its view, if that changed.
  void ShowTopology(int node);
  // Clusters founded mid-run: when its first nodes join (the oldest
  // cluster's voters then found it by consensus, core/founding.h; its
  // spares join later), and telling each other node of its members, at a
  // staggered time. Arrived: its first nodes joined (every initial cluster
  // has).
  bool Arrived(int cluster) const;
  void ScheduleFoundings();
  void Found(int cluster);
  void Tell(int node, int cluster, bool late);
  // Membership faults: a spare joins (sometimes with a removal, a
  // replacement, and another node of its cluster pausing through both); an
  // operator removes a voter of `cluster` (if its newest configuration has
  // more than 3); a node pauses.
  void Join(int node);
  void ScheduleJoins();
  void ScheduleChange(core::TimeMs after);
  void RequestRemoval(int cluster);
  // Retiring a cluster (FaultParams::retire): picks one and stops its nodes,
  // then asks for its removal until it is removed.
  void ScheduleRetirement();
  void Retire();
  void RetireWhenDrained(int cluster, core::TimeMs give_up,
                         std::optional<core::TimeMs> drained_since);
  void RequestClusterRemoval();
  int retired_cluster_ = -1;
  std::set<uint64_t> cluster_removals_;          // the change ids of those asked
  std::set<uint64_t> cluster_removals_pending_;  // of those, not answered
  void WatchClusterRemoval(uint64_t id, int asked, uint64_t incarnation);
  bool cluster_removed_ = false;
  void OnChangeDone(int node, const core::ChangeDoneEffect& done);
  void SchedulePause(core::TimeMs after);
  // Cuts `node` off for a while (see FaultParams::pause_min_ms) or, when
  // `through_changes`, at least until its cluster gained two epochs (within
  // 3 pause_max_ms).
  void Pause(int node, bool through_changes);
  void ResumeWhenDue(int node, uint64_t generation, uint64_t epoch, bool through_changes,
                     core::TimeMs give_up);
  bool ClusterPaused(int cluster) const;
  // Traces an engine's move to another epoch of its cluster and reports
  // what it knows to the checker (invariant M).
  void ObserveConfigurations(SimNode& node);
  uint64_t NewestEpoch(int cluster) const;
  bool MembershipDone() const;

  // Quiet phase: one node of every cluster down for `minority_ms`, then
  // invariant K; false if the run stopped.
  bool RunQuietMinorityDown(core::TimeMs minority_ms);
  void StartQuiet();

  World world_;
  SimDisk disk_;
  SimNetwork network_;
  Workload workload_;
  core::Topology topology_;
  std::vector<bool> shown_down_;            // by node: the liveness hint
  std::vector<uint64_t> traced_epoch_;      // by node: its cluster's epoch, last traced
  std::vector<uint64_t> pause_generation_;  // by node: its pause, if cut off
  std::vector<std::vector<bool>> told_;     // [node][cluster]: its map shows the cluster
  std::vector<core::Topology> shown_;       // by node: the map its engine was last shown
  // The clusters founded mid-run whose first nodes joined.
  std::set<int> arrived_;
  uint64_t next_change_id_ = 1;
  bool publish_scheduled_ = false;
  bool stopped_ = false;
  core::EngineStats dead_engines_;  // stats of engines lost in crashes, summed
};

SimResult RunSimulation(const SimConfig& config);

}  // namespace replicator::sim
