// RocksDB Storage: key-prefixed records in the default column family (layout
// in docs/storage.md and record_format.h). A GroupCommitter thread turns each
// wake-up's queued batches into one frame of the storage's own write log
// (write_log.h), synced, so one fsync covers every request of the group;
// then the group's records go to RocksDB without a WAL of its own (the write
// log is it). Reservations, the bucket summaries (each digest bucket's
// key count and digest) and young acceptor records are no RocksDB records:
// they live in the write log and in memory, so a put costs RocksDB its
// committed value alone, not also a reservation, its tombstone, a summary
// and an acceptor record with its tombstone. An acceptor record that
// outlives a segment moves to RocksDB (SpillAcceptors).
// Open replays the log (a snapshot and what followed it), so its cost does
// not grow with the keys; a separate pass (at open or on a background
// thread, RocksDbOptions::verify) reads every record and checks the
// summaries against it. Reads go to RocksDB, which is thread-safe (an
// acceptor record to the log's copy first, under its lock).
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/listener.h"
#include "rocksdb/options.h"
#include "rocksdb/sst_file_writer.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "storage/group_commit.h"
#include "storage/record_format.h"
#include "storage/storage.h"
#include "storage/write_log.h"
#include "storage/write_once.h"

namespace replicator::storage {
namespace {

using internal::AcceptorKey;
using internal::BucketSummary;
using internal::CommittedKey;
using internal::ReservationKey;

// Bits per key of the bloom filter: PutCommitted probes for an existing key
// (write-once check, committed count, digest), and most probes are for new
// keys.
constexpr double kBloomBitsPerKey = 10;

// Reads of the committed set have no error channel (CommittedView); failing
// them quietly could turn "stored" into an "ok" vote, so the node stops. A
// failing disk is no bug: exit (status 1) at once, without running
// destructors, so RocksDB's own teardown cannot assert over the error.
[[noreturn]] void FailStop(std::string_view what, const rocksdb::Status& s) {
  std::fprintf(stderr, "replicator storage: fatal: %.*s: %s\n", static_cast<int>(what.size()),
               what.data(), s.ToString().c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

[[noreturn]] void FailStop(std::string_view what, const absl::Status& s) {
  std::fprintf(stderr, "replicator storage: fatal: %.*s: %s\n", static_cast<int>(what.size()),
               what.data(), s.ToString().c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

// Maps a RocksDB failure to the absl code by how a caller should react.
absl::Status FromRocks(const rocksdb::Status& s, absl::string_view context) {
  std::string message = absl::StrCat(context, ": ", s.ToString());
  if (s.IsCorruption()) return absl::DataLossError(message);
  if (s.IsNoSpace()) return absl::ResourceExhaustedError(message);
  if (s.IsIOError()) return absl::UnavailableError(message);
  return absl::InternalError(message);
}

// An upper bound for iterating one record prefix: the next prefix byte.
std::string PrefixEnd(char prefix) { return std::string(1, static_cast<char>(prefix + 1)); }

// Calls `record(key, value)` for the records in [begin, end) at `snapshot`
// (null: now), in key order, until it returns false or an error (returned).
// Does not fill the block cache: a scan should not evict the hot blocks
// that point reads rely on.
template <typename F>
absl::Status ScanRange(rocksdb::DB* db, const std::string& dir, const std::string& begin,
                       const std::string& end, const rocksdb::Snapshot* snapshot, F record) {
  const rocksdb::Slice upper(end);
  rocksdb::ReadOptions read;
  read.iterate_upper_bound = &upper;
  read.fill_cache = false;
  read.snapshot = snapshot;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(read));
  for (it->Seek(begin); it->Valid(); it->Next()) {
    absl::StatusOr<bool> more = record(it->key().ToStringView(), it->value().ToStringView());
    if (!more.ok()) return more.status();
    if (!*more) return absl::OkStatus();
  }
  if (!it->status().ok()) {
    return FromRocks(it->status(), absl::StrCat("scanning records of ", dir));
  }
  return absl::OkStatus();
}

// Calls `visit(record_key, entry)` for the committed records in [begin, end),
// in record key order, until it returns false. DataLossError for a corrupt
// record.
template <typename F>
absl::Status ScanCommittedRange(rocksdb::DB* db, const std::string& dir, const std::string& begin,
                                const std::string& end, F visit,
                                const rocksdb::Snapshot* snapshot = nullptr) {
  return ScanRange(db, dir, begin, end, snapshot,
                   [&](std::string_view record_key, std::string_view value) -> absl::StatusOr<bool> {
                     absl::StatusOr<internal::CommittedRecordKey> key =
                         internal::ParseCommittedKey(record_key);
                     if (!key.ok()) return key.status();
                     absl::StatusOr<internal::CommittedValueView> entry =
                         internal::DecodeCommitted(record_key, value);
                     if (!entry.ok()) return entry.status();
                     return visit(*key, *entry);
                   });
}

// Calls `record(key, value)` for every record with `prefix`, in key order,
// at `snapshot` (null: now); stops at the first error it returns.
template <typename F>
absl::Status ScanPrefix(rocksdb::DB* db, const std::string& dir, char prefix, F record,
                        const rocksdb::Snapshot* snapshot = nullptr) {
  return ScanRange(db, dir, std::string(1, prefix), PrefixEnd(prefix), snapshot,
                   [&](std::string_view key, std::string_view value) -> absl::StatusOr<bool> {
                     absl::Status s = record(key, value);
                     if (!s.ok()) return s;
                     return true;
                   });
}

// Every bucket's count and digest (kDigestBuckets of them).
using Summaries = std::vector<BucketSummary>;

uint64_t TotalCount(const Summaries& buckets) {
  uint64_t total = 0;
  for (const BucketSummary& b : buckets) total += b.count;
  return total;
}

// The bucket summary records at `snapshot` (null: now); a bucket without one
// is empty. DataLossError for a damaged record.
absl::StatusOr<Summaries> ReadSummaries(rocksdb::DB* db, const std::string& dir,
                                        const rocksdb::Snapshot* snapshot = nullptr) {
  Summaries buckets(core::kDigestBuckets);
  absl::Status s = ScanPrefix(
      db, dir, internal::kSummaryPrefix,
      [&](std::string_view key, std::string_view value) -> absl::Status {
        absl::StatusOr<internal::BucketSummaryRecord> r = internal::DecodeSummary(key, value);
        if (!r.ok()) return r.status();
        buckets[r->bucket] = r->summary;
        return absl::OkStatus();
      },
      snapshot);
  if (!s.ok()) return s;
  return buckets;
}

// The summaries the committed records themselves give, from one scan of the
// whole committed range at `snapshot` (null: now), checking every record: a
// corrupt one, or one outside its key's bucket, is DataLossError. Stops
// with CancelledError once `stop` is set.
absl::StatusOr<Summaries> SummarizeCommitted(rocksdb::DB* db, const std::string& dir,
                                             const rocksdb::Snapshot* snapshot = nullptr,
                                             const std::atomic<bool>* stop = nullptr) {
  // The whole 'c' range, so that a record with a damaged bucket field is
  // found rather than skipped.
  const std::string begin(1, internal::kCommittedPrefix);
  const std::string end = PrefixEnd(internal::kCommittedPrefix);
  Summaries buckets(core::kDigestBuckets);
  uint64_t seen = 0;
  bool stopped = false;
  absl::Status s = ScanCommittedRange(
      db, dir, begin, end,
      [&](const internal::CommittedRecordKey& key, const internal::CommittedValueView& entry) {
        BucketSummary& b = buckets[key.bucket];
        b.digest ^= core::EntryHash(core::Key(key.key), core::Value(entry.value));
        ++b.count;
        if (stop != nullptr && ++seen % 4096 == 0 && stop->load(std::memory_order_relaxed)) {
          stopped = true;
          return false;
        }
        return true;
      },
      snapshot);
  if (!s.ok()) return s;
  if (stopped) return absl::CancelledError("storage closed");
  return buckets;
}

// Decodes every acceptor record at `snapshot` (null: now). Acceptor records
// are read on demand (by recoveries); a damaged one is reported here rather
// than when a recovery first needs it.
absl::Status CheckAcceptors(rocksdb::DB* db, const std::string& dir,
                            const rocksdb::Snapshot* snapshot = nullptr) {
  return ScanPrefix(
      db, dir, internal::kAcceptorPrefix,
      [&](std::string_view key, std::string_view value) -> absl::Status {
        return internal::DecodeAcceptor(key, value).status();
      },
      snapshot);
}

// Reads every committed and acceptor record at `snapshot` and checks them
// against `stored`, the bucket summaries as they were when the snapshot was
// taken (the storage thread writes a group's records and updates the
// summaries under one lock, so the two can be taken together).
// DataLossError naming what is damaged; CancelledError once `stop` is set.
absl::Status VerifyAt(rocksdb::DB* db, const std::string& dir, const rocksdb::Snapshot* snapshot,
                      const Summaries& stored, const std::atomic<bool>* stop,
                      uint64_t* committed_keys) {
  absl::StatusOr<Summaries> found = SummarizeCommitted(db, dir, snapshot, stop);
  if (!found.ok()) return found.status();
  for (uint32_t b = 0; b < core::kDigestBuckets; ++b) {
    const BucketSummary& want = stored[b];
    const BucketSummary& got = (*found)[b];
    if (want == got) continue;
    return absl::DataLossError(absl::StrCat(
        "data dir ", dir, " is damaged: digest bucket ", b, " holds ", got.count,
        " committed keys (digest ", absl::Hex(got.digest, absl::kZeroPad16), ") but its summary ",
        internal::DescribeRecordKey(internal::SummaryKey(b)), " in the write log says ", want.count,
        " (digest ", absl::Hex(want.digest, absl::kZeroPad16),
        "); a committed record was lost or added outside this storage. Restore the data dir "
        "from a backup, or remove the node and add it back empty (it catches up from its "
        "peers)"));
  }
  if (absl::Status s = CheckAcceptors(db, dir, snapshot); !s.ok()) return s;
  *committed_keys = TotalCount(*found);
  return absl::OkStatus();
}

// VerifyAt a snapshot taken now, with nothing writing.
absl::Status VerifyRecords(rocksdb::DB* db, const std::string& dir, const Summaries& stored,
                           uint64_t* committed_keys) {
  const rocksdb::Snapshot* snapshot = db->GetSnapshot();
  absl::Status s = VerifyAt(db, dir, snapshot, stored, nullptr, committed_keys);
  db->ReleaseSnapshot(snapshot);
  return s;
}

// Reservations held: record key ('r' + key) -> encoded reservation.
using Reservations = absl::flat_hash_map<std::string, std::string>;

// Acceptor records kept in the write log: record key ('a' + proposal
// identity) -> the encoded record, and the write log segment it was last
// written in. One that outlives the segment after it moves to RocksDB
// (RocksDbStorage::SpillAcceptors), so the log holds only young ones:
// those of the puts in flight.
struct LogAcceptor {
  std::string value;
  uint64_t segment = 0;
};
using LogAcceptors = absl::flat_hash_map<std::string, LogAcceptor>;

// RocksDB writes carry no WAL of their own: the write log is it.
rocksdb::WriteOptions UnloggedWrite() {
  rocksdb::WriteOptions write;
  write.disableWAL = true;
  return write;
}

// Applies the records of a write log frame that live in the log only (a
// rocksdb::WriteBatch encoding), of segment `segment`: reservation puts and
// deletes to `held`, acceptor record puts and deletes to `acceptors`,
// bucket summaries to `buckets`; a snapshot replaces all three. A summary
// or an acceptor record that does not decode is DataLossError.
absl::Status ApplyLogRecords(std::string_view encoded, bool snapshot, uint64_t segment,
                             Reservations* held, LogAcceptors* acceptors, Summaries* buckets,
                             std::vector<std::string>* ingests) {
  class Handler : public rocksdb::WriteBatch::Handler {
   public:
    Handler(uint64_t segment, Reservations* held, LogAcceptors* acceptors, Summaries* buckets,
            std::vector<std::string>* ingests)
        : segment_(segment),
          held_(held),
          acceptors_(acceptors),
          buckets_(buckets),
          ingests_(ingests) {}
    rocksdb::Status PutCF(uint32_t, const rocksdb::Slice& key,
                          const rocksdb::Slice& value) override {
      if (!key.empty() && key[0] == internal::kIngestPrefix && ingests_ != nullptr) {
        ingests_->push_back(key.ToString().substr(1));
        return rocksdb::Status::OK();
      }
      if (!key.empty() && key[0] == internal::kSummaryPrefix) {
        absl::StatusOr<internal::BucketSummaryRecord> r =
            internal::DecodeSummary(key.ToStringView(), value.ToStringView());
        if (!r.ok()) return rocksdb::Status::Corruption(std::string(r.status().message()));
        (*buckets_)[r->bucket] = r->summary;
        return rocksdb::Status::OK();
      }
      if (!key.empty() && key[0] == internal::kAcceptorPrefix) {
        absl::Status s =
            internal::DecodeAcceptor(key.ToStringView(), value.ToStringView()).status();
        if (!s.ok()) return rocksdb::Status::Corruption(std::string(s.message()));
        (*acceptors_)[key.ToString()] = LogAcceptor{value.ToString(), segment_};
        return rocksdb::Status::OK();
      }
      if (key.empty() || key[0] != internal::kReservationPrefix) return Bad(key);
      (*held_)[key.ToString()] = value.ToString();
      return rocksdb::Status::OK();
    }
    rocksdb::Status DeleteCF(uint32_t, const rocksdb::Slice& key) override {
      if (!key.empty() && key[0] == internal::kAcceptorPrefix) {
        acceptors_->erase(key.ToString());
        return rocksdb::Status::OK();
      }
      if (key.empty() || key[0] != internal::kReservationPrefix) return Bad(key);
      held_->erase(key.ToString());
      return rocksdb::Status::OK();
    }

   private:
    static rocksdb::Status Bad(const rocksdb::Slice& key) {
      return rocksdb::Status::Corruption(absl::StrCat(
          "record ", internal::DescribeRecordKey(key.ToStringView()), " among the log's records"));
    }
    uint64_t segment_;
    Reservations* held_;
    LogAcceptors* acceptors_;
    Summaries* buckets_;
    std::vector<std::string>* ingests_;
  };
  if (snapshot) {
    held->clear();
    acceptors->clear();
    buckets->assign(core::kDigestBuckets, BucketSummary{});
  }
  rocksdb::WriteBatch batch{std::string(encoded)};
  Handler handler(segment, held, acceptors, buckets, ingests);
  rocksdb::Status s = batch.Iterate(&handler);
  if (!s.ok()) return absl::DataLossError(absl::StrCat("write log records: ", s.ToString()));
  return absl::OkStatus();
}

// A write log snapshot: puts of every reservation held, every acceptor
// record kept in the log and every non-empty bucket's summary.
std::string LogSnapshot(const Reservations& held, const LogAcceptors& acceptors,
                        const Summaries& buckets) {
  rocksdb::WriteBatch snapshot;
  for (const auto& [key, value] : held) snapshot.Put(key, value).PermitUncheckedError();
  for (const auto& [key, a] : acceptors) snapshot.Put(key, a.value).PermitUncheckedError();
  for (uint32_t b = 0; b < buckets.size(); ++b) {
    if (buckets[b].count == 0) continue;
    snapshot.Put(internal::SummaryKey(b), internal::EncodeSummary(buckets[b]))
        .PermitUncheckedError();
  }
  return snapshot.Data();
}

std::string LogDir(const std::string& dir) { return dir + "/replicator-log"; }

// Catch-up pages staged as table files before RocksDB ingests them.
std::string IngestDir(const std::string& dir) { return dir + "/replicator-ingest"; }

// A catch-up page at least this long is written as a table file RocksDB
// ingests (RocksDbStorage::StagePage) rather than through its memtable.
constexpr size_t kIngestMinRecords = 1024;

// Ingests the table file `path` into `db`, moving it (RocksDB links it into
// its own files and syncs its manifest).
rocksdb::Status IngestFile(rocksdb::DB* db, const std::string& path) {
  rocksdb::IngestExternalFileOptions ingest;
  ingest.move_files = true;
  return db->IngestExternalFile({path}, ingest);
}

// At open: ingests every file the replayed log named that is still staged
// (its frame was durable, its ingestion had not finished), then removes
// whatever else is staged (written for a frame that never became durable,
// so holding nothing acknowledged). Before the replayed log is dropped.
absl::Status IngestStaged(rocksdb::DB* db, const std::string& dir,
                          const std::vector<std::string>& named) {
  const std::string staged = IngestDir(dir);
  std::error_code ec;
  std::filesystem::create_directories(staged, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("creating ", staged, ": ", ec.message()));
  for (const std::string& name : named) {
    if (name.empty() || name.find('/') != std::string::npos) {
      return absl::DataLossError(absl::StrCat("the write log of ", dir,
                                              " names the catch-up page '", name,
                                              "', which is no file name"));
    }
    const std::string path = absl::StrCat(staged, "/", name);
    const bool still_staged = std::filesystem::exists(path, ec);
    if (ec) return absl::UnavailableError(absl::StrCat("looking for ", path, ": ", ec.message()));
    if (!still_staged) continue;  // ingested before the crash
    rocksdb::Status s = IngestFile(db, path);
    if (!s.ok()) return FromRocks(s, absl::StrCat("ingesting the catch-up page ", path));
    std::filesystem::remove(path, ec);
  }
  for (const auto& entry : std::filesystem::directory_iterator(staged, ec)) {
    std::filesystem::remove(entry.path(), ec);
  }
  return absl::OkStatus();
}

// Records the highest sequence number RocksDB has flushed to its tables:
// write log segments whose records are all at or below it are obsolete.
// With one column family, memtables flush in the order they were filled,
// so every record at or below a flush's largest sequence number is flushed.
class FlushListener : public rocksdb::EventListener {
 public:
  explicit FlushListener(std::shared_ptr<std::atomic<uint64_t>> flushed)
      : flushed_(std::move(flushed)) {}
  void OnFlushCompleted(rocksdb::DB*, const rocksdb::FlushJobInfo& info) override {
    uint64_t seen = flushed_->load(std::memory_order_relaxed);
    while (info.largest_seqno > seen &&
           !flushed_->compare_exchange_weak(seen, info.largest_seqno, std::memory_order_release)) {
    }
  }

 private:
  std::shared_ptr<std::atomic<uint64_t>> flushed_;
};

internal::WriteLogOptions LogOptions(const RocksDbOptions& options) {
  internal::WriteLogOptions log;
  log.sync = options.sync;
  if (options.log_segment_bytes != 0) {
    log.segment_bytes = options.log_segment_bytes;
    log.first_segment_bytes = std::min(log.first_segment_bytes, log.segment_bytes);
  }
  return log;
}

class RocksDbStorage final : public Storage {
 public:
  RocksDbStorage(std::string dir, RocksDbOptions options, std::unique_ptr<rocksdb::DB> db,
                 std::unique_ptr<internal::WriteLog> log, Reservations reservations,
                 LogAcceptors acceptors, std::shared_ptr<std::atomic<uint64_t>> flushed,
                 Summaries buckets, uint64_t incarnation)
      : dir_(std::move(dir)),
        ingest_dir_(IngestDir(dir_)),
        options_(std::move(options)),
        db_(std::move(db)),
        log_(std::move(log)),
        reservations_(std::move(reservations)),
        acceptors_(std::move(acceptors)),
        spilled_at_(log_->current_segment()),
        flushed_(std::move(flushed)),
        committed_count_(TotalCount(buckets)),
        buckets_(std::move(buckets)),
        incarnation_(incarnation),
        committer_([this](const std::vector<core::WriteBatch>& group,
                          std::vector<absl::Status>* batch_status) {
          return Apply(group, batch_status);
        }) {}

  ~RocksDbStorage() override {
    stop_verifier_.store(true, std::memory_order_relaxed);
    if (verifier_.joinable()) verifier_.join();
    committer_.Stop();
    {
      std::lock_guard<std::mutex> lock(checkpoint_mu_);
      stop_checkpointer_ = true;
    }
    checkpoint_cv_.notify_one();
    if (checkpointer_.joinable()) checkpointer_.join();
    // A clean stop leaves nothing in the write log to replay: the next open
    // then costs the same however much was written since the last flush (a
    // crash still replays up to a segment or two). A failure only means the
    // next open replays the log.
    if (options_.flush_on_close && broken_.ok() && db_->Flush(rocksdb::FlushOptions()).ok()) {
      absl::StatusOr<uint64_t> segment = log_->Roll(LogSnapshotNow());
      if (segment.ok()) log_->DropBefore(*segment);
    }
    if (options_.compact_on_close) {
      db_->CompactRange(rocksdb::CompactRangeOptions(), nullptr, nullptr).PermitUncheckedError();
    }
    // Close() reports errors that the destructor would swallow; there is no
    // one to report them to either, but it releases the LOCK deterministically.
    db_->Close().PermitUncheckedError();
  }

  // Verify::kBackground: reads and checks every record on a thread of the
  // lowest CPU priority; damage stops the process (FailStop), as a failed
  // read of the committed set does.
  void StartVerifier() {
    verifier_ = std::thread([this] {
      // Linux: nice applies to the calling thread alone.
      setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), 19);
      const auto started = std::chrono::steady_clock::now();
      uint64_t keys = 0;
      const rocksdb::Snapshot* snapshot = nullptr;
      Summaries stored;
      {
        std::lock_guard<std::mutex> lock(digest_mu_);
        snapshot = db_->GetSnapshot();
        stored = buckets_;
      }
      absl::Status s = VerifyAt(db_.get(), dir_, snapshot, stored, &stop_verifier_, &keys);
      db_->ReleaseSnapshot(snapshot);
      if (absl::IsCancelled(s)) return;
      if (!s.ok()) FailStop(absl::StrCat("verifying the records of ", dir_), s);
      if (options_.verified) {
        options_.verified(
            keys,
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
      }
    });
  }

  // Starts the thread that makes old write log segments obsolete.
  void StartCheckpointer() {
    checkpointer_ = std::thread([this] { RunCheckpointer(); });
  }

  absl::StatusOr<core::DurableState> Recover() override {
    core::DurableState state;
    // The reservations are in memory (from the write log); in key order of
    // their records, as the records were read from RocksDB before.
    std::vector<const std::pair<const std::string, std::string>*> held;
    held.reserve(reservations_.size());
    for (const auto& r : reservations_) held.push_back(&r);
    std::sort(held.begin(), held.end(),
              [](const auto* a, const auto* b) { return a->first < b->first; });
    for (const auto* r : held) {
      absl::StatusOr<core::Reservation> decoded = internal::DecodeReservation(r->first, r->second);
      if (!decoded.ok()) return decoded.status();
      state.reservations.push_back(*std::move(decoded));
    }
    absl::Status s;
    // Configurations and their acceptor records are few; all are recovered,
    // in (cluster, epoch) order, the order of their record keys.
    s = Scan(internal::kConfigPrefix,
             [&](std::string_view key, std::string_view value) -> absl::Status {
               absl::StatusOr<core::Configuration> c = internal::DecodeConfig(key, value);
               if (!c.ok()) return c.status();
               state.configs.push_back(*std::move(c));
               return absl::OkStatus();
             });
    if (!s.ok()) return s;
    s = Scan(internal::kConfigAcceptorPrefix,
             [&](std::string_view key, std::string_view value) -> absl::Status {
               absl::StatusOr<core::ConfigAcceptorRecord> r =
                   internal::DecodeConfigAcceptor(key, value);
               if (!r.ok()) return r.status();
               state.config_acceptors.push_back(*std::move(r));
               return absl::OkStatus();
             });
    if (!s.ok()) return s;
    // Acceptor records are read on demand; they are checked with the
    // committed records (RocksDbOptions::verify), not here, where reading
    // every one would make a start cost grow with the puts ever made.
    return state;
  }

  void Write(core::WriteBatch batch, Done done) override {
    committer_.Enqueue(std::move(batch), std::move(done));
  }

  std::optional<core::CommittedEntry> GetEntry(const core::Key& key) const override {
    const std::string record_key = CommittedKey(key);
    rocksdb::PinnableSlice value;
    if (!ReadValue(record_key, "a committed key", &value)) return std::nullopt;
    absl::StatusOr<internal::CommittedValueView> entry =
        internal::DecodeCommitted(record_key, value.ToStringView());
    if (!entry.ok()) FailStop(absl::StrCat("reading a committed key in ", dir_), entry.status());
    return core::CommittedEntry{core::Value(entry->value), entry->request_id,
                                std::move(entry->proposal)};
  }

  std::vector<std::optional<core::CommittedEntry>> GetEntries(
      const std::vector<const core::Key*>& keys) const override {
    std::vector<std::optional<core::CommittedEntry>> out(keys.size());
    std::vector<std::string> record_keys;
    absl::Status s =
        MultiRead(keys, &record_keys, [&](size_t i, std::string_view value) -> absl::Status {
          absl::StatusOr<internal::CommittedValueView> entry =
              internal::DecodeCommitted(record_keys[i], value);
          if (!entry.ok()) return entry.status();
          out[i] = core::CommittedEntry{core::Value(entry->value), entry->request_id,
                                        std::move(entry->proposal)};
          return absl::OkStatus();
        });
    if (!s.ok()) FailStop(absl::StrCat("reading committed keys in ", dir_), s);
    return out;
  }

  std::optional<core::AcceptorRecord> GetAcceptor(const core::ProposalId& p) const override {
    const std::string record_key = internal::AcceptorKey(p);
    {
      // Young records are in the log (and here); the others in RocksDB.
      std::lock_guard<std::mutex> lock(acceptors_mu_);
      if (auto it = acceptors_.find(record_key); it != acceptors_.end()) {
        absl::StatusOr<core::AcceptorRecord> record =
            internal::DecodeAcceptor(record_key, it->second.value);
        if (!record.ok()) {
          FailStop(absl::StrCat("reading an acceptor record in ", dir_), record.status());
        }
        return *std::move(record);
      }
    }
    rocksdb::PinnableSlice value;
    if (!ReadValue(record_key, "an acceptor record", &value)) return std::nullopt;
    absl::StatusOr<core::AcceptorRecord> record =
        internal::DecodeAcceptor(record_key, value.ToStringView());
    if (!record.ok()) {
      FailStop(absl::StrCat("reading an acceptor record in ", dir_), record.status());
    }
    return *std::move(record);
  }

  bool HasAcceptor(const core::ProposalId& p) const override {
    const std::string record_key = internal::AcceptorKey(p);
    {
      std::lock_guard<std::mutex> lock(acceptors_mu_);
      if (acceptors_.contains(record_key)) return true;
    }
    rocksdb::PinnableSlice value;
    return ReadValue(record_key, "an acceptor record", &value);
  }

  std::vector<uint64_t> Digest() const override {
    std::vector<uint64_t> digest(core::kDigestBuckets);
    std::lock_guard<std::mutex> lock(digest_mu_);
    for (uint32_t b = 0; b < core::kDigestBuckets; ++b) digest[b] = buckets_[b].digest;
    return digest;
  }

  void ForEachInBucket(uint32_t bucket, const core::Key& after,
                       const std::function<bool(const core::Key&, const core::CommittedEntry&)>&
                           visit) const override {
    if (bucket >= core::kDigestBuckets) return;
    std::string start = internal::CommittedBucketPrefix(bucket);
    start.append(after);
    absl::Status s = ScanCommitted(
        start, internal::CommittedBucketPrefix(bucket + 1),
        [&](std::string_view key, const internal::CommittedValueView& entry) {
          if (key == after) return true;  // `after` is exclusive
          return visit(core::Key(key), core::CommittedEntry{core::Value(entry.value),
                                                            entry.request_id, entry.proposal});
        });
    if (!s.ok()) FailStop(absl::StrCat("scanning a committed bucket in ", dir_), s);
  }

  uint64_t CommittedCount() const override {
    return committed_count_.load(std::memory_order_acquire);
  }

  absl::StatusOr<uint64_t> NextIncarnation() override {
    std::lock_guard<std::mutex> lock(incarnation_mu_);
    const uint64_t next = incarnation_ + 1;
    rocksdb::WriteOptions write;
    write.sync = options_.sync;
    const auto started = std::chrono::steady_clock::now();
    rocksdb::Status s =
        db_->Put(write, std::string(internal::kIncarnationKey), internal::EncodeCounter(next));
    if (!s.ok()) return FromRocks(s, absl::StrCat("storing the incarnation counter in ", dir_));
    if (options_.sync) {
      syncs_.fetch_add(1, std::memory_order_relaxed);
      fsync_duration_.Observe(std::chrono::steady_clock::now() - started);
    }
    incarnation_ = next;
    return next;
  }

  const util::Histogram* fsync_duration() const override {
    return options_.sync ? &fsync_duration_ : nullptr;
  }

  StorageStats stats() const override {
    StorageStats s = internal::StatsFrom(committer_.counters(),
                                         syncs_.load(std::memory_order_relaxed), CommittedCount());
    {
      std::lock_guard<std::mutex> lock(acceptors_mu_);
      s.log_acceptor_records = acceptors_.size();
    }
    s.acceptor_records_moved = acceptors_spilled_.load(std::memory_order_relaxed);
    s.pages_ingested = pages_ingested_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  // Reads the value at `record_key` into `value` (pinned, not copied);
  // false when there is none. A read failure stops the node (see FailStop);
  // `what` names the record.
  bool ReadValue(const std::string& record_key, const char* what,
                 rocksdb::PinnableSlice* value) const {
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), record_key, value);
    if (s.IsNotFound()) return false;
    if (!s.ok()) FailStop(absl::StrCat("reading ", what, " in ", dir_), s);
    return true;
  }

  // Reads the committed records of `keys` in one MultiGet, calling
  // `found(i, record value)` for each keys[i] that has one; `record_keys`
  // receives their record keys. The first error (a read failure, or
  // `found`'s) is returned.
  template <typename F>
  absl::Status MultiRead(const std::vector<const core::Key*>& keys,
                         std::vector<std::string>* record_keys, F found) const {
    const size_t n = keys.size();
    record_keys->clear();
    if (n == 0) return absl::OkStatus();
    record_keys->reserve(n);
    std::vector<rocksdb::Slice> slices;
    slices.reserve(n);
    for (const core::Key* k : keys) {
      record_keys->push_back(CommittedKey(*k));
      slices.emplace_back(record_keys->back());
    }
    // In chunks of RocksDB's own MultiGet batch (32 keys): a larger call
    // spills its per-key context from the stack into a vector grown key by
    // key, which costs more than the batching saves.
    constexpr size_t kChunk = 32;
    rocksdb::PinnableSlice values[kChunk];
    rocksdb::Status statuses[kChunk];
    const rocksdb::ReadOptions read;
    for (size_t begin = 0; begin < n; begin += kChunk) {
      const size_t m = std::min(kChunk, n - begin);
      db_->MultiGet(read, db_->DefaultColumnFamily(), m, slices.data() + begin, values, statuses);
      for (size_t j = 0; j < m; ++j) {
        if (statuses[j].IsNotFound()) continue;
        if (!statuses[j].ok()) {
          return FromRocks(statuses[j], absl::StrCat("reading ", n, " committed keys in ", dir_));
        }
        if (absl::Status s = found(begin + j, values[j].ToStringView()); !s.ok()) return s;
      }
      for (size_t j = 0; j < m; ++j) values[j].Reset();  // unpins, for the next chunk
    }
    return absl::OkStatus();
  }

  // Committed records in [begin, end) as (user key, entry); see
  // ScanCommittedRange.
  template <typename F>
  absl::Status ScanCommitted(const std::string& begin, const std::string& end, F visit) const {
    return ScanCommittedRange(db_.get(), dir_, begin, end,
                              [&](const internal::CommittedRecordKey& key,
                                  const internal::CommittedValueView& entry) {
                                return visit(key.key, entry);
                              });
  }

  // Calls `record(key, value)` for every record with `prefix`, in key order.
  template <typename F>
  absl::Status Scan(char prefix, F record) const {
    return ScanPrefix(db_.get(), dir_, prefix, std::move(record));
  }

  // A change of a log-only record: a put has a value, a delete none.
  struct LogOp {
    std::string key;
    std::optional<std::string> value;
  };

  // Storage thread only.
  absl::Status Apply(const std::vector<core::WriteBatch>& group,
                     std::vector<absl::Status>* batch_status) {
    // After a failed write the log may end in a partial frame: nothing more
    // may be appended behind it.
    if (!broken_.ok()) return broken_;
    rocksdb::WriteBatch write_batch;
    // The group's records that live in the write log only: reservation puts
    // and deletes, and the summaries of the buckets it commits into. The
    // reservation changes are kept as well, for reservations_ once the frame
    // is durable (a put has a value, a delete none).
    rocksdb::WriteBatch log_batch;
    std::vector<LogOp> reservation_ops;
    // Likewise the acceptor records kept in the log, for acceptors_.
    std::vector<LogOp> acceptor_ops;
    // Where each acceptor record this group writes lives once it is
    // written (true: the log; false: RocksDB); see AcceptorInLog.
    absl::flat_hash_map<std::string, bool> acceptor_in_log;
    if (log_->current_segment() != spilled_at_) {
      SpillAcceptors(&write_batch, &log_batch, &acceptor_ops, &acceptor_in_log);
    }
    // Committed entries this group adds, key -> value viewing into `group`:
    // later batches of the group are checked against them, and the count and
    // digest take them once the write succeeds. Committed keys are never
    // deleted, so a key present on disk stays present.
    absl::flat_hash_map<std::string_view, const core::PutCommitted*> added_by_group;
    std::vector<const core::PutCommitted*> added_in_order;
    // Likewise configurations, (cluster, epoch) -> the record viewing into
    // `group`.
    absl::flat_hash_map<std::pair<std::string_view, uint64_t>, const core::Configuration*>
        configs_by_group;
    absl::Status status;
    auto check = [&](const rocksdb::Status& s) {
      if (!s.ok() && status.ok()) status = FromRocks(s, absl::StrCat("building a write in ", dir_));
    };
    // The write-once probe of every key the group commits, read from disk in
    // one MultiGet before the checks: key -> the value it was committed with,
    // nullopt for the (most) keys not committed yet. The storage thread is
    // the only writer, so the disk does not change until this group's own
    // write.
    absl::flat_hash_map<std::string_view, std::optional<core::Value>> on_disk;
    {
      std::vector<const core::Key*> keys;
      for (const core::WriteBatch& batch : group) {
        for (const core::Mutation& mutation : batch.mutations) {
          if (const auto* put = std::get_if<core::PutCommitted>(&mutation)) {
            keys.push_back(&put->key);
          }
        }
      }
      on_disk.reserve(keys.size());
      added_by_group.reserve(keys.size());
      for (const core::Key* k : keys) on_disk.try_emplace(*k);
      std::vector<std::string> record_keys;
      absl::Status read =
          MultiRead(keys, &record_keys, [&](size_t i, std::string_view value) -> absl::Status {
            absl::StatusOr<internal::CommittedValueView> entry =
                internal::DecodeCommitted(record_keys[i], value);
            if (!entry.ok()) return entry.status();
            on_disk[*keys[i]] = core::Value(entry->value);
            return absl::OkStatus();
          });
      if (!read.ok()) return read;
    }
    internal::WriteOnceLookup lookup;
    lookup.committed = [&](const core::Key& key) -> absl::StatusOr<std::optional<core::Value>> {
      if (auto it = added_by_group.find(key); it != added_by_group.end()) {
        return it->second->value;
      }
      if (auto it = on_disk.find(key); it != on_disk.end()) return it->second;
      return ReadCommittedValue(key);  // not a PutCommitted of the group
    };
    lookup.config = [&](const core::ClusterId& cluster,
                        uint64_t epoch) -> absl::StatusOr<std::optional<core::Configuration>> {
      if (auto it = configs_by_group.find({cluster, epoch}); it != configs_by_group.end()) {
        return *it->second;
      }
      return ReadConfig(cluster, epoch);
    };
    internal::WriteOnceAdded added;
    std::vector<PageRecords> pages;
    for (size_t i = 0; i < group.size(); ++i) {
      absl::Status checked = internal::CheckWriteOnce(group[i], lookup, &added);
      if (checked.code() == absl::StatusCode::kAlreadyExists) {
        (*batch_status)[i] = std::move(checked);
        continue;
      }
      if (!checked.ok()) return checked;
      for (const core::Mutation& mutation : group[i].mutations) {
        if (const auto* put_r = std::get_if<core::PutReservation>(&mutation)) {
          LogOp& op = reservation_ops.emplace_back();
          op.key = ReservationKey(put_r->reservation.key);
          op.value = internal::EncodeReservation(put_r->reservation);
          check(log_batch.Put(op.key, *op.value));
        } else if (const auto* del_r = std::get_if<core::DeleteReservation>(&mutation)) {
          LogOp& op = reservation_ops.emplace_back();
          op.key = ReservationKey(del_r->key);
          check(log_batch.Delete(op.key));
        } else if (const auto* put_a = std::get_if<core::PutAcceptor>(&mutation)) {
          // A new record goes to the log; one RocksDB holds (it moved
          // there, or an older build wrote it) is updated there.
          std::string key = AcceptorKey(put_a->record.proposal);
          std::string value = internal::EncodeAcceptor(put_a->record);
          // A new register (the engine found no record of it) is not in
          // RocksDB: no need to look.
          if (put_a->new_register || AcceptorInLog(key, acceptor_in_log, /*probe=*/true)) {
            check(log_batch.Put(key, value));
            acceptor_in_log[key] = true;
            acceptor_ops.push_back(LogOp{std::move(key), std::move(value)});
          } else {
            check(write_batch.Put(key, value));
          }
        } else if (const auto* del_a = std::get_if<core::DeleteAcceptor>(&mutation)) {
          std::string key = AcceptorKey(del_a->proposal);
          if (AcceptorInLog(key, acceptor_in_log, /*probe=*/false)) {
            check(log_batch.Delete(key));
            acceptor_ops.push_back(LogOp{key, std::nullopt});
          } else {
            check(write_batch.Delete(key));
          }
          // Gone from both: a later put in the group is a new record.
          acceptor_in_log[key] = true;
        } else if (const auto* put_ca = std::get_if<core::PutConfigAcceptor>(&mutation)) {
          check(write_batch.Put(
              internal::ConfigAcceptorKey(put_ca->record.cluster, put_ca->record.epoch),
              internal::EncodeConfigAcceptor(put_ca->record)));
        }
        // PutCommitted, PutConfig: below, only the ones that add a record.
      }
      for (const core::PutConfig* put : added.configs) {
        const core::Configuration& c = put->config;
        check(write_batch.Put(internal::ConfigKey(c.cluster, c.epoch), internal::EncodeConfig(c)));
        configs_by_group.insert_or_assign(std::make_pair(std::string_view(c.cluster), c.epoch), &c);
      }
      for (const core::PutCommitted* put : added.committed) {
        added_by_group.emplace(put->key, put);
        added_in_order.push_back(put);
      }
      // A catch-up page (many committed entries and nothing else) goes to
      // RocksDB as a table file it ingests, not through its memtable,
      // unless the memtables hold records within its range.
      if (added.committed.size() >= kIngestMinRecords &&
          std::all_of(group[i].mutations.begin(), group[i].mutations.end(),
                      [](const core::Mutation& m) {
                        return std::holds_alternative<core::PutCommitted>(m);
                      })) {
        PageRecords records = SortedRecords(added.committed);
        if (!MemtablesOverlap(records.front().first, records.back().first)) {
          pages.push_back(std::move(records));
          continue;
        }
      }
      for (const core::PutCommitted* put : added.committed) {
        check(
            write_batch.Put(CommittedKey(put->key),
                            internal::EncodeCommitted(put->request_id, put->value, put->proposal)));
      }
    }
    // The summaries of the buckets this group commits into, as they are
    // once it is written, in the same log frame (they live in the log and
    // in memory only: a RocksDB record each would cost a memtable entry per
    // put).
    absl::flat_hash_map<uint32_t, BucketSummary> summaries;
    if (!added_in_order.empty()) {
      std::lock_guard<std::mutex> lock(digest_mu_);
      for (const core::PutCommitted* put : added_in_order) {
        const uint32_t bucket = core::BucketOf(put->key);
        auto [it, fresh] = summaries.try_emplace(bucket);
        if (fresh) it->second = buckets_[bucket];
        ++it->second.count;
        it->second.digest ^= core::EntryHash(put->key, put->value);
      }
    }
    for (const auto& [bucket, summary] : summaries) {
      check(log_batch.Put(internal::SummaryKey(bucket), internal::EncodeSummary(summary)));
    }
    if (!status.ok()) return status;
    // The pages' table files, synced with their dir entries before the frame
    // that names them (and carries their summaries): once it is durable, an
    // open that finds a file still staged ingests it.
    std::vector<std::string> staged;
    auto unstage = [&] {
      std::error_code ec;
      for (const std::string& file : staged) std::filesystem::remove(file, ec);
    };
    for (const PageRecords& page : pages) {
      absl::StatusOr<std::string> file = StagePage(page);
      if (!file.ok()) {
        unstage();
        return file.status();
      }
      staged.push_back(*file);
      check(log_batch.Put(internal::IngestKey(std::filesystem::path(*file).filename().string()),
                          rocksdb::Slice()));
    }
    if (!staged.empty() && options_.sync) {
      if (absl::Status synced = internal::SyncDirectory(ingest_dir_); !synced.ok()) {
        unstage();
        return synced;
      }
    }
    if (write_batch.Count() == 0 && log_batch.Count() == 0) return absl::OkStatus();
    // The log first: once its frame is synced the group is durable, and a
    // crash before the RocksDB write below replays the frame at open.
    const auto started = std::chrono::steady_clock::now();
    if (absl::Status logged =
            log_->Append(write_batch.Data(), log_batch.Data(), [this] { return LogSnapshotNow(); });
        !logged.ok()) {
      broken_ = logged;
      return logged;
    }
    if (log_->WantsSpare()) {
      {
        std::lock_guard<std::mutex> lock(checkpoint_mu_);
        spare_wanted_ = true;
      }
      checkpoint_cv_.notify_one();
    }
    if (options_.sync) {
      syncs_.fetch_add(1, std::memory_order_relaxed);
      fsync_duration_.Observe(std::chrono::steady_clock::now() - started);
    }
    {
      // The records and the summaries change together for a verifier
      // taking a RocksDB snapshot and the summaries under this lock; the
      // summaries change before the callbacks run, so readers cover every
      // done batch.
      std::lock_guard<std::mutex> lock(digest_mu_);
      if (write_batch.Count() > 0) {
        rocksdb::Status s = db_->Write(UnloggedWrite(), &write_batch);
        if (!s.ok()) {
          broken_ =
              FromRocks(s, absl::StrCat("writing ", write_batch.Count(), " records to ", dir_));
          return broken_;
        }
        log_->NoteSequence(db_->GetLatestSequenceNumber());
      }
      for (const std::string& file : staged) {
        if (options_.testing_stop_before_ingest) {
          broken_ = absl::InternalError("stopped before ingesting a page (test)");
          return broken_;
        }
        rocksdb::Status s = IngestFile(db_.get(), file);
        if (!s.ok()) {
          // The frame is durable: the next open ingests the file.
          broken_ = FromRocks(s, absl::StrCat("ingesting the catch-up page ", file));
          return broken_;
        }
        std::error_code ec;
        std::filesystem::remove(file, ec);  // RocksDB holds the file under its own name
        pages_ingested_.fetch_add(1, std::memory_order_relaxed);
      }
      for (const auto& [bucket, summary] : summaries) buckets_[bucket] = summary;
    }
    // Segments whose records RocksDB has flushed since are no longer needed.
    if (const uint64_t flushed = flushed_->load(std::memory_order_acquire);
        flushed > flushed_dropped_) {
      flushed_dropped_ = flushed;
      {
        std::lock_guard<std::mutex> lock(checkpoint_mu_);
        drop_flushed_ = flushed;
      }
      checkpoint_cv_.notify_one();
    }
    // The reservations the frame logged, in their order (the summaries are
    // in buckets_ already).
    for (LogOp& op : reservation_ops) {
      if (op.value) {
        reservations_.insert_or_assign(std::move(op.key), *std::move(op.value));
      } else {
        reservations_.erase(op.key);
      }
    }
    if (!acceptor_ops.empty()) {
      const uint64_t segment = log_->current_segment();
      std::lock_guard<std::mutex> lock(acceptors_mu_);
      for (LogOp& op : acceptor_ops) {
        if (op.value) {
          acceptors_.insert_or_assign(std::move(op.key),
                                      LogAcceptor{*std::move(op.value), segment});
        } else {
          acceptors_.erase(op.key);
        }
      }
    }
    committed_count_.fetch_add(added_in_order.size(), std::memory_order_release);
    return absl::OkStatus();
  }

  // Committed entries with their record keys, in record key order.
  using PageRecords = std::vector<std::pair<std::string, const core::PutCommitted*>>;
  static PageRecords SortedRecords(const std::vector<const core::PutCommitted*>& puts) {
    PageRecords records;
    records.reserve(puts.size());
    for (const core::PutCommitted* put : puts) records.emplace_back(CommittedKey(put->key), put);
    // A page comes in (bucket, key) order, which is record key order: the
    // sort is for the writes that do not.
    auto by_key = [](const auto& a, const auto& b) { return a.first < b.first; };
    if (!std::is_sorted(records.begin(), records.end(), by_key)) {
      std::sort(records.begin(), records.end(), by_key);
    }
    return records;
  }

  // Storage thread. Whether RocksDB's memtables hold a record in
  // [first, last]. An ingestion that overlaps them makes RocksDB flush them
  // first: on a voter taking live commits beside its catch-up, a flush and
  // a level-0 file per page. Such a page takes the memtable path instead; a
  // new node (a learner, which takes no commits) has nothing there.
  bool MemtablesOverlap(const std::string& first, const std::string& last) const {
    const std::string end = last + '\0';  // the least key after `last`
    const rocksdb::Slice upper(end);
    rocksdb::ReadOptions read;
    read.read_tier = rocksdb::kMemtableTier;
    read.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read));
    it->Seek(first);
    return it->Valid() || !it->status().ok();
  }

