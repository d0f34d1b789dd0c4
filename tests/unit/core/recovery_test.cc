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
    pump.Call(peer, AcceptRequest{p, Ballot{0, "a1"}, Decision::kCommit, "k"});
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
    pump.Call(peer, AcceptRequest{p, Ballot{0, "a1"}, Decision::kCommit, "k"});
  }
  pump.Run();
  pump.RunUntilQuiet();
  for (const char* peer : {"a2", "a3", "b1", "b2"}) {
    ASSERT_TRUE(pump.store(peer).GetEntry("k").has_value()) << peer;
    EXPECT_EQ(pump.store(peer).GetEntry("k")->request_id, 31u) << peer;
  }
}

// Every acceptor of cluster a dropped its record of the put's decision
// when the key committed there; cluster b missed the commit. b's lease
// recovery still learns commit: the prepares carry the key, and each
// acceptor answers from its committed entry, writing nothing.
TEST(RecoveryTest, LeaseRecoveryLearnsCommitFromAcceptorsThatDroppedTheirRecords) {
  // Each node remembers one decision, so a later put makes it forget this
  // one (as a restart or many puts would).
  Pump pump(kTwoByThree, [](EngineConfig& c) { c.decision_cache_capacity = 1; });
  pump.cut = [](const PeerId& from, const PeerId& to, const Request& r) {
    const auto* f = std::get_if<ForwardRequest>(&r);
    return from == "a1" && to[0] == 'b' && f != nullptr && std::holds_alternative<CommitOp>(f->op);
  };
  pump.StartPut("a1", 1, "k", "v", 5);
  pump.Run();
  ASSERT_EQ(pump.puts[1].kind, PutOutcome::Kind::kOk) << pump.puts[1].message;
  pump.cut = nullptr;
  for (const char* peer : {"a1", "a2", "a3"}) {
    EXPECT_TRUE(pump.store(peer).acceptors().empty()) << peer;
    EXPECT_EQ(pump.store(peer).GetCommitted("k"), "v") << peer;
  }
  for (const char* peer : {"b1", "b2", "b3"}) {
    EXPECT_EQ(pump.store(peer).reservations().count("k"), 1u) << peer;
  }
  pump.StartPut("a2", 2, "other", "w");
  pump.Run();
  ASSERT_EQ(pump.puts[2].kind, PutOutcome::Kind::kOk) << pump.puts[2].message;
  pump.down = {"a1"};
  pump.RunUntilQuiet();
  for (const char* peer : {"b1", "b2", "b3"}) {
    EXPECT_EQ(pump.store(peer).GetCommitted("k"), "v") << peer;
    EXPECT_EQ(pump.store(peer).GetEntry("k")->request_id, 5u) << peer;
    EXPECT_TRUE(pump.store(peer).reservations().empty()) << peer;
  }
  bool prepared = false;
  for (const Pump::Sent& s : pump.sent)
    prepared |= std::holds_alternative<PrepareRequest>(s.request);
  EXPECT_TRUE(prepared) << "the decision was learned without asking the acceptors";
  for (const char* peer : {"a2", "a3"}) {
    EXPECT_TRUE(pump.store(peer).acceptors().empty()) << peer;
  }
  EXPECT_TRUE(pump.violations.empty());
}

TEST(RecoveryTest, ResolveOfAKnownDecisionAnswersAtOnce) {
  OneEngine r;
  r.Settle(HandleRequest{AbortOp{"k", kP}});
  auto resp = std::get<ResolveResponse>(r.Settle(ResolveRequest{kP, "k"}));
  ASSERT_TRUE(resp.decision.has_value());
  EXPECT_EQ(*resp.decision, Decision::kAbort);
}

}  // namespace
}  // namespace replicator::core
