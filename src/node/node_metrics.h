// NodeMetrics: what the node measures for /metrics beyond the counters the
// engine (core::EngineStats) and storage (storage::StorageStats) keep
// already: client latencies, gets by outcome, peer call batches, per-peer
// round trips and reachability. Owned by Node::Impl; the plain counters are
// written and read on the reactor thread only, the histograms are atomic
// (util/histogram.h).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/types.h"
#include "util/histogram.h"

namespace replicator::node {

struct PeerMetrics {
  util::Histogram rtt{util::kLatencyBuckets};  // of batches answered
  bool reachable = false;                      // the last batch was answered
  uint64_t batches_failed = 0;                 // no answer within the deadline
};

struct NodeMetrics {
  util::Histogram put_duration{util::kLatencyBuckets};
  util::Histogram get_duration{util::kLatencyBuckets};
  uint64_t gets_found = 0;
  uint64_t gets_not_found = 0;
  uint64_t gets_unavailable = 0;
  uint64_t gets_invalid = 0;
  uint64_t slow_puts = 0;  // over --slow-put-threshold
  uint64_t peer_batches = 0;
  util::Histogram peer_batch_calls{{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}};
  std::map<core::PeerId, PeerMetrics> peers;  // ordered: the scrape is stable
};

}  // namespace replicator::node