  // Storage thread. Writes `page` (sorted, each key once: CheckWriteOnce
  // added it once) as a table file in the staging dir, synced; returns its
  // path.
  absl::StatusOr<std::string> StagePage(const PageRecords& page) {
    const std::string file =
        absl::StrCat(ingest_dir_, "/", absl::StrFormat("%020u.sst", ++staged_files_));
    rocksdb::SstFileWriter writer(rocksdb::EnvOptions(), db_->GetOptions());
    rocksdb::Status s = writer.Open(file);
    for (size_t i = 0; s.ok() && i < page.size(); ++i) {
      const core::PutCommitted& put = *page[i].second;
      s = writer.Put(page[i].first,
                     internal::EncodeCommitted(put.request_id, put.value, put.proposal));
    }
    if (s.ok()) s = writer.Finish();
    absl::Status out = s.ok() ? absl::OkStatus() : FromRocks(s, absl::StrCat("writing ", file));
    if (out.ok() && options_.sync) out = internal::SyncFile(file);
    if (!out.ok()) {
      std::error_code ec;
      std::filesystem::remove(file, ec);
      return out;
    }
    return file;
  }

  // Storage thread. Whether the acceptor record `key` lives in the log:
  // as this group left it (`in_group`), else as acceptors_ has it; one in
  // neither is in RocksDB if it is there (`probe`: look, for a put; a
  // delete deletes in RocksDB), else new, and a new one goes to the log.
  bool AcceptorInLog(const std::string& key, const absl::flat_hash_map<std::string, bool>& in_group,
                     bool probe) const {
    if (auto it = in_group.find(key); it != in_group.end()) return it->second;
    if (acceptors_.contains(key)) return true;
    if (!probe) return false;
    std::string unused;
    if (!db_->KeyMayExist(rocksdb::ReadOptions(), key, &unused)) return true;
    rocksdb::PinnableSlice value;
    return !ReadValue(key, "an acceptor record", &value);
  }

