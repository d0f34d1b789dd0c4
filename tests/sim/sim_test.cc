// Seed sweeps of the deterministic simulation across cluster shapes and fault
// profiles, plus tests that the checker itself fails when it should. A
// failing seed prints a reproducer: replicator-sim --seed=N ... --trace
#include <algorithm>
#include <cstdio>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "sim/checker.h"
#include "sim/describe.h"
#include "sim/simulator.h"

namespace replicator::sim {
namespace {

struct Sweep {
  const char* name;
  int clusters;
  int nodes;
  const char* faults;
  uint64_t first_seed;
  int seeds;
  int keys = 3;
  int clients = 4;
  core::TimeMs lease_ms = 2000;
};

void PrintTo(const Sweep& s, std::ostream* os) { *os << s.name; }

class SimSweep : public testing::TestWithParam<Sweep> {};

bool HasInvariant(const std::vector<Violation>& violations, const std::string& id) {
  return std::any_of(violations.begin(), violations.end(),
                     [&](const Violation& v) { return v.invariant == id; });
}

std::string Listing(const std::vector<Violation>& violations) {
  std::string out;
  for (const Violation& v : violations) absl::StrAppend(&out, "  ", v.ToString(), "\n");
  return out;
}

TEST_P(SimSweep, EverySeedKeepsTheInvariants) {
  const Sweep& sweep = GetParam();
  SimConfig config = SimConfig::ForProfile(sweep.faults);
  config.clusters = sweep.clusters;
  config.nodes_per_cluster = sweep.nodes;
  config.keys = sweep.keys;
  config.clients = sweep.clients;
  config.lease_ms = sweep.lease_ms;
  // The probe's 9-way race on a fresh key is a liveness property checked on
  // its own below (SimLiveness); the fault sweeps check safety.
  config.check_race = std::string(sweep.faults) == "none";
  std::vector<std::string> failures;
  std::string reports;
  int puts = 0, conflicts = 0, ok = 0, retries = 0;
  int partitions_node = 0, partitions_cluster = 0, partitions = 0;
  Liveness liveness;
  for (uint64_t seed = sweep.first_seed; seed < sweep.first_seed + sweep.seeds; ++seed) {
    config.seed = seed;
    SimResult result = RunSimulation(config);
    puts += result.stats.puts - result.stats.puts_invalid;
    conflicts += result.stats.puts_conflict;
    ok += result.stats.puts_ok;
    retries += result.stats.client_retries;
    partitions += result.stats.partitions;
    partitions_node += result.stats.partitions_node;
    partitions_cluster += result.stats.partitions_cluster;
    liveness.Add(result.liveness);
    if (!result.ok()) {
      failures.push_back(config.Reproducer());
      // The first few failures in full; the rest as reproducer lines.
      if (failures.size() <= 3) reports += result.Report();
    }
  }
  std::string all;
  for (const std::string& f : failures) absl::StrAppend(&all, "  ", f, " --trace\n");
  EXPECT_TRUE(failures.empty()) << failures.size() << " of " << sweep.seeds
                                << " seeds failed:\n"
                                << all << reports;
  std::printf("liveness %s (%d seeds): %s\n", sweep.name, sweep.seeds, liveness.ToString().c_str());
  EXPECT_GT(ok, 0) << "no put ever succeeded: the sweep exercises nothing";
  if (config.fault.partition_every_ms > 0) {
    // Every partition shape happens: one node cut off, one whole cluster cut
    // off, a random split.
    EXPECT_GT(partitions_node, 0);
    EXPECT_GT(partitions_cluster, 0);
    EXPECT_GT(partitions - partitions_node - partitions_cluster, 0);
  }
  if (std::string(sweep.faults) != "none") {
    EXPECT_GT(retries, 0) << "no client ever retried a put: request ids go unexercised";
  }
  if (std::string(sweep.faults) == "none") {
    // Contention beyond the retry bound is the only excuse for conflict.
    EXPECT_LE(conflicts * 10, puts) << conflicts << " of " << puts
                                    << " puts answered conflict without faults";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Seeds, SimSweep,
    testing::Values(
        Sweep{"NoFaults_1x3", 1, 3, "none", 1, 50}, Sweep{"NoFaults_2x3", 2, 3, "none", 1, 150},
        Sweep{"NoFaults_3x3", 3, 3, "none", 1, 150},
        Sweep{"NoFaults_3x3_HotKey", 3, 3, "none", 1, 100, /*keys=*/1, /*clients=*/8},
        Sweep{"Net_2x3", 2, 3, "net", 1, 150}, Sweep{"Net_3x3", 3, 3, "net", 1, 150},
        Sweep{"Partition_2x3", 2, 3, "partition", 1, 150},
        Sweep{"Partition_3x3", 3, 3, "partition", 1, 150},
        Sweep{"Crash_2x3", 2, 3, "crash", 1, 150}, Sweep{"Crash_3x3", 3, 3, "crash", 1, 150},
        Sweep{"All_2x3", 2, 3, "all", 1, 150}, Sweep{"All_3x3", 3, 3, "all", 1, 150},
        Sweep{"All_2x5", 2, 5, "all", 1, 60}, Sweep{"Membership_1x3", 1, 3, "membership", 1, 100},
        Sweep{"Membership_3x3", 3, 3, "membership", 1, 100},
        Sweep{"All_3x3_HotKey", 3, 3, "all", 1, 100, /*keys=*/1, /*clients=*/8},
        // Leases shorter than a call deadline: recovery races live coordinators.
        Sweep{"All_3x3_ShortLease", 3, 3, "all", 1, 150, 3, 4, /*lease_ms=*/150},
        Sweep{"Crash_2x3_ShortLease", 2, 3, "crash", 1, 150, 3, 4, /*lease_ms=*/300}),
    [](const testing::TestParamInfo<Sweep>& p) { return std::string(p.param.name); });

// DESIGN.md, Contention: "a race of many puts of one fresh key ends with
// exactly one ok and the rest keyExists; conflict is the answer only when
// contention outlasts the bound". No faults; one-way delays of 5-30 ms, as
// between clusters in different places. Every node of a healed 3x3 system
// puts one fresh key at once (the probe after the quiet phase), and the
// workload's own races must each end with a winner too.
TEST(SimLiveness, RacesOnAFreshKeyEndWithOneWinnerAtWanDelays) {
  SimConfig config = SimConfig::ForProfile("none");
  config.clusters = 3;
  config.fault.net_min_ms = 5;
  config.fault.net_max_ms = 30;
  std::vector<std::string> failures;
  std::string first;
  for (uint64_t seed = 1; seed <= 100; ++seed) {
    config.seed = seed;
    SimResult result = RunSimulation(config);
    if (!result.ok()) {
      failures.push_back(config.Reproducer() + "  # " + result.violations.front().detail);
      if (first.empty()) first = result.Report();
    }
  }
  std::string all;
  for (const std::string& f : failures) absl::StrAppend(&all, "  ", f, "\n");
  EXPECT_TRUE(failures.empty()) << failures.size() << " of 100 seeds had a race with no winner:\n"
                                << all << first;
}

// DESIGN.md invariant 5: "a node that was down or joined late converges to
// every committed key". Nodes stay down for up to 8 s, missing commits that
// only catch-up brings back; every node must hold every committed key at
// the end (check_convergence, on by default) and catch-up must have pulled.
TEST(SimCatchUp, NodesDownForLongConvergeByCatchUp) {
  SimConfig config = SimConfig::ForProfile("crash");
  config.clusters = 2;
  config.fault.down_max_ms = 8000;
  ASSERT_TRUE(config.check_convergence);
  std::vector<std::string> failures;
  std::string first;
  uint64_t pulled = 0;
  for (uint64_t seed = 1; seed <= 100; ++seed) {
    config.seed = seed;
    SimResult result = RunSimulation(config);
    pulled += result.stats.catchup_keys_pulled;
    if (!result.ok()) {
      failures.push_back(config.Reproducer());
      if (first.empty()) first = result.Report();
    }
  }
  std::string all;
  for (const std::string& f : failures) absl::StrAppend(&all, "  ", f, " --trace\n");
  EXPECT_TRUE(failures.empty()) << failures.size() << " of 100 seeds failed:\n" << all << first;
  EXPECT_GT(pulled, 0u) << "catch-up never pulled anything: convergence was not exercised";
}

// Catch-up pages of one entry (catchup_page_bytes 1) over runs with many
// keys: pages end inside a range of buckets and the next resumes after the
// last entry, bucket to bucket, while nodes join, pause and restart; every
// node must still converge (check_convergence) and nothing may break.
TEST(SimCatchUp, PagesThatEndInsideARangeResumeAndConverge) {
  SimConfig config = SimConfig::ForProfile("membership");
  config.clusters = 3;
  config.ops = 400;
  config.keys = 40;
  config.catchup_page_bytes = 1;
  ASSERT_TRUE(config.check_convergence);
  std::vector<std::string> failures;
  std::string first;
  uint64_t pulled = 0;
  int resumed = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    config.seed = seed;
    SimResult result = RunSimulation(config);
    pulled += result.stats.catchup_keys_pulled;
    resumed += result.stats.pulls_resumed;
    if (!result.ok()) {
      failures.push_back(config.Reproducer());
      if (first.empty()) first = result.Report();
    }
  }
  std::string all;
  for (const std::string& f : failures) absl::StrAppend(&all, "  ", f, " --trace\n");
  EXPECT_TRUE(failures.empty()) << failures.size() << " of 40 seeds failed:\n" << all << first;
  EXPECT_GT(pulled, 100u) << "too little was pulled to exercise paging";
  // With the default page (a MiB) no page of these runs ends inside its
  // range, and no pull resumes one.
  EXPECT_GT(resumed, 20) << "no page ended inside its range: paging was not exercised";
}

// Without periodic rounds (only the one at each start), nodes that missed
// commits late in the run stay behind; the checker must say so.
TEST(SimCatchUp, TheCheckerNoticesANodeThatDidNotConverge) {
  SimConfig config = SimConfig::ForProfile("crash");
  config.clusters = 2;
  config.fault.down_max_ms = 8000;
  config.catchup_interval_ms = 0;
  int not_converged = 0;
  for (uint64_t seed = 1; seed <= 40 && not_converged == 0; ++seed) {
    config.seed = seed;
    SimResult result = RunSimulation(config);
    for (const Violation& v : result.violations) {
      if (v.invariant == "5" && v.detail.find("not converged") != std::string::npos) {
        ++not_converged;
      }
    }
  }
  EXPECT_GT(not_converged, 0);
}

// `replicator-sim --seed=N` replays one run exactly: the history digest
// (every event, client calls and answers included) is identical on every
// replay, and differs between seeds and between fault mixes.
TEST(SimDeterminism, SameSeedSameHistoryDigest) {
  for (const char* faults : {"none", "net", "partition", "crash", "membership", "all"}) {
    SimConfig config = SimConfig::ForProfile(faults);
    config.clusters = 3;
    config.seed = 7;
    SimResult a = RunSimulation(config);
    SimResult b = RunSimulation(config);
    EXPECT_EQ(a.DigestLine(), b.DigestLine()) << faults;
    EXPECT_EQ(a.history_events, b.history_events) << faults;
    EXPECT_EQ(a.StatsLine(), b.StatsLine()) << faults;
    EXPECT_EQ(a.liveness.ToString(), b.liveness.ToString()) << faults;
    config.seed = 8;
    SimResult c = RunSimulation(config);
    EXPECT_NE(a.history_digest, c.history_digest) << faults << ": the seed does not steer the run";
  }
  SimConfig none = SimConfig::ForProfile("none");
  SimConfig all = SimConfig::ForProfile("all");
  none.seed = all.seed = 3;
  EXPECT_NE(RunSimulation(none).history_digest, RunSimulation(all).history_digest);
}

TEST(SimDeterminism, DigestLineFormat) {
  SimResult result;
  result.history_digest = 0x0123456789abcdefull;
  EXPECT_EQ(result.DigestLine(), "history digest: 0123456789abcdef");
}

// --- The checker bites on a broken configuration ---------------------------

// A disk that acknowledges a write before syncing it (the engine votes ok,
// accepts, commits on it) with crashes on: the first ok whose reservations
// are not yet synced at a majority of some cluster is invariant 4. The same
// seeds on a safe disk pass.
TEST(SimUnsafe, NoSyncBeforeVoteBreaksDurabilityOfAnOk) {
  SimConfig config = SimConfig::ForProfile("crash");
  config.clusters = 2;
  config.unsafe = "no-sync-before-vote";
  int caught = 0;
  std::string first;
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    config.seed = seed;
    SimResult result = RunSimulation(config);
    if (!result.ok() && result.violations.front().invariant == "4") {
      ++caught;
      if (first.empty()) first = result.Report();
    }
  }
  EXPECT_EQ(caught, 10) << "the checker missed acknowledged-but-unsynced oks";
  EXPECT_NE(first.find("replicator-sim --seed="), std::string::npos) << first;
  EXPECT_NE(first.find("--unsafe=no-sync-before-vote"), std::string::npos) << first;
  EXPECT_NE(first.find("durably (synced) at only"), std::string::npos) << first;
  config.unsafe.clear();
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    config.seed = seed;
    SimResult result = RunSimulation(config);
    EXPECT_TRUE(result.ok()) << result.Report();
  }
}

