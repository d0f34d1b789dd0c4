// The member map every node keeps: what is written reads back the same,
// down voters are saved as voters, files of earlier versions still read,
// anything malformed is refused with the file and line named, never
// half-loaded; maps merge to the same result in any order; founding sets
// are named once, by the namer only, and never replaced.
#include "node/directory_state.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace replicator::node {
namespace {

using core::PeerState;

Entry E(core::PeerId id, core::ClusterId cluster, std::string address, PeerState state,
        uint64_t stamp) {
  return Entry{core::Member{std::move(id), std::move(cluster), std::move(address), state}, stamp};
}

const std::vector<Entry> kMembers = {
    E("12D3KooWa", "eu", "10.0.0.1:7001", PeerState::kVoter, 11),
    E("12D3KooWb", "eu", "node-b.example:7001", PeerState::kCatchingUp, 12),
    E("12D3KooWc", "us-east.1", "[::1]:7001", PeerState::kVoter, 13),
    E("12D3KooWd", "eu", "10.0.0.4:7001", PeerState::kVoter, 14),
    E("12D3KooWe", "eu", "10.0.0.5:7001", PeerState::kVoter, 15),
};
const DirectoryState kState = {
    0x0123456789abcdefULL,
    true,
    kMembers,
    {core::Configuration{"eu", 1, {"12D3KooWa", "12D3KooWd", "12D3KooWe"}, 1}},
};

TEST(DirectoryStateTest, WhatIsWrittenReadsBack) {
  const std::string text = EncodeDirectoryState(kState);
  EXPECT_EQ(text,
            "replicator-membership 4\n"
            "federation 0123456789abcdef\n"
            "names-founding yes\n"
            "12D3KooWa eu 10.0.0.1:7001 voter 11\n"
            "12D3KooWb eu node-b.example:7001 catching-up 12\n"
            "12D3KooWc us-east.1 [::1]:7001 voter 13\n"
            "12D3KooWd eu 10.0.0.4:7001 voter 14\n"
            "12D3KooWe eu 10.0.0.5:7001 voter 15\n"
            "founding eu 1 12D3KooWa 12D3KooWd 12D3KooWe\n");
  absl::StatusOr<DirectoryState> back = DecodeDirectoryState(text, "m");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == kState);
  DirectoryState joiner;
  joiner.federation = 7;
  absl::StatusOr<DirectoryState> empty = DecodeDirectoryState(EncodeDirectoryState(joiner), "m");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(*empty == joiner);
  EXPECT_FALSE(empty->names_founding);
}

