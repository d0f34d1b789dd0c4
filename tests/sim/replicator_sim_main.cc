// replicator-sim: runs the deterministic simulation for one seed or a sweep
// of many, over one or several fault mixes, and exits non-zero when any run
// violates an invariant. Every invocation prints `history digest: HEX`: the
// run's (or, for a sweep, the digest of every run's, in order), identical
// on every replay with the same flags.
//
//   replicator-sim --seed=42 --clusters=3 --nodes=3 --faults=crash --trace
//   replicator-sim --seeds=1000 --seed-start=1 --faults=none,net,partition,crash,all
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "sim/simulator.h"

namespace {

constexpr char kUsage[] =
    "usage: replicator-sim [--seed=N | --seeds=K [--seed-start=S] | --seeds=A..B]\n"
    "         [--clusters=C] [--nodes=N] [--faults=MIX[,MIX...]] [--clients=K] [--keys=K]\n"
    "         [--ops=N] [--lease-ms=MS] [--catchup-ms=MS] [--net-ms=MIN..MAX]\n"
    "         [--down-max-ms=MS] [--no-converge] [--no-race-check] [--trace] [--tail=N]\n"
    "         [--verbose] [--digests] [--unsafe=MODE] [--unsafe-sync-lag-ms=MS]\n"
    "         [--no-ok-durability-check] [--inject-violation]\n"
    "  --seed=N        run one seed (default 1); prints its report and history digest\n"
    "  --seeds=K       run K seeds, from --seed-start (default 1)\n"
    "  --seeds=A..B    run seeds A through B inclusive\n"
    "  --faults=MIX    fault mix: none, net, partition, crash, all; a comma list runs the\n"
    "                  seeds under each mix and prints one liveness line per mix\n"
    "  --net-ms=A..B   one-way network delay range, overriding the mix's\n"
    "  --down-max-ms=MS  longest a crashed node stays down, overriding the mix's\n"
    "  --catchup-ms=MS interval of the engines' periodic catch-up rounds (default 2000)\n"
    "  --no-converge   do not require every node to hold every committed key at the end\n"
    "                  (invariant 5 in full, by catch-up; on by default)\n"
    "  --no-race-check after the quiet phase, do not require the race of every node on\n"
    "                  one fresh key to produce exactly one ok (liveness; see README)\n"
    "  --trace         print every simulated event\n"
    "  --tail=N        events in a failure report whose violation names no key (default 50)\n"
    "  --verbose       print the report of every seed, passing ones too\n"
    "  --digests       print every seed's history digest\n"
    "  --unsafe=no-sync-before-vote\n"
    "                  a broken disk: writes are acknowledged before they are synced (the\n"
    "                  sync follows within --unsafe-sync-lag-ms, default 3000) and a crash\n"
    "                  loses the unsynced ones; the checker must report violations\n"
    "  --no-ok-durability-check  skip invariant 4 at each ok (then only the consequences\n"
    "                  of a lost write can fail the run)\n"
    "  --inject-violation  after each run, commit a second value for a key at one node\n"
    "                  (checks that violations are reported and fail the exit status)\n"
    "exit status: 0 every run passed, 1 some run violated an invariant, 2 usage error\n";

int Usage(const std::string& error) {
  if (!error.empty()) std::fprintf(stderr, "replicator-sim: %s\n", error.c_str());
  std::fprintf(stderr, "%s", kUsage);
  return 2;
}

void Mix(uint64_t* digest, uint64_t value) {
  for (int i = 0; i < 8; ++i) {
    *digest ^= (value >> (8 * i)) & 0xff;
    *digest *= 1099511628211ull;
  }
}

}  // namespace

