// replicator-bench: load against a Replicator deployment, with throughput,
// latency percentiles, a count per outcome and a correctness check of its
// own. See bench/README.md.
//
//   build/bin/replicator-bench --local=1x3 --workload=put --concurrency=64 --duration=10s
//   build/bin/replicator-bench --nodes=127.0.0.1:7001,127.0.0.1:7002 --workload=get
//
// --local=CxN starts C clusters of N real replicatord processes on loopback
// and stops them by PID afterwards. Exit: 0 clean, 1 usage or a run that
// could not start or finish, 2 correctness violations.
#include <unistd.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "bench.h"
#include "fmt/format.h"
#include "net/reactor.h"
#include "node/local_deployment.h"
#include "node/tls_files.h"
#include "report.h"
#include "util/dashed_flags.h"
#include "util/duration_flag.h"
#include "util/help.h"

ABSL_FLAG(std::string, nodes, "", "Comma-separated HOST:PORT of running nodes to load.");
ABSL_FLAG(std::string, local, "",
          "CxN: start C clusters of N replicatord processes on 127.0.0.1 and stop them after "
          "(the default, 1x3, when --nodes is not given).");
ABSL_FLAG(std::string, storage, "rocksdb", "--local nodes' storage: rocksdb (synced) or memory.");
ABSL_FLAG(std::vector<std::string>, node_flags, {},
          "Comma-separated extra flags for every --local node (e.g. --lease-ms=5000).");
ABSL_FLAG(bool, keep, false, "Keep the --local nodes' data directories and logs.");
ABSL_FLAG(std::string, workload, "put",
          "put (unique keys), conflict, get, mixed, or echo (Node.echo: the transport alone).");
ABSL_FLAG(double, conflict_ratio, 0.5,
          "conflict: share of puts aimed at a key put a moment ago (taken or contended).");
ABSL_FLAG(double, read_ratio, 0.9, "mixed: share of gets (of keys answered ok).");
ABSL_FLAG(std::string, consistency, "local", "get and mixed: local or linearizable.");
ABSL_FLAG(int, concurrency, 64, "Calls in flight.");
ABSL_FLAG(replicator::util::Seconds, duration, {},
          "Length of the timed phase (seconds, or 10s, 500ms, 2m); default 10s unless --ops "
          "is given.");
ABSL_FLAG(replicator::util::Seconds, warmup, {},
          "Calls of the workload before the timed phase: checked, not reported (seconds, or "
          "1s, 500ms).");
ABSL_FLAG(uint64_t, ops, 0, "Calls in the timed phase; 0: bounded by --duration only.");
ABSL_FLAG(uint64_t, max_ops, 20000000, "Hard cap on calls in the timed phase.");
ABSL_FLAG(replicator::util::Seconds, hard_timeout, replicator::util::Seconds{absl::Seconds(300)},
          "Bound on the whole run: start, preload, timed phase, read-back (seconds, or 5m).");
ABSL_FLAG(uint64_t, preload, 10000, "get and mixed: keys put before the timed phase.");
ABSL_FLAG(int, key_size, 16, "Key size in bytes (at least 16).");
ABSL_FLAG(int, value_size, 100, "Value (and echo payload) size in bytes.");
ABSL_FLAG(uint64_t, seed, 0, "Seed of keys, values and the mix of calls; 0: random (printed).");
ABSL_FLAG(int, connections, 1, "Connections per node; calls go round-robin over all of them.");
ABSL_FLAG(bool, coalesce, false,
          "Coalesce the calls made in one turn of the client's loop on one connection into one "
          "putMany/getMany message (ClientOptions::coalesce).");
ABSL_FLAG(bool, echo_baseline, false,
          "After the timed phase, as long again of Node.echo at the same concurrency: what the "
          "transport allows, measured in the same run.");
ABSL_FLAG(bool, verify, true, "Read back every key answered ok after the timed phase.");
ABSL_FLAG(std::string, json, "", "Also write the results to this file as JSON.");
ABSL_FLAG(std::string, histogram_out, "",
          "Also write the timed phase's latency histogram to this file as CSV "
          "(lower_ms,upper_ms,count,cumulative_fraction; one line per non-empty bucket).");
ABSL_FLAG(std::string, certs_dir, "",
          "--nodes: directory with ca.crt and client.USER.crt/.key (see `replicator cert`). "
          "--local creates its own CA and certificates.");
