// Shared harness of the integration tests: a LocalDeployment of real
// replicatord processes plus helpers that drive the replicator CLI. Every
// process is stopped by its PID when the test ends. Deployments run over
// TLS with a throw-away CA (LocalDeployment creates it) unless a test sets
// insecure_ before StartDeployment; the CLI and TestClientOptions() use the
// deployment's admin client certificate.
#pragma once

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "net/tls.h"
#include "node/local_deployment.h"
#include "node/tls_files.h"
#include "replicator/client.h"

namespace replicator {

using node::CommandResult;
using node::LocalDeployment;
using node::RunCommand;
using std::chrono::milliseconds;

inline constexpr milliseconds kCommandTimeout{30000};
// Bound for "eventually" checks (asynchronous commit reaching every node).
inline constexpr milliseconds kConvergeBound{15000};

inline std::string TempDir(const std::string& name) {
  std::string tmpl = ::testing::TempDir() + "replicator-" + name + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  EXPECT_NE(::mkdtemp(buf.data()), nullptr);
  return buf.data();
}

// TLS for a client of the deployment in `certs_dir` as client `user`
// (client.USER.crt there); null (plaintext) for an empty certs_dir.
inline std::shared_ptr<const net::TlsContext> ClientTls(const std::string& certs_dir,
                                                        const std::string& user = "root") {
  if (certs_dir.empty()) return nullptr;
  node::TlsFlags flags;
  flags.certs_dir = certs_dir;
  auto paths = node::ResolveTlsPaths(flags, node::TlsHolder::Client(user));
  EXPECT_TRUE(paths.ok()) << paths.status();
  if (!paths.ok()) return nullptr;
  auto pem = node::ReadTlsFiles(**paths);
  EXPECT_TRUE(pem.ok()) << pem.status();
  if (!pem.ok()) return nullptr;
  auto tls = net::TlsContext::Create({pem->ca, pem->cert, pem->key});
  EXPECT_TRUE(tls.ok()) << tls.status();
  return tls.ok() ? *tls : nullptr;
}

// The client options of the running test's deployment (its admin
// certificate, or plaintext when insecure); set by StartDeployment.
inline ClientOptions& TestClientOptions() {
  static ClientOptions options;
  return options;
}

class DeploymentTest : public ::testing::Test {
 protected:
  void StartDeployment(int clusters, int nodes, std::vector<std::string> extra_flags = {},
                       std::string storage = "memory",
                       std::map<size_t, std::vector<std::string>> node_flags = {},
                       std::map<size_t, node::NodePlacement> node_placement = {}) {
    root_ = TempDir(::testing::UnitTest::GetInstance()->current_test_info()->name());
    node::DeploymentOptions options;
    options.clusters = clusters;
    options.nodes_per_cluster = nodes;
    options.replicatord = REPLICATORD_PATH;
    options.root_dir = root_;
    options.storage = std::move(storage);
    options.extra_flags = std::move(extra_flags);
    options.node_flags = std::move(node_flags);
    options.node_placement = std::move(node_placement);
    options.insecure = insecure_;
    auto d = LocalDeployment::Start(options);
    if (!d.ok()) {
      // Not an ASSERT, which would return from this helper only: the test
      // would go on with no deployment. gtest reports the exception as the
      // test's failure.
      ADD_FAILURE() << d.status();
      throw std::runtime_error("the deployment did not start");
    }
    deployment_ = std::move(*d);
    TestClientOptions() = ClientOptions{};
    TestClientOptions().tls = ClientTls(deployment_->certs_dir());
    // Every node must know every other before the first put, or a put could
    // see a cluster with fewer than 3 voters. Clusters of fewer than 3 are
    // never founded: then every member is waited for, whatever its state.
    WaitForMembership(clusters * nodes, /*founded=*/nodes >= 3);
  }

  void TearDown() override {
    deployment_.reset();
    if (!root_.empty() && !HasFailure()) std::filesystem::remove_all(root_);
  }

