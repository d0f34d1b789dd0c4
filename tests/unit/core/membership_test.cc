// Membership: the one-voter change rule, promotion of a caught-up learner,
// removal, the epoch rule on reserves and reads, and the acceptor's settle
// rule, over engines joined by the Pump.
#include "core/membership.h"

#include <gtest/gtest.h>

#include "fixtures.h"
#include "test_pump.h"

namespace replicator::core::testing {
namespace {

const std::map<ClusterId, std::vector<PeerId>> kOneByThree = {{"a", {"a1", "a2", "a3"}}};
const std::map<ClusterId, std::vector<PeerId>> kFour = {{"a", {"a1", "a2", "a3", "a4"}}};

void AutoPromote(EngineConfig& c) { c.auto_promote = true; }

MembershipChange Remove(const PeerId& peer, bool force = false) {
  return MembershipChange{MembershipChange::Kind::kRemove, peer, force, {}};
}
MembershipChange Add(const PeerId& peer) {
  return MembershipChange{MembershipChange::Kind::kAdd, peer, false, {}};
}

TEST(MembershipTest, ProposeChangeAllowsOneVoterAtATime) {
  const Configuration three{"a", 4, {"a1", "a2", "a3"}};
  const Configuration four{"a", 4, {"a1", "a2", "a3", "a4"}};
  const std::vector<PeerId> members = {"a1", "a2", "a3", "a4", "a5"};
  struct Case {
    const char* name;
    Configuration base;
    MembershipChange change;
    std::vector<PeerId> want;  // empty: refused
    const char* error_has;
  };
  const std::vector<Case> cases = {
      {"add a member", three, Add("a4"), {"a1", "a2", "a3", "a4"}, ""},
      {"add a voter again", three, Add("a2"), {}, "already a voter of cluster a (epoch 4)"},
      {"add a stranger", three, Add("x9"), {}, "not a member of cluster a"},
      {"remove a voter", four, Remove("a2"), {"a1", "a3", "a4"}, ""},
      {"remove a non-voter", three, Remove("a5"), {}, "not a voter of cluster a"},
      {"remove below three", three, Remove("a1"), {}, "would leave cluster a with 2 voters"},
      {"remove below three, forced", three, Remove("a1", true), {"a2", "a3"}, ""},
      {"remove the last voter",
       Configuration{"a", 9, {"a1"}},
       Remove("a1", true),
       {},
       "last voter"},
      {"no configuration", Configuration{"a", 0, {}}, Add("a4"), {}, "no configuration yet"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ProposedChange pc = ProposeChange(c.base, c.change, members);
    EXPECT_EQ(pc.voters, c.want);
    EXPECT_EQ(pc.error.empty(), c.want.empty() ? false : true) << pc.error;
    EXPECT_NE(pc.error.find(c.error_has), std::string::npos) << pc.error;
  }
}

TEST(MembershipTest, ACaughtUpLearnerPromotesItselfThroughConsensus) {
  Pump pump(kFour, AutoPromote, /*learners=*/{"a4"});
  for (const char* p : {"a1", "a2", "a3", "a4"}) {
    EXPECT_EQ(pump.engine(p).configuration().epoch, 1u) << p;
  }
  pump.StartPut("a1", 1, "k", "v");
  pump.Run();
  ASSERT_EQ(pump.puts[1].kind, PutOutcome::Kind::kOk) << pump.puts[1].message;
  pump.StartCatchUp("a4");
  pump.RunUntilQuiet(10000);
  const Configuration want{"a", 2, {"a1", "a2", "a3", "a4"}, /*generation=*/1};
  for (const char* p : {"a1", "a2", "a3", "a4"}) {
    EXPECT_EQ(pump.engine(p).configuration(), want) << p;
    EXPECT_EQ(pump.engine(p).configurations().size(), 2u) << p << ": the whole history";
  }
  EXPECT_EQ(pump.store("a4").GetCommitted("k"), "v") << "caught up before it was promoted";
  EXPECT_EQ(pump.engine("a4").stats().config_changes, 1u);
  // Epoch 2 counts four voters: a put needs three of them.
  pump.down = {"a1", "a2"};
  pump.StartPut("a3", 2, "k2", "v");
  pump.Run();
  EXPECT_EQ(pump.puts[2].kind, PutOutcome::Kind::kUnavailable) << pump.puts[2].message;
  EXPECT_NE(pump.puts[2].message.find("reserved at 2 of 4 voters"), std::string::npos)
      << pump.puts[2].message;
  EXPECT_TRUE(pump.violations.empty());
}

TEST(MembershipTest, ARemovedVoterStopsCountingAndNeverPromotesItselfAgain) {
  Pump pump(kFour, AutoPromote);
  pump.ChangeMembership("a1", 7, Remove("a4"));
  pump.RunUntilQuiet(10000);
  ASSERT_TRUE(pump.changes.contains(7));
  EXPECT_EQ(pump.changes[7].kind, ChangeOutcome::Kind::kOk) << pump.changes[7].message;
  const Configuration want{"a", 2, {"a1", "a2", "a3"}, /*generation=*/1};
  EXPECT_EQ(pump.changes[7].config, want);
  for (const char* p : {"a1", "a2", "a3", "a4"}) {
    EXPECT_EQ(pump.engine(p).configuration(), want) << p;
  }
  // Two of the three remaining voters are a majority now.
  pump.down = {"a3"};
  pump.StartPut("a4", 1, "k", "v");  // the retired node still coordinates
  pump.Run();
  EXPECT_EQ(pump.puts[1].kind, PutOutcome::Kind::kOk) << pump.puts[1].message;
  pump.down.clear();
  pump.RunUntilQuiet(10000);
  EXPECT_EQ(pump.engine("a4").configuration(), want) << "it did not add itself back";
  EXPECT_EQ(pump.engine("a4").stats().reservations, 0u);
}

TEST(MembershipTest, ChangesTheRulesRefuseAreClearErrors) {
  Pump pump(kOneByThree);
  pump.ChangeMembership("a1", 1, Remove("a3"));
  pump.ChangeMembership("a1", 2, Remove("zz"));
  pump.ChangeMembership("a1", 3, Add("a2"));
  pump.Run();
  EXPECT_EQ(pump.changes[1].kind, ChangeOutcome::Kind::kInvalidArgument);
  EXPECT_NE(pump.changes[1].message.find("would leave cluster a with 2 voters"), std::string::npos)
      << pump.changes[1].message;
  EXPECT_EQ(pump.changes[2].kind, ChangeOutcome::Kind::kInvalidArgument);
  EXPECT_EQ(pump.changes[3].kind, ChangeOutcome::Kind::kInvalidArgument);
  // A change while another is in flight at the same node is busy.
  pump.hold = [](const PeerId&, const PeerId& to, const Request&) { return to == "a2"; };
  pump.ChangeMembership("a1", 4, Remove("a3", /*force=*/true));
  pump.ChangeMembership("a1", 5, Remove("a2", /*force=*/true));
  EXPECT_EQ(pump.changes[5].kind, ChangeOutcome::Kind::kBusy) << pump.changes[5].message;
  pump.Release();
  pump.RunUntilQuiet(10000);
  EXPECT_EQ(pump.changes[4].kind, ChangeOutcome::Kind::kOk) << pump.changes[4].message;
  EXPECT_EQ(pump.engine("a2").configuration().voters, (std::vector<PeerId>{"a1", "a2"}));
}

TEST(MembershipTest, TwoConcurrentChangesOfOneEpochChooseOne) {
  Pump pump({{"a", {"a1", "a2", "a3", "a4", "a5"}}});
  std::mt19937_64 rng(7);
  pump.shuffle = &rng;
  pump.ChangeMembership("a1", 1, Remove("a4"));
  pump.ChangeMembership("a2", 2, Remove("a5"));
  pump.RunUntilQuiet(20000);
  ASSERT_TRUE(pump.changes.contains(1) && pump.changes.contains(2));
  const int oks = (pump.changes[1].kind == ChangeOutcome::Kind::kOk) +
                  (pump.changes[2].kind == ChangeOutcome::Kind::kOk);
  EXPECT_EQ(oks, 1) << "one epoch, one change: one wins, the other hears it lost";
  const Configuration newest = pump.engine("a3").configuration();
  for (const char* p : {"a1", "a2", "a3", "a4", "a5"}) {
    EXPECT_EQ(pump.engine(p).configurations(), pump.engine("a3").configurations()) << p;
  }
  EXPECT_EQ(newest.voters.size(), 5u - static_cast<size_t>(oks));
  EXPECT_TRUE(pump.violations.empty());
}

TEST(MembershipTest, StaleNodesAreRefusedLearnTheNewEpochAndRetry) {
  Pump pump({{"a", {"a1", "a2", "a3", "a4", "a5"}}});
  // a4 and a5 miss the whole change.
  pump.down = {"a4", "a5"};
  pump.ChangeMembership("a1", 1, Remove("a3"));
  pump.RunUntilQuiet(10000);
  ASSERT_EQ(pump.changes[1].kind, ChangeOutcome::Kind::kOk) << pump.changes[1].message;
  const Configuration epoch2{"a", 2, {"a1", "a2", "a4", "a5"}, /*generation=*/1};
  pump.down.clear();
  ASSERT_EQ(pump.engine("a4").configuration().epoch, 1u);
  ASSERT_EQ(pump.engine("a5").configuration().epoch, 1u);
  // A put at a stale coordinator: refused under epoch 1, retried under 2
  // (a5 stays away, to stay stale).
  pump.down = {"a5"};
  pump.StartPut("a4", 1, "k", "v");
  pump.RunUntilQuiet(5000);
  pump.down.clear();
  ASSERT_TRUE(pump.puts.contains(1));
  EXPECT_EQ(pump.puts[1].kind, PutOutcome::Kind::kOk) << pump.puts[1].message;
  EXPECT_EQ(pump.engine("a4").configuration(), epoch2);
  EXPECT_GE(pump.engine("a1").stats().stale_epoch_refusals, 1u);
  EXPECT_GE(pump.engine("a4").stats().put_retries, 1u);
  // A linearizable get at a stale node: a committed value is final under
  // any epoch, but "absent" counts only under the newest, so it re-reads.
  ASSERT_EQ(pump.engine("a5").configuration().epoch, 1u);
  pump.StartGet("a5", 1, "k", Consistency::kLinearizable);
  pump.StartGet("a5", 2, "absent", Consistency::kLinearizable);
  pump.Run();
  ASSERT_TRUE(pump.gets.contains(1) && pump.gets.contains(2));
  EXPECT_EQ(pump.gets[1].kind, GetOutcome::Kind::kFound) << pump.gets[1].message;
  EXPECT_EQ(pump.gets[2].kind, GetOutcome::Kind::kNotFound) << pump.gets[2].message;
  EXPECT_EQ(pump.engine("a5").configuration(), epoch2);
  // A reserve tagged with an old epoch is refused with what the voter knows.
  const ProposalId p{"a9", 1, 1, 0, 1};
  const uint64_t call =
      pump.Call("a2", HandleRequest{ReserveOp{"k2", "v", p, 0, 1, kTestGeneration}});
  pump.Run();
  const Vote& v = std::get<HandleResponse>(pump.tester_responses.at(call)).vote;
  EXPECT_EQ(v.kind, Vote::Kind::kWrongEpoch);
  EXPECT_EQ(v.epoch, 2u);
  ASSERT_EQ(v.configs.size(), 2u);
  EXPECT_EQ(v.configs[1], epoch2);
  // So is a read, and a reserve at a node that no longer votes.
  const uint64_t read = pump.Call("a2", ReadRequest{"k2", 1});
  const uint64_t retired =
      pump.Call("a3", HandleRequest{ReserveOp{"k2", "v", p, 0, 2, kTestGeneration}});
  pump.Run();
  EXPECT_EQ(std::get<ReadResponse>(pump.tester_responses.at(read)).kind,
            ReadResponse::Kind::kWrongEpoch);
  EXPECT_EQ(std::get<HandleResponse>(pump.tester_responses.at(retired)).vote.kind,
            Vote::Kind::kWrongEpoch);
  EXPECT_TRUE(pump.violations.empty());
}

TEST(MembershipTest, AnAcceptorVotesOnTheNextEpochOnlyOnceSettled) {
  DurableState recovered;
  recovered.configs = {Configuration{"a", 1, {"a1", "a2", "a3"}},
                       Configuration{"a", 2, {"a1", "a2", "a3", "a4"}}};
  OneEngine one(std::move(recovered), {{"a", {"a1", "a2", "a3", "a4"}}});
  EXPECT_EQ(one.engine().configuration().epoch, 2u);
  EXPECT_FALSE(one.engine().caught_up());
  ConfigPrepareRequest prepare{"a", 3, Ballot{1, "a2"}, {}};
  auto r = std::get<ConfigVoteResponse>(one.Settle(prepare));
  EXPECT_EQ(r.kind, ConfigVoteResponse::Kind::kNotReady);
  EXPECT_NE(r.reason.find("settling epoch 2"), std::string::npos) << r.reason;
  // Asked about an epoch already chosen, it says so with its history.
  r = std::get<ConfigVoteResponse>(one.Settle(ConfigPrepareRequest{"a", 2, Ballot{1, "a2"}, {}}));
  EXPECT_EQ(r.kind, ConfigVoteResponse::Kind::kChosen);
  EXPECT_EQ(r.known.size(), 2u);
  // Another cluster's register is none of its business.
  r = std::get<ConfigVoteResponse>(one.Settle(ConfigPrepareRequest{"b", 2, Ballot{1, "b1"}, {}}));
  EXPECT_EQ(r.kind, ConfigVoteResponse::Kind::kNotReady);
}

TEST(MembershipTest, AnAcceptorRefusesMoreThanOneVoterOfChange) {
  OneEngine one;  // epoch 1 = {a1, a2, a3}: trivially settled
  auto r = std::get<ConfigVoteResponse>(
      one.Settle(ConfigAcceptRequest{"a", 2, Ballot{1, "a2"}, {"a1", "a4", "a5"}, {}}));
  EXPECT_EQ(r.kind, ConfigVoteResponse::Kind::kNotReady);
  EXPECT_NE(r.reason.find("not a one-voter change"), std::string::npos) << r.reason;
  r = std::get<ConfigVoteResponse>(
      one.Settle(ConfigAcceptRequest{"a", 2, Ballot{1, "a2"}, {"a1", "a2", "a3", "a4"}, {}}));
  EXPECT_EQ(r.kind, ConfigVoteResponse::Kind::kGranted);
  // A lower ballot is refused after that.
  r = std::get<ConfigVoteResponse>(one.Settle(ConfigPrepareRequest{"a", 2, Ballot{0, "a3"}, {}}));
  EXPECT_EQ(r.kind, ConfigVoteResponse::Kind::kRejected);
  // A higher one is promised and told what was accepted.
  r = std::get<ConfigVoteResponse>(one.Settle(ConfigPrepareRequest{"a", 2, Ballot{2, "a3"}, {}}));
  ASSERT_EQ(r.kind, ConfigVoteResponse::Kind::kGranted);
  ASSERT_TRUE(r.accepted.has_value());
  EXPECT_EQ(r.accepted->voters, (std::vector<PeerId>{"a1", "a2", "a3", "a4"}));
}

TEST(MembershipTest, ADecisionKeepsTheAcceptorsOfItsEpoch) {
  Pump pump(kFour);
  pump.ChangeMembership("a1", 1, Remove("a4"));
  pump.RunUntilQuiet(10000);
  ASSERT_EQ(pump.changes[1].kind, ChangeOutcome::Kind::kOk) << pump.changes[1].message;
  // A proposal of epoch 1 is recovered over epoch 1's four voters: a4
  // still holds an acceptor record of it.
  const ProposalId p{"a1", 1, 77, 0, 1};
  pump.Call("a4", AcceptRequest{p, Ballot{0, "a1"}, Decision::kCommit, "k"});
  pump.Call("a3", AcceptRequest{p, Ballot{0, "a1"}, Decision::kCommit, "k"});
  pump.Run();
  pump.down = {"a1"};
  const uint64_t call = pump.Call("a2", ResolveRequest{p, "k"});
  pump.Run();
  const auto& rr = std::get<ResolveResponse>(pump.tester_responses.at(call));
  ASSERT_TRUE(rr.decision.has_value()) << rr.reason;
  EXPECT_EQ(*rr.decision, Decision::kCommit);
  bool asked_a4 = false;
  for (const Pump::Sent& s : pump.sent) {
    asked_a4 = asked_a4 || (s.from == "a2" && s.to == "a4" &&
                            std::holds_alternative<PrepareRequest>(s.request));
  }
  EXPECT_TRUE(asked_a4) << "the removed voter is still an acceptor of epoch 1's decisions";
}

}  // namespace
}  // namespace replicator::core::testing