// The same broken disk without invariant 4's direct check: the writes that
// crashes lose surface as contradictions a user would see. Acceptors that
// forgot their accept let recovery choose abort after commit was chosen
// (3), two values get decided for one key (1), an acknowledged key ends up
// nowhere (5) or a linearizable get misses it (L).
TEST(SimUnsafe, LostUnsyncedWritesSurfaceAsContradictions) {
  SimConfig config = SimConfig::ForProfile("crash");
  config.clusters = 1;
  config.unsafe = "no-sync-before-vote";
  config.check_durable_at_ok = false;
  std::set<std::string> seen;
  int caught = 0;
  std::string listing;
  // 100 seeds: since acceptors answer from committed entries (acceptor.h),
  // a lost accept shows as two decisions (3) first only from seed 47 on.
  for (uint64_t seed = 1; seed <= 100; ++seed) {
    config.seed = seed;
    SimResult result = RunSimulation(config);
    if (result.ok()) continue;
    ++caught;
    const std::string& id = result.violations.front().invariant;
    seen.insert(id);
    absl::StrAppend(&listing, "  ", config.Reproducer(), ": ", result.violations.front().ToString(),
                    "\n");
    EXPECT_TRUE(id == "1" || id == "2" || id == "3" || id == "5" || id == "L" || id == "E")
        << result.Report();
    EXPECT_GT(result.stats.unsynced_lost, 0) << "failed without losing a write:\n"
                                             << result.Report();
  }
  EXPECT_GE(caught, 4) << listing;
  EXPECT_TRUE(seen.contains("3")) << listing;
  EXPECT_TRUE(seen.contains("1") || seen.contains("5")) << listing;
}

