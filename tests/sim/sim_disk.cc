#include "sim/sim_disk.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "sim/describe.h"

namespace replicator::sim {

using core::TimeMs;

SimDisk::SimDisk(World* world) : world_(*world), disks_(world->node_count()) {
  for (Disk& disk : disks_) {
    disk.store = std::make_unique<core::MemoryState>();
    if (world_.config().unsafe_disk()) disk.synced = std::make_unique<core::MemoryState>();
  }
}

std::vector<const core::MemoryState*> SimDisk::stores() const {
  std::vector<const core::MemoryState*> out;
  for (const Disk& disk : disks_) out.push_back(disk.store.get());
  return out;
}

std::vector<const core::MemoryState*> SimDisk::durable_stores() const {
  std::vector<const core::MemoryState*> out;
  for (const Disk& disk : disks_) out.push_back(disk.synced ? disk.synced.get() : disk.store.get());
  return out;
}

void SimDisk::HandleWrite(int index, core::WriteEffect write) {
  const FaultParams& f = world_.config().fault;
  const SimNode& node = world_.node(index);
  Disk& disk = disks_[index];
  TimeMs delay = static_cast<TimeMs>(world_.Uniform(f.disk_min_ms, f.disk_max_ms));
  if (world_.faults_active() && world_.Chance(f.slow_disk)) {
    delay += static_cast<TimeMs>(world_.Uniform(0, f.slow_disk_max_ms));
  }
  const TimeMs done = std::max(world_.now() + delay, disk.disk_free_at);  // in order, like a WAL
  disk.disk_free_at = done;
  std::string what;
  History::Tags tags;
  for (const core::Mutation& m : write.batch.mutations) {
    absl::StrAppend(&what, " ", Describe(m));
    world_.history().AddTags(tags, m);
  }
  world_.Trace(absl::StrCat(node.id, " write#", write.write_id, " until t=", done, ":", what),
               tags);
  disk.writes.push_back(PendingWrite{write.write_id, std::move(write.batch), std::move(tags)});
  const uint64_t incarnation = node.incarnation;
  const uint64_t write_id = write.write_id;
  world_.At(done,
            [this, index, incarnation, write_id] { CompleteWrite(index, incarnation, write_id); });
}

void SimDisk::CompleteWrite(int index, uint64_t incarnation, uint64_t write_id) {
  SimNode& node = world_.node(index);
  Disk& disk = disks_[index];
  if (!node.engine || node.incarnation != incarnation) return;  // lost in a crash
  auto it = std::find_if(disk.writes.begin(), disk.writes.end(),
                         [&](const PendingWrite& w) { return w.write_id == write_id; });
  if (it == disk.writes.end()) return;
  PendingWrite write = std::move(*it);
  disk.writes.erase(it);
  for (const core::Mutation& m : write.batch.mutations) {
    world_.checker().BeforeApply(index, m);
    disk.store->Apply(m);
  }
  if (disk.synced) {
    // Unsafe mode: acknowledged now, synced later (or lost by a crash).
    const TimeMs sync_at = std::max(
        world_.now() + static_cast<TimeMs>(world_.Uniform(0, world_.config().unsafe_sync_lag_ms)),
        disk.sync_free_at);
    disk.sync_free_at = sync_at;
    world_.Trace(
        absl::StrCat(node.id, " write#", write_id, " acknowledged, NOT synced until t=", sync_at),
        write.tags);
    disk.unsynced.push_back(UnsyncedWrite{write_id, std::move(write.batch), write.tags});
    world_.At(sync_at,
              [this, index, incarnation, write_id] { SyncWrite(index, incarnation, write_id); });
  } else {
    world_.Trace(absl::StrCat(node.id, " write#", write_id, " durable"), write.tags);
  }
  node.engine->OnWriteDone(write_id, world_.now());
  world_.Drain(index);
}

void SimDisk::SyncWrite(int index, uint64_t incarnation, uint64_t write_id) {
  const SimNode& node = world_.node(index);
  Disk& disk = disks_[index];
  if (node.incarnation != incarnation || disk.unsynced.empty() ||
      disk.unsynced.front().write_id != write_id) {
    return;  // lost in a crash
  }
  UnsyncedWrite write = std::move(disk.unsynced.front());
  disk.unsynced.pop_front();
  for (const core::Mutation& m : write.batch.mutations) disk.synced->Apply(m);
  world_.Trace(absl::StrCat(node.id, " write#", write_id, " synced"), write.tags);
}

void SimDisk::OnCrash(int index) {
  const SimNode& node = world_.node(index);
  Disk& disk = disks_[index];
  if (disk.synced) {
    // Unsafe mode: what the engine was told is durable but the disk had not
    // synced is gone.
    for (const UnsyncedWrite& w : disk.unsynced) {
      std::string what;
      for (const core::Mutation& m : w.batch.mutations) absl::StrAppend(&what, " ", Describe(m));
      world_.Trace(
          absl::StrCat(node.id, " write#", w.write_id, " LOST: acknowledged, never synced:", what),
          w.tags);
      world_.stats().unsynced_lost++;
    }
    disk.unsynced.clear();
    *disk.store = *disk.synced;
    disk.sync_free_at = world_.now();
  }
  disk.writes.clear();
  disk.disk_free_at = world_.now();
}

void SimDisk::InjectMutationForTest(int index, const core::Mutation& mutation) {
  Disk& disk = disks_[index];
  History::Tags tags;
  world_.history().AddTags(tags, mutation);
  world_.Trace(absl::StrCat(world_.node(index).id, " INJECTED ", Describe(mutation)), tags);
  world_.checker().BeforeApply(index, mutation);
  disk.store->Apply(mutation);
  if (disk.synced) disk.synced->Apply(mutation);
}

}  // namespace replicator::sim
