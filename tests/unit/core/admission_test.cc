// Admission: every inbound request checked against its sender (who may
// open, relay, abort and ballot which proposal), the commit rule (a commit
// must match its reservation, or nothing known here may contradict it),
// reservations of an unknown coordinator, and which violation reports
// count.
#include "core/admission.h"

#include <gtest/gtest.h>

#include "core/engine.h"
#include "core/replica.h"
#include "fixtures.h"
#include "test_pump.h"

namespace replicator::core {
namespace {

using testing::kTestGeneration;
using testing::OneEngine;
using testing::VoteOf;

// Receiver a1 of cluster a = {a1, a2, a3}; cluster b = {b1, b2, b3}.
const ProposalId kOwn{"a2", 1, 1, 0, 1};     // a coordinator of the receiver's cluster
const ProposalId kRemote{"b1", 1, 1, 0, 1};  // a coordinator of another cluster

bool InA(const PeerId& p) { return p == "a1" || p == "a2" || p == "a3"; }

TEST(AdmissionTest, TheSenderRule) {
  struct Case {
    std::string name;
    PeerId from;
    Request request;
    bool admitted;
  };
  const std::vector<Case> cases = {
      {"reserve from its coordinator", "b1",
       HandleRequest{ReserveOp{"k", "v", kRemote, 0, 1, kTestGeneration}}, true},
      {"reserve relayed by a representative of this cluster", "a3",
       HandleRequest{ReserveOp{"k", "v", kRemote, 0, 1, kTestGeneration}}, true},
      {"reserve for another node, from outside the cluster", "b2",
       HandleRequest{ReserveOp{"k", "v", kRemote, 0, 1, kTestGeneration}}, false},
      {"reserve of an own-cluster coordinator relayed by another member", "a3",
       HandleRequest{ReserveOp{"k", "v", kOwn, 0, 1, kTestGeneration}}, false},
      {"reserve from an outsider naming itself", "x9",
       HandleRequest{ReserveOp{"k", "v", ProposalId{"x9", 1, 1, 0, 1}, 0, 1, 0}}, true},
      {"commit from its coordinator", "a2", HandleRequest{CommitOp{"k", "v", kOwn, 0}}, true},
      {"commit from an outsider", "x9", HandleRequest{CommitOp{"k", "v", kOwn, 0}}, false},
      {"abort from its coordinator", "b1", HandleRequest{AbortOp{"k", kRemote}}, true},
      {"abort relayed by a representative", "a2", HandleRequest{AbortOp{"k", kRemote}}, true},
      {"abort from another cluster's node", "b2", HandleRequest{AbortOp{"k", kRemote}}, false},
      {"abort with no sender", "", HandleRequest{AbortOp{"k", kRemote}}, false},
      {"forward from its coordinator", "b1",
       ForwardRequest{ReserveOp{"k", "v", kRemote, 0, 0, kTestGeneration}, 100}, true},
      {"forward from anyone else", "a2",
       ForwardRequest{ReserveOp{"k", "v", kRemote, 0, 0, kTestGeneration}, 100}, false},
      {"prepare by a member, as its proposer", "a3", PrepareRequest{kOwn, Ballot{1, "a3"}, "k"},
       true},
      {"prepare naming another proposer", "a3", PrepareRequest{kOwn, Ballot{1, "a2"}, "k"}, false},
      {"prepare at round 0", "a2", PrepareRequest{kOwn, Ballot{0, "a2"}, "k"}, false},
      {"prepare from outside the cluster", "b1", PrepareRequest{kOwn, Ballot{1, "b1"}, "k"}, false},
      {"accept at round 0 from the coordinator", "a2",
       AcceptRequest{kOwn, Ballot{0, "a2"}, Decision::kCommit, "k"}, true},
      {"accept at round 0 from another member", "a3",
       AcceptRequest{kOwn, Ballot{0, "a3"}, Decision::kCommit, "k"}, false},
      {"recovery's accept", "a3", AcceptRequest{kOwn, Ballot{2, "a3"}, Decision::kAbort, "k"},
       true},
      {"accept from outside the cluster", "b1",
       AcceptRequest{kOwn, Ballot{2, "b1"}, Decision::kAbort, "k"}, false},
      {"configuration prepare by its proposer", "a2",
       ConfigPrepareRequest{"a", 2, Ballot{1, "a2"}, {}}, true},
      {"configuration prepare naming another", "a2",
       ConfigPrepareRequest{"a", 2, Ballot{1, "a3"}, {}}, false},
      {"a resolve from anyone", "x9", ResolveRequest{kOwn, "k"}, true},
      {"a read from anyone", "x9", ReadRequest{"k", 1}, true},
  };
  for (const Case& c : cases) {
    std::optional<std::string> why = Admit(Sender{c.from, false}, c.request, InA);
    EXPECT_EQ(!why.has_value(), c.admitted) << c.name << (why ? ": " + *why : "");
  }
}

TEST(AdmissionTest, ARefusedRequestIsAnsweredFailedAndChangesNothing) {
  OneEngine r;
  std::vector<Effect> fx =
      r.RequestFrom(Sender{"x9", false}, HandleRequest{CommitOp{"k", "v", kOwn, 0}});
  EXPECT_TRUE(OneEngine::Mutations(fx).empty());
  std::vector<Response> rs = OneEngine::Responses(fx);
  ASSERT_EQ(rs.size(), 1u);
  ASSERT_TRUE(std::holds_alternative<Unreachable>(rs[0]));
  EXPECT_NE(std::get<Unreachable>(rs[0]).reason.find("refused: commit of proposal"),
            std::string::npos)
      << std::get<Unreachable>(rs[0]).reason;
  EXPECT_EQ(r.engine().stats().sender_refusals, 1u);
  EXPECT_EQ(r.store().GetCommitted("k"), std::nullopt);
}

TEST(AdmissionTest, ACommitMustMatchWhatTheReceiverKnows) {
  const ProposalId other{"b1", 1, 2, 0, 1};
  struct Case {
    std::string name;
    std::vector<Request> setup;
    CommitOp commit;
    bool applied;
  };
  const std::vector<Case> cases = {
      {"matching its reservation",
       {HandleRequest{ReserveOp{"k", "v", kRemote, 0, 1, kTestGeneration}}},
       CommitOp{"k", "v", kRemote, 0},
       true},
      {"another value than its reservation's",
       {HandleRequest{ReserveOp{"k", "v", kRemote, 0, 1, kTestGeneration}}},
       CommitOp{"k", "forged", kRemote, 0},
       false},
      {"no reservation, nothing known against it", {}, CommitOp{"k", "v", kRemote, 0}, true},
      {"of a proposal known aborted",
       {HandleRequest{AbortOp{"k", kRemote}}},
       CommitOp{"k", "v", kRemote, 0},
       false},
      {"of a proposal whose abort this acceptor accepted",
       {AcceptRequest{kOwn, Ballot{1, "a3"}, Decision::kAbort, "k"}},
       CommitOp{"k", "v", kOwn, 0},
       false},
      {"while another proposal holds the key",
       {HandleRequest{ReserveOp{"k", "w", other, 0, 1, kTestGeneration}}},
       CommitOp{"k", "v", kRemote, 0},
       true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    OneEngine r;
    for (const Request& s : c.setup) r.Settle(s);
    Vote v = VoteOf(r.Settle(HandleRequest{c.commit}));
    EXPECT_EQ(v.kind == Vote::Kind::kOk, c.applied) << v.reason;
    EXPECT_EQ(r.store().GetCommitted("k").has_value(), c.applied);
    if (!c.applied) {
      EXPECT_NE(v.reason.find("refused commit"), std::string::npos) << v.reason;
      EXPECT_EQ(r.engine().stats().sender_refusals, 1u);
      EXPECT_EQ(r.engine().stats().safety_violations, 0u);
    }
  }
}

TEST(AdmissionTest, OnlyAuthenticatedMembersCountViolations) {
  for (bool authenticated : {false, true}) {
    SCOPED_TRACE(authenticated ? "authenticated" : "unauthenticated");
    OneEngine r;
    r.Settle(HandleRequest{CommitOp{"k", "v", kOwn, 0}});
    const ProposalId second{"a2", 1, 2, 0, 1};
    std::vector<Effect> fx =
        r.RequestFrom(Sender{"a2", authenticated}, HandleRequest{CommitOp{"k", "w", second, 0}});
    for (Effect& e : r.CompleteWrites()) fx.push_back(std::move(e));
    bool reported = false;
    for (const Effect& e : fx) reported |= std::holds_alternative<ViolationEffect>(e);
    EXPECT_TRUE(reported);
    EXPECT_EQ(r.engine().stats().safety_violations, authenticated ? 1u : 0u);
    EXPECT_EQ(r.engine().stats().unverified_violation_reports, authenticated ? 0u : 1u);
  }
}

TEST(AdmissionTest, AReservationOfAnUnknownCoordinatorIsNotKeptForever) {
  OneEngine r;
  const ProposalId forged{"x9", 1, 1, 0, 1};
  r.Settle(HandleRequest{ReserveOp{"k", "v", forged, 0, 1, kTestGeneration}});
  ASSERT_EQ(r.engine().stats().reservations, 1u);
  const TimeMs lease = r.engine().config().lease_ms;
  for (int i = 0; i < kOrphanLeases - 1; ++i) {
    r.now += lease;
    r.engine().Tick(r.now);
    r.Take();
    r.CompleteWrites();
  }
  EXPECT_EQ(r.engine().stats().reservations, 1u) << "dropped before kOrphanLeases leases";
  r.now += lease;
  r.engine().Tick(r.now);
  r.Take();
  r.CompleteWrites();
  EXPECT_EQ(r.engine().stats().reservations, 0u);
  EXPECT_TRUE(r.store().reservations().empty());
  EXPECT_EQ(r.engine().stats().orphan_reservations_dropped, 1u);
  // The key is free for a real put.
  Vote v = VoteOf(r.Settle(HandleRequest{ReserveOp{"k", "w", kRemote, 0, 1, kTestGeneration}}));
  EXPECT_EQ(v.kind, Vote::Kind::kOk);
}

}  // namespace
}  // namespace replicator::core
