// LatencyHistogram: call latencies in nanoseconds, in log-linear buckets
// (128 per power of two), so memory stays fixed however long a run is and a
// reported percentile is within 1% of the true one. The maximum is exact.
// Not thread-safe: the bench records on its one reactor thread.
//
//   LatencyHistogram h;
//   h.Record(1'250'000);           // 1.25 ms
//   double p99_ms = h.Percentile(0.99) / 1e6;
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

namespace replicator::bench {

class LatencyHistogram {
 public:
  static constexpr int kSubBits = 7;  // 2^7 buckets per power of two
  static constexpr uint64_t kSub = uint64_t{1} << kSubBits;

  LatencyHistogram() : counts_((64 - kSubBits + 1) * kSub, 0) {}

  void Record(uint64_t ns) {
    ++counts_[Index(ns)];
    ++count_;
    max_ = std::max(max_, ns);
  }

  void Merge(const LatencyHistogram& other) {
    for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += other.counts_[i];
    count_ += other.count_;
    max_ = std::max(max_, other.max_);
  }

  uint64_t count() const { return count_; }
  uint64_t max() const { return max_; }

  // The q-quantile (q in [0, 1]) of the recorded samples: the middle of the
  // bucket holding the ceil(q * count)-th smallest, never above the maximum;
  // 0 when empty.
  uint64_t Percentile(double q) const {
    if (count_ == 0) return 0;
    if (q >= 1) return max_;
    uint64_t rank = static_cast<uint64_t>(std::ceil(std::max(0.0, q) * count_));
    rank = std::max<uint64_t>(rank, 1);
    uint64_t seen = 0;
    for (size_t i = 0; i < counts_.size(); ++i) {
      seen += counts_[i];
      if (seen >= rank) return std::min(max_, Lower(i) + Width(i) / 2);
    }
    return max_;
  }

  // Calls f(lower_ns, width_ns, count) for every non-empty bucket, lowest first: `count`
  // samples lie in [lower_ns, lower_ns + width_ns).
  template <typename F>
  void ForEachBucket(F&& f) const {
    for (size_t i = 0; i < counts_.size(); ++i) {
      if (counts_[i] != 0) f(Lower(i), Width(i), counts_[i]);
    }
  }

 private:
  // Values below kSub have a bucket each; above, a power of two 2^e is cut
  // into kSub buckets of width 2^(e - kSubBits).
  static size_t Index(uint64_t v) {
    if (v < kSub) return static_cast<size_t>(v);
    int shift = std::bit_width(v) - 1 - kSubBits;
    return static_cast<size_t>((shift + 1) * kSub + ((v >> shift) - kSub));
  }
  static uint64_t Lower(size_t index) {
    if (index < kSub) return index;
    int shift = static_cast<int>(index / kSub) - 1;
    return (kSub + index % kSub) << shift;
  }
  static uint64_t Width(size_t index) {
    if (index < kSub) return 1;
    return uint64_t{1} << (index / kSub - 1);
  }

  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t max_ = 0;
};

}  // namespace replicator::bench
