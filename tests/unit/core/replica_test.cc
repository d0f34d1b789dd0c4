// The replica's vote rules on one engine driven directly: reserve, commit
// and abort, the durability rule (votes wait for OnWriteDone), reads, and
// reservations recovered from storage.
#include <gtest/gtest.h>

#include "core/engine.h"
#include "fixtures.h"
#include "test_pump.h"

namespace replicator::core {
namespace {

using testing::kTestGeneration;
using testing::OneEngine;
using testing::VoteOf;
const ProposalId kP{"a2", 1, 1, 100, 1};
const ProposalId kQ{"a3", 1, 9, 200, 1};

struct VoteCase {
  std::string name;
  std::vector<ReplicaOp> setup;  // applied and made durable first
  ReplicaOp op;
  Vote::Kind want;
  std::vector<std::string> mutations;  // the one write `op` makes; empty: none
  Value stored = "";                   // kStored
  std::optional<ProposalId> holder = std::nullopt;  // kReserved
  size_t reservations_after = 0;
  std::optional<Value> committed_after = std::nullopt;
  bool violation = false;
};

TEST(ReplicaTest, VoteRules) {
  const std::vector<VoteCase> cases = {
      {"reserve a fresh key",
       {},
       ReserveOp{"k", "v", kP, 0, 1, kTestGeneration},
       Vote::Kind::kOk,
       {"PutReservation"},
       "",
       std::nullopt,
       1},
      {"reserve a committed key",
       {CommitOp{"k", "old", kQ}},
       ReserveOp{"k", "v", kP, 0, 1, kTestGeneration},
       Vote::Kind::kStored,
       {},
       "old",
       std::nullopt,
       0,
       "old"},
      {"reserve again for the same proposal",
       {ReserveOp{"k", "v", kP, 0, 1, kTestGeneration}},
       ReserveOp{"k", "v", kP, 0, 1, kTestGeneration},
       Vote::Kind::kOk,
       {},
       "",
       std::nullopt,
       1},
      {"reserve a key held by another proposal",
       {ReserveOp{"k", "w", kQ, 0, 1, kTestGeneration}},
       ReserveOp{"k", "v", kP, 0, 1, kTestGeneration},
       Vote::Kind::kReserved,
       {},
       "",
       kQ,
       1},
      {"reserve for a proposal known aborted",
       {AbortOp{"k", kP}},
       ReserveOp{"k", "v", kP, 0, 1, kTestGeneration},
       Vote::Kind::kDecided,
       {},
       "",
       std::nullopt,
       0},
      {"reserve for a proposal known committed elsewhere",
       {CommitOp{"other", "v", kP}},
       ReserveOp{"k", "v", kP, 0, 1, kTestGeneration},
       Vote::Kind::kDecided,
       {},
       "",
       std::nullopt,
       0},
      {"commit with its own reservation",
       {ReserveOp{"k", "v", kP, 0, 1, kTestGeneration}},
       CommitOp{"k", "v", kP},
       Vote::Kind::kOk,
       {"PutCommitted", "DeleteReservation"},
       "",
       std::nullopt,
       0,
       "v"},
      {"commit without a reservation stores all the same",
       {},
       CommitOp{"k", "v", kP},
       Vote::Kind::kOk,
       {"PutCommitted"},
       "",
       std::nullopt,
       0,
       "v"},
      {"commit keeps another proposal's reservation",
       {ReserveOp{"k", "w", kQ, 0, 1, kTestGeneration}},
       CommitOp{"k", "v", kP},
       Vote::Kind::kOk,
       {"PutCommitted"},
       "",
       std::nullopt,
       1,
       "v"},
      {"commit of the committed value again",
       {CommitOp{"k", "v", kP}},
       CommitOp{"k", "v", kP},
       Vote::Kind::kOk,
       {},
       "",
       std::nullopt,
       0,
       "v"},
      {"commit of a conflicting value is a violation",
       {CommitOp{"k", "old", kQ}},
       CommitOp{"k", "v", kP},
       Vote::Kind::kStored,
       {},
       "old",
       std::nullopt,
       0,
       "old",
       true},
      {"abort drops its own reservation",
       {ReserveOp{"k", "v", kP, 0, 1, kTestGeneration}},
       AbortOp{"k", kP},
       Vote::Kind::kOk,
       {"DeleteReservation"},
       "",
       std::nullopt,
       0},
      {"abort leaves another proposal's reservation",
       {ReserveOp{"k", "w", kQ, 0, 1, kTestGeneration}},
       AbortOp{"k", kP},
       Vote::Kind::kOk,
       {},
       "",
       std::nullopt,
       1},
      {"abort of an unknown key", {}, AbortOp{"k", kP}, Vote::Kind::kOk, {}, "", std::nullopt, 0},
  };
  for (const VoteCase& c : cases) {
    SCOPED_TRACE(c.name);
    OneEngine r;
    for (const ReplicaOp& op : c.setup) r.Settle(HandleRequest{op});
    std::vector<Effect> fx = r.Request(HandleRequest{c.op});
    EXPECT_EQ(OneEngine::Mutations(fx), c.mutations);
    if (!c.mutations.empty()) {
      // The durability rule: no answer before the write is done.
      EXPECT_TRUE(OneEngine::Responses(fx).empty());
      fx = r.CompleteWrites();
    }
    std::vector<Response> rs = OneEngine::Responses(fx);
    ASSERT_EQ(rs.size(), 1u);
    Vote v = VoteOf(rs[0]);
    EXPECT_EQ(v.kind, c.want);
    EXPECT_EQ(v.peer, "a1");
    EXPECT_EQ(v.cluster, "a");
    if (c.want == Vote::Kind::kStored) {
      EXPECT_EQ(v.stored, c.stored);
    }
    if (c.holder) {
      EXPECT_EQ(v.holder, *c.holder);
    }
    EXPECT_EQ(r.engine().stats().reservations, c.reservations_after);
    EXPECT_EQ(r.store().reservations().size(), c.reservations_after);
    EXPECT_EQ(r.store().GetCommitted("k"), c.committed_after);
    bool violated = false;
    for (const Effect& e : fx) violated |= std::holds_alternative<ViolationEffect>(e);
    EXPECT_EQ(violated, c.violation);
    EXPECT_EQ(r.engine().stats().safety_violations, c.violation ? 1u : 0u);
  }
}

TEST(ReplicaTest, ReservationIsVisibleBeforeItIsDurable) {
  OneEngine r;
  std::vector<Effect> first =
      r.Request(HandleRequest{ReserveOp{"k", "v", kP, 0, 1, kTestGeneration}});
  EXPECT_TRUE(OneEngine::Responses(first).empty());
  // A rival sees the pending reservation at once.
  std::vector<Effect> rival =
      r.Request(HandleRequest{ReserveOp{"k", "w", kQ, 0, 1, kTestGeneration}});
  ASSERT_EQ(OneEngine::Responses(rival).size(), 1u);
  EXPECT_EQ(VoteOf(OneEngine::Responses(rival)[0]).kind, Vote::Kind::kReserved);
  // A duplicate of the pending reserve waits for the same write.
  std::vector<Effect> dup =
      r.Request(HandleRequest{ReserveOp{"k", "v", kP, 0, 1, kTestGeneration}});
  EXPECT_TRUE(OneEngine::Responses(dup).empty());
  EXPECT_TRUE(OneEngine::Mutations(dup).empty());
  std::vector<Response> done = OneEngine::Responses(r.CompleteWrites());
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(VoteOf(done[0]).kind, Vote::Kind::kOk);
  EXPECT_EQ(VoteOf(done[1]).kind, Vote::Kind::kOk);
}

TEST(ReplicaTest, CommittedButNotYetDurableIsSeenAndAnsweredAfterTheWrite) {
  OneEngine r;
  r.Request(HandleRequest{CommitOp{"k", "v", kP}});  // write held
  // A put of the key sees the pending commit.
  r.engine().StartPut(1, "k", "x", 0, r.now);
  std::vector<Effect> fx = r.Take();
  ASSERT_EQ(fx.size(), 1u);
  auto* done = std::get_if<PutDoneEffect>(&fx[0]);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->outcome.kind, PutOutcome::Kind::kKeyExists);
  EXPECT_EQ(done->outcome.existing, "v");
  // A reserve's stored vote waits until the commit is durable.
  EXPECT_TRUE(
      OneEngine::Responses(r.Request(HandleRequest{ReserveOp{"k", "w", kQ, 0, 1, kTestGeneration}}))
          .empty());
  std::vector<Response> rs = OneEngine::Responses(r.CompleteWrites());
  ASSERT_EQ(rs.size(), 2u);  // the commit, then the reserve
  EXPECT_EQ(VoteOf(rs[1]).kind, Vote::Kind::kStored);
}

TEST(ReplicaTest, ReadRules) {
  struct Case {
    std::string name;
    std::vector<ReplicaOp> setup;
    ReadResponse::Kind want;
    Value value;
  };
  const std::vector<Case> cases = {
      {"absent", {}, ReadResponse::Kind::kAbsent, ""},
      {"reserved carries holder and value",
       {ReserveOp{"k", "v", kP, 0, 1, kTestGeneration}},
       ReadResponse::Kind::kReserved,
       "v"},
      {"committed", {CommitOp{"k", "v", kP}}, ReadResponse::Kind::kCommitted, "v"},
      {"committed wins over another's reservation",
       {ReserveOp{"k", "w", kQ, 0, 1, kTestGeneration}, CommitOp{"k", "v", kP}},
       ReadResponse::Kind::kCommitted,
       "v"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    OneEngine r;
    for (const ReplicaOp& op : c.setup) r.Settle(HandleRequest{op});
    auto read = std::get<ReadResponse>(r.Settle(ReadRequest{"k", 1}));
    EXPECT_EQ(read.kind, c.want);
    EXPECT_EQ(read.value, c.value);
    if (c.want == ReadResponse::Kind::kReserved) {
      EXPECT_EQ(read.holder, kP);
    }
  }
}

TEST(ReplicaTest, RecoveredReservationsAndStoredAcceptorsAreHonoured) {
  DurableState recovered;
  recovered.reservations.push_back(Reservation{"k", kQ, "w", 12345});
  OneEngine r(recovered);
  // Acceptor records are read from storage on demand, never preloaded.
  r.store().Apply(PutAcceptor{AcceptorRecord{kP, Ballot{5, "a3"}, std::nullopt}});
  EXPECT_EQ(r.engine().stats().reservations, 1u);
  EXPECT_EQ(VoteOf(r.Settle(HandleRequest{ReserveOp{"k", "v", kP, 0, 1, kTestGeneration}})).kind,
            Vote::Kind::kReserved);
  auto promise = std::get<PrepareResponse>(r.Settle(PrepareRequest{kP, Ballot{4, "a2"}, "k"}));
  EXPECT_FALSE(promise.promised);
  // Treated as fresh: the lease runs from the first clock the engine saw.
  EXPECT_EQ(r.engine().NextWakeup(), r.now + r.engine().config().lease_ms);
}

}  // namespace
}  // namespace replicator::core
