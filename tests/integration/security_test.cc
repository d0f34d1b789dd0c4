// Transport security on real processes: every connection is TLS 1.3 with
// certificates of the deployment's CA, and each face answers only the roles
// node/caller.h allows. The tests play an outsider (no certificate, another
// CA's), a client of too small a role, and a node that tries to register a
// peer id that is not its own.
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "harness.h"
#include "net/bridge.h"
#include "net/reactor.h"
#include "net/rpc.h"
#include "schema/replicator.capnp.h"

namespace replicator {
namespace {

namespace fs = std::filesystem;
using std::chrono::seconds;

constexpr int kPermissionDenied = 6;  // the CLI's exit code

// One raw Cap'n Proto call with a given TLS identity, on its own reactor:
// what an attacker with a certificate could send, bypassing the client.
class RawCall {
 public:
  RawCall(std::string to, std::shared_ptr<const net::TlsContext> with)
      : address(std::move(to)), tls(std::move(with)) {}

  std::string address;
  std::shared_ptr<const net::TlsContext> tls;
  std::string error;  // empty: the call succeeded

  // Node.peer().digest().
  void PeerDigest() { Run(&RawCall::DigestCall); }
  // Node.directory().join() registering `id` at `at`.
  void Join(std::string id, std::string at) {
    join_id_ = std::move(id);
    join_address_ = std::move(at);
    Run(&RawCall::JoinCall);
  }

 private:
  void Run(asio::awaitable<void> (RawCall::*call)()) {
    net::Reactor reactor;
    reactor_ = &reactor;
    asio::co_spawn(reactor.io(), (this->*call)(), asio::detached);
    reactor.Run();
    reactor_ = nullptr;
  }
  asio::awaitable<bool> Connect() {
    auto c = co_await net::RpcConnection::Connect(*reactor_, address, seconds(5), tls);
    if (!c.ok()) {
      error = "connect: " + std::string(c.status().message());
      co_return false;
    }
    connection_ = std::move(*c);
    co_return true;
  }
  asio::awaitable<void> DigestCall() {
    if (co_await Connect()) {
      auto peer = connection_->Bootstrap<wire::Node>().peerRequest().send().getPeer();
      auto sent = peer.digestRequest().send();
      auto r = co_await net::AwaitWithin(kj::mv(sent), std::chrono::milliseconds(5000));
      error = r.ok() ? "" : std::string(r.status().message());
    }
    connection_.reset();
    reactor_->Stop();
  }
  asio::awaitable<void> JoinCall() {
    if (co_await Connect()) {
      auto directory =
          connection_->Bootstrap<wire::Node>().directoryRequest().send().getDirectory();
      auto req = directory.joinRequest();
      auto self = req.initSelf();
      self.setId(join_id_);
      self.setCluster("c1");
      self.setAddress(join_address_);
      self.setStamp(~uint64_t{0});
      auto sent = req.send();
      auto r = co_await net::AwaitWithin(kj::mv(sent), std::chrono::milliseconds(5000));
      error = r.ok() ? "" : std::string(r.status().message());
    }
    connection_.reset();
    reactor_->Stop();
  }

