// Quorum arithmetic, written once: what counts as a majority of a cluster's
// voters, and when a majority of ok votes settles a cluster for commit.
// The representative and the coordinator both decide on these rules, so a
// representative never answers before the coordinator could decide.
// Pure; thread-safe.
#pragma once

#include <cstddef>

namespace replicator::core {

// True iff `count` is a strict majority of `of` (false when `of` is 0).
inline bool IsMajority(size_t count, size_t of) { return 2 * count > of; }

// A strict majority of `voters` answering ok to a reserve settles that
// cluster for commit however the remaining votes fall: another commit of
// the key needs its own majority, and the two meet at a voter that would
// have answered stored or reserved. So a vote count may stop waiting here.
inline bool OkMajorityIsFinal(size_t oks, size_t voters) { return IsMajority(oks, voters); }

}  // namespace replicator::core