  // Storage thread, once per segment: the acceptor records in the log that
  // were last written two segments ago or earlier (so outlived a whole
  // segment: a proposal a recovery aborted, or one whose key never
  // committed here) move to RocksDB in this group's frame, so the log and
  // memory hold only the records of the puts in flight.
  void SpillAcceptors(rocksdb::WriteBatch* write_batch, rocksdb::WriteBatch* log_batch,
                      std::vector<LogOp>* ops, absl::flat_hash_map<std::string, bool>* in_log) {
    spilled_at_ = log_->current_segment();
    uint64_t spilled = 0;
    for (const auto& [key, a] : acceptors_) {
      if (a.segment + 2 > spilled_at_) continue;
      write_batch->Put(key, a.value).PermitUncheckedError();
      log_batch->Delete(key).PermitUncheckedError();
      ops->push_back(LogOp{key, std::nullopt});
      (*in_log)[key] = false;
      ++spilled;
    }
    acceptors_spilled_.fetch_add(spilled, std::memory_order_relaxed);
  }

  // A write log snapshot of what the storage holds now.
  std::string LogSnapshotNow() const {
    std::lock_guard<std::mutex> lock(digest_mu_);
    return LogSnapshot(reservations_, acceptors_, buckets_);
  }

  // The checkpointer thread. Once RocksDB has flushed a memtable (on its
  // own, when one fills) it drops the segments whose records are all
  // flushed, the newest becoming the spare; and it prepares a spare when
  // the log asks for one and none was recycled. Nothing here forces a
  // flush: the log is at most about a memtable's worth of segments.
  void RunCheckpointer() {
    std::unique_lock<std::mutex> lock(checkpoint_mu_);
    for (;;) {
      checkpoint_cv_.wait(
          lock, [&] { return stop_checkpointer_ || drop_flushed_ != 0 || spare_wanted_; });
      if (stop_checkpointer_) return;
      const uint64_t flushed = drop_flushed_;
      const bool spare = spare_wanted_;
      drop_flushed_ = 0;
      spare_wanted_ = false;
      lock.unlock();
      if (flushed != 0) log_->DropFlushed(flushed);
      if (spare) {
        // A failure only means the next roll writes a small segment itself.
        if (absl::Status s = log_->PrepareSpare(); !s.ok()) {
          std::fprintf(stderr, "replicator storage: preparing a write log segment: %s\n",
                       s.ToString().c_str());
        }
      }
      lock.lock();
    }
  }

