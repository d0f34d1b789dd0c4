// Write-once checking of a batch's PutCommitted mutations, shared by the
// Storage implementations: a committed key keeps its first value and request
// id forever. Runs on the storage thread, inside ApplyGroup. Internal to
// src/storage.
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/messages.h"
#include "core/types.h"

namespace replicator::storage::internal {

// The value `key` was committed with before the batch being checked
// (including earlier batches of its group); nullopt if none. An error is a
// read failure (never kAlreadyExists).
using CommittedValueLookup =
    std::function<absl::StatusOr<std::optional<core::Value>>(const core::Key& key)>;

// Sets `*added` to the PutCommitted mutations of `batch` that add a key, in
// batch order, each key once. A PutCommitted of a key already committed
// (before the batch or earlier in it) with the same value changes nothing,
// not even the request id, and is left out. One with a different value
// refuses the whole batch: AlreadyExistsError naming the key and both values'
// sizes; `*added` is then meaningless. Any other error is `lookup`'s.
absl::Status CheckWriteOnce(const core::WriteBatch& batch, const CommittedValueLookup& lookup,
                            std::vector<const core::PutCommitted*>* added);

}  // namespace replicator::storage::internal
