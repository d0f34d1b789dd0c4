#include "net/rpc.h"

#include <capnp/message.h>
#include <capnp/rpc-twoparty.h>
#include <capnp/rpc.capnp.h>
#include <capnp/serialize.h>
#include <fmt/format.h>

#include <algorithm>
#include <asio/connect.hpp>
#include <asio/experimental/deferred.hpp>
#include <asio/experimental/parallel_group.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <utility>

#include "absl/status/status.h"
#include "net/address.h"
#include "net/asio_stream.h"
#include "net/bridge.h"

namespace replicator::net {
namespace {

// Pause before accepting again after an accept() error such as EMFILE.
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};

absl::Status BadAddress(std::string_view host_port, std::string_view reason) {
  return absl::InvalidArgumentError(
      fmt::format("invalid address \"{}\": {} (expected HOST:PORT, e.g. 127.0.0.1:7000, "
                  "localhost:7000 or [::1]:7000)",
                  host_port, reason));
}

}  // namespace

absl::StatusOr<asio::ip::tcp::endpoint> ParseEndpoint(std::string_view host_port) {
  // The syntax is SplitHostPort's; what is left is the host's kind: only a
  // bracketed host holds a ':' (an IPv6 literal, checked there).
  absl::StatusOr<HostPort> split = SplitHostPort(host_port);
  if (!split.ok()) return split.status();
  const bool v6 = split->host.find(':') != std::string::npos;
  asio::ip::address address;
  std::error_code parse_error;
  if (v6) {
    address = asio::ip::make_address_v6(split->host, parse_error);
  } else if (split->host == "localhost") {
    address = asio::ip::address_v4::loopback();
  } else {
    address = asio::ip::make_address_v4(split->host, parse_error);
  }
  if (parse_error) {
    return BadAddress(host_port, v6 ? "host is not an IPv6 literal"
                                    : "host must be an IPv4 literal or localhost");
  }
  return asio::ip::tcp::endpoint(address, split->port);
}

std::string FormatEndpoint(const asio::ip::tcp::endpoint& endpoint) {
  if (endpoint.address().is_v6()) {
    return fmt::format("[{}]:{}", endpoint.address().to_string(), endpoint.port());
  }
  return fmt::format("{}:{}", endpoint.address().to_string(), endpoint.port());
}

namespace {

size_t max_message_bytes = size_t{64} << 20;

capnp::ReaderOptions ReceiveOptions() {
  capnp::ReaderOptions options;
  options.traversalLimitInWords = std::max<size_t>(max_message_bytes / sizeof(capnp::word), 1024);
  return options;
}

using SteadyClock = std::chrono::steady_clock;

// A stream that notes when bytes last moved either way, for the idle timeout.
class ActivityStream final : public kj::AsyncIoStream {
 public:
  explicit ActivityStream(kj::Own<kj::AsyncIoStream> inner)
      : inner_(kj::mv(inner)), last_(SteadyClock::now()) {}

  SteadyClock::time_point last_activity() const { return last_; }

  kj::Promise<size_t> tryRead(void* buffer, size_t min_bytes, size_t max_bytes) override {
    return inner_->tryRead(buffer, min_bytes, max_bytes).then([this](size_t n) {
      last_ = SteadyClock::now();
      return n;
    });
  }
  kj::Promise<void> write(const void* buffer, size_t size) override {
    last_ = SteadyClock::now();
    return inner_->write(buffer, size);
  }
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override {
    last_ = SteadyClock::now();
    return inner_->write(pieces);
  }
  kj::Promise<void> whenWriteDisconnected() override { return inner_->whenWriteDisconnected(); }
  void shutdownWrite() override { inner_->shutdownWrite(); }
  void abortRead() override { inner_->abortRead(); }

 private:
  kj::Own<kj::AsyncIoStream> inner_;
  SteadyClock::time_point last_;
};

}  // namespace

void SetMaxMessageBytes(size_t bytes) { max_message_bytes = bytes; }
size_t MaxMessageBytes() { return max_message_bytes; }

// ---------------------------------------------------------------------------------------------
// RpcServer

