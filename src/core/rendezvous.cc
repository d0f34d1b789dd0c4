#include "core/rendezvous.h"

#include <algorithm>

namespace replicator::core {
namespace {

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ULL;
constexpr uint64_t kFnvPrime = 0x100000001b3ULL;

uint64_t Fnv1a(uint64_t h, std::string_view bytes) {
  for (unsigned char c : bytes) {
    h ^= c;
    h *= kFnvPrime;
  }
  return h;
}

// SplitMix64 finalizer: spreads FNV's weak low bits over the whole word.
uint64_t Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

uint64_t RendezvousWeight(std::string_view key, std::string_view peer) {
  // The key's length is hashed first so that ("ab", "c") and ("a", "bc")
  // do not collide by construction.
  uint64_t h = kFnvOffset;
  uint64_t len = key.size();
  for (int i = 0; i < 8; ++i) {
    h ^= (len >> (8 * i)) & 0xff;
    h *= kFnvPrime;
  }
  h = Fnv1a(h, key);
  h = Fnv1a(h, peer);
  return Mix(h);
}

std::vector<PeerId> RendezvousOrder(std::string_view key, std::vector<PeerId> peers) {
  std::vector<std::pair<uint64_t, PeerId>> weighted;
  weighted.reserve(peers.size());
  for (PeerId& p : peers) {
    uint64_t w = RendezvousWeight(key, p);
    weighted.emplace_back(w, std::move(p));
  }
  std::sort(weighted.begin(), weighted.end(), [](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first > b.first;
    return a.second < b.second;
  });
  std::vector<PeerId> out;
  out.reserve(weighted.size());
  for (auto& [w, p] : weighted) out.push_back(std::move(p));
  return out;
}

std::vector<PeerId> RepresentativeOrder(std::string_view key, std::vector<PeerId> voters,
                                        const Topology& topology) {
  std::vector<PeerId> order = RendezvousOrder(key, std::move(voters));
  std::stable_partition(order.begin(), order.end(), [&](const PeerId& p) {
    const Member* m = topology.Find(p);
    return m == nullptr || m->state != PeerState::kDown;
  });
  return order;
}

std::optional<TimeMs> RepresentativeHedgeAt(TimeMs now, TimeMs attempt_deadline,
                                            size_t untried) {
  if (untried == 0 || attempt_deadline <= now) return std::nullopt;
  return now + (attempt_deadline - now) / 2;
}

}  // namespace replicator::core
