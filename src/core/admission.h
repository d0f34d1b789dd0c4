// Admission: which peer may make which request (issue 11, "checked against
// its sender"). A request names proposals and ballots; the rule ties each
// to the peer the request came from, so that a node may only open, relay,
// abort or ballot what is its own to. Pure; thread-safe. The rule is
// documented, with the reasons, in docs/design.md ("Requests checked
// against their sender").
//
//   if (auto why = Admit(from, request, in_own_cluster)) refuse(*why);
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "core/engine.h"
#include "core/messages.h"

namespace replicator::core {

// Whether `peer` is a member of the receiver's cluster: in its membership
// view, or a voter of any configuration of it the receiver knows.
using MemberOfOwnCluster = std::function<bool(const PeerId& peer)>;

// Empty when `from` may make `request` at the receiver, else why not.
//   handle{reserve, commit, abort} of proposal p: from p's coordinator, or
//       from a member of the receiver's cluster relaying as representative
//       for a coordinator that is not one (a coordinator reaches its own
//       cluster's voters directly, never through a representative);
//   forward of p: from p's coordinator only;
//   prepare at ballot (r, q): r >= 1, from q, a member of the receiver's
//       cluster (decision(p) is settled there only);
//   accept at (r, q): from q, a member of the receiver's cluster; round 0
//       belongs to p's coordinator alone, so then q is p's coordinator;
//   configPrepare and configAccept at (r, q): from q;
//   everything else (read, resolve, digest, pull, configLearn, change):
//       any peer.
std::optional<std::string> Admit(const Sender& from, const Request& request,
                                 const MemberOfOwnCluster& in_own_cluster);

}  // namespace replicator::core
