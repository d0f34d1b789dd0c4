// Addresses on real processes: a node listening on every interface is told apart by the
// address it advertises (here a host name, which its peers bootstrap through and the CLI
// dials), a node that could advertise nothing dialable is refused at start, a node listens on
// a host name (and one that does not resolve stops it), and the CLI reaches nodes by host name.
// Config-file errors stop the node with the usage exit code.
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "tests/integration/harness.h"

namespace replicator {
namespace {

// A TCP port free on every interface now (bound, read and closed).
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  EXPECT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = 0;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// A name /etc/hosts maps to 127.0.0.1 other than localhost (resolved by the system resolver,
// not special-cased like localhost), or "" if it has none.
std::string LoopbackNameFromHosts() {
  std::ifstream hosts("/etc/hosts");
  std::string line;
  while (std::getline(hosts, line)) {
    std::istringstream fields(line.substr(0, line.find('#')));
    std::string ip, name;
    if (!(fields >> ip) || ip != "127.0.0.1") continue;
    while (fields >> name) {
      if (name != "localhost" && std::all_of(name.begin(), name.end(), [](char c) {
            return absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_';
          })) {
        return name;
      }
    }
  }
  return "";
}

class AddressesTest : public DeploymentTest {};

TEST_F(AddressesTest, ListenTakesHostNamesAndAdvertisesTheBoundAddress) {
  // Node 0 listens on localhost, node 1 on a name from /etc/hosts (through the resolver):
  // both bind 127.0.0.1 and advertise it, so the others bootstrap through them and dial them.
  std::string name = LoopbackNameFromHosts();
  if (name.empty()) {
    GTEST_SKIP() << "/etc/hosts has no name for 127.0.0.1 but localhost";
  }
  StartDeployment(
      1, 3, {}, "memory", {},
      {{0, node::NodePlacement{{}, "localhost:0"}}, {1, node::NodePlacement{{}, name + ":0"}}});
  for (size_t at : {0, 1}) {
    const std::string& address = deployment_->nodes()[at].address;
    EXPECT_TRUE(absl::StartsWith(address, "127.0.0.1:")) << "node " << at << ": " << address;
    for (size_t seen_by : {0, 1, 2}) {
      EXPECT_TRUE(absl::StrContains(MemberLine(seen_by, address), "voter"))
          << "node " << seen_by << " on " << address;
    }
  }
  CommandResult put = Put(deployment_->nodes()[1].address, "k", "v");
  EXPECT_EQ(put.exit_code, 0) << put.err;
  ExpectEventually(deployment_->nodes()[0].address, "k", "v");
}

TEST_F(AddressesTest, NodeOnEveryInterfaceIsKnownByItsAdvertisedName) {
  std::string port = std::to_string(FreePort());
  std::string advertised = "localhost:" + port;
  // Node 0 founds the federation; nodes 1 and 2 bootstrap through "localhost:PORT", which they
  // resolve, and learn every address from the member map.
  StartDeployment(1, 3, {}, "memory", {{0, {"--advertise=" + advertised}}},
                  {{0, node::NodePlacement{{}, "0.0.0.0:" + port}}});
  ASSERT_EQ(deployment_->nodes()[0].address, advertised);
  for (size_t at : {0, 1, 2}) {
    std::string line = MemberLine(at, advertised);
    EXPECT_TRUE(absl::StrContains(line, "voter")) << "node " << at << ": '" << line << "'";
    EXPECT_TRUE(MemberLine(at, "127.0.0.1:" + port).empty()) << "node " << at;
  }
  CommandResult list = Cli({"--node=" + advertised, "member", "list"});
  EXPECT_EQ(list.exit_code, 0) << list.err;
  EXPECT_TRUE(absl::StrContains(list.out, advertised)) << list.out;
  CommandResult put = Put(deployment_->nodes()[1].address, "k", "v");
  EXPECT_EQ(put.exit_code, 0) << put.err;
  ExpectEventually(advertised, "k", "v");
}

TEST_F(AddressesTest, CliDialsANodeByHostName) {
  StartDeployment(1, 3);
  const std::string& address = deployment_->nodes()[2].address;  // 127.0.0.1:PORT
  ASSERT_TRUE(absl::StartsWith(address, "127.0.0.1:")) << address;
  std::string by_name = "localhost:" + address.substr(address.rfind(':') + 1);
  CommandResult put = Put(by_name, "greeting", "hello");
  EXPECT_EQ(put.exit_code, 0) << put.err;
  CommandResult get = Get(by_name, "greeting", "linearizable");
  EXPECT_EQ(get.exit_code, 0) << get.err;
  EXPECT_EQ(get.out, "hello");
  CommandResult unknown = Cli({"--node=no-such-host.invalid:7000", "status"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(unknown.err, "no-such-host.invalid")) << unknown.err;
}

class StartRefusalTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = TempDir("refusal"); }
  void TearDown() override {
    if (!HasFailure()) std::filesystem::remove_all(root_);
  }
  CommandResult Replicatord(std::vector<std::string> args) {
    args.insert(args.begin(), REPLICATORD_PATH);
    return RunCommand(args, kCommandTimeout);
  }
  std::string root_;
};

TEST_F(StartRefusalTest, UnspecifiedListenWithoutAdvertiseIsAUsageError) {
  for (const char* listen : {"0.0.0.0:0", "[::]:0"}) {
    CommandResult r = Replicatord({"--cluster=c", "--data-dir=" + root_ + "/d",
                                   std::string("--listen=") + listen, "--storage=memory"});
    EXPECT_EQ(r.exit_code, 2) << listen << r.out << r.err;
    EXPECT_TRUE(absl::StrContains(r.err, "give --advertise=HOST:PORT")) << r.err;
  }
  CommandResult r = Replicatord({"--cluster=c", "--data-dir=" + root_ + "/d", "--listen=0.0.0.0:0",
                                 "--advertise=10.0.0.1:0"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "needs the port others dial")) << r.err;
}

TEST_F(StartRefusalTest, ListenNameThatDoesNotResolveFailsNamingIt) {
  CommandResult r =
      Replicatord({"--cluster=c", "--data-dir=" + root_ + "/d", "--listen=no-such-host.invalid:0",
                   "--storage=memory", "--insecure"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(
      r.err, "cannot listen on no-such-host.invalid:0: cannot resolve no-such-host.invalid"))
      << r.err;
}

TEST_F(StartRefusalTest, ConfigFileErrorsNameFileAndLineAndExitTwo) {
  std::string path = root_ + "/node.conf";
  { std::ofstream(path) << "# replicatord settings\ncluster = eu-1\nlisten = 0.0.0.0:0\n"; }
  // The file is applied: its unspecified listen address is refused...
  CommandResult applied = Replicatord({"--config=" + path, "--data-dir=" + root_ + "/d"});
  EXPECT_EQ(applied.exit_code, 2) << applied.err;
  EXPECT_TRUE(absl::StrContains(applied.err, "--listen=0.0.0.0:0")) << applied.err;
  // ...and a command-line flag overrides it: without a cluster the node stops at once.
  CommandResult overridden = Replicatord(
      {"--config=" + path, "--cluster=", "--listen=127.0.0.1:0", "--data-dir=" + root_ + "/d"});
  EXPECT_NE(overridden.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(overridden.err, "--cluster is required")) << overridden.err;
  { std::ofstream(path) << "cluster = eu-1\n\nbogus-flag = 1\n"; }
  CommandResult unknown = Replicatord({"--config=" + path});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(unknown.err, path + ":3: unknown flag 'bogus-flag'"))
      << unknown.err;
  CommandResult missing = Replicatord({"--config=" + root_ + "/none.conf"});
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_TRUE(absl::StrContains(missing.err, "cannot read config file " + root_ + "/none.conf"))
      << missing.err;
}

}  // namespace
}  // namespace replicator
