// Recovery: lease recovery settles reservations whose coordinator went
// quiet (abort if nothing was chosen, commit if a commit was), with the
// reservation's request id; resolve answers a known decision at once.
#include <gtest/gtest.h>

#include "core/engine.h"
#include "fixtures.h"
#include "test_pump.h"

namespace replicator::core {
namespace {

using testing::kAll;
using testing::kTestGeneration;
using testing::kTwoByThree;
using testing::OneEngine;
using testing::Pump;
using testing::Strand;
const ProposalId kP{"a2", 1, 1, 100, 1};

TEST(RecoveryTest, LeaseRecoveryAbortsAReservationNobodyDecided) {
  Pump pump(kTwoByThree);
  const ProposalId p{"a1", 1, 77, 0, 1};
  Strand(pump, p, "k", "v", {"a2", "b1", "b3"});
  EXPECT_EQ(pump.engine("b1").stats().reservations, 1u);
  // Before the lease expires nothing happens.
  pump.AdvanceTo(pump.now + pump.engine("b1").config().lease_ms - 1);
  EXPECT_EQ(pump.engine("b1").stats().reservations, 1u);
  pump.RunUntilQuiet();
  for (const PeerId& peer : kAll) {
    EXPECT_EQ(pump.engine(peer).stats().reservations, 0u) << peer;
    EXPECT_TRUE(pump.store(peer).reservations().empty()) << peer;
    EXPECT_EQ(pump.store(peer).GetCommitted("k"), std::nullopt) << peer;
  }
  // The key is free again.
  pump.StartPut("b2", 1, "k", "w");
  pump.Run();
  EXPECT_EQ(pump.puts[1].kind, PutOutcome::Kind::kOk) << pump.puts[1].message;
}

TEST(RecoveryTest, LeaseRecoveryCommitsAChosenCommit) {
  Pump pump(kTwoByThree);
  const ProposalId p{"a1", 1, 77, 0, 1};
  Strand(pump, p, "k", "v", {"a2", "a3", "b1", "b2"});
  for (const char* peer : {"a1", "a2"}) {
    pump.Call(peer, AcceptRequest{p, Ballot{0, "a1"}, Decision::kCommit});
  }
  pump.Run();
  pump.RunUntilQuiet();
  for (const char* peer : {"a2", "a3", "b1", "b2"}) {
    EXPECT_EQ(pump.store(peer).GetCommitted("k"), "v") << peer;
    EXPECT_TRUE(pump.store(peer).reservations().empty()) << peer;
  }
}

TEST(RecoveryTest, LeaseRecoveryCommitsWithTheReservationsRequestId) {
  Pump pump(kTwoByThree);
  const ProposalId p{"a1", 1, 77, 0, 1};
  for (const char* peer : {"a2", "a3", "b1", "b2"}) {
    pump.Call(peer, HandleRequest{ReserveOp{"k", "v", p, 31, 1, kTestGeneration}});
  }
  pump.Run();
  EXPECT_EQ(pump.store("b1").reservations().at("k").request_id, 31u);
  for (const char* peer : {"a1", "a2"}) {
    pump.Call(peer, AcceptRequest{p, Ballot{0, "a1"}, Decision::kCommit});
  }
  pump.Run();
  pump.RunUntilQuiet();
  for (const char* peer : {"a2", "a3", "b1", "b2"}) {
    ASSERT_TRUE(pump.store(peer).GetEntry("k").has_value()) << peer;
    EXPECT_EQ(pump.store(peer).GetEntry("k")->request_id, 31u) << peer;
  }
}

TEST(RecoveryTest, ResolveOfAKnownDecisionAnswersAtOnce) {
  OneEngine r;
  r.Settle(HandleRequest{AbortOp{"k", kP}});
  auto resp = std::get<ResolveResponse>(r.Settle(ResolveRequest{kP}));
  ASSERT_TRUE(resp.decision.has_value());
  EXPECT_EQ(*resp.decision, Decision::kAbort);
}

}  // namespace
}  // namespace replicator::core
