#include "net/rpc.h"

#include <capnp/message.h>
#include <capnp/rpc-twoparty.h>
#include <fmt/format.h>

#include <asio/experimental/deferred.hpp>
#include <asio/experimental/parallel_group.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <charconv>
#include <utility>

#include "absl/status/status.h"
#include "net/asio_stream.h"

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
  if (host_port.empty()) return BadAddress(host_port, "empty");
  std::string_view host;
  std::string_view port_text;
  bool v6 = false;
  if (host_port.front() == '[') {
    size_t close = host_port.find(']');
    if (close == std::string_view::npos) return BadAddress(host_port, "missing ']'");
    host = host_port.substr(1, close - 1);
    std::string_view rest = host_port.substr(close + 1);
    if (rest.empty() || rest.front() != ':') return BadAddress(host_port, "missing :PORT");
    port_text = rest.substr(1);
    v6 = true;
  } else {
    size_t colon = host_port.rfind(':');
    if (colon == std::string_view::npos) return BadAddress(host_port, "missing :PORT");
    host = host_port.substr(0, colon);
    port_text = host_port.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return BadAddress(host_port, "an IPv6 host must be in brackets");
    }
  }
  if (host.empty()) return BadAddress(host_port, "missing host");
  if (port_text.empty()) return BadAddress(host_port, "missing port");
  unsigned port = 0;
  auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (error != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
    return BadAddress(host_port, "port must be a number in 0..65535");
  }
  asio::ip::address address;
  std::error_code parse_error;
  if (v6) {
    address = asio::ip::make_address_v6(std::string(host), parse_error);
  } else if (host == "localhost") {
    address = asio::ip::address_v4::loopback();
  } else {
    address = asio::ip::make_address_v4(std::string(host), parse_error);
  }
  if (parse_error) {
    return BadAddress(host_port, v6 ? "host is not an IPv6 literal"
                                    : "host must be an IPv4 literal or localhost");
  }
  return asio::ip::tcp::endpoint(address, static_cast<uint16_t>(port));
}

std::string FormatEndpoint(const asio::ip::tcp::endpoint& endpoint) {
  if (endpoint.address().is_v6()) {
    return fmt::format("[{}]:{}", endpoint.address().to_string(), endpoint.port());
  }
  return fmt::format("{}:{}", endpoint.address().to_string(), endpoint.port());
}

// Messages up to 1 GiB: a node batches many protocol calls to one peer into one message, and
// the reply to a batch of reserves can carry a stored value per vote (node/peer_network.cc
// bounds a batch's worst-case reply at 256 MiB). Cap'n Proto's default, 64 MiB, would drop the
// connection.
namespace {
capnp::ReaderOptions ReceiveOptions() {
  capnp::ReaderOptions options;
  options.traversalLimitInWords = (uint64_t{1} << 30) / sizeof(capnp::word);
  return options;
}
}  // namespace

// ---------------------------------------------------------------------------------------------
// RpcServer

struct RpcServer::Session {
  Session(asio::ip::tcp::socket socket, capnp::Capability::Client bootstrap)
      : stream(std::move(socket)),
        network(stream, capnp::rpc::twoparty::Side::SERVER, ReceiveOptions()),
        rpc(capnp::makeRpcServer(network, kj::mv(bootstrap))) {}

  // Destroyed in reverse: the RPC system, then the network, then the socket.
  AsioStream stream;
  capnp::TwoPartyVatNetwork network;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc;
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

class IgnoreErrors final : public kj::TaskSet::ErrorHandler {
 public:
  void taskFailed(kj::Exception&&) override {}
};

IgnoreErrors ignore_errors;

}  // namespace

absl::StatusOr<std::unique_ptr<RpcServer>> RpcServer::Listen(Reactor& reactor,
                                                             std::string_view host_port,
                                                             capnp::Capability::Client bootstrap) {
  auto endpoint = ParseEndpoint(host_port);
  if (!endpoint.ok()) return endpoint.status();
  asio::ip::tcp::acceptor acceptor(reactor.io());
  std::error_code error;
  acceptor.open(endpoint->protocol(), error);
  if (!error) acceptor.set_option(asio::socket_base::reuse_address(true), error);
  if (!error) acceptor.bind(*endpoint, error);
  if (!error) acceptor.listen(asio::socket_base::max_listen_connections, error);
  if (error) {
    return absl::UnavailableError(
        fmt::format("cannot listen on {}: {}", host_port, error.message()));
  }
  auto server =
      std::unique_ptr<RpcServer>(new RpcServer(reactor, std::move(acceptor), kj::mv(bootstrap)));
  server->AcceptNext();
  return server;
}

RpcServer::RpcServer(Reactor& reactor, asio::ip::tcp::acceptor acceptor,
                     capnp::Capability::Client bootstrap)
    : reactor_(reactor),
      local_(acceptor.local_endpoint()),
      bootstrap_(kj::mv(bootstrap)),
      tasks_(kj::heap<kj::TaskSet>(ignore_errors)),
      acceptor_(std::make_unique<Acceptor>(std::move(acceptor))) {}

RpcServer::~RpcServer() {
  acceptor_.reset();
  tasks_ = nullptr;
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

void RpcServer::OnAccepted(asio::ip::tcp::socket socket) {
  uint64_t id = next_session_id_++;
  auto session = kj::heap<Session>(std::move(socket), bootstrap_);
  kj::Promise<void> closed = session->network.onDisconnect();
  sessions_.emplace(id, kj::mv(session));
  tasks_->add(closed.then([this, id] { sessions_.erase(id); },
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

size_t RpcServer::connection_count() const { return sessions_.size(); }

// ---------------------------------------------------------------------------------------------
// RpcConnection

struct RpcConnection::Session {
  explicit Session(asio::ip::tcp::socket socket)
      : stream(std::move(socket)),
        network(stream, capnp::rpc::twoparty::Side::CLIENT, ReceiveOptions()),
        rpc(capnp::makeRpcClient(network)) {}

  AsioStream stream;
  capnp::TwoPartyVatNetwork network;
  capnp::RpcSystem<capnp::rpc::twoparty::VatId> rpc;
};

asio::awaitable<absl::StatusOr<std::unique_ptr<RpcConnection>>> RpcConnection::Connect(
    Reactor& reactor, std::string host_port, std::chrono::milliseconds timeout) {
  auto endpoint = ParseEndpoint(host_port);
  if (!endpoint.ok()) co_return endpoint.status();
  asio::ip::tcp::socket socket(reactor.io());
  asio::steady_timer timer(reactor.io(), timeout);
  auto [order, connect_error, timer_error] =
      co_await asio::experimental::make_parallel_group(
          socket.async_connect(*endpoint, asio::experimental::deferred),
          timer.async_wait(asio::experimental::deferred))
          .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
  (void)timer_error;
  if (order[0] == 1) {
    co_return absl::UnavailableError(
        fmt::format("cannot connect to {}: no answer within {} ms", host_port, timeout.count()));
  }
  if (connect_error) {
    co_return absl::UnavailableError(
        fmt::format("cannot connect to {}: {}", host_port, connect_error.message()));
  }
  co_return std::unique_ptr<RpcConnection>(
      new RpcConnection(std::move(host_port), std::move(socket)));
}

RpcConnection::RpcConnection(std::string address, asio::ip::tcp::socket socket)
    : address_(std::move(address)), session_(kj::heap<Session>(std::move(socket))) {
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
