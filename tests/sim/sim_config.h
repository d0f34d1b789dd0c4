// SimConfig: everything one simulation run is a function of (seed, shape,
// fault profile, workload, engine timing, checks), the fault parameters of
// each profile and the command line that replays a run; SimStats: what a
// run counts. Plain values, copied into each part of a run; single-threaded.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/engine.h"
#include "core/types.h"

namespace replicator::sim {

// Seeded fault probabilities and ranges. All times are virtual ms.
struct FaultParams {
  core::TimeMs net_min_ms = 1;  // one-way delay, uniform in [min, max]
  core::TimeMs net_max_ms = 5;
  // Every message gets its own delay, so messages overtake each other even
  // between one pair of nodes (reordering). A slow message is later still.
  double slow_message = 0;  // extra delay up to slow_message_max_ms
  core::TimeMs slow_message_max_ms = 0;
  double drop = 0;       // per request and per response
  double duplicate = 0;  // a request is delivered twice
  // A partition cuts one node off, one whole cluster off (with 2+ clusters)
  // or splits the nodes in two random sides, a third of the time each.
  core::TimeMs partition_every_ms = 0;  // mean gap between partitions; 0: none
  core::TimeMs partition_min_ms = 0;
  core::TimeMs partition_max_ms = 0;
  core::TimeMs crash_every_ms = 0;  // mean gap between crashes; 0: none
  core::TimeMs down_min_ms = 0;
  core::TimeMs down_max_ms = 0;
  int max_down = 1;  // nodes down at once
  core::TimeMs disk_min_ms = 0;  // write latency, uniform in [min, max]
  core::TimeMs disk_max_ms = 2;
  double slow_disk = 0;  // a write takes up to slow_disk_max_ms more
  core::TimeMs slow_disk_max_ms = 0;
  // Membership. Spares: nodes of each cluster beyond the founders, not in
  // the topology at first; each joins (as a learner, catching up, then
  // promoting itself by consensus) at a random time in the first three
  // quarters of the window. An operator removes a random voter of a random
  // cluster about every change_every_ms while faults are on, when its newest
  // configuration has more than 3 voters (and, 1 time in 10, when it has
  // 3: a change the engine must refuse); a spare's join is followed within
  // 3 s, while it catches up and promotes itself, by such a removal with
  // probability `replace` (a replacement). The workload phase lasts at
  // least window_ms.
  int spares = 0;
  core::TimeMs change_every_ms = 0;  // 0: no operator changes
  core::TimeMs window_ms = 0;
  double replace = 0;
  // Long pauses: a node cut off from every other (a one-node partition,
  // which may overlap the partition fault) for pause_min..max_ms, shown down
  // by the liveness hints 1-3 s in; long enough to miss several changes.
  // One node of a cluster at a time; half the joins also pause a node of
  // the joiner's cluster until the cluster gained two epochs (within 3
  // pause_max_ms): through the changes the join sets off.
  core::TimeMs pause_every_ms = 0;  // mean gap between pauses; 0: none
  core::TimeMs pause_min_ms = 0;
  core::TimeMs pause_max_ms = 0;
  // Clusters founded mid-run: each of `new_clusters` fresh clusters (its
  // nodes_per_cluster founders, and the mix's spares, which join it later)
  // is founded at a random time in the second quarter of the window, after
  // keys exist, at the next generation. The nodes already running learn of
  // it through their topology at staggered times, as the directory's
  // notifications reach them: within found_lag_ms, a third of them up to 4
  // found_lag_ms later (gossip lag); a node that starts or joins later is
  // told at once, as the directory's join reply does.
  int new_clusters = 0;
  core::TimeMs found_lag_ms = 0;
  // Retiring a cluster: with this probability a run picks a founded cluster
  // other than the first, at a random time in the third quarter of the
  // window, and decommissions it as an operator would: drains it (clients
  // send its nodes nothing; it is drained once no operation is pending
  // there and no node holds a reservation of a put its nodes coordinated;
  // abandoned if that takes over 10 s), stops every node of it for good,
  // then asks a node of the first cluster to remove it from the federation,
  // again until it is removed. Puts must commit again without it; nothing
  // acknowledged may be lost.
  double retire = 0;
  // Clients' pause between operations, overriding SimConfig::think_max_ms
  // (0: keep it): a mix whose faults need time spreads the operations over
  // its window, so puts and gets interleave with the membership changes.
  core::TimeMs think_max_ms = 0;
};

struct SimConfig {
  uint64_t seed = 1;
  // Clusters at the start (the profile's FaultParams::new_clusters are
  // founded later; total_clusters() counts both).
  int clusters = 2;
  int nodes_per_cluster = 3;
  // Fault profile: none, net (delay spread, drop, duplicate), partition,
  // crash (crash/restart, slow disk), membership (joins, promotions,
  // removals, long pauses), all.
  std::string faults = "none";
  FaultParams fault;
  int clients = 4;
  int keys = 3;  // window of live keys, small so puts race on one key
  int ops = 40;  // client operations per run
  double put_share = 0.6;
  double linearizable_share = 0.5;  // of gets
  double invalid_share = 0.02;      // puts with an empty key
  core::TimeMs think_max_ms = 30;   // client pause between operations
  // A client whose put timed out (no answer within client_timeout_ms; 0:
  // twice the call deadline), answered unavailable, or was lost with its
  // node retries it with the same request id, at a random node, with this
  // probability, at most client_max_retries times.
  double client_retry = 0.7;
  int client_max_retries = 2;
  core::TimeMs client_timeout_ms = 0;
  core::TimeMs workload_max_ms = 60'000;
  // Engine timing.
  core::TimeMs call_deadline_ms = 1000;
  core::TimeMs lease_ms = 2000;
  core::TimeMs catchup_interval_ms = 2000;  // every engine also catches up at its start
  // Bytes of keys and values per catch-up page; 0: the engine's default.
  // Small pages end inside a range of buckets and resume after their last
  // entry, which the default (a MiB) never does with the few keys of a run.
  uint32_t catchup_page_bytes = 0;
  // Every engine is shard `shard` of `shards` (core/shard.h), as every node
  // of a sharded federation runs one per shard: it owns that shard's keys
  // (and every system key), and the clients put and get only those.
  uint32_t shards = 1;
  uint32_t shard = 0;
  // Quiet phase: faults healed, every node up; long enough for lease
  // recovery to settle. 0: derived from lease_ms and call_deadline_ms.
  core::TimeMs quiet_ms = 0;
  // With crashes in the profile, the quiet phase starts with one node of
  // every cluster still down (a minority) for this long, after which no up
  // node may hold a reservation (invariant K). 0: 2 leases + 12 call
  // deadlines; -1: skip this part.
  core::TimeMs quiet_minority_down_ms = 0;
  // Invariant 5 in full: after the quiet phase every node holds every
  // committed key and has completed a catch-up round.
  bool check_convergence = true;
  bool probe = true;               // RunProbe after the quiet phase
  // RunProbe also requires its race of every node on one fresh key to end
  // with exactly one ok (DESIGN.md "Contention").
  bool check_race = true;
  // A deliberately broken configuration, to prove that the checker bites.
  // "" (safe); "no-sync-before-vote": a disk acknowledges a write (so the
  // engine votes, accepts, answers) before syncing it; the sync follows up
  // to unsafe_sync_lag_ms later, and a crash loses what was not yet synced;
  // "skip-settle", "ignore-epoch", "skip-federation-settle": every engine
  // runs with that EngineConfig::unsafe_membership rule; "forget-decided":
  // with EngineConfig::unsafe_forget_decided.
  std::string unsafe;
  core::TimeMs unsafe_sync_lag_ms = 3000;
  // Invariant 4 at every ok (see CheckerOptions::check_durable_at_ok).
  bool check_durable_at_ok = true;
  bool trace = false;              // print every event as it happens
  size_t trace_tail = 50;          // events in a report when nothing narrower fits
  uint64_t max_events = 3'000'000;  // a run beyond this is a livelock

