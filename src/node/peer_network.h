// PeerNetwork: this node's calls to other nodes. Protocol calls wait in one
// outbox per peer and go as one Peer.call batch per turn of the loop;
// catch-up calls go alone through their own methods. Every kind takes the
// same path (Call) and is translated by convert.h. Caches one connection per
// peer address. One per shard (node/shards.h): its calls go to the same shard
// of each peer, over connections of its own. Reactor thread only.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <asio/awaitable.hpp>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "core/engine.h"
#include "net/rpc.h"
#include "node/node_context.h"
#include "schema/replicator.capnp.h"

namespace replicator::node {

class PeerNetwork {
 public:
  // Receives the responses to `calls`, in their order; never called once
  // the node has shut down.
  using Deliver = std::function<void(const std::vector<core::SendEffect>& calls,
                                     std::vector<core::Response> responses)>;

  // Calls go to shard `range.shard` of each peer (core/shard.h).
  PeerNetwork(const NodeContext& ctx, core::ShardRange range, Deliver deliver);

  // The membership as the directory last reported it: where each peer is,
  // and how many members its cluster has (a forward's reply holds a vote
  // per member).
  void SetMembers(const std::vector<core::Member>& members);

  // Sends `effect` to another node (never this one). A protocol call waits
  // in its peer's outbox for Flush, or goes at once with the whole outbox
  // when that reached a batch limit; a catch-up call goes alone, at once.
  // Returns whether the call waits for Flush.
  bool Send(core::SendEffect effect);
  // Sends every outbox as one batch. Runs each send inline up to its first
  // wait: call it from a plain Asio handler, never from a KJ event.
  void Flush();

  // Drops the calls not sent yet (shutdown).
  void DropQueued() { outboxes_.clear(); }
  // Closes every connection to a peer (shutdown).
  void Disconnect() { peers_.clear(); }

 private:
  struct Outbox {
    std::vector<core::SendEffect> calls;
    size_t bytes = 0;        // of the calls
    size_t reply_bytes = 0;  // the most their replies may carry
  };
  struct PeerConnection {
    std::unique_ptr<net::RpcConnection> connection;
    wire::Peer::Client peer;
  };

  // The most the reply to `effect` may carry: a reserve's vote can be
  // `stored` with a value of up to the value limit, one per voter for a
  // forward, and a read can return one.
  size_t ReplyBound(const core::SendEffect& effect) const;

  // Counts one batch to `to` and its round trip in ctx_.metrics.
  void Observe(const core::PeerId& to, size_t calls, std::chrono::steady_clock::duration elapsed,
               const std::vector<core::Response>& responses);
  asio::awaitable<void> SendBatch(std::weak_ptr<bool> token, core::PeerId to,
                                  std::vector<core::SendEffect> calls);
  // The one call path: `calls` are one batch for `to`, or one catch-up call.
  // Answers every call Unreachable on a failure or timeout, never hangs or
  // throws. `to` and `calls` must outlive the call (SendBatch's frame).
  asio::awaitable<std::vector<core::Response>> Call(const core::PeerId& to,
                                                    const std::vector<core::SendEffect>& calls);
  // The Cap'n Proto method for `calls`' kind, translated by convert.h: a
  // batch goes as Peer.call, a catch-up call by its own method. A malformed
  // answer throws. `calls` must outlive the returned awaitable.
  asio::awaitable<absl::StatusOr<std::vector<core::Response>>> Exchange(
      wire::Peer::Client peer, const std::vector<core::SendEffect>& calls,
      std::chrono::milliseconds within);
  asio::awaitable<absl::StatusOr<std::vector<core::Response>>> CallBatch(
      wire::Peer::Client peer, const std::vector<core::SendEffect>& calls,
      std::chrono::milliseconds within);
  asio::awaitable<absl::StatusOr<std::vector<core::Response>>> CallDigest(
      wire::Peer::Client peer, std::chrono::milliseconds within);
  asio::awaitable<absl::StatusOr<std::vector<core::Response>>> CallPull(
      wire::Peer::Client peer, const core::PullRequest& pull, std::chrono::milliseconds within);
  asio::awaitable<absl::StatusOr<wire::Peer::Client>> PeerClient(core::PeerId id,
                                                                 std::chrono::milliseconds timeout);

  const NodeContext& ctx_;
  const core::ShardRange range_;
  Deliver deliver_;
  absl::flat_hash_map<core::PeerId, std::string> address_of_;
  absl::flat_hash_map<core::PeerId, size_t> cluster_size_of_;  // members of a peer's cluster
  absl::flat_hash_map<core::PeerId, Outbox> outboxes_;
  absl::flat_hash_map<std::string, PeerConnection> peers_;  // by address
};

}  // namespace replicator::node
