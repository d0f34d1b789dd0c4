// Partitions between real processes: every node runs in a network namespace
// of its own (netns.h), so the network between chosen pairs of nodes can be
// cut (blackhole routes both ways) while the CLI, run from the root
// namespace, still reaches every node. The tests assert that no key is
// committed twice, that a minority side commits nothing and serves no stale
// linearizable read, and that every acknowledged key is read back by
// linearizable gets at every node once the partition heals.
//
// They need root (CI runs as root) and skip otherwise.
#include <atomic>
#include <chrono>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "harness.h"
#include "netns.h"

namespace replicator {
namespace {

using Clock = std::chrono::steady_clock;

class PartitionTest : public DeploymentTest {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<NamespaceNet>> net = NamespaceNet::Create(0);
    if (absl::IsUnavailable(net.status())) GTEST_SKIP() << net.status().message();
    ASSERT_TRUE(net.ok()) << net.status();
    net_ = std::move(*net);
  }

  void TearDown() override {
    if (net_ && HasFailure()) std::cerr << net_->Describe();
    // Every node is stopped, by its PID, before its namespace goes.
    deployment_.reset();
    net_.reset();
    DeploymentTest::TearDown();
  }

  // `clusters` x `nodes`, node i on host i of the namespace net.
  void StartInNamespaces(int clusters, int nodes) {
    std::map<size_t, node::NodePlacement> placement;
    for (size_t i = 0; i < static_cast<size_t>(clusters * nodes); ++i) {
      absl::StatusOr<size_t> host = net_->AddHost();
      ASSERT_TRUE(host.ok()) << host.status();
      ASSERT_EQ(*host, i);
      placement[i] = net_->Placement(i);
    }
    StartDeployment(clusters, nodes, {}, "memory", {}, std::move(placement));
  }

  // Starts one more node of `cluster` on a new host; its index (= host).
  size_t AddNodeInNamespace(const std::string& cluster) {
    absl::StatusOr<size_t> host = net_->AddHost();
    EXPECT_TRUE(host.ok()) << host.status();
    if (!host.ok()) return 0;
    absl::StatusOr<size_t> index = deployment_->AddNode(cluster, {}, net_->Placement(*host));
    EXPECT_TRUE(index.ok()) << index.status();
    if (!index.ok()) return 0;
    EXPECT_EQ(*index, *host);
    return *index;
  }

  const std::string& Address(size_t index) const { return deployment_->nodes()[index].address; }

  // Of `member list` at `at`: the epoch `cluster` is at there and how many
  // voters it has (0, 0 if `at` does not answer).
  std::pair<int, int> EpochAndVoters(size_t at, const std::string& cluster) {
    CommandResult r = Cli({"--node=" + Address(at), "member", "list"});
    int epoch = 0, voters = 0;
    if (r.exit_code != 0) return {0, 0};
    for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
      std::vector<std::string> c = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (c.size() != 6 || c[0] != cluster) continue;
      if (!absl::SimpleAtoi(c[1], &epoch)) return {0, 0};
      voters += c[2] == "voter";
    }
    return {epoch, voters};
  }
  std::string MemberList(size_t at) {
    CommandResult r = Cli({"--node=" + Address(at), "member", "list"});
    return r.out + r.err;
  }
  // The liveness `member list` at `at` shows for node `of` ("up", "down").
  std::string Liveness(size_t at, size_t of) {
    CommandResult r = Cli({"--node=" + Address(at), "member", "list"});
    for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
      std::vector<std::string> c = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (c.size() == 6 && c[5] == Address(of)) return c[3];
    }
    return "";
  }

  // A linearizable get at `at`, asked again while it answers unavailable
  // (a majority not reachable yet: connections come back after a heal);
  // every other answer is final.
  CommandResult LinearizableGet(size_t at, const std::string& key) {
    CommandResult r;
    const auto deadline = Clock::now() + kConvergeBound;
    do {
      r = Get(Address(at), key, "linearizable");
      if (r.exit_code != 5) return r;
      std::this_thread::sleep_for(milliseconds(100));
    } while (Clock::now() < deadline);
    return r;
  }
  // Every key in `keys` (key -> value) reads back with its value at every
  // node.
  void ExpectEverywhere(const std::map<std::string, std::string>& keys) {
    for (size_t at = 0; at < deployment_->nodes().size(); ++at) {
      for (const auto& [key, value] : keys) {
        CommandResult r = LinearizableGet(at, key);
        EXPECT_EQ(r.exit_code, 0) << "node " << at << " " << key << ": " << r.err;
        EXPECT_EQ(r.out, value) << "node " << at << " " << key;
      }
    }
  }
  // Puts `key` = "v-<key>" through node `at`; it must answer ok.
  void PutOk(size_t at, const std::string& key, std::map<std::string, std::string>* acked) {
    CommandResult r = Put(Address(at), key, "v-" + key);
    ASSERT_EQ(r.exit_code, 0) << key << " through node " << at << ": " << r.out << r.err;
    (*acked)[key] = "v-" + key;
  }

  static int64_t MillisSince(Clock::time_point t) {
    return std::chrono::duration_cast<milliseconds>(Clock::now() - t).count();
  }

  std::unique_ptr<NamespaceNet> net_;
};