  // The replicator CLI with the deployment's client flags (its admin
  // certificate, or --insecure), unless `args` bring their own.
  CommandResult Cli(std::vector<std::string> args, const std::string& stdin_data = "") {
    bool own = false;
    for (const std::string& a : args) {
      for (const char* f : {"--certs-dir", "--insecure", "--ca", "--cert", "--key", "--user"}) {
        own = own || absl::StartsWith(a, f);
      }
    }
    if (!own && deployment_ != nullptr) {
      std::vector<std::string> flags = deployment_->ClientFlags();
      args.insert(args.begin(), flags.begin(), flags.end());
    }
    args.insert(args.begin(), REPLICATOR_CLI_PATH);
    return RunCommand(args, kCommandTimeout, stdin_data);
  }
  CommandResult Put(const std::string& node, const std::string& key, const std::string& value) {
    return Cli({"--node=" + node, "put", key, value});
  }
  CommandResult Get(const std::string& node, const std::string& key,
                    const std::string& consistency = "local") {
    return Cli({"--node=" + node, "get", key, "--consistency=" + consistency});
  }

  // Polls `status` on every node until each lists `members` members as
  // voters (a node of a cluster shows itself a voter once its cluster is
  // founded) and has settled with the federation (it answers linearizable
  // gets); or, unless `founded`, lists `members` members in any state.
  void WaitForMembership(int members, bool founded = true) {
    auto deadline = std::chrono::steady_clock::now() + kConvergeBound;
    for (const auto& n : deployment_->nodes()) {
      while (true) {
        CommandResult r = Cli({"--node=" + n.address, "status"});
        int listed = 0;
        for (const char* state : {"  voter", "  catching up"}) {
          if (founded && std::string_view(state) != "  voter") continue;
          for (size_t pos = 0; (pos = r.out.find(state, pos)) != std::string::npos; ++pos) {
            ++listed;
          }
        }
        if (r.exit_code == 0 && listed >= members &&
            (!founded || absl::StrContains(r.out, "; settled;"))) {
          break;
        }
        ASSERT_LT(std::chrono::steady_clock::now(), deadline)
            << "node " << n.address << " never saw " << members << " members:\n"
            << r.out << r.err;
        std::this_thread::sleep_for(milliseconds(50));
      }
    }
  }

  // The line of `status` at node `at` that lists the member at `address`
  // ("  <peer id>  <address>  <state>"); empty if it is not listed.
  std::string MemberLine(size_t at, const std::string& address) {
    CommandResult r = Cli({"--node=" + deployment_->nodes()[at].address, "status"});
    for (absl::string_view line : absl::StrSplit(r.out, '\n')) {
      if (absl::StartsWith(line, "  ") && absl::StrContains(line, "  " + address + " ")) {
        return std::string(line);
      }
    }
    return std::string();
  }

  // Polls `done` until it holds or kConvergeBound passes; whether it held.
  static bool Eventually(const std::function<bool()>& done) {
    auto deadline = std::chrono::steady_clock::now() + kConvergeBound;
    while (std::chrono::steady_clock::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(milliseconds(100));
    }
    return false;
  }

  // Polls a local get at `node` until it returns `value`.
  void ExpectEventually(const std::string& node, const std::string& key,
                        const std::string& value) {
    auto deadline = std::chrono::steady_clock::now() + kConvergeBound;
    CommandResult r;
    while (std::chrono::steady_clock::now() < deadline) {
      r = Get(node, key);
      if (r.exit_code == 0 && r.out == value) return;
      std::this_thread::sleep_for(milliseconds(50));
    }
    ADD_FAILURE() << "node " << node << " never returned " << key << " = " << value
                  << "; last: exit " << r.exit_code << " out '" << r.out << "' err " << r.err;
  }

  std::vector<std::string> AddressesOf(const std::string& cluster) const {
    std::vector<std::string> out;
    for (const auto& n : deployment_->nodes()) {
      if (n.cluster == cluster) out.push_back(n.address);
    }
    return out;
  }

  std::string root_;
  // Set before StartDeployment for plaintext nodes (--insecure).
  bool insecure_ = false;
  std::unique_ptr<LocalDeployment> deployment_;
};

}  // namespace replicator