// --- Membership --------------------------------------------------------------

// The membership mix does what it says: every spare joins and promotes
// itself through consensus, operators remove voters (some while a spare is
// joining, some refused because only 3 voters are left), nodes pause through
// two or more changes, and every run keeps the invariants, configurations
// converged (invariant M) included.
TEST(SimMembership, SparesJoinAndPromoteVotersAreRemovedAndEveryRunConverges) {
  SimConfig config = SimConfig::ForProfile("membership");
  config.clusters = 3;
  config.fault.retire = 0;  // every spare joins (ARetiredCluster... retires)
  ASSERT_TRUE(config.check_convergence);
  SimStats sum;
  int seeds = 0;
  std::string failures;
  for (uint64_t seed = 1; seed <= 20; ++seed, ++seeds) {
    config.seed = seed;
    SimResult result = RunSimulation(config);
    if (!result.ok()) absl::StrAppend(&failures, result.Report());
    const SimStats& s = result.stats;
    EXPECT_EQ(s.joins, config.total_clusters() * config.fault.spares) << config.Reproducer();
    EXPECT_EQ(s.foundings, config.fault.new_clusters) << config.Reproducer();
    EXPECT_EQ(s.epochs_gained, s.promotions + s.removals) << config.Reproducer();
    sum.joins += s.joins;
    sum.promotions += s.promotions;
    sum.spare_founders += s.spare_founders;
    sum.removals += s.removals;
    sum.changes += s.changes;
    sum.changes_ok += s.changes_ok;
    sum.changes_refused += s.changes_refused;
    sum.changes_busy += s.changes_busy;
    sum.replacements += s.replacements;
    sum.pauses += s.pauses;
    sum.pauses_across_changes += s.pauses_across_changes;
  }
  EXPECT_TRUE(failures.empty()) << failures;
  // Every spare that joined was promoted (nothing ever removes a learner),
  // or founded its cluster (one founded mid-run, which it joined first).
  EXPECT_EQ(sum.promotions + sum.spare_founders, sum.joins);
  EXPECT_GT(sum.removals, seeds) << "fewer than one removal per run";
  EXPECT_GT(sum.changes_ok, 0);
  EXPECT_GT(sum.changes_refused, 0) << "no removal below 3 voters was ever asked and refused";
  EXPECT_GT(sum.changes_busy, 0) << "no two changes ever raced";
  EXPECT_GT(sum.replacements, 0);
  EXPECT_GT(sum.pauses_across_changes, 0) << "no node was cut off across two changes";
}

// Retiring a cluster (drained, every node stopped for good, removed by
// consensus of the others): every run keeps the invariants; the removal is
// decided and known to every node left (invariant M); and the healed
// federation's probe puts, at every node left, commit without it.
TEST(SimMembership, ARetiredClusterIsRemovedAndPutsCommitWithoutIt) {
  SimConfig config = SimConfig::ForProfile("membership");
  config.clusters = 3;
  config.fault.retire = 1;
  ASSERT_TRUE(config.check_convergence && config.probe);
  int retirements = 0;
  std::string failures;
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    config.seed = seed;
    Simulator sim(config);
    SimResult result = sim.Run();
    if (!result.ok()) absl::StrAppend(&failures, result.Report());
    retirements += result.stats.retirements;
    if (result.stats.retirements == 0) continue;
    int removed = 0;
    for (int c = 1; c < config.total_clusters(); ++c) {
      const core::Configuration* newest = sim.checker().Newest(absl::StrCat("c", c));
      const uint64_t at = sim.checker().RemovedAt(absl::StrCat("c", c));
      if (newest != nullptr && at != 0) {
        ++removed;
        EXPECT_GT(at, newest->generation) << config.Reproducer();
      }
    }
    EXPECT_EQ(removed, 1) << config.Reproducer();
    const core::Configuration* first = sim.checker().Newest("c0");
    ASSERT_NE(first, nullptr);
    EXPECT_EQ(sim.checker().RemovedAt("c0"), 0u) << "the first cluster is never removed";
  }
  EXPECT_TRUE(failures.empty()) << failures;
  EXPECT_GE(retirements, 10) << "fewer than half the runs drained in time and retired a cluster";
}

// One fixed seed: it runs clean, and the history shows the membership as it
// moved — each engine's adoption of each epoch, every change asked and its
// outcome, joins and pauses — which is what a failure about a cluster's
// membership is cut down to.
TEST(SimMembership, AFixedSeedRunsCleanAndItsHistoryShowsTheChanges) {
  SimConfig config = SimConfig::ForProfile("membership");
  config.clusters = 2;
  config.fault.new_clusters = 0;  // the two clusters' own membership only
  config.fault.retire = 0;
  config.seed = 11;
  Simulator sim(config);
  SimResult result = sim.Run();
  ASSERT_TRUE(result.ok()) << result.Report();
  EXPECT_EQ(result.stats.joins, 4);
  EXPECT_EQ(result.stats.promotions, 4);
  EXPECT_GT(result.stats.removals, 0);
  EXPECT_GT(result.stats.changes_ok, 0);
  int gained = 0;
  for (const char* cluster : {"c0", "c1"}) {
    const core::Configuration* newest = sim.checker().Newest(cluster);
    ASSERT_NE(newest, nullptr) << cluster;
    EXPECT_GE(newest->voters.size(), 3u) << Describe(*newest);
    gained += static_cast<int>(newest->epoch) - 1;
  }
  EXPECT_EQ(gained, result.stats.epochs_gained);
  Violation about_c0;
  about_c0.invariant = "M";
  about_c0.subject.cluster = "c0";
  std::vector<core::PeerId> ids;
  for (int i = 0; i < sim.node_count(); ++i) ids.push_back(absl::StrCat("c", i / 5, "n", i % 5));
  History::Excerpt excerpt = sim.history().ExcerptOf(about_c0, ids, 200);
  EXPECT_EQ(excerpt.of, "membership events of cluster c0");
  int joins = 0, adoptions = 0, changes = 0;
  for (const std::string& line : excerpt.lines) {
    joins += line.find("JOIN c0n") != std::string::npos;
    adoptions += line.find(" adopts c0@") != std::string::npos;
    changes += line.find("CHANGE #") != std::string::npos;
    EXPECT_EQ(line.find("StartPut"), std::string::npos) << line;
  }
  // (A long excerpt keeps its first 100 and last 500 lines.)
  EXPECT_GE(joins, 1);
  EXPECT_GT(adoptions, 5) << "every node of c0 adopts epoch 1, and later epochs are adopted too";
  EXPECT_GT(changes, 0);
}

