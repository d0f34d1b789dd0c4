// Contention backoff (wait-die): the oldest racer retries within one
// attempt's duration, younger ones wait at least two and longer with every
// attempt; all in units of the lost attempt's duration.
#include "core/backoff.h"

#include <gtest/gtest.h>

namespace replicator::core {
namespace {

const ProposalId kOld{"a1", 1, 1, /*started_ms=*/100, 1};
const ProposalId kYoung{"b1", 1, 7, /*started_ms=*/200, 1};

TEST(BackoffTest, TheOldestRetriesWithinOneAttempt) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 200; ++i) {
    TimeMs t = ContentionBackoff(kOld, 3, {kYoung}, /*attempt_took=*/80, /*base_ms=*/10, rng);
    EXPECT_GE(t, 40);
    EXPECT_LE(t, 80);
  }
}

TEST(BackoffTest, YoungerRacersWaitTwoAttemptsAndLongerEachTime) {
  std::mt19937_64 rng(1);
  for (int attempt : {1, 2, 5, 9}) {
    const TimeMs hi = 2 * 80 + 80 * (TimeMs{1} << std::min(attempt, 5));
    TimeMs longest = 0;
    for (int i = 0; i < 200; ++i) {
      TimeMs t = ContentionBackoff(kYoung, attempt, {kOld}, 80, 10, rng);
      EXPECT_GE(t, 160) << "attempt " << attempt;
      EXPECT_LE(t, hi) << "attempt " << attempt;
      longest = std::max(longest, t);
    }
    EXPECT_GT(longest, hi / 2) << "the range is used, attempt " << attempt;
  }
}

TEST(BackoffTest, TheUnitIsAtLeastTheBaseAndAtLeastOneMillisecond) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 100; ++i) {
    TimeMs t = ContentionBackoff(kOld, 1, {kYoung}, /*attempt_took=*/0, /*base_ms=*/10, rng);
    EXPECT_GE(t, 5);
    EXPECT_LE(t, 10);
    TimeMs u = ContentionBackoff(kOld, 1, {kYoung}, 0, 0, rng);
    EXPECT_GE(u, 0);
    EXPECT_LE(u, 1);
  }
}

TEST(BackoffTest, EqualStartsAreOrderedByProposalAndNoHolderMeansOldest) {
  const ProposalId a{"a1", 1, 1, 100, 1};
  const ProposalId b{"a2", 1, 1, 100, 1};
  std::mt19937_64 rng(1);
  EXPECT_LE(ContentionBackoff(a, 4, {b}, 50, 10, rng), 50);  // a < b
  EXPECT_GE(ContentionBackoff(b, 4, {a}, 50, 10, rng), 100);
  EXPECT_LE(ContentionBackoff(b, 4, {}, 50, 10, rng), 50);
  // Older than one holder but younger than another: not the oldest.
  EXPECT_GE(ContentionBackoff(kYoung, 1, {kOld, ProposalId{"c1", 1, 1, 300, 1}}, 50, 10, rng), 100);
}

TEST(BackoffTest, TheSameSeedGivesTheSameWaits) {
  std::mt19937_64 x(42), y(42);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(ContentionBackoff(kYoung, i % 7 + 1, {kOld}, 30 + i, 10, x),
              ContentionBackoff(kYoung, i % 7 + 1, {kOld}, 30 + i, 10, y));
  }
}

}  // namespace
}  // namespace replicator::core
