// Membership by consensus on real processes: replacing a dead voter (add,
// then remove) so that quorums shrink safely, the operator commands'
// answers, and nodes started together ending in one configuration. Each
// test asserts that every acknowledged key is read back by linearizable
// gets at every cluster and that no key answered ok twice.
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "harness.h"

namespace replicator {
namespace {

class MembershipTest : public DeploymentTest {
 protected:
  // One parsed line of `member list`.
  struct Row {
    std::string cluster;
    std::string epoch;
    std::string role;
    std::string liveness;
    std::string id;
    std::string address;
  };

  std::vector<Row> Members(const std::string& at) {
    CommandResult r = Cli({"--node=" + at, "member", "list"});
    std::vector<Row> rows;
    if (r.exit_code != 0) return rows;
    bool header = true;
    for (absl::string_view line : absl::StrSplit(r.out, '\n', absl::SkipEmpty())) {
      if (header) {
        header = false;
        continue;
      }
      std::vector<std::string> c = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (c.size() == 6) rows.push_back(Row{c[0], c[1], c[2], c[3], c[4], c[5]});
    }
    return rows;
  }
  std::optional<Row> RowOf(const std::string& at, const std::string& address) {
    for (Row& row : Members(at)) {
      if (row.address == address) return row;
    }
    return std::nullopt;
  }
  std::string ListText(const std::string& at) {
    return Cli({"--node=" + at, "member", "list"}).out;
  }

