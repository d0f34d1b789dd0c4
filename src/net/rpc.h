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
//
// With TLS (net/tls.h): both ends pass a TlsContext; the server picks each connection's
// bootstrap from the client's certificate.
//   auto tls = net::TlsContext::Create({.ca_cert_pem = ca, .cert_chain_pem = cert, .key_pem =
//   key}); auto server = net::RpcServer::Listen(reactor, "0.0.0.0:7000",
//       [&](const net::PeerCertificate* peer) -> capnp::Capability::Client {
//         return kj::heap<NodeImpl>(peer->role);
//       }, *tls);
//   auto conn = co_await net::RpcConnection::Connect(reactor, "10.0.0.2:7000", 1s, *tls);
//   // (*conn)->peer_certificate()->common_name: the peer id the server proved.
#ifndef REPLICATOR_NET_RPC_H_
#define REPLICATOR_NET_RPC_H_

#include <capnp/capability.h>
#include <kj/async.h>

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "net/reactor.h"
#include "net/tls.h"

namespace replicator::net {

// Parses "host:port": host is an IPv4 literal, "localhost" (127.0.0.1) or a bracketed IPv6
// literal ("[::1]:7000"); port is 0..65535. Fails with InvalidArgument naming the input.
absl::StatusOr<asio::ip::tcp::endpoint> ParseEndpoint(std::string_view host_port);

// Formats an endpoint as "host:port" ("[v6]:port"), the form ParseEndpoint reads.
std::string FormatEndpoint(const asio::ip::tcp::endpoint& endpoint);

// Chooses the bootstrap capability of one connection from its authenticated peer: the client's
// certificate, parsed, or nullptr on a plaintext server. Called once per connection, once its
// TLS handshake succeeded; `peer` is valid during the call only (copy what you keep).
using BootstrapFactory = std::function<capnp::Capability::Client(const PeerCertificate* peer)>;

// The largest message any connection of this process reads, client or server side; a larger
// one breaks the connection it came on (Cap'n Proto's traversal limit). Set once at start,
// before connections are made (a node derives it from its key and value limits,
// core/wire_limits.h). Default: 64 MiB.
void SetMaxMessageBytes(size_t bytes);
size_t MaxMessageBytes();

// What one server's connections may use, so that a slow or flooding client cannot stall the
// others. 0 disables a limit.
struct ServerLimits {
  // Connections open at once (handshaking included); one more is accepted and closed at once.
  size_t max_connections = 1024;
  // A connection that sent and received nothing for this long is closed.
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(5)};
  // Bytes of calls a connection may have in flight (received, not yet answered); past it the
  // server stops reading that connection until answers go out (Cap'n Proto flow control), and
  // only that connection waits.
  size_t max_inflight_bytes = size_t{64} << 20;
};

// Accepts TCP connections and serves a bootstrap capability on each over Cap'n Proto two-party
// RPC.
class RpcServer {
 public:
  // Plaintext: serves `bootstrap` on every connection. Fails with InvalidArgument for a
  // malformed address, Unavailable if it cannot listen.
  static absl::StatusOr<std::unique_ptr<RpcServer>> Listen(Reactor& reactor,
                                                           std::string_view host_port,
                                                           capnp::Capability::Client bootstrap);
  // With `tls`, every connection first completes a TLS 1.3 handshake with mutual
  // authentication (net/tls.h) within tls->handshake_timeout(), or is closed; a connection still
  // handshaking never delays the others. `bootstrap` then picks its capability from the client's
  // certificate. With `tls` null: plaintext, and `bootstrap` is called with nullptr.
  static absl::StatusOr<std::unique_ptr<RpcServer>> Listen(Reactor& reactor,
                                                           std::string_view host_port,
                                                           BootstrapFactory bootstrap,
                                                           std::shared_ptr<const TlsContext> tls);
  // The same on an endpoint already resolved (net/address.h ResolveListenEndpoint: a host
  // name). Fails with Unavailable if it cannot listen.
  static absl::StatusOr<std::unique_ptr<RpcServer>> Listen(Reactor& reactor,
                                                           const asio::ip::tcp::endpoint& endpoint,
                                                           BootstrapFactory bootstrap,
                                                           std::shared_ptr<const TlsContext> tls);
  RpcServer(const RpcServer&) = delete;
  RpcServer& operator=(const RpcServer&) = delete;
  // Closes the listener and every connection; calls in progress are cancelled and their
  // callers see a DISCONNECTED error.
  ~RpcServer();

