// NodeMetrics: what the node measures for /metrics beyond the counters the
// engine (core::EngineStats) and storage (storage::StorageStats) keep
// already: client latencies, gets by outcome, peer call batches, per-peer
// round trips and reachability. One per shard (node/shards.h), written on
// its thread; the plain counters are read there too (the node adds every
// shard's into one for a scrape), the histograms are atomic
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

  // Adds `other`'s counts into these: counters and histograms add up; a
  // peer is reachable if the last batch of every shard that called it was
  // answered.
  void Add(const NodeMetrics& other) {
    put_duration.Add(other.put_duration.Snapshot());
    get_duration.Add(other.get_duration.Snapshot());
    gets_found += other.gets_found;
    gets_not_found += other.gets_not_found;
    gets_unavailable += other.gets_unavailable;
    gets_invalid += other.gets_invalid;
    slow_puts += other.slow_puts;
    peer_batches += other.peer_batches;
    peer_batch_calls.Add(other.peer_batch_calls.Snapshot());
    for (const auto& [id, p] : other.peers) {
      auto [it, added] = peers.try_emplace(id);
      it->second.rtt.Add(p.rtt.Snapshot());
      it->second.reachable = (added || it->second.reachable) && p.reachable;
      it->second.batches_failed += p.batches_failed;
    }
  }
};

}  // namespace replicator::node
