// Cap'n Proto RPC over Asio sockets, on real loopback connections, one reactor.
#include "net/rpc.h"

#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <memory>
#include <string>
#include <vector>

#include "echo_test.capnp.h"
#include "net/bridge.h"
#include "test_util.h"

namespace replicator::net {
namespace {

using std::chrono::milliseconds;
using testing::Latch;
using testing::RunToCompletion;
using testing::Sleep;
using testing::WaitUntil;

constexpr milliseconds kConnectTimeout{5000};
constexpr milliseconds kLongDeadline{10000};

// What the fake server saw.
struct ServerLog {
  int hangs_started = 0;
  int hangs_cancelled = 0;
};

// Sets a flag on destruction: observes cancellation of a server call.
struct CancelGuard {
  explicit CancelGuard(int* target) : counter(target) {}
  CancelGuard(CancelGuard&& other) noexcept : counter(other.counter) { other.counter = nullptr; }
  ~CancelGuard() {
    if (counter != nullptr) ++*counter;
  }
  int* counter;
};

using EchoContext = capnp::CallContext<test::Echo::EchoParams, test::Echo::EchoResults>;

asio::awaitable<void> EchoCoroutine(EchoContext context) {
  // One hop through Asio, so the answer really comes from a coroutine.
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  auto params = context.getParams();
  auto results = context.getResults();
  results.setValue(params.getValue());
  results.setText(params.getText());
}

asio::awaitable<void> HangCoroutine(ServerLog* log) {
  CancelGuard guard(&log->hangs_cancelled);
  co_await Sleep(milliseconds(3600 * 1000));
}

asio::awaitable<void> FailCoroutine(std::string message) {
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  throw std::runtime_error(message);
}

class EchoServer final : public test::Echo::Server {
 public:
  EchoServer(Reactor& reactor, ServerLog* log) : reactor_(reactor), log_(log) {}

  kj::Promise<void> echo(EchoContext context) override {
    return ToPromise(reactor_.io(), EchoCoroutine(context));
  }

  kj::Promise<void> hang(HangContext context) override {
    context.allowCancellation();
    ++log_->hangs_started;
    if (context.getParams().getViaAsio()) {
      return ToPromise(reactor_.io(), HangCoroutine(log_));
    }
    return kj::Promise<void>(kj::NEVER_DONE).attach(CancelGuard(&log_->hangs_cancelled));
  }

  kj::Promise<void> fail(FailContext context) override {
    return ToPromise(reactor_.io(), FailCoroutine(context.getParams().getMessage().cStr()));
  }

