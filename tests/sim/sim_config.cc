#include "sim/sim_config.h"

#include "absl/strings/str_cat.h"

namespace replicator::sim {

bool SimConfig::SetProfile(const std::string& profile) {
  FaultParams f;  // "none": short, fixed-order-free delays, no faults
  if (profile == "none") {
  } else if (profile == "net") {
    f.net_min_ms = 1;
    f.net_max_ms = 20;
    f.slow_message = 0.1;
    f.slow_message_max_ms = 1500;  // sometimes beyond the call deadline
    f.drop = 0.05;
    f.duplicate = 0.05;
  } else if (profile == "partition") {
    f.net_min_ms = 1;
    f.net_max_ms = 10;
    f.slow_message = 0.05;
    f.slow_message_max_ms = 200;
    f.drop = 0.01;
    f.partition_every_ms = 1000;
    f.partition_min_ms = 200;
    f.partition_max_ms = 4000;
  } else if (profile == "crash") {
    f.net_min_ms = 1;
    f.net_max_ms = 10;
    f.crash_every_ms = 800;
    f.down_min_ms = 50;
    f.down_max_ms = 4000;
    f.max_down = 2;
    f.disk_min_ms = 0;
    f.disk_max_ms = 5;
    f.slow_disk = 0.1;
    f.slow_disk_max_ms = 300;
  } else if (profile == "membership") {
    // Membership is the main fault: every spare joins and promotes itself,
    // voters are removed, nodes pause across changes; around it a mild
    // network, a rare crash and a slow disk now and then.
    f.net_min_ms = 1;
    f.net_max_ms = 20;
    f.slow_message = 0.05;
    f.slow_message_max_ms = 1500;
    f.drop = 0.01;
    f.duplicate = 0.01;
    f.crash_every_ms = 4000;
    f.down_min_ms = 50;
    f.down_max_ms = 3000;
    f.max_down = 1;
    f.disk_max_ms = 5;
    f.slow_disk = 0.05;
    f.slow_disk_max_ms = 300;
    f.spares = 2;
    f.change_every_ms = 1000;
    f.window_ms = 8000;
    f.replace = 0.5;
    f.pause_every_ms = 2500;
    f.pause_min_ms = 2000;
    f.pause_max_ms = 8000;
    f.think_max_ms = 1500;
    f.new_clusters = 1;
    f.found_lag_ms = 1500;
    f.retire = 0.5;
  } else if (profile == "all") {
    f.net_min_ms = 1;
    f.net_max_ms = 20;
    f.slow_message = 0.1;
    f.slow_message_max_ms = 1500;
    f.drop = 0.03;
    f.duplicate = 0.03;
    f.partition_every_ms = 1500;
    f.partition_min_ms = 200;
    f.partition_max_ms = 3000;
    f.crash_every_ms = 1200;
    f.down_min_ms = 50;
    f.down_max_ms = 3000;
    f.max_down = 2;
    f.disk_max_ms = 5;
    f.slow_disk = 0.1;
    f.slow_disk_max_ms = 300;
    f.spares = 1;
    f.change_every_ms = 1500;
    f.window_ms = 6000;
    f.replace = 0.5;
    f.pause_every_ms = 5000;
    f.pause_min_ms = 1000;
    f.pause_max_ms = 5000;
    f.new_clusters = 1;
    f.found_lag_ms = 1000;
    f.retire = 0.25;
  } else {
    return false;
  }
  faults = profile;
  fault = f;
  return true;
}

bool SimConfig::ValidUnsafe(const std::string& mode) {
  return mode.empty() || mode == "no-sync-before-vote" || mode == "skip-settle" ||
         mode == "ignore-epoch" || mode == "skip-federation-settle" || mode == "forget-decided";
}

core::EngineConfig::UnsafeMembership SimConfig::unsafe_membership() const {
  using U = core::EngineConfig::UnsafeMembership;
  if (unsafe == "skip-settle") return U::kSkipSettle;
  if (unsafe == "ignore-epoch") return U::kIgnoreEpoch;
  if (unsafe == "skip-federation-settle") return U::kSkipFederationSettle;
  return U::kNone;
}

SimConfig SimConfig::ForProfile(const std::string& profile) {
  SimConfig config;
  config.SetProfile(profile);
  return config;
}

std::string SimConfig::Reproducer() const {
  SimConfig d;
  std::string out = absl::StrCat("replicator-sim --seed=", seed, " --clusters=", clusters,
                                 " --nodes=", nodes_per_cluster, " --faults=", faults);
  if (clients != d.clients) absl::StrAppend(&out, " --clients=", clients);
  if (keys != d.keys) absl::StrAppend(&out, " --keys=", keys);
  if (ops != d.ops) absl::StrAppend(&out, " --ops=", ops);
  if (lease_ms != d.lease_ms) absl::StrAppend(&out, " --lease-ms=", lease_ms);
  SimConfig p = ForProfile(faults);
  if (fault.net_min_ms != p.fault.net_min_ms || fault.net_max_ms != p.fault.net_max_ms) {
    absl::StrAppend(&out, " --net-ms=", fault.net_min_ms, "..", fault.net_max_ms);
  }
  if (!check_convergence) absl::StrAppend(&out, " --no-converge");
  if (catchup_interval_ms != d.catchup_interval_ms) {
    absl::StrAppend(&out, " --catchup-ms=", catchup_interval_ms);
  }
  if (catchup_page_bytes != d.catchup_page_bytes) {
    absl::StrAppend(&out, " --catchup-page-bytes=", catchup_page_bytes);
  }
  if (shards != d.shards || shard != d.shard) {
    absl::StrAppend(&out, " --shards=", shards, " --shard=", shard);
  }
  if (!check_race) absl::StrAppend(&out, " --no-race-check");
  if (fault.down_max_ms != p.fault.down_max_ms) {
    absl::StrAppend(&out, " --down-max-ms=", fault.down_max_ms);
  }
  if (fault.spares != p.fault.spares) absl::StrAppend(&out, " --spares=", fault.spares);
  if (fault.new_clusters != p.fault.new_clusters) {
    absl::StrAppend(&out, " --new-clusters=", fault.new_clusters);
  }
  if (!unsafe.empty()) absl::StrAppend(&out, " --unsafe=", unsafe);
  if (unsafe_sync_lag_ms != d.unsafe_sync_lag_ms) {
    absl::StrAppend(&out, " --unsafe-sync-lag-ms=", unsafe_sync_lag_ms);
  }
  if (!check_durable_at_ok) absl::StrAppend(&out, " --no-ok-durability-check");
  return out;
}

}  // namespace replicator::sim