// A broken membership rule in every engine (EngineConfig::unsafe_membership)
// under the membership mix, one cluster (where no other cluster's votes can
// mask a lost write): the checker must report a violation within a bounded
// sweep, and the seed it fails must pass with the rule intact.
//   skip-settle: an acceptor votes on config(e+1) before it settled e, so
//     a new configuration can be chosen by voters that lack what the old
//     quorums held.
//   ignore-epoch: a voter votes under whatever epoch a request names, so a
//     stale coordinator's quorum need not meet the current one.
//   skip-federation-settle (three clusters, a fourth founded mid-run): a
//     voter of the young cluster answers reads before it learned the keys
//     committed before its cluster counted.
void ExpectUnsafeMembershipCaught(const char* mode, uint64_t seeds, int clusters = 1,
                                  int new_clusters = 0) {
  SimConfig config = SimConfig::ForProfile("membership");
  config.clusters = clusters;
  config.fault.new_clusters = new_clusters;  // none by default: no other cluster's votes
  config.unsafe = mode;
  std::optional<SimResult> caught;
  for (uint64_t seed = 1; seed <= seeds && !caught; ++seed) {
    config.seed = seed;
    SimResult result = RunSimulation(config);
    if (!result.ok()) caught = std::move(result);
  }
  ASSERT_TRUE(caught) << "--unsafe=" << mode << " went unnoticed for " << seeds << " seeds";
  const std::string& id = caught->violations.front().invariant;
  EXPECT_TRUE(id == "1" || id == "2" || id == "3" || id == "4" || id == "5" || id == "L" ||
              id == "K" || id == "M" || id == "E")
      << caught->Report();
  const std::string report = caught->Report();
  EXPECT_NE(report.find(absl::StrCat("--unsafe=", mode)), std::string::npos) << report;
  config.seed = caught->config.seed;
  config.unsafe.clear();
  SimResult safe = RunSimulation(config);
  EXPECT_TRUE(safe.ok()) << "the seed fails with the rule intact too:\n" << safe.Report();
}

TEST(SimUnsafe, SkippingTheSettleRuleIsCaught) { ExpectUnsafeMembershipCaught("skip-settle", 300); }

TEST(SimUnsafe, IgnoringTheEpochRuleIsCaught) {
  ExpectUnsafeMembershipCaught("ignore-epoch", 1000);
}

TEST(SimUnsafe, SkippingTheFederationSettleIsCaught) {
  ExpectUnsafeMembershipCaught("skip-federation-settle", 20, /*clusters=*/3, /*new_clusters=*/1);
}

// --- Failure reports ---------------------------------------------------------

// A failure's excerpt holds the events of the offending key only (and the
// crashes, restarts, partitions, membership changes and phases around
// them), not everything.
TEST(SimReport, ExcerptIsTheOffendingKeysHistory) {
  SimConfig config = SimConfig::ForProfile("all");
  config.clusters = 2;
  config.seed = 5;
  Simulator sim(config);
  SimResult clean = sim.Run();
  ASSERT_TRUE(clean.ok()) << clean.Report();
  const auto& committed = sim.store(0).committed();
  ASSERT_FALSE(committed.empty());
  const core::Key key = committed.begin()->first;
  sim.InjectMutationForTest(sim.node_count() - 1, core::PutCommitted{key, "bogus-second", 0, {}});
  SimResult result = sim.Result();
  ASSERT_FALSE(result.ok());
  const std::string report = result.Report();
  EXPECT_NE(report.find(absl::StrCat("FAIL seed 5: invariant 1 violated")), std::string::npos)
      << report;
  EXPECT_NE(report.find("replicator-sim --seed=5 "), std::string::npos) << report;
  EXPECT_NE(result.excerpt_of.find(Quote(key)), std::string::npos) << result.excerpt_of;
  ASSERT_FALSE(result.excerpt.empty());
  EXPECT_LT(result.excerpt.size() * 4, result.history_events) << report;
  int about_key = 0, context = 0;
  for (const std::string& line : result.excerpt) {
    if (line.find(Quote(key)) != std::string::npos || line.find("call#") != std::string::npos ||
        line.find(" in#") != std::string::npos || line.find("write#") != std::string::npos) {
      ++about_key;
    } else if (line.find("CRASH") != std::string::npos ||
               line.find(" start incarnation") != std::string::npos ||
               line.find("PARTITION") != std::string::npos ||
               line.find("HEAL") != std::string::npos || line.find("HINT") != std::string::npos ||
               line.find("QUIET") != std::string::npos || line.find("PROBE") != std::string::npos ||
               line.find("BEGIN") != std::string::npos || line.find("CHECK") != std::string::npos ||
               line.find("JOIN") != std::string::npos || line.find("FOUND") != std::string::npos ||
               line.find(" adopts c") != std::string::npos ||
               line.find("CHANGE #") != std::string::npos ||
               line.find("PAUSE") != std::string::npos || line.find("DRAIN") != std::string::npos ||
               line.find("RETIRE") != std::string::npos ||
               line.find("RESUME") != std::string::npos) {
      ++context;
    } else {
      ADD_FAILURE() << "excerpt line about something else: " << line;
    }
  }
  EXPECT_GT(about_key, 0);
  EXPECT_NE(result.excerpt.back().find("INJECTED"), std::string::npos) << report;
  // Another key's client calls are not in it.
  for (const std::string& line : result.excerpt) {
    if (line.find("StartPut") == std::string::npos) continue;
    EXPECT_NE(line.find(Quote(key)), std::string::npos) << line;
  }
}

// Seeds that once failed, kept so they keep passing. Each says what was wrong.
struct Regression {
  const char* faults;
  int clusters;
  uint64_t seed;
  core::TimeMs lease_ms;
  core::TimeMs down_max_ms;  // 0: the profile's
  const char* why;
};

TEST(SimRegression, SeedsThatOnceFailed) {
  const Regression regressions[] = {
      // Simulator: a restart scheduled during the fault phase fired inside the
      // quiet phase's minority-down part and brought the node kept down back
      // up late; its lease plus a resolve sent first to the down coordinator
      // outlasted the part (invariant K reported falsely). Restarts scheduled
      // by faults no longer fire once faults are off.
      {"crash", 2, 240, 2000, 8000, "kept-down node restarted by a stale fault event"},
      {"crash", 2, 679, 2000, 8000, "kept-down node restarted by a stale fault event"},
      // Simulator: with 150 ms leases the minority-down part (then 2 leases +
      // 8 deadlines) was shorter than a resolve in flight to a partitioned
      // node (4 deadlines) + the lease + a resolve to the down coordinator
      // (4 deadlines) + a contended Paxos round. Now 2 leases + 12 deadlines.
      {"all", 3, 1704, 150, 0, "minority-down window shorter than two resolve deadlines"},
      // Simulator: a retired node learns commits only by catch-up, and the
      // final checks came 2 call deadlines after the probe, before its next
      // round (invariant 5 reported falsely). Now two catch-up intervals
      // more when some node votes in no configuration.
      {"membership", 1, 1565, 2000, 0, "retired node checked before its next catch-up round"},
  };
  for (const Regression& r : regressions) {
    SimConfig config = SimConfig::ForProfile(r.faults);
    config.clusters = r.clusters;
    config.seed = r.seed;
    config.lease_ms = r.lease_ms;
    if (r.down_max_ms > 0) config.fault.down_max_ms = r.down_max_ms;
    SimResult result = RunSimulation(config);
    EXPECT_TRUE(result.ok()) << r.why << "\n" << result.Report();
  }
}

// --- The checker must be able to fail --------------------------------------