 private:
  Reactor& reactor_;
  ServerLog* log_;
};

std::unique_ptr<RpcServer> StartServer(Reactor& reactor, ServerLog* log) {
  auto server = RpcServer::Listen(reactor, "127.0.0.1:0", kj::heap<EchoServer>(reactor, log));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? std::move(*server) : nullptr;
}

asio::awaitable<std::unique_ptr<RpcConnection>> ConnectTo(Reactor* reactor, std::string address) {
  auto connection = co_await RpcConnection::Connect(*reactor, address, kConnectTimeout);
  EXPECT_TRUE(connection.ok()) << connection.status();
  co_return connection.ok() ? std::move(*connection) : nullptr;
}

asio::awaitable<void> CallEcho(test::Echo::Client echo, uint64_t value, std::string text) {
  auto request = echo.echoRequest();
  request.setValue(value);
  request.setText(text);
  auto response = co_await Await(request.send());
  EXPECT_EQ(response.getValue(), value);
  EXPECT_EQ(std::string(response.getText().cStr()), text);
}

// ---------------------------------------------------------------------------------------------

TEST(ParseEndpointTest, AcceptsIpv4LocalhostAndBracketedIpv6) {
  struct Case {
    std::string input;
    std::string address;
    uint16_t port;
  };
  for (const Case& c : std::vector<Case>{{"127.0.0.1:7000", "127.0.0.1", 7000},
                                         {"0.0.0.0:0", "0.0.0.0", 0},
                                         {"localhost:65535", "127.0.0.1", 65535},
                                         {"[::1]:9", "::1", 9},
                                         {"[::]:80", "::", 80}}) {
    auto endpoint = ParseEndpoint(c.input);
    EXPECT_TRUE(endpoint.ok()) << c.input << ": " << endpoint.status();
    if (!endpoint.ok()) continue;
    EXPECT_EQ(endpoint->address().to_string(), c.address) << c.input;
    EXPECT_EQ(endpoint->port(), c.port) << c.input;
  }
}

TEST(ParseEndpointTest, RejectsMalformedAddressesNamingThem) {
  for (const std::string input :
       {"", "127.0.0.1", "127.0.0.1:", ":80", "127.0.0.1:65536", "127.0.0.1:http", "127.0.0.1:80x",
        "example.com:80", "::1:80", "[::1]", "[::1:80", "[zz]:80", "1.2.3:80", "127.0.0.1:-1"}) {
    auto endpoint = ParseEndpoint(input);
    EXPECT_EQ(endpoint.status().code(), absl::StatusCode::kInvalidArgument) << input;
    EXPECT_NE(endpoint.status().message().find("\"" + input + "\""), std::string::npos)
        << endpoint.status();
  }
}

TEST(ParseEndpointTest, FormatRoundTrips) {
  for (const std::string input : {"127.0.0.1:7000", "[::1]:9"}) {
    auto endpoint = ParseEndpoint(input);
    EXPECT_TRUE(endpoint.ok());
    if (endpoint.ok()) {
      EXPECT_EQ(FormatEndpoint(*endpoint), input);
    }
  }
}

asio::awaitable<void> EchoOnce(Reactor* reactor) {
  ServerLog log;
  auto server = StartServer(*reactor, &log);
  EXPECT_NE(server->port(), 0);
  EXPECT_EQ(server->address(), "127.0.0.1:" + std::to_string(server->port()));
  auto connection = co_await ConnectTo(reactor, server->address());
  EXPECT_EQ(connection->address(), server->address());
  EXPECT_FALSE(connection->disconnected());
  co_await CallEcho(connection->Bootstrap<test::Echo>(), 42, "hello");
  EXPECT_EQ(server->connection_count(), 1u);

  connection.reset();
  EXPECT_TRUE(co_await WaitUntil([&] { return server->connection_count() == 0; }));
}

TEST(RpcTest, EchoRoundTripAndConnectionCount) {
  Reactor reactor;
  RunToCompletion(reactor, EchoOnce(&reactor));
}

asio::awaitable<void> OneOfMany(test::Echo::Client echo, uint64_t i, Latch* latch) {
  co_await CallEcho(echo, i, "call " + std::to_string(i));
  latch->CountDown();
}

asio::awaitable<void> ManyConcurrentCalls(Reactor* reactor) {
  ServerLog log;
  auto server = StartServer(*reactor, &log);
  auto connection = co_await ConnectTo(reactor, server->address());
  auto echo = connection->Bootstrap<test::Echo>();
  constexpr int kCalls = 200;
  Latch latch(co_await asio::this_coro::executor, kCalls);
  for (int i = 0; i < kCalls; ++i) {
    asio::co_spawn(reactor->io(), OneOfMany(echo, i, &latch), asio::detached);
  }
  co_await latch.Wait();
  EXPECT_EQ(latch.count(), 0);
}

TEST(RpcTest, TwoHundredConcurrentCallsAllAnswered) {
  Reactor reactor;
  RunToCompletion(reactor, ManyConcurrentCalls(&reactor));
}

asio::awaitable<void> ManyConnections(Reactor* reactor) {
  ServerLog log;
  auto server = StartServer(*reactor, &log);
  constexpr int kConnections = 10;
  constexpr int kCallsEach = 20;
  std::vector<std::unique_ptr<RpcConnection>> connections;
  for (int c = 0; c < kConnections; ++c) {
    connections.push_back(co_await ConnectTo(reactor, server->address()));
  }
  Latch latch(co_await asio::this_coro::executor, kConnections * kCallsEach);
  for (int c = 0; c < kConnections; ++c) {
    auto echo = connections[c]->Bootstrap<test::Echo>();
    for (int i = 0; i < kCallsEach; ++i) {
      asio::co_spawn(reactor->io(), OneOfMany(echo, c * 1000 + i, &latch), asio::detached);
    }
  }
  co_await latch.Wait();
  EXPECT_EQ(server->connection_count(), size_t{kConnections});
}

TEST(RpcTest, ManyConnectionsToOneServer) {
  Reactor reactor;
  RunToCompletion(reactor, ManyConnections(&reactor));
}

asio::awaitable<void> LargeMessage(Reactor* reactor) {
  ServerLog log;
  auto server = StartServer(*reactor, &log);
  auto connection = co_await ConnectTo(reactor, server->address());
  // Larger than socket buffers: exercises partial writes and readiness waits.
  co_await CallEcho(connection->Bootstrap<test::Echo>(), 1, std::string(8 << 20, 'x'));
}

TEST(RpcTest, LargeMessagesCrossTheSocket) {
  Reactor reactor;
  RunToCompletion(reactor, LargeMessage(&reactor));
}

asio::awaitable<void> RemoteFailure(Reactor* reactor) {
  ServerLog log;
  auto server = StartServer(*reactor, &log);
  auto connection = co_await ConnectTo(reactor, server->address());
  auto echo = connection->Bootstrap<test::Echo>();
  {
    auto request = echo.failRequest();
    request.setMessage("disk on fire");
    try {
      co_await Await(request.send());
      ADD_FAILURE() << "no exception";
    } catch (const RpcError& e) {
      EXPECT_EQ(e.type(), kj::Exception::Type::FAILED);
      EXPECT_NE(std::string(e.what()).find("disk on fire"), std::string::npos) << e.what();
    }
  }
  {
    auto request = echo.failRequest();
    request.setMessage("disk on fire");
    auto result = co_await AwaitWithin(request.send(), kLongDeadline);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_NE(result.status().message().find("disk on fire"), std::string::npos) << result.status();
  }
  // The connection survives a failed call.
  co_await CallEcho(echo, 5, "still here");
}

TEST(RpcTest, ServerExceptionReachesCaller) {
  Reactor reactor;
  RunToCompletion(reactor, RemoteFailure(&reactor));
}

asio::awaitable<void> HangAndExpectDisconnect(test::Echo::Client echo, bool within, int* errors) {
  auto request = echo.hangRequest();
  if (within) {
    auto result = co_await AwaitWithin(request.send(), kLongDeadline);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable) << result.status();
    if (result.status().code() == absl::StatusCode::kUnavailable) ++*errors;
  } else {
    try {
      co_await Await(request.send());
      ADD_FAILURE() << "no exception";
    } catch (const RpcError& e) {
      EXPECT_TRUE(e.disconnected()) << e.what();
      ++*errors;
    }
  }
}

asio::awaitable<void> ServerDiesMidCall(Reactor* reactor) {
  ServerLog log;
  auto server = StartServer(*reactor, &log);
  auto connection = co_await ConnectTo(reactor, server->address());
  auto echo = connection->Bootstrap<test::Echo>();
  int errors = 0;
  asio::co_spawn(reactor->io(), HangAndExpectDisconnect(echo, false, &errors), asio::detached);
  asio::co_spawn(reactor->io(), HangAndExpectDisconnect(echo, true, &errors), asio::detached);
  EXPECT_TRUE(co_await WaitUntil([&] { return log.hangs_started == 2; }));

  server.reset();  // closes every connection with the calls in flight
  EXPECT_TRUE(co_await WaitUntil([&] { return errors == 2; }));
  EXPECT_TRUE(co_await WaitUntil([&] { return connection->disconnected(); }));
  EXPECT_EQ(log.hangs_cancelled, 2);

  // Calls on the dead connection fail; the reactor keeps serving new ones.
  try {
    co_await Await(echo.echoRequest().send());
    ADD_FAILURE() << "no exception";
  } catch (const RpcError& e) {
    EXPECT_TRUE(e.disconnected()) << e.what();
  }
  ServerLog log2;
  auto server2 = StartServer(*reactor, &log2);
  auto connection2 = co_await ConnectTo(reactor, server2->address());
  co_await CallEcho(connection2->Bootstrap<test::Echo>(), 8, "after");
}

TEST(RpcTest, ServerDisconnectMidCallFailsCallersAndReactorKeepsServing) {
  Reactor reactor;
  RunToCompletion(reactor, ServerDiesMidCall(&reactor));
}

asio::awaitable<void> DeadlineCancelsServerCall(Reactor* reactor, bool via_asio) {
  ServerLog log;
  auto server = StartServer(*reactor, &log);
  auto connection = co_await ConnectTo(reactor, server->address());
  auto echo = connection->Bootstrap<test::Echo>();
  auto request = echo.hangRequest();
  request.setViaAsio(via_asio);
  absl::Status status = (co_await AwaitWithin(request.send(), milliseconds(50))).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_TRUE(co_await WaitUntil([&] { return log.hangs_cancelled == 1; }))
      << "the server never saw the cancellation";
  EXPECT_EQ(log.hangs_started, 1);
  // The connection is fine.
  EXPECT_FALSE(connection->disconnected());
  co_await CallEcho(echo, 9, "after deadline");
}

TEST(RpcTest, DeadlineCancelsKjServerCall) {
  Reactor reactor;
  RunToCompletion(reactor, DeadlineCancelsServerCall(&reactor, false));
}

TEST(RpcTest, DeadlineCancelsCoroutineServerCall) {
  Reactor reactor;
  RunToCompletion(reactor, DeadlineCancelsServerCall(&reactor, true));
}

// A capability served in-process (no socket), as a node calls itself through its own Peer
// interface: same bridge, same cancellation.
asio::awaitable<void> LocalCapability(Reactor* reactor) {
  ServerLog log;
  test::Echo::Client local = kj::heap<EchoServer>(*reactor, &log);
  co_await CallEcho(local, 3, "local");
  auto request = local.hangRequest();
  request.setViaAsio(true);
  absl::Status status = (co_await AwaitWithin(request.send(), milliseconds(20))).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDeadlineExceeded) << status;
  EXPECT_TRUE(co_await WaitUntil([&] { return log.hangs_cancelled == 1; }));
}

