#include "node/directory_state.h"

#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace replicator::node {
namespace {

constexpr char kHeader[] = "replicator-membership 1";

}  // namespace

std::string EncodeDirectoryState(const std::vector<core::Member>& members) {
  std::string out = absl::StrCat(kHeader, "\n");
  for (const core::Member& m : members) {
    const char* state = m.state == core::PeerState::kCatchingUp ? "catching-up" : "voter";
    absl::StrAppend(&out, m.id, " ", m.cluster, " ", m.address, " ", state, "\n");
  }
  return out;
}

absl::StatusOr<std::vector<core::Member>> DecodeDirectoryState(const std::string& text,
                                                               const std::string& path) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  auto bad = [&](size_t line, const std::string& why) {
    return absl::DataLossError(absl::StrCat("membership file ", path, " line ", line + 1, ": ",
                                            why, " (restore it from a backup, or remove it to "
                                            "start the directory empty)"));
  };
  if (lines.empty() || lines[0] != kHeader) {
    return bad(0, absl::StrCat("expected '", kHeader, "'"));
  }
  std::vector<core::Member> members;
  std::set<core::PeerId> seen;
  for (size_t i = 1; i < lines.size(); ++i) {
    std::vector<std::string> f = absl::StrSplit(lines[i], ' ');
    if (f.size() != 4 || f[0].empty() || f[2].empty()) {
      return bad(i, "expected '<peer id> <cluster> <address> <state>'");
    }
    if (std::optional<std::string> why = core::ValidateClusterId(f[1])) return bad(i, *why);
    core::Member m{f[0], f[1], f[2], core::PeerState::kVoter};
    if (f[3] == "catching-up") {
      m.state = core::PeerState::kCatchingUp;
    } else if (f[3] != "voter") {
      return bad(i, absl::StrCat("unknown state '", f[3], "'"));
    }
    if (!seen.insert(m.id).second) return bad(i, absl::StrCat("peer ", m.id, " listed twice"));
    members.push_back(std::move(m));
  }
  return members;
}

}  // namespace replicator::node
