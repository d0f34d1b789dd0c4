// DirectoryClient: this node's registrations with the other members'
// directories. A new node joins a federation through the first of
// --bootstrap that answers; afterwards every node stays registered with
// every member of its map (and with the --bootstrap addresses), each
// registration taking that member's map and a watcher through which it
// hears of every later change. So a change reaches every node from
// everyone who saw it, while any one of them is up; the first node is a
// discovery point like any other. Owned by Node::Impl; reactor thread only.
#pragma once

#include <asio/awaitable.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "net/rpc.h"
#include "node/directory_service.h"
#include "node/node_context.h"

namespace replicator::node {

class DirectoryClient {
 public:
  DirectoryClient(const NodeContext& ctx, DirectoryService& directory);

  // A new node: joins through the first of options.bootstrap that
  // registers it, trying them in turn until options.bootstrap_timeout.
  // Fails, naming the addresses, when none did.
  asio::awaitable<absl::Status> JoinFederation();
  // Every second, registers with each member of the map (and each
  // --bootstrap address) it has no live registration with. Runs until
  // shutdown.
  asio::awaitable<void> StayRegistered(std::weak_ptr<bool> token);

  // Closes every registration (shutdown).
  void Disconnect() { registrations_.clear(); }

 private:
  // Registers with the node at `address` within `timeout` and merges the
  // map it answers with.
  asio::awaitable<absl::Status> JoinAt(std::string address, std::chrono::milliseconds timeout);
  asio::awaitable<void> Register(std::weak_ptr<bool> token, std::string address);

  const NodeContext& ctx_;
  DirectoryService& directory_;
  std::map<std::string, std::unique_ptr<net::RpcConnection>> registrations_;  // by address
  std::set<std::string> joining_;                // addresses with a join in flight
  std::map<std::string, std::string> reported_;  // the last failure logged, by address
};

}  // namespace replicator::node