// Issue 10. Cluster c2 = {A, B, C} grows to {A, B, C, D, E} while A is
// paused past the directory's ping; then {A, B} is cut from {C, D, E}. A's
// old view {A, B, C} and the new one have majorities ({A, B} and
// {C, D, E}) that do not intersect: the epoch rule must keep A's side from
// committing. c1 (3 nodes, one of them the bootstrap peer serving the
// directory) is reachable from both sides, so each side has every other
// cluster's votes and only c2's configuration decides.
TEST_F(PartitionTest, APausedNodeAndAPartitionNeverCommitAKeyTwice) {
  const auto started = Clock::now();
  ASSERT_NO_FATAL_FAILURE(StartInNamespaces(2, 3));
  constexpr size_t kA = 3, kB = 4, kC = 5;
  const size_t bootstrap = 0;
  std::map<std::string, std::string> acked;  // every put that answered ok
  for (size_t at : {kA, size_t{1}, kB, size_t{0}, kC, size_t{2}}) {
    ASSERT_NO_FATAL_FAILURE(PutOk(at, absl::StrCat("before-", at), &acked));
  }

  // A freezes, and stays frozen until the directory shows it down (it
  // missed a ping: the directory pings every 2 s).
  const auto paused = Clock::now();
  deployment_->Pause(kA);
  ASSERT_TRUE(Eventually([&] { return Liveness(bootstrap, kA) == "down"; }))
      << MemberList(bootstrap);
  // D and E join c2 and are promoted by consensus, one epoch each, while A
  // is still paused: epoch 3 has 5 voters.
  const size_t kD = AddNodeInNamespace("c2");
  const size_t kE = AddNodeInNamespace("c2");
  ASSERT_FALSE(HasFailure());
  const auto grown_by = Clock::now() + 3 * kConvergeBound;
  auto grown = [&](size_t at) { return EpochAndVoters(at, "c2") == std::pair{3, 5}; };
  for (size_t at : {kB, kC, kD, kE}) {
    while (!grown(at) && Clock::now() < grown_by) std::this_thread::sleep_for(milliseconds(200));
    ASSERT_TRUE(grown(at)) << "node " << at << ":\n" << MemberList(at);
  }
  for (size_t at : {kD, kE, kB}) {
    ASSERT_NO_FATAL_FAILURE(PutOk(at, absl::StrCat("paused-", at), &acked));
  }

  // The partition is in place before A runs again, so that A cannot hear
  // of epochs 2 and 3 from C, D or E; then A resumes, its view possibly
  // still {A, B, C}, and both sides put one fresh key at once. (In practice
  // A hears of epoch 3 from B or c1 within milliseconds of resuming; what
  // is asserted holds either way.)
  absl::Status cut = net_->Partition({kA, kB}, {kC, kD, kE});
  ASSERT_TRUE(cut.ok()) << cut;
  deployment_->Resume(kA);
  std::cout << "A paused for " << MillisSince(paused) << " ms" << std::endl;
  const std::string key = "contested";
  struct Attempt {
    int exit_code;
    std::string message;
    int64_t start_ms, end_ms;  // since the race began
  };
  std::vector<Attempt> via_a, via_c;
  std::atomic<bool> c_done{false};
  const auto race = Clock::now();
  auto attempt = [&](size_t at, const std::string& value) {
    int64_t start = MillisSince(race);
    CommandResult r = Put(Address(at), key, value);
    return Attempt{r.exit_code, r.out + r.err, start, MillisSince(race)};
  };
  // C's side holds a majority of epoch 3 and c1's votes: it must commit,
  // though while A keeps trying it may meet A's reservation at c1 (exit 3:
  // A holds it for a reserve round each attempt before aborting).
  std::thread majority([&] {
    for (int i = 0; i < 8; ++i) {
      via_c.push_back(attempt(kC, "from-C"));
      if (via_c.back().exit_code == 0 || via_c.back().exit_code == 2) break;
      std::this_thread::sleep_for(milliseconds(200));
    }
    c_done = true;
  });
  // A's side tries twice at least, and until C's side is done or 5 times
  // (then C's side has the key to itself).
  std::thread minority([&] {
    for (int i = 0; i < 5; ++i) {
      via_a.push_back(attempt(kA, "from-A"));
      if (c_done && i >= 1) break;
      std::this_thread::sleep_for(milliseconds(200));
    }
  });
  majority.join();
  minority.join();
  auto describe = [](const std::vector<Attempt>& attempts) {
    return absl::StrJoin(attempts, "\n", [](std::string* out, const Attempt& a) {
      absl::StrAppend(out, "  ", a.start_ms, "-", a.end_ms, " ms: exit ", a.exit_code, ": ",
                      a.message);
    });
  };
  const std::string attempts =
      absl::StrCat("through A:\n", describe(via_a), "\nthrough C:\n", describe(via_c));
  std::cout << attempts << std::endl;
  int oks = 0;
  for (const Attempt& a : via_a) {
    oks += a.exit_code == 0;
    // Refused (unavailable, reserved) or told C's value exists; never ok,
    // and never a usage error (the CLI reaches A).
    EXPECT_TRUE(a.exit_code == 2 || a.exit_code == 3 || a.exit_code == 5) << attempts;
  }
  for (const Attempt& a : via_c) oks += a.exit_code == 0;
  EXPECT_LE(oks, 1) << "the key answered ok twice:\n" << attempts;
  ASSERT_FALSE(via_c.empty());
  ASSERT_EQ(via_c.back().exit_code, 0) << "the majority side did not commit:\n" << attempts;
  acked[key] = "from-C";

  // Still cut off: A and B serve no stale linearizable read (not found, or
  // A's value), and A hears of the new configuration anyway (from B and
  // c1).
  for (size_t at : {kA, kB}) {
    CommandResult r = Get(Address(at), key, "linearizable");
    EXPECT_NE(r.exit_code, 4) << "node " << at << " missed an acknowledged put: " << r.err;
    if (r.exit_code == 0) {
      EXPECT_EQ(r.out, "from-C") << "node " << at;
    }
  }
  EXPECT_TRUE(Eventually([&] { return grown(kA); })) << MemberList(kA);
  // A key only the minority side is asked for is refused there, whichever
  // of its nodes coordinates, and nothing is stored (checked after the
  // heal).
  for (size_t at : {kA, kB}) {
    CommandResult r = Put(Address(at), "minority-only", "lost");
    EXPECT_EQ(r.exit_code, 5) << "node " << at << ": " << r.out << r.err;
    EXPECT_TRUE(absl::StrContains(r.err, "nothing stored")) << "node " << at << ": " << r.err;
  }
  // The majority side goes on committing.
  for (size_t at : {kC, kD, kE}) {
    ASSERT_NO_FATAL_FAILURE(PutOk(at, absl::StrCat("partitioned-", at), &acked));
  }

  absl::Status healed = net_->HealAll();
  ASSERT_TRUE(healed.ok()) << healed;
  ExpectEverywhere(acked);
  for (size_t at = 0; at < deployment_->nodes().size(); ++at) {
    CommandResult r = LinearizableGet(at, "minority-only");
    EXPECT_EQ(r.exit_code, 4) << "node " << at << ": " << r.out << r.err;
  }
  // The key is C's for good: A's put is told it exists.
  CommandResult again = Put(Address(kA), key, "from-A");
  EXPECT_EQ(again.exit_code, 2) << again.out << again.err;
  std::cout << "test body took " << MillisSince(started) << " ms" << std::endl;
}

