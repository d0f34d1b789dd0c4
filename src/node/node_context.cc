#include "node/node_context.h"

#include <chrono>
#include <utility>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>

#include "net/reactor.h"

namespace replicator::node {

core::TimeMs Now() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

core::TimeMs WallNow() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

asio::io_context& NodeContext::io() const { return reactor.io(); }

void NodeContext::Spawn(asio::awaitable<void> work) const {
  asio::post(io(), [&ctx = io(), token = alive, work = std::move(work)]() mutable {
    if (!token.expired()) asio::co_spawn(ctx, std::move(work), asio::detached);
  });
}

}  // namespace replicator::node