ABSL_FLAG(std::string, user, "root", "--nodes: client name whose certificate --certs-dir holds.");
ABSL_FLAG(std::string, ca, "", "--nodes: CA certificate file (overrides --certs-dir's).");
ABSL_FLAG(std::string, cert, "", "--nodes: client certificate file (overrides --certs-dir's).");
ABSL_FLAG(std::string, key, "", "--nodes: client key file (overrides --certs-dir's).");
ABSL_FLAG(bool, insecure, false,
          "Plaintext: --local starts its nodes with --insecure; --nodes connects without TLS.");

namespace {

using replicator::bench::BenchConfig;
using replicator::bench::Target;
using replicator::bench::Workload;

int Usage(const std::string& message) {
  fmt::print(stderr, "replicator-bench: {}\n", message);
  return 1;
}

bool ParseLayout(const std::string& s, int* clusters, int* nodes) {
  std::vector<std::string> parts = absl::StrSplit(s, 'x');
  return parts.size() == 2 && absl::SimpleAtoi(parts[0], clusters) &&
         absl::SimpleAtoi(parts[1], nodes) && *clusters >= 1 && *nodes >= 1 && *clusters <= 16 &&
         *nodes <= 16;
}

// The flags checked below each return the first usage error, or "".

std::string WorkloadFromFlags(BenchConfig* config) {
  std::string workload = absl::GetFlag(FLAGS_workload);
  if (workload == "put") {
    config->workload = Workload::kPut;
  } else if (workload == "conflict") {
    config->workload = Workload::kConflict;
  } else if (workload == "get") {
    config->workload = Workload::kGet;
  } else if (workload == "mixed") {
    config->workload = Workload::kMixed;
  } else if (workload == "echo") {
    config->workload = Workload::kEcho;
  } else {
    return "--workload must be put, conflict, get, mixed or echo";
  }
  std::string consistency = absl::GetFlag(FLAGS_consistency);
  if (consistency != "local" && consistency != "linearizable") {
    return "--consistency must be local or linearizable";
  }
  config->consistency = consistency == "linearizable" ? replicator::Consistency::kLinearizable
                                                      : replicator::Consistency::kLocal;
  config->conflict_ratio = absl::GetFlag(FLAGS_conflict_ratio);
  config->read_ratio = absl::GetFlag(FLAGS_read_ratio);
  if (!(config->conflict_ratio >= 0 && config->conflict_ratio <= 1) ||
      !(config->read_ratio >= 0 && config->read_ratio <= 1)) {
    return "--conflict-ratio and --read-ratio must be within [0, 1]";
  }
  return "";
}

std::string LoadFromFlags(BenchConfig* config) {
  config->concurrency = absl::GetFlag(FLAGS_concurrency);
  if (config->concurrency < 1 || config->concurrency > 100000) {
    return "--concurrency must be within [1, 100000]";
  }
  config->connections_per_node = absl::GetFlag(FLAGS_connections);
  if (config->connections_per_node < 1 || config->connections_per_node > 64) {
    return "--connections must be within [1, 64]";
  }
  return "";
}

std::string LengthFromFlags(BenchConfig* config, absl::Duration* hard_timeout) {
  config->ops = absl::GetFlag(FLAGS_ops);
  config->max_ops = std::max<uint64_t>(1, absl::GetFlag(FLAGS_max_ops));
  absl::Duration duration = absl::GetFlag(FLAGS_duration).value;
  if (duration < absl::ZeroDuration()) return "--duration must not be negative";
  if (duration == absl::ZeroDuration() && config->ops == 0) duration = absl::Seconds(10);
  config->duration = absl::ToChronoNanoseconds(duration);
  absl::Duration warmup = absl::GetFlag(FLAGS_warmup).value;
  if (warmup < absl::ZeroDuration()) return "--warmup must not be negative";
  config->warmup = absl::ToChronoNanoseconds(warmup);
  *hard_timeout = absl::GetFlag(FLAGS_hard_timeout).value;
  if (*hard_timeout <= duration + warmup) {
    return "--hard-timeout must exceed --duration plus --warmup";
  }
  return "";
}

std::string DataFromFlags(BenchConfig* config) {
  config->preload = absl::GetFlag(FLAGS_preload);
  config->key_size = absl::GetFlag(FLAGS_key_size);
  config->value_size = absl::GetFlag(FLAGS_value_size);
  if (config->key_size < replicator::bench::Keyspace::kMinKeySize || config->key_size > 1024) {
    return "--key-size must be within [16, 1024]";
  }
  if (config->value_size < 0 || config->value_size > (1 << 20)) {
    return "--value-size must be within [0, 1048576]";
  }
  config->seed = absl::GetFlag(FLAGS_seed);
  if (config->seed == 0)
    config->seed = (uint64_t{std::random_device{}()} << 32) | std::random_device{}();
  return "";
}

std::string ConfigFromFlags(BenchConfig* config, absl::Duration* hard_timeout) {
  std::string error = WorkloadFromFlags(config);
  if (error.empty()) error = LoadFromFlags(config);
  if (error.empty()) error = LengthFromFlags(config, hard_timeout);
  if (error.empty()) error = DataFromFlags(config);
  if (!error.empty()) return error;
  config->verify = absl::GetFlag(FLAGS_verify);
  config->echo_baseline = absl::GetFlag(FLAGS_echo_baseline);
  config->coalesce = absl::GetFlag(FLAGS_coalesce);
  config->progress = ::isatty(STDERR_FILENO);
  return "";
}

// --nodes, or the layout and storage of --local (1x3 when neither is given).
std::string TargetFromFlags(Target* target) {
  std::string nodes = absl::GetFlag(FLAGS_nodes);
  std::string local = absl::GetFlag(FLAGS_local);
  if (!nodes.empty() && !local.empty()) return "give --nodes or --local, not both";
  if (!nodes.empty()) {
    target->addresses = absl::StrSplit(nodes, ',', absl::SkipEmpty());
    return "";
  }
  if (local.empty()) local = "1x3";
  if (!ParseLayout(local, &target->clusters, &target->nodes_per_cluster)) {
    return "--local must be CxN, e.g. 1x3 (at most 16x16)";
  }
  target->local = local;
  target->storage = absl::GetFlag(FLAGS_storage);
  if (target->storage != "rocksdb" && target->storage != "memory") {
    return "--storage must be rocksdb or memory";
  }
  return "";
}

// The client TLS `flags` name for client `user`; null with --insecure.
absl::StatusOr<std::shared_ptr<const replicator::net::TlsContext>> ClientTls(
    const replicator::node::TlsFlags& flags, const std::string& user) {
  auto paths = replicator::node::ResolveTlsPaths(flags, replicator::node::TlsHolder::Client(user));
  if (!paths.ok()) return paths.status();
  if (!paths->has_value()) return std::shared_ptr<const replicator::net::TlsContext>();
  auto pem = replicator::node::ReadTlsFiles(**paths);
  if (!pem.ok()) return pem.status();
  return replicator::net::TlsContext::Create({pem->ca, pem->cert, pem->key});
}

// Starts the --local nodes with their data under `root`, and points the
// target and config at them.
absl::StatusOr<std::unique_ptr<replicator::node::LocalDeployment>> StartLocal(
    const std::string& root, Target* target, BenchConfig* config) {
  replicator::node::DeploymentOptions options;
  options.clusters = target->clusters;
  options.nodes_per_cluster = target->nodes_per_cluster;
  options.storage = target->storage;
  options.replicatord = replicator::node::ExecutableDir() + "/replicatord";
  options.root_dir = root;
  options.extra_flags = absl::GetFlag(FLAGS_node_flags);
  options.insecure = !target->tls;
  fmt::print(stderr, "replicator-bench: starting {} nodes ({} storage, {}) in {}\n", target->local,
             target->storage, target->tls ? "TLS" : "insecure", root);
  auto deployment = replicator::node::LocalDeployment::Start(options);
  if (!deployment.ok()) return deployment.status();
  if (target->tls) {
    replicator::node::TlsFlags flags;
    flags.certs_dir = (*deployment)->certs_dir();
    auto tls = ClientTls(flags, "root");
    if (!tls.ok()) return tls.status();
    config->tls = *std::move(tls);
  }
  for (const auto& n : (*deployment)->nodes()) {
    target->addresses.push_back(n.address);
    config->node_pids.push_back(n.pid);
  }
  config->expected_voters = target->clusters * target->nodes_per_cluster;
  return deployment;
}

replicator::bench::BenchResult RunBench(const BenchConfig& config) {
  auto reactor = std::make_unique<replicator::net::Reactor>();
  auto bench = std::make_unique<replicator::bench::Bench>(*reactor, config);
  asio::co_spawn(reactor->io(), bench->Run(), asio::detached);
  reactor->Run();
  replicator::bench::BenchResult result = bench->result();
  if (!bench->finished()) {
    // Stopped mid-run: tearing down would resume suspended calls into freed
    // state (see Bench::finished). Report, stop the nodes, and exit.
    (void)bench.release();
    (void)reactor.release();
  }
  return result;
}

// Prints the report and writes the JSON; returns the exit status.
int Report(const BenchConfig& config, const Target& target,
           const replicator::bench::BenchResult& result) {
  PrintReport(stdout, config, target, result);
  std::fflush(stdout);
  int exit_code = result.violations() > 0 ? 2 : result.failure.empty() ? 0 : 1;
  if (std::string json = absl::GetFlag(FLAGS_json); !json.empty()) {
    absl::Status written = WriteJson(json, config, target, result);
    if (!written.ok()) {
      fmt::print(stderr, "replicator-bench: {}\n", std::string(written.message()));
      if (exit_code == 0) exit_code = 1;
    }
  }
  if (std::string csv = absl::GetFlag(FLAGS_histogram_out); !csv.empty()) {
    absl::Status written = WriteHistogramCsv(csv, result.timed.latency);
    if (!written.ok()) {
      fmt::print(stderr, "replicator-bench: {}\n", std::string(written.message()));
      if (exit_code == 0) exit_code = 1;
    }
  }
  return exit_code;
}

// Keeps the --local nodes' directory after a failed run, or with --keep.
void RemoveOrKeep(const std::string& root, int exit_code) {
  if (absl::GetFlag(FLAGS_keep) || exit_code != 0) {
    fmt::print(stderr, "replicator-bench: node data and logs kept in {}\n", root);
  } else {
    std::error_code ec;
    std::filesystem::remove_all(root, ec);
  }
}

}  // namespace

