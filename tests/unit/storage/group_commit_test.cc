// GroupCommitter: grouping, ordering, failure fan-out and draining, driven
// through an ApplyGroup that the test controls (no timing assumptions).
#include "storage/group_commit.h"

#include <future>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace replicator::storage::internal {
namespace {

core::WriteBatch CommitBatch(std::string key) {
  core::WriteBatch batch;
  batch.mutations.push_back(core::PutCommitted{std::move(key), "v", 0, {}});
  return batch;
}

// Records each group's keys; the first group can be held inside ApplyGroup
// until the test releases it, so later requests provably queue behind it.
class Recorder {
 public:
  absl::Status Apply(const std::vector<core::WriteBatch>& group,
                     std::vector<absl::Status>* batch_status) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      std::vector<std::string> keys;
      for (const core::WriteBatch& b : group) {
        for (const core::Mutation& m : b.mutations)
          keys.push_back(std::get<core::PutCommitted>(m).key);
      }
      groups_.push_back(std::move(keys));
    }
    if (hold_first_ && !first_done_) {
      first_done_ = true;
      entered_.set_value();
      release_.get_future().wait();
    }
    for (size_t i = 0; i < group.size(); ++i) {
      const std::string& key = std::get<core::PutCommitted>(group[i].mutations[0]).key;
      if (key.starts_with("refuse")) (*batch_status)[i] = absl::AlreadyExistsError(key);
    }
    return status_;
  }

  std::vector<std::vector<std::string>> groups() {
    std::lock_guard<std::mutex> lock(mu_);
    return groups_;
  }

  bool hold_first_ = false;
  bool first_done_ = false;  // storage thread only
  std::promise<void> entered_;
  std::promise<void> release_;
  absl::Status status_;

 private:
  std::mutex mu_;
  std::vector<std::vector<std::string>> groups_;
};

TEST(GroupCommitterTest, RequestsQueuedDuringAWriteFormOneGroupInOrder) {
  Recorder recorder;
  recorder.hold_first_ = true;
  std::mutex mu;
  std::vector<std::string> completed;
  auto done_for = [&](std::string key) {
    return [&, key](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      std::lock_guard<std::mutex> lock(mu);
      completed.push_back(key);
    };
  };
  {
    GroupCommitter committer([&](const std::vector<core::WriteBatch>& g,
                                 std::vector<absl::Status>* st) { return recorder.Apply(g, st); });
    committer.Enqueue(CommitBatch("k0"), done_for("k0"));
    recorder.entered_.get_future().wait();  // k0's group is being written
    for (int i = 1; i <= 10; ++i) {
      std::string key = "k" + std::to_string(i);
      committer.Enqueue(CommitBatch(key), done_for(key));
    }
    recorder.release_.set_value();
    committer.Stop();
    const GroupCommitter::Counters c = committer.counters();
    EXPECT_EQ(c.groups_written, 2u);
    EXPECT_EQ(c.requests_done, 11u);
    EXPECT_EQ(c.mutations, 11u);
    EXPECT_EQ(c.groups_failed, 0u);
  }
  const std::vector<std::vector<std::string>> groups = recorder.groups();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0], std::vector<std::string>{"k0"});
  std::vector<std::string> expected;
  for (int i = 1; i <= 10; ++i) expected.push_back("k" + std::to_string(i));
  EXPECT_EQ(groups[1], expected);
  expected.insert(expected.begin(), "k0");
  EXPECT_EQ(completed, expected);
}

TEST(GroupCommitterTest, FailedGroupFailsEveryRequestInIt) {
  Recorder recorder;
  recorder.hold_first_ = true;
  recorder.status_ = absl::UnavailableError("disk on fire");
  std::atomic<int> failures{0};
  GroupCommitter committer([&](const std::vector<core::WriteBatch>& g,
                               std::vector<absl::Status>* st) { return recorder.Apply(g, st); });
  auto expect_failure = [&](absl::Status s) {
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(s.message(), "disk on fire");
    ++failures;
  };
  committer.Enqueue(CommitBatch("a"), expect_failure);
  recorder.entered_.get_future().wait();
  for (int i = 0; i < 5; ++i) committer.Enqueue(CommitBatch("b"), expect_failure);
  recorder.release_.set_value();
  committer.Stop();
  EXPECT_EQ(failures.load(), 6);
  const GroupCommitter::Counters c = committer.counters();
  EXPECT_EQ(c.groups_failed, 2u);
  EXPECT_EQ(c.groups_written, 0u);
  EXPECT_EQ(c.mutations, 0u);
  EXPECT_EQ(c.requests_done, 6u);
}

