// The directory's membership file: what is written reads back the same,
// down voters are saved as voters, and anything malformed is refused with
// the file and line named, never half-loaded.
#include "node/directory_state.h"

#include <gtest/gtest.h>

namespace replicator::node {
namespace {

const std::vector<core::Member> kMembers = {
    {"12D3KooWa", "eu", "10.0.0.1:7001", core::PeerState::kVoter},
    {"12D3KooWb", "eu", "node-b.example:7001", core::PeerState::kCatchingUp},
    {"12D3KooWc", "us-east.1", "[::1]:7001", core::PeerState::kVoter},
};

TEST(DirectoryStateTest, WhatIsWrittenReadsBack) {
  const std::string text = EncodeDirectoryState(kMembers);
  EXPECT_EQ(text,
            "replicator-membership 1\n"
            "12D3KooWa eu 10.0.0.1:7001 voter\n"
            "12D3KooWb eu node-b.example:7001 catching-up\n"
            "12D3KooWc us-east.1 [::1]:7001 voter\n");
  absl::StatusOr<std::vector<core::Member>> back = DecodeDirectoryState(text, "m");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(*back == kMembers);
  EXPECT_TRUE(DecodeDirectoryState(EncodeDirectoryState({}), "m")->empty());
}

TEST(DirectoryStateTest, ADownVoterIsSavedAsAVoter) {
  std::vector<core::Member> down = kMembers;
  down[0].state = core::PeerState::kDown;
  absl::StatusOr<std::vector<core::Member>> back =
      DecodeDirectoryState(EncodeDirectoryState(down), "m");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ((*back)[0].state, core::PeerState::kVoter);
}

TEST(DirectoryStateTest, MalformedFilesAreRefusedNamingTheLine) {
  const std::string header = "replicator-membership 1\n";
  const struct {
    std::string text;
    std::string names;  // in the error message
  } cases[] = {
      {"", "line 1: expected 'replicator-membership 1'"},
      {"replicator-membership 2\n", "line 1"},
      {header + "12D3KooWa eu 10.0.0.1:7001\n", "line 2: expected"},
      {header + "12D3KooWa eu 10.0.0.1:7001 voter extra\n", "line 2: expected"},
      {header + "12D3KooWa e/u 10.0.0.1:7001 voter\n", "line 2"},
      {header + "12D3KooWa eu 10.0.0.1:7001 leader\n", "line 2: unknown state 'leader'"},
      {header + "12D3KooWa eu a:1 voter\n12D3KooWa us b:1 voter\n", "line 3: peer 12D3KooWa listed twice"},
  };
  for (const auto& c : cases) {
    absl::StatusOr<std::vector<core::Member>> got = DecodeDirectoryState(c.text, "/d/membership");
    ASSERT_FALSE(got.ok()) << c.text;
    EXPECT_TRUE(absl::IsDataLoss(got.status())) << got.status();
    EXPECT_NE(got.status().message().find("/d/membership"), absl::string_view::npos);
    EXPECT_NE(got.status().message().find(c.names), absl::string_view::npos) << got.status();
  }
}

}  // namespace
}  // namespace replicator::node
