// Storage: one node's durable state (committed entries, reservations, Paxos
// acceptor records, configurations and their acceptor records, an
// incarnation counter) behind one interface, with a
// RocksDB implementation for production and an in-memory one for simulation.
//
// Thread rules: one storage thread per instance group-commits writes. Write()
// may be called from any thread; its `done` runs on the storage thread, so a
// caller posts back to its own reactor. The reads (GetEntry, GetEntries, Digest,
// ForEachInBucket, CommittedCount), NextIncarnation and
// stats are thread-safe and see every batch whose `done` has run.
//
//   auto storage = OpenRocksDbStorage("/var/lib/replicatord/db");
//   core::DurableState state = (*storage)->Recover().value();
//   (*storage)->Write(std::move(batch), [](absl::Status s) { /* post to reactor */ });
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/engine.h"
#include "core/messages.h"
#include "core/types.h"
#include "util/histogram.h"

namespace replicator::storage {

// Counters since open; each read of a field is atomic, the struct as a whole
// is not a consistent snapshot.
struct StorageStats {
  uint64_t batches_written = 0;  // group writes applied (one atomic write each), <= writes
  uint64_t syncs = 0;            // synced writes to disk (0 for in-memory storage)
  uint64_t mutations = 0;        // mutations applied
  uint64_t committed_keys = 0;   // distinct committed keys held now (CommittedCount)
  uint64_t writes = 0;           // Write() requests whose `done` has run, ok or not
  uint64_t write_errors = 0;     // group writes that failed (each failed all its requests)
  // Write() requests refused alone because a PutCommitted would change a
  // committed value (write-once); each applied nothing and got AlreadyExists.
  uint64_t writes_refused = 0;
  // RocksDB: acceptor records kept in the write log now (those of the puts
  // in flight), and those moved to RocksDB because they outlived a segment.
  uint64_t log_acceptor_records = 0;
  uint64_t acceptor_records_moved = 0;
  // RocksDB: catch-up pages written as table files and ingested.
  uint64_t pages_ingested = 0;
};

class Storage : public core::CommittedView {
 public:
  // Runs exactly once per Write(), on the storage thread. Must not throw and
  // must not block for long: it delays every later group.
  using Done = std::function<void(absl::Status)>;

  // Drains queued writes (their `done` still runs), then stops the storage
  // thread. No Write() may begin concurrently with or after destruction.
  ~Storage() override;

  // Reservations now durable, in key order of their records, and every
  // configuration and configuration acceptor record, in (cluster, epoch)
  // order (acceptor records of decision registers are read on demand
  // through GetAcceptor, and checked by RocksDbOptions::verify). Call before
  // the engine starts writing; Reservation::since is 0 (it is local-clock
  // time and is not stored). Decode failures are DataLossError naming the
  // record.
  virtual absl::StatusOr<core::DurableState> Recover() = 0;

  // Applies `batch` atomically together with every other batch taken in the
  // same group, synced to disk (RocksDbOptions::sync), then runs
  // done(OkStatus()). Batches apply in the order Write() was called (as
  // observed under the queue lock), mutations in their order, so a later
  // mutation of a reservation or acceptor record wins. On failure no mutation
  // of the group applies and every request of the group gets the error.
  //
  // Committed entries are write-once: a PutCommitted of a key already
  // committed (by an earlier batch, or earlier in this one) with the same
  // value changes nothing, the stored request id included. One with a
  // different value refuses its batch alone: none of the batch's mutations
  // apply, its `done` gets AlreadyExistsError naming the key, the rest of
  // the group is written. The engine never asks for that (DESIGN.md
  // invariant 1); storage refuses rather than trust it. Configurations are
  // write-once the same way: a PutConfig of a (cluster, epoch) already held
  // with the same voters changes nothing, one with other voters refuses its
  // batch alone with AlreadyExistsError naming the configuration. The one
  // exception is the cluster's generation, which a record written before it
  // was known holds as 0: a PutConfig with the same voters fills it in,
  // and one with another known generation refuses its batch the same way. A
  // PutConfigAcceptor replaces the record of its (cluster, epoch).
  virtual void Write(core::WriteBatch batch, Done done) = 0;