  // Puts `keys` through `nodes` in turn; every put must answer ok.
  void PutAllOk(const std::vector<std::string>& nodes, const std::vector<std::string>& keys) {
    for (size_t i = 0; i < keys.size(); ++i) {
      CommandResult r = Put(nodes[i % nodes.size()], keys[i], "v-" + keys[i]);
      ASSERT_EQ(r.exit_code, 0) << keys[i] << ": " << r.err;
    }
  }
  // Every key is read back, with its value, by a linearizable get at each
  // of `nodes`.
  void ExpectReadBack(const std::vector<std::string>& nodes, const std::vector<std::string>& keys) {
    for (const std::string& node : nodes) {
      for (const std::string& k : keys) {
        CommandResult r = Get(node, k, "linearizable");
        EXPECT_EQ(r.exit_code, 0) << node << " " << k << ": " << r.err;
        EXPECT_EQ(r.out, "v-" + k) << node << " " << k;
      }
    }
  }
  // A second put of every key answers keyExists with the first value.
  void ExpectNoSecondOk(const std::string& node, const std::vector<std::string>& keys) {
    for (const std::string& k : keys) {
      CommandResult r = Put(node, k, "other");
      EXPECT_EQ(r.exit_code, 2) << k << ": " << r.out << r.err;
    }
  }
  // Starts a node of `cluster` and waits until `member list` at `at` shows
  // it a voter at `epoch` (it catches up and promotes itself). Its address,
  // or empty (with the failure recorded) if it never did.
  std::string AddVoter(const std::string& cluster, const std::string& at,
                       const std::string& epoch) {
    auto added = deployment_->AddNode(cluster);
    EXPECT_TRUE(added.ok()) << added.status();
    if (!added.ok()) return "";
    const std::string address = deployment_->nodes()[*added].address;
    bool promoted = Eventually([&] {
      std::optional<Row> row = RowOf(at, address);
      return row && row->role == "voter" && row->epoch == epoch;
    });
    EXPECT_TRUE(promoted) << ListText(at);
    return promoted ? address : "";
  }
  static std::vector<std::string> Keys(const std::string& prefix, int n) {
    std::vector<std::string> keys;
    for (int i = 0; i < n; ++i) keys.push_back(prefix + std::to_string(i));
    return keys;
  }
};

TEST_F(MembershipTest, ADeadVoterIsReplacedAndTheShrunkQuorumsStillCommit) {
  StartDeployment(2, 3, {}, "rocksdb");
  const auto& nodes = deployment_->nodes();
  const std::string c2 = AddressesOf("c2")[0];
  const std::vector<std::string> before = Keys("before-", 10);
  PutAllOk({nodes[0].address, c2}, before);
  // A voter of c1 dies for good.
  const std::string dead_address = nodes[2].address;
  std::optional<Row> dead = RowOf(c2, dead_address);
  ASSERT_TRUE(dead.has_value()) << ListText(c2);
  deployment_->Kill(2);
  // A fresh node joins c1, catches up and promotes itself through consensus.
  const std::string fresh = AddVoter("c1", c2, "2");
  ASSERT_FALSE(fresh.empty());
  // The dead one is removed, asked at a node of the other cluster.
  CommandResult removed = Cli({"--node=" + c2, "member", "remove", dead->id});
  ASSERT_EQ(removed.exit_code, 0) << removed.out << removed.err;
  EXPECT_TRUE(absl::StrContains(removed.out, "removed from cluster c1: epoch 3")) << removed.out;
  EXPECT_TRUE(Eventually([&] {
    std::optional<Row> row = RowOf(nodes[0].address, dead_address);
    return row && row->role == "learner" && row->epoch == "3";
  })) << ListText(nodes[0].address);
  // c1 counts 3 voters again: with one more of the old ones gone, two of
  // three still commit (two of four would not have).
  deployment_->Kill(1);
  const std::vector<std::string> after = Keys("after-", 10);
  PutAllOk({fresh, nodes[0].address, c2}, after);
  std::vector<std::string> all = before;
  all.insert(all.end(), after.begin(), after.end());
  ExpectReadBack({nodes[0].address, fresh, c2, AddressesOf("c2")[2]}, all);
  ExpectNoSecondOk(fresh, all);
}

TEST_F(MembershipTest, OperatorCommandsAnswerLikeEtcdctl) {
  StartDeployment(1, 4);
  const auto& nodes = deployment_->nodes();
  const std::string at = nodes[0].address;
  // Everyone became a voter: epoch 1 founded by three, epoch 2 added one.
  std::vector<Row> rows;
  EXPECT_TRUE(Eventually([&] {
    rows = Members(at);
    return rows.size() == 4 && std::all_of(rows.begin(), rows.end(), [](const Row& row) {
             return row.role == "voter" && row.epoch == "2";
           });
  })) << ListText(at);
  ASSERT_EQ(rows.size(), 4u) << ListText(at);
  CommandResult twice = Cli({"--node=" + at, "member", "promote", rows[1].id});
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(twice.err, "is already a voter of cluster c1 (epoch 2)"))
      << twice.err;
  CommandResult unknown = Cli({"--node=" + at, "member", "remove", "12D3KooWnobody"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(unknown.err, "is not a member of any cluster")) << unknown.err;
  CommandResult missing = Cli({"--node=" + at, "member", "remove"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(missing.err, "member remove takes PEER_ID")) << missing.err;
  CommandResult force = Cli({"--node=" + at, "member", "promote", rows[1].id, "--force"});
  EXPECT_EQ(force.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(force.err, "--force applies to member remove only")) << force.err;
  // Four to three is allowed; three to two only when forced.
  CommandResult first = Cli({"--node=" + at, "member", "remove", rows[3].id});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  EXPECT_TRUE(absl::StrContains(first.out, "epoch 3")) << first.out;
  CommandResult refused = Cli({"--node=" + at, "member", "remove", rows[2].id});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(refused.err, "would leave cluster c1 with 2 voters"))
      << refused.err;
  CommandResult forced = Cli({"--node=" + at, "member", "remove", rows[2].id, "--force"});
  ASSERT_EQ(forced.exit_code, 0) << forced.err;
  EXPECT_TRUE(absl::StrContains(forced.out, "epoch 4")) << forced.out;
  // The removed nodes still serve their reads and take puts as
  // coordinators, but no longer vote.
  const std::vector<std::string> keys = Keys("k", 5);
  PutAllOk({rows[3].address, rows[0].address}, keys);
  ExpectReadBack({rows[0].address, rows[1].address}, keys);
  ExpectNoSecondOk(rows[2].address, keys);
}

TEST_F(MembershipTest, NodesStartedTogetherEndInOneConfiguration) {
  StartDeployment(2, 5);
  // Five voters: founded by three (epoch 1), two promotions, one at a time;
  // every node of every cluster ends at epoch 3 of each, all voters.
  for (const auto& n : deployment_->nodes()) {
    EXPECT_TRUE(Eventually([&] {
      std::vector<Row> rows = Members(n.address);
      if (rows.size() != 10) return false;
      for (const Row& row : rows) {
        if (row.role != "voter" || row.epoch != "3") return false;
      }
      return true;
    })) << ListText(n.address);
  }
  const std::vector<std::string> keys = Keys("k", 10);
  PutAllOk(AddressesOf("c1"), keys);
  ExpectReadBack(AddressesOf("c2"), keys);
}

// Every node keeps and serves the member map: with the federation's first
// node down, a new node joins through another one, is promoted, a dead
// voter is removed, puts commit; the first node, restarted, learns all of
// it from the others.
TEST_F(MembershipTest, TheFirstNodeDownStopsNoJoinPutOrChange) {
  StartDeployment(2, 3, {}, "rocksdb");
  const auto& nodes = deployment_->nodes();
  const std::string c2 = AddressesOf("c2")[0];
  const std::vector<std::string> before = Keys("before-", 6);
  PutAllOk({nodes[1].address, c2}, before);
  const std::string first_address = nodes[0].address;
  std::optional<Row> first = RowOf(c2, first_address);
  ASSERT_TRUE(first.has_value()) << ListText(c2);
  deployment_->Kill(0);
  // Its --bootstrap list starts with the dead first node.
  const std::string fresh = AddVoter("c1", c2, "2");
  ASSERT_FALSE(fresh.empty());
  CommandResult removed = Cli({"--node=" + fresh, "member", "remove", first->id});
  ASSERT_EQ(removed.exit_code, 0) << removed.out << removed.err;
  EXPECT_TRUE(absl::StrContains(removed.out, "epoch 3")) << removed.out;
  const std::vector<std::string> after = Keys("after-", 6);
  PutAllOk({fresh, c2, nodes[2].address}, after);
  std::vector<std::string> all = before;
  all.insert(all.end(), after.begin(), after.end());
  ExpectReadBack({fresh, nodes[1].address, c2}, all);

  // The first node comes back with its own map and hears the rest from
  // the others: the new member, and that it was removed.
  ASSERT_TRUE(deployment_->Restart(0).ok());
  EXPECT_TRUE(Eventually([&] {
    std::optional<Row> row = RowOf(first_address, fresh);
    std::optional<Row> self = RowOf(first_address, first_address);
    return row && row->role == "voter" && row->epoch == "3" && self && self->role == "learner";
  })) << ListText(first_address);
  ExpectReadBack({first_address}, all);
  ExpectNoSecondOk(first_address, all);
}

// A cluster founded on a running federation, while the node that started
// the federation is down: the first cluster's other voters found it by
// consensus (generation 2), its nodes catch up with the federation and
// then answer linearizable gets for every key committed before it existed,
// and a put of one of those keys through it answers keyExists.
TEST_F(MembershipTest, AClusterAddedLaterIsFoundedWithoutTheFirstNodeAndReadsEveryOlderKey) {
  StartDeployment(1, 3, {}, "rocksdb");
  const auto& nodes = deployment_->nodes();
  const std::vector<std::string> before = Keys("before-", 8);
  PutAllOk({nodes[0].address, nodes[1].address, nodes[2].address}, before);
  deployment_->Kill(0);
  std::vector<std::string> young;
  for (int i = 0; i < 3; ++i) {
    auto added = deployment_->AddNode("c9");
    ASSERT_TRUE(added.ok()) << added.status();
    young.push_back(deployment_->nodes()[*added].address);
  }
  for (const std::string& at : young) {
    EXPECT_TRUE(Eventually([&] {
      CommandResult r = Cli({"--node=" + at, "status"});
      return absl::StrContains(r.out,
                               "federation generation 2 (cluster c9 founded at "
                               "generation 2); settled");
    })) << Cli({"--node=" + at, "status"}).out;
  }
  // Every founding voter of c9 is a voter at epoch 1, seen from c1 too.
  for (const std::string& at : young) {
    std::optional<Row> row = RowOf(nodes[1].address, at);
    ASSERT_TRUE(row.has_value()) << ListText(nodes[1].address);
    EXPECT_EQ(row->role, "voter") << ListText(nodes[1].address);
    EXPECT_EQ(row->epoch, "1");
  }
  ExpectReadBack(young, before);
  ExpectNoSecondOk(young[0], before);
  // Puts through either cluster now count both.
  const std::vector<std::string> after = Keys("after-", 6);
  PutAllOk({young[1], nodes[2].address}, after);
  ExpectReadBack({young[2], nodes[1].address}, after);
}

// A cluster lost for good (every node killed) holds up every put, since
// every put counts it; the operator removes it by consensus of the others,
// and the federation commits again without it. The first cluster can never
// be removed, and a removal is answered once.
TEST_F(MembershipTest, ALostClusterIsRemovedByTheOthersAndPutsCommitWithoutIt) {
  StartDeployment(2, 3, {}, "rocksdb");
  const auto& nodes = deployment_->nodes();
  const std::vector<std::string> c1 = AddressesOf("c1");
  const std::vector<std::string> c2 = AddressesOf("c2");
  const std::vector<std::string> before = Keys("before-", 6);
  PutAllOk({c1[0], c2[0]}, before);
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].cluster == "c2") deployment_->Kill(i);
  }
  CommandResult stuck = Put(c1[0], "while-lost", "v");
  EXPECT_EQ(stuck.exit_code, 5) << "a put counts c2, which is gone: " << stuck.out << stuck.err;

  CommandResult first = Cli({"--node=" + c1[1], "cluster", "remove", "c1"});
  EXPECT_EQ(first.exit_code, 1) << first.out << first.err;
  EXPECT_TRUE(absl::StrContains(first.err, "can never be removed")) << first.err;
  CommandResult removed = Cli({"--node=" + c1[1], "cluster", "remove", "c2"});
  ASSERT_EQ(removed.exit_code, 0) << removed.out << removed.err;
  EXPECT_TRUE(
      absl::StrContains(removed.out, "Cluster c2 removed from the federation at generation 3"))
      << removed.out;
  CommandResult again = Cli({"--node=" + c1[2], "cluster", "remove", "c2"});
  EXPECT_EQ(again.exit_code, 1) << again.out << again.err;
  EXPECT_TRUE(absl::StrContains(again.err, "removed already")) << again.err;

  // Every node left knows it (from the removal's commit); member list shows
  // c2's nodes removed.
  for (const std::string& at : c1) {
    EXPECT_TRUE(Eventually([&] {
      for (const Row& row : Members(at)) {
        if (row.cluster == "c2" && row.role != "removed") return false;
      }
      return true;
    })) << ListText(at);
  }
  const std::vector<std::string> after = Keys("after-", 6);
  PutAllOk(c1, after);
  ExpectReadBack(c1, before);
  ExpectReadBack(c1, after);
  ExpectNoSecondOk(c1[2], before);
  ExpectNoSecondOk(c1[0], after);
}

}  // namespace
}  // namespace replicator
