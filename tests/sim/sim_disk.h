// SimDisk: the simulated disks of one run — each node's store (what its
// engine reads and what outlives its engines), the writes in flight, in
// order like a WAL, with seeded latency and slow writes, and in the unsafe
// "no-sync-before-vote" mode the writes acknowledged but not yet synced,
// which a crash loses. Owns every node's durable state; single-threaded,
// one per run.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "core/engine.h"
#include "core/memory_state.h"
#include "core/messages.h"
#include "core/types.h"
#include "sim/history.h"
#include "sim/sim_world.h"

namespace replicator::sim {

class SimDisk {
 public:
  explicit SimDisk(World* world);

  // Schedules `write` at `node`'s disk; it completes (OnWriteDone) in order
  // after the ones before it, unless `node` crashes first.
  void HandleWrite(int node, core::WriteEffect write);
  // `node` crashed: writes in flight are lost; in unsafe mode so is every
  // write not yet synced, and the store rolls back to what was.
  void OnCrash(int node);
  // Applies `mutation` at `node` at once, synced, through the checker.
  void InjectMutationForTest(int node, const core::Mutation& mutation);

  int writes_in_flight(int node) const { return static_cast<int>(disks_[node].writes.size()); }
  const core::MemoryState& store(int node) const { return *disks_[node].store; }
  // What the engines read, by node.
  std::vector<const core::MemoryState*> stores() const;
  // What survives a crash, by node: stores() unless writes are synced late.
  std::vector<const core::MemoryState*> durable_stores() const;

 private:
  struct PendingWrite {
    uint64_t write_id;
    core::WriteBatch batch;
    History::Tags tags;
  };
  // Unsafe mode: a write acknowledged to the engine, synced later.
  struct UnsyncedWrite {
    uint64_t write_id;
    core::WriteBatch batch;
    History::Tags tags;
  };
  struct Disk {
    // In unsafe mode the engine reads `store` (acknowledged writes) and a
    // crash rolls it back to `synced`; otherwise every write is synced
    // before it is acknowledged and `synced` is null.
    std::unique_ptr<core::MemoryState> store;
    std::unique_ptr<core::MemoryState> synced;
    std::deque<UnsyncedWrite> unsynced;  // in order
    core::TimeMs sync_free_at = 0;
    std::deque<PendingWrite> writes;  // completes in order
    core::TimeMs disk_free_at = 0;
  };

  void CompleteWrite(int node, uint64_t incarnation, uint64_t write_id);
  void SyncWrite(int node, uint64_t incarnation, uint64_t write_id);

  World& world_;
  std::vector<Disk> disks_;  // by node index
};

}  // namespace replicator::sim
