// Convergence and safe retries with real processes and RocksDB: a node that
// was down catches up, a new node joins a running cluster, and a put retried
// after the client timed out learns it was applied.
#include <regex>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "net/reactor.h"
#include "replicator/client.h"
#include "tests/integration/harness.h"

namespace replicator {
namespace {

std::vector<std::string> Keys(const std::string& prefix, int count) {
  std::vector<std::string> keys;
  for (int i = 0; i < count; ++i) keys.push_back(absl::StrCat(prefix, i));
  return keys;
}

// Puts every key (value "v-" + key) through `addresses`, 16 at a time, with
// the C++ client. Returns the keys that did not answer ok.
std::vector<std::string> PutAll(const std::vector<std::string>& addresses,
                                const std::vector<std::string>& keys) {
  net::Reactor reactor;
  struct Run {
    net::Reactor& reactor;
    const std::vector<std::string>& addresses;
    const std::vector<std::string>& keys;
    std::vector<std::unique_ptr<Client>> clients;
    std::vector<std::string> failed;
    size_t next = 0;
    int workers = 16;

    asio::awaitable<void> Go() {
      for (const std::string& a : addresses) {
        auto c = co_await Client::Connect(reactor, a, TestClientOptions());
        if (!c.ok()) {
          failed = keys;
          reactor.Stop();
          co_return;
        }
        clients.push_back(std::move(*c));
      }
      for (int w = 0; w < 16; ++w) asio::co_spawn(reactor.io(), Worker(), asio::detached);
    }
    asio::awaitable<void> Worker() {
      while (next < keys.size()) {
        size_t i = next++;
        auto r = co_await clients[i % clients.size()]->Put(keys[i], "v-" + keys[i]);
        if (!r.ok() || r->kind != PutResult::Kind::kOk) failed.push_back(keys[i]);
      }
      if (--workers == 0) reactor.Stop();
    }
  } run{reactor, addresses, keys, {}, {}, 0, 16};
  asio::co_spawn(reactor.io(), run.Go(), asio::detached);
  reactor.Run();
  return run.failed;
}

// Keys whose local get at `address` does not return their value.
std::vector<std::string> MissingLocally(const std::string& address,
                                        const std::vector<std::string>& keys) {
  net::Reactor reactor;
  struct Run {
    net::Reactor& reactor;
    std::string address;
    const std::vector<std::string>& keys;
    std::vector<std::string> missing;
    asio::awaitable<void> Go() {
      auto c = co_await Client::Connect(reactor, address, TestClientOptions());
      if (!c.ok()) {
        missing = keys;
      } else {
        for (const std::string& k : keys) {
          auto r = co_await (*c)->Get(k);
          if (!r.ok() || r->kind != GetResult::Kind::kFound || r->value != "v-" + k) {
            missing.push_back(k);
          }
        }
      }
      reactor.Stop();
    }
  } run{reactor, address, keys, {}};
  asio::co_spawn(reactor.io(), run.Go(), asio::detached);
  reactor.Run();
  return run.missing;
}

class CatchUpTest : public DeploymentTest {
 protected:
  std::vector<std::string> RunningAddresses() const {
    std::vector<std::string> out;
    for (const auto& n : deployment_->nodes()) {
      if (n.pid > 0) out.push_back(n.address);
    }
    return out;
  }
  // Polls until `address` serves every key locally, at most `bound`.
  std::vector<std::string> WaitServedLocally(const std::string& address,
                                             const std::vector<std::string>& keys,
                                             milliseconds bound) {
    auto deadline = std::chrono::steady_clock::now() + bound;
    std::vector<std::string> missing = MissingLocally(address, keys);
    while (!missing.empty() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(100));
      missing = MissingLocally(address, keys);
    }
    return missing;
  }
};

TEST_F(CatchUpTest, NodeStoppedDuring200PutsServesThemAllAfterRestart) {
  StartDeployment(2, 3, {}, "rocksdb");
  deployment_->Kill(4);
  std::vector<std::string> keys = Keys("missed-", 200);
  ASSERT_EQ(PutAll(RunningAddresses(), keys), std::vector<std::string>{});
  ASSERT_TRUE(deployment_->Restart(4).ok());
  // The promise: every key served locally within 10 s of restart.
  std::vector<std::string> missing =
      WaitServedLocally(deployment_->nodes()[4].address, keys, milliseconds(10000));
  EXPECT_TRUE(missing.empty()) << missing.size() << " of 200 keys missing, e.g. "
                               << (missing.empty() ? "" : missing[0]);
}

TEST_F(CatchUpTest, FourthNodeJoinsARunningClusterCatchesUpAndVotes) {
  StartDeployment(2, 3, {}, "rocksdb");
  std::vector<std::string> keys = Keys("earlier-", 60);
  ASSERT_EQ(PutAll(RunningAddresses(), keys), std::vector<std::string>{});
  auto added = deployment_->AddNode("c1");
  ASSERT_TRUE(added.ok()) << added.status();
  const std::string address = deployment_->nodes()[*added].address;
  std::vector<std::string> missing = WaitServedLocally(address, keys, kConvergeBound);
  EXPECT_TRUE(missing.empty()) << missing.size() << " earlier keys missing at the new node";
  // Once caught up it is promoted: every node lists 7 voters.
  WaitForMembership(7);
  CommandResult status = Cli({"--node=" + address, "status"});
  size_t line = status.out.find("(this node)");
  ASSERT_NE(line, std::string::npos) << status.out;
  std::string self_line = status.out.substr(status.out.rfind('\n', line) + 1,
                                            line - status.out.rfind('\n', line));
  EXPECT_NE(self_line.find(address), std::string::npos) << status.out;
  EXPECT_NE(self_line.find("voter"), std::string::npos) << status.out;
  // What it learned came through catch-up, and status says so.
  std::smatch counts;
  ASSERT_TRUE(std::regex_search(status.out, counts,
                                std::regex("catch-up  ([0-9]+) rounds, ([0-9]+) keys pulled")))
      << status.out;
  EXPECT_GE(std::stoull(counts[1].str()), 1u) << status.out;
  EXPECT_GE(std::stoull(counts[2].str()), 1u) << status.out;
  // Puts keep working with four voters in c1, through the new node too.
  std::vector<std::string> later = Keys("later-", 10);
  EXPECT_EQ(PutAll({address, deployment_->nodes()[3].address}, later),
            std::vector<std::string>{});
  EXPECT_TRUE(WaitServedLocally(address, later, kConvergeBound).empty());
}

TEST_F(CatchUpTest, PutRetriedAfterClientTimeoutAnswersOk) {
  StartDeployment(2, 3, {}, "rocksdb", {{1, {"--failpoint=slow-first-put-reply"}}});
  const std::string slow = deployment_->nodes()[1].address;
  // The node applies the put but holds its answer past the client's 1 s
  // timeout; the CLI retries with the same request id and learns it was
  // applied.
  CommandResult r = Cli({"--node=" + slow, "--timeout-ms=1000", "put", "retried", "v1"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "ok\n");
  EXPECT_NE(r.err.find("retrying with the same request id"), std::string::npos) << r.err;
  // Anyone else is still refused.
  CommandResult other = Put(deployment_->nodes()[4].address, "retried", "v2");
  EXPECT_EQ(other.exit_code, 2) << other.err;
  EXPECT_EQ(Get(deployment_->nodes()[5].address, "retried", "linearizable").out, "v1");
}

}  // namespace
}  // namespace replicator