  net::Reactor* reactor_ = nullptr;
  std::unique_ptr<net::RpcConnection> connection_;
  std::string join_id_, join_address_;
};

// The peer id `status` shows for the node at `address`.
std::string PeerIdOf(const CommandResult& status) {
  const std::string prefix = "node      ";
  size_t at = status.out.find(prefix);
  if (at == std::string::npos) return "";
  at += prefix.size();
  return status.out.substr(at, status.out.find(' ', at) - at);
}

class SecurityTest : public DeploymentTest {
 protected:
  void SetUp() override {
    StartDeployment(1, 3);
    certs_ = deployment_->certs_dir();
    node_ = deployment_->nodes()[0].address;
  }
  // A client certificate NAME of `role`, issued by the deployment's CA
  // through the CLI.
  void CreateClient(const std::string& name, const std::string& role) {
    CommandResult r =
        Cli({"cert", "create-client", name, "--certs-dir=" + certs_, "--role=" + role});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  CommandResult As(const std::string& user, std::vector<std::string> args) {
    args.insert(args.begin(), {"--certs-dir=" + certs_, "--user=" + user, "--node=" + node_});
    return Cli(args);
  }
  // The admin's view: key stored or not.
  int AdminGet(const std::string& key) { return Get(node_, key).exit_code; }

  std::string certs_;
  std::string node_;
};

TEST_F(SecurityTest, AClientWithoutACertificateIsRefused) {
  CommandResult put = Cli({"--insecure", "--node=" + node_, "put", "k", "v"});
  EXPECT_NE(put.exit_code, 0);
  EXPECT_NE(put.err.find("accepts only TLS"), std::string::npos) << put.err;
  CommandResult get = Cli({"--insecure", "--node=" + node_, "get", "k"});
  EXPECT_NE(get.exit_code, 0);
  EXPECT_EQ(AdminGet("k"), 4) << "the plaintext put must not have stored anything";
}

TEST_F(SecurityTest, ACertificateFromAnotherCaIsRefused) {
  const std::string other = root_ + "/other-ca";
  ASSERT_EQ(Cli({"cert", "create-ca", "--certs-dir=" + other}).exit_code, 0);
  ASSERT_EQ(
      Cli({"cert", "create-client", "root", "--certs-dir=" + other, "--role=admin"}).exit_code, 0);
  CommandResult put = Cli({"--certs-dir=" + other, "--node=" + node_, "put", "k", "v"});
  EXPECT_EQ(put.exit_code, kPermissionDenied) << put.err;
  EXPECT_NE(put.err.find("certificate"), std::string::npos) << put.err;
  EXPECT_EQ(AdminGet("k"), 4);
}

TEST_F(SecurityTest, AReadClientCanGetButNotPut) {
  CreateClient("reader", "read");
  ASSERT_EQ(Put(node_, "k", "v").exit_code, 0);
  CommandResult get = As("reader", {"get", "k"});
  EXPECT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(get.out, "v");
  EXPECT_EQ(As("reader", {"status"}).exit_code, 0);
  CommandResult put = As("reader", {"put", "k2", "v2"});
  EXPECT_EQ(put.exit_code, kPermissionDenied) << put.err;
  EXPECT_NE(put.err.find("put needs role write or admin"), std::string::npos) << put.err;
  EXPECT_NE(put.err.find("has role read"), std::string::npos) << put.err;
  EXPECT_EQ(AdminGet("k2"), 4);
}

TEST_F(SecurityTest, AWriteClientCanPutButNotChangeMembership) {
  CreateClient("writer", "write");
  CommandResult put = As("writer", {"put", "k", "v"});
  EXPECT_EQ(put.exit_code, 0) << put.err;
  const std::string victim = PeerIdOf(Cli({"--node=" + deployment_->nodes()[1].address, "status"}));
  ASSERT_FALSE(victim.empty());
  CommandResult remove = As("writer", {"member", "remove", victim});
  EXPECT_EQ(remove.exit_code, kPermissionDenied) << remove.err;
  EXPECT_NE(remove.err.find("needs role admin"), std::string::npos) << remove.err;
  EXPECT_NE(remove.err.find("has role write"), std::string::npos) << remove.err;
  CommandResult cluster = As("writer", {"cluster", "remove", "c1"});
  EXPECT_EQ(cluster.exit_code, kPermissionDenied) << cluster.err;
  EXPECT_NE(cluster.err.find("needs role admin"), std::string::npos) << cluster.err;
  CommandResult list = Cli({"--node=" + node_, "member", "list"});
  EXPECT_NE(list.out.find(victim), std::string::npos) << "the member must still be there";
}

TEST_F(SecurityTest, ANodeCertificateCannotRegisterAnotherPeerId) {
  // A node of this CA (an insider's certificate, for its own fresh key).
  const std::string intruder = root_ + "/intruder-certs";
  fs::create_directories(intruder);
  fs::copy_file(certs_ + "/ca.crt", intruder + "/ca.crt");
  CommandResult created =
      Cli({"cert", "create-node", "--certs-dir=" + intruder, "--ca-key=" + certs_ + "/ca.key",
           "--data-dir=" + root_ + "/intruder-data"});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  auto pem =
      node::ReadTlsFiles({intruder + "/ca.crt", intruder + "/node.crt", intruder + "/node.key"});
  ASSERT_TRUE(pem.ok()) << pem.status();
  auto tls = net::TlsContext::Create({pem->ca, pem->cert, pem->key});
  ASSERT_TRUE(tls.ok()) << tls.status();

  const std::string victim_address = deployment_->nodes()[1].address;
  const std::string victim = PeerIdOf(Cli({"--node=" + victim_address, "status"}));
  ASSERT_FALSE(victim.empty());
  RawCall call(node_, *tls);
  call.Join(victim, "127.0.0.1:1");
  EXPECT_NE(call.error.find("may register only its own peer id"), std::string::npos) << call.error;
  // Every node still has the victim at its own address.
  for (size_t i = 0; i < deployment_->nodes().size(); ++i) {
    EXPECT_NE(MemberLine(i, victim_address).find(victim), std::string::npos) << i;
  }
}

TEST_F(SecurityTest, AClientCertificateCannotCallThePeerOrDirectoryFace) {
  RawCall peer(node_, TestClientOptions().tls);
  peer.PeerDigest();
  EXPECT_NE(peer.error.find("the Peer face needs role node"), std::string::npos) << peer.error;
  EXPECT_NE(peer.error.find("has role admin"), std::string::npos) << peer.error;
  RawCall join(node_, TestClientOptions().tls);
  join.Join("12D3KooWBogusBogusBogus", "127.0.0.1:1");
  EXPECT_NE(join.error.find("the Directory face needs role node"), std::string::npos) << join.error;
  CommandResult list = Cli({"--node=" + node_, "member", "list"});
  EXPECT_EQ(list.out.find("127.0.0.1:1 "), std::string::npos) << list.out;
}

TEST_F(SecurityTest, StatusShowsTls) {
  CommandResult r = Cli({"--node=" + node_, "status"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("security  TLS 1.3"), std::string::npos) << r.out;
}

class InsecureTest : public DeploymentTest {};

TEST_F(InsecureTest, InsecureShowsInStatusAndIsLogged) {
  insecure_ = true;
  StartDeployment(1, 1);
  const auto& n = deployment_->nodes()[0];
  CommandResult r = Cli({"--node=" + n.address, "status"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("security  INSECURE"), std::string::npos) << r.out;
  std::ifstream log(n.log_path);
  std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("WARN"), std::string::npos) << text;
  EXPECT_NE(text.find("--insecure: plaintext"), std::string::npos) << text;
}

TEST(SecurityStartupTest, ReplicatordWithoutCertificatesOrInsecureExits2) {
  std::string dir = TempDir("nocerts");
  CommandResult r =
      RunCommand({REPLICATORD_PATH, "--cluster=c1", "--data-dir=" + dir, "--storage=memory"},
                 milliseconds(20000));
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("--certs-dir"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--insecure"), std::string::npos) << r.err;
  CommandResult both = RunCommand({REPLICATORD_PATH, "--cluster=c1", "--data-dir=" + dir,
                                   "--storage=memory", "--insecure", "--certs-dir=" + dir},
                                  milliseconds(20000));
  EXPECT_EQ(both.exit_code, 1) << both.err;
  EXPECT_NE(both.err.find("cannot be combined"), std::string::npos) << both.err;
  fs::remove_all(dir);
}

TEST(SecurityStartupTest, ACertificateForAnotherIdentityIsRefused) {
  const std::string dir = TempDir("otherid");
  const std::string certs = dir + "/certs";
  auto cli = [](std::vector<std::string> args) {
    args.insert(args.begin(), REPLICATOR_CLI_PATH);
    return RunCommand(args, kCommandTimeout);
  };
  ASSERT_EQ(cli({"cert", "create-ca", "--certs-dir=" + certs}).exit_code, 0);
  // node.crt and node.key of data dir A; the node starts with data dir B.
  ASSERT_EQ(
      cli({"cert", "create-node", "--certs-dir=" + certs, "--data-dir=" + dir + "/a"}).exit_code,
      0);
  CommandResult r = RunCommand({REPLICATORD_PATH, "--cluster=c1", "--data-dir=" + dir + "/b",
                                "--storage=memory", "--certs-dir=" + certs},
                               milliseconds(20000));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("not for this node's identity key"), std::string::npos) << r.err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace replicator
