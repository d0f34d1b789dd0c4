// Bench: one benchmark run against a deployment, over replicator::Client
// connections on one Reactor. Every worker is a coroutine on the reactor's
// thread, so the bench's own state needs no locks; --concurrency workers each
// keep one call in flight.
//
// A run: connect (one or more connections per node), wait until every node
// sees the expected voters, preload keys for get/mixed (not timed), the timed
// phase, then read back every key answered `ok` (not timed) and check every
// answer against the Ledger. Every phase is bounded by a count, a deadline or
// both, and the whole run by BenchConfig::hard_deadline.
#pragma once

#include <array>
#include <asio/awaitable.hpp>
#include <asio/signal_set.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "keyspace.h"
#include "latency_histogram.h"
#include "ledger.h"
#include "net/reactor.h"
#include "net/tls.h"
#include "replicator/client.h"

namespace replicator::bench {

using Clock = std::chrono::steady_clock;

enum class Workload { kPut, kConflict, kGet, kMixed, kEcho };
std::string_view WorkloadName(Workload w);

struct BenchConfig {
  std::vector<std::string> addresses;  // one per node, "host:port"
  // The client's TLS (certificate and CA); null: plaintext, to --insecure nodes.
  std::shared_ptr<const net::TlsContext> tls;
  int connections_per_node = 1;
  // ClientOptions::coalesce: the calls of one loop turn on one connection
  // go as one putMany / getMany.
  bool coalesce = false;
  int expected_voters = 0;  // wait until every node sees this many; 0: do not wait
  Workload workload = Workload::kPut;
  double conflict_ratio = 0.5;  // conflict: share of puts aimed at a recent key
  double read_ratio = 0.9;      // mixed: share of gets
  Consistency consistency = Consistency::kLocal;
  int concurrency = 64;
  Clock::duration warmup{0};      // untimed calls of the workload before the timed phase
  Clock::duration duration{0};    // timed phase bound; 0: none
  uint64_t ops = 0;               // timed phase bound in calls; 0: none
  uint64_t max_ops = 20'000'000;  // hard cap on calls of the timed phase
  uint64_t preload = 10'000;      // keys put before a get or mixed phase
  int key_size = 16;
  int value_size = 100;
  uint64_t seed = 1;
  bool verify = true;  // read back every key answered ok
  // After the timed phase, as long again of Node.echo at the same
  // concurrency over the same connections: the transport's ceiling, from
  // the same run.
  bool echo_baseline = false;
  bool progress = false;  // live progress line on stderr
  Clock::time_point hard_deadline = Clock::time_point::max();
  std::vector<int> node_pids;  // --local nodes, for their CPU time; empty otherwise
};

// Answers and latencies of one phase.
struct PhaseStats {
  std::array<uint64_t, kOutcomeCount> outcomes{};
  LatencyHistogram latency;
  uint64_t completed = 0;
  double seconds = 0;
  std::string first_error;

  void Record(Outcome o, uint64_t latency_ns) {
    ++outcomes[static_cast<int>(o)];
    ++completed;
    latency.Record(latency_ns);
  }
  uint64_t count(Outcome o) const { return outcomes[static_cast<int>(o)]; }
  // Calls that failed or were refused for want of nodes or valid input.
  uint64_t errors() const {
    return count(Outcome::kError) + count(Outcome::kUnavailable) + count(Outcome::kInvalidArgument);
  }
};

// Sums of the storage counters of every node's status.
struct NodeCounters {
  uint64_t writes = 0, batches = 0, syncs = 0, safety_violations = 0;
  // putMany/getMany messages the nodes served, and the calls they carried.
  uint64_t batched_calls = 0, batched_items = 0;
  std::vector<uint64_t> committed_keys;  // per node
  int nodes_answered = 0;
  uint32_t shards = 0;  // the most engines a node runs (--shards); 0: none answered
};

struct BenchResult {
  std::string failure;  // set when the run could not start or finish
  bool interrupted = false;
  uint64_t seed = 0;
  uint64_t preloaded = 0;  // keys answered ok in the preload
  uint64_t warmup_calls = 0;
  PhaseStats timed;
  PhaseStats echo;  // the echo baseline, when asked for
  // CPU seconds (user + system) over the timed phase: the bench's own
  // process, and the --local nodes' together (-1: not known).
  double bench_cpu_s = 0;
  double nodes_cpu_s = -1;
  // Busy CPU seconds of the whole machine over the timed phase (from
  // /proc/stat; -1: not known): what is left after the bench and the nodes
  // is other load that makes the figures noisy.
  double machine_cpu_s = -1;
  // At the end of the run, the --local node with the most resident memory:
  // its resident and peak resident MiB and its committed keys (-1: unknown).
  double node_rss_mib = -1, node_peak_rss_mib = -1;
  int64_t node_rss_committed_keys = -1;
  NodeCounters storage_delta;  // over the timed phase
  int storage_nodes = 0;       // nodes whose counters are in storage_delta
  // Read-back of keys answered ok: confirmed, or no answer after retries.
  uint64_t verified = 0, unverified = 0;
  double verify_seconds = 0;
  uint64_t ledger_violations = 0;
  uint64_t node_safety_violations = 0;  // growth of the nodes' own counter
  uint32_t node_shards = 0;             // engines per node, from their status (0: unknown)
  std::vector<std::string> violation_examples;
  uint64_t violations() const { return ledger_violations + node_safety_violations; }
};

class Bench {
 public:
  Bench(net::Reactor& reactor, BenchConfig config);
  ~Bench();

