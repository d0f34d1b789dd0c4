// Edge validation: what a node takes from a peer. A client's put and get
// are checked where they enter (coordinator, reader); a peer's calls and
// answers carry keys and values too, and a peer (a bug, a node with other
// limits, an outsider) must not get past the limits that way: a reserve, a
// commit, a pulled entry or a digest's reservation with a key or value
// over this node's limits would be stored, and then served, as if a client
// had been allowed to put it. The node calls these on every inbound call
// and every answer before the engine sees it; a refused call is answered
// as failed with the reason, a refused answer counts as no answer. Pure;
// thread-safe.
#pragma once

#include <optional>
#include <string>

#include "core/messages.h"
#include "core/types.h"

namespace replicator::core {

// Empty when `request` (from a peer) is within `limits`, else why not.
std::optional<std::string> ValidateRequest(const Limits& limits, const Request& request);

// Empty when `response` (a peer's answer) is within `limits`, else why not.
std::optional<std::string> ValidateResponse(const Limits& limits, const Response& response);

}  // namespace replicator::core
