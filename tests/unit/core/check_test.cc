// RP_CHECK aborts with the condition and its message; an engine's own
// invariants hold on a fresh engine and after a whole put.
#include "core/check.h"

#include <gtest/gtest.h>

#include "core/engine.h"
#include "fixtures.h"
#include "test_pump.h"

namespace replicator::core {
namespace {

TEST(CheckDeathTest, AFailedCheckAbortsWithItsMessage) {
  EXPECT_DEATH(RP_CHECK(1 + 1 == 3, "arithmetic broke at step ", 7),
               "RP_CHECK\\(1 \\+ 1 == 3\\) failed: arithmetic broke at step 7");
}

TEST(CheckDeathTest, APassingCheckDoesNothing) {
  int evaluated = 0;
  RP_CHECK(++evaluated == 1, "never printed");
  EXPECT_EQ(evaluated, 1);
}

TEST(CheckDeathTest, AnEngineWithoutACommittedViewIsABug) {
  EXPECT_DEATH(Engine(testing::ConfigFor("a1", "a"), nullptr, DurableState{}),
               "an engine needs a committed view");
}

TEST(CheckTest, InvariantsHoldAroundAWholePut) {
  testing::Pump pump(testing::kTwoByThree);
  for (const PeerId& p : testing::kAll) pump.engine(p).CheckInvariants();
  pump.StartPut("a1", 1, "k", "v");
  // Mid-flight: reserves sent, nothing answered yet.
  pump.engine("a1").CheckInvariants();
  pump.RunUntilQuiet();
  ASSERT_EQ(pump.puts.at(1).kind, PutOutcome::Kind::kOk);
  for (const PeerId& p : testing::kAll) {
    pump.engine(p).CheckInvariants();
    EXPECT_EQ(pump.engine(p).stats().reservations, 0u) << p;
  }
}

}  // namespace
}  // namespace replicator::core
