// storage-fill: adds committed keys straight into the RocksDB data dir of a
// stopped node, for benchmarks that need millions of keys in seconds rather
// than the minutes that many puts take (bench/restart-run). Keys are
// deterministic ("fill-" + zero-padded index, --key-bytes long; values of
// --value-bytes derived from the index), so filling every node of a
// federation with the same --keys gives the state a run of that many puts
// would have left. Writes go through the ordinary storage API (write-once
// checks, bucket summaries) without syncing: they survive the process, not
// a machine crash, which is all a benchmark needs.
//
//   storage-fill --db=DATA_DIR/db --keys=1000000 [--key-bytes=16] [--value-bytes=100]
//   storage-fill --db=DATA_DIR/db-shard-1 --shard=1 --shards=2 --keys=1000000
//
// With --shards, only the keys of shard --shard (core/shard.h) are added:
// run it once per shard's storage of a node started with that --shards.
//
// Exit codes: 0 filled, 1 a storage error, 2 usage.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <future>
#include <memory>
#include <string>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "core/shard.h"
#include "storage/storage.h"
#include "util/dashed_flags.h"

ABSL_FLAG(std::string, db, "",
          "The node's RocksDB directory (DATA_DIR/db); the node must be stopped.");
ABSL_FLAG(int64_t, keys, 1000000, "Committed keys to add (fill-0 .. fill-(keys-1)).");
ABSL_FLAG(int64_t, key_bytes, 16, "Bytes per key (at least 16).");
ABSL_FLAG(int64_t, value_bytes, 100, "Bytes per value.");
ABSL_FLAG(int64_t, batch, 10000, "Keys per storage write.");
ABSL_FLAG(int64_t, shards, 1, "The node's --shards; only keys of --shard are added.");
ABSL_FLAG(int64_t, shard, 0, "The shard whose storage --db is (0 to --shards - 1).");

namespace {

namespace storage = replicator::storage;
namespace core = replicator::core;

std::string KeyOf(int64_t i, int64_t bytes) {
  std::string key = absl::StrFormat("fill-%011d", i);
  key.resize(static_cast<size_t>(bytes), '.');
  return key;
}

std::string ValueOf(int64_t i, int64_t bytes) {
  std::string value = absl::StrFormat("value-%d-", i);
  value.resize(static_cast<size_t>(bytes), static_cast<char>('a' + i % 26));
  return value;
}

absl::Status WriteAndWait(storage::Storage& s, core::WriteBatch batch) {
  std::promise<absl::Status> done;
  s.Write(std::move(batch), [&done](absl::Status status) { done.set_value(std::move(status)); });
  return done.get_future().get();
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "storage-fill --db=DATA_DIR/db --keys=N: adds N committed keys to a stopped node's data "
      "dir, for benchmarks.");
  replicator::util::DashedFlags dashed(argc, argv);
  absl::ParseCommandLine(dashed.argc(), dashed.argv());
  const std::string db = absl::GetFlag(FLAGS_db);
  const int64_t keys = absl::GetFlag(FLAGS_keys);
  const int64_t key_bytes = absl::GetFlag(FLAGS_key_bytes);
  const int64_t value_bytes = absl::GetFlag(FLAGS_value_bytes);
  const int64_t batch_keys = absl::GetFlag(FLAGS_batch);
  const int64_t shards = absl::GetFlag(FLAGS_shards);
  const int64_t shard = absl::GetFlag(FLAGS_shard);
  if (db.empty() || keys < 0 || key_bytes < 16 || key_bytes > 1024 || value_bytes < 0 ||
      batch_keys <= 0 || shards < 1 || shards > int64_t{core::kMaxShards} || shard < 0 ||
      shard >= shards) {
    std::fprintf(stderr,
                 "storage-fill: need --db, --keys >= 0, 16 <= --key-bytes <= 1024, "
                 "--value-bytes >= 0, --batch > 0, 1 <= --shards <= %u, 0 <= --shard < --shards\n",
                 core::kMaxShards);
    return 2;
  }
  storage::RocksDbOptions options;
  options.sync = false;  // one synced write at the end makes it all durable
  options.verify = storage::Verify::kOff;
  // Leaves the dir as a long-lived node's would be, compacted, so that the
  // benchmark that opens it does not time its compaction too.
  options.compact_on_close = true;
  auto opened = storage::OpenRocksDbStorage(db, options);
  if (!opened.ok()) {
    std::fprintf(stderr, "storage-fill: %s\n", opened.status().ToString().c_str());
    return 1;
  }
  const auto started = std::chrono::steady_clock::now();
  const uint64_t before = (*opened)->CommittedCount();
  for (int64_t next = 0; next < keys;) {
    core::WriteBatch batch;
    for (int64_t n = 0; n < batch_keys && next < keys; ++next) {
      std::string key = KeyOf(next, key_bytes);
      if (core::ShardOf(key, static_cast<uint32_t>(shards)) != static_cast<uint32_t>(shard)) {
        continue;
      }
      batch.mutations.push_back(
          core::PutCommitted{std::move(key), ValueOf(next, value_bytes), 0, {}});
      ++n;
    }
    if (absl::Status s = WriteAndWait(**opened, std::move(batch)); !s.ok()) {
      std::fprintf(stderr, "storage-fill: %s\n", s.ToString().c_str());
      return 1;
    }
  }
  const uint64_t after = (*opened)->CommittedCount();
  opened->reset();  // closes the database, flushing and compacting it
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::printf("storage-fill: %s holds %llu committed keys (%llu added) in %.1f s\n", db.c_str(),
              static_cast<unsigned long long>(after),
              static_cast<unsigned long long>(after - before), seconds);
  return 0;
}
