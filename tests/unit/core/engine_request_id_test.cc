// Request ids: a client put retried with the same request id answers ok
// when an earlier attempt was applied, shares the outcome of an attempt in
// flight at the same engine, and contends as usual with an attempt held
// elsewhere. Asserted by what clients and stores see.
#include <gtest/gtest.h>

#include "core/engine.h"
#include "test_pump.h"

namespace replicator::core {
namespace {

using testing::ConfigFor;
using testing::MakeTopology;
using testing::MemoryStore;
using testing::Pump;

const std::map<ClusterId, std::vector<PeerId>> kTwoByThree = {{"a", {"a1", "a2", "a3"}},
                                                              {"b", {"b1", "b2", "b3"}}};
const std::vector<PeerId> kAll = {"a1", "a2", "a3", "b1", "b2", "b3"};

TEST(EngineRequestIdTest, PutOverALocallyCommittedKey) {
  struct Case {
    std::string name;
    uint64_t stored_request_id;
    Value value;
    uint64_t request_id;
    PutOutcome::Kind want;
  };
  const std::vector<Case> cases = {
      {"same request id and value: applied before", 7, "v", 7, PutOutcome::Kind::kOk},
      {"another request id", 7, "v", 8, PutOutcome::Kind::kKeyExists},
      {"same request id, another value", 7, "w", 7, PutOutcome::Kind::kKeyExists},
      {"no request id matches nothing", 0, "v", 0, PutOutcome::Kind::kKeyExists},
      {"no request id on the put", 7, "v", 0, PutOutcome::Kind::kKeyExists},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    MemoryStore store;
    store.committed["k"] = "v";
    store.request_ids["k"] = c.stored_request_id;
    Engine engine(ConfigFor("a1", "a"), &store, DurableState{});
    engine.SetTopology(MakeTopology({{"a", {"a1", "a2", "a3"}}}), 1000);
    engine.StartPut(1, "k", c.value, c.request_id, 1000);
    std::vector<Effect> fx = engine.TakeEffects();
    ASSERT_EQ(fx.size(), 1u);
    const auto& done = std::get<PutDoneEffect>(fx[0]);
    EXPECT_EQ(done.outcome.kind, c.want);
    if (c.want == PutOutcome::Kind::kKeyExists) {
      EXPECT_EQ(done.outcome.existing, "v");
    }
    EXPECT_EQ(engine.stats().puts_ok, c.want == PutOutcome::Kind::kOk ? 1u : 0u);
  }
}

TEST(EngineRequestIdTest, RequestIdTravelsWithReserveAndCommitAndIsStored) {
  Pump pump(kTwoByThree);
  pump.StartPut("a1", 1, "k", "v", 42);
  pump.Run();
  ASSERT_EQ(pump.puts[1].kind, PutOutcome::Kind::kOk) << pump.puts[1].message;
  int reserves = 0, commits = 0;
  for (const Pump::Sent& s : pump.sent) {
    const ReplicaOp* op = nullptr;
    if (auto* h = std::get_if<HandleRequest>(&s.request)) op = &h->op;
    if (auto* f = std::get_if<ForwardRequest>(&s.request)) op = &f->op;
    if (op == nullptr) continue;
    if (auto* r = std::get_if<ReserveOp>(op)) {
      ++reserves;
      EXPECT_EQ(r->request_id, 42u);
    }
    if (auto* c = std::get_if<CommitOp>(op)) {
      ++commits;
      EXPECT_EQ(c->request_id, 42u);
    }
  }
  EXPECT_GT(reserves, 0);
  EXPECT_GT(commits, 0);
  for (const PeerId& p : kAll) {
    EXPECT_EQ(pump.store(p).GetEntry("k")->request_id, 42u) << p;
  }
}

TEST(EngineRequestIdTest, StoredVoteWithTheSameRequestIdAnswersOk) {
  struct Case {
    std::string name;
    uint64_t request_id;
    Value value;
    PutOutcome::Kind want;
  };
  const std::vector<Case> cases = {
      {"the same client put, applied elsewhere", 9, "v", PutOutcome::Kind::kOk},
      {"another client put", 10, "v", PutOutcome::Kind::kKeyExists},
      {"the same request id with another value", 9, "w", PutOutcome::Kind::kKeyExists},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Pump pump(kTwoByThree);
    // Committed everywhere but at the coordinator a1, as if a1 had missed
    // the commit of an earlier attempt coordinated by b1.
    const ProposalId earlier{"b1", 1, 3, 0};
    for (const PeerId& p : kAll) {
      if (p != "a1") pump.Call(p, HandleRequest{CommitOp{"k", "v", earlier, 9}});
    }
    pump.Run();
    pump.StartPut("a1", 1, "k", c.value, c.request_id);
    pump.Run();
    ASSERT_EQ(pump.puts.count(1), 1u);
    EXPECT_EQ(pump.puts[1].kind, c.want) << pump.puts[1].message;
    EXPECT_EQ(pump.engine("a1").stats().puts_ok, c.want == PutOutcome::Kind::kOk ? 1u : 0u);
    EXPECT_EQ(pump.engine("a1").stats().puts_key_exists,
              c.want == PutOutcome::Kind::kKeyExists ? 1u : 0u);
    for (const PeerId& p : kAll) EXPECT_TRUE(pump.store(p).reservations.empty()) << p;
    EXPECT_TRUE(pump.violations.empty());
  }
}

TEST(EngineRequestIdTest, ASecondStartPutOfTheSameRequestInFlightSharesItsOutcome) {
  struct Case {
    std::string name;
    uint64_t first_id, second_id;
    Value second_value;
    bool shared;
  };
  const std::vector<Case> cases = {
      {"same key, request id and value: shared", 5, 5, "v", true},
      {"same request id, another value: its own put", 5, 5, "w", false},
      {"no request id: its own put", 0, 0, "v", false},
      {"another request id: its own put", 5, 6, "v", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Pump pump(kTwoByThree);
    // Park the reserve forwards: the first put stays in flight.
    pump.hold = [](const PeerId&, const PeerId&, const Request& r) {
      return std::holds_alternative<ForwardRequest>(r);
    };
    pump.StartPut("a1", 1, "k", "v", c.first_id);
    pump.Run();
    pump.StartPut("a1", 2, "k", c.second_value, c.second_id);
    pump.Run();
    EXPECT_EQ(pump.puts.count(2), 0u) << "answered before the first put was decided";
    pump.Release();
    pump.RunUntilQuiet();
    ASSERT_EQ(pump.puts.count(1), 1u);
    ASSERT_EQ(pump.puts.count(2), 1u);
    EXPECT_EQ(pump.duplicate_put_dones, 0);
    EXPECT_EQ(pump.puts[1].kind, PutOutcome::Kind::kOk) << pump.puts[1].message;
    const EngineStats s = pump.engine("a1").stats();
    if (c.shared) {
      EXPECT_EQ(pump.puts[2].kind, PutOutcome::Kind::kOk) << pump.puts[2].message;
      EXPECT_EQ(s.puts_ok, 1u);  // one client put, counted once
      EXPECT_EQ(s.puts_joined, 1u);
    } else {
      EXPECT_EQ(s.puts_joined, 0u);
      // Both raced; the first holds the key, so the second cannot be ok
      // unless it is the same client put.
      EXPECT_NE(pump.puts[2].kind, PutOutcome::Kind::kOk) << pump.puts[2].message;
    }
    for (const PeerId& p : kAll) EXPECT_EQ(pump.store(p).GetCommitted("k"), "v") << p;
  }
}

TEST(EngineRequestIdTest, RetryAfterTheCoordinatorDiedIsContentionThenOk) {
  // a1 decides commit for request 7 and dies before any commit goes out.
  // The client retries at a2: a1's reservations are ordinary contention;
  // lease recovery commits them, and the retry then hears ok.
  Pump pump(kTwoByThree, [](EngineConfig& c) { c.lease_ms = 300; });
  pump.cut = [](const PeerId& from, const PeerId&, const Request& r) {
    const ReplicaOp* op = nullptr;
    if (auto* h = std::get_if<HandleRequest>(&r)) op = &h->op;
    if (auto* f = std::get_if<ForwardRequest>(&r)) op = &f->op;
    return from == "a1" && op != nullptr && std::holds_alternative<CommitOp>(*op);
  };
  pump.StartPut("a1", 1, "k", "v", 7);
  pump.Run();
  ASSERT_EQ(pump.puts[1].kind, PutOutcome::Kind::kOk) << pump.puts[1].message;
  pump.down.insert("a1");
  pump.cut = nullptr;
  pump.StartPut("a2", 2, "k", "v", 7);
  pump.RunUntilQuiet(5000);
  ASSERT_EQ(pump.puts.count(2), 1u);
  EXPECT_EQ(pump.puts[2].kind, PutOutcome::Kind::kOk) << pump.puts[2].message;
  EXPECT_GT(pump.engine("a2").stats().put_retries, 0u) << "expected contention first";
  for (const PeerId& p : kAll) {
    if (p == "a1") continue;
    EXPECT_EQ(pump.store(p).GetCommitted("k"), "v") << p;
    EXPECT_EQ(pump.store(p).GetEntry("k")->request_id, 7u) << p;
    EXPECT_TRUE(pump.store(p).reservations.empty()) << p;
  }
  EXPECT_TRUE(pump.violations.empty());
}

TEST(EngineRequestIdTest, LeaseRecoveryCommitsWithTheReservationsRequestId) {
  Pump pump(kTwoByThree);
  const ProposalId p{"a1", 1, 77, 0};
  for (const char* peer : {"a2", "a3", "b1", "b2"}) {
    pump.Call(peer, HandleRequest{ReserveOp{"k", "v", p, 31}});
  }
  pump.Run();
  EXPECT_EQ(pump.store("b1").reservations.at("k").request_id, 31u);
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

}  // namespace
}  // namespace replicator::core
