#include "core/rendezvous.h"

#include <algorithm>
#include <map>
#include <string>

#include <gtest/gtest.h>

namespace replicator::core {
namespace {

constexpr uint64_t kPinnedWeight = 1371466556875848556ULL;
const std::vector<PeerId> kPeers = {"peer-a", "peer-b", "peer-c", "peer-d", "peer-e"};

TEST(RendezvousTest, OrderIsAPermutationIndependentOfInputOrder) {
  struct Case {
    std::string key;
  };
  for (const Case& c : std::vector<Case>{{"k"}, {"user/42"}, {std::string(1024, 'x')}, {"\0"}}) {
    std::vector<PeerId> order = RendezvousOrder(c.key, kPeers);
    std::vector<PeerId> reversed(kPeers.rbegin(), kPeers.rend());
    EXPECT_EQ(order, RendezvousOrder(c.key, reversed)) << c.key;
    std::vector<PeerId> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, kPeers) << c.key;
  }
}

TEST(RendezvousTest, WeightsArePinnedSoEveryNodeAgrees) {
  // Fixed values: a change here changes every key's representative and
  // must be a deliberate, documented wire-visible change.
  EXPECT_EQ(RendezvousWeight("k", "peer-a"), RendezvousWeight("k", "peer-a"));
  EXPECT_NE(RendezvousWeight("ab", "c"), RendezvousWeight("a", "bc"));
  EXPECT_EQ(RendezvousWeight("key", "peer"), kPinnedWeight);
}

TEST(RendezvousTest, RepresentativeDiffersAcrossKeys) {
  std::map<PeerId, int> first;
  for (int i = 0; i < 500; ++i) first[RendezvousOrder("key-" + std::to_string(i), kPeers)[0]]++;
  // Every peer represents some keys, none the vast majority.
  EXPECT_EQ(first.size(), kPeers.size());
  for (const auto& [peer, count] : first) {
    EXPECT_GT(count, 50) << peer;
    EXPECT_LT(count, 150) << peer;
  }
}

TEST(RendezvousTest, RemovingAPeerKeepsTheOthersInOrder) {
  for (int i = 0; i < 50; ++i) {
    std::string key = "key-" + std::to_string(i);
    std::vector<PeerId> full = RendezvousOrder(key, kPeers);
    std::vector<PeerId> fewer = kPeers;
    fewer.erase(std::find(fewer.begin(), fewer.end(), full[0]));
    std::vector<PeerId> expected(full.begin() + 1, full.end());
    EXPECT_EQ(RendezvousOrder(key, fewer), expected) << key;
  }
}

TEST(RendezvousTest, EmptyAndSingle) {
  EXPECT_TRUE(RendezvousOrder("k", {}).empty());
  EXPECT_EQ(RendezvousOrder("k", {"only"}), std::vector<PeerId>{"only"});
}

TEST(RendezvousTest, RepresentativesShownDownGoLastInTheirOrder) {
  Topology t;
  for (const PeerId& p : kPeers) t.members.push_back(Member{p, "b", p + ":1", PeerState::kVoter});
  for (int i = 0; i < 50; ++i) {
    const std::string key = "key-" + std::to_string(i);
    const std::vector<PeerId> full = RendezvousOrder(key, kPeers);
    EXPECT_EQ(RepresentativeOrder(key, kPeers, t), full) << "nobody down: " << key;
    // The first and third are down: the others keep their order, and the
    // down ones follow in theirs.
    Topology down = t;
    for (Member& m : down.members) {
      if (m.id == full[0] || m.id == full[2]) m.state = PeerState::kDown;
    }
    std::vector<PeerId> expected;
    for (size_t j = 0; j < full.size(); ++j) {
      if (j != 0 && j != 2) expected.push_back(full[j]);
    }
    expected.push_back(full[0]);
    expected.push_back(full[2]);
    EXPECT_EQ(RepresentativeOrder(key, kPeers, down), expected) << key;
  }
}

TEST(RendezvousTest, TheNextRepresentativeIsAskedTooAfterHalfTheTimeLeft) {
  EXPECT_EQ(RepresentativeHedgeAt(1000, 2000, 2), 1500);
  EXPECT_EQ(RepresentativeHedgeAt(1500, 2000, 1), 1750);
  EXPECT_EQ(RepresentativeHedgeAt(1750, 2000, 0), std::nullopt) << "nobody left to ask";
  EXPECT_EQ(RepresentativeHedgeAt(2000, 2000, 2), std::nullopt) << "no time left";
  EXPECT_EQ(RepresentativeHedgeAt(2100, 2000, 1), std::nullopt);
}

}  // namespace
}  // namespace replicator::core
