// Durability and recovery with real processes and RocksDB in temporary
// dirs: kill -9 and restart lose nothing acknowledged, and a coordinator that
// dies mid-put leaves no key blocked.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace replicator {
namespace {

class DurabilityTest : public DeploymentTest {
 protected:
  std::string StatusOf(size_t index) {
    return Cli({"--node=" + deployment_->nodes()[index].address, "status"}).out;
  }
  // The "node <peer id> (...)" line of `status`.
  std::string PeerIdOf(size_t index) {
    std::string s = StatusOf(index);
    size_t start = s.find("node      ");
    if (start == std::string::npos) return "";
    start += 10;
    return s.substr(start, s.find(' ', start) - start);
  }
  void PutKeys(const std::string& prefix, int count) {
    std::vector<std::string> running;
    for (const auto& n : deployment_->nodes()) {
      if (n.pid > 0) running.push_back(n.address);
    }
    for (int i = 0; i < count; ++i) {
      std::string key = absl::StrCat(prefix, i);
      CommandResult r = Put(running[i % running.size()], key, "value-" + key);
      ASSERT_EQ(r.exit_code, 0) << key << ": " << r.err;
    }
  }
  // Every key is readable, with its value, at every running node.
  void ExpectKeysEverywhere(const std::string& prefix, int count) {
    for (const auto& n : deployment_->nodes()) {
      if (n.pid < 0) continue;
      for (int i = 0; i < count; ++i) {
        std::string key = absl::StrCat(prefix, i);
        CommandResult r = Get(n.address, key, "linearizable");
        EXPECT_EQ(r.out, "value-" + key) << n.address << " " << key << ": " << r.err;
      }
    }
  }
};

TEST_F(DurabilityTest, KillNineOfOneNodeAndRestartLosesNothing) {
  StartDeployment(2, 3, {}, "rocksdb");
  PutKeys("before-", 20);
  std::string id = PeerIdOf(4);
  ASSERT_FALSE(id.empty());
  deployment_->Kill(4);
  PutKeys("while-down-", 10);
  ASSERT_TRUE(deployment_->Restart(4).ok());
  EXPECT_EQ(PeerIdOf(4), id) << "a restarted node keeps its peer id";
  WaitForMembership(6);
  ExpectKeysEverywhere("before-", 20);
  ExpectKeysEverywhere("while-down-", 10);
  // Keys it had before the crash are in its own store.
  for (int i = 0; i < 20; ++i) {
    std::string key = absl::StrCat("before-", i);
    ExpectEventually(deployment_->nodes()[4].address, key, "value-" + key);
  }
}

TEST_F(DurabilityTest, KillNineOfEveryNodeAndRestartLosesNothing) {
  StartDeployment(2, 3, {}, "rocksdb");
  PutKeys("acked-", 30);
  for (size_t i = 0; i < deployment_->nodes().size(); ++i) deployment_->Kill(i);
  for (size_t i = 0; i < deployment_->nodes().size(); ++i) {
    ASSERT_TRUE(deployment_->Restart(i).ok()) << i;
  }
  WaitForMembership(6);
  ExpectKeysEverywhere("acked-", 30);
  // The deployment takes new puts, and refuses old keys.
  EXPECT_EQ(Put(deployment_->nodes()[2].address, "after-restart", "v").exit_code, 0);
  EXPECT_EQ(Put(deployment_->nodes()[5].address, "acked-3", "other").exit_code, 2);
}

// `status` tells a dead node from a live one (the directory pings every
// watcher), and shows it a voter again once it is back.
TEST_F(DurabilityTest, StatusShowsAKilledNodeDownAndBackAfterRestart) {
  StartDeployment(2, 3, {}, "rocksdb");
  const std::string victim = deployment_->nodes()[4].address;
  auto state_of_victim = [&]() {
    std::string s = StatusOf(0);
    size_t at = s.find(victim);
    if (at == std::string::npos) return std::string();
    size_t end = s.find('\n', at);
    return s.substr(at, end - at);
  };
  auto wait_for = [&](const std::string& want) {
    auto deadline = std::chrono::steady_clock::now() + kConvergeBound;
    std::string line = state_of_victim();
    while (line.find(want) == std::string::npos && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(100));
      line = state_of_victim();
    }
    return line;
  };
  deployment_->Kill(4);
  EXPECT_NE(wait_for("down").find("down"), std::string::npos);
  // A down voter still counts in its quorum: puts go on with 2 of 3 up.
  EXPECT_EQ(Put(deployment_->nodes()[3].address, "while-shown-down", "v").exit_code, 0);
  ASSERT_TRUE(deployment_->Restart(4).ok());
  std::string back = wait_for("voter");
  EXPECT_NE(back.find("voter"), std::string::npos) << back;
  EXPECT_EQ(back.find("down"), std::string::npos) << back;
}

// The coordinator dies after reserving everywhere and before recording a
// decision: holders resolve the reservations through its cluster (Paxos at
// a higher ballot finds nothing accepted and aborts), so the key is free
// again within a few leases.
TEST_F(DurabilityTest, CoordinatorKilledBeforeDecidingLeavesTheKeyUsable) {
  StartDeployment(2, 3, {"--lease-ms=500"}, "rocksdb", {{1, {"--failpoint=crash-before-decide"}}});
  CommandResult doomed = Put(deployment_->nodes()[1].address, "orphan", "first");
  EXPECT_NE(doomed.exit_code, 0) << "the coordinator should have died";
  EXPECT_TRUE(deployment_->WaitForExit(1, milliseconds(10000)));
  // A bounded number of tries; each is a full put through another cluster.
  CommandResult r;
  for (int attempt = 0; attempt < 50; ++attempt) {
    r = Put(deployment_->nodes()[4].address, "orphan", "second");
    if (r.exit_code == 0) break;
    ASSERT_EQ(r.exit_code, 3) << "only contention with the orphaned reservation is expected: "
                              << r.err;
    std::this_thread::sleep_for(milliseconds(200));
  }
  EXPECT_EQ(r.exit_code, 0) << r.err;
  for (const auto& n : deployment_->nodes()) {
    if (n.pid > 0) ExpectEventually(n.address, "orphan", "second");
  }
}

// The coordinator dies after the commit decision is chosen and before any
// voter hears it: recovery adopts the accepted commit, so the first value
// wins even though its client never heard `ok`.
TEST_F(DurabilityTest, CoordinatorKilledAfterDecidingCommitsTheValue) {
  StartDeployment(2, 3, {"--lease-ms=500"}, "rocksdb", {{2, {"--failpoint=crash-before-commit"}}});
  CommandResult doomed = Put(deployment_->nodes()[2].address, "decided", "first");
  EXPECT_NE(doomed.exit_code, 0);
  EXPECT_TRUE(deployment_->WaitForExit(2, milliseconds(10000)));
  CommandResult r;
  for (int attempt = 0; attempt < 50; ++attempt) {
    r = Put(deployment_->nodes()[3].address, "decided", "second");
    if (r.exit_code == 2) break;
    ASSERT_EQ(r.exit_code, 3) << r.err;
    std::this_thread::sleep_for(milliseconds(200));
  }
  EXPECT_EQ(r.exit_code, 2) << "the decided value must stand: " << r.err;
  for (const auto& n : deployment_->nodes()) {
    if (n.pid > 0) ExpectEventually(n.address, "decided", "first");
  }
}

}  // namespace
}  // namespace replicator
