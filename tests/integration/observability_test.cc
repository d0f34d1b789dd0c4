// What an operator scrapes and reads: /metrics (checked by promtool when it
// is installed), /healthz, the log lines, the slow-put log and `status
// --json`, from real replicatord processes on 127.0.0.1.
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/integration/http_client.h"

namespace replicator {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The port in the node's log line "serving /metrics and /healthz on HOST:PORT".
std::optional<int> MetricsPort(const std::string& log) {
  static const std::regex kLine("serving /metrics and /healthz on 127\\.0\\.0\\.1:([0-9]+)");
  std::smatch m;
  if (!std::regex_search(log, m, kLine)) return std::nullopt;
  return std::stoi(m[1]);
}

// Samples of a scrape by their full name with labels, as written
// ("replicator_puts_total{outcome=\"ok\"}").
std::map<std::string, double> Samples(const std::string& scrape) {
  std::map<std::string, double> out;
  for (absl::string_view line : absl::StrSplit(scrape, '\n')) {
    if (line.empty() || line.front() == '#') continue;
    size_t space = line.rfind(' ');
    if (space == absl::string_view::npos) continue;
    double v = 0;
    if (!absl::SimpleAtod(line.substr(space + 1), &v)) continue;
    out[std::string(line.substr(0, space))] = v;
  }
  return out;
}

std::optional<std::string> FindOnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  if (path == nullptr) return std::nullopt;
  for (absl::string_view dir : absl::StrSplit(path, ':', absl::SkipEmpty())) {
    std::string candidate = std::string(dir) + "/" + name;
    if (::access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return std::nullopt;
}

class ObservabilityTest : public DeploymentTest {
 protected:
  // Starts 1 cluster of 3 nodes with metrics on, node 0 logging every put as
  // slow, and finds node 0's metrics port.
  void SetUp() override {
    StartDeployment(1, 3, {"--metrics-listen=127.0.0.1:0"}, "rocksdb",
                    {{0, {"--slow-put-threshold=0s", "--log-level=debug"}}});
    if (HasFatalFailure()) return;
    node_ = deployment_->nodes()[0].address;
    std::optional<int> port;
    ASSERT_TRUE(Eventually([&] {
      port = MetricsPort(ReadAll(deployment_->nodes()[0].log_path));
      return port.has_value();
    })) << ReadAll(deployment_->nodes()[0].log_path);
    port_ = *port;
  }

  std::string node_;
  int port_ = 0;
};

TEST_F(ObservabilityTest, MetricsCountPutsGetsStorageAndPeers) {
  HttpAnswer before = HttpGet(port_, "/metrics");
  ASSERT_EQ(before.status, 200) << before.head;
  EXPECT_TRUE(absl::StrContains(before.head, "Content-Type: text/plain; version=0.0.4"))
      << before.head;
  std::map<std::string, double> b = Samples(before.body);

  for (int i = 0; i < 5; ++i) {
    CommandResult put = Put(node_, "metric-key-" + std::to_string(i), "v");
    ASSERT_EQ(put.exit_code, 0) << put.err;
  }
  EXPECT_EQ(Put(node_, "metric-key-0", "other").exit_code, 2);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(Get(node_, "metric-key-" + std::to_string(i)).exit_code, 0);
  EXPECT_EQ(Get(node_, "no-such-key").exit_code, 4);

  HttpAnswer after = HttpGet(port_, "/metrics");
  ASSERT_EQ(after.status, 200) << after.head;
  std::map<std::string, double> a = Samples(after.body);
  auto moved = [&](const std::string& name) { return a[name] - b[name]; };
  EXPECT_EQ(moved("replicator_puts_total{outcome=\"ok\"}"), 5) << after.body;
  EXPECT_EQ(moved("replicator_puts_total{outcome=\"key_exists\"}"), 1);
  EXPECT_EQ(moved("replicator_gets_total{outcome=\"found\"}"), 3);
  EXPECT_EQ(moved("replicator_gets_total{outcome=\"not_found\"}"), 1);
  EXPECT_EQ(moved("replicator_put_duration_seconds_count"), 6);
  EXPECT_EQ(moved("replicator_get_duration_seconds_count"), 4);
  EXPECT_EQ(moved("replicator_slow_puts_total"), 6);
  EXPECT_EQ(a["replicator_put_duration_seconds_bucket{le=\"+Inf\"}"],
            a["replicator_put_duration_seconds_count"]);
  EXPECT_GE(a["replicator_committed_keys"], 5);
  EXPECT_GT(moved("replicator_storage_writes_total"), 0);
  EXPECT_GT(moved("replicator_storage_group_commits_total"), 0);
  EXPECT_GT(moved("replicator_storage_fsyncs_total"), 0);
  EXPECT_EQ(a["replicator_storage_fsync_duration_seconds_count"],
            a["replicator_storage_fsyncs_total"]);
  EXPECT_GT(moved("replicator_peer_call_batches_total"), 0);
  EXPECT_GT(moved("replicator_peer_call_batch_size_count"), 0);
  EXPECT_EQ(a["replicator_safety_violations_total"], 0);
  EXPECT_GE(a["replicator_config_epoch{cluster=\"c1\"}"], 1);
  EXPECT_EQ(a["replicator_build_info{version=\"" REPLICATOR_VERSION "\"}"], 1) << after.body;
  // Both other nodes answered this node's reserves.
  int reachable = 0;
  for (const auto& [name, value] : a) {
    if (absl::StartsWith(name, "replicator_peer_reachable{") && value == 1) ++reachable;
    if (absl::StartsWith(name, "replicator_peer_rtt_seconds_count{")) {
      EXPECT_GT(value, 0) << name;
    }
  }
  EXPECT_EQ(reachable, 2) << after.body;
}

TEST_F(ObservabilityTest, PromtoolAcceptsTheScrape) {
  // Something in every family, so each is checked with samples.
  ASSERT_EQ(Put(node_, "promtool-key", "v").exit_code, 0);
  ASSERT_EQ(Get(node_, "promtool-key").exit_code, 0);
  HttpAnswer scrape = HttpGet(port_, "/metrics");
  ASSERT_EQ(scrape.status, 200);
  std::optional<std::string> promtool = FindOnPath("promtool");
  if (!promtool) {
    GTEST_SKIP() << "promtool is not installed (Debian package prometheus; tools/install-deps "
                    "installs it): the scrape was not checked by promtool";
  }
  CommandResult check = RunCommand({*promtool, "check", "metrics"}, kCommandTimeout, scrape.body);
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err << "\nscrape:\n" << scrape.body;
}

TEST_F(ObservabilityTest, HealthzIsReadyAndUnknownRequestsAreRefused) {
  // The node is a voter of a founded cluster once the deployment started.
  HttpAnswer health = HttpGet(port_, "/healthz");
  EXPECT_EQ(health.status, 200) << health.head << health.body;
  EXPECT_EQ(health.body, "ok\n");
  EXPECT_EQ(HttpGet(port_, "/metrics?name=x").status, 200);  // the query is ignored
  EXPECT_EQ(HttpGet(port_, "/nope").status, 404);
  HttpAnswer post = HttpExchange(port_, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(post.status, 405);
  EXPECT_TRUE(absl::StrContains(post.head, "Allow: GET, HEAD")) << post.head;
  EXPECT_EQ(HttpExchange(port_, "garbage\r\n\r\n").status, 400);
  EXPECT_EQ(HttpExchange(port_, "GET /metrics HTTP/2.0\r\n\r\n").status, 505);
  HttpAnswer huge =
      HttpExchange(port_, "GET /metrics HTTP/1.1\r\nX: " + std::string(10000, 'a') + "\r\n\r\n");
  EXPECT_EQ(huge.status, 431);
  HttpAnswer head = HttpExchange(port_, "HEAD /healthz HTTP/1.1\r\n\r\n");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "");
  // The node still serves after all of that.
  EXPECT_EQ(HttpGet(port_, "/healthz").status, 200);
}

TEST_F(ObservabilityTest, LogLinesCarryTimeLevelComponentAndPeerAndSlowPutsAreLogged) {
  ASSERT_EQ(Put(node_, "slow-key", "v").exit_code, 0);
  const std::string log_path = deployment_->nodes()[0].log_path;
  ASSERT_TRUE(Eventually([&] { return absl::StrContains(ReadAll(log_path), "slow put:"); }))
      << ReadAll(log_path);
  // 2026-12-02T13:05:01.123Z WARN  put peer=12D3KooW...: slow put: ...
  static const std::regex kLogLine(
      "^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z (DEBUG|INFO |WARN |ERROR) [a-z]+ "
      "peer=(12D3KooW[1-9A-HJ-NP-Za-km-z]+|-): .+$");
  int checked = 0;
  bool slow_put_line = false;
  for (absl::string_view line : absl::StrSplit(ReadAll(log_path), '\n')) {
    // The one stdout line the launcher waits for, before the log.
    if (line.empty() || absl::StartsWith(line, "replicatord: peer ")) continue;
    std::string l(line);
    EXPECT_TRUE(std::regex_match(l, kLogLine)) << l;
    ++checked;
    if (absl::StrContains(l, " WARN  put peer=") && absl::StrContains(l, "slow put: ") &&
        absl::StrContains(l, "outcome ok")) {
      // Where its time went: one round here (a fresh key, one cluster).
      EXPECT_TRUE(std::regex_search(l, std::regex("; 1 attempt; last: reserve \\d+ ms, decide "
                                                  "\\d+ ms; key \\d+ bytes")))
          << l;
      slow_put_line = true;
    }
  }
  EXPECT_GT(checked, 1);
  EXPECT_TRUE(slow_put_line) << ReadAll(log_path);
}

TEST_F(ObservabilityTest, StatusJsonHasTheFieldsOfTheTextForm) {
  ASSERT_EQ(Put(node_, "json-key", "v").exit_code, 0);
  CommandResult r = Cli({"--node=" + node_, "status", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(j.is_discarded()) << r.out;
  EXPECT_EQ(j["self"]["cluster"], "c1");
  EXPECT_EQ(j["self"]["address"], node_);
  EXPECT_EQ(j["self"]["state"], "voter");
  EXPECT_TRUE(absl::StartsWith(j["self"]["id"].get<std::string>(), "12D3KooW"));
  EXPECT_GE(j["committed_keys"].get<uint64_t>(), 1u);
  EXPECT_GE(j["puts"]["ok"].get<uint64_t>(), 1u);
  for (const char* f : {"key_exists", "conflict", "unavailable", "invalid", "outcome_unknown",
                        "retries", "joined"}) {
    EXPECT_TRUE(j["puts"].contains(f)) << f;
  }
  EXPECT_TRUE(j["gets"].is_number());
  EXPECT_GT(j["storage"]["fsyncs"].get<uint64_t>(), 0u);
  EXPECT_TRUE(j["config"]["founded"].get<bool>());
  EXPECT_EQ(j["config"]["voters"], 3);
  EXPECT_GE(j["config"]["epoch"].get<uint64_t>(), 1u);
  EXPECT_TRUE(j["federation"]["settled"].get<bool>());
  EXPECT_EQ(j["safety_violations"], 0);
  ASSERT_EQ(j["members"].size(), 3u);
  int self = 0;
  for (const auto& m : j["members"]) self += m["this_node"].get<bool>() ? 1 : 0;
  EXPECT_EQ(self, 1);
  ASSERT_GE(j["configurations"].size(), 1u);
  EXPECT_EQ(j["configurations"][0]["voters"].size(), 3u);
  // --json belongs to status alone.
  CommandResult bad = Cli({"--node=" + node_, "get", "json-key", "--json"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(bad.err, "--json applies to status only")) << bad.err;
}

using UnfoundedObservabilityTest = DeploymentTest;

TEST_F(UnfoundedObservabilityTest, HealthzSaysWhyANodeOfAnUnfoundedClusterIsNotReady) {
  // A cluster is founded by its third node: one node alone never is.
  StartDeployment(1, 1, {"--metrics-listen=127.0.0.1:0"});
  ASSERT_FALSE(HasFatalFailure());
  std::optional<int> port;
  ASSERT_TRUE(Eventually([&] {
    port = MetricsPort(ReadAll(deployment_->nodes()[0].log_path));
    return port.has_value();
  }));
  HttpAnswer health = HttpGet(*port, "/healthz");
  EXPECT_EQ(health.status, 503) << health.head;
  EXPECT_EQ(health.body, "cluster c1 is not founded yet\n");
  // /metrics still answers, and shows no configuration of c1.
  HttpAnswer scrape = HttpGet(*port, "/metrics");
  EXPECT_EQ(scrape.status, 200);
  EXPECT_FALSE(absl::StrContains(scrape.body, "replicator_config_epoch{cluster=\"c1\"}"));
}

}  // namespace
}  // namespace replicator
