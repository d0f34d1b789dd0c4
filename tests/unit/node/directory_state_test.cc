// The directory's membership file: what is written reads back the same,
// down voters are saved as voters, files written before founding sets
// existed still read, and anything malformed is refused with the file and
// line named, never half-loaded.
#include "node/directory_state.h"

#include <gtest/gtest.h>

namespace replicator::node {
namespace {

const std::vector<core::Member> kMembers = {
    {"12D3KooWa", "eu", "10.0.0.1:7001", core::PeerState::kVoter},
    {"12D3KooWb", "eu", "node-b.example:7001", core::PeerState::kCatchingUp},
    {"12D3KooWc", "us-east.1", "[::1]:7001", core::PeerState::kVoter},
    {"12D3KooWd", "eu", "10.0.0.4:7001", core::PeerState::kVoter},
    {"12D3KooWe", "eu", "10.0.0.5:7001", core::PeerState::kVoter},
};
const DirectoryState kState = {
    kMembers,
    {core::Configuration{"eu", 1, {"12D3KooWa", "12D3KooWd", "12D3KooWe"}}},
};

TEST(DirectoryStateTest, WhatIsWrittenReadsBack) {
  const std::string text = EncodeDirectoryState(kState);
  EXPECT_EQ(text,
            "replicator-membership 2\n"
            "12D3KooWa eu 10.0.0.1:7001 voter\n"
            "12D3KooWb eu node-b.example:7001 catching-up\n"
            "12D3KooWc us-east.1 [::1]:7001 voter\n"
            "12D3KooWd eu 10.0.0.4:7001 voter\n"
            "12D3KooWe eu 10.0.0.5:7001 voter\n"
            "founding eu 12D3KooWa 12D3KooWd 12D3KooWe\n");
  absl::StatusOr<DirectoryState> back = DecodeDirectoryState(text, "m");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == kState);
  absl::StatusOr<DirectoryState> empty = DecodeDirectoryState(EncodeDirectoryState({}), "m");
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_TRUE(empty->members.empty());
  EXPECT_TRUE(empty->founding.empty());
}

TEST(DirectoryStateTest, AFileWrittenBeforeFoundingSetsReadsAsMembersOnly) {
  absl::StatusOr<DirectoryState> back = DecodeDirectoryState(
      "replicator-membership 1\n"
      "12D3KooWa eu 10.0.0.1:7001 voter\n"
      "12D3KooWb eu node-b.example:7001 catching-up\n",
      "m");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->members == std::vector<core::Member>(kMembers.begin(), kMembers.begin() + 2));
  EXPECT_TRUE(back->founding.empty());
  // Version 1 knew no founding lines.
  EXPECT_FALSE(DecodeDirectoryState("replicator-membership 1\n"
                                    "12D3KooWa eu 10.0.0.1:7001 voter\n"
                                    "founding eu 12D3KooWa 12D3KooWd 12D3KooWe\n",
                                    "m")
                   .ok());
}

TEST(DirectoryStateTest, ADownVoterIsSavedAsAVoter) {
  DirectoryState down = kState;
  down.members[0].state = core::PeerState::kDown;
  absl::StatusOr<DirectoryState> back = DecodeDirectoryState(EncodeDirectoryState(down), "m");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->members[0].state, core::PeerState::kVoter);
}