  // The committed value of `key` on disk, for the write-once check.
  absl::StatusOr<std::optional<core::Value>> ReadCommittedValue(const core::Key& key) const {
    const std::string record_key = CommittedKey(key);
    rocksdb::PinnableSlice value;
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), record_key, &value);
    if (s.IsNotFound()) return std::nullopt;
    if (!s.ok()) return FromRocks(s, absl::StrCat("probing a committed key in ", dir_));
    absl::StatusOr<internal::CommittedValueView> entry =
        internal::DecodeCommitted(record_key, value.ToStringView());
    if (!entry.ok()) return entry.status();
    return core::Value(entry->value);
  }

  // Configuration (cluster, epoch) on disk, for the write-once check.
  absl::StatusOr<std::optional<core::Configuration>> ReadConfig(const core::ClusterId& cluster,
                                                                uint64_t epoch) const {
    const std::string record_key = internal::ConfigKey(cluster, epoch);
    rocksdb::PinnableSlice value;
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), record_key, &value);
    if (s.IsNotFound()) return std::nullopt;
    if (!s.ok()) return FromRocks(s, absl::StrCat("probing a configuration in ", dir_));
    absl::StatusOr<core::Configuration> config =
        internal::DecodeConfig(record_key, value.ToStringView());
    if (!config.ok()) return config.status();
    return *std::move(config);
  }

  const std::string dir_;
  const std::string ingest_dir_;  // IngestDir(dir_)
  const RocksDbOptions options_;
  const std::unique_ptr<rocksdb::DB> db_;
  const std::unique_ptr<internal::WriteLog> log_;
  Reservations reservations_;  // storage thread (and Recover, before any write)
  // Written by the storage thread only (which reads it without the lock),
  // read by GetAcceptor under acceptors_mu_.
  mutable std::mutex acceptors_mu_;
  LogAcceptors acceptors_;
  uint64_t spilled_at_;  // storage thread: the segment SpillAcceptors last ran in
  std::atomic<uint64_t> acceptors_spilled_{0};
  uint64_t staged_files_ = 0;  // storage thread: names the next staged page file
  std::atomic<uint64_t> pages_ingested_{0};
  absl::Status broken_;        // storage thread: the failure that stops every later write
  std::mutex checkpoint_mu_;
  std::condition_variable checkpoint_cv_;
  uint64_t drop_flushed_ = 0;  // guarded by checkpoint_mu_; 0: nothing to drop
  // The highest sequence number RocksDB has flushed (FlushListener).
  std::shared_ptr<std::atomic<uint64_t>> flushed_;
  uint64_t flushed_dropped_ = 0;    // storage thread: the last `flushed_` handed on
  bool spare_wanted_ = false;       // guarded by checkpoint_mu_
  bool stop_checkpointer_ = false;  // guarded by checkpoint_mu_
  std::thread checkpointer_;
  std::atomic<uint64_t> committed_count_;
  mutable std::mutex digest_mu_;
  Summaries buckets_;  // guarded by digest_mu_; written by the storage thread only
  std::atomic<uint64_t> syncs_{0};
  util::Histogram fsync_duration_{util::kLatencyBuckets};  // of every write counted in syncs_
  std::mutex incarnation_mu_;
  uint64_t incarnation_;  // guarded by incarnation_mu_; the last one made durable
  // Last: its thread starts once every member above exists.
  internal::GroupCommitter committer_;
  std::atomic<bool> stop_verifier_{false};
  std::thread verifier_;  // Verify::kBackground; joined before the database closes
};