struct RpcServer::Session {
  Session(kj::Own<kj::AsyncIoStream> transport, capnp::Capability::Client bootstrap,
          size_t max_inflight_bytes)
      : activity(kj::heap<ActivityStream>(kj::mv(transport))),
        network(*activity, capnp::rpc::twoparty::Side::SERVER, ReceiveOptions()),
        rpc(capnp::makeRpcServer(network, kj::mv(bootstrap))) {
    if (max_inflight_bytes > 0) rpc.setFlowLimit(max_inflight_bytes / sizeof(capnp::word));
  }

  // Destroyed in reverse: the RPC system, then the network, then the stream (and socket).
  kj::Own<ActivityStream> activity;
  capnp::TwoPartyVatNetwork network;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc;
  // Declared last: drops the task watching the network before the network goes, so a session
  // can be closed (idle) from outside.
  kj::Canceler canceler;
};

// A TLS connection still in its handshake.
struct RpcServer::Handshake {
  Handshake(kj::Own<TlsStream> tls, asio::io_context& io, std::string peer_address)
      : stream(kj::mv(tls)), timer(io), peer(std::move(peer_address)) {}

  kj::Own<TlsStream> stream;
  asio::steady_timer timer;
  std::string peer;
  // Declared last: drops the handshake's promises before the stream they use goes.
  kj::Canceler canceler;
};

// The listening socket, with a flag its pending handlers check: they may run after the server
// is gone.
class RpcServer::Acceptor {
 public:
  Acceptor(asio::ip::tcp::acceptor acceptor)
      : acceptor_(std::move(acceptor)),
        retry_timer_(acceptor_.get_executor()),
        alive_(std::make_shared<bool>(true)) {}
  ~Acceptor() {
    *alive_ = false;
    std::error_code ignored;
    acceptor_.close(ignored);
  }

  asio::ip::tcp::acceptor& acceptor() { return acceptor_; }
  asio::steady_timer& retry_timer() { return retry_timer_; }
  const std::shared_ptr<bool>& alive() const { return alive_; }

 private:
  asio::ip::tcp::acceptor acceptor_;
  asio::steady_timer retry_timer_;
  std::shared_ptr<bool> alive_;
};

namespace {

// What a plaintext Cap'n Proto client gets from a TLS server: an Abort message, which fails its
// calls with this reason instead of a bare disconnection.
std::string PlaintextRefusal() {
  capnp::MallocMessageBuilder message;
  auto abort = message.initRoot<capnp::rpc::Message>().initAbort();
  abort.setReason(
      "this server accepts only TLS connections (TLS 1.3, with a certificate of its federation's "
      "CA)");
  abort.setType(capnp::rpc::Exception::Type::FAILED);
  auto words = capnp::messageToFlatArray(message);
  auto bytes = words.asBytes();
  return std::string(bytes.begin(), bytes.end());
}

class IgnoreErrors final : public kj::TaskSet::ErrorHandler {
 public:
  void taskFailed(kj::Exception&&) override {}
};

IgnoreErrors ignore_errors;

}  // namespace

absl::StatusOr<std::unique_ptr<RpcServer>> RpcServer::Listen(Reactor& reactor,
                                                             std::string_view host_port,
                                                             capnp::Capability::Client bootstrap) {
  auto shared = std::make_shared<capnp::Capability::Client>(kj::mv(bootstrap));
  return Listen(
      reactor, host_port,
      [shared](const PeerCertificate*) -> capnp::Capability::Client { return *shared; }, nullptr);
}

absl::StatusOr<std::unique_ptr<RpcServer>> RpcServer::Listen(
    Reactor& reactor, std::string_view host_port, BootstrapFactory bootstrap,
    std::shared_ptr<const TlsContext> tls) {
  auto endpoint = ParseEndpoint(host_port);
  if (!endpoint.ok()) return endpoint.status();
  return Listen(reactor, *endpoint, std::move(bootstrap), std::move(tls));
}