TEST(DirectoryStateTest, FilesOfTheFirstNodeFromEarlierVersionsStillRead) {
  // Version 3: every node's, founding sets without generations; they were
  // all named as the deployment started, and take generations in the order
  // of their clusters.
  absl::StatusOr<DirectoryState> v3 = DecodeDirectoryState(
      "replicator-membership 3\n"
      "federation 00000000000000aa\n"
      "names-founding no\n"
      "12D3KooWa eu a:1 voter 1\n12D3KooWb eu b:1 voter 1\n12D3KooWc eu c:1 voter 1\n"
      "12D3KooWx ap x:1 voter 1\n12D3KooWy ap y:1 voter 1\n12D3KooWz ap z:1 voter 1\n"
      "founding eu 12D3KooWa 12D3KooWb 12D3KooWc\n"
      "founding ap 12D3KooWx 12D3KooWy 12D3KooWz\n",
      "m");
  ASSERT_TRUE(v3.ok()) << v3.status();
  ASSERT_EQ(v3->founding.size(), 2u);
  EXPECT_TRUE(v3->founding[0] ==
              (core::Configuration{"ap", 1, {"12D3KooWx", "12D3KooWy", "12D3KooWz"}, 1}));
  EXPECT_TRUE(v3->founding[1] ==
              (core::Configuration{"eu", 1, {"12D3KooWa", "12D3KooWb", "12D3KooWc"}, 2}));

  // Version 2: the bootstrap peer's directory, with founding sets.
  absl::StatusOr<DirectoryState> v2 = DecodeDirectoryState(
      "replicator-membership 2\n"
      "12D3KooWa eu 10.0.0.1:7001 voter\n"
      "12D3KooWb eu node-b.example:7001 catching-up\n"
      "12D3KooWd eu 10.0.0.4:7001 voter\n"
      "12D3KooWe eu 10.0.0.5:7001 voter\n"
      "founding eu 12D3KooWa 12D3KooWd 12D3KooWe\n",
      "m");
  ASSERT_TRUE(v2.ok()) << v2.status();
  EXPECT_TRUE(v2->names_founding) << "only the first node wrote one";
  EXPECT_EQ(v2->federation, 0u) << "named by the caller";
  ASSERT_EQ(v2->members.size(), 4u);
  EXPECT_EQ(v2->members[1].member.state, PeerState::kCatchingUp);
  EXPECT_EQ(v2->members[1].stamp, 0u);
  ASSERT_EQ(v2->founding.size(), 1u);
  EXPECT_EQ(v2->founding[0].generation, 1u);

  // Version 1, from before founding sets: a cluster with 3 voters is
  // founded with every voter it has, the set its quorums counted.
  absl::StatusOr<DirectoryState> v1 = DecodeDirectoryState(
      "replicator-membership 1\n"
      "12D3KooWa eu 10.0.0.1:7001 voter\n"
      "12D3KooWb eu node-b.example:7001 catching-up\n"
      "12D3KooWc us-east.1 [::1]:7001 voter\n"
      "12D3KooWd eu 10.0.0.4:7001 voter\n"
      "12D3KooWe eu 10.0.0.5:7001 voter\n",
      "m");
  ASSERT_TRUE(v1.ok()) << v1.status();
  ASSERT_EQ(v1->founding.size(), 1u);
  EXPECT_TRUE(v1->founding[0] ==
              (core::Configuration{"eu", 1, {"12D3KooWa", "12D3KooWd", "12D3KooWe"}, 1}))
      << "a catching-up member is no founder; us-east.1 has one voter";
  // Version 1 knew no founding lines.
  EXPECT_FALSE(DecodeDirectoryState("replicator-membership 1\n"
                                    "12D3KooWa eu 10.0.0.1:7001 voter\n"
                                    "founding eu 12D3KooWa 12D3KooWd 12D3KooWe\n",
                                    "m")
                   .ok());
}

TEST(DirectoryStateTest, ADownVoterIsSavedAsAVoter) {
  DirectoryState down = kState;
  down.members[0].member.state = PeerState::kDown;
  absl::StatusOr<DirectoryState> back = DecodeDirectoryState(EncodeDirectoryState(down), "m");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->members[0].member.state, PeerState::kVoter);
}

