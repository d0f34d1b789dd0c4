// replicator-bench: put and get storms against a deployment, reporting
// throughput and latency percentiles.
//
//   build/bin/replicator-bench --clusters=2 --nodes=3 --puts=20000 --concurrency=64
//   build/bin/replicator-bench --nodes_at=127.0.0.1:7001,127.0.0.1:7002 --puts=5000
//
// Without --nodes_at it starts its own deployment of real replicatord
// processes on loopback (and stops them). Every loop is bounded by --puts /
// --gets; the run also stops at --max_seconds.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "fmt/format.h"
#include "net/reactor.h"
#include "node/local_deployment.h"
#include "replicator/client.h"
#include "util/dashed_flags.h"

ABSL_FLAG(std::string, nodes_at, "",
          "Comma-separated HOST:PORT of running nodes; empty: start a local deployment.");
ABSL_FLAG(int, clusters, 2, "Clusters of the local deployment.");
ABSL_FLAG(int, nodes, 3, "Nodes per cluster of the local deployment.");
ABSL_FLAG(std::string, storage, "rocksdb", "Storage of the local deployment: rocksdb or memory.");
ABSL_FLAG(int, puts, 10000, "Puts to issue (distinct keys).");
ABSL_FLAG(int, gets, 10000, "Local gets to issue after the puts (keys that were put).");
ABSL_FLAG(int, concurrency, 64, "Operations in flight.");
ABSL_FLAG(int, value_bytes, 100, "Value size.");
ABSL_FLAG(int, max_seconds, 120, "Stop issuing after this long.");

namespace {

using Clock = std::chrono::steady_clock;


struct Phase {
  std::string name;
  std::vector<double> latencies_us;
  int errors = 0;
  std::string first_error;
  double seconds = 0;

  void Report() {
    std::sort(latencies_us.begin(), latencies_us.end());
    auto pct = [&](double p) {
      if (latencies_us.empty()) return 0.0;
      return latencies_us[std::min(latencies_us.size() - 1,
                                   static_cast<size_t>(p * latencies_us.size()))];
    };
    fmt::print("{:<4} {:>7} ok {:>5} errors in {:>6.2f} s: {:>8.0f} ops/s; latency us p50 {:.0f} "
               "p90 {:.0f} p99 {:.0f} max {:.0f}\n",
               name, latencies_us.size(), errors, seconds, latencies_us.size() / seconds,
               pct(0.5), pct(0.9), pct(0.99), latencies_us.empty() ? 0.0 : latencies_us.back());
    if (errors) fmt::print("     first error: {}\n", first_error);
  }
};

// Storage counters summed over the nodes the bench talks to.
struct StorageTotals {
  uint64_t writes = 0, batches = 0, syncs = 0;
  StorageTotals operator-(const StorageTotals& o) const {
    return {writes - o.writes, batches - o.batches, syncs - o.syncs};
  }
};

struct Bench {
  Bench(replicator::net::Reactor& r, std::vector<std::string> a)
      : reactor(r), addresses(std::move(a)) {}

  replicator::net::Reactor& reactor;
  std::vector<std::string> addresses;
  int puts = 0, gets = 0, concurrency = 1;
  std::string value;
  Clock::time_point stop_at;
  std::string run_id = std::to_string(::getpid());
  std::vector<std::unique_ptr<replicator::Client>> clients;
  Phase put_phase{"put", {}, 0, {}, 0};
  Phase get_phase{"get", {}, 0, {}, 0};
  StorageTotals storage_during_puts;
  int next = 0;
  int workers_left = 0;
  bool failed = false;

  asio::awaitable<void> Run() {
    for (const std::string& a : addresses) {
      auto c = co_await replicator::Client::Connect(reactor, a);
      if (!c.ok()) {
        fmt::print(stderr, "cannot connect to {}: {}\n", a, std::string(c.status().message()));
        failed = true;
        reactor.Stop();
        co_return;
      }
      clients.push_back(std::move(*c));
    }
    StorageTotals before = co_await Storage();
    co_await RunPhase(&put_phase, puts, true);
    StorageTotals after = co_await Storage();
    storage_during_puts = after - before;
    co_await RunPhase(&get_phase, std::min(gets, static_cast<int>(put_phase.latencies_us.size())),
                      false);
    reactor.Stop();
  }

  asio::awaitable<StorageTotals> Storage() {
    StorageTotals t;
    for (auto& c : clients) {
      auto s = co_await c->Status();
      if (!s.ok()) continue;
      t.writes += s->storage_writes;
      t.batches += s->storage_batches;
      t.syncs += s->storage_syncs;
    }
    co_return t;
  }

