#include "storage/group_commit.h"

#include <utility>

namespace replicator::storage::internal {

GroupCommitter::GroupCommitter(ApplyGroup apply)
    : apply_(std::move(apply)), thread_([this] { Run(); }) {}

GroupCommitter::~GroupCommitter() { Stop(); }

void GroupCommitter::Enqueue(core::WriteBatch batch, Done done) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stopping_) {
      const bool was_empty = queue_.empty();
      queue_.push_back(Request{std::move(batch), std::move(done)});
      // The thread sleeps only on an empty queue, so only that transition
      // needs a wake-up.
      if (was_empty) wake_.notify_one();
      return;
    }
  }
  done(absl::FailedPreconditionError("storage is shutting down; write refused"));
}

void GroupCommitter::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    wake_.notify_one();
  }
  if (thread_.joinable()) thread_.join();
}

GroupCommitter::Counters GroupCommitter::counters() const {
  std::lock_guard<std::mutex> lock(mu_);
  return counters_;
}

void GroupCommitter::Run() {
  std::vector<Request> taken;
  std::vector<core::WriteBatch> group;
  std::vector<absl::Status> batch_status;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [this] { return !queue_.empty() || stopping_; });
      // Stopping with an empty queue: everything enqueued, including by
      // callbacks during the drain, has completed.
      if (queue_.empty()) return;
      taken.swap(queue_);
    }
    group.clear();
    group.reserve(taken.size());
    for (Request& r : taken) group.push_back(std::move(r.batch));
    batch_status.assign(group.size(), absl::OkStatus());
    const absl::Status status = apply_(group, &batch_status);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (status.ok()) {
        ++counters_.groups_written;
        for (size_t i = 0; i < group.size(); ++i) {
          if (batch_status[i].ok()) {
            counters_.mutations += group[i].mutations.size();
          } else {
            ++counters_.batches_refused;
          }
        }
      } else {
        ++counters_.groups_failed;
      }
      // Counted before the callbacks run so that a done() reading stats sees
      // its own request.
      counters_.requests_done += taken.size();
    }
    // Callbacks run without the lock, so a done() may Write() again; that
    // request joins the next group.
    for (size_t i = 0; i < taken.size(); ++i) {
      taken[i].done(status.ok() ? std::move(batch_status[i]) : status);
    }
    taken.clear();
  }
}

StorageStats StatsFrom(const GroupCommitter::Counters& c, uint64_t syncs,
                       uint64_t committed_keys) {
  StorageStats s;
  s.batches_written = c.groups_written;
  s.syncs = syncs;
  s.mutations = c.mutations;
  s.committed_keys = committed_keys;
  s.writes = c.requests_done;
  s.write_errors = c.groups_failed;
  s.writes_refused = c.batches_refused;
  return s;
}

}  // namespace replicator::storage::internal
