// Founding: a cluster that joins a running federation is founded by
// consensus of the clusters before it (core/founding.h). Its founding set
// and generation are the value of a write-once system key; every node
// learns them (at the commit, from a taken slot, or by asking), the next
// cluster takes the next slot, a dead first proposer is replaced by the
// next in turn, and a client can never write the system's keys.
#include "core/founding.h"

#include <gtest/gtest.h>

#include "fixtures.h"
#include "test_pump.h"

namespace replicator::core::testing {
namespace {

const std::map<ClusterId, std::vector<PeerId>> kThreeByThree = {
    {"a", {"a1", "a2", "a3"}}, {"b", {"b1", "b2", "b3"}}, {"c", {"c1", "c2", "c3"}}};

template <typename Done>
bool AdvanceUntil(Pump& pump, Done done, TimeMs step = 50, TimeMs limit = 20000) {
  const TimeMs end = pump.now + limit;
  while (!done() && pump.now < end) pump.AdvanceTo(pump.now + step);
  return done();
}

bool Founded(Pump& pump, const std::vector<PeerId>& peers) {
  for (const PeerId& p : peers) {
    if (pump.engine(p).configuration().epoch == 0) return false;
  }
  return true;
}

const Configuration* Find(const std::vector<Configuration>& known, const ClusterId& cluster) {
  for (const Configuration& c : known) {
    if (c.cluster == cluster) return &c;
  }
  return nullptr;
}

TEST(FoundingKeyTest, KeysAndValuesRoundTripAndAnythingElseIsRefused) {
  EXPECT_TRUE(IsSystemKey(FoundingKey(2)));
  EXPECT_FALSE(IsSystemKey("found/2"));
  EXPECT_FALSE(IsSystemKey(""));
  EXPECT_EQ(FoundingGeneration(FoundingKey(2)), 2u);
  EXPECT_EQ(FoundingGeneration(FoundingKey(18446744073709551615ULL)), 18446744073709551615ULL);
  EXPECT_LT(FoundingKey(9), FoundingKey(10)) << "slots sort by generation";
  for (const Key& bad :
       {Key("found/00000000000000000002"), FoundingKey(2) + "0",
        Key(std::string(1, '\0') + "found/0000000000000000000x"), FoundingKey(1), FoundingKey(0)}) {
    EXPECT_EQ(FoundingGeneration(bad), std::nullopt) << bad.substr(1);
  }
  const Configuration b{"b", 1, {"b1", "b2", "b3"}, 7};
  EXPECT_EQ(EncodeFounding(b), "found b b1 b2 b3");
  std::optional<Configuration> back = DecodeFounding(7, EncodeFounding(b));
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, b);
  for (const Value& bad : {Value("found b b1 b2"), Value("found b b2 b1 b3"),
                           Value("found b b1 b1 b3"), Value("found b/x b1 b2 b3"),
                           Value("founds b b1 b2 b3"), Value("found b b1  b3"), Value("")}) {
    EXPECT_EQ(DecodeFounding(7, bad), std::nullopt) << bad;
  }
}

TEST(FoundingTest, AClientCannotPutASystemKey) {
  Pump pump(kTwoByThree);
  pump.StartPut("a1", 1, FoundingKey(3), "found c c1 c2 c3");
  ASSERT_TRUE(pump.puts.contains(1));
  EXPECT_EQ(pump.puts[1].kind, PutOutcome::Kind::kInvalidArgument);
  EXPECT_NE(pump.puts[1].message.find("reserved for the system"), std::string::npos);
  EXPECT_EQ(pump.store("a1").GetCommitted(FoundingKey(3)), std::nullopt);
}

TEST(FoundingTest, ALaterClusterIsFoundedByTheOldestClustersVotersAtTheNextGeneration) {
  Pump pump(kTwoByThree, nullptr, {}, {}, {"b"});
  ASSERT_TRUE(AdvanceUntil(pump, [&] { return Founded(pump, {"b1", "b2", "b3"}); }));
  const Configuration expected{"b", 1, {"b1", "b2", "b3"}, 2};
  for (const PeerId& p : kAll) {
    const std::vector<Configuration> known = pump.engine(p).configurations();
    const Configuration* b = Find(known, "b");
    ASSERT_NE(b, nullptr) << p;
    EXPECT_EQ(*b, expected) << p;
    EXPECT_EQ(pump.engine(p).stats().federation_generation, 2u) << p;
  }
  // The decision is an ordinary committed key at the older cluster.
  for (const char* p : {"a1", "a2", "a3"}) {
    EXPECT_EQ(pump.store(p).GetCommitted(FoundingKey(2)), "found b b1 b2 b3") << p;
  }
  // b is a cluster like any other now: a put through it counts both.
  ASSERT_TRUE(AdvanceUntil(pump, [&] { return pump.AllSettled(); }));
  pump.StartPut("b1", 1, "k", "v");
  pump.RunUntilQuiet(3000);
  ASSERT_TRUE(pump.puts.contains(1));
  EXPECT_EQ(pump.puts[1].kind, PutOutcome::Kind::kOk) << pump.puts[1].message;
  for (const PeerId& p : kAll) EXPECT_EQ(pump.store(p).GetCommitted("k"), "v") << p;
  EXPECT_TRUE(pump.violations.empty());
}

TEST(FoundingTest, PutsGoOnWhileAClusterIsUnfoundedAndItsReadsSeeThemOnceFounded) {
  // a does not see b's members yet; b's members see each other only.
  Pump pump(kTwoByThree, nullptr, {}, {"b"}, {"b"});
  pump.StartPut("a1", 1, "old", "v");
  pump.Run();
  ASSERT_EQ(pump.puts[1].kind, PutOutcome::Kind::kOk) << pump.puts[1].message;
  pump.StartPut("b1", 2, "k", "v");
  ASSERT_TRUE(pump.puts.contains(2));
  EXPECT_EQ(pump.puts[2].kind, PutOutcome::Kind::kUnavailable);
  EXPECT_NE(pump.puts[2].message.find("cluster b is not founded yet"), std::string::npos)
      << pump.puts[2].message;
  // Once a sees b, a put through a still commits (b unfounded counts for
  // nothing) and b is founded.
  for (const char* p : {"a1", "a2", "a3"}) pump.Show(p);
  pump.StartPut("a2", 3, "during", "v");
  pump.Run();
  ASSERT_TRUE(pump.puts.contains(3));
  EXPECT_EQ(pump.puts[3].kind, PutOutcome::Kind::kOk) << pump.puts[3].message;
  ASSERT_TRUE(AdvanceUntil(pump, [&] {
    return Founded(pump, {"b1", "b2", "b3"}) && pump.AllSettled();
  }));
  for (uint64_t id = 4; const char* key : {"old", "during"}) {
    pump.StartGet("b3", id, key, Consistency::kLinearizable);
    pump.Run();
    ASSERT_TRUE(pump.gets.contains(id));
    EXPECT_EQ(pump.gets[id].kind, GetOutcome::Kind::kFound) << key << ": " << pump.gets[id].message;
    ++id;
  }
  EXPECT_TRUE(pump.violations.empty());
}

TEST(FoundingTest, ClustersTakeConsecutiveSlotsAndNoneIsFoundedTwice) {
  Pump pump(kThreeByThree, nullptr, {}, {}, {"b", "c"});
  ASSERT_TRUE(AdvanceUntil(pump, [&] {
    return Founded(pump, {"b1", "b2", "b3", "c1", "c2", "c3"});
  }));
  for (const char* p : {"a1", "b2", "c3"}) {
    const std::vector<Configuration> known = pump.engine(p).configurations();
    ASSERT_NE(Find(known, "b"), nullptr);
    ASSERT_NE(Find(known, "c"), nullptr);
    EXPECT_EQ(Find(known, "b")->generation, 2u) << "the smallest id first";
    EXPECT_EQ(Find(known, "c")->generation, 3u);
    EXPECT_EQ(pump.engine(p).stats().federation_generation, 3u);
  }
  EXPECT_EQ(pump.store("a1").GetCommitted(FoundingKey(4)), std::nullopt) << "no third slot";
  // Restarted, a node keeps what it learned.
  pump.Restart("a3");
  pump.Run();
  EXPECT_EQ(pump.engine("a3").stats().federation_generation, 3u);
  EXPECT_TRUE(pump.violations.empty());
}

TEST(FoundingTest, WhenTheFirstProposerIsDownTheNextInTurnFounds) {
  Pump pump(kTwoByThree, nullptr, {}, {"b"}, {"b"});
  pump.down = {"a1"};
  for (const char* p : {"a2", "a3"}) pump.Show(p);
  ASSERT_TRUE(AdvanceUntil(pump, [&] { return Founded(pump, {"b1", "b2", "b3"}); }));
  EXPECT_EQ(pump.store("a2").GetCommitted(FoundingKey(2)), "found b b1 b2 b3");
  EXPECT_EQ(pump.store("a1").GetCommitted(FoundingKey(2)), std::nullopt) << "a1 was down";
  // a1, back, learns it by catching up (a committed key like any other).
  pump.down.clear();
  pump.Show("a1");
  pump.StartCatchUp("a1");
  ASSERT_TRUE(
      AdvanceUntil(pump, [&] { return pump.engine("a1").stats().federation_generation == 2; }));
  EXPECT_TRUE(pump.violations.empty());
}

MembershipChange RemoveCluster(const ClusterId& cluster) {
  MembershipChange change;
  change.kind = MembershipChange::Kind::kRemoveCluster;
  change.cluster = cluster;
  return change;
}

TEST(FoundingKeyTest, RemovalsRoundTripAndAnythingElseIsRefused) {
  const Configuration c{"c", 4, {"c1", "c2", "c4"}, 3};
  EXPECT_EQ(EncodeRemoval(c), "remove c 3 4 c1 c2 c4");
  std::optional<Configuration> back = DecodeRemoval(5, EncodeRemoval(c));
  ASSERT_TRUE(back.has_value());
  Configuration want = c;
  want.removed = 5;
  EXPECT_EQ(*back, want);
  EXPECT_EQ(DecodeFounding(5, EncodeRemoval(c)), std::nullopt);
  EXPECT_EQ(DecodeRemoval(5, EncodeFounding(c)), std::nullopt);
  for (const Value& bad :
       {Value("remove c 5 4 c1 c2 c4"),  // founded at or after the slot that removes it
        Value("remove c 1 4 c1 c2 c4"),  // the first cluster
        Value("remove c 3 0 c1 c2 c4"), Value("remove c 3 4 c2 c1 c4"),
        Value("remove c 3 4 c1 c1 c4"), Value("remove c/x 3 4 c1"), Value("remove c 3 4"),
        Value("remove c x 4 c1 c2 c4"), Value("")}) {
    EXPECT_EQ(DecodeRemoval(5, bad), std::nullopt) << bad;
  }
}

TEST(FoundingTest, ARemovedClusterIsCountedByNoPutAndItsNodesServeNothing) {
  Pump pump(kThreeByThree);
  pump.StartPut("a1", 1, "before", "v");
  pump.Run();
  ASSERT_EQ(pump.puts[1].kind, PutOutcome::Kind::kOk) << pump.puts[1].message;
  // c is lost: no put commits while every put counts it.
  pump.down = {"c1", "c2", "c3"};
  pump.ChangeMembership("b2", 1, RemoveCluster("c"));
  ASSERT_TRUE(AdvanceUntil(pump, [&] { return pump.changes.contains(1); }));
  ASSERT_EQ(pump.changes[1].kind, ChangeOutcome::Kind::kOk) << pump.changes[1].message;
  EXPECT_EQ(pump.changes[1].config.cluster, "c");
  EXPECT_EQ(pump.changes[1].config.removed, 4u) << "the slot after a, b and c's foundings";
  for (const char* p : {"a1", "a2", "a3", "b1", "b2", "b3"}) {
    const std::vector<Configuration> known = pump.engine(p).configurations();
    ASSERT_NE(Find(known, "c"), nullptr) << p;
    EXPECT_EQ(Find(known, "c")->removed, 4u) << p;
    EXPECT_EQ(pump.engine(p).stats().federation_generation, 4u) << p;
  }
  pump.StartPut("a3", 2, "after", "v");
  ASSERT_TRUE(AdvanceUntil(pump, [&] { return pump.puts.contains(2); }));
  EXPECT_EQ(pump.puts[2].kind, PutOutcome::Kind::kOk) << pump.puts[2].message;
  for (const char* p : {"a1", "a2", "a3", "b1", "b2", "b3"}) {
    EXPECT_EQ(pump.store(p).GetCommitted("after"), "v") << p;
  }
  // Asked again, or for the first cluster, an unknown one or from a node of
  // the cluster itself: clear refusals.
  pump.ChangeMembership("a1", 2, RemoveCluster("c"));
  pump.ChangeMembership("b1", 3, RemoveCluster("a"));
  pump.ChangeMembership("a1", 4, RemoveCluster("zz"));
  pump.ChangeMembership("a1", 5, RemoveCluster("b"));
  pump.ChangeMembership("a1", 6, RemoveCluster("b"));
  ASSERT_TRUE(AdvanceUntil(pump, [&] { return pump.changes.size() == 6; }));
  EXPECT_EQ(pump.changes[2].kind, ChangeOutcome::Kind::kInvalidArgument);
  EXPECT_NE(pump.changes[2].message.find("removed already"), std::string::npos);
  EXPECT_EQ(pump.changes[3].kind, ChangeOutcome::Kind::kInvalidArgument);
  EXPECT_NE(pump.changes[3].message.find("can never be removed"), std::string::npos);
  EXPECT_EQ(pump.changes[4].kind, ChangeOutcome::Kind::kInvalidArgument);
  EXPECT_NE(pump.changes[4].message.find("not a founded cluster"), std::string::npos);
  EXPECT_EQ(pump.changes[6].kind, ChangeOutcome::Kind::kBusy) << pump.changes[6].message;
  // b's removal, asked at a1, is decided as well (a alone remains), and a
  // node of b cannot remove its own cluster any more than c's could.
  EXPECT_EQ(pump.changes[5].kind, ChangeOutcome::Kind::kOk) << pump.changes[5].message;
  EXPECT_EQ(pump.changes[5].config.removed, 5u);

  // c's nodes come back: they learn that they were removed, and refuse.
  pump.down.clear();
  ASSERT_TRUE(AdvanceUntil(pump, [&] {
    for (const char* p : {"c1", "c2", "c3"}) {
      const Configuration* c = Find(pump.engine(p).configurations(), "c");
      if (c == nullptr || c->removed != 4) return false;
    }
    return true;
  }));
  pump.StartPut("c1", 3, "late", "v");
  pump.StartGet("c2", 1, "after", Consistency::kLinearizable);
  ASSERT_TRUE(AdvanceUntil(pump, [&] { return pump.puts.contains(3) && pump.gets.contains(1); }));
  EXPECT_EQ(pump.puts[3].kind, PutOutcome::Kind::kUnavailable);
  EXPECT_NE(pump.puts[3].message.find("was removed from the federation"), std::string::npos)
      << pump.puts[3].message;
  EXPECT_EQ(pump.gets[1].kind, GetOutcome::Kind::kUnavailable);
  EXPECT_NE(pump.gets[1].message.find("was removed from the federation"), std::string::npos);
  // And a restart forgets nothing.
  pump.Restart("a2");
  pump.Run();
  const Configuration* c = Find(pump.engine("a2").configurations(), "c");
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(c->removed, 4u);
  EXPECT_EQ(pump.engine("a2").stats().federation_generation, 5u);
  EXPECT_TRUE(pump.violations.empty());
}

TEST(FoundingTest, ARemovalAndAFoundingTakeOneSlotEach) {
  // d is waiting to be founded while c, which every put still counts, is
  // lost: d's founding cannot commit until c is removed; then both land, in
  // consecutive slots.
  std::map<ClusterId, std::vector<PeerId>> clusters = kThreeByThree;
  clusters["d"] = {"d1", "d2", "d3"};
  Pump pump(clusters, nullptr, {}, {}, {"d"});
  pump.down = {"c1", "c2", "c3"};
  pump.ChangeMembership("a2", 1, RemoveCluster("c"));
  ASSERT_TRUE(AdvanceUntil(pump, [&] {
    return pump.changes.contains(1) && Founded(pump, {"d1", "d2", "d3"});
  }));
  ASSERT_EQ(pump.changes[1].kind, ChangeOutcome::Kind::kOk) << pump.changes[1].message;
  const std::optional<Value> four = pump.store("a1").GetCommitted(FoundingKey(4));
  const std::optional<Value> five = pump.store("a1").GetCommitted(FoundingKey(5));
  ASSERT_TRUE(four && five);
  EXPECT_NE(four->substr(0, 6) == "remove", five->substr(0, 6) == "remove")
      << *four << " / " << *five;
  for (const char* p : {"a3", "b1", "d2"}) {
    EXPECT_EQ(pump.engine(p).stats().federation_generation, 5u) << p;
    const Configuration* c = Find(pump.engine(p).configurations(), "c");
    ASSERT_NE(c, nullptr) << p;
    EXPECT_EQ(c->removed, pump.changes[1].config.removed) << p;
  }
  pump.StartPut("d1", 1, "k", "v");
  ASSERT_TRUE(AdvanceUntil(pump, [&] { return pump.AllSettled() && pump.puts.contains(1); }));
  EXPECT_EQ(pump.puts[1].kind, PutOutcome::Kind::kOk) << pump.puts[1].message;
  EXPECT_TRUE(pump.violations.empty());
}

}  // namespace
}  // namespace replicator::core::testing