TEST(DirectoryStateTest, MalformedFilesAreRefusedNamingTheLine) {
  const std::string header =
      "replicator-membership 3\nfederation 00000000000000aa\nnames-founding no\n";
  const std::string v4 =
      "replicator-membership 4\nfederation 00000000000000aa\nnames-founding no\n";
  const std::string eu =
      "12D3KooWa eu a:1 voter 1\n12D3KooWb eu b:1 voter 1\n12D3KooWc eu c:1 voter 1\n";
  const struct {
    std::string text;
    std::string names;  // in the error message
  } cases[] = {
      {"", "line 1: expected 'replicator-membership 4'"},
      {"replicator-membership 5\n", "line 1"},
      {"replicator-membership 4\n", "line 2: expected 'federation"},
      {v4 + eu + "founding eu 12D3KooWa 12D3KooWb 12D3KooWc\n", "line 7: bad generation"},
      {v4 + eu + "founding eu 0 12D3KooWa 12D3KooWb 12D3KooWc\n", "line 7: bad generation '0'"},
      {v4 + eu + "founding eu 1 12D3KooWa 12D3KooWb\n", "line 7"},
      {"replicator-membership 3\n", "line 2: expected 'federation"},
      {"replicator-membership 3\nfederation 12\nnames-founding no\n", "line 2"},
      {"replicator-membership 3\nfederation 00000000000000zz\nnames-founding no\n", "line 2"},
      {"replicator-membership 3\nfederation 00000000000000aa\nnames-founding maybe\n",
       "line 3: expected 'names-founding"},
      {header + "12D3KooWa eu 10.0.0.1:7001 voter\n", "line 4: expected"},
      {header + "12D3KooWa eu 10.0.0.1:7001 voter 1 extra\n", "line 4: expected"},
      {header + "12D3KooWa eu 10.0.0.1:7001 voter -1\n", "line 4: bad stamp '-1'"},
      {header + "12D3KooWa e/u 10.0.0.1:7001 voter 1\n", "line 4"},
      {header + "12D3KooWa eu 10.0.0.1:7001 leader 1\n", "line 4: unknown state 'leader'"},
      {header + "12D3KooWa eu a:1 voter 1\n12D3KooWa us b:1 voter 2\n",
       "line 5: peer 12D3KooWa listed twice"},
      {header + eu + "founding e/u 12D3KooWa 12D3KooWb 12D3KooWc\n", "line 7"},
      {header + eu + "founding eu 12D3KooWa 12D3KooWb\n", "line 7"},
      {header + eu + "founding eu 12D3KooWb 12D3KooWa 12D3KooWc\n", "line 7: a founding set's"},
      {header + eu + "founding eu 12D3KooWa 12D3KooWa 12D3KooWc\n", "line 7: a founding set's"},
      {header + eu + "founding eu 12D3KooWa 12D3KooWb 12D3KooWc\n" +
           "founding eu 12D3KooWa 12D3KooWb 12D3KooWc\n",
       "line 8: cluster eu founded twice"},
      {header + eu + "founding eu 12D3KooWa 12D3KooWb 12D3KooWz\n",
       "line 7: founding voter 12D3KooWz is not a member of cluster eu"},
      {header + eu + "founding us 12D3KooWa 12D3KooWb 12D3KooWc\n",
       "line 7: founding voter 12D3KooWa is not a member of cluster us"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<DirectoryState> got = DecodeDirectoryState(c.text, "/d/membership");
    ASSERT_FALSE(got.ok()) << c.text;
    EXPECT_TRUE(absl::IsDataLoss(got.status())) << got.status();
    EXPECT_NE(got.status().message().find("/d/membership"), absl::string_view::npos);
    EXPECT_NE(got.status().message().find(c.names), absl::string_view::npos) << got.status();
  }
}

// Maps arrive late, twice and in any order (a join reply overtaken by the
// notification after it, a restarted node's old entry still gossiped):
// every order of the same entries merges to the same map, with each node's
// newest description.
TEST(DirectoryMergeTest, EveryOrderOfTheSameEntriesMergesToTheSameMap) {
  std::vector<Entry> heard = {
      E("12D3KooWa", "eu", "a:1", PeerState::kCatchingUp, 5),
      E("12D3KooWa", "eu", "a:2", PeerState::kVoter, 9),  // restarted on a new port
      E("12D3KooWb", "eu", "b:1", PeerState::kVoter, 3),
      E("12D3KooWa", "eu", "a:1", PeerState::kVoter, 7),
      E("12D3KooWc", "us", "c:1", PeerState::kVoter, 1),
      E("12D3KooWb", "eu", "b:1", PeerState::kVoter, 3),  // the same again
  };
  std::sort(heard.begin(), heard.end(),
            [](const Entry& x, const Entry& y) { return x.stamp < y.stamp; });
  std::optional<DirectoryState> first;
  int orders = 0;
  do {
    DirectoryState s;
    for (const Entry& e : heard) ASSERT_TRUE(MergeEntry(s, e).ok());
    if (!first) first = s;
    EXPECT_TRUE(s == *first);
    ++orders;
  } while (std::next_permutation(heard.begin(), heard.end(),
                                 [](const Entry& x, const Entry& y) { return x.stamp < y.stamp; }));
  EXPECT_EQ(orders, 360);  // 6! / 2! orders of distinct stamps
  ASSERT_EQ(first->members.size(), 3u);
  EXPECT_EQ(first->members[0].member.address, "a:2");
  EXPECT_EQ(first->members[0].stamp, 9u);
}

TEST(DirectoryMergeTest, ANodeNeverMovesToAnotherCluster) {
  DirectoryState s;
  ASSERT_TRUE(MergeEntry(s, E("12D3KooWa", "eu", "a:1", PeerState::kVoter, 1)).ok());
  absl::StatusOr<bool> moved = MergeEntry(s, E("12D3KooWa", "us", "a:1", PeerState::kVoter, 2));
  ASSERT_FALSE(moved.ok());
  EXPECT_NE(moved.status().message().find("cannot move to cluster us"), absl::string_view::npos);
  EXPECT_EQ(s.members[0].member.cluster, "eu");
  // An older stamp is no change; the same entry again is none either.
  EXPECT_FALSE(*MergeEntry(s, E("12D3KooWa", "eu", "a:0", PeerState::kVoter, 0)));
  EXPECT_FALSE(*MergeEntry(s, E("12D3KooWa", "eu", "a:1", PeerState::kVoter, 1)));
}

TEST(DirectoryMergeTest, AFoundingSetIsTakenOnceAndNeverReplaced) {
  DirectoryState s;
  const core::Configuration eu{"eu", 1, {"12D3KooWa", "12D3KooWb", "12D3KooWc"}, 1};
  EXPECT_TRUE(*MergeFounding(s, eu));
  EXPECT_FALSE(*MergeFounding(s, eu)) << "the same again";
  absl::StatusOr<bool> other =
      MergeFounding(s, core::Configuration{"eu", 1, {"12D3KooWa", "12D3KooWb", "12D3KooWd"}, 1});
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("keeping the first"), absl::string_view::npos);
  ASSERT_EQ(s.founding.size(), 1u);
  EXPECT_TRUE(s.founding[0] == eu);
  // Malformed sets are refused: fewer than 3, unsorted, repeated, not epoch
  // 1, no generation.
  for (const core::Configuration& bad :
       {core::Configuration{"us", 1, {"12D3KooWa", "12D3KooWb"}, 1},
        core::Configuration{"us", 1, {"12D3KooWb", "12D3KooWa", "12D3KooWc"}, 1},
        core::Configuration{"us", 1, {"12D3KooWa", "12D3KooWa", "12D3KooWc"}, 1},
        core::Configuration{"us", 2, {"12D3KooWa", "12D3KooWb", "12D3KooWc"}, 1},
        core::Configuration{"us", 1, {"12D3KooWa", "12D3KooWb", "12D3KooWc"}, 0}}) {
    EXPECT_FALSE(MergeFounding(s, bad).ok()) << bad.voters.size();
  }
  // Kept ordered by cluster.
  EXPECT_TRUE(
      *MergeFounding(s, core::Configuration{"ap", 1, {"12D3KooWx", "12D3KooWy", "12D3KooWz"}, 2}));
  EXPECT_EQ(s.founding[0].cluster, "ap");
  EXPECT_EQ(s.founding[1].cluster, "eu");
}

