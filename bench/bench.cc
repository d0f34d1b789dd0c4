#include "bench.h"

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <utility>

#include "absl/strings/match.h"
#include "fmt/format.h"

namespace replicator::bench {
namespace {

constexpr auto kProgressEvery = std::chrono::milliseconds(500);
constexpr auto kVoterWait = std::chrono::seconds(30);
constexpr auto kCommitWait = std::chrono::seconds(15);
constexpr int kSideConcurrency = 64;  // preload and read-back, at least
constexpr int kReadBackAttempts = 3;

uint64_t Nanos(Clock::duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

// CPU seconds (user + system) this process used so far.
double OwnCpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// CPU seconds (user + system) of the processes `pids` so far, from
// /proc/PID/stat; -1 if any cannot be read.
double ProcessesCpuSeconds(const std::vector<int>& pids) {
  if (pids.empty()) return -1;
  double ticks = 0;
  for (int pid : pids) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    size_t paren = stat.rfind(')');  // the command name may hold spaces
    if (paren == std::string::npos) return -1;
    std::istringstream fields(stat.substr(paren + 2));
    std::string field;
    // Fields after the name start at 3 (state); utime and stime are 14 and 15.
    double utime = -1, stime = -1;
    for (int i = 3; i <= 15 && fields >> field; ++i) {
      if (i == 14) utime = std::stod(field);
      if (i == 15) stime = std::stod(field);
    }
    if (utime < 0 || stime < 0) return -1;
    ticks += utime + stime;
  }
  return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// VmRSS and VmHWM of process `pid` in MiB, from /proc/PID/status; -1 if
// unreadable.
std::pair<double, double> ResidentMiB(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  double rss = -1, peak = -1;
  while (std::getline(f, line)) {
    double kib = 0;
    if (std::sscanf(line.c_str(), "VmRSS: %lf kB", &kib) == 1) rss = kib / 1024;
    if (std::sscanf(line.c_str(), "VmHWM: %lf kB", &kib) == 1) peak = kib / 1024;
  }
  return {rss, peak};
}

// Busy CPU seconds of the whole machine since boot (every field of the
// "cpu" line of /proc/stat but idle and iowait); -1 if unreadable.
double MachineCpuSeconds() {
  std::ifstream f("/proc/stat");
  std::string name;
  if (!(f >> name) || name != "cpu") return -1;
  double busy = 0, v = 0;
  // user nice system idle iowait irq softirq steal (guest time is in user).
  for (int i = 0; i < 8 && f >> v; ++i) {
    if (i != 3 && i != 4) busy += v;
  }
  return busy / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// Uniform in [0, 1) from 53 bits of `r`.
double Unit(uint64_t r) { return static_cast<double>(r >> 11) * 0x1.0p-53; }

}  // namespace

std::string_view WorkloadName(Workload w) {
  switch (w) {
    case Workload::kPut:
      return "put";
    case Workload::kConflict:
      return "conflict";
    case Workload::kGet:
      return "get";
    case Workload::kMixed:
      return "mixed";
    case Workload::kEcho:
      return "echo";
  }
  return "?";
}

Bench::Bench(net::Reactor& reactor, BenchConfig config)
    : reactor_(reactor),
      config_(std::move(config)),
      keyspace_(config_.seed, config_.key_size, config_.value_size),
      ledger_(&keyspace_),
      recent_(static_cast<size_t>(std::max(16, 2 * config_.concurrency)), 0),
      signals_(reactor.io(), SIGINT, SIGTERM),
      watchdog_(reactor.io()) {
  result_.seed = config_.seed;
}

Bench::~Bench() = default;

asio::awaitable<void> Bench::Run() {
  // The hard deadline bounds the run even if a call never returns.
  watchdog_.expires_at(config_.hard_deadline);
  watchdog_.async_wait([this](asio::error_code ec) {
    if (ec) return;
    if (result_.failure.empty()) result_.failure = "the run outlasted --hard-timeout; stopped";
    reactor_.Stop();
  });
  // First signal: stop issuing calls and report; second: stop at once.
  signals_.async_wait([this](asio::error_code ec, int) {
    if (ec) return;
    stop_issuing_ = true;
    result_.interrupted = true;
    signals_.async_wait([this](asio::error_code ec2, int) {
      if (ec2) return;
      if (result_.failure.empty()) result_.failure = "interrupted twice; stopped";
      reactor_.Stop();
    });
  });
  co_await RunInner();
  watchdog_.cancel();
  signals_.cancel();
  finished_ = true;
  reactor_.Stop();
}

asio::awaitable<void> Bench::RunInner() {
  if (!co_await Connect()) co_return;
  if (config_.expected_voters > 0 && !co_await WaitForVoters()) co_return;
  // The nodes' own safety-violation counters, over the whole run.
  NodeCounters at_start = co_await Counters();
  if (config_.workload == Workload::kGet || config_.workload == Workload::kMixed) {
    if (!co_await Preload()) co_return;
  }
  phase_workload_ = config_.workload;
  if (config_.warmup.count() > 0) co_await Warmup();
  const uint64_t limit = config_.ops > 0 ? std::min(config_.ops, config_.max_ops) : config_.max_ops;
  co_await TimedPhase(limit);
  if (config_.echo_baseline && !result_.interrupted) co_await EchoBaseline(limit);
  if (config_.verify && !result_.interrupted) co_await ReadBack();
  NodeCounters at_end = co_await Counters();
  RecordLargestNode(at_end);
  if (at_start.nodes_answered == static_cast<int>(nodes_) &&
      at_end.nodes_answered == static_cast<int>(nodes_)) {
    result_.node_safety_violations = at_end.safety_violations - at_start.safety_violations;
  }
  result_.node_shards = at_end.shards;
  ledger_.Finish();
  result_.ledger_violations = ledger_.violations();
  result_.violation_examples = ledger_.examples();
}

asio::awaitable<bool> Bench::Preload() {
  NodeCounters before = co_await Counters();
  PhaseStats preload;
  int concurrency = std::max(kSideConcurrency, config_.concurrency);
  co_await RunPhase(PhaseKind::kPreload, "preload", concurrency, config_.preload,
                    config_.hard_deadline, &preload);
  result_.preloaded = preload.count(Outcome::kOk);
  if (result_.preloaded == 0) {
    result_.failure = fmt::format("the preload stored no key ({} of {} puts failed; first: {})",
                                  preload.errors(), preload.completed, preload.first_error);
    co_return false;
  }
  // Local gets at nodes other than a key's coordinator may lag its
  // asynchronous commit: let every node catch up before timing.
  if (before.nodes_answered == static_cast<int>(nodes_)) {
    std::vector<uint64_t> want = before.committed_keys;
    for (uint64_t& w : want) w += result_.preloaded;
    co_await WaitForCommitted(std::move(want));
  }
  co_return true;
}

asio::awaitable<void> Bench::Warmup() {
  PhaseStats warmup;
  co_await RunPhase(PhaseKind::kTimed, "warmup", config_.concurrency, config_.max_ops,
                    Clock::now() + config_.warmup, &warmup);
  result_.warmup_calls = warmup.completed;
}

asio::awaitable<void> Bench::TimedPhase(uint64_t limit) {
  NodeCounters before = co_await Counters();
  double bench_cpu = OwnCpuSeconds();
  double nodes_cpu = ProcessesCpuSeconds(config_.node_pids);
  double machine_cpu = MachineCpuSeconds();
  Clock::time_point deadline = Clock::time_point::max();
  if (config_.duration.count() > 0) deadline = Clock::now() + config_.duration;
  co_await RunPhase(PhaseKind::kTimed, std::string(WorkloadName(config_.workload)),
                    config_.concurrency, limit, deadline, &result_.timed);
  result_.bench_cpu_s = OwnCpuSeconds() - bench_cpu;
  double nodes_cpu_after = ProcessesCpuSeconds(config_.node_pids);
  if (nodes_cpu >= 0 && nodes_cpu_after >= 0) result_.nodes_cpu_s = nodes_cpu_after - nodes_cpu;
  double machine_cpu_after = MachineCpuSeconds();
  if (machine_cpu >= 0 && machine_cpu_after >= 0) {
    result_.machine_cpu_s = machine_cpu_after - machine_cpu;
  }
  NodeCounters after = co_await Counters();
  if (before.nodes_answered == static_cast<int>(nodes_) &&
      after.nodes_answered == static_cast<int>(nodes_)) {
    result_.storage_nodes = static_cast<int>(nodes_);
    result_.storage_delta.writes = after.writes - before.writes;
    result_.storage_delta.batches = after.batches - before.batches;
    result_.storage_delta.syncs = after.syncs - before.syncs;
    result_.storage_delta.batched_calls = after.batched_calls - before.batched_calls;
    result_.storage_delta.batched_items = after.batched_items - before.batched_items;
  }
}

asio::awaitable<void> Bench::EchoBaseline(uint64_t limit) {
  phase_workload_ = Workload::kEcho;
  Clock::time_point echo_deadline = Clock::time_point::max();
  if (config_.duration.count() > 0) echo_deadline = Clock::now() + config_.duration;
  co_await RunPhase(PhaseKind::kTimed, "echo", config_.concurrency, limit, echo_deadline,
                    &result_.echo);
  phase_workload_ = config_.workload;
}

asio::awaitable<void> Bench::ReadBack() {
  for (uint64_t key = 0; key < ledger_.keys(); ++key) {
    if (ledger_.OkPut(key)) verify_keys_.push_back(key);
  }
  PhaseStats verify;
  int concurrency = std::max(kSideConcurrency, config_.concurrency);
  co_await RunPhase(PhaseKind::kVerify, "read-back", concurrency, verify_keys_.size(),
                    config_.hard_deadline, &verify);
  result_.verify_seconds = verify.seconds;
  result_.unverified += verify_keys_.size() - std::min<uint64_t>(issued_, verify_keys_.size());
}

void Bench::RecordLargestNode(const NodeCounters& at_end) {
  for (size_t n = 0; n < config_.node_pids.size(); ++n) {
    auto [rss, peak] = ResidentMiB(config_.node_pids[n]);
    if (rss > result_.node_rss_mib) {
      result_.node_rss_mib = rss;
      result_.node_peak_rss_mib = peak;
      result_.node_rss_committed_keys =
          n < at_end.committed_keys.size() && at_end.nodes_answered == static_cast<int>(nodes_)
              ? static_cast<int64_t>(at_end.committed_keys[n])
              : -1;
    }
  }
}

asio::awaitable<bool> Bench::Connect() {
  nodes_ = config_.addresses.size();
  if (nodes_ == 0) {
    result_.failure = "no node to connect to";
    co_return false;
  }
  for (int j = 0; j < std::max(1, config_.connections_per_node); ++j) {
    for (const std::string& a : config_.addresses) {
      std::string address = a;
      ClientOptions options;
      options.tls = config_.tls;
      options.coalesce = config_.coalesce;
      auto connect = Client::Connect(reactor_, std::move(address), std::move(options));
      absl::StatusOr<std::unique_ptr<Client>> c = co_await std::move(connect);
      if (!c.ok()) {
        // The transport's errors name the address already.
        const std::string why(c.status().message());
        result_.failure = absl::StartsWith(why, "cannot connect to ")
                              ? why
                              : fmt::format("cannot connect to {}: {}", a, why);
        co_return false;
      }
      clients_.push_back(std::move(*c));
    }
  }
  co_return true;
}

asio::awaitable<bool> Bench::WaitForVoters() {
  auto until = std::min(config_.hard_deadline, Clock::now() + kVoterWait);
  for (size_t n = 0; n < nodes_; ++n) {
    while (true) {
      auto call = clients_[n]->Status();
      absl::StatusOr<NodeStatus> s = co_await std::move(call);
      int voters = 0;
      if (s.ok()) {
        for (const PeerStatus& m : s->members) voters += m.state == "voter";
        if (voters >= config_.expected_voters) break;
      }
      if (Clock::now() >= until) {
        result_.failure = s.ok()
                              ? fmt::format("node {} sees {} voters, not {}", config_.addresses[n],
                                            voters, config_.expected_voters)
                              : fmt::format("status of node {} failed: {}", config_.addresses[n],
                                            std::string(s.status().message()));
        co_return false;
      }
      co_await Sleep(std::chrono::milliseconds(50));
    }
  }
  co_return true;
}

asio::awaitable<NodeCounters> Bench::Counters() {
  NodeCounters t;
  for (size_t n = 0; n < nodes_; ++n) {
    auto call = clients_[n]->Status();
    absl::StatusOr<NodeStatus> s = co_await std::move(call);
    if (!s.ok()) {
      t.committed_keys.push_back(0);
      continue;
    }
    ++t.nodes_answered;
    t.writes += s->storage_writes;
    t.batches += s->storage_batches;
    t.syncs += s->storage_syncs;
    t.batched_calls += s->batched_calls;
    t.batched_items += s->batched_items;
    t.safety_violations += s->safety_violations;
    t.shards = std::max(t.shards, s->shards);
    t.committed_keys.push_back(s->committed_keys);
  }
  co_return t;
}

asio::awaitable<void> Bench::WaitForCommitted(std::vector<uint64_t> at_least) {
  auto until = std::min(config_.hard_deadline, Clock::now() + kCommitWait);
  while (Clock::now() < until) {
    NodeCounters c = co_await Counters();
    bool all = c.nodes_answered == static_cast<int>(nodes_);
    for (size_t n = 0; all && n < nodes_; ++n) all = c.committed_keys[n] >= at_least[n];
    if (all) co_return;
    co_await Sleep(std::chrono::milliseconds(50));
  }
  fmt::print(stderr,
             "replicator-bench: not every node applied the preload within {} s; local "
             "gets may answer not_found\n",
             std::chrono::duration_cast<std::chrono::seconds>(kCommitWait).count());
}

asio::awaitable<void> Bench::RunPhase(PhaseKind kind, std::string label, int concurrency,
                                      uint64_t limit, Clock::time_point deadline,
                                      PhaseStats* stats) {
  phase_kind_ = kind;
  phase_label_ = std::move(label);
  phase_ = stats;
  issued_ = 0;
  limit_ = limit;
  deadline_ = std::min(deadline, config_.hard_deadline);
  workers_left_ = std::max(1, concurrency);
  asio::steady_timer done(reactor_.io());
  phase_done_ = &done;
  phase_start_ = phase_end_ = progress_last_at_ = Clock::now();
  progress_last_ops_ = 0;
  int workers = workers_left_;
  for (int w = 0; w < workers; ++w) asio::co_spawn(reactor_.io(), Worker(), asio::detached);
  // Workers may all finish before this loop waits (co_spawn can run them
  // inline), so it waits on the count; the timer also paces the progress line.
  while (workers_left_ > 0) {
    done.expires_after(kProgressEvery);
    asio::error_code ec;
    co_await done.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (workers_left_ > 0 && config_.progress) PrintProgress(false);
  }
  if (config_.progress) PrintProgress(true);
  phase_done_ = nullptr;
  stats->seconds = std::chrono::duration<double>(phase_end_ - phase_start_).count();
}

bool Bench::MayIssue() const {
  if (stop_issuing_ || issued_ >= limit_) return false;
  if (phase_kind_ != PhaseKind::kVerify && ledger_.keys() >= keyspace_.capacity()) return false;
  return Clock::now() < deadline_;
}

asio::awaitable<void> Bench::Worker() {
  while (MayIssue()) {
    uint64_t op = issued_++;
    switch (phase_kind_) {
      case PhaseKind::kPreload: {
        size_t client = op % clients_.size();
        uint64_t key = ledger_.NewKey();
        uint64_t put_id = next_put_id_++;
        co_await PutOp(client, key, put_id);
        break;
      }
      case PhaseKind::kTimed:
        co_await TimedOp(op);
        break;
      case PhaseKind::kVerify:
        co_await VerifyOp(op);
        break;
    }
  }
  if (--workers_left_ == 0) {
    phase_end_ = Clock::now();
    if (phase_done_) phase_done_->cancel();
  }
}

asio::awaitable<void> Bench::TimedOp(uint64_t op) {
  // Each call's choices come from its own stream of the seed, so a seed
  // fixes the mix of calls whatever order the answers come back in.
  uint64_t r = Keyspace::Mix(config_.seed ^ Keyspace::Mix(op));
  size_t client = op % clients_.size();
  bool read = false;
  switch (phase_workload_) {
    case Workload::kEcho:
      co_await EchoOp(client, op);
      co_return;
    case Workload::kGet:
      read = true;
      break;
    case Workload::kMixed:
      read = Unit(r) < config_.read_ratio;
      break;
    case Workload::kPut:
    case Workload::kConflict:
      break;
  }
  if (read && !ok_keys_.empty()) {
    uint64_t key = ok_keys_[Keyspace::Mix(r) % ok_keys_.size()];
    co_await GetOp(client, key, config_.consistency);
    co_return;
  }
  uint64_t key;
  size_t recent = static_cast<size_t>(std::min<uint64_t>(recent_written_, recent_.size()));
  if (phase_workload_ == Workload::kConflict && recent > 0 && Unit(r) < config_.conflict_ratio) {
    // A key put a moment ago: taken already, or still contended.
    key = recent_[Keyspace::Mix(r) % recent];
  } else {
    key = ledger_.NewKey();
    recent_[recent_written_++ % recent_.size()] = key;
  }
  uint64_t put_id = next_put_id_++;
  co_await PutOp(client, key, put_id);
}

asio::awaitable<void> Bench::PutOp(size_t client, uint64_t key, uint64_t put_id) {
  std::string k = keyspace_.Key(key);
  std::string v = keyspace_.Value(put_id);
  auto t0 = Clock::now();
  auto call = clients_[client]->Put(std::move(k), std::move(v));
  absl::StatusOr<PutResult> r = co_await std::move(call);
  uint64_t ns = Nanos(Clock::now() - t0);
  Outcome o = Outcome::kError;
  std::string_view existing;
  if (!r.ok()) {
    NoteError(fmt::format("put: {}", std::string(r.status().message())));
  } else {
    switch (r->kind) {
      case PutResult::Kind::kOk:
        o = Outcome::kOk;
        break;
      case PutResult::Kind::kKeyExists:
        o = Outcome::kKeyExists;
        existing = r->existing;
        break;
      case PutResult::Kind::kConflict:
        o = Outcome::kConflict;
        break;
      case PutResult::Kind::kUnavailable:
        o = Outcome::kUnavailable;
        NoteError("put unavailable: " + r->message);
        break;
      case PutResult::Kind::kInvalidArgument:
        o = Outcome::kInvalidArgument;
        NoteError("put invalid argument: " + r->message);
        break;
    }
  }
  ledger_.OnPut(key, put_id, o, existing);
  if (o == Outcome::kOk) ok_keys_.push_back(key);
  phase_->Record(o, ns);
}

asio::awaitable<void> Bench::GetOp(size_t client, uint64_t key, Consistency consistency) {
  std::string k = keyspace_.Key(key);
  auto t0 = Clock::now();
  auto call = clients_[client]->Get(std::move(k), consistency);
  absl::StatusOr<GetResult> r = co_await std::move(call);
  uint64_t ns = Nanos(Clock::now() - t0);
  bool authoritative = consistency == Consistency::kLinearizable;
  Outcome o = Outcome::kError;
  if (!r.ok()) {
    NoteError(fmt::format("get: {}", std::string(r.status().message())));
  } else {
    switch (r->kind) {
      case GetResult::Kind::kFound:
        o = Outcome::kFound;
        ledger_.OnGet(key, true, r->value, authoritative);
        break;
      case GetResult::Kind::kNotFound:
        o = Outcome::kNotFound;
        ledger_.OnGet(key, false, {}, authoritative);
        break;
      case GetResult::Kind::kUnavailable:
        o = Outcome::kUnavailable;
        NoteError("get unavailable: " + r->message);
        break;
      case GetResult::Kind::kInvalidArgument:
        o = Outcome::kInvalidArgument;
        NoteError("get invalid argument: " + r->message);
        break;
    }
  }
  phase_->Record(o, ns);
}

asio::awaitable<void> Bench::EchoOp(size_t client, uint64_t op) {
  std::string payload = keyspace_.Value(op);
  std::string sent = payload;
  auto t0 = Clock::now();
  auto call = clients_[client]->Echo(std::move(sent));
  absl::StatusOr<std::string> r = co_await std::move(call);
  uint64_t ns = Nanos(Clock::now() - t0);
  Outcome o = Outcome::kError;
  if (!r.ok()) {
    NoteError(fmt::format("echo: {}", std::string(r.status().message())));
  } else if (*r != payload) {
    NoteError("echo returned a different payload");
  } else {
    o = Outcome::kEcho;
  }
  phase_->Record(o, ns);
}

asio::awaitable<void> Bench::VerifyOp(uint64_t op) {
  uint64_t key = verify_keys_[op];
  size_t node = op % nodes_;
  std::string expected = keyspace_.Value(*ledger_.OkPut(key));
  // A local get is cheap and enough when it finds the key: a committed value
  // is final. Not finding it may be commit lag, so a linearizable get (which
  // sees every put answered before it) decides.
  {
    std::string k = keyspace_.Key(key);
    auto call = clients_[node]->Get(std::move(k), Consistency::kLocal);
    absl::StatusOr<GetResult> r = co_await std::move(call);
    if (r.ok() && r->kind == GetResult::Kind::kFound) {
      ledger_.OnGet(key, true, r->value, true);
      result_.verified += r->value == expected;
      co_return;
    }
  }
  for (int attempt = 0; attempt < kReadBackAttempts; ++attempt) {
    if (attempt > 0) co_await Sleep(std::chrono::milliseconds(200));
    std::string k = keyspace_.Key(key);
    auto call = clients_[node]->Get(std::move(k), Consistency::kLinearizable);
    absl::StatusOr<GetResult> r = co_await std::move(call);
    if (!r.ok() || r->kind == GetResult::Kind::kUnavailable) continue;
    if (r->kind == GetResult::Kind::kFound) {
      ledger_.OnGet(key, true, r->value, true);
      result_.verified += r->value == expected;
    } else if (r->kind == GetResult::Kind::kNotFound) {
      ledger_.OnGet(key, false, {}, true);
    } else {
      ++result_.unverified;
    }
    co_return;
  }
  ++result_.unverified;
}

asio::awaitable<void> Bench::Sleep(std::chrono::milliseconds d) {
  asio::steady_timer t(reactor_.io());
  t.expires_after(d);
  asio::error_code ec;
  co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
}

void Bench::NoteError(std::string message) {
  if (phase_ && phase_->first_error.empty()) phase_->first_error = std::move(message);
}

void Bench::PrintProgress(bool final) {
  auto now = Clock::now();
  double elapsed = std::chrono::duration<double>(now - phase_start_).count();
  double window = std::chrono::duration<double>(now - progress_last_at_).count();
  uint64_t done = phase_->completed;
  double rate = window > 0 ? (done - progress_last_ops_) / window : 0;
  progress_last_ops_ = done;
  progress_last_at_ = now;
  if (final) {
    fmt::print(stderr, "\r\033[K");
  } else {
    fmt::print(stderr, "\r\033[K{:<9} {:6.1f} s  {:>10} calls  {:>9.0f} /s  {} errors",
               phase_label_, elapsed, done, rate, phase_->errors());
  }
  std::fflush(stderr);
}

}  // namespace replicator::bench