absl::Status OpenError(const std::string& dir, const rocksdb::Status& s) {
  const std::string text = s.ToString();
  // RocksDB reports a held LOCK file as an IOError: "While lock file: ...:
  // Resource temporarily unavailable" from another process, "lock hold by
  // current process" from a second open in this one.
  if (s.IsIOError() && (absl::StrContains(text, "lock file") ||
                        absl::StrContains(text, "lock hold by current process"))) {
    return absl::FailedPreconditionError(
        absl::StrCat("data dir ", dir,
                     " is in use by another replicatord process or open storage instance "
                     "(its RocksDB LOCK is held): ",
                     text));
  }
  if (absl::StrContains(text, "Permission denied")) {
    return absl::PermissionDeniedError(absl::StrCat("cannot open data dir ", dir, ": ", text));
  }
  if (s.IsCorruption()) {
    return absl::DataLossError(
        absl::StrCat("data dir ", dir,
                     " is damaged (its RocksDB log or files are corrupt beyond a torn last "
                     "write); refusing to start rather than forget acknowledged state. Restore "
                     "the data dir from a backup, or remove the node and add it back empty "
                     "(it catches up from its peers): ",
                     text));
  }
  return FromRocks(s, absl::StrCat("cannot open RocksDB in data dir ", dir));
}