TEST(DirectoryRulesTest, TwoFederationsNeverMix) {
  EXPECT_TRUE(SameFederation(0xaa, 0xaa, "x").ok());
  EXPECT_TRUE(SameFederation(0, 0xaa, "x").ok()) << "a new node takes the first it joins";
  absl::Status other = SameFederation(0xaa, 0xbb, "the node at h:1");
  ASSERT_FALSE(other.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(other));
  EXPECT_NE(other.message().find("the node at h:1 is of federation 00000000000000bb; this node "
                                 "is of 00000000000000aa"),
            absl::string_view::npos)
      << other;
  EXPECT_FALSE(SameFederation(0xaa, 0, "x").ok()) << "a map must name its federation";
  EXPECT_FALSE(SameFederation(0, 0, "x").ok());
}

// The namer founds the federation's first cluster only, at generation 1;
// every later cluster is founded by consensus (core/founding.h).
TEST(DirectoryRulesTest, OnlyTheNamerFoundsTheFirstClusterAndOnlyOnceWithItsFirstThree) {
  for (bool namer : {false, true}) {
    DirectoryState state;
    state.names_founding = namer;
    for (const char* id : {"12D3KooWc", "12D3KooWa"}) {
      ASSERT_TRUE(MergeEntry(state, E(id, "eu", "h:1", PeerState::kCatchingUp, 1)).ok());
      EXPECT_FALSE(MaybeFound(state, "eu")) << "fewer than 3 found nothing";
    }
    ASSERT_TRUE(MergeEntry(state, E("12D3KooWz", "us", "h:1", PeerState::kVoter, 1)).ok());
    ASSERT_TRUE(MergeEntry(state, E("12D3KooWb", "eu", "h:1", PeerState::kCatchingUp, 1)).ok());
    ASSERT_EQ(MaybeFound(state, "eu"), namer);
    if (!namer) {
      EXPECT_TRUE(state.founding.empty()) << "another node only passes founding sets on";
      continue;
    }
    ASSERT_EQ(state.founding.size(), 1u);
    EXPECT_TRUE(state.founding[0] ==
                (core::Configuration{"eu", 1, {"12D3KooWa", "12D3KooWb", "12D3KooWc"}, 1}));
    EXPECT_FALSE(MaybeFound(state, "us"));
    for (const char* id : {"12D3KooWx", "12D3KooWy"}) {
      ASSERT_TRUE(MergeEntry(state, E(id, "us", "h:1", PeerState::kCatchingUp, 1)).ok());
    }
    EXPECT_FALSE(MaybeFound(state, "us")) << "a second cluster is founded by consensus";
    // A fourth founds nothing new.
    ASSERT_TRUE(MergeEntry(state, E("12D3KooWd", "eu", "h:1", PeerState::kVoter, 1)).ok());
    EXPECT_FALSE(MaybeFound(state, "eu"));
    EXPECT_EQ(state.founding[0].voters.size(), 3u);
  }
}

