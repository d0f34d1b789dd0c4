// TLS 1.3 with mutual authentication under Cap'n Proto RPC, on real loopback connections, one
// reactor. Every wait is bounded (test_util.h's kPatience); nothing passes or fails on timing.
#include "net/tls.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <kj/debug.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "echo_test.capnp.h"
#include "net/asio_stream.h"
#include "net/bridge.h"
#include "net/certs.h"
#include "net/openssl_util.h"
#include "net/rpc.h"
#include "test_util.h"

namespace replicator::net {
namespace {

using std::chrono::milliseconds;
using testing::Latch;
using testing::RunToCompletion;
using testing::WaitUntil;

constexpr milliseconds kConnectTimeout{15000};
constexpr milliseconds kLongDeadline{15000};

// ---------------------------------------------------------------------------------------------
// Certificates for the tests: one federation, and an outsider's.

struct Holder {
  std::string cert_pem;
  std::string key_pem;
  std::string public_key;
};

Holder Issue(const CertificateAuthority& ca, std::string name, Role role,
             std::optional<Clock::time_point> not_before = std::nullopt,
             std::chrono::seconds validity = kDefaultCertificateValidity) {
  auto key = CreateEd25519Key();
  EXPECT_TRUE(key.ok()) << key.status();
  CertificateRequest request;
  request.subject_public_key = key->private_key_pem;
  request.common_name = std::move(name);
  request.role = role;
  request.not_before = not_before;
  request.validity = validity;
  auto cert = CreateCertificate(ca.cert_pem, ca.key_pem, request);
  EXPECT_TRUE(cert.ok()) << cert.status();
  return Holder{cert.ok() ? *cert : "", key->private_key_pem, key->public_key};
}

struct Pki {
  Pki() {
    ca = *CreateCa("test federation");
    foreign_ca = *CreateCa("outsiders");
    node = Issue(ca, "12D3KooWNodeA", Role::kNode);
    alice = Issue(ca, "alice", Role::kWrite);
    bob = Issue(ca, "bob", Role::kRead);
    intruder = Issue(foreign_ca, "mallory", Role::kAdmin);
    foreign_node = Issue(foreign_ca, "12D3KooWFake", Role::kNode);
    expired = Issue(ca, "old", Role::kWrite, Clock::now() - std::chrono::hours(48),
                    std::chrono::hours(24));
  }
  CertificateAuthority ca;
  CertificateAuthority foreign_ca;
  Holder node, alice, bob, intruder, foreign_node, expired;
};

const Pki& pki() {
  static const Pki* pki = new Pki();
  return *pki;
}

std::shared_ptr<const TlsContext> Context(const std::string& ca, const Holder& holder,
                                          milliseconds handshake_timeout = milliseconds(15000)) {
  TlsConfig config;
  config.ca_cert_pem = ca;
  config.cert_chain_pem = holder.cert_pem;
  config.key_pem = holder.key_pem;
  config.handshake_timeout = handshake_timeout;
  auto context = TlsContext::Create(config);
  EXPECT_TRUE(context.ok()) << context.status();
  return context.ok() ? *context : nullptr;
}

// ---------------------------------------------------------------------------------------------
// An echo server that says whom it serves: text comes back as "<role>:<CN>:<text>".

using EchoContext = capnp::CallContext<test::Echo::EchoParams, test::Echo::EchoResults>;

class EchoServer final : public test::Echo::Server {
 public:
  explicit EchoServer(std::string prefix) : prefix_(std::move(prefix)) {}

  kj::Promise<void> echo(EchoContext context) override {
    auto params = context.getParams();
    auto results = context.getResults();
    results.setValue(params.getValue());
    results.setText(prefix_ + params.getText().cStr());
    return kj::READY_NOW;
  }
  kj::Promise<void> hang(HangContext context) override {
    context.allowCancellation();
    return kj::NEVER_DONE;
  }
  kj::Promise<void> fail(FailContext context) override {
    return KJ_EXCEPTION(FAILED, context.getParams().getMessage().cStr());
  }

