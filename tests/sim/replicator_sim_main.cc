// replicator-sim: runs the deterministic simulation for one seed or a sweep
// of many and exits non-zero when any run violates an invariant.
//
//   replicator-sim --seed=42 --clusters=3 --nodes=3 --faults=crash --trace
//   replicator-sim --seeds=1000 --seed-start=1 --faults=all
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "sim/simulator.h"

namespace {

constexpr char kUsage[] =
    "usage: replicator-sim [--seed=N | --seeds=K [--seed-start=S] | --seeds=A..B]\n"
    "         [--clusters C] [--nodes N]\n"
    "         [--faults none|net|partition|crash|all] [--clients K] [--keys K] [--ops N]\n"
    "         [--lease-ms MS] [--catchup-ms MS] [--no-converge] [--trace] [--tail N]\n"
    "         [--verbose] [--fingerprint] [--net-ms MIN..MAX] [--no-race-check]\n"
    "         [--inject-violation]\n"
    "  --seed=N        run one seed (default 1)\n"
    "  --seeds=K       run K seeds, from --seed-start (default 1)\n"
    "  --seeds=A..B    run seeds A through B inclusive\n"
    "  --net-ms A..B   one-way network delay range, overriding the profile's\n"
    "  --catchup-ms MS  interval of the engines' periodic catch-up rounds (default 2000)\n"
    "  --no-converge   do not require every node to hold every committed key at the end\n"
    "                  (invariant 5 in full, by catch-up; on by default)\n"
    "  --no-race-check after the quiet phase, do not require the race of every node on\n"
    "                  one fresh key to produce exactly one ok (liveness; see README)\n"
    "  --trace         print every simulated event\n"
    "  --tail N        events of trace tail in a failure report (default 50)\n"
    "  --verbose       print a line per passing seed too\n"
    "  --fingerprint   print each run's trace hash (same seed, same hash)\n"
    "  --inject-violation  after each run, commit a second value for a key at one node\n"
    "                  (checks that violations are reported and fail the exit status)\n"
    "exit status: 0 every run passed, 1 some run violated an invariant, 2 usage error\n";

int Usage(const std::string& error) {
  if (!error.empty()) std::fprintf(stderr, "replicator-sim: %s\n", error.c_str());
  std::fprintf(stderr, "%s", kUsage);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  using replicator::sim::SimConfig;
  using replicator::sim::SimResult;
  SimConfig config;
  uint64_t first = 1, last = 1;
  uint64_t count = 0;  // --seeds=K
  uint64_t start = 1;  // --seed-start=S
  bool verbose = false, fingerprint = false, inject = false;
  std::string profile = "none";
  replicator::core::TimeMs net_min = -1, net_max = -1;
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
      good = next(&profile) && SimConfig().SetProfile(profile);
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
    } else if (arg == "--trace") {
      config.trace = true;
    } else if (arg == "--verbose") {
      verbose = true;
    } else if (arg == "--fingerprint") {
      fingerprint = true;
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
  config.SetProfile(profile);
  if (net_min >= 0) {
    config.fault.net_min_ms = net_min;
    config.fault.net_max_ms = net_max;
  }

  uint64_t passed = 0, failed = 0;
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
    if (result.ok()) {
      passed++;
      if (verbose || first == last) std::printf("%s", result.Report().c_str());
    } else {
      failed++;
      std::printf("%s", result.Report().c_str());
    }
    if (fingerprint) {
      std::printf("seed %llu fingerprint %016llx\n", static_cast<unsigned long long>(seed),
                  static_cast<unsigned long long>(result.fingerprint));
    }
    std::fflush(stdout);
    if (seed == last) break;
  }
  if (first != last) {
    std::printf("%llu/%llu seeds passed (--clusters %d --nodes %d --faults %s)\n",
                static_cast<unsigned long long>(passed),
                static_cast<unsigned long long>(passed + failed), config.clusters,
                config.nodes_per_cluster, config.faults.c_str());
  }
  return failed == 0 ? 0 : 1;
}
