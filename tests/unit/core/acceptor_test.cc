// The Paxos acceptor: the prepare/accept rules as a table over one
// register, and the role on one engine (promises and accepts answer only
// once durable; durable records are read from storage, not memory).
#include "core/acceptor.h"

#include <gtest/gtest.h>

#include "core/engine.h"
#include "fixtures.h"
#include "test_pump.h"

namespace replicator::core {
namespace {

using testing::kTestGeneration;
using testing::OneEngine;
using testing::VoteOf;

const ProposalId kP{"a1", 1, 1, 0, 1};
// A proposal of another coordinator, for the role tests on engine a1.
const ProposalId kRemoteP{"a2", 1, 1, 100, 1};
const Ballot kB0{0, "a1"};
const Ballot kB1x{1, "a2"};
const Ballot kB1y{1, "a3"};  // (1, a3) > (1, a2): proposer breaks round ties
const Ballot kB2{2, "a2"};

// One step applied to the register, with what it must answer.
struct Step {
  enum class Kind { kPrepare, kAccept } kind;
  Ballot ballot;
  Decision decision = Decision::kAbort;  // kAccept
  bool granted;
  Ballot named = {};                        // when refused: the promised ballot
  std::optional<AcceptedValue> reported = {};  // when a prepare is granted
};

struct Case {
  std::string name;
  std::vector<Step> steps;
};

TEST(AcceptorTest, PrepareAndAcceptOrdering) {
  using S = Step::Kind;
  const auto commit0 = AcceptedValue{kB0, Decision::kCommit};
  const std::vector<Case> cases = {
      {"fresh prepare is promised with nothing accepted", {{S::kPrepare, kB1x, {}, true}}},
      {"fresh accept at ballot 0 needs no prepare",
       {{S::kAccept, kB0, Decision::kCommit, true}}},
      {"prepare after accept reports the accepted value",
       {{S::kAccept, kB0, Decision::kCommit, true},
        {S::kPrepare, kB1x, {}, true, {}, commit0}}},
      {"ballot 0 accept after a higher promise is refused",
       {{S::kPrepare, kB1x, {}, true}, {S::kAccept, kB0, Decision::kCommit, false, kB1x}}},
      {"lower prepare after a higher one is refused, naming it",
       {{S::kPrepare, kB2, {}, true}, {S::kPrepare, kB1x, {}, false, kB2}}},
      {"an equal prepare is refused", {{S::kPrepare, kB1x, {}, true}, {S::kPrepare, kB1x, {}, false, kB1x}}},
      {"round ties break by proposer",
       {{S::kPrepare, kB1x, {}, true}, {S::kPrepare, kB1y, {}, true},
        {S::kAccept, kB1x, Decision::kAbort, false, kB1y}}},
      {"accept at the promised ballot",
       {{S::kPrepare, kB1x, {}, true}, {S::kAccept, kB1x, Decision::kAbort, true}}},
      {"accept above the promised ballot",
       {{S::kPrepare, kB1x, {}, true}, {S::kAccept, kB2, Decision::kAbort, true},
        {S::kPrepare, kB1y, {}, false, kB2}}},
      {"a later accept replaces the accepted value",
       {{S::kAccept, kB0, Decision::kCommit, true}, {S::kAccept, kB2, Decision::kCommit, true},
        {S::kPrepare, Ballot{3, "a1"}, {}, true, {}, AcceptedValue{kB2, Decision::kCommit}}}},
  };
  for (const Case& c : cases) {
    std::optional<AcceptorRecord> record;
    for (size_t i = 0; i < c.steps.size(); ++i) {
      const Step& s = c.steps[i];
      const AcceptorRecord* cur = record ? &*record : nullptr;
      std::string where = c.name + " step " + std::to_string(i);
      if (s.kind == S::kPrepare) {
        PrepareStep out = OnPrepare(cur, PrepareRequest{kP, s.ballot, "k"}, /*decided=*/false);
        ASSERT_EQ(out.response.promised, s.granted) << where;
        EXPECT_EQ(out.updated.has_value(), s.granted) << where;
        if (s.granted) {
          ASSERT_EQ(out.response.accepted.has_value(), s.reported.has_value()) << where;
          if (s.reported) {
            EXPECT_EQ(out.response.accepted->ballot, s.reported->ballot) << where;
            EXPECT_EQ(out.response.accepted->decision, s.reported->decision) << where;
          }
          EXPECT_EQ(out.updated->promised, s.ballot) << where;
          record = out.updated;
        } else {
          EXPECT_EQ(out.response.higher, s.named) << where;
        }
      } else {
        AcceptStep out =
            OnAccept(cur, AcceptRequest{kP, s.ballot, s.decision, "k"}, /*decided=*/false);
        ASSERT_EQ(out.response.accepted, s.granted) << where;
        EXPECT_EQ(out.updated.has_value(), s.granted) << where;
        if (s.granted) {
          ASSERT_TRUE(out.updated->accepted.has_value()) << where;
          EXPECT_EQ(out.updated->accepted->ballot, s.ballot) << where;
          EXPECT_EQ(out.updated->accepted->decision, s.decision) << where;
          record = out.updated;
        } else {
          EXPECT_EQ(out.response.promised, s.named) << where;
        }
      }
    }
  }
}

TEST(AcceptorTest, AcceptorRepliesWaitForTheirWrite) {
  OneEngine r;
  std::vector<Effect> fx =
      r.Request(AcceptRequest{kRemoteP, Ballot{0, "a2"}, Decision::kCommit, "k"});
  EXPECT_EQ(OneEngine::Mutations(fx), std::vector<std::string>{"PutAcceptor"});
  EXPECT_TRUE(OneEngine::Responses(fx).empty());
  std::vector<Response> rs = OneEngine::Responses(r.CompleteWrites());
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_TRUE(std::get<AcceptResponse>(rs[0]).accepted);
  ASSERT_EQ(r.store().acceptors().size(), 1u);

  fx = r.Request(PrepareRequest{kRemoteP, Ballot{1, "a3"}, "k"});
  EXPECT_TRUE(OneEngine::Responses(fx).empty());
  rs = OneEngine::Responses(r.CompleteWrites());
  ASSERT_EQ(rs.size(), 1u);
  const auto& promise = std::get<PrepareResponse>(rs[0]);
  EXPECT_TRUE(promise.promised);
  ASSERT_TRUE(promise.accepted.has_value());
  EXPECT_EQ(promise.accepted->decision, Decision::kCommit);

  // Refusals change nothing, so they answer at once.
  fx = r.Request(PrepareRequest{kRemoteP, Ballot{1, "a2"}, "k"});
  EXPECT_TRUE(OneEngine::Mutations(fx).empty());
  rs = OneEngine::Responses(fx);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_FALSE(std::get<PrepareResponse>(rs[0]).promised);
  EXPECT_EQ(std::get<PrepareResponse>(rs[0]).higher, (Ballot{1, "a3"}));
  rs = OneEngine::Responses(
      r.Request(AcceptRequest{kRemoteP, Ballot{0, "a2"}, Decision::kCommit, "k"}));
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_FALSE(std::get<AcceptResponse>(rs[0]).accepted);
}

TEST(AcceptorTest, DurableAcceptorRecordsAreReadFromStorageNotMemory) {
  OneEngine r;
  r.Settle(AcceptRequest{kRemoteP, Ballot{0, "a2"}, Decision::kCommit, "k"});
  // While a promise is being written the engine answers from its own copy:
  // a second prepare at the same ballot must not wait for storage.
  std::vector<Effect> fx = r.Request(PrepareRequest{kRemoteP, Ballot{3, "a3"}, "k"});
  EXPECT_EQ(OneEngine::Mutations(fx), std::vector<std::string>{"PutAcceptor"});
  std::vector<Response> rs =
      OneEngine::Responses(r.Request(PrepareRequest{kRemoteP, Ballot{2, "a2"}, "k"}));
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_FALSE(std::get<PrepareResponse>(rs[0]).promised);  // 2 < the pending 3
  r.CompleteWrites();
  // Once durable, storage is the only copy: what it holds is what counts.
  // (Raised behind the engine's back here; an engine answering from a
  // remembered copy would still promise round 4.)
  AcceptorRecord raised = r.store().acceptors().at(kRemoteP);
  raised.promised = Ballot{9, "a9"};
  r.store().Apply(PutAcceptor{raised});
  rs = OneEngine::Responses(r.Request(PrepareRequest{kRemoteP, Ballot{4, "a2"}, "k"}));
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_FALSE(std::get<PrepareResponse>(rs[0]).promised);
  EXPECT_EQ(std::get<PrepareResponse>(rs[0]).higher, (Ballot{9, "a9"}));
}

// Once this node has the key committed by the proposal, the committed
// entry answers for the register: commit, whatever record is (or is no
// longer) held, and the record goes.
TEST(AcceptorTest, ADecidedRegisterAnswersCommitAndDropsItsRecord) {
  const AcceptorRecord promised_only{kP, kB2, std::nullopt};
  for (const AcceptorRecord* cur : {static_cast<const AcceptorRecord*>(nullptr), &promised_only}) {
    SCOPED_TRACE(cur == nullptr ? "no record" : "a record promised at round 2");
    PrepareStep p = OnPrepare(cur, PrepareRequest{kP, kB1x, "k"}, /*decided=*/true);
    EXPECT_FALSE(p.refusal.has_value());
    EXPECT_TRUE(p.response.promised);
    EXPECT_TRUE(p.response.decided);
    ASSERT_TRUE(p.response.accepted.has_value());
    // What a proposer that ignores `decided` adopts: commit.
    EXPECT_EQ(p.response.accepted->decision, Decision::kCommit);
    EXPECT_EQ(p.response.accepted->ballot, (Ballot{0, kP.coordinator}));
    EXPECT_FALSE(p.updated.has_value());
    EXPECT_EQ(p.drop, cur != nullptr);

    AcceptStep commit = OnAccept(cur, AcceptRequest{kP, kB1x, Decision::kCommit, "k"}, true);
    EXPECT_FALSE(commit.refusal.has_value());
    EXPECT_TRUE(commit.response.accepted);
    EXPECT_TRUE(commit.response.decided);
    EXPECT_FALSE(commit.updated.has_value());
    EXPECT_EQ(commit.drop, cur != nullptr);

    // An outbid proposer's abort: rejected, naming its own ballot.
    AcceptStep abort = OnAccept(cur, AcceptRequest{kP, kB1x, Decision::kAbort, "k"}, true);
    EXPECT_FALSE(abort.refusal.has_value());
    EXPECT_FALSE(abort.response.accepted);
    EXPECT_TRUE(abort.response.decided);
    EXPECT_EQ(abort.response.promised, kB1x);
    EXPECT_FALSE(abort.updated.has_value());
  }
}

// A request without its key (an older build's) cannot be checked against
// the committed entries, so where no record is held it is answered only
// when the answer is safe on any register.
TEST(AcceptorTest, AKeylessRequestIsAnsweredOnlyFromARecordUnlessItAcceptsCommit) {
  const AcceptorRecord record{kP, kB1x, AcceptedValue{kB0, Decision::kCommit}};
  PrepareStep p = OnPrepare(nullptr, PrepareRequest{kP, kB1x, ""}, false);
  ASSERT_TRUE(p.refusal.has_value());
  EXPECT_NE(p.refusal->find("without its key"), std::string::npos) << *p.refusal;
  EXPECT_FALSE(p.updated.has_value());
  AcceptStep abort = OnAccept(nullptr, AcceptRequest{kP, kB1x, Decision::kAbort, ""}, false);
  ASSERT_TRUE(abort.refusal.has_value());
  EXPECT_FALSE(abort.updated.has_value());
  // Accepting commit is safe on any register.
  AcceptStep commit = OnAccept(nullptr, AcceptRequest{kP, kB0, Decision::kCommit, ""}, false);
  EXPECT_FALSE(commit.refusal.has_value());
  EXPECT_TRUE(commit.response.accepted);
  // With a record, Paxos as ever.
  PrepareStep with = OnPrepare(&record, PrepareRequest{kP, kB2, ""}, false);
  EXPECT_FALSE(with.refusal.has_value());
  EXPECT_TRUE(with.response.promised);
  ASSERT_TRUE(with.response.accepted.has_value());
  EXPECT_EQ(with.response.accepted->decision, Decision::kCommit);
  AcceptStep abort_with = OnAccept(&record, AcceptRequest{kP, kB2, Decision::kAbort, ""}, false);
  EXPECT_FALSE(abort_with.refusal.has_value());
  EXPECT_TRUE(abort_with.response.accepted);
}

// On one engine: the commit of the key by the proposal deletes the record
// in the commit's own write; from then on the engine answers "decided"
// without writing anything.
TEST(AcceptorTest, TheCommitDeletesTheRecordAndTheEntryAnswersForIt) {
  OneEngine r;
  EXPECT_EQ(
      VoteOf(r.Settle(HandleRequest{ReserveOp{"k", "v", kRemoteP, 0, 1, kTestGeneration}})).kind,
      Vote::Kind::kOk);
  EXPECT_TRUE(std::get<AcceptResponse>(
                  r.Settle(AcceptRequest{kRemoteP, Ballot{0, "a2"}, Decision::kCommit, "k"}))
                  .accepted);
  ASSERT_EQ(r.store().acceptors().count(kRemoteP), 1u);
  std::vector<Effect> fx = r.Request(HandleRequest{CommitOp{"k", "v", kRemoteP, 0}});
  EXPECT_EQ(OneEngine::Mutations(fx),
            (std::vector<std::string>{"PutCommitted", "DeleteAcceptor", "DeleteReservation"}));
  r.CompleteWrites();
  EXPECT_EQ(r.store().acceptors().count(kRemoteP), 0u);
  ASSERT_TRUE(r.store().GetEntry("k").has_value());
  EXPECT_EQ(r.store().GetEntry("k")->proposal, kRemoteP);
  EXPECT_EQ(r.engine().stats().acceptor_records_dropped, 1u);

  // A recovery's prepare learns commit, and nothing is written.
  fx = r.Request(PrepareRequest{kRemoteP, Ballot{1, "a3"}, "k"});
  EXPECT_TRUE(OneEngine::Mutations(fx).empty());
  std::vector<Response> rs = OneEngine::Responses(fx);
  ASSERT_EQ(rs.size(), 1u);
  const auto& promise = std::get<PrepareResponse>(rs[0]);
  EXPECT_TRUE(promise.promised);
  EXPECT_TRUE(promise.decided);
  // An outbid proposer's accept of abort is rejected, as a record would.
  fx = r.Request(AcceptRequest{kRemoteP, Ballot{1, "a3"}, Decision::kAbort, "k"});
  EXPECT_TRUE(OneEngine::Mutations(fx).empty());
  rs = OneEngine::Responses(fx);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_FALSE(std::get<AcceptResponse>(rs[0]).accepted);
  EXPECT_TRUE(std::get<AcceptResponse>(rs[0]).decided);
  // Without the key, nothing here can answer for the register.
  rs = OneEngine::Responses(r.Request(PrepareRequest{kRemoteP, Ballot{2, "a3"}, ""}));
  ASSERT_EQ(rs.size(), 1u);
  ASSERT_TRUE(std::holds_alternative<Unreachable>(rs[0]));
  EXPECT_NE(std::get<Unreachable>(rs[0]).reason.find("without its key"), std::string::npos);
  EXPECT_TRUE(r.store().acceptors().empty());
}

// A key committed here by another proposal (or by none known) does not
// decide the register: it is served as Paxos always did.
TEST(AcceptorTest, AKeyCommittedByAnotherProposalDecidesNothing) {
  OneEngine r;
  const ProposalId other{"a3", 1, 9, 0, 1};
  r.Settle(HandleRequest{CommitOp{"k", "v", other, 0}});
  r.store().Apply(PutCommitted{"old", "v", 0, {}});  // as stored by an older build
  for (const char* key : {"k", "old"}) {
    SCOPED_TRACE(key);
    const auto promise =
        std::get<PrepareResponse>(r.Settle(PrepareRequest{kRemoteP, Ballot{1, "a3"}, key}));
    EXPECT_TRUE(promise.promised);
    EXPECT_FALSE(promise.decided);
    EXPECT_FALSE(promise.accepted.has_value());
    EXPECT_EQ(r.store().acceptors().count(kRemoteP), 1u);
    r.store().Apply(DeleteAcceptor{kRemoteP});
  }
}

// Absurd ballot rounds are refused outright: never promised, nothing
// written, so a register cannot be locked at a round nobody can outbid.
TEST(AcceptorTest, AbsurdBallotRoundsAreRefused) {
  struct BallotCase {
    std::string name;
    uint64_t promised;  // 0: a fresh register
    uint64_t round;
    bool refused;
  };
  const std::vector<BallotCase> cases = {
      {"round 2^64-1 on a fresh register", 0, UINT64_MAX, true},
      {"round just above 2^62", kMaxBallotStep * 2, kMaxBallotRound + 1, true},
      {"more than 2^20 above a fresh register", 0, kMaxBallotStep + 1, true},
      {"exactly 2^20 above a fresh register", 0, kMaxBallotStep, false},
      {"more than 2^20 above the promise", 7, 7 + kMaxBallotStep + 1, true},
      {"2^20 above the promise", 7, 7 + kMaxBallotStep, false},
      {"the next round", 7, 8, false},
      {"a lower round (refused by Paxos, not as absurd)", 7, 3, false},
  };
  for (const BallotCase& c : cases) {
    std::optional<AcceptorRecord> rec;
    if (c.promised > 0) rec = AcceptorRecord{kP, Ballot{c.promised, "a2"}, std::nullopt};
    const AcceptorRecord* cur = rec ? &*rec : nullptr;
    PrepareStep p = OnPrepare(cur, PrepareRequest{kP, Ballot{c.round, "a3"}, "k"}, false);
    AcceptStep a =
        OnAccept(cur, AcceptRequest{kP, Ballot{c.round, "a3"}, Decision::kAbort, "k"}, false);
    EXPECT_EQ(p.refusal.has_value(), c.refused) << c.name;
    EXPECT_EQ(a.refusal.has_value(), c.refused) << c.name;
    if (c.refused) {
      EXPECT_FALSE(p.updated.has_value()) << c.name;
      EXPECT_FALSE(p.response.promised) << c.name;
      EXPECT_FALSE(a.updated.has_value()) << c.name;
      EXPECT_FALSE(a.response.accepted) << c.name;
    }
  }
}

TEST(AcceptorTest, AnAbsurdPrepareIsAnsweredAsFailedAndLocksNothing) {
  OneEngine r;
  std::vector<Effect> fx = r.Request(PrepareRequest{kRemoteP, Ballot{UINT64_MAX, "a2"}, "k"});
  EXPECT_TRUE(OneEngine::Mutations(fx).empty());
  std::vector<Response> rs = OneEngine::Responses(fx);
  ASSERT_EQ(rs.size(), 1u);
  ASSERT_TRUE(std::holds_alternative<Unreachable>(rs[0]));
  EXPECT_NE(std::get<Unreachable>(rs[0]).reason.find("refused prepare: ballot round"),
            std::string::npos)
      << std::get<Unreachable>(rs[0]).reason;
  EXPECT_EQ(r.engine().stats().ballot_refusals, 1u);
  EXPECT_TRUE(r.store().acceptors().empty());
  // An honest recovery round is still promised.
  auto promise =
      std::get<PrepareResponse>(r.Settle(PrepareRequest{kRemoteP, Ballot{1, "a3"}, "k"}));
  EXPECT_TRUE(promise.promised);
}

TEST(AcceptorTest, RecoveryRoundsNeverWrap) {
  OneEngine r;
  // A promise at 2^64-1 stored before acceptors refused such rounds: a
  // recovery must fail clearly, not prepare at round 0.
  r.store().Apply(PutAcceptor{AcceptorRecord{kRemoteP, Ballot{UINT64_MAX, "a3"}, std::nullopt}});
  std::vector<Effect> fx = r.Request(ResolveRequest{kRemoteP, "k"});
  for (const Effect& e : fx) {
    EXPECT_FALSE(std::holds_alternative<SendEffect>(e)) << "no ballot may follow 2^64-1";
  }
  std::vector<Response> rs = OneEngine::Responses(fx);
  ASSERT_EQ(rs.size(), 1u);
  const auto& resolve = std::get<ResolveResponse>(rs[0]);
  EXPECT_FALSE(resolve.decision.has_value());
  EXPECT_NE(resolve.reason.find("no higher round may be made"), std::string::npos)
      << resolve.reason;
}

}  // namespace
}  // namespace replicator::core
