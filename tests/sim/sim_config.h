// SimConfig: everything one simulation run is a function of (seed, shape,
// fault profile, workload, engine timing, checks), the fault parameters of
// each profile and the command line that replays a run; SimStats: what a
// run counts. Plain values, copied into each part of a run; single-threaded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

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
};

struct SimConfig {
  uint64_t seed = 1;
  int clusters = 2;
  int nodes_per_cluster = 3;
  // Fault profile: none, net (delay spread, drop, duplicate), partition,
  // crash (crash/restart, slow disk), all.
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
  // "" (safe) or "no-sync-before-vote": a disk acknowledges a write (so the
  // engine votes, accepts, answers) before syncing it; the sync follows up
  // to unsafe_sync_lag_ms later, and a crash loses what was not yet synced.
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
  uint64_t puts_joined = 0, catchup_rounds = 0, catchup_keys_pulled = 0;  // engines' sums
  int messages = 0, dropped = 0, duplicated = 0, crashes = 0, partitions = 0;
  int partitions_node = 0, partitions_cluster = 0;  // of partitions: shapes
  int unsynced_lost = 0;           // unsafe mode: acknowledged writes lost in crashes
  int prepares = 0, resolves = 0;  // recovery traffic
  int probe_race_conflicts = 0;
  int probe_race_winners = -1;  // oks in the probe's race; -1: no probe
};

}  // namespace replicator::sim