TEST(DirectoryRulesTest, FoundersVoteAndOthersAreShownAsTheyClaim) {
  const std::vector<core::Configuration> founding = {
      {"eu", 1, {"12D3KooWa", "12D3KooWb", "12D3KooWc"}, 1}};
  const struct {
    Entry member;
    PeerState shown;
  } cases[] = {
      {E("12D3KooWa", "eu", "h:1", PeerState::kCatchingUp, 1), PeerState::kVoter},
      {E("12D3KooWb", "eu", "h:1", PeerState::kVoter, 1), PeerState::kVoter},
      {E("12D3KooWd", "eu", "h:1", PeerState::kCatchingUp, 1), PeerState::kCatchingUp},
      {E("12D3KooWd", "eu", "h:1", PeerState::kVoter, 1), PeerState::kVoter},
      {E("12D3KooWd", "eu", "h:1", PeerState::kDown, 1), PeerState::kCatchingUp},
      // Another cluster, not founded here: as it claims (its engine's
      // configuration).
      {E("12D3KooWa", "us", "h:1", PeerState::kCatchingUp, 1), PeerState::kCatchingUp},
      {E("12D3KooWb", "us", "h:1", PeerState::kVoter, 1), PeerState::kVoter},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(ShownState(founding, c.member.member), c.shown)
        << c.member.member.id << " in " << c.member.member.cluster;
  }
}

}  // namespace
}  // namespace replicator::node
