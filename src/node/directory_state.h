// The membership directory's durable state: every registered node with its
// cluster, address and whether it votes, and each cluster's founding
// configuration, kept in the bootstrap peer's data dir (file `membership`),
// so a restarted directory starts from the voter sets it had rather than
// from whoever re-registers first, and never names a second founding set.
// A text format, one member or founding set a line, so an operator can read
// it. Pure; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/types.h"

namespace replicator::node {

inline constexpr char kDirectoryStateFile[] = "membership";

struct DirectoryState {
  std::vector<core::Member> members;
  // Epoch 1 of each cluster that has one, at most one per cluster.
  std::vector<core::Configuration> founding;

  friend bool operator==(const DirectoryState&, const DirectoryState&) = default;
};

// "replicator-membership 2", then "<peer id> <cluster> <address> <state>"
// per member, state `voter` or `catching-up`, then "founding <cluster>
// <peer id> <peer id> <peer id>..." per founding set (its voters sorted),
// each in the order given. A down voter is written as a voter: down is not
// membership.
std::string EncodeDirectoryState(const DirectoryState& state);

// The state `text` (read from `path`) holds. Also reads version 1 files,
// written before founding sets existed (members only). DataLossError naming
// the file and line for anything malformed: an unknown header or version, a
// member line without four fields, a bad cluster id, an unknown state, a
// peer listed twice, a founding set of fewer than 3 voters, unsorted or
// repeated, of a cluster named twice, or naming a peer that is not a member
// of its cluster.
absl::StatusOr<DirectoryState> DecodeDirectoryState(const std::string& text,
                                                    const std::string& path);

// The directory's rules, over its state.
//
// The state the directory registers `joining` in, given what it claims
// (joining.state): a founding voter of its cluster is a voter, and so is
// every joiner while the cluster has no founding set (it forms from its
// first voters); anyone else is shown as it claims, a voter or catching up.
core::PeerState RegisteredState(const std::vector<core::Configuration>& founding,
                                const core::Member& joining);

// Names `cluster`'s founding set (epoch 1) when it has none and
// state.members hold at least 3 voters of it: all of them, sorted, which
// is exactly 3 unless the state was read from a file written before
// founding sets existed. Keeps state.founding ordered by cluster. Returns
// whether it named one.
bool MaybeFound(DirectoryState& state, const core::ClusterId& cluster);

}  // namespace replicator::node
