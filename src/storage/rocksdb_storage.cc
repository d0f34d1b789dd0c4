// RocksDB Storage: key-prefixed records in the default column family (layout
// in docs/storage.md and record_format.h). A GroupCommitter thread turns each
// wake-up's queued batches into one rocksdb::WriteBatch written with
// WriteOptions::sync, so one fsync covers every request of the group. Reads
// go straight to RocksDB, which is thread-safe.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "rocksdb/cache.h"
#include "rocksdb/db.h"
#include "rocksdb/filter_policy.h"
#include "rocksdb/options.h"
#include "rocksdb/table.h"
#include "rocksdb/write_batch.h"
#include "storage/group_commit.h"
#include "storage/record_format.h"
#include "storage/storage.h"

namespace replicator::storage {
namespace {

using internal::AcceptorKey;
using internal::CommittedKey;
using internal::ReservationKey;

// Bits per key of the bloom filter: PutCommitted probes for an existing key
// to keep the committed count, and most probes are for new keys.
constexpr double kBloomBitsPerKey = 10;

// Reads of the committed set have no error channel (CommittedView); failing
// them quietly could turn "stored" into an "ok" vote, so the node stops.
[[noreturn]] void FailStop(std::string_view what, const rocksdb::Status& s) {
  std::fprintf(stderr, "replicator storage: fatal: %.*s: %s\n", static_cast<int>(what.size()),
               what.data(), s.ToString().c_str());
  std::abort();
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

class RocksDbStorage final : public Storage {
 public:
  RocksDbStorage(std::string dir, RocksDbOptions options, std::unique_ptr<rocksdb::DB> db,
                 uint64_t committed_count, uint64_t incarnation)
      : dir_(std::move(dir)),
        options_(options),
        db_(std::move(db)),
        committed_count_(committed_count),
        incarnation_(incarnation),
        committer_([this](const std::vector<core::WriteBatch>& group) { return Apply(group); }) {}

  ~RocksDbStorage() override {
    committer_.Stop();
    // Close() reports errors that the destructor would swallow; there is no
    // one to report them to either, but it releases the LOCK deterministically.
    db_->Close().PermitUncheckedError();
  }

  absl::StatusOr<core::DurableState> Recover() override {
    core::DurableState state;
    absl::Status s = Scan(internal::kReservationPrefix,
                          [&](std::string_view key, std::string_view value) -> absl::Status {
                            absl::StatusOr<core::Reservation> r =
                                internal::DecodeReservation(key, value);
                            if (!r.ok()) return r.status();
                            state.reservations.push_back(*std::move(r));
                            return absl::OkStatus();
                          });
    if (!s.ok()) return s;
    s = Scan(internal::kAcceptorPrefix,
             [&](std::string_view key, std::string_view value) -> absl::Status {
               absl::StatusOr<core::AcceptorRecord> a = internal::DecodeAcceptor(key, value);
               if (!a.ok()) return a.status();
               state.acceptors.push_back(*std::move(a));
               return absl::OkStatus();
             });
    if (!s.ok()) return s;
    return state;
  }

  void Write(core::WriteBatch batch, Done done) override {
    committer_.Enqueue(std::move(batch), std::move(done));
  }

  std::optional<core::Value> GetCommitted(const core::Key& key) const override {
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), CommittedKey(key), &value);
    if (s.IsNotFound()) return std::nullopt;
    if (!s.ok()) FailStop(absl::StrCat("reading committed key in ", dir_), s);
    return value;
  }

  uint64_t CommittedCount() const override {
    return committed_count_.load(std::memory_order_acquire);
  }