// ApplyGroup refuses batches by key prefix "refuse" (see Recorder).
TEST(GroupCommitterTest, RefusedBatchFailsAloneAndTheGroupIsWritten) {
  Recorder recorder;
  recorder.hold_first_ = true;
  std::mutex mu;
  std::map<std::string, absl::Status> results;
  auto done_for = [&](std::string key) {
    return [&, key](absl::Status s) {
      std::lock_guard<std::mutex> lock(mu);
      results[key] = s;
    };
  };
  GroupCommitter committer([&](const std::vector<core::WriteBatch>& g,
                               std::vector<absl::Status>* st) { return recorder.Apply(g, st); });
  committer.Enqueue(CommitBatch("k0"), done_for("k0"));
  recorder.entered_.get_future().wait();
  for (std::string key : {"k1", "refuse-me", "k2"})
    committer.Enqueue(CommitBatch(key), done_for(key));
  recorder.release_.set_value();
  committer.Stop();
  ASSERT_EQ(recorder.groups().size(), 2u);
  ASSERT_EQ(results.size(), 4u);
  EXPECT_TRUE(results["k0"].ok());
  EXPECT_TRUE(results["k1"].ok());
  EXPECT_TRUE(results["k2"].ok());
  EXPECT_EQ(results["refuse-me"], absl::AlreadyExistsError("refuse-me"));
  const GroupCommitter::Counters c = committer.counters();
  EXPECT_EQ(c.groups_written, 2u);
  EXPECT_EQ(c.batches_refused, 1u);
  EXPECT_EQ(c.mutations, 3u);
  EXPECT_EQ(c.requests_done, 4u);
}

TEST(GroupCommitterTest, FailedGroupOverridesARefusal) {
  Recorder recorder;
  recorder.status_ = absl::UnavailableError("disk on fire");
  std::promise<absl::Status> result;
  GroupCommitter committer([&](const std::vector<core::WriteBatch>& g,
                               std::vector<absl::Status>* st) { return recorder.Apply(g, st); });
  committer.Enqueue(CommitBatch("refuse-me"), [&](absl::Status s) { result.set_value(s); });
  EXPECT_EQ(result.get_future().get().code(), absl::StatusCode::kUnavailable);
  committer.Stop();
  EXPECT_EQ(committer.counters().batches_refused, 0u);
}

TEST(GroupCommitterTest, StopCompletesEverythingQueued) {
  std::atomic<int> done{0};
  {
    GroupCommitter committer([](const std::vector<core::WriteBatch>&, std::vector<absl::Status>*) {
      return absl::OkStatus();
    });
    for (int i = 0; i < 1000; ++i) {
      committer.Enqueue(CommitBatch("k"), [&](absl::Status s) {
        EXPECT_TRUE(s.ok());
        ++done;
      });
    }
  }  // destructor: Stop()
  EXPECT_EQ(done.load(), 1000);
}

TEST(GroupCommitterTest, DoneMayEnqueueAgain) {
  GroupCommitter committer([](const std::vector<core::WriteBatch>&, std::vector<absl::Status>*) {
    return absl::OkStatus();
  });
  std::promise<absl::Status> second;
  committer.Enqueue(CommitBatch("first"), [&](absl::Status s) {
    ASSERT_TRUE(s.ok());
    committer.Enqueue(CommitBatch("second"), [&](absl::Status s2) { second.set_value(s2); });
  });
  EXPECT_TRUE(second.get_future().get().ok());
}

TEST(GroupCommitterTest, EnqueueAfterStopIsRefused) {
  GroupCommitter committer([](const std::vector<core::WriteBatch>&, std::vector<absl::Status>*) {
    return absl::OkStatus();
  });
  committer.Stop();
  absl::Status got;
  committer.Enqueue(CommitBatch("late"), [&](absl::Status s) { got = s; });
  EXPECT_EQ(got.code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace replicator::storage::internal
