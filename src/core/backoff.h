// Contention backoff: how long a put whose attempt lost a race on its key
// waits before its next attempt. Wait-die by proposal age, in units of how
// long the lost attempt took, so a race of many puts converges on one
// winner whatever the network's latency. Pure but for the random source
// passed in; thread-compatible.
#pragma once

#include <random>
#include <vector>

#include "core/types.h"

namespace replicator::core {

// `self` is the attempt that lost, its `attempt`-th (1-based); `holders`
// are the proposals that held the key against it; `attempt_took` is how
// long the attempt ran; `base_ms` the smallest unit.
TimeMs ContentionBackoff(const ProposalId& self, int attempt,
                         const std::vector<ProposalId>& holders, TimeMs attempt_took,
                         TimeMs base_ms, std::mt19937_64& rng);

}  // namespace replicator::core
