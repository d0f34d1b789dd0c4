#include "core/shard.h"

#include <type_traits>
#include <variant>

#include "absl/strings/str_cat.h"
#include "core/founding.h"

namespace replicator::core {
namespace {

// The first bucket of shard `shard`: the least b with b * shards /
// kDigestBuckets >= shard, so that ShardOfBucket and the ranges agree.
uint32_t FirstBucket(uint32_t shard, uint32_t shards) {
  return static_cast<uint32_t>((static_cast<uint64_t>(shard) * kDigestBuckets + shards - 1) /
                               shards);
}

// The key a request is about, or null when it names none.
const Key* KeyOf(const Request& request) {
  const ReplicaOp* op = nullptr;
  if (const auto* h = std::get_if<HandleRequest>(&request)) op = &h->op;
  if (const auto* f = std::get_if<ForwardRequest>(&request)) op = &f->op;
  if (op != nullptr) return std::visit([](const auto& o) { return &o.key; }, *op);
  if (const auto* a = std::get_if<AcceptRequest>(&request)) return &a->key;
  if (const auto* p = std::get_if<PrepareRequest>(&request)) return &p->key;
  if (const auto* r = std::get_if<ReadRequest>(&request)) return &r->key;
  if (const auto* s = std::get_if<ResolveRequest>(&request)) return &s->key;
  return nullptr;
}

}  // namespace

uint32_t ShardRange::first_bucket() const { return FirstBucket(shard, shards); }
uint32_t ShardRange::end_bucket() const { return FirstBucket(shard + 1, shards); }

bool ShardRange::OwnsBucket(uint32_t bucket) const {
  return shards <= 1 || ShardOfBucket(bucket, shards) == shard;
}

bool ShardRange::Owns(const Key& key) const {
  return shards <= 1 || IsSystemKey(key) || OwnsBucket(BucketOf(key));
}

uint32_t ShardOfBucket(uint32_t bucket, uint32_t shards) {
  if (shards <= 1) return 0;
  return static_cast<uint32_t>(static_cast<uint64_t>(bucket) * shards / kDigestBuckets);
}

uint32_t ShardOf(const Key& key, uint32_t shards) {
  if (shards <= 1 || IsSystemKey(key)) return 0;
  return ShardOfBucket(BucketOf(key), shards);
}

std::optional<std::string> ValidateShardCount(uint32_t shards) {
  if (shards >= 1 && shards <= kMaxShards) return std::nullopt;
  return absl::StrCat("a node runs 1 to ", kMaxShards, " shards, not ", shards);
}

std::optional<std::string> KeyOutsideShard(const ShardRange& range, const Request& request) {
  const Key* key = KeyOf(request);
  // An empty key names none (an accept, prepare or resolve from an older
  // build); a request's key is otherwise never empty (core/validate.h).
  if (key == nullptr || key->empty()) return std::nullopt;
  return KeyOutsideShard(range, *key);
}

std::optional<std::string> KeyOutsideShard(const ShardRange& range, const Key& key) {
  if (range.Owns(key)) return std::nullopt;
  return absl::StrCat("the key belongs to shard ", ShardOf(key, range.shards), " of ", range.shards,
                      ", not to shard ", range.shard,
                      ": every node of a federation must run the same --shards");
}

}  // namespace replicator::core