  // The whole run; stops the reactor when done, or at the hard deadline.
  asio::awaitable<void> Run();
  // Complete once the reactor stopped (partial if `failure` is set).
  const BenchResult& result() const { return result_; }
  // True once Run() returned. If the reactor stopped before (hard timeout,
  // second signal), coroutines of the run are still suspended on it: their
  // ready work would resume into this Bench and its clients while the
  // Reactor drains, so neither may be destroyed (the process should exit).
  bool finished() const { return finished_; }

 private:
  enum class PhaseKind { kPreload, kTimed, kVerify };

  asio::awaitable<void> RunInner();
  // The phases of a run, in order. Preload is false when no key was stored.
  asio::awaitable<bool> Preload();
  asio::awaitable<void> Warmup();
  asio::awaitable<void> TimedPhase(uint64_t limit);
  asio::awaitable<void> EchoBaseline(uint64_t limit);
  asio::awaitable<void> ReadBack();
  // The --local node with the most resident memory, into result_.
  void RecordLargestNode(const NodeCounters& at_end);
  asio::awaitable<bool> Connect();
  asio::awaitable<bool> WaitForVoters();
  asio::awaitable<NodeCounters> Counters();
  asio::awaitable<void> WaitForCommitted(std::vector<uint64_t> at_least);
  asio::awaitable<void> RunPhase(PhaseKind kind, std::string label, int concurrency, uint64_t limit,
                                 Clock::time_point deadline, PhaseStats* stats);
  asio::awaitable<void> Worker();
  asio::awaitable<void> TimedOp(uint64_t op);
  asio::awaitable<void> PutOp(size_t client, uint64_t key, uint64_t put_id);
  asio::awaitable<void> GetOp(size_t client, uint64_t key, Consistency consistency);
  asio::awaitable<void> EchoOp(size_t client, uint64_t op);
  asio::awaitable<void> VerifyOp(uint64_t op);
  asio::awaitable<void> Sleep(std::chrono::milliseconds d);
  bool MayIssue() const;
  void PrintProgress(bool final);
  void NoteError(std::string message);

  net::Reactor& reactor_;
  BenchConfig config_;
  Keyspace keyspace_;
  Ledger ledger_;
  BenchResult result_;
  // clients_[j * nodes + n] is connection j to node n: consecutive calls go
  // to different nodes.
  std::vector<std::unique_ptr<Client>> clients_;
  size_t nodes_ = 0;

  std::vector<uint64_t> ok_keys_;  // keys answered ok, in answer order
  std::vector<uint64_t> recent_;   // ring of the latest fresh keys (conflict targets)
  uint64_t recent_written_ = 0;
  uint64_t next_put_id_ = 0;
  std::vector<uint64_t> verify_keys_;

  // The phase in progress.
  PhaseKind phase_kind_ = PhaseKind::kTimed;
  Workload phase_workload_ = Workload::kPut;  // of a kTimed phase
  std::string phase_label_;
  PhaseStats* phase_ = nullptr;
  uint64_t issued_ = 0, limit_ = 0;
  Clock::time_point phase_start_, phase_end_, deadline_;
  int workers_left_ = 0;
  asio::steady_timer* phase_done_ = nullptr;
  uint64_t progress_last_ops_ = 0;
  Clock::time_point progress_last_at_;

  bool stop_issuing_ = false;  // a signal arrived
  bool finished_ = false;
  asio::signal_set signals_;
  asio::steady_timer watchdog_;
};

}  // namespace replicator::bench
