// DirectoryClient: this node's membership view, as the directory last
// reported it, and its registration with the directory on the bootstrap
// peer (join at start; join again when the directory comes back or this
// node has caught up). On the bootstrap peer itself the directory feeds
// OnMembers directly. Owned by Node::Impl; reactor thread only.
#pragma once

#include <memory>
#include <vector>

#include <asio/awaitable.hpp>

#include "absl/status/status.h"
#include "core/engine.h"
#include "net/rpc.h"
#include "node/engine_driver.h"
#include "node/node_context.h"
#include "node/peer_network.h"

namespace replicator::node {

class DirectoryClient {
 public:
  DirectoryClient(const NodeContext& ctx, EngineDriver& driver, PeerNetwork& network);

  // Registers with the bootstrap peer and takes its membership map. Fails
  // (naming the address) when it cannot be reached within
  // options.bootstrap_timeout or refuses the registration.
  asio::awaitable<absl::Status> JoinDirectory();
  // Joins again whenever the directory connection is lost, or this node
  // has caught up and may be promoted to voter. Runs until shutdown.
  asio::awaitable<void> StayJoined(std::weak_ptr<bool> token);

  // A new membership map from the directory.
  void OnMembers(std::vector<core::Member> members);
  // This node as the directory last reported it; a node it has not listed
  // yet is catching up.
  core::Member Self() const;
  const std::vector<core::Member>& members() const { return members_; }

  // Closes the connection to the directory (shutdown).
  void Disconnect() { directory_connection_.reset(); }

 private:
  const NodeContext& ctx_;
  EngineDriver& driver_;
  PeerNetwork& network_;
  std::vector<core::Member> members_;                         // as the directory reported them
  std::unique_ptr<net::RpcConnection> directory_connection_;  // not on the bootstrap peer
};

}  // namespace replicator::node