TEST(SimChecker, CatchesASecondCommittedValue) {
  SimConfig config;  // fault-free: every put settles
  config.seed = 3;
  Simulator sim(config);
  sim.RunWorkload();
  sim.RunQuiet();
  ASSERT_TRUE(sim.checker().violations().empty()) << Listing(sim.checker().violations());
  // Pick a key committed somewhere, and give another node a different value.
  const auto& committed = sim.store(0).committed();
  core::Key key = committed.empty() ? "k-injected" : committed.begin()->first;
  if (committed.empty()) {
    sim.InjectMutationForTest(0, core::PutCommitted{key, "first", 0, {}});
  }
  sim.InjectMutationForTest(sim.node_count() - 1, core::PutCommitted{key, "bogus-second", 0, {}});
  ASSERT_TRUE(sim.checker().failed());
  EXPECT_EQ(sim.checker().violations().front().invariant, "1")
      << Listing(sim.checker().violations());
  SimResult result = sim.Result();
  EXPECT_NE(result.Report().find("replicator-sim --seed=3 "), std::string::npos);
  EXPECT_NE(result.Report().find("INJECTED"), std::string::npos) << result.Report();
}

TEST(SimChecker, CatchesAReservationLeftAfterTheQuietPhase) {
  SimConfig config;
  config.seed = 4;
  Simulator sim(config);
  sim.RunWorkload();
  sim.RunQuiet();
  core::Reservation r;
  r.key = "never-resolved";
  r.value = "x";
  r.proposal = core::ProposalId{"c0n0", 99, 1, 0};
  sim.InjectMutationForTest(1, core::PutReservation{r});
  sim.CheckFinal();
  ASSERT_TRUE(sim.checker().failed());
  EXPECT_EQ(sim.checker().violations().front().invariant, "K")
      << Listing(sim.checker().violations());
}

// A hand-built world: 2 clusters x 3 nodes, stores driven directly.
class CheckerWorld : public testing::Test {
 protected:
  CheckerWorld() { UseChecker(CheckerOptions{}); }
  // A fresh checker of the two clusters a0..a2, b0..b2 over stores_.
  void UseChecker(const CheckerOptions& options) {
    std::vector<const core::MemoryState*> stores;
    for (auto& s : stores_) stores.push_back(&s);
    checker_ = std::make_unique<Checker>(std::vector<int>{0, 0, 0, 1, 1, 1},
                                         std::vector<core::PeerId>{"a0", "a1", "a2", "b0", "b1",
                                                                   "b2"},
                                         stores, 2, options, &now_);
  }
  void UseConvergenceChecker() {
    CheckerOptions options;
    options.check_convergence = true;
    UseChecker(options);
  }
  void Apply(int node, const core::Mutation& m) {
    checker_->BeforeApply(node, m);
    stores_[node].Apply(m);
  }
  static core::ProposalId P(uint64_t seq) { return core::ProposalId{"a0", 1, seq, 0}; }
  // Reserves (key, value) for p at `nodes`, and chooses `d` at a0, a1.
  void Propose(const core::ProposalId& p, const core::Key& key, const core::Value& value,
               const std::vector<int>& nodes, core::Decision d) {
    checker_->OnSend(0, core::HandleRequest{core::ReserveOp{key, value, p}});
    for (int n : nodes) Apply(n, core::PutReservation{core::Reservation{key, p, value, now_}});
    core::AcceptorRecord rec{p, core::Ballot{0, "a0"}, core::AcceptedValue{{0, "a0"}, d}};
    Apply(0, core::PutAcceptor{rec});
    Apply(1, core::PutAcceptor{rec});
  }
  int StartPut(const core::Key& key, const core::Value& value, uint64_t request_id = 0) {
    ClientOp op;
    op.key = key;
    op.value = value;
    op.request_id = request_id;
    op.started = now_;
    return checker_->OnOpStarted(op);
  }

  core::TimeMs now_ = 0;
  core::MemoryState stores_[6];
  std::unique_ptr<Checker> checker_;
};

TEST_F(CheckerWorld, AcceptsAnHonestPut) {
  int op = StartPut("k", "v1");
  Propose(P(1), "k", "v1", {0, 1, 3, 4}, core::Decision::kCommit);
  now_ = 5;
  checker_->OnPutDone(op, core::PutOutcome{core::PutOutcome::Kind::kOk, "", ""});
  for (int n : {0, 1, 3, 4}) {
    Apply(n, core::PutCommitted{"k", "v1", 0, {}});
    Apply(n, core::DeleteReservation{"k"});
  }
  EXPECT_FALSE(checker_->failed()) << Listing(checker_->violations());
  checker_->CheckFinal({0, 0, 0, 0, 0, 0});
  EXPECT_FALSE(checker_->failed()) << Listing(checker_->violations());
}

TEST_F(CheckerWorld, CatchesTwoOkPutsOnOneKey) {
  int op1 = StartPut("k", "v1");
  int op2 = StartPut("k", "v2");
  Propose(P(1), "k", "v1", {0, 1, 3, 4}, core::Decision::kCommit);
  checker_->OnPutDone(op1, core::PutOutcome{core::PutOutcome::Kind::kOk, "", ""});
  Propose(P(2), "k", "v2", {}, core::Decision::kCommit);
  checker_->OnPutDone(op2, core::PutOutcome{core::PutOutcome::Kind::kOk, "", ""});
  EXPECT_TRUE(HasInvariant(checker_->violations(), "2")) << Listing(checker_->violations());
}

TEST_F(CheckerWorld, AcceptsARetryOfOnePutAnsweringOkAgain) {
  int first = StartPut("k", "v1", /*request_id=*/7);
  Propose(P(1), "k", "v1", {0, 1, 3, 4}, core::Decision::kCommit);
  checker_->OnPutDone(first, core::PutOutcome{core::PutOutcome::Kind::kOk, "", ""});
  int retry = StartPut("k", "v1", /*request_id=*/7);
  checker_->OnPutDone(retry, core::PutOutcome{core::PutOutcome::Kind::kOk, "", ""});
  EXPECT_FALSE(checker_->failed()) << Listing(checker_->violations());
}

TEST_F(CheckerWorld, CatchesTwoClientPutsWithDifferentRequestIdsAnsweringOk) {
  int op1 = StartPut("k", "v1", /*request_id=*/7);
  int op2 = StartPut("k", "v1", /*request_id=*/8);
  Propose(P(1), "k", "v1", {0, 1, 3, 4}, core::Decision::kCommit);
  checker_->OnPutDone(op1, core::PutOutcome{core::PutOutcome::Kind::kOk, "", ""});
  checker_->OnPutDone(op2, core::PutOutcome{core::PutOutcome::Kind::kOk, "", ""});
  ASSERT_TRUE(checker_->failed());
  EXPECT_EQ(checker_->violations().front().invariant, "2") << Listing(checker_->violations());
}

TEST_F(CheckerWorld, CatchesAPutWithARequestIdAnsweringKeyExistsOfItsOwnValue) {
  int op1 = StartPut("k", "v1", /*request_id=*/7);
  Propose(P(1), "k", "v1", {0, 1, 3, 4}, core::Decision::kCommit);
  checker_->OnPutDone(op1, core::PutOutcome{core::PutOutcome::Kind::kOk, "", ""});
  Apply(0, core::PutCommitted{"k", "v1", 7, {}});
  int retry = StartPut("k", "v1", /*request_id=*/7);
  checker_->OnPutDone(retry, core::PutOutcome{core::PutOutcome::Kind::kKeyExists, "v1", ""});
  ASSERT_TRUE(checker_->failed());
  EXPECT_EQ(checker_->violations().front().invariant, "2") << Listing(checker_->violations());
}

