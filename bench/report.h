// The bench's final table (for people) and JSON (for scripts: bench/run-matrix
// reads it). Both say the same: the configuration, throughput, latency
// percentiles, a count per outcome, the nodes' storage counters over the
// timed phase and the correctness check.
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

}  // namespace replicator::bench