absl::StatusOr<std::unique_ptr<RpcServer>> RpcServer::Listen(
    Reactor& reactor, const asio::ip::tcp::endpoint& endpoint, BootstrapFactory bootstrap,
    std::shared_ptr<const TlsContext> tls) {
  asio::ip::tcp::acceptor acceptor(reactor.io());
  std::error_code error;
  acceptor.open(endpoint.protocol(), error);
  if (!error) acceptor.set_option(asio::socket_base::reuse_address(true), error);
  if (!error) acceptor.bind(endpoint, error);
  if (!error) acceptor.listen(asio::socket_base::max_listen_connections, error);
  if (error) {
    return absl::UnavailableError(
        fmt::format("cannot listen on {}: {}", FormatEndpoint(endpoint), error.message()));
  }
  auto server = std::unique_ptr<RpcServer>(
      new RpcServer(reactor, std::move(acceptor), std::move(bootstrap), std::move(tls)));
  server->AcceptNext();
  return server;
}

RpcServer::RpcServer(Reactor& reactor, asio::ip::tcp::acceptor acceptor, BootstrapFactory bootstrap,
                     std::shared_ptr<const TlsContext> tls)
    : reactor_(reactor),
      local_(acceptor.local_endpoint()),
      bootstrap_(std::move(bootstrap)),
      tls_(std::move(tls)),
      tasks_(kj::heap<kj::TaskSet>(ignore_errors)),
      acceptor_(std::make_unique<Acceptor>(std::move(acceptor))) {}

RpcServer::~RpcServer() {
  idle_timer_.reset();
  acceptor_.reset();
  tasks_ = nullptr;
  handshakes_.clear();
  sessions_.clear();
}

void RpcServer::AcceptNext() {
  acceptor_->acceptor().async_accept(
      [this, alive = acceptor_->alive()](const std::error_code& error,
                                         asio::ip::tcp::socket socket) {
        if (!*alive || error == asio::error::operation_aborted) return;
        if (!error) {
          OnAccepted(std::move(socket));
          AcceptNext();
          return;
        }
        acceptor_->retry_timer().expires_after(kAcceptRetryDelay);
        acceptor_->retry_timer().async_wait([this, alive](const std::error_code& timer_error) {
          if (*alive && !timer_error) AcceptNext();
        });
      });
}

void RpcServer::set_limits(const ServerLimits& limits) {
  limits_ = limits;
  idle_timer_.reset();
  ScheduleIdleSweep();
}

void RpcServer::ScheduleIdleSweep() {
  if (limits_.idle_timeout.count() <= 0) return;
  if (!idle_timer_) idle_timer_ = std::make_unique<asio::steady_timer>(reactor_.io());
  // A connection is closed within a quarter of the timeout after it became idle.
  idle_timer_->expires_after(std::max(std::chrono::milliseconds(10), limits_.idle_timeout / 4));
  idle_timer_->async_wait([this, alive = acceptor_->alive()](const std::error_code& error) {
    if (error || !*alive) return;
    SweepIdle();
    ScheduleIdleSweep();
  });
}

void RpcServer::SweepIdle() {
  const SteadyClock::time_point cutoff = SteadyClock::now() - limits_.idle_timeout;
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (it->second->activity->last_activity() < cutoff) {
      ++idle_closed_;
      it = sessions_.erase(it);  // closes the connection; its callers see DISCONNECTED
    } else {
      ++it;
    }
  }
}

