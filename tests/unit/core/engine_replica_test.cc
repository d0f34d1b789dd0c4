// One engine driven directly: the replica's vote rules, the durability rule
// (replies wait for OnWriteDone), the acceptor, reads, and the put/get
// checks that answer without any peer.
#include <deque>

#include <gtest/gtest.h>

#include "core/engine.h"
#include "test_pump.h"

namespace replicator::core {
namespace {

using testing::ConfigFor;
using testing::MakeTopology;
using testing::MemoryStore;

const ProposalId kP{"a2", 1, 1, 100};
const ProposalId kQ{"a3", 1, 9, 200};

std::string MutationName(const Mutation& m) {
  static const char* kNames[] = {"PutReservation", "DeleteReservation", "PutCommitted",
                                 "PutAcceptor", "DeleteAcceptor"};
  return kNames[m.index()];
}

// A single engine "a1" of cluster a = {a1, a2, a3}, with writes held until
// the test completes them.
class Replica {
 public:
  explicit Replica(DurableState recovered = {},
                   std::map<ClusterId, std::vector<PeerId>> clusters = {{"a", {"a1", "a2", "a3"}}})
      : engine_(ConfigFor("a1", "a"), &store_, std::move(recovered)) {
    engine_.SetTopology(MakeTopology(clusters), now);
  }

  Engine& engine() { return engine_; }
  MemoryStore& store() { return store_; }
  TimeMs now = 1000;

  // Hands `request` to the engine; returns its effects. Writes are held.
  std::vector<Effect> Request(core::Request request) {
    engine_.OnRequest(next_inbound_++, "a2", std::move(request), now);
    return Take();
  }
  // Makes every held write durable, in order; returns the effects.
  std::vector<Effect> CompleteWrites() {
    std::vector<Effect> out;
    while (!held_.empty()) {
      WriteEffect w = std::move(held_.front());
      held_.pop_front();
      store_.Apply(w.batch);
      engine_.OnWriteDone(w.write_id, now);
      for (Effect& fx : Take()) out.push_back(std::move(fx));
    }
    return out;
  }
  // Request, then complete its writes; returns its one response.
  Response Settle(core::Request request) {
    std::vector<Effect> fx = Request(std::move(request));
    for (Effect& e : CompleteWrites()) fx.push_back(std::move(e));
    std::vector<Response> rs = Responses(fx);
    EXPECT_EQ(rs.size(), 1u);
    return rs.empty() ? Response{Unreachable{"none"}} : rs[0];
  }
  std::vector<Effect> Take() {
    std::vector<Effect> out;
    for (Effect& fx : engine_.TakeEffects()) {
      if (auto* w = std::get_if<WriteEffect>(&fx)) {
        held_.push_back(*w);
        last_writes_.push_back(*w);
      }
      out.push_back(std::move(fx));
    }
    return out;
  }
  static std::vector<Response> Responses(const std::vector<Effect>& fx) {
    std::vector<Response> out;
    for (const Effect& e : fx) {
      if (auto* r = std::get_if<RespondEffect>(&e)) out.push_back(r->response);
    }
    return out;
  }
  static std::vector<std::string> Mutations(const std::vector<Effect>& fx) {
    std::vector<std::string> out;
    for (const Effect& e : fx) {
      if (auto* w = std::get_if<WriteEffect>(&e)) {
        for (const Mutation& m : w->batch.mutations) out.push_back(MutationName(m));
      }
    }
    return out;
  }

