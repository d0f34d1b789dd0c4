#include "core/tally.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace replicator::core {
namespace {

bool Contains(const std::vector<PeerId>& v, const PeerId& p) {
  return std::find(v.begin(), v.end(), p) != v.end();
}

std::string DescribeShortfall(const ClusterId& cluster, size_t ok, size_t total,
                              const std::vector<Vote>& votes) {
  std::string msg = absl::StrCat("cluster ", cluster, " reserved at ", ok, " of ", total,
                                 " voters; a strict majority (", total / 2 + 1, ") is needed");
  for (const Vote& v : votes) {
    if (v.cluster != cluster) continue;
    if (v.kind == Vote::Kind::kUnreachable) {
      absl::StrAppend(&msg, "; ", v.peer, " unreachable: ", v.reason);
      break;
    }
    if (v.kind == Vote::Kind::kDecided) {
      absl::StrAppend(&msg, "; ", v.peer, " already knew the proposal decided");
      break;
    }
  }
  return msg;
}

}  // namespace

TallyOutcome Tally(const VoterSnapshot& voters, const std::vector<Vote>& votes,
                   const ProposalId& self) {
  TallyOutcome out;
  for (const Vote& v : votes) {
    if (v.kind == Vote::Kind::kStored) {
      out.kind = TallyOutcome::Kind::kKeyExists;
      out.existing = v.stored;
      out.existing_request_id = v.stored_request_id;
      return out;
    }
  }

  std::map<ClusterId, std::set<PeerId>> ok;
  for (const Vote& v : votes) {
    if (v.kind != Vote::Kind::kOk) continue;
    auto it = voters.find(v.cluster);
    if (it == voters.end() || !Contains(it->second, v.peer)) continue;
    ok[v.cluster].insert(v.peer);
  }
  const std::pair<const ClusterId, std::vector<PeerId>>* short_cluster = nullptr;
  for (const auto& entry : voters) {
    if (!OkMajorityIsFinal(ok[entry.first].size(), entry.second.size())) {
      short_cluster = &entry;
      break;
    }
  }
  if (short_cluster == nullptr && !voters.empty()) {
    out.kind = TallyOutcome::Kind::kCommit;
    return out;
  }

  for (const Vote& v : votes) {
    if (v.kind != Vote::Kind::kReserved || v.holder == self) continue;
    if (std::find(out.holders.begin(), out.holders.end(), v.holder) == out.holders.end()) {
      out.holders.push_back(v.holder);
    }
  }
  if (!out.holders.empty()) {
    out.kind = TallyOutcome::Kind::kContention;
    std::vector<std::string> names;
    for (const ProposalId& h : out.holders) names.push_back(h.ToString());
    out.message = absl::StrCat("the key is reserved by concurrent proposal ",
                               absl::StrJoin(names, ", "),
                               "; retry later or choose another key");
    return out;
  }

  out.kind = TallyOutcome::Kind::kUnavailable;
  if (short_cluster == nullptr) {
    out.message = "no clusters to reserve in";
  } else {
    out.message = DescribeShortfall(short_cluster->first, ok[short_cluster->first].size(),
                                    short_cluster->second.size(), votes);
  }
  return out;
}

}  // namespace replicator::core
