#include "core/types.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"

namespace replicator::core {

std::string ProposalId::ToString() const {
  return absl::StrCat(coordinator, "/", incarnation, "/", sequence);
}

bool Configuration::Has(const PeerId& id) const {
  return std::binary_search(voters.begin(), voters.end(), id);
}

const Member* Topology::Find(const PeerId& id) const {
  for (const Member& m : members) {
    if (m.id == id) return &m;
  }
  return nullptr;
}

std::vector<PeerId> Topology::Voters(const ClusterId& cluster) const {
  std::vector<PeerId> out;
  for (const Member& m : members) {
    if (m.cluster == cluster && m.state != PeerState::kCatchingUp) out.push_back(m.id);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<ClusterId> Topology::Clusters() const {
  std::set<ClusterId> clusters;
  for (const Member& m : members) clusters.insert(m.cluster);
  return {clusters.begin(), clusters.end()};
}

namespace {

// FNV-1a then a SplitMix64 finaliser: stable across processes and builds,
// unlike absl::Hash, which is seeded per process.
uint64_t StableHash(uint64_t seed, std::string_view bytes) {
  uint64_t h = 1469598103934665603ULL ^ seed;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  h += 0x9e3779b97f4a7c15ULL;
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

}  // namespace

uint32_t BucketOf(const Key& key) {
  return static_cast<uint32_t>(StableHash(0x6275636b6574ULL, key) % kDigestBuckets);
}

uint64_t EntryHash(const Key& key, const Value& value) {
  // Length-prefix the key so ("ab","c") and ("a","bc") differ.
  return StableHash(StableHash(key.size(), key), value);
}

std::optional<std::string> ValidateKey(const Limits& limits, const Key& key) {
  if (key.empty()) return "key is empty; keys are 1.." + std::to_string(limits.max_key_bytes) +
                          " bytes";
  if (key.size() > limits.max_key_bytes) {
    return absl::StrCat("key is ", key.size(), " bytes; the limit is ", limits.max_key_bytes,
                        " bytes");
  }
  return std::nullopt;
}

std::optional<std::string> ValidatePut(const Limits& limits, const Key& key, const Value& value) {
  if (auto bad = ValidateKey(limits, key)) return bad;
  if (value.size() > limits.max_value_bytes) {
    return absl::StrCat("value is ", value.size(), " bytes; the limit is ",
                        limits.max_value_bytes, " bytes");
  }
  return std::nullopt;
}

std::optional<std::string> ValidateClusterId(const ClusterId& id) {
  if (id.empty() || id.size() > 64) {
    return absl::StrCat("cluster id '", id, "' must be 1..64 characters");
  }
  for (char c : id) {
    bool good = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '.' || c == '-';
    if (!good) {
      return absl::StrCat("cluster id '", id, "' may hold only A-Z a-z 0-9 _ . -");
    }
  }
  return std::nullopt;
}

}  // namespace replicator::core
