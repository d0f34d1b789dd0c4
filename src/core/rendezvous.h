// Rendezvous (highest-random-weight) ordering of a cluster's voters for one
// key: the first peer is the key's representative in that cluster, the rest
// are its fallbacks in order. Every node of a build computes the same order,
// so the hash is a fixed function (FNV-1a then a SplitMix64 finalizer), never
// a per-process seeded hash. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "core/types.h"

namespace replicator::core {

// The weight of `peer` for `key`. Stable across processes and runs.
uint64_t RendezvousWeight(std::string_view key, std::string_view peer);

// `peers` ordered by descending weight for `key`; ties (astronomically
// unlikely) are broken by peer id so the order is total.
std::vector<PeerId> RendezvousOrder(std::string_view key, std::vector<PeerId> peers);

}  // namespace replicator::core