void RpcServer::OnAccepted(asio::ip::tcp::socket socket) {
  if (limits_.max_connections > 0 && connection_count() >= limits_.max_connections) {
    ++refused_connections_;
    std::error_code ignored;
    socket.close(ignored);
    return;
  }
  uint64_t id = next_session_id_++;
  if (!tls_) {
    StartSession(id, kj::heap<AsioStream>(std::move(socket)), nullptr);
    return;
  }
  std::error_code ignored;
  std::string peer = FormatEndpoint(socket.remote_endpoint(ignored));
  auto stream = kj::heap<TlsStream>(kj::heap<AsioStream>(std::move(socket)), tls_,
                                    TlsStream::Side::kServer, reactor_.io());
  static const std::string* const refusal = new std::string(PlaintextRefusal());
  stream->set_plaintext_reply(*refusal);
  auto owned = std::make_unique<Handshake>(kj::mv(stream), reactor_.io(), std::move(peer));
  Handshake& handshake = *owned;
  handshakes_.emplace(id, std::move(owned));
  handshake.timer.expires_after(tls_->handshake_timeout());
  handshake.timer.async_wait([this, id, alive = acceptor_->alive()](const std::error_code& error) {
    if (error || !*alive || handshakes_.count(id) == 0) return;
    OnHandshakeFailed(
        id, fmt::format("no TLS handshake within {} ms", tls_->handshake_timeout().count()));
    handshakes_.erase(id);  // closes the connection
  });
  // The continuations run once the wrapped promise is done: erasing the handshake (and its
  // canceler) there is safe.
  tasks_->add(handshake.canceler.wrap(handshake.stream->Handshake())
                  .then([this, id] { OnHandshake(id); },
                        [this, id](kj::Exception&& e) {
                          if (handshakes_.count(id) == 0) return;  // timed out meanwhile
                          OnHandshakeFailed(id, e.getDescription().cStr());
                          CloseAfterFlush(id);
                        }));
}

void RpcServer::CloseAfterFlush(uint64_t id) {
  // Let the alert (or Abort) that says why reach the client, then close.
  Handshake& failed = *handshakes_.at(id);
  tasks_->add(failed.canceler.wrap(failed.stream->Flush())
                  .then(
                      [this, id, alive = acceptor_->alive()] {
                        // AsioStream sends after this turn of the loop: close after that.
                        asio::post(reactor_.io(), [this, id, alive] {
                          if (*alive) handshakes_.erase(id);
                        });
                      },
                      [this, id](kj::Exception&&) { handshakes_.erase(id); }));
}

void RpcServer::OnHandshakeFailed(uint64_t id, const std::string& reason) {
  ++handshake_failures_;
  auto it = handshakes_.find(id);
  if (on_handshake_failure_ && it != handshakes_.end()) {
    on_handshake_failure_(it->second->peer, reason);
  }
}

void RpcServer::OnHandshake(uint64_t id) {
  auto it = handshakes_.find(id);
  if (it == handshakes_.end()) return;
  std::unique_ptr<Handshake> handshake = std::move(it->second);
  handshakes_.erase(it);
  handshake->timer.cancel();
  kj::Own<TlsStream> stream = kj::mv(handshake->stream);
  handshake.reset();
  PeerCertificate peer = stream->peer_certificate();
  StartSession(id, kj::mv(stream), &peer);
}

void RpcServer::StartSession(uint64_t id, kj::Own<kj::AsyncIoStream> stream,
                             const PeerCertificate* peer) {
  auto session = kj::heap<Session>(kj::mv(stream), bootstrap_(peer), limits_.max_inflight_bytes);
  kj::Promise<void> closed = session->network.onDisconnect();
  sessions_.emplace(id, kj::mv(session));
  Session& added = *sessions_.at(id);
  tasks_->add(added.canceler.wrap(kj::mv(closed))
                  .then([this, id] { sessions_.erase(id); },
                        [this, id](kj::Exception&&) { sessions_.erase(id); }));
}

uint16_t RpcServer::port() const { return local_.port(); }

std::string RpcServer::address() const {
  asio::ip::tcp::endpoint dialable = local_;
  if (local_.address().is_unspecified()) {
    dialable.address(local_.address().is_v6()
                         ? asio::ip::address(asio::ip::address_v6::loopback())
                         : asio::ip::address(asio::ip::address_v4::loopback()));
  }
  return FormatEndpoint(dialable);
}

size_t RpcServer::connection_count() const { return sessions_.size() + handshakes_.size(); }

// ---------------------------------------------------------------------------------------------
// RpcConnection

struct RpcConnection::Session {
  explicit Session(kj::Own<kj::AsyncIoStream> transport)
      : stream(kj::mv(transport)),
        network(*stream, capnp::rpc::twoparty::Side::CLIENT, ReceiveOptions()),
        rpc(capnp::makeRpcClient(network)) {}