 private:
  MemoryStore store_;
  Engine engine_;
  uint64_t next_inbound_ = 1;
  std::deque<WriteEffect> held_;
  std::vector<WriteEffect> last_writes_;
};

Vote VoteOf(const Response& r) {
  const auto* h = std::get_if<HandleResponse>(&r);
  EXPECT_NE(h, nullptr);
  return h ? h->vote : Vote{};
}

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

TEST(EngineReplicaTest, VoteRules) {
  const std::vector<VoteCase> cases = {
      {"reserve a fresh key", {}, ReserveOp{"k", "v", kP}, Vote::Kind::kOk, {"PutReservation"},
       "", std::nullopt, 1},
      {"reserve a committed key", {CommitOp{"k", "old", kQ}}, ReserveOp{"k", "v", kP},
       Vote::Kind::kStored, {}, "old", std::nullopt, 0, "old"},
      {"reserve again for the same proposal", {ReserveOp{"k", "v", kP}}, ReserveOp{"k", "v", kP},
       Vote::Kind::kOk, {}, "", std::nullopt, 1},
      {"reserve a key held by another proposal", {ReserveOp{"k", "w", kQ}},
       ReserveOp{"k", "v", kP}, Vote::Kind::kReserved, {}, "", kQ, 1},
      {"reserve for a proposal known aborted", {AbortOp{"k", kP}}, ReserveOp{"k", "v", kP},
       Vote::Kind::kDecided, {}, "", std::nullopt, 0},
      {"reserve for a proposal known committed elsewhere", {CommitOp{"other", "v", kP}},
       ReserveOp{"k", "v", kP}, Vote::Kind::kDecided, {}, "", std::nullopt, 0},
      {"commit with its own reservation", {ReserveOp{"k", "v", kP}}, CommitOp{"k", "v", kP},
       Vote::Kind::kOk, {"PutCommitted", "DeleteReservation"}, "", std::nullopt, 0, "v"},
      {"commit without a reservation stores all the same", {}, CommitOp{"k", "v", kP},
       Vote::Kind::kOk, {"PutCommitted"}, "", std::nullopt, 0, "v"},
      {"commit keeps another proposal's reservation", {ReserveOp{"k", "w", kQ}},
       CommitOp{"k", "v", kP}, Vote::Kind::kOk, {"PutCommitted"}, "", std::nullopt, 1, "v"},
      {"commit of the committed value again", {CommitOp{"k", "v", kP}}, CommitOp{"k", "v", kP},
       Vote::Kind::kOk, {}, "", std::nullopt, 0, "v"},
      {"commit of a conflicting value is a violation", {CommitOp{"k", "old", kQ}},
       CommitOp{"k", "v", kP}, Vote::Kind::kStored, {}, "old", std::nullopt, 0, "old", true},
      {"abort drops its own reservation", {ReserveOp{"k", "v", kP}}, AbortOp{"k", kP},
       Vote::Kind::kOk, {"DeleteReservation"}, "", std::nullopt, 0},
      {"abort leaves another proposal's reservation", {ReserveOp{"k", "w", kQ}},
       AbortOp{"k", kP}, Vote::Kind::kOk, {}, "", std::nullopt, 1},
      {"abort of an unknown key", {}, AbortOp{"k", kP}, Vote::Kind::kOk, {}, "", std::nullopt, 0},
  };
  for (const VoteCase& c : cases) {
    SCOPED_TRACE(c.name);
    Replica r;
    for (const ReplicaOp& op : c.setup) r.Settle(HandleRequest{op});
    std::vector<Effect> fx = r.Request(HandleRequest{c.op});
    EXPECT_EQ(Replica::Mutations(fx), c.mutations);
    if (!c.mutations.empty()) {
      // The durability rule: no answer before the write is done.
      EXPECT_TRUE(Replica::Responses(fx).empty());
      fx = r.CompleteWrites();
    }
    std::vector<Response> rs = Replica::Responses(fx);
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
    EXPECT_EQ(r.store().reservations.size(), c.reservations_after);
    EXPECT_EQ(r.store().GetCommitted("k"), c.committed_after);
    bool violated = false;
    for (const Effect& e : fx) violated |= std::holds_alternative<ViolationEffect>(e);
    EXPECT_EQ(violated, c.violation);
    EXPECT_EQ(r.engine().stats().safety_violations, c.violation ? 1u : 0u);
  }
}

TEST(EngineReplicaTest, ReservationIsVisibleBeforeItIsDurable) {
  Replica r;
  std::vector<Effect> first = r.Request(HandleRequest{ReserveOp{"k", "v", kP}});
  EXPECT_TRUE(Replica::Responses(first).empty());
  // A rival sees the pending reservation at once.
  std::vector<Effect> rival = r.Request(HandleRequest{ReserveOp{"k", "w", kQ}});
  ASSERT_EQ(Replica::Responses(rival).size(), 1u);
  EXPECT_EQ(VoteOf(Replica::Responses(rival)[0]).kind, Vote::Kind::kReserved);
  // A duplicate of the pending reserve waits for the same write.
  std::vector<Effect> dup = r.Request(HandleRequest{ReserveOp{"k", "v", kP}});
  EXPECT_TRUE(Replica::Responses(dup).empty());
  EXPECT_TRUE(Replica::Mutations(dup).empty());
  std::vector<Response> done = Replica::Responses(r.CompleteWrites());
  ASSERT_EQ(done.size(), 2u);
  EXPECT_EQ(VoteOf(done[0]).kind, Vote::Kind::kOk);
  EXPECT_EQ(VoteOf(done[1]).kind, Vote::Kind::kOk);
}

TEST(EngineReplicaTest, CommittedButNotYetDurableIsSeenAndAnsweredAfterTheWrite) {
  Replica r;
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
  EXPECT_TRUE(Replica::Responses(r.Request(HandleRequest{ReserveOp{"k", "w", kQ}})).empty());
  std::vector<Response> rs = Replica::Responses(r.CompleteWrites());
  ASSERT_EQ(rs.size(), 2u);  // the commit, then the reserve
  EXPECT_EQ(VoteOf(rs[1]).kind, Vote::Kind::kStored);
}

TEST(EngineReplicaTest, AcceptorRepliesWaitForTheirWrite) {
  Replica r;
  std::vector<Effect> fx = r.Request(AcceptRequest{kP, Ballot{0, "a2"}, Decision::kCommit});
  EXPECT_EQ(Replica::Mutations(fx), std::vector<std::string>{"PutAcceptor"});
  EXPECT_TRUE(Replica::Responses(fx).empty());
  std::vector<Response> rs = Replica::Responses(r.CompleteWrites());
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_TRUE(std::get<AcceptResponse>(rs[0]).accepted);
  ASSERT_EQ(r.store().acceptors.size(), 1u);

  fx = r.Request(PrepareRequest{kP, Ballot{1, "a3"}});
  EXPECT_TRUE(Replica::Responses(fx).empty());
  rs = Replica::Responses(r.CompleteWrites());
  ASSERT_EQ(rs.size(), 1u);
  const auto& promise = std::get<PrepareResponse>(rs[0]);
  EXPECT_TRUE(promise.promised);
  ASSERT_TRUE(promise.accepted.has_value());
  EXPECT_EQ(promise.accepted->decision, Decision::kCommit);

  // Refusals change nothing, so they answer at once.
  fx = r.Request(PrepareRequest{kP, Ballot{1, "a2"}});
  EXPECT_TRUE(Replica::Mutations(fx).empty());
  rs = Replica::Responses(fx);
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_FALSE(std::get<PrepareResponse>(rs[0]).promised);
  EXPECT_EQ(std::get<PrepareResponse>(rs[0]).higher, (Ballot{1, "a3"}));
  rs = Replica::Responses(r.Request(AcceptRequest{kP, Ballot{0, "a2"}, Decision::kCommit}));
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_FALSE(std::get<AcceptResponse>(rs[0]).accepted);
}

TEST(EngineReplicaTest, ReadRules) {
  struct Case {
    std::string name;
    std::vector<ReplicaOp> setup;
    ReadResponse::Kind want;
    Value value;
  };
  const std::vector<Case> cases = {
      {"absent", {}, ReadResponse::Kind::kAbsent, ""},
      {"reserved carries holder and value", {ReserveOp{"k", "v", kP}},
       ReadResponse::Kind::kReserved, "v"},
      {"committed", {CommitOp{"k", "v", kP}}, ReadResponse::Kind::kCommitted, "v"},
      {"committed wins over another's reservation",
       {ReserveOp{"k", "w", kQ}, CommitOp{"k", "v", kP}}, ReadResponse::Kind::kCommitted, "v"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Replica r;
    for (const ReplicaOp& op : c.setup) r.Settle(HandleRequest{op});
    auto read = std::get<ReadResponse>(r.Settle(ReadRequest{"k"}));
    EXPECT_EQ(read.kind, c.want);
    EXPECT_EQ(read.value, c.value);
    if (c.want == ReadResponse::Kind::kReserved) {
      EXPECT_EQ(read.holder, kP);
    }
  }
}

TEST(EngineReplicaTest, DurableAcceptorRecordsAreReadFromStorageNotMemory) {
  Replica r;
  r.Settle(AcceptRequest{kP, Ballot{0, "a2"}, Decision::kCommit});
  // While a promise is being written the engine answers from its own copy:
  // a second prepare at the same ballot must not wait for storage.
  std::vector<Effect> fx = r.Request(PrepareRequest{kP, Ballot{3, "a3"}});
  EXPECT_EQ(Replica::Mutations(fx), std::vector<std::string>{"PutAcceptor"});
  std::vector<Response> rs = Replica::Responses(r.Request(PrepareRequest{kP, Ballot{2, "a2"}}));
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_FALSE(std::get<PrepareResponse>(rs[0]).promised);  // 2 < the pending 3
  r.CompleteWrites();
  // Once durable, storage is the only copy: what it holds is what counts.
  // (Raised behind the engine's back here; an engine answering from a
  // remembered copy would still promise round 4.)
  r.store().acceptors.at(kP).promised = Ballot{9, "a9"};
  rs = Replica::Responses(r.Request(PrepareRequest{kP, Ballot{4, "a2"}}));
  ASSERT_EQ(rs.size(), 1u);
  EXPECT_FALSE(std::get<PrepareResponse>(rs[0]).promised);
  EXPECT_EQ(std::get<PrepareResponse>(rs[0]).higher, (Ballot{9, "a9"}));
}

TEST(EngineReplicaTest, RecoveredReservationsAndStoredAcceptorsAreHonoured) {
  DurableState recovered;
  recovered.reservations.push_back(Reservation{"k", kQ, "w", 12345});
  Replica r(recovered);
  // Acceptor records are read from storage on demand, never preloaded.
  r.store().acceptors[kP] = AcceptorRecord{kP, Ballot{5, "a3"}, std::nullopt};
  EXPECT_EQ(r.engine().stats().reservations, 1u);
  EXPECT_EQ(VoteOf(r.Settle(HandleRequest{ReserveOp{"k", "v", kP}})).kind,
            Vote::Kind::kReserved);
  auto promise = std::get<PrepareResponse>(r.Settle(PrepareRequest{kP, Ballot{4, "a2"}}));
  EXPECT_FALSE(promise.promised);
  // Treated as fresh: the lease runs from the first clock the engine saw.
  EXPECT_EQ(r.engine().NextWakeup(), r.now + r.engine().config().lease_ms);
}

TEST(EngineReplicaTest, PutAndGetAnswersThatNeedNoPeer) {
  struct Case {
    std::string name;
    std::map<ClusterId, std::vector<PeerId>> clusters;
    Key key;
    Value value;
    PutOutcome::Kind want;
    std::string message_has;
  };
  const std::map<ClusterId, std::vector<PeerId>> three = {{"a", {"a1", "a2", "a3"}}};
  const std::vector<Case> cases = {
      {"empty key", three, "", "v", PutOutcome::Kind::kInvalidArgument, "key is empty"},
      {"oversized key", three, std::string(1025, 'k'), "v", PutOutcome::Kind::kInvalidArgument,
       "1025 bytes"},
      {"oversized value", three, "k", std::string((1 << 20) + 1, 'v'),
       PutOutcome::Kind::kInvalidArgument, "value is"},
      {"own cluster too small", {{"a", {"a1", "a2"}}}, "k", "v", PutOutcome::Kind::kUnavailable,
       "cluster a has 2 voters; puts need at least 3"},
      {"remote cluster too small", {{"a", {"a1", "a2", "a3"}}, {"eu", {"e1", "e2"}}}, "k", "v",
       PutOutcome::Kind::kUnavailable, "cluster eu has 2 voters; puts need at least 3"},
      {"committed locally", three, "done", "v", PutOutcome::Kind::kKeyExists, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Replica r({}, c.clusters);
    r.store().committed["done"] = "old";
    r.engine().StartPut(7, c.key, c.value, 0, r.now);
    std::vector<Effect> fx = r.Take();
    ASSERT_EQ(fx.size(), 1u);
    const auto& done = std::get<PutDoneEffect>(fx[0]);
    EXPECT_EQ(done.put_id, 7u);
    EXPECT_EQ(done.outcome.kind, c.want);
    EXPECT_NE(done.outcome.message.find(c.message_has), std::string::npos) << done.outcome.message;
    if (c.want == PutOutcome::Kind::kKeyExists) {
      EXPECT_EQ(done.outcome.existing, "old");
    }
  }

  Replica r;
  r.store().committed["k"] = "v";
  r.engine().StartGet(1, "k", Consistency::kLocal, r.now);
  r.engine().StartGet(2, "missing", Consistency::kLocal, r.now);
  r.engine().StartGet(3, "", Consistency::kLinearizable, r.now);
  std::vector<Effect> fx = r.Take();
  ASSERT_EQ(fx.size(), 3u);
  EXPECT_EQ(std::get<GetDoneEffect>(fx[0]).outcome.kind, GetOutcome::Kind::kFound);
  EXPECT_EQ(std::get<GetDoneEffect>(fx[0]).outcome.value, "v");
  EXPECT_EQ(std::get<GetDoneEffect>(fx[1]).outcome.kind, GetOutcome::Kind::kNotFound);
  EXPECT_EQ(std::get<GetDoneEffect>(fx[2]).outcome.kind, GetOutcome::Kind::kInvalidArgument);
  EXPECT_EQ(r.engine().stats().gets, 3u);
}

TEST(EngineReplicaTest, StrayResponsesAndWritesAreIgnored) {
  Replica r;
  r.engine().OnResponse(424242, Unreachable{"late"}, r.now);
  r.engine().OnWriteDone(99, r.now);
  r.engine().Tick(r.now);
  EXPECT_TRUE(r.Take().empty());
}

TEST(EngineReplicaTest, ResolveOfAKnownDecisionAnswersAtOnce) {
  Replica r;
  r.Settle(HandleRequest{AbortOp{"k", kP}});
  auto resp = std::get<ResolveResponse>(r.Settle(ResolveRequest{kP}));
  ASSERT_TRUE(resp.decision.has_value());
  EXPECT_EQ(*resp.decision, Decision::kAbort);
}

}  // namespace
}  // namespace replicator::core
