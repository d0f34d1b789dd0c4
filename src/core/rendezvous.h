// Representatives: which voter of a remote cluster a put asks, in what
// order, and with how much of its time. Rendezvous (highest-random-weight)
// ordering of a cluster's voters for one key: the first peer is the key's
// representative in that cluster, the rest are its fallbacks in order. Every
// node of a build computes the same order, so the hash is a fixed function
// (FNV-1a then a SplitMix64 finalizer), never a per-process seeded hash.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "core/types.h"

namespace replicator::core {

// The weight of `peer` for `key`. Stable across processes and runs.
uint64_t RendezvousWeight(std::string_view key, std::string_view peer);

// `peers` ordered by descending weight for `key`; ties (astronomically
// unlikely) are broken by peer id so the order is total.
std::vector<PeerId> RendezvousOrder(std::string_view key, std::vector<PeerId> peers);

// The representatives to try for `key` among `voters`: rendezvous order, but
// voters `topology` shows down go last (in their rendezvous order), so a
// node known to be down is tried only when every other one failed. Down is a
// liveness hint: it only reorders, never removes.
std::vector<PeerId> RepresentativeOrder(std::string_view key, std::vector<PeerId> voters,
                                        const Topology& topology);

// When to ask the next representative too, if the one asked at `now` (within
// an attempt that ends at `attempt_deadline`, with `untried` candidates
// left after it) has not answered: half the time left, so a silent one costs
// at most that and the next still has the other half. Each call keeps the
// whole attempt as its deadline, so a slow but live representative's answer
// still counts. nullopt when there is no one left to ask.
std::optional<TimeMs> RepresentativeHedgeAt(TimeMs now, TimeMs attempt_deadline, size_t untried);

}  // namespace replicator::core