  // `profile` must be one of the names above; false otherwise.
  bool SetProfile(const std::string& profile);
  // `mode` must be "" or one of the unsafe modes above; false otherwise.
  static bool ValidUnsafe(const std::string& mode);
  bool unsafe_disk() const { return unsafe == "no-sync-before-vote"; }
  int total_clusters() const { return clusters + std::max(0, fault.new_clusters); }
  core::EngineConfig::UnsafeMembership unsafe_membership() const;
  static SimConfig ForProfile(const std::string& profile);
  // The command line that replays this run.
  std::string Reproducer() const;
};

struct SimStats {
  uint64_t events = 0;
  core::TimeMs end_ms = 0;
  int puts = 0, puts_ok = 0, puts_exists = 0, puts_conflict = 0, puts_unavailable = 0,
      puts_invalid = 0, puts_abandoned = 0;
  int gets = 0, gets_found = 0, gets_not_found = 0, gets_unavailable = 0;
  int puts_outcome_unknown = 0;  // outcomeUnknown (counted in puts_unavailable too): may yet commit
  int client_timeouts = 0, client_retries = 0;
  int puts_retry_ok = 0;  // ok answers to retries
  // Engines' sums.
  uint64_t puts_joined = 0, catchup_rounds = 0, catchup_keys_pulled = 0, catchup_pulls = 0;
  int messages = 0, dropped = 0, duplicated = 0, crashes = 0, partitions = 0;
  int partitions_node = 0, partitions_cluster = 0;  // of partitions: shapes
  int unsynced_lost = 0;           // unsafe mode: acknowledged writes lost in crashes
  int prepares = 0, resolves = 0;  // recovery traffic
  int pulls_resumed = 0;           // catch-up pulls resuming a range after a page's last entry
  int probe_race_conflicts = 0;
  int probe_race_winners = -1;  // oks in the probe's race; -1: no probe
  // Membership. Epochs gained: configurations chosen beyond the founding
  // ones, each a promotion (a voter added) or a removal.
  int joins = 0, epochs_gained = 0, promotions = 0, removals = 0;
  // Spares that joined a cluster founded mid-run before it was founded:
  // the founding took them as founding voters, so they need no promotion.
  int spare_founders = 0;
  // Operator changes: asked, and how they ended (lost: their node crashed
  // first). Replacements: removals asked while a spare of the cluster was
  // joining (in the topology, not yet a voter).
  int changes = 0, changes_ok = 0, changes_refused = 0, changes_busy = 0, changes_unavailable = 0,
      changes_lost = 0, replacements = 0;
  // Long pauses, and those during which the paused node's cluster moved on
  // by two epochs or more.
  int pauses = 0, pauses_across_changes = 0;
  // Clusters founded mid-run, and the nodes told of one late (over
  // found_lag_ms after it was founded).
  int foundings = 0, late_learners = 0;
  // Clusters retired (stopped and removed), and the removals asked for them.
  int retirements = 0, cluster_removals_asked = 0;
};

}  // namespace replicator::sim
