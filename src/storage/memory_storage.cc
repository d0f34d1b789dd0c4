// In-memory Storage: ordered maps under one mutex, completed by a
// GroupCommitter thread like the RocksDB implementation so that callers see
// the same threading in simulation and production.
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "storage/group_commit.h"
#include "storage/record_format.h"
#include "storage/storage.h"

namespace replicator::storage {
namespace {

// Entries copied per lock hold in ForEachCommitted: bounds how long a scan
// blocks the storage thread, and lets `visit` call back into storage.
constexpr size_t kScanChunk = 256;

class MemoryStorage final : public Storage {
 public:
  MemoryStorage()
      : committer_([this](const std::vector<core::WriteBatch>& group) { return Apply(group); }) {}

  ~MemoryStorage() override { committer_.Stop(); }

  absl::StatusOr<core::DurableState> Recover() override {
    std::lock_guard<std::mutex> lock(mu_);
    core::DurableState state;
    state.reservations.reserve(reservations_.size());
    for (const auto& [key, reservation] : reservations_) {
      state.reservations.push_back(reservation);
      state.reservations.back().since = 0;
    }
    state.acceptors.reserve(acceptors_.size());
    for (const auto& [key, record] : acceptors_) state.acceptors.push_back(record);
    return state;
  }

  void Write(core::WriteBatch batch, Done done) override {
    committer_.Enqueue(std::move(batch), std::move(done));
  }

  std::optional<core::Value> GetCommitted(const core::Key& key) const override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = committed_.find(key);
    if (it == committed_.end()) return std::nullopt;
    return it->second;
  }

  uint64_t CommittedCount() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return committed_.size();
  }

  absl::Status ForEachCommitted(
      std::string_view from,
      const std::function<bool(std::string_view key, std::string_view value)>& visit)
      const override {
    std::vector<std::pair<std::string, std::string>> chunk;
    std::string cursor(from);
    bool inclusive = true;  // the first chunk starts at `from` itself
    for (;;) {
      chunk.clear();
      {
        std::lock_guard<std::mutex> lock(mu_);
        auto it = inclusive ? committed_.lower_bound(cursor) : committed_.upper_bound(cursor);
        for (; it != committed_.end() && chunk.size() < kScanChunk; ++it) {
          chunk.emplace_back(it->first, it->second);
        }
      }
      if (chunk.empty()) return absl::OkStatus();
      for (const auto& [key, value] : chunk) {
        if (!visit(key, value)) return absl::OkStatus();
      }
      // Committed keys are never removed, so resuming after the last visited
      // key misses nothing that existed when the scan began.
      cursor = std::move(chunk.back().first);
      inclusive = false;
    }
  }

  absl::StatusOr<uint64_t> NextIncarnation() override {
    std::lock_guard<std::mutex> lock(mu_);
    return ++incarnation_;
  }

  StorageStats stats() const override {
    const internal::GroupCommitter::Counters c = committer_.counters();
    StorageStats s;
    s.batches_written = c.groups_written;
    s.syncs = 0;
    s.mutations = c.mutations;
    s.committed_keys = CommittedCount();
    s.writes = c.requests_done;
    s.write_errors = c.groups_failed;
    return s;
  }

 private:
  // One lock hold for the whole group makes it atomic to readers.
  absl::Status Apply(const std::vector<core::WriteBatch>& group) {
    std::lock_guard<std::mutex> lock(mu_);
    for (const core::WriteBatch& batch : group) {
      for (const core::Mutation& mutation : batch.mutations) {
        std::visit([this](const auto& m) { ApplyLocked(m); }, mutation);
      }
    }
    return absl::OkStatus();
  }

  void ApplyLocked(const core::PutReservation& m) {
    reservations_.insert_or_assign(m.reservation.key, m.reservation);
  }
  void ApplyLocked(const core::DeleteReservation& m) { reservations_.erase(m.key); }
  void ApplyLocked(const core::PutCommitted& m) { committed_.insert_or_assign(m.key, m.value); }
  void ApplyLocked(const core::PutAcceptor& m) {
    acceptors_.insert_or_assign(internal::AcceptorKey(m.record.proposal), m.record);
  }
  void ApplyLocked(const core::DeleteAcceptor& m) {
    acceptors_.erase(internal::AcceptorKey(m.proposal));
  }

  mutable std::mutex mu_;
  std::map<core::Key, core::Value> committed_;           // guarded by mu_
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
