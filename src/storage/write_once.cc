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
  std::map<std::pair<std::string_view, uint64_t>, const core::Configuration*> configs_in_batch;
  for (const core::Mutation& mutation : batch.mutations) {
    if (const auto* config = std::get_if<core::PutConfig>(&mutation)) {
      const core::Configuration& c = config->config;
      const core::Configuration* existing = nullptr;
      std::optional<core::Configuration> before;
      auto in = configs_in_batch.find({c.cluster, c.epoch});
      if (in != configs_in_batch.end()) {
        existing = in->second;
      } else {
        absl::StatusOr<std::optional<core::Configuration>> found =
            lookup.config(c.cluster, c.epoch);
        if (!found.ok()) return found.status();
        before = *std::move(found);
        if (before.has_value()) existing = &*before;
      }
      if (existing != nullptr && existing->voters != c.voters) {
        return absl::AlreadyExistsError(absl::StrCat(
            "write-once: configuration ", DescribeRecordKey(c.cluster), " epoch ", c.epoch,
            " has voters ", DescribeVoters(existing->voters), "; refusing different voters ",
            DescribeVoters(c.voters), " (the batch applies nothing)"));
      }
      if (existing != nullptr && existing->generation != 0 && c.generation != 0 &&
          existing->generation != c.generation) {
        return absl::AlreadyExistsError(
            absl::StrCat("write-once: configuration ", DescribeRecordKey(c.cluster), " epoch ",
                         c.epoch, " has generation ", existing->generation,
                         "; refusing generation ", c.generation, " (the batch applies nothing)"));
      }
      if (existing != nullptr && existing->removed != 0 && c.removed != 0 &&
          existing->removed != c.removed) {
        return absl::AlreadyExistsError(
            absl::StrCat("write-once: configuration ", DescribeRecordKey(c.cluster), " epoch ",
                         c.epoch, " was removed at generation ", existing->removed,
                         "; refusing removal at ", c.removed, " (the batch applies nothing)"));
      }
      if (existing != nullptr && existing->removed != 0 && c.removed == 0) {
        // Nothing forgets a removal: a record written without it is held.
        continue;
      }
      // New, or the generation or removal the record lacked: written.
      // Anything else is already held.
      if (existing == nullptr || (existing->generation == 0 && c.generation != 0) ||
          (existing->removed == 0 && c.removed != 0)) {
        if (in != configs_in_batch.end()) {
          // Filled in after an earlier mutation of this batch added it: the
          // later one is written instead.
          std::erase_if(added->configs, [&](const core::PutConfig* p) {
            return p->config.cluster == c.cluster && p->config.epoch == c.epoch;
          });
        }
        configs_in_batch.insert_or_assign(std::make_pair(std::string_view(c.cluster), c.epoch), &c);
        added->configs.push_back(config);
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
