// Engines of 2 clusters x 3 nodes wired by the tiny in-test pump: whole
// puts, concurrent puts, representative failover, linearizable gets and
// lease recovery, asserted by what clients and stores can see.
#include <gtest/gtest.h>

#include "core/engine.h"
#include "core/rendezvous.h"
#include "test_pump.h"

namespace replicator::core {
namespace {

using testing::Pump;

const std::map<ClusterId, std::vector<PeerId>> kTwoByThree = {{"a", {"a1", "a2", "a3"}},
                                                              {"b", {"b1", "b2", "b3"}}};
const std::vector<PeerId> kAll = {"a1", "a2", "a3", "b1", "b2", "b3"};

TEST(EngineClusterTest, PutCommitsEverywhere) {
  Pump pump(kTwoByThree);
  pump.StartPut("a1", 1, "k", "v");
  pump.Run();
  ASSERT_EQ(pump.puts.count(1), 1u);
  EXPECT_EQ(pump.puts[1].kind, PutOutcome::Kind::kOk) << pump.puts[1].message;
  for (const PeerId& p : kAll) {
    EXPECT_EQ(pump.store(p).GetCommitted("k"), "v") << p;
    EXPECT_TRUE(pump.store(p).reservations.empty()) << p;
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

TEST(EngineClusterTest, ConcurrentPutsOfOneKeyEndWithExactlyOneOk) {
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

TEST(EngineClusterTest, RacesUnderReorderedDeliveryKeepOneOkAndLeaveNoReservations) {
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
      EXPECT_TRUE(pump.store(p).reservations.empty()) << p;
    }
    EXPECT_TRUE(pump.violations.empty());
  }
}

TEST(EngineClusterTest, RacesWithLostMessagesStaySafeAndRecoveryCleansUp) {
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
      EXPECT_TRUE(pump.store(p).reservations.empty()) << p;
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

TEST(EngineClusterTest, UnreachableRepresentativeFailsOverToTheNext) {
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

TEST(EngineClusterTest, PutWithoutAMajorityInARemoteClusterIsUnavailableAndAborted) {
  Pump pump(kTwoByThree);
  pump.down = {"b1", "b2"};
  pump.StartPut("a1", 1, "k", "v");
  pump.Run();
  EXPECT_EQ(pump.puts[1].kind, PutOutcome::Kind::kUnavailable);
  EXPECT_NE(pump.puts[1].message.find("cluster b"), std::string::npos) << pump.puts[1].message;
  for (const PeerId& p : kAll) {
    EXPECT_EQ(pump.store(p).GetCommitted("k"), std::nullopt) << p;
    EXPECT_TRUE(pump.store(p).reservations.empty()) << p;
  }
  EXPECT_EQ(pump.engine("a1").stats().puts_unavailable, 1u);
}

TEST(EngineClusterTest, RepresentativeReturnsEveryVoteOfItsCluster) {
  Pump pump(kTwoByThree);
  pump.down.insert("b3");
  const ProposalId p{"a1", 1, 5, 0};
  uint64_t call = pump.Call("b1", ForwardRequest{ReserveOp{"k", "v", p}, 500});
  pump.Run();
  const auto& resp = std::get<ForwardResponse>(pump.tester_responses.at(call));
  std::map<PeerId, Vote::Kind> kinds;
  for (const Vote& v : resp.votes) {
    EXPECT_EQ(v.cluster, "b");
    kinds[v.peer] = v.kind;
    if (v.kind == Vote::Kind::kUnreachable) {
      EXPECT_NE(v.reason.find("down"), std::string::npos) << v.reason;
    }
  }
  EXPECT_EQ(kinds, (std::map<PeerId, Vote::Kind>{{"b1", Vote::Kind::kOk},
                                                 {"b2", Vote::Kind::kOk},
                                                 {"b3", Vote::Kind::kUnreachable}}));
  EXPECT_EQ(pump.engine("b2").stats().reservations, 1u);
}

TEST(EngineClusterTest, RepresentativeAnswersOnceAMajorityIsOk) {
  Pump pump(kTwoByThree);
  // b3 is slow: the request to it waits, undelivered.
  pump.hold = [](const PeerId&, const PeerId& to, const Request&) { return to == "b3"; };
  const ProposalId p{"a1", 1, 5, 0};
  uint64_t call = pump.Call("b1", ForwardRequest{ReserveOp{"k", "v", p}, 500});
  pump.Run();
  ASSERT_TRUE(pump.tester_responses.count(call)) << "the answer waited for the slow voter";
  const auto& resp = std::get<ForwardResponse>(pump.tester_responses.at(call));
  std::map<PeerId, Vote::Kind> kinds;
  for (const Vote& v : resp.votes) kinds[v.peer] = v.kind;
  EXPECT_EQ(kinds, (std::map<PeerId, Vote::Kind>{{"b1", Vote::Kind::kOk},
                                                 {"b2", Vote::Kind::kOk}}));
  // The slow voter still gets the reserve.
  pump.Release();
  pump.Run();
  EXPECT_EQ(pump.engine("b3").stats().reservations, 1u);
}

TEST(EngineClusterTest, RepresentativeWaitsForEveryVoteWithoutAnOkMajority) {
  Pump pump(kTwoByThree);
  const ProposalId q{"a2", 1, 1, 0};
  pump.Call("b2", HandleRequest{ReserveOp{"k", "w", q}});
  pump.Run();
  pump.hold = [](const PeerId&, const PeerId& to, const Request&) { return to == "b3"; };
  const ProposalId p{"a1", 1, 5, 0};
  uint64_t call = pump.Call("b1", ForwardRequest{ReserveOp{"k", "v", p}, 500});
  pump.Run();
  // b1 ok, b2 reserved for q: b3's vote decides, so the answer waits for it.
  EXPECT_FALSE(pump.tester_responses.count(call));
  pump.Release();
  pump.Run();
  ASSERT_TRUE(pump.tester_responses.count(call));
  const auto& resp = std::get<ForwardResponse>(pump.tester_responses.at(call));
  std::map<PeerId, Vote::Kind> kinds;
  for (const Vote& v : resp.votes) kinds[v.peer] = v.kind;
  EXPECT_EQ(kinds, (std::map<PeerId, Vote::Kind>{{"b1", Vote::Kind::kOk},
                                                 {"b2", Vote::Kind::kReserved},
                                                 {"b3", Vote::Kind::kOk}}));
}

// Reserves `key` for proposal `p` at `peers` as if p's coordinator had run
// the reserve phase and then gone silent.
void Strand(Pump& pump, const ProposalId& p, const Key& key, const Value& value,
            const std::vector<PeerId>& peers) {
  for (const PeerId& peer : peers) pump.Call(peer, HandleRequest{ReserveOp{key, value, p}});
  pump.Run();
}

TEST(EngineClusterTest, LinearizableGetResolvesReservations) {
  struct Case {
    std::string name;
    bool coordinator_accepted_commit;  // ballot 0 accepted at a majority of a
    GetOutcome::Kind want;
  };
  const std::vector<Case> cases = {
      {"undecided proposal is aborted, the key absent", false, GetOutcome::Kind::kNotFound},
      {"chosen commit is found", true, GetOutcome::Kind::kFound},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Pump pump(kTwoByThree);
    const ProposalId p{"a1", 1, 77, 0};
    Strand(pump, p, "k", "v", {"a1", "a2", "a3", "b1", "b2", "b3"});
    if (c.coordinator_accepted_commit) {
      for (const char* peer : {"a2", "a3"}) {
        pump.Call(peer, AcceptRequest{p, Ballot{0, "a1"}, Decision::kCommit});
      }
      pump.Run();
    }
    pump.StartGet("b2", 1, "k", Consistency::kLinearizable);
    pump.Run();
    ASSERT_EQ(pump.gets.count(1), 1u);
    EXPECT_EQ(pump.gets[1].kind, c.want) << pump.gets[1].message;
    if (c.want == GetOutcome::Kind::kFound) {
      EXPECT_EQ(pump.gets[1].value, "v");
    }
    // The decision, once resolved, is final for later readers too.
    pump.StartGet("a3", 2, "k", Consistency::kLinearizable);
    pump.Run();
    EXPECT_EQ(pump.gets[2].kind, c.want);
  }
}

TEST(EngineClusterTest, LinearizableGetWaitsForAnUndecidedPutInsteadOfAbortingIt) {
  Pump pump(kTwoByThree);
  // Park the reserve forwards to cluster b: the put stays undecided while
  // its reservations are visible in cluster a.
  pump.hold = [](const PeerId& from, const PeerId&, const Request& r) {
    return from == "a1" && std::holds_alternative<ForwardRequest>(r);
  };
  pump.StartPut("a1", 1, "k", "v");
  pump.Run();
  EXPECT_EQ(pump.puts.count(1), 0u);
  pump.StartGet("a2", 1, "k", Consistency::kLinearizable);
  pump.Run();
  EXPECT_EQ(pump.gets.count(1), 0u) << "the get must wait for the coordinator's decision";
  pump.Release();
  pump.Run();
  EXPECT_EQ(pump.puts[1].kind, PutOutcome::Kind::kOk) << pump.puts[1].message;
  ASSERT_EQ(pump.gets.count(1), 1u);
  EXPECT_EQ(pump.gets[1].kind, GetOutcome::Kind::kFound);
  EXPECT_EQ(pump.gets[1].value, "v");
}

TEST(EngineClusterTest, LeaseRecoveryAbortsAReservationNobodyDecided) {
  Pump pump(kTwoByThree);
  const ProposalId p{"a1", 1, 77, 0};
  Strand(pump, p, "k", "v", {"a2", "b1", "b3"});
  EXPECT_EQ(pump.engine("b1").stats().reservations, 1u);
  // Before the lease expires nothing happens.
  pump.AdvanceTo(pump.now + pump.engine("b1").config().lease_ms - 1);
  EXPECT_EQ(pump.engine("b1").stats().reservations, 1u);
  pump.RunUntilQuiet();
  for (const PeerId& peer : kAll) {
    EXPECT_EQ(pump.engine(peer).stats().reservations, 0u) << peer;
    EXPECT_TRUE(pump.store(peer).reservations.empty()) << peer;
    EXPECT_EQ(pump.store(peer).GetCommitted("k"), std::nullopt) << peer;
  }
  // The key is free again.
  pump.StartPut("b2", 1, "k", "w");
  pump.Run();
  EXPECT_EQ(pump.puts[1].kind, PutOutcome::Kind::kOk) << pump.puts[1].message;
}

TEST(EngineClusterTest, LeaseRecoveryCommitsAChosenCommit) {
  Pump pump(kTwoByThree);
  const ProposalId p{"a1", 1, 77, 0};
  Strand(pump, p, "k", "v", {"a2", "a3", "b1", "b2"});
  for (const char* peer : {"a1", "a2"}) {
    pump.Call(peer, AcceptRequest{p, Ballot{0, "a1"}, Decision::kCommit});
  }
  pump.Run();
  pump.RunUntilQuiet();
  for (const char* peer : {"a2", "a3", "b1", "b2"}) {
    EXPECT_EQ(pump.store(peer).GetCommitted("k"), "v") << peer;
    EXPECT_TRUE(pump.store(peer).reservations.empty()) << peer;
  }
}

TEST(EngineClusterTest, RefusedBallotZeroIsSettledByTheCoordinatorsRecovery) {
  // a1's first put is proposal a1/1/1; the tester interferes with its
  // decision register before the put starts.
  const ProposalId p{"a1", 1, 1, 0};
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
         for (const char* peer : {"a2", "a3"}) pump.Call(peer, PrepareRequest{p, Ballot{1, "a2"}});
       },
       PutOutcome::Kind::kOk, "", "v"},
      {"a recovery already chose abort",
       [&](Pump& pump) {
         for (const char* peer : {"a2", "a3"}) {
           pump.Call(peer, AcceptRequest{p, Ballot{1, "a2"}, Decision::kAbort});
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

}  // namespace
}  // namespace replicator::core
