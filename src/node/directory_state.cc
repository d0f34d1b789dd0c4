#include "node/directory_state.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace replicator::node {
namespace {

constexpr char kHeaderV1[] = "replicator-membership 1";  // members only, on the first node
constexpr char kHeaderV2[] = "replicator-membership 2";  // and founding sets
constexpr char kHeaderV3[] = "replicator-membership 3";  // at every node, with stamps
constexpr char kHeader[] = "replicator-membership 4";    // founding sets with generations
constexpr char kFederation[] = "federation";
constexpr char kNamesFounding[] = "names-founding";
constexpr char kFounding[] = "founding";
// A founding set has at least this many voters (a member line has 4 or 5
// fields, a founding line at least 5, 6 from version 4, and starts with
// `founding`).
constexpr size_t kMinFounding = 3;

bool ById(const Entry& a, const Entry& b) { return a.member.id < b.member.id; }

// Founds, for a version 1 file, each cluster with every voter it has.
void FoundWithClaimedVoters(DirectoryState& state) {
  std::map<core::ClusterId, std::vector<core::PeerId>> voters;
  for (const Entry& e : state.members) {
    if (e.member.state == core::PeerState::kVoter) voters[e.member.cluster].push_back(e.member.id);
  }
  for (auto& [cluster, ids] : voters) {
    if (ids.size() < kMinFounding) continue;
    std::sort(ids.begin(), ids.end());
    state.founding.push_back(core::Configuration{cluster, 1, std::move(ids)});
  }
}

}  // namespace

std::string EncodeDirectoryState(const DirectoryState& state) {
  std::string out = absl::StrCat(kHeader, "\n");
  absl::StrAppend(&out, kFederation, " ", absl::Hex(state.federation, absl::kZeroPad16), "\n");
  absl::StrAppend(&out, kNamesFounding, " ", state.names_founding ? "yes" : "no", "\n");
  for (const Entry& e : state.members) {
    const core::Member& m = e.member;
    const char* kind = m.state == core::PeerState::kCatchingUp ? "catching-up" : "voter";
    absl::StrAppend(&out, m.id, " ", m.cluster, " ", m.address, " ", kind, " ", e.stamp, "\n");
  }
  for (const core::Configuration& c : state.founding) {
    absl::StrAppend(&out, kFounding, " ", c.cluster, " ", c.generation, " ",
                    absl::StrJoin(c.voters, " "), "\n");
  }
  return out;
}

