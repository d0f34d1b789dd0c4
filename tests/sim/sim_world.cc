#include "sim/sim_world.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace replicator::sim {

World::World(SimConfig config)
    : config_(std::move(config)), rng_(config_.seed), history_(&now_, config_.trace) {
  const int per_cluster = config_.nodes_per_cluster + std::max(0, config_.fault.spares);
  const int n = config_.total_clusters() * per_cluster;
  nodes_.resize(n);
  for (int i = 0; i < n; ++i) {
    SimNode& node = nodes_[i];
    node.index = i;
    node.cluster = i / per_cluster;
    node.spare = i % per_cluster >= config_.nodes_per_cluster;
    node.late_cluster = node.cluster >= config_.clusters;
    node.joined = !node.spare && !node.late_cluster;
    node.id = absl::StrCat("c", node.cluster, "n", i % per_cluster);
  }
}

namespace {
struct Later {
  template <typename E>
  bool operator()(const E& a, const E& b) const {
    return a.time != b.time ? a.time > b.time : a.seq > b.seq;
  }
};
}  // namespace

void World::At(core::TimeMs time, std::function<void()> fn) {
  queue_.push_back(Event{std::max(time, now_), next_seq_++, std::move(fn)});
  std::push_heap(queue_.begin(), queue_.end(), Later{});
}

std::function<void()> World::PopNext() {
  std::pop_heap(queue_.begin(), queue_.end(), Later{});
  Event event = std::move(queue_.back());
  queue_.pop_back();
  now_ = event.time;
  return std::move(event.fn);
}

uint64_t World::Uniform(uint64_t lo, uint64_t hi) {
  if (hi <= lo) return lo;
  const unsigned __int128 span = static_cast<unsigned __int128>(hi - lo) + 1;
  return lo + static_cast<uint64_t>((static_cast<unsigned __int128>(rng_()) * span) >> 64);
}

bool World::Chance(double p) {
  if (p <= 0) return false;
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53 < p;
}

core::TimeMs World::Exponential(core::TimeMs mean) {
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
  return 1 + static_cast<core::TimeMs>(-std::log1p(-u) * static_cast<double>(mean));
}

}  // namespace replicator::sim