  // The bound port (the address may have said :0).
  uint16_t port() const;
  // A dialable "host:port": the bound address, or loopback if bound to the any-address.
  std::string address() const;
  // Connections accepted and not yet closed, handshaking ones included.
  size_t connection_count() const;
  // Applies to connections accepted from now on (and, for the idle timeout, to every open one).
  void set_limits(const ServerLimits& limits);
  // Connections closed at once for being over max_connections, and for being idle.
  uint64_t refused_connections() const { return refused_connections_; }
  uint64_t idle_closed() const { return idle_closed_; }
  // TLS handshakes that failed or timed out since the server started.
  uint64_t handshake_failures() const { return handshake_failures_; }
  // Called with the client's address and the reason whenever a TLS handshake fails or times out
  // (for logging). Replaces any previous handler.
  void set_handshake_failure_handler(
      std::function<void(const std::string& peer, const std::string& reason)> handler) {
    on_handshake_failure_ = std::move(handler);
  }

 private:
  struct Session;
  struct Handshake;
  class Acceptor;
  RpcServer(Reactor& reactor, asio::ip::tcp::acceptor acceptor, BootstrapFactory bootstrap,
            std::shared_ptr<const TlsContext> tls);
  void AcceptNext();
  void OnAccepted(asio::ip::tcp::socket socket);
  void OnHandshake(uint64_t id);
  void OnHandshakeFailed(uint64_t id, const std::string& reason);
  void CloseAfterFlush(uint64_t id);
  void StartSession(uint64_t id, kj::Own<kj::AsyncIoStream> stream, const PeerCertificate* peer);
  void ScheduleIdleSweep();
  void SweepIdle();

  Reactor& reactor_;
  asio::ip::tcp::endpoint local_;
  BootstrapFactory bootstrap_;
  std::shared_ptr<const TlsContext> tls_;
  uint64_t handshake_failures_ = 0;
  ServerLimits limits_;
  uint64_t refused_connections_ = 0;
  uint64_t idle_closed_ = 0;
  std::unique_ptr<asio::steady_timer> idle_timer_;
  std::function<void(const std::string&, const std::string&)> on_handshake_failure_;
  std::map<uint64_t, kj::Own<Session>> sessions_;
  std::map<uint64_t, std::unique_ptr<Handshake>> handshakes_;
  uint64_t next_session_id_ = 0;
  // Declared after sessions_: tasks that watch sessions go first.
  kj::Own<kj::TaskSet> tasks_;
  std::unique_ptr<Acceptor> acceptor_;
};

// One outgoing two-party connection.
class RpcConnection {
 public:
  // host_port may name the host (net/address.h), resolved within `timeout`. Fails with
  // InvalidArgument for a malformed address, and with Unavailable naming host_port if it cannot
  // resolve and connect within `timeout`.
  // With `tls`, the connection is TLS 1.3 with mutual authentication (net/tls.h): the TCP
  // connection and the handshake together must take at most `timeout`, the handshake at most
  // tls->handshake_timeout(). Unauthenticated when a certificate was refused (the server's by
  // us, or ours by the server: the message says which and why); Unavailable for everything else
  // (no TLS server there, the transport failed, timeout).
  static asio::awaitable<absl::StatusOr<std::unique_ptr<RpcConnection>>> Connect(
      Reactor& reactor, std::string host_port, std::chrono::milliseconds timeout,
      std::shared_ptr<const TlsContext> tls = nullptr);
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
  // The server's certificate, parsed (its CN is the node's peer id), or nullptr on a plaintext
  // connection. Check it is the peer you meant to reach.
  const PeerCertificate* peer_certificate() const { return peer_.has_value() ? &*peer_ : nullptr; }

 private:
  struct Session;
  RpcConnection(std::string address, kj::Own<kj::AsyncIoStream> stream,
                std::optional<PeerCertificate> peer);

  std::string address_;
  std::optional<PeerCertificate> peer_;
  kj::Own<Session> session_;
  bool disconnected_ = false;
  kj::Promise<void> watch_ = nullptr;
};

}  // namespace replicator::net

#endif  // REPLICATOR_NET_RPC_H_