 private:
  std::string prefix_;
};

// What the server saw.
struct ServerLog {
  std::vector<PeerCertificate> peers;  // one per connection, as the bootstrap factory saw it
  int plaintext_peers = 0;
  std::vector<std::string> failures;  // handshake failure reasons
};

BootstrapFactory Factory(ServerLog* log) {
  return [log](const PeerCertificate* peer) -> capnp::Capability::Client {
    if (peer == nullptr) {
      ++log->plaintext_peers;
      return kj::heap<EchoServer>("plaintext:");
    }
    log->peers.push_back(*peer);
    return kj::heap<EchoServer>(fmt::format("{}:{}:", RoleName(peer->role), peer->common_name));
  };
}

std::unique_ptr<RpcServer> StartTlsServer(Reactor& reactor, ServerLog* log,
                                          milliseconds handshake_timeout = milliseconds(15000)) {
  auto server = RpcServer::Listen(reactor, "127.0.0.1:0", Factory(log),
                                  Context(pki().ca.cert_pem, pki().node, handshake_timeout));
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return nullptr;
  (*server)->set_handshake_failure_handler(
      [log](const std::string& peer, const std::string& reason) {
        EXPECT_NE(peer.find("127.0.0.1:"), std::string::npos) << peer;
        log->failures.push_back(reason);
      });
  return std::move(*server);
}

asio::awaitable<std::unique_ptr<RpcConnection>> ConnectTls(Reactor* reactor, std::string address,
                                                           const Holder& who) {
  auto connection = co_await RpcConnection::Connect(*reactor, address, kConnectTimeout,
                                                    Context(pki().ca.cert_pem, who));
  EXPECT_TRUE(connection.ok()) << connection.status();
  co_return connection.ok() ? std::move(*connection) : nullptr;
}

asio::awaitable<void> CallEcho(test::Echo::Client echo, uint64_t value, std::string text,
                               std::string expected_prefix) {
  auto request = echo.echoRequest();
  request.setValue(value);
  request.setText(text);
  auto response = co_await Await(request.send());
  EXPECT_EQ(response.getValue(), value);
  std::string got = response.getText().cStr();
  EXPECT_EQ(got.size(), expected_prefix.size() + text.size());
  EXPECT_TRUE(got == expected_prefix + text) << got.substr(0, 100);
}

// A raw TCP connection that says nothing.
asio::awaitable<asio::ip::tcp::socket> SilentConnection(Reactor* reactor, uint16_t port) {
  asio::ip::tcp::socket socket(reactor->io());
  co_await socket.async_connect(asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), port),
                                asio::use_awaitable);
  co_return socket;
}

// Waits until the peer closes `socket` (EOF or reset); false if it did not within kPatience.
asio::awaitable<bool> WaitClosed(asio::ip::tcp::socket& socket) {
  asio::steady_timer guard(socket.get_executor(), testing::kPatience);
  guard.async_wait([&](const std::error_code& error) {
    if (!error) socket.cancel();
  });
  std::array<char, 4096> buffer;
  for (;;) {
    auto [error, n] = co_await socket.async_read_some(
        asio::buffer(buffer), asio::experimental::as_tuple(asio::use_awaitable));
    (void)n;
    if (error == asio::error::operation_aborted) co_return false;
    if (error) {
      guard.cancel();
      co_return true;
    }
  }
}

// A blocking OpenSSL client on its own thread, for what RpcConnection cannot be made to do:
// present no certificate, or an expired one. Reports what the server said.
struct RawClientResult {
  std::atomic<bool> done{false};
  std::string error;  // empty: the server accepted us
};

void RunRawTlsClient(uint16_t port, std::string ca_pem, std::string cert_pem, std::string key_pem,
                     RawClientResult* result) {
  std::string error;
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  timeval patience{static_cast<time_t>(testing::kPatience.count()), 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &patience, sizeof(patience));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  {
    internal::BioPtr bio = internal::MemoryBio(ca_pem);
    X509* ca = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca);
    X509_free(ca);
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
  if (!cert_pem.empty()) {
    internal::BioPtr cert_bio = internal::MemoryBio(cert_pem);
    X509* cert = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr);
    SSL_CTX_use_certificate(ctx, cert);
    X509_free(cert);
    internal::BioPtr key_bio = internal::MemoryBio(key_pem);
    EVP_PKEY* key = PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr);
    SSL_CTX_use_PrivateKey(ctx, key);
    EVP_PKEY_free(key);
  }
  SSL* ssl = SSL_new(ctx);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
    error = "connect failed";
  } else {
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1) {
      error = "handshake: " + internal::TakeOpenSslErrors();
    } else {
      // TLS 1.3: the server's verdict on our certificate comes after our handshake is done.
      char byte;
      int n = SSL_read(ssl, &byte, 1);
      if (n <= 0) error = "read: " + internal::TakeOpenSslErrors("connection closed");
    }
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  ::close(fd);
  result->error = error;
  result->done = true;
}

