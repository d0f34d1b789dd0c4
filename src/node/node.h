// Node: one replicatord process. Owns the engine, storage, the RPC server
// and the connections to peers, and drives the engine's effects over Cap'n
// Proto. Lives on one reactor thread; every method must be called there.
//
//   net::Reactor reactor;
//   auto node = co_await Node::Start(reactor, options);  // serving + joined
//   ...
//   node->Shutdown();
#pragma once

#include <asio/awaitable.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "core/engine.h"
#include "net/rpc.h"
#include "node/identity.h"
#include "storage/storage.h"

namespace replicator::net {
class Reactor;
class TlsContext;
}

namespace replicator::node {

struct NodeOptions {
  core::ClusterId cluster;
  // HOST:PORT served on; port 0 picks a free one. A host name is resolved once, at start, and
  // the first address it resolves to is bound (net::ResolveListenEndpoint).
  std::string listen = "127.0.0.1:0";
  // HOST:PORT other nodes and clients are told (member map, directory entries); empty: the
  // address served on. The caller checks it (net::AdvertisedAddress).
  std::string advertise;
  // HOST:PORT of members to join through, tried in turn, when this node has
  // no membership map yet (a new node). Empty for a new node: it starts a
  // new federation. Afterwards the node knows its peers from its own map.
  std::vector<std::string> bootstrap;
  std::string data_dir;
  // Engines this node runs, each over its share of the keys, with storage
  // of its own (core/shard.h): 1 to core::kMaxShards, the same on every
  // node of a federation. Fixed at a data dir's first start; a later start
  // with another count exits with an error.
  uint32_t shards = 1;
  bool memory_storage = false;         // lose everything on exit (tests)
  // When RocksDB storage reads every record to check it (storage::Verify):
  // by default after start, so that a start does not wait for it.
  storage::Verify storage_verify = storage::Verify::kBackground;
  core::Limits limits;
  std::chrono::milliseconds call_deadline{1000};
  std::chrono::milliseconds lease{2000};
  std::chrono::milliseconds bootstrap_timeout{5000};
  // HOST:PORT to serve /metrics and /healthz on over HTTP; empty: none.
  std::string metrics_listen;
  // A put answered later than this is logged with its outcome.
  std::chrono::milliseconds slow_put_threshold{1000};
  // Connections, idle timeout and in-flight bytes per connection of the
  // node's server (net/rpc.h). Messages are limited by `limits`
  // (core/wire_limits.h).
  net::ServerLimits server_limits;
  // Test-only fault injection; empty in production. See --failpoint.
  std::string failpoint;
  // TLS 1.3 with mutual authentication on every connection, in and out:
  // this node's certificate (for its identity key: Start refuses another)
  // and the federation's CA. Null: plaintext, nobody authenticated
  // (--insecure).
  std::shared_ptr<const net::TlsContext> tls;
};

class Node {
 public:
  // Opens identity and storage, starts serving and, for a new node, joins
  // the federation. Fails (with a message naming the addresses) when a new
  // node can reach no bootstrap peer within options.bootstrap_timeout.
  static asio::awaitable<absl::StatusOr<std::unique_ptr<Node>>> Start(net::Reactor& reactor,
                                                                      NodeOptions options);
  ~Node();

  const Identity& identity() const;
  // The address this node is reached at, "host:port": NodeOptions::advertise, or else the
  // address it serves on.
  const std::string& address() const;
  // The address /metrics is served on, "host:port"; empty without
  // NodeOptions::metrics_listen.
  const std::string& metrics_address() const;

  // Stops serving; waiting client calls are answered `unavailable`.
  void Shutdown();

  class Impl;

 private:
  explicit Node(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace replicator::node
