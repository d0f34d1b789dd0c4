// The bench's final table (for people) and JSON (for scripts: bench/run-matrix
// reads it). Both say the same: the configuration, throughput, latency
// percentiles, a count per outcome, the nodes' storage counters over the
// timed phase and the correctness check. The latency histogram can be written as CSV too.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "bench.h"

namespace replicator::bench {

// Where the bench ran: a deployment it started (--local) or given nodes.
struct Target {
  std::string local;  // "CxN" for --local; empty for --nodes
  int clusters = 0, nodes_per_cluster = 0;
  std::string storage;  // --local only
  bool tls = true;      // false: --insecure (plaintext)
  std::vector<std::string> addresses;
};

void PrintReport(std::FILE* out, const BenchConfig& config, const Target& target,
                 const BenchResult& result);
absl::Status WriteJson(const std::string& path, const BenchConfig& config, const Target& target,
                       const BenchResult& result);
// The latency histogram of a phase as CSV, one line per non-empty bucket, lowest first:
//   lower_ms,upper_ms,count,cumulative_fraction
// (`count` calls took at least lower_ms and less than upper_ms; cumulative_fraction is the
// share of calls up to this bucket's end). For plots (bench/run-matrix) and other tools.
absl::Status WriteHistogramCsv(const std::string& path, const LatencyHistogram& histogram);

}  // namespace replicator::bench
