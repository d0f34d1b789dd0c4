// The coordinator over engines of 2 clusters x 3 nodes wired by the in-test
// pump: whole puts, races on one key, representative failover, ballot 0
// refused, and request ids (a retried put answers ok when an earlier
// attempt was applied, and shares the outcome of one in flight).
#include <gtest/gtest.h>

#include "core/engine.h"
#include "core/rendezvous.h"
#include "fixtures.h"
#include "test_pump.h"

namespace replicator::core {
namespace {

using testing::ConfigFor;
using testing::kAll;
using testing::kTwoByThree;
using testing::MakeTopology;
using testing::MemoryStore;
using testing::Pump;


TEST(CoordinatorTest, PutCommitsEverywhere) {
  Pump pump(kTwoByThree);
  pump.StartPut("a1", 1, "k", "v");
  pump.Run();
  ASSERT_EQ(pump.puts.count(1), 1u);
  EXPECT_EQ(pump.puts[1].kind, PutOutcome::Kind::kOk) << pump.puts[1].message;
  for (const PeerId& p : kAll) {
    EXPECT_EQ(pump.store(p).GetCommitted("k"), "v") << p;
    EXPECT_TRUE(pump.store(p).reservations().empty()) << p;
    EXPECT_EQ(pump.engine(p).stats().reservations, 0u) << p;
  }
  EXPECT_EQ(pump.engine("a1").stats().puts_ok, 1u);

  // A second put of the key is refused with the stored value, from any node.
  pump.StartPut("b2", 2, "k", "other");
  pump.Run();
  EXPECT_EQ(pump.puts[2].kind, PutOutcome::Kind::kKeyExists);
  EXPECT_EQ(pump.puts[2].existing, "v");

  pump.StartGet("b3", 1, "k", Consistency::kLinearizable);
  pump.StartGet("a2", 2, "k", Consistency::kLocal);
  pump.StartGet("a3", 3, "nope", Consistency::kLinearizable);
  pump.Run();
  EXPECT_EQ(pump.gets[1].kind, GetOutcome::Kind::kFound);
  EXPECT_EQ(pump.gets[1].value, "v");
  EXPECT_EQ(pump.gets[2].value, "v");
  EXPECT_EQ(pump.gets[3].kind, GetOutcome::Kind::kNotFound);
  EXPECT_TRUE(pump.violations.empty());
}

// A put says where its time went (the node's slow-put log line): here the
// other cluster's votes are held up 300 ms, so they are the slowest part.
TEST(CoordinatorTest, APutsTimingsNameItsSlowestCluster) {
  Pump pump(kTwoByThree);
  pump.hold = [](const PeerId& from, const PeerId& to, const Request&) {
    return from == "a1" && to[0] == 'b';
  };
  pump.StartPut("a1", 1, "k", "v");
  pump.Run();
  ASSERT_FALSE(pump.puts.contains(1));
  pump.AdvanceTo(pump.now + 300);
  pump.Release();
  pump.Run();
  ASSERT_TRUE(pump.puts.contains(1));
  EXPECT_EQ(pump.puts[1].kind, PutOutcome::Kind::kOk) << pump.puts[1].message;
  const PutTimings& t = pump.put_timings[1];
  EXPECT_EQ(t.attempts, 1);
  EXPECT_EQ(t.slowest, "b");
  EXPECT_GE(t.slowest_ms, 300);
  EXPECT_GE(t.reserve_ms, t.slowest_ms);
  EXPECT_GE(t.accept_ms, 0);
  // Answered over a committed key: no round at all.
  pump.StartPut("a2", 2, "k", "w");
  pump.Run();
  EXPECT_EQ(pump.puts[2].kind, PutOutcome::Kind::kKeyExists);
  EXPECT_EQ(pump.put_timings[2].attempts, 0);
}

TEST(CoordinatorTest, ConcurrentPutsOfOneKeyEndWithExactlyOneOk) {
  // Several interleavings: the coordinators and their start order vary.
  const std::vector<std::vector<PeerId>> racers = {
      {"a1", "b1"}, {"b2", "a3"}, {"a1", "a2"}, {"a1", "a2", "b1", "b3"}};
  for (const auto& coordinators : racers) {
    Pump pump(kTwoByThree);
    for (size_t i = 0; i < coordinators.size(); ++i) {
      pump.StartPut(coordinators[i], i + 1, "k", "v" + std::to_string(i + 1));
    }
    pump.RunUntilQuiet();
    int oks = 0;
    std::string winner;
    for (size_t i = 0; i < coordinators.size(); ++i) {
      ASSERT_EQ(pump.puts.count(i + 1), 1u) << "put " << i + 1 << " never finished";
      const PutOutcome& out = pump.puts[i + 1];
      if (out.kind == PutOutcome::Kind::kOk) {
        ++oks;
        winner = "v" + std::to_string(i + 1);
      } else {
        EXPECT_EQ(out.kind, PutOutcome::Kind::kKeyExists) << out.message;
      }
    }
    EXPECT_EQ(oks, 1);
    for (const PeerId& p : kAll) EXPECT_EQ(pump.store(p).GetCommitted("k"), winner) << p;
    EXPECT_TRUE(pump.violations.empty());

  }
}

TEST(CoordinatorTest, RacesUnderReorderedDeliveryKeepOneOkAndLeaveNoReservations) {
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    Pump pump(kTwoByThree);
    pump.shuffle = &rng;
    const int racers = 2 + static_cast<int>(seed % 4);
    for (int i = 1; i <= racers; ++i) {
      pump.StartPut(kAll[rng() % kAll.size()], i, "k", "v" + std::to_string(i));
    }
    pump.RunUntilQuiet();
    int oks = 0;
    std::optional<Value> winner;
    for (int i = 1; i <= racers; ++i) {
      ASSERT_EQ(pump.puts.count(i), 1u) << "put " << i << " never finished";
      const PutOutcome& out = pump.puts[i];
      if (out.kind == PutOutcome::Kind::kOk) {
        ++oks;
        winner = "v" + std::to_string(i);
      } else {
        EXPECT_EQ(out.kind, PutOutcome::Kind::kKeyExists) << out.message;
      }
    }
    EXPECT_EQ(oks, 1);
    for (const PeerId& p : kAll) {
      EXPECT_EQ(pump.store(p).GetCommitted("k"), winner) << p;
      EXPECT_TRUE(pump.store(p).reservations().empty()) << p;
    }
    EXPECT_TRUE(pump.violations.empty());
  }
}

TEST(CoordinatorTest, RacesWithLostMessagesStaySafeAndRecoveryCleansUp) {
  for (uint64_t seed = 1; seed <= 200; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    Pump pump(kTwoByThree);
    pump.shuffle = &rng;
    pump.cut = [&rng](const PeerId&, const PeerId&, const Request&) { return rng() % 10 == 0; };
    const int racers = 1 + static_cast<int>(seed % 4);
    for (int i = 1; i <= racers; ++i) {
      pump.StartPut(kAll[rng() % kAll.size()], i, "k", "v" + std::to_string(i));
    }
    pump.RunUntilQuiet(1000);
    int oks = 0;
    std::optional<Value> winner;
    for (int i = 1; i <= racers; ++i) {
      ASSERT_EQ(pump.puts.count(i), 1u) << "put " << i << " never finished";
      if (pump.puts[i].kind == PutOutcome::Kind::kOk) {
        ++oks;
        winner = "v" + std::to_string(i);
      }
    }
    EXPECT_LE(oks, 1);
    // The network heals; lease recovery settles every stranded reservation.
    pump.cut = nullptr;
    pump.RunUntilQuiet();
    std::optional<Value> committed;
    std::map<ClusterId, int> holders;
    for (const PeerId& p : kAll) {
      EXPECT_TRUE(pump.store(p).reservations().empty()) << p;
      std::optional<Value> v = pump.store(p).GetCommitted("k");
      if (!v) continue;
      if (committed) {
        EXPECT_EQ(v, committed) << p;
      }
      committed = v;
      holders[p.substr(0, 1)]++;
    }
    if (winner) {
      EXPECT_EQ(committed, winner);
      EXPECT_GE(holders["a"], 2);
      EXPECT_GE(holders["b"], 2);
    }
    pump.StartGet(kAll[rng() % kAll.size()], 1, "k", Consistency::kLinearizable);
    pump.Run();
    EXPECT_EQ(pump.gets[1].kind,
              committed ? GetOutcome::Kind::kFound : GetOutcome::Kind::kNotFound);
    EXPECT_TRUE(pump.violations.empty());
  }
}

TEST(CoordinatorTest, UnreachableRepresentativeFailsOverToTheNext) {
  Pump pump(kTwoByThree);
  std::vector<PeerId> order = RendezvousOrder("k", {"b1", "b2", "b3"});
  pump.down.insert(order[0]);
  pump.StartPut("a1", 1, "k", "v");
  pump.Run();
  EXPECT_EQ(pump.puts[1].kind, PutOutcome::Kind::kOk) << pump.puts[1].message;
  std::vector<PeerId> forwarded_to;
  for (const Pump::Sent& s : pump.sent) {
    if (s.from == "a1" && std::holds_alternative<ForwardRequest>(s.request)) {
      forwarded_to.push_back(s.to);
    }
  }
  ASSERT_GE(forwarded_to.size(), 2u);
  EXPECT_EQ(forwarded_to[0], order[0]);
  EXPECT_EQ(forwarded_to[1], order[1]);
  for (const PeerId& p : kAll) {
    EXPECT_EQ(pump.store(p).GetCommitted("k"),
              p == order[0] ? std::nullopt : std::optional<Value>("v"))
        << p;
  }
}

Vote OkVote(const PeerId& peer, const ClusterId& cluster) {
  Vote v;
  v.peer = peer;
  v.cluster = cluster;
  v.kind = Vote::Kind::kOk;
  return v;
}

// A representative that never answers costs the put half its attempt, not
// all of it: after half the time left the next one is asked too, and its
// answer commits the same attempt. Both calls keep the whole attempt as
// deadline, so a slow representative's answer would still have counted.
// Driven by hand.
TEST(CoordinatorTest, ASilentRepresentativeTimesOutInTimeForTheNext) {
  MemoryStore store;
  Engine a1(ConfigFor("a1", "a"), &store, DurableState{});
  TimeMs now = 1000;
  a1.SetTopology(MakeTopology(kTwoByThree), now);
  std::vector<SendEffect> sent;
  auto drive = [&] {
    for (Effect& fx : a1.TakeEffects()) {
      if (auto* w = std::get_if<WriteEffect>(&fx)) {
        store.Apply(w->batch);
        a1.OnWriteDone(w->write_id, now);
        for (Effect& more : a1.TakeEffects()) {
          if (auto* s = std::get_if<SendEffect>(&more)) sent.push_back(*s);
        }
      } else if (auto* s = std::get_if<SendEffect>(&fx)) {
        sent.push_back(*s);
      }
    }
  };
  auto forwards = [&] {
    std::vector<SendEffect> out;
    for (const SendEffect& s : sent) {
      if (std::holds_alternative<ForwardRequest>(s.request)) out.push_back(s);
    }
    return out;
  };
  a1.StartPut(1, "k", "v", 0, now);
  drive();
  const std::vector<PeerId> order = RendezvousOrder("k", {"b1", "b2", "b3"});
  ASSERT_EQ(forwards().size(), 1u);
  EXPECT_EQ(forwards()[0].to, order[0]);
  EXPECT_EQ(forwards()[0].deadline, 2000) << "the whole attempt";
  // a2 and a3 vote ok; a1's own vote is in already.
  for (const SendEffect& s : std::vector<SendEffect>(sent)) {
    if (std::holds_alternative<HandleRequest>(s.request)) {
      a1.OnResponse(s.call_id, HandleResponse{OkVote(s.to, "a")}, now);
      drive();
    }
  }
  EXPECT_EQ(a1.NextWakeup(), 1500) << "half of the 1000 ms attempt";
  now = 1499;
  a1.Tick(now);
  drive();
  EXPECT_EQ(forwards().size(), 1u) << "not yet";
  now = 1500;
  a1.Tick(now);
  drive();
  ASSERT_EQ(forwards().size(), 2u);
  EXPECT_EQ(forwards()[1].to, order[1]);
  EXPECT_EQ(forwards()[1].deadline, 2000);
  EXPECT_EQ(a1.NextWakeup(), 1750) << "then the third, if both stay silent";
  std::vector<Vote> votes;
  for (const char* b : {"b1", "b2", "b3"}) votes.push_back(OkVote(b, "b"));
  now = 1520;
  a1.OnResponse(forwards()[1].call_id,
                ForwardResponse{votes, Configuration{"b", 1, {"b1", "b2", "b3"}}}, now);
  drive();
  // The first one's deadline passes later; it changes nothing.
  now = 2000;
  a1.OnResponse(forwards()[0].call_id, Unreachable{"deadline exceeded"}, now);
  drive();
  // The attempt committed: ballot 0 goes to a2 and a3, no retry was needed.
  size_t accepts = 0;
  for (const SendEffect& s : sent) accepts += std::holds_alternative<AcceptRequest>(s.request);
  EXPECT_EQ(accepts, 2u);
  EXPECT_EQ(a1.stats().put_retries, 0u);
}

// A voter the membership shows down is asked last.
TEST(CoordinatorTest, ARepresentativeShownDownIsAskedLast) {
  Topology t = MakeTopology(kTwoByThree);
  const std::vector<PeerId> order = RendezvousOrder("k", {"b1", "b2", "b3"});
  for (Member& m : t.members) {
    if (m.id == order[0]) m.state = PeerState::kDown;
  }
  MemoryStore store;
  Engine a1(ConfigFor("a1", "a"), &store, DurableState{});
  a1.SetTopology(t, 1000);
  a1.StartPut(1, "k", "v", 0, 1000);
  std::vector<PeerId> forwarded;
  for (Effect& fx : a1.TakeEffects()) {
    if (auto* s = std::get_if<SendEffect>(&fx);
        s != nullptr && std::holds_alternative<ForwardRequest>(s->request)) {
      forwarded.push_back(s->to);
    }
  }
  EXPECT_EQ(forwarded, std::vector<PeerId>{order[1]});
}

TEST(CoordinatorTest, PutWithoutAMajorityInARemoteClusterIsUnavailableAndAborted) {
  Pump pump(kTwoByThree);
  pump.down = {"b1", "b2"};
  pump.StartPut("a1", 1, "k", "v");
  pump.Run();
  EXPECT_EQ(pump.puts[1].kind, PutOutcome::Kind::kUnavailable);
  EXPECT_NE(pump.puts[1].message.find("cluster b"), std::string::npos) << pump.puts[1].message;
  for (const PeerId& p : kAll) {
    EXPECT_EQ(pump.store(p).GetCommitted("k"), std::nullopt) << p;
    EXPECT_TRUE(pump.store(p).reservations().empty()) << p;
  }
  EXPECT_EQ(pump.engine("a1").stats().puts_unavailable, 1u);
}

// A node cut off from its own cluster cannot commit, and each attempt of
// its would hold the key reserved in the other clusters meanwhile, stalling
// the puts of the majority side there. After one such attempt it asks its
// own cluster first and the others only once a majority of it said ok.
TEST(CoordinatorTest, ANodeCutOffFromItsClusterStopsReservingInOtherClusters) {
  Pump pump(kTwoByThree);
  pump.cut = [](const PeerId& from, const PeerId& to, const Request&) {
    return (from == "a1" && (to == "a2" || to == "a3")) ||
           (to == "a1" && (from == "a2" || from == "a3"));
  };
  auto forwards_from_a1 = [&](size_t since) {
    size_t n = 0;
    for (size_t i = since; i < pump.sent.size(); ++i) {
      n +=
          pump.sent[i].from == "a1" && std::holds_alternative<ForwardRequest>(pump.sent[i].request);
    }
    return n;
  };
  pump.StartPut("a1", 1, "k1", "v");
  pump.Run();
  EXPECT_EQ(pump.puts[1].kind, PutOutcome::Kind::kUnavailable);
  EXPECT_GE(forwards_from_a1(0), 1u) << "the first attempt asks every cluster at once";

  size_t mark = pump.sent.size();
  pump.StartPut("a1", 2, "k2", "v");
  pump.Run();
  ASSERT_EQ(pump.puts[2].kind, PutOutcome::Kind::kUnavailable);
  EXPECT_NE(pump.puts[2].message.find("cluster a reserved at 1 of 3"), std::string::npos)
      << pump.puts[2].message;
  EXPECT_NE(pump.puts[2].message.find("the other clusters were not asked"), std::string::npos)
      << pump.puts[2].message;
  EXPECT_EQ(forwards_from_a1(mark), 0u) << "nothing reserved, nor aborted, in cluster b";
  for (const char* b : {"b1", "b2", "b3"}) {
    EXPECT_TRUE(pump.store(b).reservations().empty()) << b;
  }

  // The majority side meanwhile puts the key the cut-off node tried.
  pump.StartPut("a2", 3, "k2", "theirs");
  pump.Run();
  EXPECT_EQ(pump.puts[3].kind, PutOutcome::Kind::kOk) << pump.puts[3].message;

  // Healed: the next attempt asks cluster a first, then b, and commits; the
  // one after goes to every cluster at once again.
  pump.cut = nullptr;
  mark = pump.sent.size();
  pump.StartPut("a1", 4, "k4", "v");
  EXPECT_EQ(forwards_from_a1(mark), 0u) << "cluster a first";
  pump.Run();
  EXPECT_EQ(pump.puts[4].kind, PutOutcome::Kind::kOk) << pump.puts[4].message;
  EXPECT_GE(forwards_from_a1(mark), 1u);
  mark = pump.sent.size();
  pump.StartPut("a1", 5, "k5", "v");
  EXPECT_EQ(forwards_from_a1(mark), 1u) << "every cluster at once";
  pump.Run();
  EXPECT_EQ(pump.puts[5].kind, PutOutcome::Kind::kOk) << pump.puts[5].message;
  for (const PeerId& p : kAll) {
    // a1 was cut off when k2 committed (catch-up brings it later).
    if (p != "a1") {
      EXPECT_EQ(pump.store(p).GetCommitted("k2"), "theirs") << p;
    }
    EXPECT_EQ(pump.store(p).GetCommitted("k5"), "v") << p;
    EXPECT_TRUE(pump.store(p).reservations().empty()) << p;
  }
  EXPECT_TRUE(pump.violations.empty());
}

TEST(CoordinatorTest, RefusedBallotZeroIsSettledByTheCoordinatorsRecovery) {
  // a1's first put is proposal a1/1/1; the tester interferes with its
  // decision register before the put starts.
  const ProposalId p{"a1", 1, 1, 0, 1};
  struct Case {
    std::string name;
    std::function<void(Pump&)> interfere;
    PutOutcome::Kind want;
    std::string message_has;
    std::optional<Value> committed;
  };
  const std::vector<Case> cases = {
      {"a rival promise refuses ballot 0; recovery adopts a1's own accepted commit",
       [&](Pump& pump) {
         for (const char* peer : {"a2", "a3"})
           pump.Call(peer, PrepareRequest{p, Ballot{1, "a2"}, "k"});
       },
       PutOutcome::Kind::kOk, "", "v"},
      {"a recovery already chose abort",
       [&](Pump& pump) {
         for (const char* peer : {"a2", "a3"}) {
           pump.Call(peer, AcceptRequest{p, Ballot{1, "a2"}, Decision::kAbort, "k"});
         }
       },
       PutOutcome::Kind::kUnavailable, "aborted by a concurrent recovery", std::nullopt},
      {"acceptors unreachable: the outcome is unknown",
       [&](Pump& pump) {
         pump.cut = [](const PeerId&, const PeerId& to, const Request& r) {
           return to != "a1" && (std::holds_alternative<AcceptRequest>(r) ||
                                 std::holds_alternative<PrepareRequest>(r));
         };
       },
       PutOutcome::Kind::kOutcomeUnknown, "the decision could not be learned: ", std::nullopt},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Pump pump(kTwoByThree);
    c.interfere(pump);
    pump.Run();
    pump.StartPut("a1", 1, "k", "v");
    pump.Run();
    ASSERT_EQ(pump.puts.count(1), 1u);
    EXPECT_EQ(pump.puts[1].kind, c.want) << pump.puts[1].message;
    EXPECT_NE(pump.puts[1].message.find(c.message_has), std::string::npos)
        << pump.puts[1].message;
    for (const PeerId& peer : kAll) EXPECT_EQ(pump.store(peer).GetCommitted("k"), c.committed);
    EXPECT_TRUE(pump.violations.empty());
  }
}

TEST(CoordinatorRequestIdTest, PutOverALocallyCommittedKey) {
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
    store.Plant("k", "v", c.stored_request_id);
    Engine engine(ConfigFor("a1", "a"), &store, DurableState{});
    engine.SetTopology(MakeTopology({{"a", {"a1", "a2", "a3"}}}), 1000);
    engine.TakeEffects();  // adopting the founding configuration
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

TEST(CoordinatorRequestIdTest, RequestIdTravelsWithReserveAndCommitAndIsStored) {
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

TEST(CoordinatorRequestIdTest, StoredVoteWithTheSameRequestIdAnswersOk) {
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
    const ProposalId earlier{"b1", 1, 3, 0, 1};
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
    for (const PeerId& p : kAll) EXPECT_TRUE(pump.store(p).reservations().empty()) << p;
    EXPECT_TRUE(pump.violations.empty());
  }
}

TEST(CoordinatorRequestIdTest, ASecondStartPutOfTheSameRequestInFlightSharesItsOutcome) {
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

TEST(CoordinatorRequestIdTest, RetryAfterTheCoordinatorDiedIsContentionThenOk) {
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
    EXPECT_TRUE(pump.store(p).reservations().empty()) << p;
  }
  EXPECT_TRUE(pump.violations.empty());
}

}  // namespace
}  // namespace replicator::core
