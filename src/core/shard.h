// Shard: the rule for which keys one engine owns when a node runs several
// (docs/design.md, "Shards"). A node started with --shards=N runs N
// engines, each with its own storage, reservation table and configurations;
// shard i owns the keys whose bucket (BucketOf, the catch-up bucket) b
// satisfies b * N / kDigestBuckets == i, a contiguous bucket range. Every
// node of a federation runs the same N, and shard i of one node talks only
// to shard i of the others: so each key has one engine per node, and the
// write-once rule of that engine is the key's.
//
// System keys (core/founding.h) belong to every shard: each shard is a
// whole federation of engines and founds and removes clusters by its own
// system keys. So a shard's storage may hold system keys of buckets it
// does not own, and its catch-up pulls every bucket that differs; the
// entries it accepts from a pull are still only those it owns.
//
// An engine refuses a request, put or get whose key it does not own
// (KeyOutsideShard), and a catch-up round fails on a page or a digest
// reservation of one: a routing mistake, or a peer that runs another shard
// count, must fail loudly rather than put one key in two engines, where two
// values could be committed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "core/messages.h"
#include "core/types.h"

namespace replicator::core {

// The most shards a node may run: each is a RocksDB instance and a set of
// connections to every peer.
inline constexpr uint32_t kMaxShards = 256;

struct ShardRange {
  uint32_t shard = 0;
  uint32_t shards = 1;

  // The buckets owned, [first_bucket(), end_bucket()).
  uint32_t first_bucket() const;
  uint32_t end_bucket() const;
  bool OwnsBucket(uint32_t bucket) const;
  // Whether this shard owns `key`: its bucket is in range, or it is a
  // system key.
  bool Owns(const Key& key) const;
};

// The shard of `shards` that owns bucket `bucket`.
uint32_t ShardOfBucket(uint32_t bucket, uint32_t shards);
// The shard of `shards` that owns `key` (a system key: shard 0, whose
// engine answers clients' gets of system keys).
uint32_t ShardOf(const Key& key, uint32_t shards);

// Empty when `shards` is a shard count a node may run, else why not.
std::optional<std::string> ValidateShardCount(uint32_t shards);

// Empty when every key `request` names is owned by `range`, else a message
// naming the key's shard. Requests that name no key (configurations,
// catch-up, a resolve from a build that sent none) pass.
std::optional<std::string> KeyOutsideShard(const ShardRange& range, const Request& request);
// The same for a client's put or get of `key`.
std::optional<std::string> KeyOutsideShard(const ShardRange& range, const Key& key);

}  // namespace replicator::core
