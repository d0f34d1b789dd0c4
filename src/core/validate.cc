#include "core/validate.h"

#include <type_traits>
#include <variant>

#include "absl/strings/str_cat.h"

namespace replicator::core {
namespace {

std::optional<std::string> Op(const Limits& limits, const ReplicaOp& op) {
  return std::visit(
      [&](const auto& x) -> std::optional<std::string> {
        using T = std::decay_t<decltype(x)>;
        if (x.proposal.coordinator.empty()) return "a proposal names no coordinator";
        if constexpr (std::is_same_v<T, AbortOp>) {
          return ValidateKey(limits, x.key);
        } else {
          return ValidatePut(limits, x.key, x.value);
        }
      },
      op);
}

std::optional<std::string> StoredValue(const Limits& limits, const Value& value) {
  if (value.size() <= limits.max_value_bytes) return std::nullopt;
  return absl::StrCat("a value of ", value.size(), " bytes is over this node's limit of ",
                      limits.max_value_bytes);
}

std::optional<std::string> VoteOf(const Limits& limits, const Vote& v) {
  return v.kind == Vote::Kind::kStored ? StoredValue(limits, v.stored) : std::nullopt;
}

}  // namespace

std::optional<std::string> ValidateRequest(const Limits& limits, const Request& request) {
  return std::visit(
      [&](const auto& x) -> std::optional<std::string> {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, HandleRequest> || std::is_same_v<T, ForwardRequest>) {
          return Op(limits, x.op);
        } else if constexpr (std::is_same_v<T, ReadRequest>) {
          return ValidateKey(limits, x.key);
        } else if constexpr (std::is_same_v<T, PullRequest>) {
          if (x.after.size() > limits.max_key_bytes) return ValidateKey(limits, x.after);
          return std::nullopt;
        } else if constexpr (std::is_same_v<T, AcceptRequest> ||
                             std::is_same_v<T, PrepareRequest> ||
                             std::is_same_v<T, ResolveRequest>) {
          if (x.proposal.coordinator.empty()) return "a proposal names no coordinator";
          // Empty from an older build, which sent no key.
          if (!x.key.empty()) return ValidateKey(limits, x.key);
          return std::nullopt;
        } else {
          return std::nullopt;  // configurations are checked when converted
        }
      },
      request);
}

std::optional<std::string> ValidateResponse(const Limits& limits, const Response& response) {
  return std::visit(
      [&](const auto& x) -> std::optional<std::string> {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, HandleResponse>) {
          return VoteOf(limits, x.vote);
        } else if constexpr (std::is_same_v<T, ForwardResponse>) {
          for (const Vote& v : x.votes) {
            if (auto bad = VoteOf(limits, v)) return bad;
          }
          return std::nullopt;
        } else if constexpr (std::is_same_v<T, ReadResponse>) {
          return StoredValue(limits, x.value);
        } else if constexpr (std::is_same_v<T, DigestResponse>) {
          if (x.buckets.size() != kDigestBuckets) {
            return absl::StrCat("a digest of ", x.buckets.size(), " buckets, not ", kDigestBuckets);
          }
          for (const Reservation& r : x.reservations) {
            if (auto bad = ValidatePut(limits, r.key, r.value)) return bad;
          }
          return std::nullopt;
        } else if constexpr (std::is_same_v<T, PullResponse>) {
          for (const PulledEntry& e : x.entries) {
            if (auto bad = ValidatePut(limits, e.key, e.value)) return bad;
          }
          return std::nullopt;
        } else {
          return std::nullopt;
        }
      },
      response);
}

}  // namespace replicator::core
