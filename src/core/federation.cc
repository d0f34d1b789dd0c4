#include "core/federation.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/quorum.h"

namespace replicator::core {

Vote Federation::Refusal(uint64_t request_generation) const {
  Vote v = ctx_.MakeVote(Vote::Kind::kWrongGeneration);
  v.generation = membership_.generation();
  v.configs = membership_.FoundedAfter(request_generation);
  return v;
}

bool Federation::settled() const {
  if (ctx_.config().unsafe_membership == EngineConfig::UnsafeMembership::kSkipFederationSettle) {
    return true;
  }
  // A node that knows no configuration of its cluster (its cluster is not
  // founded yet, or it has not learned its founding) knows nothing: a peer
  // of its cluster must not inherit a settle from it.
  if (membership_.Current().epoch == 0) return false;
  // The first cluster, or one whose generation is unknown (named before
  // generations existed): no cluster is older, nothing to learn.
  return membership_.own_generation() <= 1 || settled_;
}

ClusterId Federation::SourceCluster() const {
  const uint64_t own = membership_.own_generation();
  ClusterId oldest;
  uint64_t oldest_generation = std::numeric_limits<uint64_t>::max();
  for (const Configuration& c : membership_.Counted()) {
    if (c.cluster == ctx_.cluster() || c.generation == 0 || c.generation >= own) continue;
    if (c.generation < oldest_generation) {
      oldest_generation = c.generation;
      oldest = c.cluster;
    }
  }
  return oldest;
}

void Federation::OnRound(const PeerId& peer, const ClusterId& cluster, uint64_t epoch,
                         uint64_t generation, bool peer_settled) {
  if (settled()) return;
  if (cluster == ctx_.cluster()) {
    // Inherited: the peer held every such key when it answered, and the
    // round pulled everything it had.
    if (peer_settled) {
      settled_ = true;
      Evaluate();
    }
    return;
  }
  answers_[peer] = Answer{cluster, epoch, generation, peer_settled};
  Evaluate();
}

void Federation::Evaluate() {
  if (!settled_) {
    // A majority of the newest configuration known of one older cluster,
    // each at that epoch (a peer behind or ahead of it counts at its own
    // epoch's configuration only, which the round's learning brings here),
    // at a generation that knows this cluster, settled itself.
    const uint64_t own = membership_.own_generation();
    for (const Configuration& c : membership_.Counted()) {
      if (c.cluster == ctx_.cluster() || c.generation == 0 || c.generation >= own) continue;
      size_t have = 0;
      for (const PeerId& v : c.voters) {
        auto it = answers_.find(v);
        if (it == answers_.end()) continue;
        const Answer& a = it->second;
        have += a.cluster == c.cluster && a.epoch == c.epoch && a.generation >= own && a.settled;
      }
      if (IsMajority(have, c.voters.size())) settled_ = true;
    }
  }
  if (!settled_) return;
  answers_.clear();
  std::vector<Waiter> waiters = std::move(waiters_);
  waiters_.clear();
  for (Waiter& w : waiters) w.fn(true);
}

void Federation::WhenSettled(TimeMs deadline, std::function<void(bool)> fn) {
  if (settled()) {
    fn(true);
    return;
  }
  waiters_.push_back(Waiter{deadline, std::move(fn)});
}

std::string Federation::NotReadyReason() const {
  return absl::StrCat(ctx_.self(), " of cluster ", ctx_.cluster(), " (founded at generation ",
                      membership_.own_generation(),
                      ") is still catching up with the federation: it has not yet learned every "
                      "key committed before its cluster counted");
}

void Federation::Tick(TimeMs now) {
  std::vector<Waiter> due;
  for (auto it = waiters_.begin(); it != waiters_.end();) {
    if (it->deadline <= now) {
      due.push_back(std::move(*it));
      it = waiters_.erase(it);
    } else {
      ++it;
    }
  }
  for (Waiter& w : due) w.fn(false);
}

std::optional<TimeMs> Federation::NextWakeup() const {
  std::optional<TimeMs> next;
  for (const Waiter& w : waiters_) {
    if (!next || w.deadline < *next) next = w.deadline;
  }
  return next;
}

void Federation::CheckInvariants() const {
  RP_CHECK(!settled() || waiters_.empty(), "federation settled with ", waiters_.size(),
           " reads still waiting for it");
  for (const auto& [peer, a] : answers_) {
    RP_CHECK(a.cluster != ctx_.cluster(), "settle answer of ", peer, " of this node's cluster");
  }
}

}  // namespace replicator::core
