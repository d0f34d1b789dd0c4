// The coordinator's decision rule over the reserve votes of one attempt.
// A pure function so that every rule has a table-driven test; the engine
// calls it on partial vote sets too (see Tally's contract). Thread-safe.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/quorum.h"
#include "core/types.h"

namespace replicator::core {

// Voters of every cluster as the attempt saw them (its topology snapshot).
using VoterSnapshot = std::map<ClusterId, std::vector<PeerId>>;

struct TallyOutcome {
  enum class Kind : uint8_t {
    kCommit,       // a strict majority of every cluster voted ok, nothing stored
    kKeyExists,    // some voter has the key committed
    kContention,   // short of a majority somewhere, and some voter holds
                   // the key for a concurrent proposal
    kUnavailable,  // short of a majority somewhere for other reasons
  };
  Kind kind = Kind::kUnavailable;
  Value existing;                   // kKeyExists: the stored value
  uint64_t existing_request_id = 0;  // kKeyExists: the request id stored with it
  std::vector<ProposalId> holders;  // kContention: distinct conflicting holders
  std::string message;              // kContention, kUnavailable: for the client

  // kCommit and kKeyExists cannot change as more votes arrive (see Tally);
  // the other kinds may, while answers are outstanding.
  bool final() const { return kind == Kind::kCommit || kind == Kind::kKeyExists; }
};

// Decides over `votes` for proposal `self`. A vote counts for a cluster only
// if its peer is a voter of that cluster in `voters`; duplicates count once.
// Rules, first match wins: any kStored -> kKeyExists; a strict majority of
// kOk in every cluster of `voters` -> kCommit; any kReserved by a proposal
// other than `self` -> kContention; else kUnavailable.
// kKeyExists and kCommit are final even on a partial vote set: more votes
// cannot undo a stored value, and a majority of ok everywhere excludes any
// other commit of the key (majorities intersect at a node that would have
// answered stored or reserved).
TallyOutcome Tally(const VoterSnapshot& voters, const std::vector<Vote>& votes,
                   const ProposalId& self);

}  // namespace replicator::core
