// Write-once checking of a batch's PutCommitted and PutConfig mutations,
// shared by the Storage implementations: a committed key keeps its first
// value and request id forever, a configuration (cluster, epoch) its first
// voters and, once known, its generation. Runs on the storage thread,
// inside ApplyGroup. Internal to src/storage.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/messages.h"
#include "core/types.h"

namespace replicator::storage::internal {

// What was durable before the batch being checked (including earlier
// batches of its group); nullopt if none. An error is a read failure (never
// kAlreadyExists).
struct WriteOnceLookup {
  // The value `key` was committed with.
  std::function<absl::StatusOr<std::optional<core::Value>>(const core::Key& key)> committed;
  // Configuration (cluster, epoch).
  std::function<absl::StatusOr<std::optional<core::Configuration>>(const core::ClusterId& cluster,
                                                                   uint64_t epoch)>
      config;
};

// The mutations of a batch that add a committed key or a configuration (or
// fill in a configuration's generation or removal), in batch order, each key or
// (cluster, epoch) once.
struct WriteOnceAdded {
  std::vector<const core::PutCommitted*> committed;
  std::vector<const core::PutConfig*> configs;
};

// Sets `*added` to what `batch` adds. A PutCommitted of a key already
// committed (before the batch or earlier in it) with the same value changes
// nothing, not even the request id, and is left out; likewise a PutConfig of
// a (cluster, epoch) already held with the same voters and generation (or
// generation 0: unknown). A PutConfig with the same voters and a generation
// where the record held 0 is added: it rewrites the record with it. One with
// a different value, voters or (known) generation refuses the whole batch:
// AlreadyExistsError naming the key (and both values' sizes) or the
// configuration (and both voter lists or generations); `*added` is then
// meaningless. Any other error is `lookup`'s.
absl::Status CheckWriteOnce(const core::WriteBatch& batch, const WriteOnceLookup& lookup,
                            WriteOnceAdded* added);

}  // namespace replicator::storage::internal