// ---------------------------------------------------------------------------------------------

TEST(TlsContextTest, RefusesBrokenConfigurationsNamingTheProblem) {
  const Pki& p = pki();
  struct Case {
    TlsConfig config;
    std::string expected;
  };
  std::vector<Case> cases = {
      {{p.ca.cert_pem, p.node.cert_pem, p.alice.key_pem}, "does not belong to the certificate"},
      {{p.ca.cert_pem, p.intruder.cert_pem, p.intruder.key_pem}, "unable to get local issuer"},
      {{p.ca.cert_pem, p.expired.cert_pem, p.expired.key_pem}, "expired"},
      {{p.node.cert_pem, p.node.cert_pem, p.node.key_pem}, "not a CA certificate"},
      {{"", p.node.cert_pem, p.node.key_pem}, "CA certificate: no PEM certificate"},
      {{p.ca.cert_pem, "", p.node.key_pem}, "TLS certificate: no PEM certificate"},
      {{p.ca.cert_pem, p.node.cert_pem, "junk"}, "TLS key"},
  };
  for (const Case& c : cases) {
    auto context = TlsContext::Create(c.config);
    EXPECT_EQ(context.status().code(), absl::StatusCode::kInvalidArgument) << c.expected;
    EXPECT_NE(context.status().message().find(c.expected), std::string::npos) << context.status();
  }
  TlsConfig good{p.ca.cert_pem, p.node.cert_pem, p.node.key_pem};
  auto context = TlsContext::Create(good);
  ASSERT_TRUE(context.ok()) << context.status();
  EXPECT_EQ((*context)->certificate().common_name, "12D3KooWNodeA");
  EXPECT_EQ((*context)->certificate().role, Role::kNode);
  good.handshake_timeout = milliseconds(0);
  EXPECT_EQ(TlsContext::Create(good).status().code(), absl::StatusCode::kInvalidArgument);
}

asio::awaitable<void> EchoOverTls(Reactor* reactor) {
  ServerLog log;
  auto server = StartTlsServer(*reactor, &log);
  auto connection = co_await ConnectTls(reactor, server->address(), pki().alice);
  // The client knows whom it reached: the node's peer id and key, proven by the handshake.
  const PeerCertificate* peer = connection->peer_certificate();
  EXPECT_NE(peer, nullptr);
  if (peer != nullptr) {
    EXPECT_EQ(peer->common_name, "12D3KooWNodeA");
    EXPECT_EQ(peer->role, Role::kNode);
    EXPECT_EQ(peer->public_key, pki().node.public_key);
  }
  co_await CallEcho(connection->Bootstrap<test::Echo>(), 42, "hello", "write:alice:");
  // The server's bootstrap saw the client's certificate.
  EXPECT_EQ(log.peers.size(), 1u);
  if (!log.peers.empty()) {
    EXPECT_EQ(log.peers[0].common_name, "alice");
    EXPECT_EQ(log.peers[0].role, Role::kWrite);
    EXPECT_EQ(log.peers[0].public_key, pki().alice.public_key);
  }
  EXPECT_EQ(log.plaintext_peers, 0);
  EXPECT_EQ(server->connection_count(), 1u);
  EXPECT_EQ(server->handshake_failures(), 0u);
  connection.reset();
  EXPECT_TRUE(co_await WaitUntil([&] { return server->connection_count() == 0; }));
}

TEST(TlsTest, EchoRoundTripBothSidesSeeEachOthersCertificate) {
  Reactor reactor;
  RunToCompletion(reactor, EchoOverTls(&reactor));
}

