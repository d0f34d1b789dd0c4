// Federation: clusters founded after others (core/federation.h). The
// generation rule (a reserve counted at a lower federation generation is
// refused, and its coordinator adopts the clusters it lacked and retries),
// the federation settle (a young cluster answers linearizable reads only
// once it learned what was committed before it counted), inheritance of the
// settle by a node of the cluster that restarts, and G's derivation and
// durability.
#include "core/federation.h"

#include <gtest/gtest.h>

#include "fixtures.h"
#include "test_pump.h"

namespace replicator::core::testing {
namespace {

// a: generation 1; b: generation 2 (MakeTopology founds them in id order).
const Configuration kB{"b", 1, {"b1", "b2", "b3"}, 2};

// Messages between the two clusters (a cut between them).
bool Across(const PeerId& from, const PeerId& to, const Request&) {
  return from != Pump::kTester && from[0] != to[0];
}

bool Settled(Pump& pump, const std::vector<PeerId>& peers) {
  for (const PeerId& p : peers) {
    if (!pump.engine(p).stats().federation_settled) return false;
  }
  return true;
}

// Ticks every engine in steps of `step` until `done` or `limit` passed.
template <typename Done>
void AdvanceUntil(Pump& pump, Done done, TimeMs step = 50, TimeMs limit = 5000) {
  const TimeMs end = pump.now + limit;
  while (!done() && pump.now < end) pump.AdvanceTo(pump.now + step);
}

TEST(FederationTest, AReserveCountedAtALowerGenerationIsRefusedWithWhatItLacks) {
  Pump pump(kTwoByThree);
  ASSERT_EQ(pump.engine("a2").stats().federation_generation, 2u);
  const ProposalId p{"a9", 1, 1, 0, 1};
  const uint64_t low = pump.Call("a2", HandleRequest{ReserveOp{"k", "v", p, 0, 1, 1}});
  const uint64_t same = pump.Call("a3", HandleRequest{ReserveOp{"k", "v", p, 0, 1, 2}});
  pump.Run();
  const Vote refused = VoteOf(pump.tester_responses.at(low));
  EXPECT_EQ(refused.kind, Vote::Kind::kWrongGeneration);
  EXPECT_EQ(refused.generation, 2u);
  EXPECT_EQ(refused.configs, std::vector<Configuration>{kB}) << "the cluster founded since";
  EXPECT_TRUE(pump.store("a2").reservations().empty()) << "nothing was done";
  EXPECT_EQ(pump.engine("a2").stats().generation_refusals, 1u);
  EXPECT_EQ(VoteOf(pump.tester_responses.at(same)).kind, Vote::Kind::kOk);
  // A committed value is final whatever the generation.
  pump.StartPut("a1", 1, "c", "w");
  pump.Run();
  ASSERT_EQ(pump.puts[1].kind, PutOutcome::Kind::kOk) << pump.puts[1].message;
  const ProposalId q{"a9", 1, 2, 0, 1};
  const uint64_t stored = pump.Call("a1", HandleRequest{ReserveOp{"c", "x", q, 0, 1, 1}});
  pump.Run();
  EXPECT_EQ(VoteOf(pump.tester_responses.at(stored)).kind, Vote::Kind::kStored);
  EXPECT_TRUE(pump.violations.empty());
}

TEST(FederationTest, ACoordinatorThatHasNotHeardOfANewClusterIsRefusedAndRetriesCountingIt) {
  // b was founded; only b's nodes know. a2 and a3 hear of it, a1 has not.
  Pump pump(kTwoByThree, nullptr, {}, {"b"});
  pump.cut = Across;
  pump.Run();
  pump.cut = nullptr;
  pump.Show("a2");
  pump.Show("a3");
  ASSERT_EQ(pump.engine("a1").stats().federation_generation, 1u);
  ASSERT_EQ(pump.engine("a2").stats().federation_generation, 2u);
  pump.StartPut("a1", 1, "k", "v");
  pump.RunUntilQuiet(3000);
  ASSERT_TRUE(pump.puts.contains(1));
  EXPECT_EQ(pump.puts[1].kind, PutOutcome::Kind::kOk) << pump.puts[1].message;
  EXPECT_EQ(pump.engine("a1").stats().federation_generation, 2u) << "it adopted b";
  EXPECT_GE(pump.engine("a1").stats().put_retries, 1u) << "and retried at once";
  EXPECT_GE(pump.engine("a2").stats().generation_refusals, 1u);
  // The retry counted b: its voters hold the key.
  for (const char* peer : {"b1", "b2", "b3"}) {
    EXPECT_EQ(pump.store(peer).GetCommitted("k"), "v") << peer;
  }
  EXPECT_TRUE(pump.violations.empty());
}

TEST(FederationTest, AYoungClusterAnswersReadsOnlyOnceItHoldsWhatWasCommittedBeforeIt) {
  Pump pump(kTwoByThree, nullptr, {}, {"b"});
  pump.cut = Across;
  // Committed before a heard of b: counted at generation 1, without b.
  pump.StartPut("a1", 1, "old", "v");
  pump.Run();
  ASSERT_EQ(pump.puts[1].kind, PutOutcome::Kind::kOk) << pump.puts[1].message;
  for (const char* peer : {"b1", "b2", "b3"}) {
    EXPECT_FALSE(pump.engine(peer).stats().federation_settled) << peer;
    EXPECT_EQ(pump.store(peer).GetCommitted("old"), std::nullopt) << peer;
  }
  // Cut off from a, b cannot settle: a linearizable read at b waits at its
  // voters, then they refuse it and the reader says why.
  pump.StartGet("b1", 1, "old", Consistency::kLinearizable);
  pump.Run();
  EXPECT_FALSE(pump.gets.contains(1)) << "the read waits for the settle";
  pump.AdvanceTo(pump.now + pump.engine("b1").config().call_deadline_ms);
  ASSERT_TRUE(pump.gets.contains(1));
  EXPECT_EQ(pump.gets[1].kind, GetOutcome::Kind::kUnavailable);
  EXPECT_NE(pump.gets[1].message.find("cluster b is still catching up with the federation"),
            std::string::npos)
      << pump.gets[1].message;
  EXPECT_GE(pump.engine("b2").stats().reads_not_ready, 1u);
  // A local get answers what the node has, as always.
  pump.StartGet("b1", 2, "old", Consistency::kLocal);
  EXPECT_EQ(pump.gets[2].kind, GetOutcome::Kind::kNotFound);

  // Healed: b's rounds with a's voters count once those know b (b tells
  // them), and pull what a holds.
  pump.cut = nullptr;
  AdvanceUntil(pump, [&] { return Settled(pump, {"b1", "b2", "b3"}); });
  ASSERT_TRUE(Settled(pump, {"b1", "b2", "b3"}));
  EXPECT_EQ(pump.engine("a1").stats().federation_generation, 2u) << "told of b by its settle";
  for (const char* peer : {"b1", "b2", "b3"}) {
    EXPECT_EQ(pump.store(peer).GetCommitted("old"), "v") << peer;
  }
  pump.StartGet("b2", 3, "old", Consistency::kLinearizable);
  pump.Run();
  ASSERT_TRUE(pump.gets.contains(3));
  EXPECT_EQ(pump.gets[3].kind, GetOutcome::Kind::kFound) << pump.gets[3].message;
  EXPECT_EQ(pump.gets[3].value, "v");
  EXPECT_TRUE(pump.violations.empty());
}

TEST(FederationTest, TheSettleLearnsTheDecisionOfAReservationTheOlderClusterHeld) {
  Pump pump(kTwoByThree, nullptr, {}, {"b"});
  pump.cut = Across;
  // A put counted without b: reserved at a majority of a and its commit
  // accepted there at ballot 0, then its coordinator went silent before any
  // commit was applied (it may have answered ok).
  const ProposalId p{"a1", 1, 77, 0, 1};
  for (const char* peer : {"a2", "a3"}) {
    pump.Call(peer, HandleRequest{ReserveOp{"k", "v", p, 0, 1, 1}});
    pump.Call(peer, AcceptRequest{p, Ballot{0, "a1"}, Decision::kCommit, "k"});
  }
  pump.Run();
  pump.down = {"a1"};
  pump.cut = nullptr;
  // Well before the reservation's lease runs out at a: b's settle resolves it.
  const TimeMs lease = pump.engine("a2").config().lease_ms;
  AdvanceUntil(
      pump,
      [&] {
        return Settled(pump, {"b1", "b2", "b3"});
      },
      50, lease / 2);
  ASSERT_TRUE(Settled(pump, {"b1", "b2", "b3"}));
  for (const char* peer : {"b1", "b2", "b3"}) {
    EXPECT_EQ(pump.store(peer).GetCommitted("k"), "v") << peer;
  }
  EXPECT_TRUE(pump.violations.empty());
}

TEST(FederationTest, ANodeThatRestartsSettlesAgainInheritingFromItsCluster) {
  Pump pump(kTwoByThree);
  ASSERT_TRUE(Settled(pump, {"b1", "b2", "b3"}));
  pump.StartPut("a1", 1, "k", "v");
  pump.Run();
  ASSERT_EQ(pump.puts[1].kind, PutOutcome::Kind::kOk) << pump.puts[1].message;
  // Settling is not durable: a restart must never answer as settled before
  // it knows. Cut off from a, it inherits from b's settled voters.
  pump.cut = Across;
  pump.Restart("b1");
  EXPECT_FALSE(pump.engine("b1").stats().federation_settled);
  pump.Run();
  AdvanceUntil(pump, [&] { return Settled(pump, {"b1"}); });
  EXPECT_TRUE(Settled(pump, {"b1"}));
  EXPECT_EQ(pump.store("b1").GetCommitted("k"), "v");
  // The first cluster has nothing to settle with: settled from the start.
  pump.Restart("a2");
  EXPECT_TRUE(pump.engine("a2").stats().federation_settled);
  EXPECT_TRUE(pump.violations.empty());
}

TEST(FederationTest, TheGenerationIsDurableAndALaterClusterBeyondAGapDoesNotCount) {
  Pump pump(kTwoByThree);
  // Derived from the configurations the node made durable, before any
  // membership view is shown: a restart never lowers it.
  pump.Restart("a1", /*show=*/false);
  EXPECT_EQ(pump.engine("a1").stats().federation_generation, 2u);
  const ProposalId p{"a9", 1, 1, 0, 1};
  const uint64_t low = pump.Call("a1", HandleRequest{ReserveOp{"k", "v", p, 0, 1, 1}});
  pump.Run();
  EXPECT_EQ(VoteOf(pump.tester_responses.at(low)).kind, Vote::Kind::kWrongGeneration);

  // A cluster known at generation 4 while 3 is not known leaves a gap: G
  // stays 2 (a put counting up to 4 would miss generation 3's cluster),
  // until generation 3's cluster is known too.
  const Configuration d{"d", 1, {"d1", "d2", "d3"}, 4};
  const Configuration c{"c", 1, {"c1", "c2", "c3"}, 3};
  pump.Call("a2", ConfigLearnRequest{{d}});
  pump.Run();
  EXPECT_EQ(pump.engine("a2").stats().federation_generation, 2u);
  pump.Call("a2", ConfigLearnRequest{{c}});
  pump.Run();
  EXPECT_EQ(pump.engine("a2").stats().federation_generation, 4u);
  // A cluster heard of with another generation than the one it was
  // founded at is a violation, and the first one stays.
  pump.Call("a2", ConfigLearnRequest{{Configuration{"c", 2, {"c1", "c2", "c4"}, 5}}});
  pump.Run();
  ASSERT_EQ(pump.violations.size(), 1u);
  EXPECT_EQ(pump.violations[0].key, "config/c/generation");
  EXPECT_EQ(pump.engine("a2").stats().federation_generation, 4u);
}

}  // namespace
}  // namespace replicator::core::testing