TEST_F(CheckerWorld, CatchesARetryThatAnsweredConflictThoughItsProposalCommitted) {
  int first = StartPut("k", "v1", /*request_id=*/7);
  checker_->OnOpAbandoned(first);  // its node crashed before answering
  int retry = StartPut("k", "v1", /*request_id=*/7);
  // The retry's own proposal (the first op is no longer pending at a0).
  checker_->OnSend(0, core::HandleRequest{core::ReserveOp{"k", "v1", P(2), 7}});
  checker_->OnPutDone(retry, core::PutOutcome{core::PutOutcome::Kind::kConflict, "", "busy"});
  EXPECT_FALSE(checker_->failed()) << Listing(checker_->violations());
  checker_->OnSend(0, core::HandleRequest{core::CommitOp{"k", "v1", P(2), 7}});
  ASSERT_TRUE(checker_->failed());
  EXPECT_EQ(checker_->violations().front().invariant, "2") << Listing(checker_->violations());
}

TEST_F(CheckerWorld, CatchesACommittedKeyMissingAtANodeWithConvergenceOn) {
  UseConvergenceChecker();
  int op = StartPut("k", "v1");
  Propose(P(1), "k", "v1", {0, 1, 3, 4}, core::Decision::kCommit);
  checker_->OnPutDone(op, core::PutOutcome{core::PutOutcome::Kind::kOk, "", ""});
  for (int n : {0, 1, 3, 4}) {
    Apply(n, core::PutCommitted{"k", "v1", 0, {}});
    Apply(n, core::DeleteReservation{"k"});
  }
  ASSERT_FALSE(checker_->failed()) << Listing(checker_->violations());
  checker_->CheckFinal({0, 0, 0, 0, 0, 0});
  ASSERT_TRUE(checker_->failed());
  EXPECT_EQ(checker_->violations().front().invariant, "5") << Listing(checker_->violations());
  EXPECT_NE(checker_->violations().front().detail.find("not converged"), std::string::npos);
}

TEST_F(CheckerWorld, CatchesAnOkPutNotDurableInEveryCluster) {
  int op = StartPut("k", "v1");
  Propose(P(1), "k", "v1", {0, 1, 3}, core::Decision::kCommit);  // 1 of 3 in cluster b
  checker_->OnPutDone(op, core::PutOutcome{core::PutOutcome::Kind::kOk, "", ""});
  ASSERT_TRUE(checker_->failed());
  EXPECT_EQ(checker_->violations().front().invariant, "4") << Listing(checker_->violations());
}

// Cluster b founded after a (generations 1, 2): a put counted at
// generation 1 need not be durable at b (b's federation settle brings it
// the put); one counted at 2 must.
TEST_F(CheckerWorld, CountsInvariant4OverTheClustersFoundedUpToThePutsGeneration) {
  checker_->SetMembership({"c0", "c1"}, {{"a0", "a1", "a2"}, {"b0", "b1", "b2"}}, {1, 2});
  for (uint64_t generation : {1, 2}) {
    SCOPED_TRACE(generation);
    const core::Key key = absl::StrCat("k", generation);
    const core::ProposalId p = P(generation);
    int op = StartPut(key, "v1");
    checker_->OnSend(0, core::HandleRequest{core::ReserveOp{key, "v1", p, 0, 1, generation}});
    Propose(p, key, "v1", {0, 1}, core::Decision::kCommit);  // none of b
    checker_->OnPutDone(op, core::PutOutcome{core::PutOutcome::Kind::kOk, "", ""});
    EXPECT_EQ(checker_->failed(), generation == 2) << Listing(checker_->violations());
  }
  EXPECT_EQ(checker_->violations().front().invariant, "4") << Listing(checker_->violations());
}

TEST_F(CheckerWorld, CatchesCommitAndAbortOfOneProposal) {
  checker_->OnSend(0, core::HandleRequest{core::CommitOp{"k", "v1", P(1)}});
  checker_->OnSend(2, core::HandleRequest{core::AbortOp{"k", P(1)}});
  ASSERT_TRUE(checker_->failed());
  EXPECT_EQ(checker_->violations().front().invariant, "3") << Listing(checker_->violations());
}

TEST_F(CheckerWorld, CatchesAnUnavailablePutWhoseValueCommits) {
  int op = StartPut("k", "v1");
  checker_->OnSend(0, core::HandleRequest{core::ReserveOp{"k", "v1", P(1)}});
  checker_->OnPutDone(op, core::PutOutcome{core::PutOutcome::Kind::kUnavailable, "", "timeout"});
  EXPECT_FALSE(checker_->failed());
  checker_->OnSend(0, core::HandleRequest{core::CommitOp{"k", "v1", P(1)}});
  ASSERT_TRUE(checker_->failed());
  EXPECT_EQ(checker_->violations().front().invariant, "2") << Listing(checker_->violations());
}

TEST_F(CheckerWorld, CatchesAStaleLinearizableGet) {
  int put = StartPut("k", "v1");
  Propose(P(1), "k", "v1", {0, 1, 3, 4}, core::Decision::kCommit);
  now_ = 10;
  checker_->OnPutDone(put, core::PutOutcome{core::PutOutcome::Kind::kOk, "", ""});
  now_ = 11;
  ClientOp get;
  get.type = ClientOp::Type::kGetLinearizable;
  get.key = "k";
  get.started = now_;
  int g = checker_->OnOpStarted(get);
  now_ = 12;
  checker_->OnGetDone(g, core::GetOutcome{core::GetOutcome::Kind::kNotFound, "", ""});
  ASSERT_TRUE(checker_->failed());
  EXPECT_EQ(checker_->violations().front().invariant, "L") << Listing(checker_->violations());
}

// Linearizable: a get that started after the put's ok returned, even within
// the same virtual millisecond, must find the value.
TEST_F(CheckerWorld, CatchesAStaleLinearizableGetStartedInTheSameMillisecond) {
  int put = StartPut("k", "v1");
  Propose(P(1), "k", "v1", {0, 1, 3, 4}, core::Decision::kCommit);
  now_ = 10;
  checker_->OnPutDone(put, core::PutOutcome{core::PutOutcome::Kind::kOk, "", ""});
  ClientOp get;
  get.type = ClientOp::Type::kGetLinearizable;
  get.key = "k";
  get.started = now_;
  int g = checker_->OnOpStarted(get);
  checker_->OnGetDone(g, core::GetOutcome{core::GetOutcome::Kind::kNotFound, "", ""});
  ASSERT_TRUE(checker_->failed());
  EXPECT_EQ(checker_->violations().front().invariant, "L") << Listing(checker_->violations());
}

// A get that began before the ok returned may miss it: they overlap.
TEST_F(CheckerWorld, AcceptsAnOverlappingLinearizableGetThatMissesThePut) {
  int put = StartPut("k", "v1");
  ClientOp get;
  get.type = ClientOp::Type::kGetLinearizable;
  get.key = "k";
  get.started = now_;
  int g = checker_->OnOpStarted(get);
  Propose(P(1), "k", "v1", {0, 1, 3, 4}, core::Decision::kCommit);
  checker_->OnPutDone(put, core::PutOutcome{core::PutOutcome::Kind::kOk, "", ""});
  checker_->OnGetDone(g, core::GetOutcome{core::GetOutcome::Kind::kNotFound, "", ""});
  EXPECT_FALSE(checker_->failed()) << Listing(checker_->violations());
}

