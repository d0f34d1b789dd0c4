#include "storage/write_once.h"

#include <string_view>
#include <utility>
#include <variant>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "storage/record_format.h"

namespace replicator::storage::internal {

absl::Status CheckWriteOnce(const core::WriteBatch& batch, const CommittedValueLookup& lookup,
                            std::vector<const core::PutCommitted*>* added) {
  added->clear();
  // Keys this batch adds, viewing into `batch`.
  absl::flat_hash_map<std::string_view, std::string_view> in_batch;
  for (const core::Mutation& mutation : batch.mutations) {
    const auto* put = std::get_if<core::PutCommitted>(&mutation);
    if (put == nullptr) continue;
    std::optional<std::string_view> existing;
    std::optional<core::Value> before;
    if (auto it = in_batch.find(put->key); it != in_batch.end()) {
      existing = it->second;
    } else {
      absl::StatusOr<std::optional<core::Value>> found = lookup(put->key);
      if (!found.ok()) return found.status();
      before = *std::move(found);
      if (before.has_value()) existing = *before;
    }
    if (!existing.has_value()) {
      in_batch.emplace(put->key, put->value);
      added->push_back(put);
    } else if (*existing != put->value) {
      return absl::AlreadyExistsError(
          absl::StrCat("write-once: committed key ", DescribeRecordKey(put->key), " holds a ",
                       existing->size(), "-byte value; refusing a different ", put->value.size(),
                       "-byte value (the batch applies nothing)"));
    }
  }
  return absl::OkStatus();
}

}  // namespace replicator::storage::internal
