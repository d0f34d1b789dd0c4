// `replicator status --json`: a node's status as one JSON object, the same
// fields as the text form, for scripts. Field names are the C++ client's
// (NodeStatus) in snake_case; counters are numbers, states strings.
//
//   {"self": {"id": "12D3KooW...", "cluster": "c1", "address": "...", "state": "voter"},
//    "committed_keys": 12, "puts": {"ok": 12, ...}, "members": [...], ...}
#pragma once

#include <string>

#include "replicator/client.h"

namespace replicator {

// Pretty-printed (2-space indent), without a trailing newline.
std::string StatusJson(const NodeStatus& s);

}  // namespace replicator