int main(int argc, char** argv) {
  constexpr char kUsage[] =
      "replicator-bench: load a Replicator deployment and report throughput, latency and "
      "outcomes.\n"
      "  replicator-bench --local=1x3 --workload=put --concurrency=64 --duration=10s\n"
      "  replicator-bench --nodes=HOST:PORT,... --workload=get --consistency=local";
  absl::SetProgramUsageMessage(kUsage);
  replicator::util::PrintHelpIfAsked(
      argc, argv, kUsage, __FILE__,
      {{"Target", {"local", "nodes", "storage", "node_flags", "keep", "connections", "coalesce"}},
       {"Workload",
        {"workload", "conflict_ratio", "read_ratio", "consistency", "key_size", "value_size",
         "preload", "seed"}},
       {"Load", {"concurrency", "duration", "warmup", "ops", "max_ops", "hard_timeout"}},
       {"Security", {"certs_dir", "user", "ca", "cert", "key", "insecure"}},
       {"Report", {"verify", "json", "histogram_out", "echo_baseline"}}});
  replicator::util::DashedFlags dashed(argc, argv);
  std::vector<char*> positional = absl::ParseCommandLine(dashed.argc(), dashed.argv());
  if (positional.size() > 1) return Usage(fmt::format("unexpected argument {}", positional[1]));

  BenchConfig config;
  absl::Duration hard_timeout;
  if (std::string error = ConfigFromFlags(&config, &hard_timeout); !error.empty()) {
    return Usage(error);
  }
  Target target;
  if (std::string error = TargetFromFlags(&target); !error.empty()) return Usage(error);
  target.tls = !absl::GetFlag(FLAGS_insecure);
  if (target.local.empty()) {
    replicator::node::TlsFlags flags{absl::GetFlag(FLAGS_ca), absl::GetFlag(FLAGS_cert),
                                     absl::GetFlag(FLAGS_key), absl::GetFlag(FLAGS_certs_dir),
                                     absl::GetFlag(FLAGS_insecure)};
    auto tls = ClientTls(flags, absl::GetFlag(FLAGS_user));
    if (!tls.ok()) return Usage(std::string(tls.status().message()));
    config.tls = *std::move(tls);
  } else if (!absl::GetFlag(FLAGS_certs_dir).empty() || !absl::GetFlag(FLAGS_ca).empty() ||
             !absl::GetFlag(FLAGS_cert).empty() || !absl::GetFlag(FLAGS_key).empty()) {
    return Usage(
        "--local creates its own certificates: --certs-dir, --ca, --cert and --key "
        "are for --nodes");
  }
  std::unique_ptr<replicator::node::LocalDeployment> deployment;
  std::string root;
  if (!target.local.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp && *tmp ? tmp : "/tmp") + "/replicator-bench-XXXXXX";
    if (!::mkdtemp(tmpl.data())) return Usage("cannot create a directory under " + tmpl);
    root = tmpl;
    auto started = StartLocal(root, &target, &config);
    if (!started.ok()) {
      fmt::print(stderr, "replicator-bench: {}\n", std::string(started.status().message()));
      return 1;
    }
    deployment = std::move(*started);
  }
  config.addresses = target.addresses;
  config.hard_deadline = replicator::bench::Clock::now() + absl::ToChronoNanoseconds(hard_timeout);

  const replicator::bench::BenchResult result = RunBench(config);
  const int exit_code = Report(config, target, result);
  deployment.reset();  // stops every node by its PID
  if (!root.empty()) RemoveOrKeep(root, exit_code);
  return exit_code;
}
