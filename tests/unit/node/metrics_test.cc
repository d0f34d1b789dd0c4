// The node's /metrics text and /healthz readiness, from a status report.
#include "node/metrics.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/strings/match.h"

namespace replicator::node {
namespace {

StatusReport Voter() {
  StatusReport s;
  s.self = core::Member{"12D3KooWself", "c1", "127.0.0.1:7001", core::PeerState::kVoter};
  s.members = {s.self,
               core::Member{"12D3KooWpeer", "c2", "127.0.0.1:7002", core::PeerState::kVoter}};
  s.engine.config_epoch = 2;
  s.engine.puts_ok = 7;
  s.engine.puts_key_exists = 1;
  s.engine.federation_settled = true;
  s.configurations = {core::Configuration{"c1", 2, {"12D3KooWself"}, 1},
                      core::Configuration{"c2", 1, {"12D3KooWpeer"}, 2}};
  s.committed_keys = 7;
  s.storage.syncs = 4;
  s.uptime_ms = 1500;
  return s;
}

TEST(RenderMetrics, CountersCarryOutcomeClusterAndPeerLabels) {
  NodeMetrics m;
  m.gets_found = 3;
  m.put_duration.Observe(0.002);
  m.peers["12D3KooWpeer"].reachable = true;
  m.peers["12D3KooWpeer"].rtt.Observe(0.0004);
  util::Histogram fsync(util::kLatencyBuckets);
  fsync.Observe(0.001);
  util::HistogramSnapshot fsync_snapshot = fsync.Snapshot();
  std::string text = RenderMetrics(Voter(), m, &fsync_snapshot);
  for (const char* line : {
           "# TYPE replicator_puts_total counter\n",
           "replicator_puts_total{outcome=\"ok\"} 7\n",
           "replicator_puts_total{outcome=\"key_exists\"} 1\n",
           "replicator_gets_total{outcome=\"found\"} 3\n",
           "# TYPE replicator_put_duration_seconds histogram\n",
           "replicator_put_duration_seconds_bucket{le=\"0.0025\"} 1\n",
           "replicator_put_duration_seconds_count 1\n",
           "replicator_committed_keys 7\n",
           "replicator_storage_fsyncs_total 4\n",
           "replicator_storage_fsync_duration_seconds_count 1\n",
           "replicator_config_epoch{cluster=\"c1\"} 2\n",
           "replicator_config_epoch{cluster=\"c2\"} 1\n",
           "replicator_peer_reachable{peer=\"12D3KooWpeer\",cluster=\"c2\"} 1\n",
           "replicator_peer_rtt_seconds_bucket{peer=\"12D3KooWpeer\",cluster=\"c2\",le=\"0.0005\"} "
           "1\n",
           "replicator_uptime_seconds 1.5\n",
           "replicator_node_info{peer=\"12D3KooWself\",cluster=\"c1\",state=\"voter\"} 1\n",
       }) {
    EXPECT_TRUE(absl::StrContains(text, line)) << line << "\nin:\n" << text;
  }
  EXPECT_TRUE(absl::StrContains(text, "replicator_build_info{version=\"")) << text;
  // Every family is announced exactly once.
  EXPECT_EQ(text.find("# TYPE replicator_puts_total"), text.rfind("# TYPE replicator_puts_total"));
}

TEST(RenderMetrics, MemoryStorageStillHasAnEmptyFsyncHistogram) {
  std::string text = RenderMetrics(Voter(), NodeMetrics{}, nullptr);
  EXPECT_TRUE(absl::StrContains(text, "replicator_storage_fsync_duration_seconds_count 0\n"));
  EXPECT_TRUE(
      absl::StrContains(text, "replicator_storage_fsync_duration_seconds_bucket{le=\"+Inf\"} 0\n"));
}

TEST(NotReady, VoterOfAFoundedClusterIsReady) { EXPECT_EQ(NotReady(Voter()), std::nullopt); }

TEST(NotReady, UnfoundedClusterIsNotReady) {
  StatusReport s = Voter();
  s.engine.config_epoch = 0;
  EXPECT_EQ(NotReady(s), "cluster c1 is not founded yet");
}

TEST(NotReady, LearnerIsReadyOnceCaughtUp) {
  StatusReport s = Voter();
  s.self.state = core::PeerState::kCatchingUp;
  ASSERT_TRUE(NotReady(s).has_value());
  EXPECT_TRUE(absl::StrContains(*NotReady(s), "catching up"));
  s.engine.catchup_rounds = 1;
  EXPECT_EQ(NotReady(s), std::nullopt);
  s.engine.federation_settled = false;
  EXPECT_TRUE(NotReady(s).has_value());
}

}  // namespace
}  // namespace replicator::node