// Invariant K concerns up nodes only: a down node keeps its reservation
// until it restarts.
TEST_F(CheckerWorld, CatchesAReservationLeftAtAnUpNode) {
  Apply(2, core::PutReservation{core::Reservation{"k", P(1), "v1", 0}});
  checker_->CheckNoReservations({true, true, false, true, true, true}, "test");
  EXPECT_FALSE(checker_->failed()) << Listing(checker_->violations());
  Apply(4, core::PutReservation{core::Reservation{"k", P(1), "v1", 0}});
  checker_->CheckNoReservations({true, true, false, true, true, true}, "test");
  ASSERT_EQ(checker_->violations().size(), 1u) << Listing(checker_->violations());
  EXPECT_EQ(checker_->violations().front().invariant, "K");
  EXPECT_EQ(checker_->violations().front().subject.key, "k");
  EXPECT_EQ(checker_->violations().front().subject.proposal, P(1));
}

TEST_F(CheckerWorld, CountsLivenessOfClientPuts) {
  auto put = [&](const core::Value& value, std::optional<core::PutOutcome> outcome,
                 bool probe = false) {
    ClientOp op;
    op.key = absl::StrCat("k-", value);
    op.value = value;
    op.probe = probe;
    int i = checker_->OnOpStarted(op);
    if (outcome) {
      checker_->OnPutDone(i, *outcome);
    } else {
      checker_->OnOpAbandoned(i);
    }
  };
  using K = core::PutOutcome::Kind;
  put("a", core::PutOutcome{K::kConflict, "", "busy"});
  put("b", core::PutOutcome{K::kUnavailable, "", "too few votes"});
  put("c", core::PutOutcome{K::kOutcomeUnknown, "", "the decision could not be learned"});
  put("d", std::nullopt);
  put("e", core::PutOutcome{K::kConflict, "", "busy"}, /*probe=*/true);
  Liveness l = checker_->CountLiveness();
  EXPECT_EQ(l.puts, 4);
  EXPECT_EQ(l.definite(), 2);
  EXPECT_EQ(l.conflict, 1);
  EXPECT_EQ(l.unavailable, 1);
  EXPECT_EQ(l.outcome_unknown, 1);
  EXPECT_EQ(l.no_answer, 1);
  EXPECT_EQ(l.ToString().rfind("2/4 puts definite (50.00%)", 0), 0u) << l.ToString();
}

// Invariant M, each detector on its own. Cluster index 0 is "c0" here,
// founded by a0, a1, a2.
core::Configuration C0(uint64_t epoch, std::vector<core::PeerId> voters) {
  return core::Configuration{"c0", epoch, std::move(voters)};
}

TEST_F(CheckerWorld, AcceptsConfigurationsThatMoveOneVoterAtATime) {
  checker_->OnConfigurations(0, {C0(1, {"a0", "a1", "a2"}), C0(2, {"a0", "a1"})});
  checker_->OnConfigurations(1, {C0(1, {"a0", "a1", "a2"})});
  checker_->OnConfigurations(1, {C0(1, {"a0", "a1", "a2"}), C0(2, {"a0", "a1"})});
  checker_->OnConfigurations(2, {C0(1, {"a0", "a1", "a2"}), C0(2, {"a0", "a1"})});
  EXPECT_FALSE(checker_->failed()) << Listing(checker_->violations());
  ASSERT_NE(checker_->Newest("c0"), nullptr);
  EXPECT_EQ(checker_->Newest("c0")->epoch, 2u);
  EXPECT_TRUE(checker_->EverVoter("a2"));
  checker_->CheckFinal({0, 0, 0, 0, 0, 0});
  EXPECT_FALSE(checker_->failed()) << Listing(checker_->violations());
}

TEST_F(CheckerWorld, CatchesTwoVoterSetsForOneEpoch) {
  checker_->OnConfigurations(0, {C0(1, {"a0", "a1", "a2"}), C0(2, {"a0", "a1"})});
  checker_->OnConfigurations(1, {C0(1, {"a0", "a1", "a2"}), C0(2, {"a1", "a2"})});
  ASSERT_TRUE(checker_->failed());
  EXPECT_EQ(checker_->violations().front().invariant, "M") << Listing(checker_->violations());
  EXPECT_EQ(checker_->violations().front().subject.cluster, "c0");
  EXPECT_NE(checker_->violations().front().detail.find("two voter sets for epoch 2"),
            std::string::npos);
}

TEST_F(CheckerWorld, CatchesEpochsThatDifferByMoreThanOneVoter) {
  checker_->OnConfigurations(0, {C0(1, {"a0", "a1", "a2"}), C0(2, {"a0"})});
  ASSERT_TRUE(checker_->failed());
  EXPECT_EQ(checker_->violations().front().invariant, "M") << Listing(checker_->violations());
  EXPECT_NE(checker_->violations().front().detail.find("differ by 2 voters"), std::string::npos)
      << Listing(checker_->violations());
}

TEST_F(CheckerWorld, CatchesAnEpochOneThatIsNotTheFoundingSet) {
  checker_->OnConfigurations(3, {core::Configuration{"c1", 1, {"b0", "b1"}}});
  ASSERT_TRUE(checker_->failed());
  EXPECT_EQ(checker_->violations().front().invariant, "M") << Listing(checker_->violations());
  EXPECT_NE(checker_->violations().front().detail.find("founding set"), std::string::npos)
      << Listing(checker_->violations());
}

TEST_F(CheckerWorld, CatchesARemovedVoterVotingAgain) {
  checker_->OnConfigurations(
      0, {C0(1, {"a0", "a1", "a2"}), C0(2, {"a0", "a1"}), C0(3, {"a0", "a1", "a2"})});
  ASSERT_TRUE(checker_->failed());
  EXPECT_NE(checker_->violations().front().detail.find("a2 is a voter again"), std::string::npos)
      << Listing(checker_->violations());
}

TEST_F(CheckerWorld, CatchesARestartToAnOlderEpochThanItMadeDurable) {
  checker_->OnConfigurations(0, {C0(1, {"a0", "a1", "a2"}), C0(2, {"a0", "a1"})});
  Apply(0, core::PutConfig{C0(2, {"a0", "a1"})});
  checker_->OnEngineStart(0);
  checker_->OnConfigurations(0, {C0(1, {"a0", "a1", "a2"})});  // forgot epoch 2
  ASSERT_TRUE(checker_->failed());
  EXPECT_NE(checker_->violations().front().detail.find("restarted at epoch 1"), std::string::npos)
      << Listing(checker_->violations());
}

// The federation generation: the longest run 1, 2, ... of the generations
// of the clusters a node knows. It never goes down, nor below what the
// node's durable configurations give after a restart, and a digest answer
// reports only a durable one.
TEST_F(CheckerWorld, CatchesAFederationGenerationThatGoesDown) {
  checker_->SetMembership({"c0", "c1"}, {{"a0", "a1", "a2"}, {"b0", "b1", "b2"}}, {1, 2});
  const core::Configuration a{"c0", 1, {"a0", "a1", "a2"}, 1};
  const core::Configuration b{"c1", 1, {"b0", "b1", "b2"}, 2};
  checker_->OnConfigurations(0, {a, b});
  EXPECT_FALSE(checker_->failed()) << Listing(checker_->violations());
  checker_->OnConfigurations(0, {a});
  ASSERT_TRUE(checker_->failed());
  EXPECT_NE(checker_->violations().front().detail.find("federation generation 2 down to 1"),
            std::string::npos)
      << Listing(checker_->violations());
}

