// Cap'n Proto two-party RPC on Asio sockets: a listening server and an outgoing connection.
//
// Every object here lives on one Reactor's thread and must be destroyed before the Reactor.
// Capability clients obtained from a connection stay usable objects after the connection is
// gone, but every call on them then fails with a DISCONNECTED RpcError.
//
// Example:
//   auto server = net::RpcServer::Listen(reactor, "127.0.0.1:0", kj::heap<NodeImpl>());
//   auto conn = co_await net::RpcConnection::Connect(reactor, (*server)->address(), 1s);
//   auto node = (*conn)->Bootstrap<wire::Node>();
//   auto reply = co_await net::AwaitWithin(node.keyValueRequest().send(), 500ms);
#ifndef REPLICATOR_NET_RPC_H_
#define REPLICATOR_NET_RPC_H_

#include <capnp/capability.h>
#include <kj/async.h>

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "net/reactor.h"

namespace replicator::net {

// Parses "host:port": host is an IPv4 literal, "localhost" (127.0.0.1) or a bracketed IPv6
// literal ("[::1]:7000"); port is 0..65535. Fails with InvalidArgument naming the input.
absl::StatusOr<asio::ip::tcp::endpoint> ParseEndpoint(std::string_view host_port);

// Formats an endpoint as "host:port" ("[v6]:port"), the form ParseEndpoint reads.
std::string FormatEndpoint(const asio::ip::tcp::endpoint& endpoint);

// Accepts TCP connections and serves `bootstrap` on each over Cap'n Proto two-party RPC.
class RpcServer {
 public:
  // Fails with InvalidArgument for a malformed address, Unavailable if it cannot listen.
  static absl::StatusOr<std::unique_ptr<RpcServer>> Listen(Reactor& reactor,
                                                           std::string_view host_port,
                                                           capnp::Capability::Client bootstrap);
  RpcServer(const RpcServer&) = delete;
  RpcServer& operator=(const RpcServer&) = delete;
  // Closes the listener and every connection; calls in progress are cancelled and their
  // callers see a DISCONNECTED error.
  ~RpcServer();

  // The bound port (the address may have said :0).
  uint16_t port() const;
  // A dialable "host:port": the bound address, or loopback if bound to the any-address.
  std::string address() const;
  // Connections accepted and not yet closed.
  size_t connection_count() const;

 private:
  struct Session;
  class Acceptor;
  RpcServer(Reactor& reactor, asio::ip::tcp::acceptor acceptor,
            capnp::Capability::Client bootstrap);
  void AcceptNext();
  void OnAccepted(asio::ip::tcp::socket socket);

  Reactor& reactor_;
  asio::ip::tcp::endpoint local_;
  capnp::Capability::Client bootstrap_;
  std::map<uint64_t, kj::Own<Session>> sessions_;
  uint64_t next_session_id_ = 0;
  // Declared after sessions_: tasks that watch sessions go first.
  kj::Own<kj::TaskSet> tasks_;
  std::unique_ptr<Acceptor> acceptor_;
};

// One outgoing two-party connection.
class RpcConnection {
 public:
  // Fails with InvalidArgument for a malformed address, and with Unavailable naming host_port
  // if it cannot connect within `timeout`.
  static asio::awaitable<absl::StatusOr<std::unique_ptr<RpcConnection>>> Connect(
      Reactor& reactor, std::string host_port, std::chrono::milliseconds timeout);
  RpcConnection(const RpcConnection&) = delete;
  RpcConnection& operator=(const RpcConnection&) = delete;
  // Closes the connection; calls in flight fail with a DISCONNECTED RpcError.
  ~RpcConnection();

  // The peer's bootstrap capability cast to T (e.g. Bootstrap<wire::Node>()).
  template <typename T>
  typename T::Client Bootstrap() {
    return BootstrapCapability().castAs<T>();
  }
  capnp::Capability::Client BootstrapCapability();

  // True once the transport failed or closed. Never becomes false again: reconnect instead.
  bool disconnected() const { return disconnected_; }
  // host_port as given to Connect().
  const std::string& address() const { return address_; }

 private:
  struct Session;
  RpcConnection(std::string address, asio::ip::tcp::socket socket);

  std::string address_;
  kj::Own<Session> session_;
  bool disconnected_ = false;
  kj::Promise<void> watch_ = nullptr;
};

}  // namespace replicator::net

#endif  // REPLICATOR_NET_RPC_H_
