// Linearizable gets: read at a majority, and resolve every reservation
// found before answering that a key is absent.
#include <gtest/gtest.h>

#include "core/engine.h"
#include "fixtures.h"
#include "test_pump.h"

namespace replicator::core {
namespace {

using testing::kTwoByThree;
using testing::Pump;
using testing::Strand;


TEST(ReaderTest, LinearizableGetResolvesReservations) {
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
    const ProposalId p{"a1", 1, 77, 0, 1};
    Strand(pump, p, "k", "v", {"a1", "a2", "a3", "b1", "b2", "b3"});
    if (c.coordinator_accepted_commit) {
      for (const char* peer : {"a2", "a3"}) {
        pump.Call(peer, AcceptRequest{p, Ballot{0, "a1"}, Decision::kCommit, "k"});
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

TEST(ReaderTest, LinearizableGetWaitsForAnUndecidedPutInsteadOfAbortingIt) {
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

}  // namespace
}  // namespace replicator::core
