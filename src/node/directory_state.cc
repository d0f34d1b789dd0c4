#include "node/directory_state.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace replicator::node {
namespace {

constexpr char kHeaderV1[] = "replicator-membership 1";  // members only
constexpr char kHeader[] = "replicator-membership 2";
constexpr char kFounding[] = "founding";
// A founding set has at least this many voters (a member line has 4 fields,
// a founding line at least 5, so the two never read as each other).
constexpr size_t kMinFounding = 3;

}  // namespace

std::string EncodeDirectoryState(const DirectoryState& state) {
  std::string out = absl::StrCat(kHeader, "\n");
  for (const core::Member& m : state.members) {
    const char* kind = m.state == core::PeerState::kCatchingUp ? "catching-up" : "voter";
    absl::StrAppend(&out, m.id, " ", m.cluster, " ", m.address, " ", kind, "\n");
  }
  for (const core::Configuration& c : state.founding) {
    absl::StrAppend(&out, kFounding, " ", c.cluster, " ", absl::StrJoin(c.voters, " "), "\n");
  }
  return out;
}

absl::StatusOr<DirectoryState> DecodeDirectoryState(const std::string& text,
                                                    const std::string& path) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  auto bad = [&](size_t line, const std::string& why) {
    return absl::DataLossError(absl::StrCat("membership file ", path, " line ", line + 1, ": ",
                                            why, " (restore it from a backup, or remove it to "
                                            "start the directory empty)"));
  };
  if (lines.empty() || (lines[0] != kHeader && lines[0] != kHeaderV1)) {
    return bad(0, absl::StrCat("expected '", kHeader, "'"));
  }
  const bool has_founding = lines[0] == kHeader;
  DirectoryState state;
  std::map<core::PeerId, core::ClusterId> cluster_of;
  std::map<core::ClusterId, size_t> founded_at;  // cluster -> line
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<std::string> f = absl::StrSplit(lines[i], ' ');
    if (has_founding && f.size() > 4 && f[0] == kFounding) {
      if (std::optional<std::string> why = core::ValidateClusterId(f[1])) return bad(i, *why);
      core::Configuration c{f[1], 1, std::vector<core::PeerId>(f.begin() + 2, f.end())};
      if (c.voters.size() < kMinFounding) {
        return bad(i, absl::StrCat("a founding set has at least ", kMinFounding, " voters"));
      }
      for (size_t v = 0; v < c.voters.size(); ++v) {
        if (c.voters[v].empty() || (v > 0 && !(c.voters[v - 1] < c.voters[v]))) {
          return bad(i, "a founding set's voters are sorted, each once");
        }
      }
      if (!founded_at.emplace(c.cluster, i).second) {
        return bad(i, absl::StrCat("cluster ", c.cluster, " founded twice"));
      }
      state.founding.push_back(std::move(c));
      continue;
    }
    if (f.size() != 4 || f[0].empty() || f[2].empty()) {
      return bad(i, has_founding ? "expected '<peer id> <cluster> <address> <state>' or "
                                   "'founding <cluster> <peer id>...'"
                                 : "expected '<peer id> <cluster> <address> <state>'");
    }
    if (std::optional<std::string> why = core::ValidateClusterId(f[1])) return bad(i, *why);
    core::Member m{f[0], f[1], f[2], core::PeerState::kVoter};
    if (f[3] == "catching-up") {
      m.state = core::PeerState::kCatchingUp;
    } else if (f[3] != "voter") {
      return bad(i, absl::StrCat("unknown state '", f[3], "'"));
    }
    if (!cluster_of.emplace(m.id, m.cluster).second) {
      return bad(i, absl::StrCat("peer ", m.id, " listed twice"));
    }
    state.members.push_back(std::move(m));
  }
  for (const core::Configuration& c : state.founding) {
    for (const core::PeerId& id : c.voters) {
      auto it = cluster_of.find(id);
      if (it == cluster_of.end() || it->second != c.cluster) {
        return bad(founded_at[c.cluster],
                   absl::StrCat("founding voter ", id, " is not a member of cluster ", c.cluster));
      }
    }
  }
  return state;
}

core::PeerState RegisteredState(const std::vector<core::Configuration>& founding,
                                const core::Member& joining) {
  for (const core::Configuration& c : founding) {
    if (c.cluster != joining.cluster) continue;
    bool founder = std::binary_search(c.voters.begin(), c.voters.end(), joining.id);
    return founder || joining.state == core::PeerState::kVoter ? core::PeerState::kVoter
                                                               : core::PeerState::kCatchingUp;
  }
  return core::PeerState::kVoter;
}

bool MaybeFound(DirectoryState& state, const core::ClusterId& cluster) {
  for (const core::Configuration& c : state.founding) {
    if (c.cluster == cluster) return false;
  }
  std::vector<core::PeerId> voters;
  for (const core::Member& m : state.members) {
    if (m.cluster == cluster && m.state != core::PeerState::kCatchingUp) voters.push_back(m.id);
  }
  if (voters.size() < kMinFounding) return false;
  std::sort(voters.begin(), voters.end());
  auto at = std::find_if(state.founding.begin(), state.founding.end(),
                         [&](const core::Configuration& c) { return cluster < c.cluster; });
  state.founding.insert(at, core::Configuration{cluster, 1, std::move(voters)});
  return true;
}

}  // namespace replicator::node
