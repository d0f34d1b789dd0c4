// GroupCommitter: the storage thread shared by every Storage implementation.
// Enqueue() may be called from any thread; each wake-up the thread takes
// every queued batch, hands them to ApplyGroup as one group (one atomic,
// synced write, from which single batches may be refused), then runs each
// request's `done` in enqueue order on the storage thread. Internal to
// src/storage.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "core/messages.h"
#include "storage/storage.h"

namespace replicator::storage::internal {

class GroupCommitter {
 public:
  using Done = std::function<void(absl::Status)>;
  // Applies every batch of `group`, in order, as one atomic write, or none of
  // them (a non-OK return: every request of the group gets it). It may
  // refuse single batches instead by setting their entry of `batch_status`
  // (group.size() entries, all OK on entry): a refused batch applies none of
  // its mutations, its request gets that status, the rest of the group
  // applies. Runs on the storage thread only, so it needs no lock of its own
  // against other groups.
  using ApplyGroup = std::function<absl::Status(const std::vector<core::WriteBatch>& group,
                                                std::vector<absl::Status>* batch_status)>;

  struct Counters {
    uint64_t requests_done = 0;  // requests whose done has run
    uint64_t groups_written = 0;
    uint64_t groups_failed = 0;
    uint64_t batches_refused = 0;  // in groups written, by ApplyGroup's batch_status
    uint64_t mutations = 0;        // of the applied batches of groups written
  };

  // Starts the storage thread.
  explicit GroupCommitter(ApplyGroup apply);
  // Stop().
  ~GroupCommitter();
  GroupCommitter(const GroupCommitter&) = delete;
  GroupCommitter& operator=(const GroupCommitter&) = delete;

  // Queues `batch`; `done` later runs on the storage thread with the group's
  // status. After Stop() began, `done` runs at once on the caller's thread
  // with FailedPreconditionError (a caller bug: storage is being destroyed).
  void Enqueue(core::WriteBatch batch, Done done);

  // Refuses new requests, completes every request already queued, then joins
  // the thread. Idempotent. The owner calls it before
  // destroying whatever ApplyGroup touches. Must not be called from the
  // storage thread.
  void Stop();

  Counters counters() const;

 private:
  struct Request {
    core::WriteBatch batch;
    Done done;
  };

  void Run();

  const ApplyGroup apply_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::vector<Request> queue_;  // guarded by mu_
  bool stopping_ = false;       // guarded by mu_
  Counters counters_;           // guarded by mu_
  std::thread thread_;          // last: starts after every other member exists
};

// The stats every Storage reports: the committer's counters plus what only
// the implementation knows.
StorageStats StatsFrom(const GroupCommitter::Counters& c, uint64_t syncs,
                       uint64_t committed_keys);

}  // namespace replicator::storage::internal