  absl::Status ForEachCommitted(
      std::string_view from,
      const std::function<bool(std::string_view key, std::string_view value)>& visit)
      const override {
    const std::string end = PrefixEnd(internal::kCommittedPrefix);
    const rocksdb::Slice upper(end);
    rocksdb::ReadOptions read;
    read.iterate_upper_bound = &upper;
    // A scan of the whole committed set should not evict the hot blocks
    // that GetCommitted relies on.
    read.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read));
    for (it->Seek(CommittedKey(from)); it->Valid(); it->Next()) {
      std::string_view key = it->key().ToStringView();
      key.remove_prefix(1);
      if (!visit(key, it->value().ToStringView())) return absl::OkStatus();
    }
    if (!it->status().ok()) {
      return FromRocks(it->status(), absl::StrCat("scanning committed keys in ", dir_));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> NextIncarnation() override {
    std::lock_guard<std::mutex> lock(incarnation_mu_);
    const uint64_t next = incarnation_ + 1;
    rocksdb::WriteOptions write;
    write.sync = options_.sync;
    rocksdb::Status s =
        db_->Put(write, std::string(internal::kIncarnationKey), internal::EncodeCounter(next));
    if (!s.ok()) return FromRocks(s, absl::StrCat("storing the incarnation counter in ", dir_));
    if (options_.sync) syncs_.fetch_add(1, std::memory_order_relaxed);
    incarnation_ = next;
    return next;
  }

  StorageStats stats() const override {
    const internal::GroupCommitter::Counters c = committer_.counters();
    StorageStats s;
    s.batches_written = c.groups_written;
    s.syncs = syncs_.load(std::memory_order_relaxed);
    s.mutations = c.mutations;
    s.committed_keys = CommittedCount();
    s.writes = c.requests_done;
    s.write_errors = c.groups_failed;
    return s;
  }

 private:
  // Calls `record(key, value)` for every record with `prefix`, in key order.
  template <typename F>
  absl::Status Scan(char prefix, F record) const {
    const std::string begin(1, prefix);
    const std::string end = PrefixEnd(prefix);
    const rocksdb::Slice upper(end);
    rocksdb::ReadOptions read;
    read.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read));
    for (it->Seek(begin); it->Valid(); it->Next()) {
      absl::Status s = record(it->key().ToStringView(), it->value().ToStringView());
      if (!s.ok()) return s;
    }
    if (!it->status().ok()) {
      return FromRocks(it->status(), absl::StrCat("scanning records of ", dir_));
    }
    return absl::OkStatus();
  }

  // Storage thread only.
  absl::Status Apply(const std::vector<core::WriteBatch>& group) {
    rocksdb::WriteBatch write_batch;
    // Committed keys first written by this group; they count once however
    // often the group repeats them. Committed keys are never deleted, so a
    // key present on disk stays present.
    absl::flat_hash_set<std::string_view> new_keys;
    absl::Status status;
    auto check = [&](const rocksdb::Status& s) {
      if (!s.ok() && status.ok()) status = FromRocks(s, absl::StrCat("building a write in ", dir_));
    };
    for (const core::WriteBatch& batch : group) {
      for (const core::Mutation& mutation : batch.mutations) {
        if (const auto* put_r = std::get_if<core::PutReservation>(&mutation)) {
          check(write_batch.Put(ReservationKey(put_r->reservation.key),
                                internal::EncodeReservation(put_r->reservation)));
        } else if (const auto* del_r = std::get_if<core::DeleteReservation>(&mutation)) {
          check(write_batch.Delete(ReservationKey(del_r->key)));
        } else if (const auto* put_c = std::get_if<core::PutCommitted>(&mutation)) {
          const std::string record_key = CommittedKey(put_c->key);
          // TODO(perf): the probe is a synchronous read on the storage thread
          // per PutCommitted; batch it with MultiGet if commits dominate.
          if (!new_keys.contains(put_c->key)) {
            absl::StatusOr<bool> present = Exists(record_key);
            if (!present.ok()) return present.status();
            if (!*present) new_keys.insert(put_c->key);
          }
          check(write_batch.Put(record_key, put_c->value));
        } else if (const auto* put_a = std::get_if<core::PutAcceptor>(&mutation)) {
          check(write_batch.Put(AcceptorKey(put_a->record.proposal),
                                internal::EncodeAcceptor(put_a->record)));
        } else if (const auto* del_a = std::get_if<core::DeleteAcceptor>(&mutation)) {
          check(write_batch.Delete(AcceptorKey(del_a->proposal)));
        }
      }
    }
    if (!status.ok()) return status;
    if (write_batch.Count() == 0) return absl::OkStatus();
    rocksdb::WriteOptions write;
    write.sync = options_.sync;
    rocksdb::Status s = db_->Write(write, &write_batch);
    if (!s.ok()) {
      return FromRocks(s, absl::StrCat("writing ", write_batch.Count(), " records to ", dir_));
    }
    if (options_.sync) syncs_.fetch_add(1, std::memory_order_relaxed);
    // Before the callbacks run, so CommittedCount covers every done batch.
    committed_count_.fetch_add(new_keys.size(), std::memory_order_release);
    return absl::OkStatus();
  }

  absl::StatusOr<bool> Exists(const std::string& record_key) const {
    rocksdb::PinnableSlice value;
    rocksdb::Status s =
        db_->Get(rocksdb::ReadOptions(), db_->DefaultColumnFamily(), record_key, &value);
    if (s.IsNotFound()) return false;
    if (!s.ok()) return FromRocks(s, absl::StrCat("probing a committed key in ", dir_));
    return true;
  }

  const std::string dir_;
  const RocksDbOptions options_;
  const std::unique_ptr<rocksdb::DB> db_;
  std::atomic<uint64_t> committed_count_;
  std::atomic<uint64_t> syncs_{0};
  std::mutex incarnation_mu_;
  uint64_t incarnation_;  // guarded by incarnation_mu_; the last one made durable
  // Last: its thread starts once every member above exists.
  internal::GroupCommitter committer_;
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
  return FromRocks(s, absl::StrCat("cannot open RocksDB in data dir ", dir));
}