asio::awaitable<void> BootstrapPerRole(Reactor* reactor) {
  ServerLog log;
  auto server = StartTlsServer(*reactor, &log);
  auto as_alice = co_await ConnectTls(reactor, server->address(), pki().alice);
  auto as_bob = co_await ConnectTls(reactor, server->address(), pki().bob);
  auto as_node = co_await ConnectTls(reactor, server->address(), pki().node);
  co_await CallEcho(as_alice->Bootstrap<test::Echo>(), 1, "x", "write:alice:");
  co_await CallEcho(as_bob->Bootstrap<test::Echo>(), 2, "y", "read:bob:");
  co_await CallEcho(as_node->Bootstrap<test::Echo>(), 3, "z", "node:12D3KooWNodeA:");
  EXPECT_EQ(log.peers.size(), 3u);
}

TEST(TlsTest, EachConnectionGetsTheBootstrapItsCertificateChose) {
  Reactor reactor;
  RunToCompletion(reactor, BootstrapPerRole(&reactor));
}

asio::awaitable<void> ForeignClientRefused(Reactor* reactor) {
  ServerLog log;
  auto server = StartTlsServer(*reactor, &log);
  // The intruder trusts our CA (so it accepts the server) but holds a certificate of its own CA.
  auto intruder = Context(pki().ca.cert_pem + pki().foreign_ca.cert_pem, pki().intruder);
  auto refused =
      co_await RpcConnection::Connect(*reactor, server->address(), kConnectTimeout, intruder);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated) << refused.status();
  EXPECT_NE(refused.status().message().find("refused this side's certificate"), std::string::npos)
      << refused.status();
  EXPECT_NE(refused.status().message().find("unknown ca"), std::string::npos) << refused.status();
  EXPECT_TRUE(co_await WaitUntil([&] { return server->handshake_failures() == 1; }));
  EXPECT_EQ(log.failures.size(), 1u);
  if (!log.failures.empty()) {
    EXPECT_NE(log.failures[0].find("unable to get local issuer certificate"), std::string::npos)
        << log.failures[0];
  }
  EXPECT_TRUE(log.peers.empty());
  EXPECT_TRUE(co_await WaitUntil([&] { return server->connection_count() == 0; }));

  // The server goes on serving the federation.
  auto alice = co_await ConnectTls(reactor, server->address(), pki().alice);
  co_await CallEcho(alice->Bootstrap<test::Echo>(), 7, "after", "write:alice:");
}

TEST(TlsTest, ClientWithForeignCaCertificateIsRefusedAndServerServesOthers) {
  Reactor reactor;
  RunToCompletion(reactor, ForeignClientRefused(&reactor));
}

asio::awaitable<void> ForeignServerRefused(Reactor* reactor) {
  // A server of another federation: our client does not accept it.
  ServerLog log;
  auto server = RpcServer::Listen(*reactor, "127.0.0.1:0", Factory(&log),
                                  Context(pki().foreign_ca.cert_pem, pki().foreign_node));
  EXPECT_TRUE(server.ok());
  auto refused = co_await RpcConnection::Connect(*reactor, (*server)->address(), kConnectTimeout,
                                                 Context(pki().ca.cert_pem, pki().alice));
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated) << refused.status();
  EXPECT_NE(refused.status().message().find("refused the peer's certificate"), std::string::npos)
      << refused.status();
  EXPECT_TRUE(log.peers.empty());

  // A server presenting a client's certificate (role write, clientAuth only) is no node.
  ServerLog log2;
  auto posing = RpcServer::Listen(*reactor, "127.0.0.1:0", Factory(&log2),
                                  Context(pki().ca.cert_pem, pki().bob));
  EXPECT_TRUE(posing.ok());
  auto refused2 = co_await RpcConnection::Connect(*reactor, (*posing)->address(), kConnectTimeout,
                                                  Context(pki().ca.cert_pem, pki().alice));
  EXPECT_EQ(refused2.status().code(), absl::StatusCode::kUnauthenticated) << refused2.status();
  EXPECT_TRUE(log2.peers.empty());
}

TEST(TlsTest, ClientRefusesServersOfAnotherCaAndNonNodes) {
  Reactor reactor;
  RunToCompletion(reactor, ForeignServerRefused(&reactor));
}

