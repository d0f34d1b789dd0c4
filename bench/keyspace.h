// Keyspace: the bench's keys and values, named by numbers so that the bench
// can remember millions of them in a few bytes each and regenerate the bytes
// when it checks an answer. A run tag (from the seed) makes the keys and
// values of one run distinct from every other run's on a shared deployment.
// Immutable after construction; usable from any thread.
//
//   Keyspace ks(/*seed=*/42, /*key_size=*/16, /*value_size=*/100);
//   ks.Key(7)    -> "1f2e3d4c00000007"  (run tag, then the key index in hex)
//   ks.Value(9)  -> "1f2e3d4c00000009jjjj..." (run tag, put id, filler)
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>

#include "fmt/format.h"

namespace replicator::bench {

class Keyspace {
 public:
  // Keys are hex text: an 8-digit run tag, then the key index in hex
  // (zero-padded; '-' fills keys longer than 24 bytes). A value starts with
  // the run tag and the put id in hex, so every put's value differs from
  // every other's when value_size >= 16 (shorter values are truncated).
  static constexpr int kMinKeySize = 16;

  Keyspace(uint64_t seed, int key_size, int value_size)
      : tag_(static_cast<uint32_t>(Mix(seed) >> 32)),
        key_size_(key_size < kMinKeySize ? kMinKeySize : key_size),
        value_size_(value_size < 0 ? 0 : value_size) {}

  std::string Key(uint64_t index) const {
    int digits = key_size_ - 8 < 16 ? key_size_ - 8 : 16;
    std::string key = fmt::format("{:08x}", tag_);
    key.append(static_cast<size_t>(key_size_ - 8 - digits), '-');
    key += fmt::format("{:0{}x}", index, digits);
    return key;
  }

  std::string Value(uint64_t put_id) const {
    std::string value(static_cast<size_t>(value_size_), static_cast<char>('a' + put_id % 26));
    std::string head = fmt::format("{:08x}{:08x}", tag_, put_id & 0xffffffffu);
    value.replace(0, std::min(head.size(), value.size()), head, 0,
                  std::min(head.size(), value.size()));
    return value;
  }

  // Distinct keys this key size can name.
  uint64_t capacity() const {
    int digits = key_size_ - 8 < 16 ? key_size_ - 8 : 16;
    return digits >= 16 ? UINT64_MAX : uint64_t{1} << (4 * digits);
  }
  int key_size() const { return key_size_; }
  int value_size() const { return value_size_; }

  // SplitMix64: a well-mixed 64-bit function of x (for per-operation random
  // streams derived from the seed).
  static uint64_t Mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  }

 private:
  uint32_t tag_;
  int key_size_;
  int value_size_;
};

}  // namespace replicator::bench