  asio::awaitable<void> RunPhase(Phase* phase, int count, bool is_put) {
    next = 0;
    auto start = Clock::now();
    asio::steady_timer done(reactor.io());
    done.expires_at(Clock::time_point::max());
    workers_left = concurrency;
    for (int w = 0; w < concurrency; ++w) {
      asio::co_spawn(reactor.io(), Worker(phase, count, is_put, &done), asio::detached);
    }
    // Workers may finish before this wait starts (co_spawn can run them
    // inline), so wait on the count, not on a single cancel.
    while (workers_left > 0) {
      asio::error_code ec;
      co_await done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    phase->seconds = std::chrono::duration<double>(Clock::now() - start).count();
  }

  asio::awaitable<void> Worker(Phase* phase, int count, bool is_put, asio::steady_timer* done) {
    while (next < count && Clock::now() < stop_at) {
      int i = next++;
      std::string key = absl::StrCat("bench-", run_id, "-", i);
      replicator::Client& c = *clients[i % clients.size()];
      auto t0 = Clock::now();
      std::string error;
      if (is_put) {
        auto r = co_await c.Put(key, value);
        if (!r.ok()) {
          error = std::string(r.status().message());
        } else if (r->kind != replicator::PutResult::Kind::kOk) {
          error = absl::StrCat("put outcome ", static_cast<int>(r->kind), ": ", r->message);
        }
      } else {
        auto r = co_await c.Get(key);
        if (!r.ok()) {
          error = std::string(r.status().message());
        } else if (r->kind != replicator::GetResult::Kind::kFound) {
          error = absl::StrCat("get outcome ", static_cast<int>(r->kind));
        }
      }
      if (error.empty()) {
        phase->latencies_us.push_back(
            std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
      } else if (phase->errors++ == 0) {
        phase->first_error = error;
      }
    }
    --workers_left;
    done->cancel();
  }
};

}  // namespace

int main(int argc, char** argv) {
  replicator::util::DashedFlags dashed(argc, argv);
  absl::ParseCommandLine(dashed.argc(), dashed.argv());
  std::unique_ptr<replicator::node::LocalDeployment> deployment;
  std::vector<std::string> addresses;
  std::string root;
  if (std::string at = absl::GetFlag(FLAGS_nodes_at); !at.empty()) {
    addresses = absl::StrSplit(at, ',', absl::SkipEmpty());
  } else {
    char tmpl[] = "/tmp/replicator-bench-XXXXXX";
    if (!::mkdtemp(tmpl)) return 1;
    root = tmpl;
    replicator::node::DeploymentOptions options;
    options.clusters = absl::GetFlag(FLAGS_clusters);
    options.nodes_per_cluster = absl::GetFlag(FLAGS_nodes);
    options.storage = absl::GetFlag(FLAGS_storage);
    options.replicatord = replicator::node::ExecutableDir() + "/replicatord";
    options.root_dir = root;
    auto d = replicator::node::LocalDeployment::Start(options);
    if (!d.ok()) {
      fmt::print(stderr, "{}\n", std::string(d.status().message()));
      return 1;
    }
    deployment = std::move(*d);
    for (const auto& n : deployment->nodes()) addresses.push_back(n.address);
    fmt::print("deployment: {} clusters x {} nodes, {} storage\n", options.clusters,
               options.nodes_per_cluster, options.storage);
    // Let every node learn the membership before the storm.
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  replicator::net::Reactor reactor;
  Bench bench{reactor, addresses};
  bench.puts = absl::GetFlag(FLAGS_puts);
  bench.gets = absl::GetFlag(FLAGS_gets);
  bench.concurrency = std::max(1, absl::GetFlag(FLAGS_concurrency));
  bench.value = std::string(std::max(0, absl::GetFlag(FLAGS_value_bytes)), 'v');
  bench.stop_at = Clock::now() + std::chrono::seconds(absl::GetFlag(FLAGS_max_seconds));
  asio::co_spawn(reactor.io(), bench.Run(), asio::detached);
  reactor.Run();
  if (bench.failed) return 1;
  fmt::print("{} clients, concurrency {}, value {} bytes\n", addresses.size(), bench.concurrency,
             bench.value.size());
  bench.put_phase.Report();
  const StorageTotals& st = bench.storage_during_puts;
  double secs = bench.put_phase.seconds;
  fmt::print(
      "     storage over {} nodes during puts: {} durable writes in {} group commits, {} fsyncs "
      "({:.0f} fsyncs/s in all, {:.0f} per node; {:.1f} writes per group commit)\n",
      bench.clients.size(), st.writes, st.batches, st.syncs, st.syncs / secs,
      st.syncs / secs / std::max<size_t>(1, bench.clients.size()),
      st.batches ? static_cast<double>(st.writes) / st.batches : 0.0);
  bench.get_phase.Report();
  deployment.reset();
  if (!root.empty()) std::filesystem::remove_all(root);
  return bench.put_phase.errors == 0 ? 0 : 2;
}
