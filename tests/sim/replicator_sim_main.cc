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
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "sim/simulator.h"

namespace {

using replicator::sim::SimConfig;
using replicator::sim::SimResult;

constexpr char kUsage[] =
    "usage: replicator-sim [--seed=N | --seeds=K [--seed-start=S] | --seeds=A..B]\n"
    "         [--clusters=C] [--nodes=N] [--faults=MIX[,MIX...]] [--clients=K] [--keys=K]\n"
    "         [--ops=N] [--lease-ms=MS] [--catchup-ms=MS] [--catchup-page-bytes=B]\n"
    "         [--shards=N --shard=I]\n"
    "         [--net-ms=MIN..MAX]\n"
    "         [--down-max-ms=MS] [--spares=N] [--new-clusters=N] [--no-converge]\n"
    "         [--no-race-check] [--trace]\n"
    "         [--tail=N] [--verbose] [--digests] [--unsafe=MODE] [--unsafe-sync-lag-ms=MS]\n"
    "         [--no-ok-durability-check] [--inject-violation]\n"
    "  --seed=N        run one seed (default 1); prints its report and history digest\n"
    "  --seeds=K       run K seeds, from --seed-start (default 1)\n"
    "  --seeds=A..B    run seeds A through B inclusive\n"
    "  --faults=MIX    fault mix: none, net, partition, crash, membership, all; a comma\n"
    "                  list runs the seeds under each mix and prints one liveness line per mix\n"
    "  --net-ms=A..B   one-way network delay range, overriding the mix's\n"
    "  --down-max-ms=MS  longest a crashed node stays down, overriding the mix's\n"
    "  --spares=N      spare nodes per cluster that join during the run, overriding the\n"
    "                  mix's (membership: 2, all: 1, others: 0)\n"
    "  --new-clusters=N  clusters founded mid-run, after the --clusters=C ones, overriding\n"
    "                  the mix's (membership, all: 1, others: 0)\n"
    "  --catchup-ms=MS interval of the engines' periodic catch-up rounds (default 2000)\n"
    "  --catchup-page-bytes=B  keys and values per catch-up page (default: the engine's,\n"
    "                  1 MiB); small pages end inside a range of buckets and resume\n"
    "  --shards=N --shard=I  every engine is shard I of N (core/shard.h): it owns that\n"
    "                  shard's keys and the system keys, and the clients use only those\n"
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
    "  --unsafe=skip-settle | --unsafe=ignore-epoch | --unsafe=skip-federation-settle\n"
    "                  a broken membership rule in every engine: an acceptor votes on the\n"
    "                  next configuration without having settled the current epoch, a\n"
    "                  voter votes under whatever epoch a request names, or a voter of a\n"
    "                  cluster founded mid-run answers reads before it caught up with the\n"
    "                  federation\n"
    "  --unsafe=forget-decided\n"
    "                  a broken acceptor rule in every engine: an acceptor drops its record of\n"
    "                  a decision when the key commits, then answers as if it had never\n"
    "                  voted, rather than from the committed entry\n"
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

struct Flags {
  SimConfig config;
  uint64_t first = 1, last = 1;
  uint64_t count = 0;  // --seeds=K
  uint64_t start = 1;  // --seed-start=S
  bool verbose = false, digests = false, inject = false;
  std::string faults = "none";
  replicator::core::TimeMs net_min = -1, net_max = -1, down_max = -1;
  int spares = -1;
  int new_clusters = -1;
};

// The command line, one argument at a time: "--name=value" is split into its
// name and value; otherwise a flag's value is the next argument.
class Args {
 public:
  Args(int argc, char** argv) : argc_(argc), argv_(argv) {}

  bool Next() {
    if (++i_ >= argc_) return false;
    name_ = argv_[i_];
    value_.clear();
    has_value_ = false;
    if (auto eq = name_.find('='); eq != std::string::npos && name_.rfind("--", 0) == 0) {
      value_ = name_.substr(eq + 1);
      name_ = name_.substr(0, eq);
      has_value_ = true;
    }
    return true;
  }
  const std::string& name() const { return name_; }
  bool Value(std::string* out) {
    if (has_value_) {
      *out = value_;
      return true;
    }
    if (i_ + 1 >= argc_) return false;
    *out = argv_[++i_];
    return true;
  }
  template <typename T>
  bool Number(T* out) {
    std::string text;
    if (!Value(&text)) return false;
    return absl::SimpleAtoi(text, out);
  }

