// In-memory Storage: ordered maps under one mutex, completed by a
// GroupCommitter thread like the RocksDB implementation so that callers see
// the same threading in simulation and production. Committed entries are
// keyed by (bucket, key), the order of the RocksDB records.
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "storage/group_commit.h"
#include "storage/record_format.h"
#include "storage/storage.h"
#include "storage/write_once.h"

namespace replicator::storage {
namespace {

// Entries copied per lock hold in a scan: bounds how long a scan blocks the
// storage thread, and lets `visit` call back into storage.
constexpr size_t kScanChunk = 256;

// Position of a committed entry: the order of ForEachCommitted.
using CommittedId = std::pair<uint32_t, core::Key>;

CommittedId IdOf(const core::Key& key) { return {core::BucketOf(key), key}; }

class MemoryStorage final : public Storage {
 public:
  MemoryStorage()
      : committer_([this](const std::vector<core::WriteBatch>& group,
                          std::vector<absl::Status>* batch_status) {
          return Apply(group, batch_status);
        }) {}

  ~MemoryStorage() override { committer_.Stop(); }

  absl::StatusOr<core::DurableState> Recover() override {
    std::lock_guard<std::mutex> lock(mu_);
    core::DurableState state;
    state.reservations.reserve(reservations_.size());
    for (const auto& [key, reservation] : reservations_) {
      state.reservations.push_back(reservation);
      state.reservations.back().since = 0;
    }
    return state;
  }

  void Write(core::WriteBatch batch, Done done) override {
    committer_.Enqueue(std::move(batch), std::move(done));
  }

  std::optional<core::CommittedEntry> GetEntry(const core::Key& key) const override {
    const CommittedId id = IdOf(key);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = committed_.find(id);
    if (it == committed_.end()) return std::nullopt;
    return it->second;
  }

  std::optional<core::AcceptorRecord> GetAcceptor(const core::ProposalId& p) const override {
    const std::string key = internal::AcceptorKey(p);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = acceptors_.find(key);
    if (it == acceptors_.end()) return std::nullopt;
    return it->second;
  }

  std::vector<uint64_t> Digest() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return digest_;
  }

  void ForEachInBucket(uint32_t bucket, const core::Key& after,
                       const std::function<bool(const core::Key&, const core::CommittedEntry&)>&
                           visit) const override {
    if (bucket >= core::kDigestBuckets) return;
    Scan(CommittedId{bucket, after}, /*inclusive=*/false, bucket,
         [&](const CommittedId& id, const core::CommittedEntry& entry) {
           return visit(id.second, entry);
         });
  }

  uint64_t CommittedCount() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return committed_.size();
  }

  absl::Status ForEachCommitted(
      std::string_view from,
      const std::function<bool(std::string_view key, std::string_view value)>& visit)
      const override {
    const CommittedId start = from.empty() ? CommittedId{} : IdOf(core::Key(from));
    Scan(start, /*inclusive=*/true, std::nullopt,
         [&](const CommittedId& id, const core::CommittedEntry& entry) {
           return visit(id.second, entry.value);
         });
    return absl::OkStatus();
  }

  absl::StatusOr<uint64_t> NextIncarnation() override {
    std::lock_guard<std::mutex> lock(mu_);
    return ++incarnation_;
  }

  StorageStats stats() const override {
    return internal::StatsFrom(committer_.counters(), 0, CommittedCount());
  }

 private:
  // Visits committed entries from `start` (inclusive or not) in (bucket, key)
  // order, within `only_bucket` if given, until `visit` returns false. Copies
  // kScanChunk entries per lock hold and visits them unlocked; committed
  // entries are never removed, so resuming after the last visited one misses
  // nothing that existed when the scan began.
  template <typename F>
  void Scan(CommittedId cursor, bool inclusive, std::optional<uint32_t> only_bucket,
            F visit) const {
    std::vector<std::pair<CommittedId, core::CommittedEntry>> chunk;
    for (;;) {
      chunk.clear();
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = inclusive ? committed_.lower_bound(cursor) : committed_.upper_bound(cursor);
        for (; it != committed_.end() && chunk.size() < kScanChunk; ++it) {
          if (only_bucket.has_value() && it->first.first != *only_bucket) break;
          chunk.emplace_back(it->first, it->second);
        }
      }
      if (chunk.empty()) return;
      for (const auto& [id, entry] : chunk) {
        if (!visit(id, entry)) return;
      }
      if (chunk.size() < kScanChunk) return;
      cursor = std::move(chunk.back().first);
      inclusive = false;
    }
  }

  // One lock hold for the whole group makes it atomic to readers. Batches
  // apply one after another, so each is checked against its predecessors.
  absl::Status Apply(const std::vector<core::WriteBatch>& group,
                     std::vector<absl::Status>* batch_status) {
    std::lock_guard<std::mutex> lock(mu_);
    const internal::CommittedValueLookup lookup =
        [this](const core::Key& key) -> absl::StatusOr<std::optional<core::Value>> {
      auto it = committed_.find(IdOf(key));
      if (it == committed_.end()) return std::nullopt;
      return it->second.value;
    };
    std::vector<const core::PutCommitted*> added;
    for (size_t i = 0; i < group.size(); ++i) {
      absl::Status checked = internal::CheckWriteOnce(group[i], lookup, &added);
      if (checked.code() == absl::StatusCode::kAlreadyExists) {
        (*batch_status)[i] = std::move(checked);
        continue;
      }
      if (!checked.ok()) return checked;  // unreachable: the lookup cannot fail
      for (const core::Mutation& mutation : group[i].mutations) {
        if (!std::holds_alternative<core::PutCommitted>(mutation)) {
          std::visit([this](const auto& m) { ApplyLocked(m); }, mutation);
        }
      }
      for (const core::PutCommitted* put : added) {
        CommittedId id = IdOf(put->key);
        digest_[id.first] ^= core::EntryHash(put->key, put->value);
        committed_.emplace(std::move(id), core::CommittedEntry{put->value, put->request_id});
      }
    }
    return absl::OkStatus();
  }

  void ApplyLocked(const core::PutReservation& m) {
    reservations_.insert_or_assign(m.reservation.key, m.reservation);
  }
  void ApplyLocked(const core::DeleteReservation& m) { reservations_.erase(m.key); }
  void ApplyLocked(const core::PutCommitted&) {}  // by Apply, after the write-once check
  void ApplyLocked(const core::PutAcceptor& m) {
    acceptors_.insert_or_assign(internal::AcceptorKey(m.record.proposal), m.record);
  }
  void ApplyLocked(const core::DeleteAcceptor& m) {
    acceptors_.erase(internal::AcceptorKey(m.proposal));
  }

  mutable std::mutex mu_;
  std::map<CommittedId, core::CommittedEntry> committed_;  // guarded by mu_
  // kDigestBuckets XORs of EntryHash over committed_.
  std::vector<uint64_t> digest_ = std::vector<uint64_t>(core::kDigestBuckets);  // guarded by mu_
  std::map<core::Key, core::Reservation> reservations_;  // guarded by mu_
  // Keyed like the RocksDB records so Recover() returns the same order.
  std::map<std::string, core::AcceptorRecord> acceptors_;  // guarded by mu_
  uint64_t incarnation_ = 0;                               // guarded by mu_
  // Last: its thread starts once every member above exists, and Stop() in
  // the destructor ends it before they go.
  internal::GroupCommitter committer_;
};

}  // namespace

std::unique_ptr<Storage> OpenMemoryStorage() { return std::make_unique<MemoryStorage>(); }

}  // namespace replicator::storage