  // core::CommittedView. GetEntry: the committed value and request id of
  // `key`; GetEntries: the same of many keys (one MultiGet in RocksDB).
  // Digest: core::kDigestBuckets values, kept up to date as commits apply
  // (O(kDigestBuckets) per call, a copy). ForEachInBucket: the bucket's
  // entries with key > `after` in unsigned byte order, until `visit`
  // returns false; nothing for bucket >= kDigestBuckets; `visit` may call
  // into this storage, but not destroy it. Digest and a bucket scan are not
  // one snapshot: a commit may land between them. An I/O error or corrupt
  // record while reading aborts the process: a node that cannot read its
  // committed set must not vote or serve catch-up.
  std::optional<core::CommittedEntry> GetEntry(const core::Key& key) const override = 0;
  std::vector<uint64_t> Digest() const override = 0;
  void ForEachInBucket(uint32_t bucket, const core::Key& after,
                       const std::function<bool(const core::Key&, const core::CommittedEntry&)>&
                           visit) const override = 0;

  // Number of distinct committed keys. O(1).
  virtual uint64_t CommittedCount() const = 0;

  // A number this data dir never returned before, >= 1, strictly greater
  // than every earlier one (a durable counter, synced before it returns).
  // Used as ProposalId::incarnation. Blocks the calling thread for one sync.
  virtual absl::StatusOr<uint64_t> NextIncarnation() = 0;

  virtual StorageStats stats() const = 0;

  // Seconds each synced group write took (any thread may read it); null for
  // storage that never syncs.
  virtual const util::Histogram* fsync_duration() const { return nullptr; }
};

// In-memory storage for simulation and tests: loses everything when
// destroyed. Same threading model (a storage thread completes writes).
std::unique_ptr<Storage> OpenMemoryStorage();

// When RocksDB storage reads every committed and acceptor record to check
// them (each decodes, each committed record lies in its key's bucket, and
// every bucket's count and digest match its summary record). Open itself
// reads only the bucket summaries, so its cost does not grow with the keys.
enum class Verify {
  kAtOpen,      // before OpenRocksDbStorage returns; damage fails the open (DataLoss)
  kBackground,  // on a low-priority thread after open; damage stops the process (exit 1)
  kOff,
};

struct RocksDbOptions {
  // fdatasync every group write (its write log frame). Off only in
  // benchmarks: without it a machine crash can lose acknowledged writes.
  bool sync = true;
  size_t block_cache_bytes = 64 << 20;
  Verify verify = Verify::kAtOpen;
  // Flush the memtables when the storage is destroyed, so that the next
  // open has no write log to replay (only the reservations held). Off only
  // in tests that need the log a crash leaves behind.
  bool flush_on_close = true;
  // After that flush, compact the whole key range into the bottom level
  // (RocksDB CompactRange), waiting for it. For tools that write a data dir
  // in bulk for a node to open later (bench/storage_fill.cc): the node then
  // opens what a long-lived node holds, not a pile of level-0 files whose
  // compaction would run, unmeasured, beside whatever it does next.
  bool compact_on_close = false;
  // The write log's segment size (0: 64 MiB). Each segment begins with a
  // snapshot of the reservations held; once RocksDB has flushed what the
  // older segments hold, they are deleted. Smaller only in tests.
  uint64_t log_segment_bytes = 0;
  // Tests only: a group with a catch-up page fails once its frame is durable
  // and before RocksDB ingests the page's file, as a crash there would leave
  // it (the next open must ingest it).
  bool testing_stop_before_ingest = false;
  // Runs once every record was read and found sound: kAtOpen before open
  // returns, kBackground on the verifying thread (not if the storage is
  // destroyed first). Damage does not call it (kAtOpen: the open fails;
  // kBackground: the process stops, printing what is damaged).
  std::function<void(uint64_t committed_keys, double seconds)> verified;
};

// Opens or creates the database in `dir` (creating the dir). Errors name the
// dir: FailedPreconditionError when another process (or another open
// instance) holds it, PermissionDeniedError when it cannot be read,
// DataLossError for a corrupt or unversioned database, a corrupt bucket
// summary, or (Verify::kAtOpen) any damaged committed or acceptor record,
// FailedPreconditionError for a format version this build does not read
// (older or newer; the message names both versions). A data dir of an older
// version whose records this build reads as they are
// (internal::kOldestFormatVersion) is upgraded at open: its committed
// records are scanned once to write the bucket summaries, and its format
// record is rewritten with them, after which the older build refuses it.
absl::StatusOr<std::unique_ptr<Storage>> OpenRocksDbStorage(const std::string& dir,
                                                            RocksDbOptions options = {});

}  // namespace replicator::storage
