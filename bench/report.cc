#include "report.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "fmt/format.h"

namespace replicator::bench {
namespace {

constexpr Outcome kAllOutcomes[] = {
    Outcome::kOk,          Outcome::kKeyExists,       Outcome::kConflict,
    Outcome::kUnavailable, Outcome::kInvalidArgument, Outcome::kError,
    Outcome::kFound,       Outcome::kNotFound,        Outcome::kEcho};
static_assert(std::size(kAllOutcomes) == kOutcomeCount);

// 1234567 -> "1,234,567"
std::string Grouped(uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

double Ms(uint64_t ns) { return ns / 1e6; }

double PerSecond(uint64_t n, double seconds) { return seconds > 0 ? n / seconds : 0; }

std::string Layout(const Target& t) {
  const char* transport = t.tls ? "TLS" : "insecure (plaintext)";
  if (t.local.empty()) return fmt::format("{} given nodes, {}", t.addresses.size(), transport);
  return fmt::format("{} cluster{} x {} nodes, {} storage, {}", t.clusters,
                     t.clusters == 1 ? "" : "s", t.nodes_per_cluster, t.storage, transport);
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (c < 0x20) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

std::string ConsistencyName(Consistency c) {
  return c == Consistency::kLinearizable ? "linearizable" : "local";
}

// "put on 1 cluster x 3 nodes, ...", then the run's settings.
void PrintHeader(std::FILE* out, const BenchConfig& c, const Target& t, const BenchResult& r) {
  std::string what(WorkloadName(c.workload));
  if (c.workload == Workload::kConflict) what += fmt::format(" (ratio {})", c.conflict_ratio);
  if (c.workload == Workload::kMixed) what += fmt::format(" (read ratio {})", c.read_ratio);
  if (c.workload == Workload::kGet || c.workload == Workload::kMixed) {
    what += ", " + ConsistencyName(c.consistency) + " gets";
  }
  fmt::print(out, "replicator-bench: {} on {}\n", what, Layout(t));
  fmt::print(out, "  concurrency {}, {} connection(s) per node{}, key {} B, value {} B, seed {}\n",
             c.concurrency, c.connections_per_node, c.coalesce ? " (coalesced)" : "", c.key_size,
             c.value_size, r.seed);
  if (r.preloaded) fmt::print(out, "  preloaded {} keys (not timed)\n", Grouped(r.preloaded));
  if (c.warmup.count() > 0) {
    fmt::print(out, "  warm-up {:.1f} s, {} calls (checked, not timed)\n",
               std::chrono::duration<double>(c.warmup).count(), Grouped(r.warmup_calls));
  }
}

void Row(std::FILE* out, const std::string& name, const std::string& value) {
  fmt::print(out, "  {:<22} {:>14}\n", name, value);
}

void PrintTimedRows(std::FILE* out, const PhaseStats& p) {
  Row(out, "calls", Grouped(p.completed));
  Row(out, "elapsed s", fmt::format("{:.2f}", p.seconds));
  Row(out, "throughput calls/s", Grouped(static_cast<uint64_t>(PerSecond(p.completed, p.seconds))));
  Row(out, "latency p50 ms", fmt::format("{:.3f}", Ms(p.latency.Percentile(0.50))));
  Row(out, "latency p90 ms", fmt::format("{:.3f}", Ms(p.latency.Percentile(0.90))));
  Row(out, "latency p99 ms", fmt::format("{:.3f}", Ms(p.latency.Percentile(0.99))));
  Row(out, "latency p99.9 ms", fmt::format("{:.3f}", Ms(p.latency.Percentile(0.999))));
  Row(out, "latency max ms", fmt::format("{:.3f}", Ms(p.latency.max())));
  for (Outcome o : kAllOutcomes) Row(out, std::string(OutcomeName(o)), Grouped(p.count(o)));
}

// Storage counters, CPU and memory, all over the timed phase `p`.
void PrintResourceRows(std::FILE* out, const BenchResult& r, const PhaseStats& p) {
  if (r.storage_nodes > 0) {
    const NodeCounters& s = r.storage_delta;
    Row(out, "storage writes", Grouped(s.writes));
    Row(out, "group commits", Grouped(s.batches));
    Row(out, "fsyncs", Grouped(s.syncs));
    Row(out, "fsyncs/s (all nodes)", fmt::format("{:.0f}", PerSecond(s.syncs, p.seconds)));
    Row(out, "writes per commit",
        fmt::format("{:.1f}", s.batches ? double(s.writes) / s.batches : 0));
    Row(out, "batched messages", Grouped(s.batched_calls));
    Row(out, "calls per batch",
        fmt::format("{:.1f}", s.batched_calls ? double(s.batched_items) / s.batched_calls : 0));
  }
  Row(out, "bench CPU %", fmt::format("{:.0f}", PerSecond(100 * r.bench_cpu_s, p.seconds)));
  if (r.nodes_cpu_s >= 0) {
    Row(out, "nodes CPU % (all)", fmt::format("{:.0f}", PerSecond(100 * r.nodes_cpu_s, p.seconds)));
  }
  if (r.machine_cpu_s >= 0) {
    double others = r.machine_cpu_s - r.bench_cpu_s - std::max(0.0, r.nodes_cpu_s);
    Row(out, "other CPU % (machine)",
        fmt::format("{:.0f}", PerSecond(100 * std::max(0.0, others), p.seconds)));
  }
  if (r.node_rss_mib >= 0) {
    Row(out, "largest node RSS MiB", fmt::format("{:.0f}", r.node_rss_mib));
    Row(out, "  its peak RSS MiB", fmt::format("{:.0f}", r.node_peak_rss_mib));
    if (r.node_rss_committed_keys >= 0) {
      Row(out, "  its committed keys", Grouped(static_cast<uint64_t>(r.node_rss_committed_keys)));
    }
  }
}

void PrintEchoRows(std::FILE* out, const PhaseStats& e, const PhaseStats& p) {
  double echo_rate = PerSecond(e.completed, e.seconds);
  Row(out, "echo baseline calls/s", Grouped(static_cast<uint64_t>(echo_rate)));
  Row(out, "echo p50 ms", fmt::format("{:.3f}", Ms(e.latency.Percentile(0.50))));
  Row(out, "echo p99 ms", fmt::format("{:.3f}", Ms(e.latency.Percentile(0.99))));
  Row(out, "throughput / echo %",
      fmt::format("{:.1f}",
                  echo_rate > 0 ? 100 * PerSecond(p.completed, p.seconds) / echo_rate : 0.0));
}

// What went wrong, below the table.
void PrintProblems(std::FILE* out, const BenchResult& r) {
  if (!r.timed.first_error.empty()) fmt::print(out, "  first error: {}\n", r.timed.first_error);
  if (r.node_safety_violations) {
    fmt::print(out, "  VIOLATION: nodes' own safety-violation counters grew by {}\n",
               r.node_safety_violations);
  }
  for (const std::string& v : r.violation_examples) fmt::print(out, "  VIOLATION: {}\n", v);
  if (r.interrupted) fmt::print(out, "  interrupted: figures cover the calls made until then\n");
  if (!r.failure.empty()) fmt::print(out, "  FAILED: {}\n", r.failure);
}

// The "config" object of the JSON, with its trailing comma.
std::string JsonConfig(const BenchConfig& c, const Target& t, const BenchResult& r) {
  std::string j = "  \"config\": {\n";
  j += fmt::format("    \"workload\": {},\n", JsonString(std::string(WorkloadName(c.workload))));
  j += fmt::format("    \"local\": {},\n", t.local.empty() ? "null" : JsonString(t.local));
  j += fmt::format("    \"clusters\": {},\n", t.clusters);
  j += fmt::format("    \"nodes_per_cluster\": {},\n", t.nodes_per_cluster);
  j += fmt::format("    \"storage\": {},\n", t.storage.empty() ? "null" : JsonString(t.storage));
  j += fmt::format("    \"tls\": {},\n", t.tls ? "true" : "false");
  std::string nodes;
  for (const std::string& a : t.addresses) nodes += (nodes.empty() ? "" : ", ") + JsonString(a);
  j += fmt::format("    \"nodes\": [{}],\n", nodes);
  j += fmt::format("    \"connections_per_node\": {},\n", c.connections_per_node);
  j += fmt::format("    \"coalesce\": {},\n", c.coalesce ? "true" : "false");
  j += fmt::format("    \"concurrency\": {},\n", c.concurrency);
  j += fmt::format("    \"duration_s\": {},\n", std::chrono::duration<double>(c.duration).count());
  j += fmt::format("    \"warmup_s\": {},\n", std::chrono::duration<double>(c.warmup).count());
  j += fmt::format("    \"ops_limit\": {},\n", c.ops);
  j += fmt::format("    \"key_size\": {},\n", c.key_size);
  j += fmt::format("    \"value_size\": {},\n", c.value_size);
  j += fmt::format("    \"conflict_ratio\": {},\n", c.conflict_ratio);
  j += fmt::format("    \"read_ratio\": {},\n", c.read_ratio);
  j += fmt::format("    \"consistency\": {},\n", JsonString(ConsistencyName(c.consistency)));
  j += fmt::format("    \"preload\": {},\n", c.preload);
  j += fmt::format("    \"seed\": {}\n", r.seed);
  j += "  },\n";
  return j;
}

// {"p50": ..., "max": ...} in milliseconds.
std::string JsonLatency(const LatencyHistogram& h) {
  return fmt::format(
      "{{\"p50\": {:.3f}, \"p90\": {:.3f}, \"p99\": {:.3f}, \"p999\": {:.3f}, \"max\": {:.3f}}}",
      Ms(h.Percentile(0.5)), Ms(h.Percentile(0.9)), Ms(h.Percentile(0.99)), Ms(h.Percentile(0.999)),
      Ms(h.max()));
}

std::string JsonTimed(const PhaseStats& p) {
  std::string j = fmt::format("  \"calls\": {},\n", p.completed);
  j += fmt::format("  \"elapsed_s\": {:.3f},\n", p.seconds);
  j += fmt::format("  \"ops_per_sec\": {:.1f},\n", PerSecond(p.completed, p.seconds));
  j += fmt::format("  \"errors\": {},\n", p.errors());
  j += fmt::format("  \"latency_ms\": {},\n", JsonLatency(p.latency));
  return j;
}

std::string JsonEcho(const BenchConfig& c, const PhaseStats& e) {
  if (!c.echo_baseline) return "  \"echo_baseline\": null,\n";
  return fmt::format(
      "  \"echo_baseline\": {{\"calls\": {}, \"elapsed_s\": {:.3f}, \"ops_per_sec\": {:.1f}, "
      "\"errors\": {}, \"latency_ms\": {}}},\n",
      e.completed, e.seconds, PerSecond(e.completed, e.seconds), e.errors(),
      JsonLatency(e.latency));
}

std::string JsonOutcomes(const PhaseStats& p) {
  std::string outcomes;
  for (Outcome o : kAllOutcomes) {
    outcomes +=
        fmt::format("{}\"{}\": {}", outcomes.empty() ? "" : ", ", OutcomeName(o), p.count(o));
  }
  return fmt::format("  \"outcomes\": {{{}}},\n", outcomes);
}

// Storage counters, memory and CPU; as in PrintResourceRows.
std::string JsonResources(const BenchResult& r, const PhaseStats& p) {
  std::string j;
  if (r.storage_nodes > 0) {
    const NodeCounters& s = r.storage_delta;
    j += fmt::format(
        "  \"storage\": {{\"nodes\": {}, \"writes\": {}, \"group_commits\": {}, \"fsyncs\": {}, "
        "\"fsyncs_per_sec\": {:.1f}, \"fsyncs_per_sec_per_node\": {:.1f}, "
        "\"writes_per_group_commit\": {:.2f}, \"batched_calls\": {}, \"batched_items\": {}}},\n",
        r.storage_nodes, s.writes, s.batches, s.syncs, PerSecond(s.syncs, p.seconds),
        PerSecond(s.syncs, p.seconds) / r.storage_nodes,
        s.batches ? double(s.writes) / s.batches : 0.0, s.batched_calls, s.batched_items);
  } else {
    j += "  \"storage\": null,\n";
  }
  if (r.node_rss_mib >= 0) {
    j += fmt::format(
        "  \"largest_node\": {{\"rss_mib\": {:.1f}, \"peak_rss_mib\": {:.1f}, "
        "\"committed_keys\": {}}},\n",
        r.node_rss_mib, r.node_peak_rss_mib,
        r.node_rss_committed_keys < 0 ? std::string("null")
                                      : std::to_string(r.node_rss_committed_keys));
  } else {
    j += "  \"largest_node\": null,\n";
  }
  j += fmt::format("  \"preloaded\": {},\n", r.preloaded);
  j += fmt::format("  \"warmup_calls\": {},\n", r.warmup_calls);
  j += fmt::format("  \"bench_cpu_s\": {:.3f},\n", r.bench_cpu_s);
  j += fmt::format("  \"nodes_cpu_s\": {},\n",
                   r.nodes_cpu_s < 0 ? std::string("null") : fmt::format("{:.3f}", r.nodes_cpu_s));
  j += fmt::format("  \"machine_cpu_s\": {},\n", r.machine_cpu_s < 0
                                                     ? std::string("null")
                                                     : fmt::format("{:.3f}", r.machine_cpu_s));
  return j;
}

// The read-back, the correctness check and what went wrong; the last
// member, so no trailing comma.
std::string JsonChecks(const BenchConfig& c, const BenchResult& r) {
  std::string j = fmt::format(
      "  \"read_back\": {{\"enabled\": {}, \"confirmed\": {}, \"no_answer\": {}, \"seconds\": "
      "{:.2f}}},\n",
      c.verify ? "true" : "false", r.verified, r.unverified, r.verify_seconds);
  j += fmt::format("  \"violations\": {},\n", r.violations());
  j += fmt::format("  \"ledger_violations\": {},\n", r.ledger_violations);
  j += fmt::format("  \"node_safety_violations\": {},\n", r.node_safety_violations);
  j += fmt::format("  \"node_shards\": {},\n", r.node_shards);
  std::string examples;
  for (const std::string& v : r.violation_examples) {
    examples += (examples.empty() ? "" : ", ") + JsonString(v);
  }
  j += fmt::format("  \"violation_examples\": [{}],\n", examples);
  j += fmt::format("  \"first_error\": {},\n",
                   r.timed.first_error.empty() ? "null" : JsonString(r.timed.first_error));
  j += fmt::format("  \"interrupted\": {},\n", r.interrupted ? "true" : "false");
  j += fmt::format("  \"failure\": {}\n", r.failure.empty() ? "null" : JsonString(r.failure));
  return j;
}

}  // namespace

void PrintReport(std::FILE* out, const BenchConfig& c, const Target& t, const BenchResult& r) {
  const PhaseStats& p = r.timed;
  PrintHeader(out, c, t, r);
  fmt::print(out, "\n");
  PrintTimedRows(out, p);
  PrintResourceRows(out, r, p);
  if (c.verify) {
    Row(out, "read back: confirmed", Grouped(r.verified));
    Row(out, "read back: no answer", Grouped(r.unverified));
  }
  if (c.echo_baseline && r.echo.completed > 0) PrintEchoRows(out, r.echo, p);
  Row(out, "violations", Grouped(r.violations()));
  fmt::print(out, "\n");
  PrintProblems(out, r);
}

absl::Status WriteJson(const std::string& path, const BenchConfig& c, const Target& t,
                       const BenchResult& r) {
  const std::string j = "{\n" + JsonConfig(c, t, r) + JsonTimed(r.timed) + JsonEcho(c, r.echo) +
                        JsonOutcomes(r.timed) + JsonResources(r, r.timed) + JsonChecks(c, r) +
                        "}\n";
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << j;
  f.close();
  if (!f) return absl::InternalError(fmt::format("cannot write {}: {}", path, strerror(errno)));
  return absl::OkStatus();
}

absl::Status WriteHistogramCsv(const std::string& path, const LatencyHistogram& histogram) {
  std::string csv = "lower_ms,upper_ms,count,cumulative_fraction\n";
  uint64_t seen = 0;
  histogram.ForEachBucket([&](uint64_t lower, uint64_t width, uint64_t count) {
    seen += count;
    csv +=
        fmt::format("{:.6f},{:.6f},{},{:.6f}\n", Ms(lower), (double(lower) + double(width)) / 1e6,
                    count, double(seen) / double(histogram.count()));
  });
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << csv;
  f.close();
  if (!f) return absl::InternalError(fmt::format("cannot write {}: {}", path, strerror(errno)));
  return absl::OkStatus();
}

}  // namespace replicator::bench