// A database with no records at all (CheckFormat).
constexpr uint64_t kFreshDatabase = 0;

// Checks the format record and returns the version found, or
// kFreshDatabase for one with no records (the caller writes the format
// record once the write log exists). An older version this build reads is
// returned as it is: the caller upgrades it (Upgrade).
absl::StatusOr<uint64_t> CheckFormat(const std::string& dir, rocksdb::DB* db) {
  std::string value;
  rocksdb::Status s = db->Get(rocksdb::ReadOptions(), std::string(internal::kFormatKey), &value);
  if (s.IsNotFound()) {
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    it->SeekToFirst();
    if (!it->status().ok()) return FromRocks(it->status(), absl::StrCat("reading ", dir));
    if (it->Valid()) {
      return absl::DataLossError(absl::StrCat(
          "data dir ", dir, " holds records but no format version record ",
          internal::DescribeRecordKey(internal::kFormatKey), "; not a replicator database?"));
    }
    return kFreshDatabase;
  }
  if (!s.ok()) return FromRocks(s, absl::StrCat("reading the format record of ", dir));
  absl::StatusOr<uint64_t> version = internal::DecodeCounter(internal::kFormatKey, value);
  if (!version.ok()) return version.status();
  if (*version >= internal::kOldestFormatVersion && *version <= internal::kFormatVersion) {
    return *version;
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "data dir ", dir, " has format version ", *version, "; this build reads only version ",
      internal::kFormatVersion,
      *version < internal::kFormatVersion
          ? absl::StrCat(" (and upgrades versions ", internal::kOldestFormatVersion, " to ",
                         internal::kFormatVersion - 1,
                         ") and does not migrate older ones (start from an empty data dir)")
          : std::string(" (written by a newer build?)")));
}

