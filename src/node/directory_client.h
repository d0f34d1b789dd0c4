// DirectoryClient: this node's membership view, as the directory last
// reported it, and its registration with the directory on the bootstrap
// peer (join at start; join again when the directory comes back or this
// node's claim to vote changed). On the bootstrap peer itself the directory
// feeds OnMembers directly. Owned by Node::Impl; reactor thread only.
#pragma once

#include <asio/awaitable.hpp>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "core/engine.h"
#include "net/rpc.h"
#include "node/engine_driver.h"
#include "node/node_context.h"
#include "node/peer_network.h"

namespace replicator::node {

// Which map a membership message carries: `directory` names one run of
// the directory (random, never 0), `version` counts its changes. Zero:
// unversioned (always applied).
struct MapVersion {
  uint64_t directory = 0;
  uint64_t version = 0;
};

// Whether a map carrying `incoming` replaces the map applied at `applied`:
// anything unversioned, anything from another directory run (a restarted
// directory counts again from 1), else only a later version.
inline bool Supersedes(const MapVersion& incoming, const MapVersion& applied) {
  if (incoming.directory == 0 || incoming.directory != applied.directory) return true;
  return incoming.version > applied.version;
}

class DirectoryClient {
 public:
  DirectoryClient(const NodeContext& ctx, EngineDriver& driver, PeerNetwork& network);

  // Registers with the bootstrap peer and takes its membership map. Fails
  // (naming the address) when it cannot be reached within
  // options.bootstrap_timeout or refuses the registration.
  asio::awaitable<absl::Status> JoinDirectory();
  // Joins again whenever the directory connection is lost, or Claim()
  // changed since the last join. Runs until shutdown.
  asio::awaitable<void> StayJoined(std::weak_ptr<bool> token);

  // A membership map from the directory, with each cluster's founding
  // configuration. Ignored when it is not newer than the map this node has
  // from the same directory run: join replies and notifications may arrive
  // in any order.
  void OnMembers(std::vector<core::Member> members, std::vector<core::Configuration> founding,
                 MapVersion version);
  // This node as the directory last reported it; a node it has not listed
  // yet is catching up.
  core::Member Self() const;
  // The state this node joins with: a voter when its cluster's newest
  // configuration it knows includes it, else catching up. (The directory
  // shows a founding voter as a voter whatever it claims.)
  core::PeerState Claim() const;
  const std::vector<core::Member>& members() const { return members_; }

  // Closes the connection to the directory (shutdown).
  void Disconnect() { directory_connection_.reset(); }

 private:
  const NodeContext& ctx_;
  EngineDriver& driver_;
  PeerNetwork& network_;
  std::vector<core::Member> members_;                         // as the directory reported them
  MapVersion applied_;                                        // of members_
  std::optional<core::PeerState> claimed_;  // Claim() at the last join the directory took
  std::unique_ptr<net::RpcConnection> directory_connection_;  // not on the bootstrap peer
};

}  // namespace replicator::node