asio::awaitable<void> RawClientRefused(Reactor* reactor, std::string cert_pem, std::string key_pem,
                                       std::string expected_client_error,
                                       std::string expected_server_reason) {
  ServerLog log;
  auto server = StartTlsServer(*reactor, &log);
  RawClientResult result;
  std::thread client(RunRawTlsClient, server->port(), pki().ca.cert_pem, cert_pem, key_pem,
                     &result);
  bool done = co_await WaitUntil([&] { return result.done.load(); });
  client.join();
  EXPECT_TRUE(done);
  EXPECT_NE(result.error.find(expected_client_error), std::string::npos) << result.error;
  EXPECT_TRUE(co_await WaitUntil([&] { return server->handshake_failures() == 1; }));
  EXPECT_EQ(log.failures.size(), 1u);
  if (!log.failures.empty()) {
    EXPECT_NE(log.failures[0].find(expected_server_reason), std::string::npos) << log.failures[0];
  }
  EXPECT_TRUE(log.peers.empty());
  auto alice = co_await ConnectTls(reactor, server->address(), pki().alice);
  co_await CallEcho(alice->Bootstrap<test::Echo>(), 8, "still serving", "write:alice:");
}

TEST(TlsTest, ClientWithoutCertificateIsRefused) {
  Reactor reactor;
  RunToCompletion(reactor, RawClientRefused(&reactor, "", "", "certificate required",
                                            "presented no certificate"));
}

TEST(TlsTest, ClientWithExpiredCertificateIsRefused) {
  Reactor reactor;
  RunToCompletion(reactor, RawClientRefused(&reactor, pki().expired.cert_pem, pki().expired.key_pem,
                                            "certificate expired", "certificate has expired"));
}

asio::awaitable<void> PlaintextClientOnTlsPort(Reactor* reactor) {
  ServerLog log;
  auto server = StartTlsServer(*reactor, &log);
  auto plain = co_await RpcConnection::Connect(*reactor, server->address(), kConnectTimeout);
  EXPECT_TRUE(plain.ok()) << plain.status();  // TCP connects; the first call is refused
  auto echo = (*plain)->Bootstrap<test::Echo>();
  auto request = echo.echoRequest();
  request.setText("hello?");
  auto result = co_await AwaitWithin(request.send(), kLongDeadline);
  EXPECT_FALSE(result.ok());
  // Refused, not left hanging until the deadline (or the server's handshake timeout), and told
  // why in its own protocol.
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable) << result.status();
  EXPECT_NE(result.status().message().find("accepts only TLS connections"), std::string::npos)
      << result.status();
  EXPECT_TRUE(co_await WaitUntil([&] { return (*plain)->disconnected(); }));
  EXPECT_TRUE(co_await WaitUntil([&] { return server->handshake_failures() == 1; }));
  if (!log.failures.empty()) {
    EXPECT_NE(log.failures[0].find("does not speak TLS"), std::string::npos) << log.failures[0];
  }
  EXPECT_EQ(log.plaintext_peers, 0);
  auto alice = co_await ConnectTls(reactor, server->address(), pki().alice);
  co_await CallEcho(alice->Bootstrap<test::Echo>(), 9, "fine", "write:alice:");
}

TEST(TlsTest, PlaintextClientOnTlsPortFailsFast) {
  Reactor reactor;
  RunToCompletion(reactor, PlaintextClientOnTlsPort(&reactor));
}

asio::awaitable<void> TlsClientOnPlaintextPort(Reactor* reactor) {
  ServerLog log;
  auto server = RpcServer::Listen(*reactor, "127.0.0.1:0", Factory(&log), nullptr);
  EXPECT_TRUE(server.ok());
  auto tls = co_await RpcConnection::Connect(*reactor, (*server)->address(), kConnectTimeout,
                                             Context(pki().ca.cert_pem, pki().alice));
  EXPECT_EQ(tls.status().code(), absl::StatusCode::kUnavailable) << tls.status();
  // Not by running into the timeout.
  EXPECT_EQ(tls.status().message().find("within"), std::string::npos) << tls.status();
  EXPECT_NE(tls.status().message().find("TLS handshake"), std::string::npos) << tls.status();
  // The plaintext server still serves plaintext clients.
  auto plain = co_await RpcConnection::Connect(*reactor, (*server)->address(), kConnectTimeout);
  EXPECT_TRUE(plain.ok());
  co_await CallEcho((*plain)->Bootstrap<test::Echo>(), 1, "x", "plaintext:");
  EXPECT_EQ((*plain)->peer_certificate(), nullptr);
}