TEST_F(CheckerWorld, CatchesARestartBelowItsDurableFederationGeneration) {
  checker_->SetMembership({"c0", "c1"}, {{"a0", "a1", "a2"}, {"b0", "b1", "b2"}}, {1, 2});
  const core::Configuration a{"c0", 1, {"a0", "a1", "a2"}, 1};
  const core::Configuration b{"c1", 1, {"b0", "b1", "b2"}, 2};
  Apply(0, core::PutConfig{a});
  Apply(0, core::PutConfig{b});
  checker_->OnConfigurations(0, {a, b});
  checker_->OnEngineStart(0);
  checker_->OnConfigurations(0, {a});  // forgot b
  ASSERT_TRUE(checker_->failed());
  EXPECT_NE(checker_->violations().front().detail.find("restarted at federation generation 1"),
            std::string::npos)
      << Listing(checker_->violations());
}

TEST_F(CheckerWorld, CatchesADigestReportingAGenerationNotYetDurable) {
  checker_->SetMembership({"c0", "c1"}, {{"a0", "a1", "a2"}, {"b0", "b1", "b2"}}, {1, 2});
  Apply(0, core::PutConfig{core::Configuration{"c0", 1, {"a0", "a1", "a2"}, 1}});
  core::DigestResponse digest;
  digest.epoch = 1;
  digest.generation = 1;
  checker_->OnRespond(0, digest);
  EXPECT_FALSE(checker_->failed()) << Listing(checker_->violations());
  digest.generation = 2;  // c1's founding set is not durable at a0
  checker_->OnRespond(0, digest);
  ASSERT_TRUE(checker_->failed());
  EXPECT_EQ(checker_->violations().front().invariant, "M");
}

TEST_F(CheckerWorld, CatchesANodeLeftAtAnOlderEpochWithConvergenceOn) {
  UseConvergenceChecker();
  for (int n : {0, 1}) {
    checker_->OnConfigurations(n, {C0(1, {"a0", "a1", "a2"}), C0(2, {"a0", "a1"})});
  }
  checker_->OnConfigurations(2, {C0(1, {"a0", "a1", "a2"})});
  checker_->CheckFinal({0, 0, 0, 0, 0, 0});
  ASSERT_TRUE(checker_->failed());
  EXPECT_EQ(checker_->violations().front().invariant, "M") << Listing(checker_->violations());
  EXPECT_NE(checker_->violations().front().detail.find("a2 knows epoch 1"), std::string::npos)
      << Listing(checker_->violations());
}

// docs/design.md: every node keeps its cluster's whole history (recovery
// looks a proposal's epoch up in it). A node at the newest epoch that
// skipped one — it learned the newest as hearsay — has not converged.
TEST_F(CheckerWorld, CatchesANodeMissingAnEpochOfItsHistoryWithConvergenceOn) {
  UseConvergenceChecker();
  const std::vector<core::Configuration> whole = {C0(1, {"a0", "a1", "a2"}), C0(2, {"a0", "a1"}),
                                                  C0(3, {"a0"})};
  checker_->OnConfigurations(0, whole);
  checker_->OnConfigurations(1, whole);
  checker_->OnConfigurations(2, {whole[0], whole[2]});
  checker_->CheckFinal({0, 0, 0, 0, 0, 0});
  ASSERT_TRUE(checker_->failed());
  EXPECT_EQ(checker_->violations().front().invariant, "M") << Listing(checker_->violations());
  EXPECT_NE(
      checker_->violations().front().detail.find("a2 is at epoch 3 of c0 but lacks epoch(s) 2"),
      std::string::npos)
      << Listing(checker_->violations());
}

// Quorums follow the configuration: once epoch 2 of c0 is {a0, a1}, a
// decision of a proposal made under it is chosen by both of them, not by
// any two of the cluster's nodes.
TEST_F(CheckerWorld, CountsAcceptsOverTheProposalsEpoch) {
  checker_->OnConfigurations(0, {C0(1, {"a0", "a1", "a2"}), C0(2, {"a0", "a1"})});
  const core::ProposalId p{"a0", 1, 7, 0, /*epoch=*/2};
  checker_->OnSend(0, core::HandleRequest{core::ReserveOp{"k", "v1", p, 0, 2}});
  core::AcceptorRecord rec{p, core::Ballot{0, "a0"},
                           core::AcceptedValue{{0, "a0"}, core::Decision::kCommit}};
  Apply(2, core::PutAcceptor{rec});  // a2 is no acceptor of epoch 2
  Apply(0, core::PutAcceptor{rec});
  // Not chosen yet: an abort sent now is no contradiction.
  core::AcceptorRecord other = rec;
  other.accepted->decision = core::Decision::kAbort;
  other.promised = other.accepted->ballot = core::Ballot{1, "a1"};
  Apply(1, core::PutAcceptor{other});
  EXPECT_FALSE(checker_->failed()) << Listing(checker_->violations());
  Apply(0, core::PutAcceptor{other});  // a0 and a1 at ballot 1: abort chosen
  checker_->OnSend(0, core::HandleRequest{core::AbortOp{"k", p}});
  EXPECT_FALSE(checker_->failed()) << Listing(checker_->violations());
  checker_->OnSend(0, core::HandleRequest{core::CommitOp{"k", "v1", p}});
  ASSERT_TRUE(checker_->failed());
  EXPECT_EQ(checker_->violations().front().invariant, "3") << Listing(checker_->violations());
}

TEST_F(CheckerWorld, CatchesAReservationDroppedWithoutADecision) {
  Apply(3, core::PutReservation{core::Reservation{"k", P(1), "v1", 0}});
  Apply(3, core::DeleteReservation{"k"});
  ASSERT_TRUE(checker_->failed());
  EXPECT_EQ(checker_->violations().front().invariant, "R") << Listing(checker_->violations());
}

// Engines of one shard of a sharded federation (core/shard.h): every node
// runs shard 1 of 3, owning a third of the keys and every system key, and
// the clients use that shard's keys. Clusters are founded, joined and
// removed by the shard's own system keys; every invariant must hold, and
// puts must commit, under every fault.
TEST(SimShards, AShardOfAShardedFederationKeepsEveryInvariant) {
  std::vector<std::string> failures;
  std::string first;
  int ok = 0;
  for (const char* mix : {"all", "membership"}) {
    SimConfig config = SimConfig::ForProfile(mix);
    config.clusters = 3;
    config.shards = 3;
    config.shard = 1;
    for (uint64_t seed = 1; seed <= 30; ++seed) {
      config.seed = seed;
      SimResult result = RunSimulation(config);
      ok += result.stats.puts_ok;
      if (!result.ok()) {
        failures.push_back(config.Reproducer());
        if (first.empty()) first = result.Report();
      }
    }
  }
  std::string all;
  for (const std::string& f : failures) absl::StrAppend(&all, "  ", f, " --trace\n");
  EXPECT_TRUE(failures.empty()) << failures.size() << " of 60 seeds failed:\n" << all << first;
  EXPECT_GT(ok, 100) << "too few puts committed for the runs to show anything";
}

}  // namespace
}  // namespace replicator::sim