// One voter of three cut off from the other two (but not from the client):
// it serves no stale linearizable read, its puts are refused as
// unavailable, and nothing it was asked to put is committed once the
// partition heals.
TEST_F(PartitionTest, AVoterCutOffServesNoStaleReadAndCommitsNothing) {
  const auto started = Clock::now();
  ASSERT_NO_FATAL_FAILURE(StartInNamespaces(1, 3));
  constexpr size_t kCut = 2;
  std::map<std::string, std::string> acked;
  ASSERT_NO_FATAL_FAILURE(PutOk(kCut, "before", &acked));
  ExpectEventually(Address(kCut), "before", "v-before");

  absl::Status cut = net_->Partition({kCut}, {0, 1});
  ASSERT_TRUE(cut.ok()) << cut;
  ASSERT_NO_FATAL_FAILURE(PutOk(0, "during", &acked));
  // The cut node never got the commit (the partition is real)...
  CommandResult local = Get(Address(kCut), "during", "local");
  EXPECT_EQ(local.exit_code, 4) << local.out << local.err;
  // ...and will not pass its own view off as the cluster's.
  CommandResult read = Get(Address(kCut), "during", "linearizable");
  EXPECT_EQ(read.exit_code, 5) << read.out << read.err;
  EXPECT_TRUE(absl::StrContains(read.err, "of 3 voters of cluster c1 answered")) << read.err;
  // A put through it is refused, with nothing stored.
  CommandResult put = Put(Address(kCut), "minority", "lost");
  EXPECT_EQ(put.exit_code, 5) << put.out << put.err;
  EXPECT_TRUE(absl::StartsWith(put.err, "unavailable: ")) << put.err;
  EXPECT_FALSE(absl::StrContains(put.err, "may still have been applied")) << put.err;
  // The majority side is unaffected.
  ASSERT_NO_FATAL_FAILURE(PutOk(1, "during-2", &acked));

  absl::Status healed = net_->HealAll();
  ASSERT_TRUE(healed.ok()) << healed;
  ExpectEverywhere(acked);
  for (size_t at = 0; at < 3; ++at) {
    CommandResult r = LinearizableGet(at, "minority");
    EXPECT_EQ(r.exit_code, 4) << "node " << at << ": " << r.out << r.err;
  }
  // The key is free: a put through the majority takes it (once any
  // reservation the cut node left has expired).
  CommandResult taken;
  for (int i = 0; i < 10; ++i) {
    taken = Put(Address(0), "minority", "kept");
    if (taken.exit_code != 3 && taken.exit_code != 5) break;
    std::this_thread::sleep_for(milliseconds(500));
  }
  ASSERT_EQ(taken.exit_code, 0) << taken.out << taken.err;
  acked["minority"] = "kept";
  ExpectEverywhere(acked);
  std::cout << "test body took " << MillisSince(started) << " ms" << std::endl;
}

}  // namespace
}  // namespace replicator