// Upgrades a data dir of an older format this build reads as it is: all
// its records read as they are. Before format 5 it lacks the bucket
// summaries: one scan of its committed records (checking each) gives them;
// format 5 holds them as RocksDB records. Before format 6 the reservations
// are RocksDB records too. Both are read and written as the snapshot of a
// new write log (synced), and then deleted from RocksDB in one synced write
// with the new format record, so the dir is either of the old format (a
// crash may leave a log it does not read, which the next upgrade replaces)
// or of the new one. From then on the older build refuses it.
absl::StatusOr<Summaries> Upgrade(const std::string& dir, rocksdb::DB* db, uint64_t from,
                                  const RocksDbOptions& options,
                                  std::unique_ptr<internal::WriteLog>* log,
                                  Reservations* reservations) {
  absl::StatusOr<Summaries> buckets =
      from < 5 ? SummarizeCommitted(db, dir) : ReadSummaries(db, dir);
  if (!buckets.ok()) return buckets.status();
  reservations->clear();
  absl::Status read = ScanPrefix(db, dir, internal::kReservationPrefix,
                                 [&](std::string_view key, std::string_view value) {
                                   // Decoded (and checked) by Recover, as before.
                                   (*reservations)[std::string(key)] = std::string(value);
                                   return absl::OkStatus();
                                 });
  if (!read.ok()) return read;
  absl::StatusOr<std::unique_ptr<internal::WriteLog>> created = internal::WriteLog::Create(
      LogDir(dir), LogOptions(options), LogSnapshot(*reservations, LogAcceptors(), *buckets));
  if (!created.ok()) return created.status();
  *log = *std::move(created);
  rocksdb::WriteBatch batch;
  rocksdb::Status s = batch.DeleteRange(std::string(1, internal::kReservationPrefix),
                                        PrefixEnd(internal::kReservationPrefix));
  if (s.ok()) {
    s = batch.DeleteRange(std::string(1, internal::kSummaryPrefix),
                          PrefixEnd(internal::kSummaryPrefix));
  }
  if (s.ok()) {
    s = batch.Put(std::string(internal::kFormatKey),
                  internal::EncodeCounter(internal::kFormatVersion));
  }
  if (s.ok()) {
    rocksdb::WriteOptions write;
    write.sync = options.sync;
    s = db->Write(write, &batch);
  }
  if (!s.ok()) {
    return FromRocks(s, absl::StrCat("upgrading ", dir, " from format version ", from, " to ",
                                     internal::kFormatVersion));
  }
  return buckets;
}

