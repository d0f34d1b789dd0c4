// NodeContext: what every part of one node shares: the reactor, the node's
// options, identity and address, the shut-down flag and the liveness token.
// Owned by Node::Impl, which outlives every part that holds a reference to
// it. Each shard (node/shards.h) has its own, naming its own reactor and
// metrics; the rest is the node's, constant once shards run but for the
// atomic shut-down flag and the liveness token (a weak_ptr copy each).
#pragma once

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <atomic>
#include <memory>
#include <string>

#include "core/messages.h"
#include "core/types.h"
#include "node/identity.h"
#include "node/node.h"
#include "node/node_metrics.h"

namespace replicator::node {

// Engine time: monotonic milliseconds (steady_clock), so leases, deadlines
// and backoff do not move when the wall clock is stepped.
core::TimeMs Now();
// Wall-clock milliseconds since the Unix epoch: only where a time must be
// comparable across nodes (a put's start, which orders racing proposals).
core::TimeMs WallNow();

inline const char* ShuttingDown() { return "node is shutting down"; }

inline core::Response Unreachable(std::string reason) {
  return core::Unreachable{std::move(reason)};
}

struct NodeContext {
  net::Reactor& reactor;
  const NodeOptions& options;
  const Identity& identity;
  const std::string& address;  // "host:port", empty until the node serves
  // Set once, by Node::Impl::Shutdown; read by every shard's thread.
  const std::atomic<bool>& shut_down;
  // Expires when Node::Impl is destroyed; a handler or coroutine that
  // outlives the node checks it before touching any part.
  std::weak_ptr<bool> alive;
  // Counters and histograms for /metrics (node_metrics.h).
  NodeMetrics& metrics;

  asio::io_context& io() const;
  // Starts `work` on the reactor from a later handler: co_spawn alone may run
  // it inline, and this may be called from inside a KJ event.
  void Spawn(asio::awaitable<void> work) const;
};

}  // namespace replicator::node