TEST(TlsTest, TlsClientOnPlaintextPortFailsCleanly) {
  Reactor reactor;
  RunToCompletion(reactor, TlsClientOnPlaintextPort(&reactor));
}

asio::awaitable<void> SilentConnectionTimesOut(Reactor* reactor) {
  ServerLog log;
  auto server = StartTlsServer(*reactor, &log, milliseconds(200));
  asio::ip::tcp::socket silent = co_await SilentConnection(reactor, server->port());
  EXPECT_TRUE(co_await WaitClosed(silent)) << "the server never closed a silent connection";
  EXPECT_TRUE(co_await WaitUntil([&] { return server->connection_count() == 0; }));
  EXPECT_EQ(server->handshake_failures(), 1u);
  EXPECT_EQ(log.failures.size(), 1u);
  if (!log.failures.empty()) {
    EXPECT_NE(log.failures[0].find("no TLS handshake within 200 ms"), std::string::npos)
        << log.failures[0];
  }
  // A client that does the handshake is not affected by the short timeout.
  auto alice = co_await ConnectTls(reactor, server->address(), pki().alice);
  co_await CallEcho(alice->Bootstrap<test::Echo>(), 2, "quick", "write:alice:");
}

TEST(TlsTest, HandshakeTimeoutClosesSilentConnection) {
  Reactor reactor;
  RunToCompletion(reactor, SilentConnectionTimesOut(&reactor));
}

asio::awaitable<void> SilentConnectionsDoNotBlockOthers(Reactor* reactor) {
  ServerLog log;
  auto server = StartTlsServer(*reactor, &log, milliseconds(3600 * 1000));  // never expires here
  std::vector<asio::ip::tcp::socket> silent;
  for (int i = 0; i < 5; ++i) silent.push_back(co_await SilentConnection(reactor, server->port()));
  // Also one that sent half a ClientHello.
  asio::ip::tcp::socket partial = co_await SilentConnection(reactor, server->port());
  const unsigned char half_hello[] = {0x16, 0x03, 0x01, 0x01, 0x00, 0x01, 0x00};
  co_await asio::async_write(partial, asio::buffer(half_hello), asio::use_awaitable);
  EXPECT_TRUE(co_await WaitUntil([&] { return server->connection_count() == 6; }));
  auto alice = co_await ConnectTls(reactor, server->address(), pki().alice);
  co_await CallEcho(alice->Bootstrap<test::Echo>(), 3, "not blocked", "write:alice:");
  EXPECT_EQ(server->connection_count(), 7u);
  EXPECT_EQ(server->handshake_failures(), 0u);
}

TEST(TlsTest, ConnectionsStuckInHandshakeDoNotBlockOthers) {
  Reactor reactor;
  RunToCompletion(reactor, SilentConnectionsDoNotBlockOthers(&reactor));
}