TEST(RpcTest, LocalCapabilityCallsAndCancellation) {
  Reactor reactor;
  RunToCompletion(reactor, LocalCapability(&reactor));
}

asio::awaitable<void> ConnectToClosedPort(Reactor* reactor) {
  // A port that was free a moment ago: bind, note, close.
  uint16_t port;
  {
    asio::ip::tcp::acceptor probe(reactor->io(),
                                  asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    port = probe.local_endpoint().port();
  }
  std::string address = "127.0.0.1:" + std::to_string(port);
  auto connection = co_await RpcConnection::Connect(*reactor, address, kConnectTimeout);
  EXPECT_EQ(connection.status().code(), absl::StatusCode::kUnavailable) << connection.status();
  EXPECT_NE(connection.status().message().find(address), std::string::npos) << connection.status();

  auto bad = co_await RpcConnection::Connect(*reactor, "nowhere", kConnectTimeout);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << bad.status();
  EXPECT_NE(bad.status().message().find("nowhere"), std::string::npos) << bad.status();
}

TEST(RpcTest, ConnectToClosedPortFailsNamingTheAddress) {
  Reactor reactor;
  RunToCompletion(reactor, ConnectToClosedPort(&reactor));
}

TEST(RpcTest, ListenOnBusyPortFails) {
  Reactor reactor;
  ServerLog log;
  auto first = StartServer(reactor, &log);
  // A second listener on the very same port: port reuse does not allow two listeners.
  auto second = RpcServer::Listen(reactor, first->address(), kj::heap<EchoServer>(reactor, &log));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable) << second.status();
  EXPECT_NE(second.status().message().find(first->address()), std::string::npos) << second.status();
}

