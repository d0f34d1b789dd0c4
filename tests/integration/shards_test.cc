// Nodes that run several engines (--shards; core/shard.h), with real
// processes and RocksDB: puts and gets of keys of every shard, a restart
// and a new node that catch up shard by shard, and nodes or data dirs of
// another shard count refused with a message that says what to do.
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "core/shard.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace replicator {
namespace {

class ShardsTest : public DeploymentTest {
 protected:
  // `count` keys, every one of `shards` shards among them.
  static std::vector<std::string> KeysOfEveryShard(const std::string& prefix, int count,
                                                   uint32_t shards) {
    std::vector<std::string> keys;
    std::vector<int> per_shard(shards, 0);
    for (int i = 0; i < count; ++i) {
      keys.push_back(absl::StrCat(prefix, i));
      ++per_shard[core::ShardOf(keys.back(), shards)];
    }
    for (uint32_t s = 0; s < shards; ++s) EXPECT_GT(per_shard[s], 0) << "shard " << s;
    return keys;
  }
  // Puts each key through the running nodes in turn, from node `through`.
  void PutEach(const std::vector<std::string>& keys, size_t through) {
    const auto& nodes = deployment_->nodes();
    size_t at = through;
    for (size_t i = 0; i < keys.size(); ++i) {
      while (nodes[at % nodes.size()].pid <= 0) ++at;
      CommandResult r = Put(nodes[at++ % nodes.size()].address, keys[i], "v-" + keys[i]);
      ASSERT_EQ(r.exit_code, 0) << keys[i] << ": " << r.err;
    }
  }
  // Polls until node `index` serves every key locally, at most kConvergeBound.
  void ExpectServedLocally(size_t index, const std::vector<std::string>& keys) {
    const std::string& node = deployment_->nodes()[index].address;
    for (const std::string& k : keys) {
      auto deadline = std::chrono::steady_clock::now() + kConvergeBound;
      CommandResult r = Get(node, k);
      while (r.out != "v-" + k && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(milliseconds(100));
        r = Get(node, k);
      }
      EXPECT_EQ(r.out, "v-" + k) << k << " at node " << index << ": " << r.err;
    }
  }
};

TEST_F(ShardsTest, KeysOfEveryShardArePutAndReadEverywhereAndSurviveARestart) {
  StartDeployment(2, 3, {"--shards=2"}, "rocksdb");
  const std::vector<std::string> keys = KeysOfEveryShard("sharded-", 24, 2);
  PutEach(keys, 0);
  for (size_t n = 0; n < deployment_->nodes().size(); ++n) ExpectServedLocally(n, keys);
  // A key of either shard is still written once, whichever node is asked.
  for (const std::string& k : {keys[0], keys[1]}) {
    CommandResult again = Put(deployment_->nodes()[4].address, k, "other");
    EXPECT_EQ(again.exit_code, 2) << k << ": " << again.out << again.err;
    EXPECT_NE(again.err.find("choose another key"), std::string::npos) << again.err;
    EXPECT_EQ(Get(deployment_->nodes()[1].address, k, "linearizable").out, "v-" + k);
  }
  // Each shard has its own storage in the data dir.
  const std::string dir = deployment_->nodes()[4].data_dir;
  EXPECT_TRUE(std::filesystem::is_directory(dir + "/db")) << dir;
  EXPECT_TRUE(std::filesystem::is_directory(dir + "/db-shard-1")) << dir;
  CommandResult status = Cli({"--node=" + deployment_->nodes()[4].address, "status"});
  // Each shard also holds its own system key of c2's founding (core/founding.h).
  EXPECT_NE(status.out.find(absl::StrCat(keys.size() + 2, " committed, 0 reserved, in 2 shards")),
            std::string::npos)
      << status.out;

  // Down while more keys commit, then back: every shard catches up.
  deployment_->Kill(4);
  const std::vector<std::string> later = KeysOfEveryShard("later-", 16, 2);
  PutEach(later, 0);
  ASSERT_TRUE(deployment_->Restart(4).ok());
  ExpectServedLocally(4, later);
  ExpectServedLocally(4, keys);
}

TEST_F(ShardsTest, ANewShardedNodeCatchesUpEveryShardAndIsPromoted) {
  StartDeployment(1, 3, {"--shards=3"}, "rocksdb");
  const std::vector<std::string> keys = KeysOfEveryShard("before-", 30, 3);
  PutEach(keys, 0);
  auto added = deployment_->AddNode("c1");
  ASSERT_TRUE(added.ok()) << added.status();
  ExpectServedLocally(*added, keys);
  // Every shard promotes it by its own consensus; the node shows itself a
  // voter once all three did.
  WaitForMembership(4);
  const std::vector<std::string> after = KeysOfEveryShard("after-", 12, 3);
  PutEach(after, *added);
  for (size_t n = 0; n < deployment_->nodes().size(); ++n) ExpectServedLocally(n, after);
}

TEST_F(ShardsTest, ANodeOfAnotherShardCountCannotJoinAndADataDirKeepsItsCount) {
  insecure_ = true;
  StartDeployment(1, 3, {"--shards=2"}, "rocksdb");
  // A new node that would cut the keys another way is refused at its join.
  auto other = deployment_->AddNode("c1", {"--shards=1"});
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("runs 1 shards and this node 2"), std::string::npos)
      << other.status();
  EXPECT_NE(other.status().message().find("--shards=2"), std::string::npos) << other.status();

  // A data dir started with 2 shards refuses to start with 3.
  deployment_->Kill(2);
  const std::string dir = deployment_->nodes()[2].data_dir;
  CommandResult r = RunCommand({REPLICATORD_PATH, "--cluster=c1", "--data-dir=" + dir, "--insecure",
                                "--shards=3", "--listen=127.0.0.1:0"},
                               kCommandTimeout);
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.err.find("holds 2 shards"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--shards=2"), std::string::npos) << r.err;
  // And a count out of range is refused before anything starts.
  CommandResult zero = RunCommand(
      {REPLICATORD_PATH, "--cluster=c1", "--data-dir=" + dir, "--insecure", "--shards=0"},
      kCommandTimeout);
  EXPECT_EQ(zero.exit_code, 1) << zero.err;
  EXPECT_NE(zero.err.find("--shards must be 1 to 256"), std::string::npos) << zero.err;
  // With its own count it starts and serves what it had.
  ASSERT_TRUE(deployment_->Restart(2).ok());
  CommandResult put = Put(deployment_->nodes()[0].address, "after-restart", "v-after-restart");
  ASSERT_EQ(put.exit_code, 0) << put.err;
  ExpectServedLocally(2, {"after-restart"});
}

}  // namespace
}  // namespace replicator
