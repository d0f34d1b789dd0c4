// Resource limits on real processes (issue 11): a peer batch over the call
// limit is refused without being applied and the node stays small; a
// message over the size limit is refused; connections above the limit are
// closed at once while the others keep working; a connection that sends
// nothing is closed after the idle timeout. Every wait is for a condition.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "core/wire_limits.h"
#include "gtest/gtest.h"
#include "net/bridge.h"
#include "net/reactor.h"
#include "net/rpc.h"
#include "schema/replicator.capnp.h"
#include "tests/integration/harness.h"

namespace replicator {
namespace {

using std::chrono::milliseconds;

// The resident set of process `pid`, in KiB (0 if unreadable).
int64_t RssKib(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (!absl::StartsWith(line, "VmRSS:")) continue;
    std::string digits;
    for (char c : line) {
      if (c >= '0' && c <= '9') digits += c;
    }
    int64_t kib = 0;
    if (absl::SimpleAtoi(digits, &kib)) return kib;
  }
  return 0;
}

// A plain TCP connection to 127.0.0.1:port that sends nothing.
int DialRaw(const std::string& address) {
  const uint16_t port = static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// How many of `fds` the server closed (a read sees end of stream or a
// reset), waiting at most `within` for each to be.
int ClosedByServer(const std::vector<int>& fds, milliseconds within) {
  const auto deadline = std::chrono::steady_clock::now() + within;
  std::vector<bool> closed(fds.size(), false);
  int count = 0;
  while (count < static_cast<int>(fds.size()) && std::chrono::steady_clock::now() < deadline) {
    std::vector<pollfd> ps;
    for (int fd : fds) ps.push_back(pollfd{fd, POLLIN, 0});
    ::poll(ps.data(), ps.size(), 50);
    for (size_t i = 0; i < fds.size(); ++i) {
      if (closed[i] || !(ps[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char byte;
      if (::recv(fds[i], &byte, 1, MSG_DONTWAIT) <= 0) {
        closed[i] = true;
        ++count;
      }
    }
  }
  return count;
}

class LimitsTest : public DeploymentTest {
 protected:
  // Runs `body` on a reactor of this test process until it returns.
  static void OnReactor(std::function<asio::awaitable<void>(net::Reactor&)> body) {
    net::Reactor reactor;
    auto run = [&]() -> asio::awaitable<void> {
      co_await body(reactor);
      reactor.Stop();
    };
    asio::co_spawn(reactor.io(), run(), asio::detached);
    reactor.Run();
  }
};

TEST_F(LimitsTest, AnOverLongPeerBatchIsRefusedAndTheNodeStaysSmall) {
  insecure_ = true;  // plaintext: the probes below speak raw Cap'n Proto
  StartDeployment(1, 3);
  const auto& target = deployment_->nodes()[0];
  const int64_t rss_before = RssKib(target.pid);
  ASSERT_GT(rss_before, 0);
  std::string outcome;
  OnReactor([&](net::Reactor& reactor) -> asio::awaitable<void> {
    auto conn = co_await net::RpcConnection::Connect(reactor, target.address, milliseconds(5000));
    if (!conn.ok()) {
      outcome = "connect: " + std::string(conn.status().message());
      co_return;
    }
    auto node = (*conn)->Bootstrap<wire::Node>();
    auto peer_reply = co_await net::AwaitWithin(node.peerRequest().send(), milliseconds(5000));
    if (!peer_reply.ok()) {
      outcome = "peer: " + std::string(peer_reply.status().message());
      co_return;
    }
    wire::Peer::Client peer = peer_reply->getPeer();
    // A million empty calls: 16 MB on the wire, under the message limit,
    // so only the batch limit stands in the way.
    auto req = peer.callRequest();
    req.setFrom("12D3KooWLimitsTestSender");
    req.initCalls(1000000);
    auto sent = req.send();
    auto reply = co_await net::AwaitWithin(kj::mv(sent), milliseconds(20000));
    outcome = reply.ok() ? "answered" : std::string(reply.status().message());
  });
  EXPECT_TRUE(absl::StrContains(outcome, "refused batch: 1000000 calls, over the limit of 1024"))
      << outcome;
  // Refused before any call was converted: the node grew by about the one
  // message it read, not by a million calls' worth of engine state.
  const int64_t rss_after = RssKib(target.pid);
  EXPECT_LT(rss_after, rss_before + 200 * 1024) << rss_before << " KiB -> " << rss_after << " KiB";
  CommandResult put = Put(target.address, "after-batch", "v");
  EXPECT_EQ(put.exit_code, 0) << put.err;
}

TEST_F(LimitsTest, AMessageOverTheSizeLimitIsRefused) {
  insecure_ = true;  // plaintext: the probes below speak raw Cap'n Proto
  StartDeployment(1, 3);
  const auto& target = deployment_->nodes()[0];
  const size_t limit = core::MaxMessageBytes(core::Limits{});  // the node's defaults
  std::string small, large, after;
  OnReactor([&](net::Reactor& reactor) -> asio::awaitable<void> {
    // This process reads large answers; only the node's limit is tested.
    net::SetMaxMessageBytes(size_t{256} << 20);
    auto conn = co_await net::RpcConnection::Connect(reactor, target.address, milliseconds(5000));
    if (!conn.ok()) {
      small = "connect: " + std::string(conn.status().message());
      co_return;
    }
    auto node = (*conn)->Bootstrap<wire::Node>();
    auto echo = [&](size_t bytes) -> asio::awaitable<std::string> {
      auto req = node.echoRequest();
      req.initPayload(bytes);
      auto sent = req.send();
      auto r = co_await net::AwaitWithin(kj::mv(sent), milliseconds(20000));
      if (!r.ok()) co_return std::string(r.status().message());
      co_return absl::StrCat("echoed ", r->getPayload().size());
    };
    small = co_await echo(limit / 4);
    large = co_await echo(limit + (1 << 20));
    auto again = co_await net::RpcConnection::Connect(reactor, target.address, milliseconds(5000));
    if (!again.ok()) {
      after = "reconnect: " + std::string(again.status().message());
      co_return;
    }
    auto fresh = (*again)->Bootstrap<wire::Node>().echoRequest();
    fresh.initPayload(16);
    auto sent = fresh.send();
    auto r = co_await net::AwaitWithin(kj::mv(sent), milliseconds(5000));
    after = r.ok() ? "echoed" : std::string(r.status().message());
  });
  EXPECT_EQ(small, absl::StrCat("echoed ", limit / 4));
  EXPECT_FALSE(absl::StartsWith(large, "echoed")) << "a message over " << limit << " was read";
  EXPECT_EQ(after, "echoed") << "the node must keep serving other connections";
}

TEST_F(LimitsTest, ConnectionsAboveTheLimitAreClosedAndOthersStillWork) {
  // Room for the peers' connections and the test's own; the raw ones fill
  // the rest.
  constexpr int kMax = 24;
  insecure_ = true;  // plaintext: the probes below speak raw Cap'n Proto
  StartDeployment(1, 3, {absl::StrCat("--max-connections=", kMax)});
  const auto& target = deployment_->nodes()[0];
  std::string before_flood, after_flood;
  int closed_at_once = 0;
  std::vector<int> raw;
  OnReactor([&](net::Reactor& reactor) -> asio::awaitable<void> {
    auto conn = co_await net::RpcConnection::Connect(reactor, target.address, milliseconds(5000));
    if (!conn.ok()) {
      before_flood = "connect: " + std::string(conn.status().message());
      co_return;
    }
    auto node = (*conn)->Bootstrap<wire::Node>();
    auto echo = [&]() -> asio::awaitable<std::string> {
      auto req = node.echoRequest();
      req.initPayload(8);
      auto sent = req.send();
      auto r = co_await net::AwaitWithin(kj::mv(sent), milliseconds(5000));
      co_return r.ok() ? "echoed" : std::string(r.status().message());
    };
    before_flood = co_await echo();
    // More raw connections than the limit allows in all: those above it
    // are accepted and closed at once.
    for (int i = 0; i < kMax + 8; ++i) {
      int fd = DialRaw(target.address);
      if (fd >= 0) raw.push_back(fd);
    }
    after_flood = co_await echo();
  });
  // Those over the limit were closed at accept; the rest stay open.
  closed_at_once = ClosedByServer(raw, milliseconds(2000));
  for (int fd : raw) ::close(fd);
  EXPECT_EQ(before_flood, "echoed");
  EXPECT_GE(closed_at_once, 8) << "connections above --max-connections must be closed";
  EXPECT_EQ(after_flood, "echoed") << "a connection within the limit must keep working";
  // Once the flood is gone, new connections are served again.
  EXPECT_TRUE(Eventually([&] { return Put(target.address, "after-flood", "v").exit_code == 0; }));
}

TEST_F(LimitsTest, AnIdleConnectionIsClosedAfterTheIdleTimeout) {
  insecure_ = true;  // plaintext: the probes below speak raw Cap'n Proto
  StartDeployment(1, 3, {"--idle-timeout-ms=1s"});
  const auto& target = deployment_->nodes()[0];
  int fd = DialRaw(target.address);
  ASSERT_GE(fd, 0);
  // Closed within a quarter of the timeout after it: well within this.
  EXPECT_EQ(ClosedByServer({fd}, kConvergeBound), 1)
      << "a connection that sent nothing was not closed";
  ::close(fd);
  // The cluster's own connections come and go with the timeout too; puts
  // still succeed.
  EXPECT_TRUE(Eventually([&] { return Put(target.address, "after-idle", "v").exit_code == 0; }));
}

}  // namespace
}  // namespace replicator