 private:
  int argc_;
  char** argv_;
  int i_ = 0;
  std::string name_, value_;
  bool has_value_ = false;
};

// What one flag did; kUnknown also means "not this parser's flag".
enum class Parsed { kGood, kBadValue, kUnknown };

Parsed Good(bool good) { return good ? Parsed::kGood : Parsed::kBadValue; }

Parsed ParseSeedFlag(Args& args, Flags* f) {
  const std::string& arg = args.name();
  if (arg == "--seed") {
    const bool good = args.Number(&f->first);
    f->last = f->first;
    f->count = 0;
    return Good(good);
  }
  if (arg == "--seeds") {
    std::string text;
    bool good = args.Value(&text);
    std::vector<std::string> parts = absl::StrSplit(text, "..");
    if (parts.size() == 1) {
      good = good && absl::SimpleAtoi(parts[0], &f->count) && f->count >= 1;
    } else {
      f->count = 0;
      good = good && parts.size() == 2 && absl::SimpleAtoi(parts[0], &f->first) &&
             absl::SimpleAtoi(parts[1], &f->last) && f->first <= f->last;
    }
    return Good(good);
  }
  if (arg == "--seed-start") return Good(args.Number(&f->start));
  return Parsed::kUnknown;
}

Parsed ParseFaultFlag(Args& args, Flags* f) {
  const std::string& arg = args.name();
  if (arg == "--faults") {
    bool good = args.Value(&f->faults);
    for (const std::string& mix : std::vector<std::string>(absl::StrSplit(f->faults, ','))) {
      good = good && SimConfig().SetProfile(mix);
    }
    return Good(good);
  }
  if (arg == "--net-ms") {
    std::string text;
    const bool good = args.Value(&text);
    std::vector<std::string> parts = absl::StrSplit(text, "..");
    return Good(good && parts.size() == 2 && absl::SimpleAtoi(parts[0], &f->net_min) &&
                absl::SimpleAtoi(parts[1], &f->net_max) && 0 <= f->net_min &&
                f->net_min <= f->net_max);
  }
  if (arg == "--down-max-ms") return Good(args.Number(&f->down_max) && f->down_max >= 0);
  if (arg == "--spares") return Good(args.Number(&f->spares) && f->spares >= 0);
  if (arg == "--new-clusters") {
    return Good(args.Number(&f->new_clusters) && f->new_clusters >= 0);
  }
  return Parsed::kUnknown;
}

Parsed ParseShapeFlag(Args& args, SimConfig* c) {
  const std::string& arg = args.name();
  if (arg == "--clusters") return Good(args.Number(&c->clusters) && c->clusters >= 1);
  if (arg == "--nodes") {
    return Good(args.Number(&c->nodes_per_cluster) && c->nodes_per_cluster >= 1);
  }
  if (arg == "--clients") return Good(args.Number(&c->clients) && c->clients >= 1);
  if (arg == "--keys") return Good(args.Number(&c->keys) && c->keys >= 1);
  if (arg == "--ops") return Good(args.Number(&c->ops) && c->ops >= 0);
  if (arg == "--lease-ms") return Good(args.Number(&c->lease_ms) && c->lease_ms > 0);
  if (arg == "--catchup-ms") {
    return Good(args.Number(&c->catchup_interval_ms) && c->catchup_interval_ms >= 0);
  }
  if (arg == "--catchup-page-bytes") return Good(args.Number(&c->catchup_page_bytes));
  if (arg == "--shards") {
    return Good(args.Number(&c->shards) && !replicator::core::ValidateShardCount(c->shards));
  }
  if (arg == "--shard")
    return Good(args.Number(&c->shard) && c->shard < replicator::core::kMaxShards);
  return Parsed::kUnknown;
}

Parsed ParseCheckFlag(Args& args, SimConfig* c) {
  const std::string& arg = args.name();
  if (arg == "--converge") {
    c->check_convergence = true;  // the default; kept for old reproducer lines
  } else if (arg == "--no-converge") {
    c->check_convergence = false;
  } else if (arg == "--no-race-check") {
    c->check_race = false;
  } else if (arg == "--unsafe") {
    return Good(args.Value(&c->unsafe) && SimConfig::ValidUnsafe(c->unsafe));
  } else if (arg == "--unsafe-sync-lag-ms") {
    return Good(args.Number(&c->unsafe_sync_lag_ms) && c->unsafe_sync_lag_ms >= 0);
  } else if (arg == "--no-ok-durability-check") {
    c->check_durable_at_ok = false;
  } else {
    return Parsed::kUnknown;
  }
  return Parsed::kGood;
}

Parsed ParseOutputFlag(Args& args, Flags* f) {
  const std::string& arg = args.name();
  if (arg == "--tail") return Good(args.Number(&f->config.trace_tail));
  if (arg == "--trace") {
    f->config.trace = true;
  } else if (arg == "--verbose") {
    f->verbose = true;
  } else if (arg == "--digests" || arg == "--fingerprint") {
    f->digests = true;
  } else if (arg == "--inject-violation") {
    f->inject = true;
  } else {
    return Parsed::kUnknown;
  }
  return Parsed::kGood;
}

Parsed ParseFlag(Args& args, Flags* f) {
  Parsed p = ParseSeedFlag(args, f);
  if (p == Parsed::kUnknown) p = ParseFaultFlag(args, f);
  if (p == Parsed::kUnknown) p = ParseShapeFlag(args, &f->config);
  if (p == Parsed::kUnknown) p = ParseCheckFlag(args, &f->config);
  if (p == Parsed::kUnknown) p = ParseOutputFlag(args, f);
  return p;
}

// Parses the command line into `f`. Returns the exit status when the
// program should stop (help printed, or a usage error), nullopt to run.
std::optional<int> ParseFlags(int argc, char** argv, Flags* f) {
  Args args(argc, argv);
  while (args.Next()) {
    const std::string& arg = args.name();
    if (arg == "--help" || arg == "-h") {
      std::printf("%s", kUsage);
      return 0;
    }
    switch (ParseFlag(args, f)) {
      case Parsed::kGood:
        break;
      case Parsed::kBadValue:
        return Usage("bad value for " + arg);
      case Parsed::kUnknown:
        return Usage("unknown argument " + arg);
    }
  }
  if (f->config.shard >= f->config.shards) return Usage("--shard must be below --shards");
  if (f->count > 0) {
    f->first = f->start;
    f->last = f->start + f->count - 1;
  }
  return std::nullopt;
}

// The runs so far, over every mix.
struct Totals {
  uint64_t passed = 0, failed = 0;
  uint64_t sweep_digest = 1469598103934665603ull;  // FNV-1a offset basis
  uint64_t single_digest = 0;                      // the last run's
};

// One seed's run; with `inject`, a passing run then gets a second committed
// value for one key, which the checker must report.
SimResult RunSeed(const SimConfig& config, bool inject) {
  replicator::sim::Simulator sim(config);
  SimResult result = sim.Run();
  if (inject && result.ok()) {
    const auto& committed = sim.store(0).committed();
    const std::string key = committed.empty() ? "injected" : committed.begin()->first;
    if (committed.empty()) {
      sim.InjectMutationForTest(0, replicator::core::PutCommitted{key, "first", 0, {}});
    }
    sim.InjectMutationForTest(sim.node_count() - 1,
                              replicator::core::PutCommitted{key, "injected-second", 0, {}});
    result = sim.Result();
  }
  return result;
}

void AddMembership(const replicator::sim::SimStats& s, replicator::sim::SimStats* sum) {
  sum->joins += s.joins;
  sum->epochs_gained += s.epochs_gained;
  sum->promotions += s.promotions;
  sum->spare_founders += s.spare_founders;
  sum->removals += s.removals;
  sum->changes += s.changes;
  sum->changes_ok += s.changes_ok;
  sum->changes_refused += s.changes_refused;
  sum->changes_busy += s.changes_busy;
  sum->changes_unavailable += s.changes_unavailable;
  sum->changes_lost += s.changes_lost;
  sum->replacements += s.replacements;
  sum->pauses += s.pauses;
  sum->pauses_across_changes += s.pauses_across_changes;
  sum->foundings += s.foundings;
  sum->late_learners += s.late_learners;
  sum->retirements += s.retirements;
  sum->cluster_removals_asked += s.cluster_removals_asked;
}

void PrintSeed(const Flags& f, bool sweep, uint64_t seed, const SimResult& result) {
  if (!result.ok() || f.verbose || !sweep) std::printf("%s", result.Report().c_str());
  if (f.digests && sweep) {
    std::printf("seed %llu %s\n", static_cast<unsigned long long>(seed),
                result.DigestLine().c_str());
  }
  std::fflush(stdout);
}

void PrintMixSummary(const SimConfig& config, const std::string& mix, uint64_t passed,
                     uint64_t failed, double seconds) {
  const std::string shape =
      absl::StrCat("--clusters=", config.clusters, " --nodes=", config.nodes_per_cluster,
                   " --faults=", mix, config.unsafe.empty() ? "" : " --unsafe=", config.unsafe);
  std::string summary =
      absl::StrCat(passed, "/", passed + failed, " seeds passed (", shape, ") in ",
                   absl::StrFormat("%.1f s, %.1f seeds/s", seconds, (passed + failed) / seconds));
  std::printf("%s\n", summary.c_str());
}

// Every seed of `f` under fault mix `mix`. `config` carries over from one
// mix to the next, as the flags left it.
void RunMix(const Flags& f, const std::string& mix, bool many_mixes, SimConfig* config,
            Totals* totals) {
  config->SetProfile(mix);
  if (f.net_min >= 0) {
    config->fault.net_min_ms = f.net_min;
    config->fault.net_max_ms = f.net_max;
  }
  if (f.down_max >= 0) config->fault.down_max_ms = f.down_max;
  if (f.spares >= 0) config->fault.spares = f.spares;
  if (f.new_clusters >= 0) config->fault.new_clusters = f.new_clusters;
  const bool sweep = f.first != f.last;
  uint64_t passed = 0, failed = 0;
  replicator::sim::Liveness liveness;
  replicator::sim::SimStats membership;  // the membership counts, summed
  const auto began = std::chrono::steady_clock::now();
  for (uint64_t seed = f.first;; ++seed) {
    config->seed = seed;
    SimResult result = RunSeed(*config, f.inject);
    liveness.Add(result.liveness);
    AddMembership(result.stats, &membership);
    Mix(&totals->sweep_digest, result.history_digest);
    totals->single_digest = result.history_digest;
    if (result.ok()) {
      passed++;
    } else {
      failed++;
    }
    PrintSeed(f, sweep, seed, result);
    if (seed == f.last) break;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - began).count();
  totals->passed += passed;
  totals->failed += failed;
  if (sweep) PrintMixSummary(*config, mix, passed, failed, seconds);
  if (sweep || many_mixes) {
    std::printf("liveness %s: %s\n", mix.c_str(), liveness.ToString().c_str());
    const replicator::sim::SimStats& m = membership;
    if (m.joins + m.changes + m.pauses + m.foundings > 0) {
      std::printf(
          "membership %s: joins %d, foundings %d (late learners %d, spares founding %d), "
          "epochs gained %d "
          "(promotions %d, removals %d); changes %d (ok %d, refused %d, busy %d, unavailable %d, "
          "lost %d; replacements %d); pauses %d (across 2+ changes %d); clusters retired %d "
          "(removals asked %d)\n",
          mix.c_str(), m.joins, m.foundings, m.late_learners, m.spare_founders, m.epochs_gained,
          m.promotions, m.removals, m.changes, m.changes_ok, m.changes_refused, m.changes_busy,
          m.changes_unavailable, m.changes_lost, m.replacements, m.pauses, m.pauses_across_changes,
          m.retirements, m.cluster_removals_asked);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  if (std::optional<int> status = ParseFlags(argc, argv, &flags)) return *status;
  const bool sweep = flags.first != flags.last;
  std::vector<std::string> mixes = absl::StrSplit(flags.faults, ',');
  SimConfig config = flags.config;
  Totals totals;
  for (const std::string& mix : mixes) RunMix(flags, mix, mixes.size() > 1, &config, &totals);
  if (mixes.size() > 1 && sweep) {
    std::printf("total: %llu/%llu runs passed over %zu fault mixes\n",
                static_cast<unsigned long long>(totals.passed),
                static_cast<unsigned long long>(totals.passed + totals.failed), mixes.size());
  }
  const bool one_run = !sweep && mixes.size() == 1;
  std::printf(
      "history digest: %016llx\n",
      static_cast<unsigned long long>(one_run ? totals.single_digest : totals.sweep_digest));
  return totals.failed == 0 ? 0 : 1;
}
