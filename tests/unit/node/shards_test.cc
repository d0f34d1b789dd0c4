// One answer to a membership change that every shard of a node makes by
// its own consensus (node/shards.h, CombineChangeOutcomes).
#include "node/shards.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace replicator::node {
namespace {

using core::ChangeOutcome;
using core::Configuration;
using core::MembershipChange;
using Kind = core::ChangeOutcome::Kind;

const Configuration kWithout{"c1", 4, {"a", "b", "c"}, 1};
const Configuration kWith{"c1", 5, {"a", "b", "c", "d"}, 1};
const MembershipChange kPromoteD{MembershipChange::Kind::kAdd, "d", false, ""};
const MembershipChange kRemoveD{MembershipChange::Kind::kRemove, "d", false, ""};

ChangeOutcome Ok(const Configuration& c) { return ChangeOutcome{Kind::kOk, "", c}; }
ChangeOutcome Invalid(const Configuration& c, std::string why) {
  return ChangeOutcome{Kind::kInvalidArgument, std::move(why), c};
}

TEST(CombineChangeOutcomesTest, OneShardAnswersAsItsEngineDoes) {
  ChangeOutcome o = CombineChangeOutcomes(kPromoteD, {Invalid(kWith, "d is already a voter")});
  EXPECT_EQ(o.kind, Kind::kInvalidArgument);
  EXPECT_EQ(o.message, "d is already a voter");
}

TEST(CombineChangeOutcomesTest, EveryShardChoosingItIsOkWithShardZerosConfiguration) {
  Configuration other = kWith;
  other.epoch = 9;
  ChangeOutcome o = CombineChangeOutcomes(kPromoteD, {Ok(kWith), Ok(other)});
  EXPECT_EQ(o.kind, Kind::kOk);
  EXPECT_EQ(o.config.epoch, 5u);
}

TEST(CombineChangeOutcomesTest, ARetryFinishesWhatAnEarlierTryMadeInSomeShards) {
  // Shard 0 promoted d in the first try; shard 1 now does.
  ChangeOutcome o =
      CombineChangeOutcomes(kPromoteD, {Invalid(kWith, "peer d is already a voter"), Ok(kWith)});
  EXPECT_EQ(o.kind, Kind::kOk) << o.message;
  o = CombineChangeOutcomes(kRemoveD, {Ok(kWithout), Invalid(kWithout, "peer d is not a voter")});
  EXPECT_EQ(o.kind, Kind::kOk) << o.message;
}

TEST(CombineChangeOutcomesTest, AChangeEveryShardRefusesAlikeIsRefusedAsOneShardRefusesIt) {
  ChangeOutcome o = CombineChangeOutcomes(
      kPromoteD, {Invalid(kWith, "already a voter"), Invalid(kWith, "already a voter")});
  EXPECT_EQ(o.kind, Kind::kInvalidArgument);
  EXPECT_EQ(o.message, "already a voter");
  o = CombineChangeOutcomes(kPromoteD, {ChangeOutcome{Kind::kBusy, "busy", kWithout},
                                        ChangeOutcome{Kind::kBusy, "busy", kWithout}});
  EXPECT_EQ(o.kind, Kind::kBusy);
  EXPECT_EQ(o.message, "busy");
}

TEST(CombineChangeOutcomesTest, AShardThatFailedIsNamedWithHowManyHaveTheChange) {
  ChangeOutcome o = CombineChangeOutcomes(
      kPromoteD,
      {Ok(kWith), ChangeOutcome{Kind::kUnavailable, "no majority answered", kWithout}, Ok(kWith)});
  EXPECT_EQ(o.kind, Kind::kUnavailable);
  EXPECT_EQ(o.message,
            "shard 1 of 3: no majority answered (2 of 3 shards have the change; retry it to "
            "finish)");
  // An invalid answer that does not show the change made is a failure too.
  o = CombineChangeOutcomes(kPromoteD,
                            {Ok(kWith), Invalid(kWithout, "peer d is not a member of c1")});
  EXPECT_EQ(o.kind, Kind::kInvalidArgument);
  EXPECT_NE(o.message.find("shard 1 of 2: peer d is not a member"), std::string::npos) << o.message;
}

}  // namespace
}  // namespace replicator::node