// The first format whose dir has a write log (storage/write_log.h).
constexpr uint64_t kFirstLogFormat = 6;

absl::StatusOr<uint64_t> ReadIncarnation(const std::string& dir, rocksdb::DB* db) {
  std::string value;
  rocksdb::Status s =
      db->Get(rocksdb::ReadOptions(), std::string(internal::kIncarnationKey), &value);
  if (s.IsNotFound()) return 0;
  if (!s.ok()) return FromRocks(s, absl::StrCat("reading the incarnation counter of ", dir));
  return internal::DecodeCounter(internal::kIncarnationKey, value);
}

}  // namespace

absl::StatusOr<std::unique_ptr<Storage>> OpenRocksDbStorage(const std::string& dir,
                                                            RocksDbOptions options) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    std::string message = absl::StrCat("cannot create data dir ", dir, ": ", ec.message());
    if (ec == std::errc::permission_denied) return absl::PermissionDeniedError(message);
    return absl::FailedPreconditionError(message);
  }

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options.block_cache_bytes);
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(kBloomBitsPerKey));
  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  db_options.paranoid_checks = true;
  // After a crash the WAL may end in a torn record: a write whose sync never
  // finished, so never acknowledged. That tail is dropped; any other damage
  // (a record corrupted mid-log, synced and acknowledged) refuses the open
  // rather than replaying a prefix and forgetting what followed, which
  // RocksDB's default (kPointInTimeRecovery) would do silently.
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  db_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  // Most lookups are for keys that are not there (every reserve of a fresh
  // key checks for a committed value): a bloom filter over the memtable
  // answers those without walking its skip list.
  db_options.memtable_whole_key_filtering = true;
  db_options.memtable_prefix_bloom_size_ratio = 0.05;
  // Writes skip RocksDB's WAL (the write log is it), so RocksDB would flush
  // at close on its own; the storage flushes when it means to
  // (RocksDbOptions::flush_on_close), and a test's crash-like close must
  // leave the memtables unflushed.
  db_options.avoid_flush_during_shutdown = true;
  auto flushed = std::make_shared<std::atomic<uint64_t>>(0);
  db_options.listeners.push_back(std::make_shared<FlushListener>(flushed));

  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, dir, &raw);
  if (!s.ok()) return OpenError(dir, s);
  std::unique_ptr<rocksdb::DB> db(raw);

  absl::StatusOr<uint64_t> format = CheckFormat(dir, db.get());
  if (!format.ok()) return format.status();
  // An upgrade reads (and checks) every record anyway, whatever the mode.
  Verify verify = options.verify;
  absl::StatusOr<Summaries> buckets;
  std::unique_ptr<internal::WriteLog> log;
  Reservations reservations;
  LogAcceptors acceptors;
  if (*format == kFreshDatabase) {
    // The log before the format record: a crash between the two leaves a
    // database with no records, which the next open starts afresh.
    absl::StatusOr<std::unique_ptr<internal::WriteLog>> created =
        internal::WriteLog::Create(LogDir(dir), LogOptions(options), rocksdb::WriteBatch().Data());
    if (!created.ok()) return created.status();
    log = *std::move(created);
    rocksdb::WriteOptions write;
    write.sync = options.sync;
    s = db->Put(write, std::string(internal::kFormatKey),
                internal::EncodeCounter(internal::kFormatVersion));
    if (!s.ok()) return FromRocks(s, absl::StrCat("initialising ", dir));
    buckets = Summaries(core::kDigestBuckets);
  } else if (*format >= kFirstLogFormat) {
    // Every frame of the log, oldest first, onto what RocksDB flushed: each
    // frame's records are whole values, so replaying frames RocksDB already
    // holds leaves every record as the newest frame wrote it. The
    // reservations and summaries come from the log alone.
    Summaries replayed(core::kDigestBuckets);
    std::vector<std::string> ingests;
    absl::StatusOr<std::unique_ptr<internal::WriteLog>> opened = internal::WriteLog::Open(
        LogDir(dir), LogOptions(options),
        [&](const internal::LogFrame& frame) -> absl::Status {
          if (!frame.db_records.empty()) {
            rocksdb::WriteBatch records{std::string(frame.db_records)};
            if (records.Count() > 0) {
              rocksdb::Status w = db->Write(UnloggedWrite(), &records);
              if (!w.ok()) return FromRocks(w, absl::StrCat("replaying the write log of ", dir));
            }
          }
          return ApplyLogRecords(frame.log_records,
                                 frame.kind == internal::LogFrame::Kind::kSnapshot,
                                 /*segment=*/0, &reservations, &acceptors, &replayed, &ingests);
        },
        [&] { return LogSnapshot(reservations, acceptors, replayed); });
    if (!opened.ok()) return opened.status();
    log = *std::move(opened);
    // The pages the replayed summaries count, before the log naming them
    // is dropped below.
    if (absl::Status ingested = IngestStaged(db.get(), dir, ingests); !ingested.ok()) {
      return ingested;
    }
    // Replayed acceptor records count as written in the new segment.
    for (auto& [key, a] : acceptors) a.segment = log->current_segment();
    // What was replayed is durable once flushed; then only the new
    // segment, which begins with the reservations, is needed.
    s = db->Flush(rocksdb::FlushOptions());
    if (!s.ok()) return FromRocks(s, absl::StrCat("flushing the replayed write log of ", dir));
    log->DropBefore(log->current_segment());
    buckets = std::move(replayed);
    if (*format < internal::kFormatVersion) {
      // Format 6 reads as it is under 7; from now on committed records
      // name their proposal, which a format-6 build would refuse.
      rocksdb::WriteOptions write;
      write.sync = options.sync;
      s = db->Put(write, std::string(internal::kFormatKey),
                  internal::EncodeCounter(internal::kFormatVersion));
      if (!s.ok()) {
        return FromRocks(s, absl::StrCat("upgrading ", dir, " from format version ", *format,
                                         " to ", internal::kFormatVersion));
      }
    }
  } else {
    // Acceptor records first: a damaged one refuses the open before the
    // dir is upgraded.
    if (absl::Status checked = CheckAcceptors(db.get(), dir); !checked.ok()) return checked;
    buckets = Upgrade(dir, db.get(), *format, options, &log, &reservations);
    if (*format < 5) verify = Verify::kOff;
  }
  if (!buckets.ok()) return buckets.status();
  // The staging dir exists, and holds nothing, before the first write.
  if (absl::Status staged = IngestStaged(db.get(), dir, {}); !staged.ok()) return staged;
  if (verify == Verify::kAtOpen) {
    const auto started = std::chrono::steady_clock::now();
    uint64_t keys = 0;
    if (absl::Status damage = VerifyRecords(db.get(), dir, *buckets, &keys); !damage.ok()) {
      return damage;
    }
    if (options.verified) {
      options.verified(keys, std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                                           started)
                                 .count());
    }
  }
  absl::StatusOr<uint64_t> incarnation = ReadIncarnation(dir, db.get());
  if (!incarnation.ok()) return incarnation.status();
  auto storage = std::make_unique<RocksDbStorage>(
      dir, std::move(options), std::move(db), std::move(log), std::move(reservations),
      std::move(acceptors), std::move(flushed), *std::move(buckets), *incarnation);
  storage->StartCheckpointer();
  if (verify == Verify::kBackground) storage->StartVerifier();
  return std::unique_ptr<Storage>(std::move(storage));
}

}  // namespace replicator::storage
