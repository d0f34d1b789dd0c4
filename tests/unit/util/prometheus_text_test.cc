// The Prometheus text exposition format as util::PrometheusText writes it,
// and util::Histogram's buckets.
#include "util/prometheus_text.h"

#include <gtest/gtest.h>

#include <string>

#include "util/histogram.h"
#include "util/log.h"

namespace replicator::util {
namespace {

TEST(PrometheusText, CounterFamilyHasHelpTypeAndLabelledSamples) {
  PrometheusText out;
  out.Family("replicator_puts_total", "counter", "Puts, by outcome.");
  out.Sample("replicator_puts_total", {{"outcome", "ok"}}, 12);
  out.Sample("replicator_puts_total", {{"outcome", "key_exists"}}, 0);
  EXPECT_EQ(out.Take(),
            "# HELP replicator_puts_total Puts, by outcome.\n"
            "# TYPE replicator_puts_total counter\n"
            "replicator_puts_total{outcome=\"ok\"} 12\n"
            "replicator_puts_total{outcome=\"key_exists\"} 0\n");
}

TEST(PrometheusText, SampleWithoutLabelsHasNoBraces) {
  PrometheusText out;
  out.Sample("replicator_reservations", {}, 3);
  out.Sample("replicator_uptime_seconds", {}, 1.5);
  EXPECT_EQ(out.Take(), "replicator_reservations 3\nreplicator_uptime_seconds 1.5\n");
}

TEST(PrometheusText, EscapesLabelValuesAndHelp) {
  PrometheusText out;
  out.Family("m", "gauge", "a\\b\nc");
  out.Sample("m", {{"l", "q\"uote\\back\nline"}, {"k", "v"}}, 1);
  EXPECT_EQ(out.Take(),
            "# HELP m a\\\\b\\nc\n# TYPE m gauge\n"
            "m{l=\"q\\\"uote\\\\back\\nline\",k=\"v\"} 1\n");
}

TEST(PrometheusText, FormatsSpecialValues) {
  EXPECT_EQ(PrometheusText::FormatValue(0), "0");
  EXPECT_EQ(PrometheusText::FormatValue(0.00025), "0.00025");
  EXPECT_EQ(PrometheusText::FormatValue(10), "10");
  EXPECT_EQ(PrometheusText::FormatValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(PrometheusText::FormatValue(-1.0 / 0.0), "-Inf");
}

TEST(PrometheusText, HistogramIsCumulativeWithInfSumAndCount) {
  Histogram h({0.001, 0.01, 1});
  h.Observe(0.0005);                        // <= 1 ms
  h.Observe(std::chrono::milliseconds(1));  // exactly on a bound: in it
  h.Observe(std::chrono::milliseconds(5));  // <= 10 ms
  h.Observe(2.0);                           // above every bound
  PrometheusText out;
  out.Family("d_seconds", "histogram", "D.");
  out.Histogram("d_seconds", {{"peer", "p1"}}, h.Snapshot());
  EXPECT_EQ(out.Take(),
            "# HELP d_seconds D.\n# TYPE d_seconds histogram\n"
            "d_seconds_bucket{peer=\"p1\",le=\"0.001\"} 2\n"
            "d_seconds_bucket{peer=\"p1\",le=\"0.01\"} 3\n"
            "d_seconds_bucket{peer=\"p1\",le=\"1\"} 3\n"
            "d_seconds_bucket{peer=\"p1\",le=\"+Inf\"} 4\n"
            "d_seconds_sum{peer=\"p1\"} 2.0065\n"
            "d_seconds_count{peer=\"p1\"} 4\n");
}

TEST(Histogram, LatencyBucketsSpanATenthOfAMillisecondToTenSeconds) {
  ASSERT_FALSE(kLatencyBuckets.empty());
  EXPECT_DOUBLE_EQ(kLatencyBuckets.front(), 0.0001);
  EXPECT_DOUBLE_EQ(kLatencyBuckets.back(), 10);
  for (size_t i = 1; i < kLatencyBuckets.size(); ++i) {
    EXPECT_LT(kLatencyBuckets[i - 1], kLatencyBuckets[i]);
  }
  Histogram h(kLatencyBuckets);
  EXPECT_EQ(h.Snapshot().count, 0u);
  EXPECT_EQ(h.Snapshot().buckets.size(), kLatencyBuckets.size() + 1);
}

TEST(Log, ParsesLevelsAndRefusesOthers) {
  EXPECT_EQ(ParseLogLevel("debug"), LogLevel::kDebug);
  EXPECT_EQ(ParseLogLevel("info"), LogLevel::kInfo);
  EXPECT_EQ(ParseLogLevel("warn"), LogLevel::kWarn);
  EXPECT_EQ(ParseLogLevel("error"), LogLevel::kError);
  EXPECT_EQ(ParseLogLevel("verbose"), std::nullopt);
  EXPECT_EQ(ParseLogLevel(""), std::nullopt);
}

TEST(Log, TimestampIsRfc3339Utc) {
  std::string t = Rfc3339Now();
  // 2026-12-02T13:05:01.123Z
  ASSERT_EQ(t.size(), 24u) << t;
  EXPECT_EQ(t[4], '-');
  EXPECT_EQ(t[10], 'T');
  EXPECT_EQ(t[19], '.');
  EXPECT_EQ(t.back(), 'Z');
}

TEST(Log, LevelFiltersLines) {
  SetLogLevel(LogLevel::kWarn);
  EXPECT_FALSE(LogEnabled(LogLevel::kInfo));
  EXPECT_TRUE(LogEnabled(LogLevel::kWarn));
  EXPECT_TRUE(LogEnabled(LogLevel::kError));
  SetLogLevel(LogLevel::kInfo);
  EXPECT_TRUE(LogEnabled(LogLevel::kInfo));
  EXPECT_FALSE(LogEnabled(LogLevel::kDebug));
}

}  // namespace
}  // namespace replicator::util
