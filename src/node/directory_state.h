// The membership directory's durable state: every registered node with its
// cluster, address and whether it votes, kept in the bootstrap peer's data
// dir (file `membership`), so a restarted directory starts from the voter
// sets it had rather than from whoever re-registers first. A text format,
// one member a line, so an operator can read it. Pure; thread-safe.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/types.h"

namespace replicator::node {

inline constexpr char kDirectoryStateFile[] = "membership";

// "replicator-membership 1", then "<peer id> <cluster> <address> <state>"
// per member, state `voter` or `catching-up`, in the order given. A down
// voter is written as a voter: down is not membership.
std::string EncodeDirectoryState(const std::vector<core::Member>& members);

// The members `text` (read from `path`) lists. DataLossError naming the
// file and line for anything malformed: an unknown header or version, a
// line without four fields, a bad cluster id, an unknown state, a peer
// listed twice.
absl::StatusOr<std::vector<core::Member>> DecodeDirectoryState(const std::string& text,
                                                               const std::string& path);

}  // namespace replicator::node
