#include "core/backoff.h"

#include <algorithm>
#include <tuple>

namespace replicator::core {

TimeMs ContentionBackoff(const ProposalId& self, int attempt,
                         const std::vector<ProposalId>& holders, TimeMs attempt_took,
                         TimeMs base_ms, std::mt19937_64& rng) {
  // Backoff is measured in attempts, not fixed milliseconds: an attempt that
  // crossed clusters in 80 ms leaves reservations behind for about as long
  // again while its aborts travel, so any retry sooner than that collides.
  const TimeMs unit = std::max<TimeMs>({1, base_ms, attempt_took});
  // Priority to the oldest put (wait-die): it retries as soon as the younger
  // racers' aborts have landed; younger ones wait until the oldest has had
  // time to finish, and longer with every attempt, so a race converges on
  // one winner. `started_ms` comes from each coordinator's own wall clock;
  // the comparison steers liveness, never safety.
  auto age = [](const ProposalId& p) { return std::tie(p.started_ms, p); };
  bool oldest = std::all_of(holders.begin(), holders.end(),
                            [&](const ProposalId& h) { return age(self) < age(h); });
  if (oldest) return std::uniform_int_distribution<TimeMs>(unit / 2, unit)(rng);
  const TimeMs lo = 2 * unit;
  const TimeMs hi = lo + unit * (TimeMs{1} << std::min(attempt, 5));
  return std::uniform_int_distribution<TimeMs>(lo, hi)(rng);
}

}  // namespace replicator::core