  kj::Own<kj::AsyncIoStream> stream;
  capnp::TwoPartyVatNetwork network;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc;
};

asio::awaitable<absl::StatusOr<std::unique_ptr<RpcConnection>>> RpcConnection::Connect(
    Reactor& reactor, std::string host_port, std::chrono::milliseconds timeout,
    std::shared_ptr<const TlsContext> tls) {
  const auto start = std::chrono::steady_clock::now();
  // A host name is resolved each time, so a node that moved is found at its new address.
  auto endpoints = co_await ResolveEndpoints(reactor.io(), host_port, timeout);
  if (!endpoints.ok()) co_return endpoints.status();
  asio::ip::tcp::socket socket(reactor.io());
  asio::steady_timer timer(reactor.io(),
                           std::max(std::chrono::milliseconds(1),
                                    timeout - std::chrono::duration_cast<std::chrono::milliseconds>(
                                                  std::chrono::steady_clock::now() - start)));
  auto [order, connect_error, connected, timer_error] =
      co_await asio::experimental::make_parallel_group(
          asio::async_connect(socket, *endpoints, asio::experimental::deferred),
          timer.async_wait(asio::experimental::deferred))
          .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
  (void)timer_error;
  (void)connected;
  if (order[0] == 1) {
    co_return absl::UnavailableError(
        fmt::format("cannot connect to {}: no answer within {} ms", host_port, timeout.count()));
  }
  if (connect_error) {
    co_return absl::UnavailableError(
        fmt::format("cannot connect to {}: {}", host_port, connect_error.message()));
  }
  if (!tls) {
    co_return std::unique_ptr<RpcConnection>(new RpcConnection(
        std::move(host_port), kj::heap<AsioStream>(std::move(socket)), std::nullopt));
  }
  auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start);
  std::chrono::milliseconds deadline =
      std::max(std::chrono::milliseconds(1), std::min(tls->handshake_timeout(), timeout - elapsed));
  kj::Own<TlsStream> stream = kj::heap<TlsStream>(kj::heap<AsioStream>(std::move(socket)), tls,
                                                  TlsStream::Side::kClient, reactor.io());
  kj::Promise<void> handshake = stream->Handshake();
  absl::Status status = co_await AwaitWithin(std::move(handshake), deadline);
  if (status.code() == absl::StatusCode::kDeadlineExceeded) {
    co_return absl::UnavailableError(fmt::format(
        "cannot connect to {}: no TLS handshake within {} ms", host_port, deadline.count()));
  }
  if (!status.ok()) {
    std::string message =
        fmt::format("cannot connect to {}: {}", host_port, std::string(status.message()));
    if (stream->refused()) co_return absl::UnauthenticatedError(message);
    co_return absl::UnavailableError(message);
  }
  std::optional<PeerCertificate> peer = stream->peer_certificate();
  co_return std::unique_ptr<RpcConnection>(
      new RpcConnection(std::move(host_port), kj::mv(stream), std::move(peer)));
}

RpcConnection::RpcConnection(std::string address, kj::Own<kj::AsyncIoStream> stream,
                             std::optional<PeerCertificate> peer)
    : address_(std::move(address)),
      peer_(std::move(peer)),
      session_(kj::heap<Session>(kj::mv(stream))) {
  watch_ =
      session_->network.onDisconnect()
          .then([this] { disconnected_ = true; }, [this](kj::Exception&&) { disconnected_ = true; })
          .eagerlyEvaluate(nullptr);
}

RpcConnection::~RpcConnection() {
  watch_ = nullptr;
  session_ = nullptr;
}

capnp::Capability::Client RpcConnection::BootstrapCapability() {
  capnp::MallocMessageBuilder message(8);
  auto vat_id = message.initRoot<capnp::rpc::twoparty::VatId>();
  vat_id.setSide(capnp::rpc::twoparty::Side::SERVER);
  return session_->rpc.bootstrap(vat_id);
}

}  // namespace replicator::net
