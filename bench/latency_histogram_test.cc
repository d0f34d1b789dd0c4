// LatencyHistogram: percentiles within 1% of the exact ones, an exact max.
#include "latency_histogram.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace replicator::bench {
namespace {

TEST(LatencyHistogramTest, EmptyReportsZero) {
  LatencyHistogram h;
  EXPECT_EQ(h.count(), 0u);
  EXPECT_EQ(h.Percentile(0.5), 0u);
  EXPECT_EQ(h.max(), 0u);
}

TEST(LatencyHistogramTest, SmallValuesAreExact) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 100; ++v) h.Record(v);
  EXPECT_EQ(h.Percentile(0.5), 50u);
  EXPECT_EQ(h.Percentile(0.99), 99u);
  EXPECT_EQ(h.Percentile(1.0), 100u);
  EXPECT_EQ(h.max(), 100u);
}

TEST(LatencyHistogramTest, PercentilesWithinOnePercent) {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> latency(std::log(2e6), 0.8);  // about 2 ms
  std::vector<uint64_t> samples;
  LatencyHistogram h;
  for (int i = 0; i < 100000; ++i) {
    uint64_t v = static_cast<uint64_t>(latency(rng));
    samples.push_back(v);
    h.Record(v);
  }
  std::sort(samples.begin(), samples.end());
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    uint64_t exact = samples[static_cast<size_t>(std::ceil(q * samples.size())) - 1];
    EXPECT_NEAR(static_cast<double>(h.Percentile(q)), static_cast<double>(exact), exact * 0.01)
        << "q=" << q;
  }
  EXPECT_EQ(h.max(), samples.back());
  EXPECT_EQ(h.Percentile(1.0), samples.back());
}

TEST(LatencyHistogramTest, HugeValuesDoNotOverflow) {
  LatencyHistogram h;
  h.Record(UINT64_MAX);
  h.Record(1);
  EXPECT_EQ(h.max(), UINT64_MAX);
  EXPECT_EQ(h.Percentile(0.5), 1u);
  EXPECT_LE(h.Percentile(0.9), UINT64_MAX);
}

TEST(LatencyHistogramTest, MergeAddsCounts) {
  LatencyHistogram a, b;
  a.Record(10);
  b.Record(20);
  b.Record(30);
  a.Merge(b);
  EXPECT_EQ(a.count(), 3u);
  EXPECT_EQ(a.max(), 30u);
  EXPECT_EQ(a.Percentile(0.5), 20u);
}

TEST(LatencyHistogramTest, BucketsHoldEverySampleInOrder) {
  LatencyHistogram h;
  const std::vector<uint64_t> samples = {3, 3, 127, 128, 1'000, 1'001, 2'500'000, 2'500'000};
  for (uint64_t v : samples) h.Record(v);
  uint64_t total = 0, previous_end = 0;
  std::vector<uint64_t> seen;
  h.ForEachBucket([&](uint64_t lower, uint64_t width, uint64_t count) {
    EXPECT_GE(lower, previous_end);
    EXPECT_GT(width, 0u);
    previous_end = lower + width;
    total += count;
    for (uint64_t v : samples) {
      if (v >= lower && v < lower + width) seen.push_back(v);
    }
  });
  EXPECT_EQ(total, h.count());
  EXPECT_EQ(seen, samples);  // each sample in exactly one reported bucket
}

}  // namespace
}  // namespace replicator::bench
