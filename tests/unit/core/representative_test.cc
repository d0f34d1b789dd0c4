// The representative: a forward fans out to every voter of its cluster and
// answers with their votes, early once a majority is ok.
#include <gtest/gtest.h>

#include "core/engine.h"
#include "fixtures.h"
#include "test_pump.h"

namespace replicator::core {
namespace {

using testing::kTestGeneration;
using testing::kTwoByThree;
using testing::Pump;


TEST(RepresentativeTest, RepresentativeReturnsEveryVoteOfItsCluster) {
  Pump pump(kTwoByThree);
  pump.down.insert("b3");
  const ProposalId p{"a1", 1, 5, 0, 1};
  uint64_t call =
      pump.Call("b1", ForwardRequest{ReserveOp{"k", "v", p, 0, 1, kTestGeneration}, 500});
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

TEST(RepresentativeTest, RepresentativeAnswersOnceAMajorityIsOk) {
  Pump pump(kTwoByThree);
  // b3 is slow: the request to it waits, undelivered.
  pump.hold = [](const PeerId&, const PeerId& to, const Request&) { return to == "b3"; };
  const ProposalId p{"a1", 1, 5, 0, 1};
  uint64_t call =
      pump.Call("b1", ForwardRequest{ReserveOp{"k", "v", p, 0, 1, kTestGeneration}, 500});
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

TEST(RepresentativeTest, RepresentativeWaitsForEveryVoteWithoutAnOkMajority) {
  Pump pump(kTwoByThree);
  const ProposalId q{"a2", 1, 1, 0, 1};
  pump.Call("b2", HandleRequest{ReserveOp{"k", "w", q, 0, 1, kTestGeneration}});
  pump.Run();
  pump.hold = [](const PeerId&, const PeerId& to, const Request&) { return to == "b3"; };
  const ProposalId p{"a1", 1, 5, 0, 1};
  uint64_t call =
      pump.Call("b1", ForwardRequest{ReserveOp{"k", "v", p, 0, 1, kTestGeneration}, 500});
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

}  // namespace
}  // namespace replicator::core
