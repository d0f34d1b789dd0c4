// In-memory Storage: a core::MemoryState under one mutex, completed by a
// GroupCommitter thread like the RocksDB implementation so that callers see
// the same threading in simulation and production. Committed entries are
// scanned in (bucket, key) order, the order of the RocksDB records.
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "core/memory_state.h"
#include "storage/group_commit.h"
#include "storage/storage.h"
#include "storage/write_once.h"

namespace replicator::storage {
namespace {

// Entries copied per lock hold in a scan: bounds how long a scan blocks the
// storage thread, and lets `visit` call back into storage.
constexpr size_t kScanChunk = 256;

// Position of a committed entry: the order of a scan.
using CommittedId = core::MemoryState::Position;

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
    core::DurableState state = state_.Recover();
    for (core::Reservation& reservation : state.reservations) reservation.since = 0;
    return state;
  }

  void Write(core::WriteBatch batch, Done done) override {
    committer_.Enqueue(std::move(batch), std::move(done));
  }

  std::optional<core::CommittedEntry> GetEntry(const core::Key& key) const override {
    std::lock_guard<std::mutex> lock(mu_);
    return state_.GetEntry(key);
  }

  std::optional<core::AcceptorRecord> GetAcceptor(const core::ProposalId& p) const override {
    std::lock_guard<std::mutex> lock(mu_);
    return state_.GetAcceptor(p);
  }

  std::vector<uint64_t> Digest() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return state_.Digest();
  }

  void ForEachInBucket(uint32_t bucket, const core::Key& after,
                       const std::function<bool(const core::Key&, const core::CommittedEntry&)>&
                           visit) const override {
    if (bucket >= core::kDigestBuckets) return;
    Scan(CommittedId{bucket, after},
         [&](const CommittedId& id, const core::CommittedEntry& entry) {
           return visit(id.second, entry);
         });
  }

  uint64_t CommittedCount() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return state_.committed().size();
  }

  absl::StatusOr<uint64_t> NextIncarnation() override {
    std::lock_guard<std::mutex> lock(mu_);
    return ++incarnation_;
  }

  StorageStats stats() const override {
    return internal::StatsFrom(committer_.counters(), 0, CommittedCount());
  }

 private:
  // Visits the committed entries of `cursor`'s bucket after `cursor`, in key
  // order, until `visit` returns false. Copies
  // kScanChunk entries per lock hold and visits them unlocked; committed
  // entries are never removed, so resuming after the last visited one misses
  // nothing that existed when the scan began.
  template <typename F>
  void Scan(CommittedId cursor, F visit) const {
    const uint32_t bucket = cursor.first;
    std::vector<std::pair<CommittedId, core::CommittedEntry>> chunk;
    for (;;) {
      chunk.clear();
      {
        std::lock_guard<std::mutex> lock(mu_);
        state_.ForEachFrom(cursor, /*inclusive=*/false,
                           [&](const CommittedId& id, const core::CommittedEntry& entry) {
                             if (id.first != bucket) return false;
                             chunk.emplace_back(id, entry);
                             return chunk.size() < kScanChunk;
                           });
      }
      if (chunk.empty()) return;
      for (const auto& [id, entry] : chunk) {
        if (!visit(id, entry)) return;
      }
      if (chunk.size() < kScanChunk) return;
      cursor = std::move(chunk.back().first);
    }
  }

  // One lock hold for the whole group makes it atomic to readers. Batches
  // apply one after another, so each is checked against its predecessors.
  absl::Status Apply(const std::vector<core::WriteBatch>& group,
                     std::vector<absl::Status>* batch_status) {
    std::lock_guard<std::mutex> lock(mu_);
    internal::WriteOnceLookup lookup;
    lookup.committed = [this](const core::Key& key) -> absl::StatusOr<std::optional<core::Value>> {
      std::optional<core::CommittedEntry> entry = state_.GetEntry(key);
      if (!entry) return std::nullopt;
      return std::move(entry->value);
    };
    lookup.config = [this](const core::ClusterId& cluster,
                           uint64_t epoch) -> absl::StatusOr<std::optional<core::Configuration>> {
      auto it = state_.configs().find({cluster, epoch});
      if (it == state_.configs().end()) return std::nullopt;
      return it->second;
    };
    internal::WriteOnceAdded added;
    for (size_t i = 0; i < group.size(); ++i) {
      absl::Status checked = internal::CheckWriteOnce(group[i], lookup, &added);
      if (checked.code() == absl::StatusCode::kAlreadyExists) {
        (*batch_status)[i] = std::move(checked);
        continue;
      }
      if (!checked.ok()) return checked;  // unreachable: the lookup cannot fail
      // `added`: the commits and configurations that are new, each once, as
      // CheckWriteOnce decided them; the rest of them change nothing.
      for (const core::Mutation& mutation : group[i].mutations) {
        if (!std::holds_alternative<core::PutCommitted>(mutation) &&
            !std::holds_alternative<core::PutConfig>(mutation)) {
          state_.Apply(mutation);
        }
      }
      for (const core::PutConfig* put : added.configs) state_.Apply(*put);
      for (const core::PutCommitted* put : added.committed) state_.Apply(*put);
    }
    return absl::OkStatus();
  }

  mutable std::mutex mu_;
  core::MemoryState state_;  // guarded by mu_
  uint64_t incarnation_ = 0;  // guarded by mu_
  // Last: its thread starts once every member above exists, and Stop() in
  // the destructor ends it before they go.
  internal::GroupCommitter committer_;
};

}  // namespace

std::unique_ptr<Storage> OpenMemoryStorage() { return std::make_unique<MemoryStorage>(); }

}  // namespace replicator::storage
