// The Cap'n Proto servers of one node (Node, KeyValue, Peer, Directory,
// Watcher), each a thin adapter: it converts through convert.h and runs the
// work as an Asio coroutine on the reactor thread, where KJ calls it. Each
// holds the node's parts by pointer plus the node's liveness token, and
// answers DISCONNECTED ("node is shutting down") once the node is gone.
#pragma once

#include <kj/memory.h>

#include <functional>
#include <string>

#include "node/caller.h"
#include "node/convert.h"
#include "node/node_context.h"
#include "schema/replicator.capnp.h"

namespace replicator::node {

class Shards;
class DirectoryService;

// What the servers answer from. Every pointer stays valid while
// ctx->alive has not expired.
struct ServedParts {
  const NodeContext* ctx;
  Shards* shards;
  DirectoryService* directory;
  std::function<StatusReport()> status;
  // Counted by KeyValue.putMany and getMany.
  BatchStats* batches;
};

// The bootstrap of one connection from `caller`: each face and method
// refuses what caller.h's rules do not allow `caller`, with a FAILED
// exception whose message starts "permission denied: ".
kj::Own<wire::Node::Server> NewNodeServer(ServedParts parts, Caller caller);
// The watcher this node registers with the directory of the node at
// `from`: its notifications are merged into `directory`.
kj::Own<wire::Watcher::Server> NewWatcherServer(const NodeContext& ctx, DirectoryService* directory,
                                                std::string from);

}  // namespace replicator::node
