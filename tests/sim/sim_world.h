// World: what the parts of one simulation run share — the virtual clock, the
// one event queue ordered by (virtual time, sequence), the one seeded
// generator, the nodes and their engines, the history, the stats and the
// checker. The Simulator owns it and runs its queue; SimNetwork, SimDisk and
// Workload own only their part's state and schedule events and draw
// randomness only through here, so a seed fixes the order of both.
// Single-threaded, one per run.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/engine.h"
#include "core/types.h"
#include "sim/checker.h"
#include "sim/history.h"
#include "sim/sim_config.h"

namespace replicator::sim {

// One simulated node as every part sees it: its identity and its engine.
// What survives a crash lives in SimDisk. A spare is not in the topology
// (and has no engine) until it joins.
struct SimNode {
  int index = 0;
  int cluster = 0;
  core::PeerId id;
  bool spare = false;                    // not a founder of its cluster
  bool late_cluster = false;             // its cluster is founded mid-run
  bool joined = false;                   // in the topology (founders: from the start)
  // Its cluster was retired (every node stopped for good, then the cluster
  // removed from the federation): it never starts again.
  bool retired = false;
  // Its cluster is being drained before it retires: clients send it nothing.
  bool draining = false;
  std::unique_ptr<core::Engine> engine;  // null while down
  uint64_t incarnation = 0;              // of the current or last engine
  std::optional<core::TimeMs> tick_at;   // the Tick event scheduled, if any
};

class World {
 public:
  // Builds config.total_clusters() x (config.nodes_per_cluster founders +
  // the mix's spares) nodes, all down; a cluster's nodes are contiguous, the
  // clusters founded mid-run last.
  explicit World(SimConfig config);
  World(const World&) = delete;
  World& operator=(const World&) = delete;

  const SimConfig& config() const { return config_; }

  // The clock and the event queue. Events at one time run in the order they
  // were scheduled; one scheduled in the past runs now.
  core::TimeMs now() const { return now_; }
  const core::TimeMs* clock() const { return &now_; }
  void At(core::TimeMs time, std::function<void()> fn);
  bool idle() const { return queue_.empty(); }
  core::TimeMs next_time() const { return queue_.front().time; }  // precondition: !idle()
  // Removes the next event and moves the clock to its time.
  std::function<void()> PopNext();
  // Moves the clock forward to `time` with no event.
  void AdvanceTo(core::TimeMs time) { now_ = time; }

  // The run's one generator: every random choice is one of these draws.
  uint64_t Draw() { return rng_(); }
  uint64_t Uniform(uint64_t lo, uint64_t hi);  // inclusive
  bool Chance(double p);
  core::TimeMs Exponential(core::TimeMs mean);

  // Faults (drops, duplicates, slow messages and disks, partitions,
  // crashes) are injected until the quiet phase turns them off for good.
  bool faults_active() const { return faults_active_; }
  void StopFaults() { faults_active_ = false; }

  std::vector<SimNode>& nodes() { return nodes_; }
  const std::vector<SimNode>& nodes() const { return nodes_; }
  SimNode& node(int index) { return nodes_[index]; }
  int node_count() const { return static_cast<int>(nodes_.size()); }

  History& history() { return history_; }
  const History& history() const { return history_; }
  void Trace(std::string line, const History::Tags& tags = {},
             History::LineKind kind = History::LineKind::kEvent, int node = -1) {
    history_.Record(std::move(line), tags, kind, node);
  }
  SimStats& stats() { return stats_; }
  const SimStats& stats() const { return stats_; }
  Checker& checker() { return *checker_; }
  const Checker& checker() const { return *checker_; }
  void SetChecker(std::unique_ptr<Checker> checker) { checker_ = std::move(checker); }

  // Carries out the effects of `node`'s engine; every part calls it after
  // giving that engine an input.
  void Drain(int node) { drain_(node); }
  void SetDrain(std::function<void(int node)> drain) { drain_ = std::move(drain); }

 private:
  struct Event {
    core::TimeMs time;
    uint64_t seq;
    std::function<void()> fn;
  };

  SimConfig config_;
  core::TimeMs now_ = 0;
  uint64_t next_seq_ = 0;
  std::vector<Event> queue_;  // a min-heap on (time, seq)
  std::mt19937_64 rng_;
  bool faults_active_ = true;
  std::vector<SimNode> nodes_;
  History history_;
  SimStats stats_;
  std::unique_ptr<Checker> checker_;
  std::function<void(int)> drain_;
};

}  // namespace replicator::sim
