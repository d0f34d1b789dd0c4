#include "storage/write_once.h"

#include <map>
#include <string_view>
#include <utility>
#include <variant>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "storage/record_format.h"

namespace replicator::storage::internal {
namespace {

std::string DescribeVoters(const std::vector<core::PeerId>& voters) {
  return absl::StrCat("[", absl::StrJoin(voters, ", "), "]");
}

}  // namespace

absl::Status CheckWriteOnce(const core::WriteBatch& batch, const WriteOnceLookup& lookup,
                            WriteOnceAdded* added) {
  added->committed.clear();
  added->configs.clear();
  // Keys and configurations this batch adds, viewing into `batch`.
  absl::flat_hash_map<std::string_view, std::string_view> in_batch;
  std::map<std::pair<std::string_view, uint64_t>, const std::vector<core::PeerId>*>
      configs_in_batch;
  for (const core::Mutation& mutation : batch.mutations) {
    if (const auto* config = std::get_if<core::PutConfig>(&mutation)) {
      const core::Configuration& c = config->config;
      const std::vector<core::PeerId>* existing = nullptr;
      std::optional<std::vector<core::PeerId>> before;
      if (auto it = configs_in_batch.find({c.cluster, c.epoch}); it != configs_in_batch.end()) {
        existing = it->second;
      } else {
        absl::StatusOr<std::optional<std::vector<core::PeerId>>> found =
            lookup.config(c.cluster, c.epoch);
        if (!found.ok()) return found.status();
        before = *std::move(found);
        if (before.has_value()) existing = &*before;
      }
      if (existing == nullptr) {
        configs_in_batch.emplace(std::make_pair(std::string_view(c.cluster), c.epoch), &c.voters);
        added->configs.push_back(config);
      } else if (*existing != c.voters) {
        return absl::AlreadyExistsError(absl::StrCat(
            "write-once: configuration ", DescribeRecordKey(c.cluster), " epoch ", c.epoch,
            " has voters ", DescribeVoters(*existing), "; refusing different voters ",
            DescribeVoters(c.voters), " (the batch applies nothing)"));
      }
      continue;
    }
    const auto* put = std::get_if<core::PutCommitted>(&mutation);
    if (put == nullptr) continue;
    std::optional<std::string_view> existing;
    std::optional<core::Value> before;
    if (auto it = in_batch.find(put->key); it != in_batch.end()) {
      existing = it->second;
    } else {
      absl::StatusOr<std::optional<core::Value>> found = lookup.committed(put->key);
      if (!found.ok()) return found.status();
      before = *std::move(found);
      if (before.has_value()) existing = *before;
    }
    if (!existing.has_value()) {
      in_batch.emplace(put->key, put->value);
      added->committed.push_back(put);
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