int main(int argc, char** argv) {
  using replicator::sim::Liveness;
  using replicator::sim::SimConfig;
  using replicator::sim::SimResult;
  SimConfig config;
  uint64_t first = 1, last = 1;
  uint64_t count = 0;  // --seeds=K
  uint64_t start = 1;  // --seed-start=S
  bool verbose = false, digests = false, inject = false;
  std::string faults = "none";
  replicator::core::TimeMs net_min = -1, net_max = -1, down_max = -1;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    std::string value;
    bool has_value = false;
    if (auto eq = arg.find('='); eq != std::string::npos && arg.rfind("--", 0) == 0) {
      value = arg.substr(eq + 1);
      arg = arg.substr(0, eq);
      has_value = true;
    }
    auto next = [&](std::string* out) {
      if (has_value) {
        *out = value;
        return true;
      }
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    auto number = [&](auto* out) {
      std::string text;
      if (!next(&text)) return false;
      return absl::SimpleAtoi(text, out);
    };
    bool good = true;
    if (arg == "--help" || arg == "-h") {
      std::printf("%s", kUsage);
      return 0;
    } else if (arg == "--seed") {
      good = number(&first);
      last = first;
      count = 0;
    } else if (arg == "--seeds") {
      std::string text;
      good = next(&text);
      std::vector<std::string> parts = absl::StrSplit(text, "..");
      if (parts.size() == 1) {
        good = good && absl::SimpleAtoi(parts[0], &count) && count >= 1;
      } else {
        count = 0;
        good = good && parts.size() == 2 && absl::SimpleAtoi(parts[0], &first) &&
               absl::SimpleAtoi(parts[1], &last) && first <= last;
      }
    } else if (arg == "--seed-start") {
      good = number(&start);
    } else if (arg == "--clusters") {
      good = number(&config.clusters) && config.clusters >= 1;
    } else if (arg == "--nodes") {
      good = number(&config.nodes_per_cluster) && config.nodes_per_cluster >= 1;
    } else if (arg == "--faults") {
      good = next(&faults);
      for (const std::string& mix : std::vector<std::string>(absl::StrSplit(faults, ','))) {
        good = good && SimConfig().SetProfile(mix);
      }
    } else if (arg == "--clients") {
      good = number(&config.clients) && config.clients >= 1;
    } else if (arg == "--keys") {
      good = number(&config.keys) && config.keys >= 1;
    } else if (arg == "--ops") {
      good = number(&config.ops) && config.ops >= 0;
    } else if (arg == "--net-ms") {
      std::string text;
      good = next(&text);
      std::vector<std::string> parts = absl::StrSplit(text, "..");
      good = good && parts.size() == 2 && absl::SimpleAtoi(parts[0], &net_min) &&
             absl::SimpleAtoi(parts[1], &net_max) && 0 <= net_min && net_min <= net_max;
    } else if (arg == "--down-max-ms") {
      good = number(&down_max) && down_max >= 0;
    } else if (arg == "--lease-ms") {
      good = number(&config.lease_ms) && config.lease_ms > 0;
    } else if (arg == "--tail") {
      good = number(&config.trace_tail);
    } else if (arg == "--converge") {
      config.check_convergence = true;  // the default; kept for old reproducer lines
    } else if (arg == "--no-converge") {
      config.check_convergence = false;
    } else if (arg == "--catchup-ms") {
      good = number(&config.catchup_interval_ms) && config.catchup_interval_ms >= 0;
    } else if (arg == "--no-race-check") {
      config.check_race = false;
    } else if (arg == "--unsafe") {
      good = next(&config.unsafe) && SimConfig::ValidUnsafe(config.unsafe);
    } else if (arg == "--unsafe-sync-lag-ms") {
      good = number(&config.unsafe_sync_lag_ms) && config.unsafe_sync_lag_ms >= 0;
    } else if (arg == "--no-ok-durability-check") {
      config.check_durable_at_ok = false;
    } else if (arg == "--trace") {
      config.trace = true;
    } else if (arg == "--verbose") {
      verbose = true;
    } else if (arg == "--digests" || arg == "--fingerprint") {
      digests = true;
    } else if (arg == "--inject-violation") {
      inject = true;
    } else {
      return Usage("unknown argument " + arg);
    }
    if (!good) return Usage("bad value for " + arg);
  }
  if (count > 0) {
    first = start;
    last = start + count - 1;
  }
  const bool sweep = first != last;
  std::vector<std::string> mixes = absl::StrSplit(faults, ',');

  uint64_t total_passed = 0, total_failed = 0;
  uint64_t sweep_digest = 1469598103934665603ull;
  uint64_t single_digest = 0;
  std::vector<std::string> summaries;
  for (const std::string& mix : mixes) {
    config.SetProfile(mix);
    if (net_min >= 0) {
      config.fault.net_min_ms = net_min;
      config.fault.net_max_ms = net_max;
    }
    if (down_max >= 0) config.fault.down_max_ms = down_max;
    uint64_t passed = 0, failed = 0;
    Liveness liveness;
    const auto began = std::chrono::steady_clock::now();
    for (uint64_t seed = first;; ++seed) {
      config.seed = seed;
      replicator::sim::Simulator sim(config);
      SimResult result = sim.Run();
      if (inject && result.ok()) {
        const auto& committed = sim.store(0).committed();
        const std::string key = committed.empty() ? "injected" : committed.begin()->first;
        if (committed.empty()) {
          sim.InjectMutationForTest(0, replicator::core::PutCommitted{key, "first"});
        }
        sim.InjectMutationForTest(sim.node_count() - 1,
                                  replicator::core::PutCommitted{key, "injected-second"});
        result = sim.Result();
      }
      liveness.Add(result.liveness);
      Mix(&sweep_digest, result.history_digest);
      single_digest = result.history_digest;
      if (result.ok()) {
        passed++;
        if (verbose || !sweep) std::printf("%s", result.Report().c_str());
      } else {
        failed++;
        std::printf("%s", result.Report().c_str());
      }
      if (digests && sweep) {
        std::printf("seed %llu %s\n", static_cast<unsigned long long>(seed),
                    result.DigestLine().c_str());
      }
      std::fflush(stdout);
      if (seed == last) break;
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
    total_passed += passed;
    total_failed += failed;
    if (sweep) {
      const std::string shape =
          absl::StrCat("--clusters=", config.clusters, " --nodes=", config.nodes_per_cluster,
                       " --faults=", mix, config.unsafe.empty() ? "" : " --unsafe=", config.unsafe);
      std::string summary = absl::StrCat(
          passed, "/", passed + failed, " seeds passed (", shape, ") in ",
          absl::StrFormat("%.1f s, %.1f seeds/s", seconds, (passed + failed) / seconds));
      std::printf("%s\n", summary.c_str());
      std::printf("liveness %s: %s\n", mix.c_str(), liveness.ToString().c_str());
      summaries.push_back(std::move(summary));
    } else if (mixes.size() > 1) {
      std::printf("liveness %s: %s\n", mix.c_str(), liveness.ToString().c_str());
    }
  }
  if (mixes.size() > 1 && sweep) {
    std::printf("total: %llu/%llu runs passed over %zu fault mixes\n",
                static_cast<unsigned long long>(total_passed),
                static_cast<unsigned long long>(total_passed + total_failed), mixes.size());
  }
  const bool one_run = !sweep && mixes.size() == 1;
  std::printf("history digest: %016llx\n",
              static_cast<unsigned long long>(one_run ? single_digest : sweep_digest));
  return total_failed == 0 ? 0 : 1;
}