// Checks the format record, writing it into a fresh database.
absl::Status CheckFormat(const std::string& dir, rocksdb::DB* db, bool sync) {
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
    rocksdb::WriteOptions write;
    write.sync = sync;
    s = db->Put(write, std::string(internal::kFormatKey),
                internal::EncodeCounter(internal::kFormatVersion));
    if (!s.ok()) return FromRocks(s, absl::StrCat("initialising ", dir));
    return absl::OkStatus();
  }
  if (!s.ok()) return FromRocks(s, absl::StrCat("reading the format record of ", dir));
  absl::StatusOr<uint64_t> version = internal::DecodeCounter(internal::kFormatKey, value);
  if (!version.ok()) return version.status();
  if (*version != internal::kFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat("data dir ", dir, " has format version ",
                                                      *version, "; this build reads version ",
                                                      internal::kFormatVersion));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> CountCommitted(const std::string& dir, rocksdb::DB* db) {
  const std::string begin(1, internal::kCommittedPrefix);
  const std::string end = PrefixEnd(internal::kCommittedPrefix);
  const rocksdb::Slice upper(end);
  rocksdb::ReadOptions read;
  read.iterate_upper_bound = &upper;
  read.fill_cache = false;
  // TODO(perf): persist the count in a meta record updated with each group,
  // if opening a store of many millions of keys becomes slow.
  uint64_t count = 0;
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(read));
  for (it->Seek(begin); it->Valid(); it->Next()) ++count;
  if (!it->status().ok()) {
    return FromRocks(it->status(), absl::StrCat("counting committed keys in ", dir));
  }
  return count;
}

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
  db_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, dir, &raw);
  if (!s.ok()) return OpenError(dir, s);
  std::unique_ptr<rocksdb::DB> db(raw);

  if (absl::Status format = CheckFormat(dir, db.get(), options.sync); !format.ok()) {
    return format;
  }
  absl::StatusOr<uint64_t> committed = CountCommitted(dir, db.get());
  if (!committed.ok()) return committed.status();
  absl::StatusOr<uint64_t> incarnation = ReadIncarnation(dir, db.get());
  if (!incarnation.ok()) return incarnation.status();
  return std::unique_ptr<Storage>(
      new RocksDbStorage(dir, options, std::move(db), *committed, *incarnation));
}

}  // namespace replicator::storage