TEST(DirectoryStateTest, MalformedFilesAreRefusedNamingTheLine) {
  const std::string header = "replicator-membership 2\n";
  const std::string eu = "12D3KooWa eu a:1 voter\n12D3KooWb eu b:1 voter\n12D3KooWc eu c:1 voter\n";
  const struct {
    std::string text;
    std::string names;  // in the error message
  } cases[] = {
      {"", "line 1: expected 'replicator-membership 2'"},
      {"replicator-membership 3\n", "line 1"},
      {header + "12D3KooWa eu 10.0.0.1:7001\n", "line 2: expected"},
      {header + "12D3KooWa eu 10.0.0.1:7001 voter extra\n", "line 2: expected"},
      {header + "12D3KooWa e/u 10.0.0.1:7001 voter\n", "line 2"},
      {header + "12D3KooWa eu 10.0.0.1:7001 leader\n", "line 2: unknown state 'leader'"},
      {header + "12D3KooWa eu a:1 voter\n12D3KooWa us b:1 voter\n",
       "line 3: peer 12D3KooWa listed twice"},
      {header + eu + "founding e/u 12D3KooWa 12D3KooWb 12D3KooWc\n", "line 5"},
      {header + eu + "founding eu 12D3KooWa 12D3KooWb\n", "line 5"},
      {header + eu + "founding eu 12D3KooWb 12D3KooWa 12D3KooWc\n", "line 5: a founding set's"},
      {header + eu + "founding eu 12D3KooWa 12D3KooWa 12D3KooWc\n", "line 5: a founding set's"},
      {header + eu + "founding eu 12D3KooWa 12D3KooWb 12D3KooWc\n" +
           "founding eu 12D3KooWa 12D3KooWb 12D3KooWc\n",
       "line 6: cluster eu founded twice"},
      {header + eu + "founding eu 12D3KooWa 12D3KooWb 12D3KooWz\n",
       "line 5: founding voter 12D3KooWz is not a member of cluster eu"},
      {header + eu + "founding us 12D3KooWa 12D3KooWb 12D3KooWc\n",
       "line 5: founding voter 12D3KooWa is not a member of cluster us"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<DirectoryState> got = DecodeDirectoryState(c.text, "/d/membership");
    ASSERT_FALSE(got.ok()) << c.text;
    EXPECT_TRUE(absl::IsDataLoss(got.status())) << got.status();
    EXPECT_NE(got.status().message().find("/d/membership"), absl::string_view::npos);
    EXPECT_NE(got.status().message().find(c.names), absl::string_view::npos) << got.status();
  }
}

core::Member Joining(core::PeerId id, core::ClusterId cluster, core::PeerState claims) {
  return core::Member{std::move(id), std::move(cluster), "h:1", claims};
}

TEST(DirectoryRulesTest, AClusterIsFoundedByItsFirstThreeVotersOnce) {
  using core::PeerState;
  DirectoryState state;
  for (const char* id : {"12D3KooWc", "12D3KooWa", "12D3KooWb"}) {
    EXPECT_FALSE(MaybeFound(state, "eu")) << "fewer than 3 voters found nothing";
    // Still forming: a joiner votes whatever it claims.
    core::Member m = Joining(id, "eu", PeerState::kCatchingUp);
    m.state = RegisteredState(state.founding, m);
    EXPECT_EQ(m.state, PeerState::kVoter);
    state.members.push_back(m);
  }
  state.members.push_back(Joining("12D3KooWz", "us", PeerState::kVoter));
  ASSERT_TRUE(MaybeFound(state, "eu"));
  ASSERT_EQ(state.founding.size(), 1u);
  EXPECT_TRUE(state.founding[0] ==
              (core::Configuration{"eu", 1, {"12D3KooWa", "12D3KooWb", "12D3KooWc"}}));
  EXPECT_FALSE(MaybeFound(state, "us"));

  // A fourth voter, by its own account, founds nothing new.
  state.members.push_back(Joining("12D3KooWd", "eu", PeerState::kVoter));
  EXPECT_FALSE(MaybeFound(state, "eu"));
  EXPECT_EQ(state.founding[0].voters.size(), 3u);
}

TEST(DirectoryRulesTest, AfterFoundingFoundersVoteAndOthersAreWhatTheyClaim) {
  using core::PeerState;
  const std::vector<core::Configuration> founding = {
      {"eu", 1, {"12D3KooWa", "12D3KooWb", "12D3KooWc"}}};
  const struct {
    core::Member joining;
    PeerState registered;
  } cases[] = {
      {Joining("12D3KooWa", "eu", PeerState::kCatchingUp), PeerState::kVoter},
      {Joining("12D3KooWb", "eu", PeerState::kVoter), PeerState::kVoter},
      {Joining("12D3KooWd", "eu", PeerState::kCatchingUp), PeerState::kCatchingUp},
      {Joining("12D3KooWd", "eu", PeerState::kVoter), PeerState::kVoter},
      {Joining("12D3KooWd", "eu", PeerState::kDown), PeerState::kCatchingUp},
      // Another cluster, still forming.
      {Joining("12D3KooWa", "us", PeerState::kCatchingUp), PeerState::kVoter},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(RegisteredState(founding, c.joining), c.registered)
        << c.joining.id << " in " << c.joining.cluster;
  }
}

TEST(DirectoryRulesTest, AFileFromBeforeFoundingSetsFoundsWithEveryVoterItHas) {
  DirectoryState state{kMembers, {}};
  ASSERT_TRUE(MaybeFound(state, "eu"));
  EXPECT_FALSE(MaybeFound(state, "us-east.1")) << "one voter";
  ASSERT_EQ(state.founding.size(), 1u);
  EXPECT_TRUE(state.founding[0] ==
              (core::Configuration{"eu", 1, {"12D3KooWa", "12D3KooWd", "12D3KooWe"}}))
      << "a catching-up member is no founder";
  // Founding sets stay ordered by cluster, whatever order clusters form in.
  state.members.push_back(Joining("12D3KooWx", "ap", core::PeerState::kVoter));
  state.members.push_back(Joining("12D3KooWy", "ap", core::PeerState::kVoter));
  state.members.push_back(Joining("12D3KooWz", "ap", core::PeerState::kDown));
  ASSERT_TRUE(MaybeFound(state, "ap"));
  ASSERT_EQ(state.founding.size(), 2u);
  EXPECT_EQ(state.founding[0].cluster, "ap");
  EXPECT_EQ(state.founding[1].cluster, "eu");
}

}  // namespace
}  // namespace replicator::node