asio::awaitable<void> LargeMessages(Reactor* reactor) {
  ServerLog log;
  auto server = StartTlsServer(*reactor, &log);
  auto connection = co_await ConnectTls(reactor, server->address(), pki().alice);
  auto echo = connection->Bootstrap<test::Echo>();
  // Larger than socket buffers and the stream's 4 MiB write limit; many TLS records each.
  std::string big(8 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>('a' + (i / 4096) % 26);
  co_await CallEcho(echo, 1, big, "write:alice:");
  co_await CallEcho(echo, 2, "small after big", "write:alice:");
}

TEST(TlsTest, LargeMessagesRoundTripIntact) {
  Reactor reactor;
  RunToCompletion(reactor, LargeMessages(&reactor));
}

asio::awaitable<void> OneOfMany(test::Echo::Client echo, uint64_t i, std::string prefix,
                                Latch* latch) {
  co_await CallEcho(echo, i, "call " + std::to_string(i) + std::string(100, 'p'), prefix);
  latch->CountDown();
}

asio::awaitable<void> ManyConcurrentCalls(Reactor* reactor) {
  ServerLog log;
  auto server = StartTlsServer(*reactor, &log);
  constexpr int kConnections = 4;
  constexpr int kCallsEach = 250;
  std::vector<std::unique_ptr<RpcConnection>> connections;
  for (int c = 0; c < kConnections; ++c) {
    connections.push_back(
        co_await ConnectTls(reactor, server->address(), c % 2 == 0 ? pki().alice : pki().bob));
  }
  Latch latch(co_await asio::this_coro::executor, kConnections * kCallsEach);
  for (int c = 0; c < kConnections; ++c) {
    auto echo = connections[c]->Bootstrap<test::Echo>();
    std::string prefix = c % 2 == 0 ? "write:alice:" : "read:bob:";
    for (int i = 0; i < kCallsEach; ++i) {
      asio::co_spawn(reactor->io(), OneOfMany(echo, c * 1000 + i, prefix, &latch), asio::detached);
    }
  }
  co_await latch.Wait();
  EXPECT_EQ(latch.count(), 0);
  EXPECT_EQ(server->connection_count(), size_t{kConnections});
}

TEST(TlsTest, ManyConcurrentCallsOnManyConnections) {
  Reactor reactor;
  RunToCompletion(reactor, ManyConcurrentCalls(&reactor));
}

asio::awaitable<void> ServerGoesAway(Reactor* reactor) {
  ServerLog log;
  auto server = StartTlsServer(*reactor, &log);
  auto connection = co_await ConnectTls(reactor, server->address(), pki().alice);
  auto echo = connection->Bootstrap<test::Echo>();
  co_await CallEcho(echo, 1, "x", "write:alice:");
  auto hang = echo.hangRequest().send();
  server.reset();
  try {
    co_await Await(std::move(hang));
    ADD_FAILURE() << "no exception";
  } catch (const RpcError& e) {
    EXPECT_TRUE(e.disconnected()) << e.what();
  }
  EXPECT_TRUE(co_await WaitUntil([&] { return connection->disconnected(); }));
}

TEST(TlsTest, ServerGoingAwayFailsCallsInFlight) {
  Reactor reactor;
  RunToCompletion(reactor, ServerGoesAway(&reactor));
}

asio::awaitable<void> StartThenStop(Reactor* reactor, RpcServer* server,
                                    std::vector<asio::ip::tcp::socket>* silent,
                                    std::unique_ptr<RpcConnection>* connection) {
  silent->push_back(co_await SilentConnection(reactor, server->port()));
  *connection = co_await ConnectTls(reactor, server->address(), pki().alice);
  auto echo = (*connection)->Bootstrap<test::Echo>();
  for (int i = 0; i < 10; ++i) {
    asio::co_spawn(reactor->io(), CallEcho(echo, i, "x", "write:alice:"), asio::detached);
  }
  asio::co_spawn(
      reactor->io(),
      [](test::Echo::Client e) -> asio::awaitable<void> {
        try {
          co_await Await(e.hangRequest().send());
        } catch (const RpcError&) {
        }
      }(echo),
      asio::detached);
  EXPECT_TRUE(co_await WaitUntil([&] { return server->connection_count() == 2; }));
}

// Teardown with a handshake pending, calls in flight, everything still open.
TEST(TlsTest, TeardownWithHandshakesAndCallsInFlight) {
  ServerLog log;
  Reactor reactor;
  auto server = StartTlsServer(reactor, &log);
  std::vector<asio::ip::tcp::socket> silent;
  std::unique_ptr<RpcConnection> connection;
  RunToCompletion(reactor, StartThenStop(&reactor, server.get(), &silent, &connection));
  connection.reset();
  server.reset();
}

// The stream alone, over an in-memory pipe whose writes complete only when the other end reads:
// exercises the write queue when the inner stream pushes back.
asio::awaitable<void> StreamOverPipe(Reactor* reactor) {
  auto pipe = kj::newTwoWayPipe();
  auto server_context = Context(pki().ca.cert_pem, pki().node);
  auto client_context = Context(pki().ca.cert_pem, pki().bob);
  TlsStream server(kj::mv(pipe.ends[0]), server_context, TlsStream::Side::kServer, reactor->io());
  TlsStream client(kj::mv(pipe.ends[1]), client_context, TlsStream::Side::kClient, reactor->io());
  kj::Promise<void> server_handshake = server.Handshake();
  kj::Promise<void> client_handshake = client.Handshake();
  auto both = kj::joinPromises(kj::arr(kj::mv(server_handshake), kj::mv(client_handshake)));
  absl::Status handshakes = co_await AwaitWithin(kj::mv(both), kLongDeadline);
  EXPECT_TRUE(handshakes.ok()) << handshakes;
  EXPECT_EQ(server.peer_certificate().common_name, "bob");
  EXPECT_EQ(client.peer_certificate().common_name, "12D3KooWNodeA");

  // Many writes in one turn, then a read of all of it in pieces of odd sizes.
  std::string sent;
  for (int i = 0; i < 1000; ++i) {
    std::string piece = fmt::format("message {} {}|", i, std::string(i % 97, 'z'));
    sent += piece;
    kj::Promise<void> written = client.write(piece.data(), piece.size());
    (void)written;  // resolves at once below 4 MiB pending
  }
  client.shutdownWrite();  // close_notify after the data
  std::string received;
  for (;;) {
    std::vector<char> buffer(777);
    kj::Promise<size_t> read = server.tryRead(buffer.data(), 1, buffer.size());
    auto n = co_await AwaitWithin(kj::mv(read), kLongDeadline);
    EXPECT_TRUE(n.ok()) << n.status();
    if (!n.ok() || *n == 0) break;  // EOF from close_notify
    received.append(buffer.data(), *n);
  }
  EXPECT_EQ(received.size(), sent.size());
  EXPECT_TRUE(received == sent);
}

TEST(TlsStreamTest, WritesOfATurnArriveInOrderAndShutdownIsEndOfStream) {
  Reactor reactor;
  RunToCompletion(reactor, StreamOverPipe(&reactor));
}

// Reads exactly `size` bytes.
asio::awaitable<std::string> ReadExactly(TlsStream& stream, size_t size) {
  std::string out(size, '\0');
  kj::Promise<size_t> read = stream.tryRead(out.data(), size, size);
  auto n = co_await AwaitWithin(kj::mv(read), kLongDeadline);
  EXPECT_TRUE(n.ok()) << n.status();
  if (!n.ok() || *n != size) co_return "";
  co_return out;
}

// Keys are replaced as data flows (here every 1000 bytes, both ways) without the peer noticing.
asio::awaitable<void> KeyUpdates(Reactor* reactor) {
  auto pipe = kj::newTwoWayPipe();
  TlsStream server(kj::mv(pipe.ends[0]), Context(pki().ca.cert_pem, pki().node),
                   TlsStream::Side::kServer, reactor->io());
  TlsStream client(kj::mv(pipe.ends[1]), Context(pki().ca.cert_pem, pki().alice),
                   TlsStream::Side::kClient, reactor->io());
  server.set_key_update_interval(1000);
  client.set_key_update_interval(1000);
  kj::Promise<void> server_handshake = server.Handshake();
  kj::Promise<void> client_handshake = client.Handshake();
  auto both = kj::joinPromises(kj::arr(kj::mv(server_handshake), kj::mv(client_handshake)));
  absl::Status handshakes = co_await AwaitWithin(kj::mv(both), kLongDeadline);
  EXPECT_TRUE(handshakes.ok()) << handshakes;
  for (int round = 0; round < 20; ++round) {
    std::string ping = fmt::format("{:04d}", round) + std::string(3000, 'a' + round % 26);
    kj::Promise<void> sent = client.write(ping.data(), ping.size());
    std::string got = co_await ReadExactly(server, ping.size());
    EXPECT_TRUE(got == ping) << "round " << round;
    kj::Promise<void> written = kj::mv(sent);
    std::string pong = "re:" + ping;
    kj::Promise<void> answered = server.write(pong.data(), pong.size());
    std::string back = co_await ReadExactly(client, pong.size());
    EXPECT_TRUE(back == pong) << "round " << round;
  }
}

TEST(TlsStreamTest, KeyUpdatesAreTransparent) {
  Reactor reactor;
  RunToCompletion(reactor, KeyUpdates(&reactor));
}

}  // namespace
}  // namespace replicator::net