// Calls in flight when everything is torn down: frames that own the connection, calls parked
// on the server, echo calls in every stage.
asio::awaitable<void> CallAndHoldConnection(std::shared_ptr<RpcConnection> connection,
                                            int* frames_alive) {
  ++*frames_alive;
  struct Leave {
    int* alive;
    ~Leave() { --*alive; }
  } leave{frames_alive};
  auto echo = connection->Bootstrap<test::Echo>();
  try {
    co_await Await(echo.hangRequest().send());
  } catch (const RpcError&) {
  }
}

asio::awaitable<void> StartCallsThenStop(Reactor* reactor, std::string address, ServerLog* log,
                                         std::shared_ptr<RpcConnection>* keep, int* frames_alive) {
  auto connection = co_await ConnectTo(reactor, address);
  std::shared_ptr<RpcConnection> shared(std::move(connection));
  *keep = shared;
  auto echo = shared->Bootstrap<test::Echo>();
  for (int i = 0; i < 20; ++i) {
    asio::co_spawn(reactor->io(), CallAndHoldConnection(shared, frames_alive), asio::detached);
    // Echo calls that nobody awaits any more when the reactor stops.
    asio::co_spawn(reactor->io(), CallEcho(echo, i, "x"), asio::detached);
  }
  EXPECT_TRUE(co_await WaitUntil([&] { return log->hangs_started == 20; }));
}

TEST(RpcTest, TeardownWithCallsInFlight) {
  int frames_alive = 0;
  ServerLog log;
  {
    Reactor reactor;
    auto server = StartServer(reactor, &log);
    std::shared_ptr<RpcConnection> connection;
    RunToCompletion(
        reactor, StartCallsThenStop(&reactor, server->address(), &log, &connection, &frames_alive));
    EXPECT_EQ(frames_alive, 20);
    // Drop our reference: the suspended frames still own the connection.
    connection.reset();
    server.reset();
  }
  EXPECT_EQ(frames_alive, 0);
  EXPECT_EQ(log.hangs_cancelled, 20);
}

asio::awaitable<void> ServeForever(std::unique_ptr<RpcServer> server) {
  (void)server;
  co_await Sleep(milliseconds(3600 * 1000));
}

// Nothing destroyed by hand: the reactor's teardown destroys the suspended frames, which own
// the server and the connection.
TEST(RpcTest, TeardownWithEverythingOwnedBySuspendedFrames) {
  int frames_alive = 0;
  ServerLog log;
  {
    Reactor reactor;
    auto server = StartServer(reactor, &log);
    std::string address = server->address();
    asio::co_spawn(reactor.io(), ServeForever(std::move(server)), asio::detached);
    std::shared_ptr<RpcConnection> connection;
    RunToCompletion(reactor,
                    StartCallsThenStop(&reactor, address, &log, &connection, &frames_alive));
    EXPECT_EQ(frames_alive, 20);
    connection.reset();
  }
  EXPECT_EQ(frames_alive, 0);
  EXPECT_EQ(log.hangs_cancelled, 20);
}

}  // namespace
}  // namespace replicator::net
