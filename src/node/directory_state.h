// The membership map every node keeps, and its durable form: every node
// it has heard of, with its cluster, address, claim to vote and stamp; each
// cluster's founding configuration; which federation this is and whether
// this node names founding sets. Kept in every node's data dir (file
// `membership`), so a restarted node starts from the map it had rather than
// from whoever speaks to it first. A text format, one entry a line, so an
// operator can read it.
//
// The map is replicated by gossip and merges like a CRDT: an entry is
// written only by the node it describes, which stamps every change higher
// than the last; a merge keeps the higher stamp, so maps that arrive late,
// twice or in any order converge to the same map. The federation's first
// cluster's founding set is named by one node only (the one that started
// the federation), at generation 1, and never replaced; later clusters are
// founded by consensus in the engine (core/founding.h) and reach the
// engine from there, not through this map. Pure; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/types.h"

namespace replicator::node {

inline constexpr char kDirectoryStateFile[] = "membership";

// One node as it last described itself.
struct Entry {
  core::Member member;  // state: what it claims, kVoter or kCatchingUp
  // Orders the node's descriptions of itself: higher is newer. 0: from a
  // file or peer that knew no stamps, superseded by any description.
  uint64_t stamp = 0;

  friend bool operator==(const Entry&, const Entry&) = default;
};

struct DirectoryState {
  // Names the federation (random, never 0; 0 until this node has joined
  // one). Maps of another federation are refused.
  uint64_t federation = 0;
  // This node started the federation and names every cluster's founding
  // set. Exactly one node of a federation ever does, so no cluster is
  // founded twice.
  bool names_founding = false;
  std::vector<Entry> members;  // ordered by peer id
  // Epoch 1 of each cluster that has one, at most one per cluster, ordered
  // by cluster.
  std::vector<core::Configuration> founding;

  friend bool operator==(const DirectoryState&, const DirectoryState&) = default;
};

// "replicator-membership 4", "federation <16 hex digits>", "names-founding
// yes|no", then "<peer id> <cluster> <address> <state> <stamp>" per member,
// state `voter` or `catching-up`, then "founding <cluster> <generation>
// <peer id> <peer id> <peer id>..." per founding set (its voters sorted). A down voter is
// written as a voter: down is not membership.
std::string EncodeDirectoryState(const DirectoryState& state);

// The state `text` (read from `path`) holds. Also reads the files of
// version 3 (founding sets without generations: they get 1, 2, ... in
// cluster order, all having been named as the deployment started) and of
// versions 1 and 2, which only the federation's first node wrote: they
// read as naming founding sets, with stamps 0 and federation 0 (the caller
// names one); a version 1 file (from before founding sets) founds each
// cluster that has 3 voters with all of them, the set its quorums counted. DataLossError naming the
// file and line for anything malformed: an unknown header or version, a member line of the wrong
// shape, a bad cluster id, state or stamp, a peer listed twice, a founding
// set of fewer than 3 voters, unsorted or repeated, of a cluster named
// twice, or naming a peer that is not a member of its cluster.
absl::StatusOr<DirectoryState> DecodeDirectoryState(const std::string& text,
                                                    const std::string& path);

// The map's rules, over its state.
//
// Whether a node of federation `mine` takes a join or a map from `who`, of
// federation `theirs`: yes when they are the same, or when `mine` is 0 (a
// new node takes the first federation it joins) and `theirs` is not.
// FailedPrecondition naming both otherwise: a node belongs to one
// federation for good, so two federations never mix their maps.
absl::Status SameFederation(uint64_t mine, uint64_t theirs, const std::string& who);
//
// The state `member` is shown in, given what it claims (member.state): a
// founding voter of its cluster is a voter, and so is every member while
// its cluster has no founding set (it forms from its first voters); anyone
// else is shown as it claims, a voter or catching up.
core::PeerState ShownState(const std::vector<core::Configuration>& founding,
                           const core::Member& member);

// Merges one entry into `state`: taken when its peer is unknown or its
// stamp is higher than the entry held (ties keep the held one, so a merge
// is idempotent). Returns whether the state changed. Fails, changing
// nothing, when the peer is known in another cluster: a node never moves.
absl::StatusOr<bool> MergeEntry(DirectoryState& state, const Entry& incoming);

// Takes `config` (a founding set heard from a peer) when `state` has none
// for its cluster; returns whether it did. Fails when the cluster already
// has a different founding set: one of the two maps is not of this
// federation's namer, and the held set is kept.
absl::StatusOr<bool> MergeFounding(DirectoryState& state, const core::Configuration& config);

// Names `cluster`'s founding set (epoch 1, generation 1) when
// state.names_founding, no cluster has one yet and state.members hold at
// least 3 of its members: all of them, sorted (exactly 3 when called after
// every merge). Only the federation's first cluster is founded so: every
// later one by consensus of the clusters before it (core/founding.h).
// Returns whether it named one.
bool MaybeFound(DirectoryState& state, const core::ClusterId& cluster);

}  // namespace replicator::node
