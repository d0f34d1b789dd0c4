// Histogram: counts of observations in fixed buckets, for Prometheus
// (util/prometheus_text.h). Observe() and Snapshot() may be called from any
// thread: every count is a relaxed atomic, so a storage thread can observe
// while the reactor renders. A snapshot is not one instant across buckets
// (an observation may land between two loads); its count is the sum of the
// buckets it read, so it is always consistent with them. Header-only.
//
//   util::Histogram latency(util::kLatencyBuckets);
//   latency.Observe(std::chrono::steady_clock::now() - start);
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

namespace replicator::util {

// Upper bounds in seconds: 0.1 ms .. 10 s, roughly 1-2.5-5 per decade.
inline const std::vector<double> kLatencyBuckets = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                                    0.01,   0.025,   0.05,   0.1,   0.25,   0.5,
                                                    1,      2.5,     5,      10};

struct HistogramSnapshot {
  std::vector<double> bounds;     // upper bounds, ascending; +Inf is implied
  std::vector<uint64_t> buckets;  // bounds.size() + 1 counts (last: above every bound)
  uint64_t count = 0;             // sum of buckets
  double sum = 0;                 // of the observed values
};

class Histogram {
 public:
  // `bounds` must be ascending.
  explicit Histogram(std::vector<double> bounds)
      : bounds_(std::move(bounds)),
        buckets_(std::make_unique<std::atomic<uint64_t>[]>(bounds_.size() + 1)) {}
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void Observe(double value) {
    size_t i = 0;
    while (i < bounds_.size() && value > bounds_[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    // Sum in nanounits so it stays one atomic integer add.
    sum_nanos_.fetch_add(static_cast<uint64_t>(value * 1e9), std::memory_order_relaxed);
  }
  template <typename Rep, typename Period>
  void Observe(std::chrono::duration<Rep, Period> elapsed) {
    Observe(std::chrono::duration<double>(elapsed).count());
  }

  // Adds another histogram's observations, as a snapshot of it; its bounds
  // must be these (one node's shards merged for /metrics).
  void Add(const HistogramSnapshot& other) {
    for (size_t i = 0; i <= bounds_.size() && i < other.buckets.size(); ++i) {
      buckets_[i].fetch_add(other.buckets[i], std::memory_order_relaxed);
    }
    sum_nanos_.fetch_add(static_cast<uint64_t>(other.sum * 1e9), std::memory_order_relaxed);
  }

  HistogramSnapshot Snapshot() const {
    HistogramSnapshot s;
    s.bounds = bounds_;
    s.buckets.resize(bounds_.size() + 1);
    for (size_t i = 0; i <= bounds_.size(); ++i) {
      s.buckets[i] = buckets_[i].load(std::memory_order_relaxed);
      s.count += s.buckets[i];
    }
    s.sum = static_cast<double>(sum_nanos_.load(std::memory_order_relaxed)) / 1e9;
    return s;
  }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> sum_nanos_{0};
};

}  // namespace replicator::util