absl::StatusOr<DirectoryState> DecodeDirectoryState(const std::string& text,
                                                    const std::string& path) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  auto bad = [&](size_t line, const std::string& why) {
    return absl::DataLossError(absl::StrCat("membership file ", path, " line ", line + 1, ": ", why,
                                            " (restore it from a backup, or remove it and "
                                            "the node's data dir to join as a new node)"));
  };
  int version = 0;
  for (const auto& [header, v] : {std::pair{kHeader, 4}, std::pair{kHeaderV3, 3},
                                  std::pair{kHeaderV2, 2}, std::pair{kHeaderV1, 1}}) {
    if (!lines.empty() && lines[0] == header) version = v;
  }
  if (version == 0) return bad(0, absl::StrCat("expected '", kHeader, "'"));
  DirectoryState state;
  state.names_founding = version < 3;  // only the first node wrote a file before
  size_t i = 1;
  if (version >= 3) {
    std::vector<std::string> f =
        lines.size() > 1 ? absl::StrSplit(lines[1], ' ') : std::vector<std::string>{};
    if (f.size() != 2 || f[0] != kFederation || f[1].size() != 16 ||
        !absl::SimpleHexAtoi(f[1], &state.federation)) {
      return bad(1, absl::StrCat("expected '", kFederation, " <16 hex digits>'"));
    }
    f = lines.size() > 2 ? absl::StrSplit(lines[2], ' ') : std::vector<std::string>{};
    if (f.size() != 2 || f[0] != kNamesFounding || (f[1] != "yes" && f[1] != "no")) {
      return bad(2,
                 absl::StrCat("expected '", kNamesFounding, " yes' or '", kNamesFounding, " no'"));
    }
    state.names_founding = f[1] == "yes";
    i = 3;
  }
  const size_t member_fields = version >= 3 ? 5 : 4;
  std::map<core::PeerId, core::ClusterId> cluster_of;
  std::map<core::ClusterId, size_t> founded_at;  // cluster -> line
  for (; i < lines.size(); ++i) {
    std::vector<std::string> f = absl::StrSplit(lines[i], ' ');
    if (version >= 2 && f.size() > 4 && f[0] == kFounding) {
      if (std::optional<std::string> why = core::ValidateClusterId(f[1])) return bad(i, *why);
      core::Configuration c{f[1], 1, {}, 0};
      size_t first_voter = 2;
      if (version >= 4) {
        if (!absl::SimpleAtoi(f[2], &c.generation) || c.generation == 0) {
          return bad(i, absl::StrCat("bad generation '", f[2], "'"));
        }
        first_voter = 3;
      }
      c.voters.assign(f.begin() + first_voter, f.end());
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
    if (f.size() != member_fields || f[0].empty() || f[2].empty()) {
      const std::string member = version >= 3 ? "'<peer id> <cluster> <address> <state> <stamp>'"
                                              : "'<peer id> <cluster> <address> <state>'";
      const std::string founding = version >= 4 ? "'founding <cluster> <generation> <peer id>...'"
                                                : "'founding <cluster> <peer id>...'";
      return bad(i, version >= 2 ? absl::StrCat("expected ", member, " or ", founding)
                                 : absl::StrCat("expected ", member));
    }
    if (std::optional<std::string> why = core::ValidateClusterId(f[1])) return bad(i, *why);
    Entry e{core::Member{f[0], f[1], f[2], core::PeerState::kVoter}, 0};
    if (f[3] == "catching-up") {
      e.member.state = core::PeerState::kCatchingUp;
    } else if (f[3] != "voter") {
      return bad(i, absl::StrCat("unknown state '", f[3], "'"));
    }
    if (version >= 3 && !absl::SimpleAtoi(f[4], &e.stamp)) {
      return bad(i, absl::StrCat("bad stamp '", f[4], "'"));
    }
    if (!cluster_of.emplace(e.member.id, e.member.cluster).second) {
      return bad(i, absl::StrCat("peer ", e.member.id, " listed twice"));
    }
    state.members.push_back(std::move(e));
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
  std::sort(state.members.begin(), state.members.end(), ById);
  std::sort(state.founding.begin(), state.founding.end(),
            [](const core::Configuration& a, const core::Configuration& b) {
              return a.cluster < b.cluster;
            });
  if (version == 1) FoundWithClaimedVoters(state);
  if (version < 4) {
    // Before generations, the first node named every cluster's founding
    // set as the clusters formed, all at the deployment's start: they get
    // generations in the order of their ids.
    uint64_t g = 0;
    for (core::Configuration& c : state.founding) c.generation = ++g;
  }
  return state;
}

absl::Status SameFederation(uint64_t mine, uint64_t theirs, const std::string& who) {
  if (theirs != 0 && (mine == 0 || mine == theirs)) return absl::OkStatus();
  auto name = [](uint64_t id) { return absl::StrCat(absl::Hex(id, absl::kZeroPad16)); };
  if (theirs == 0) {
    return absl::FailedPreconditionError(absl::StrCat(who, " names no federation"));
  }
  return absl::FailedPreconditionError(
      absl::StrCat(who, " is of federation ", name(theirs), "; this node is of ", name(mine),
                   " (a node belongs to one federation for good: a node of another one must "
                   "start with a new data dir to join this one)"));
}

core::PeerState ShownState(const std::vector<core::Configuration>& founding,
                           const core::Member& member) {
  for (const core::Configuration& c : founding) {
    if (c.cluster != member.cluster) continue;
    bool founder = std::binary_search(c.voters.begin(), c.voters.end(), member.id);
    return founder || member.state == core::PeerState::kVoter ? core::PeerState::kVoter
                                                              : core::PeerState::kCatchingUp;
  }
  return member.state;
}

absl::StatusOr<bool> MergeEntry(DirectoryState& state, const Entry& incoming) {
  auto at = std::lower_bound(state.members.begin(), state.members.end(), incoming, ById);
  if (at == state.members.end() || at->member.id != incoming.member.id) {
    state.members.insert(at, incoming);
    return true;
  }
  if (at->member.cluster != incoming.member.cluster) {
    return absl::FailedPreconditionError(
        absl::StrCat("peer ", incoming.member.id, " is a member of cluster ", at->member.cluster,
                     "; a peer cannot move to cluster ", incoming.member.cluster));
  }
  if (incoming.stamp <= at->stamp) return false;
  *at = incoming;
  return true;
}

absl::StatusOr<bool> MergeFounding(DirectoryState& state, const core::Configuration& config) {
  auto at = std::lower_bound(state.founding.begin(), state.founding.end(), config,
                             [](const core::Configuration& a, const core::Configuration& b) {
                               return a.cluster < b.cluster;
                             });
  if (at != state.founding.end() && at->cluster == config.cluster) {
    if (*at == config) return false;
    return absl::FailedPreconditionError(
        absl::StrCat("cluster ", config.cluster, " was founded by ", absl::StrJoin(at->voters, ","),
                     " but a peer says ", absl::StrJoin(config.voters, ","),
                     "; keeping the first (two nodes name founding sets: is a second federation "
                     "connected to this one?)"));
  }
  if (config.epoch != 1 || config.generation == 0 || config.voters.size() < kMinFounding ||
      !std::is_sorted(config.voters.begin(), config.voters.end()) ||
      std::adjacent_find(config.voters.begin(), config.voters.end()) != config.voters.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("malformed founding set of cluster ", config.cluster));
  }
  state.founding.insert(at, config);
  return true;
}

bool MaybeFound(DirectoryState& state, const core::ClusterId& cluster) {
  // The federation's first cluster only: every later one is founded by
  // consensus of the clusters before it (core/founding.h).
  if (!state.names_founding || !state.founding.empty()) return false;
  std::vector<core::PeerId> voters;
  for (const Entry& e : state.members) {
    if (e.member.cluster == cluster) voters.push_back(e.member.id);
  }
  if (voters.size() < kMinFounding) return false;
  std::sort(voters.begin(), voters.end());
  state.founding.push_back(core::Configuration{cluster, 1, std::move(voters), 1});
  return true;
}

}  // namespace replicator::node
