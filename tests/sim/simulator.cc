#include "sim/simulator.h"

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "sim/describe.h"

namespace replicator::sim {

using core::TimeMs;

// --- Results ----------------------------------------------------------------

std::string SimResult::StatsLine() const {
  const SimStats& s = stats;
  return absl::StrCat(
      "events=", s.events, " end=", s.end_ms, "ms puts=", s.puts, " (ok ", s.puts_ok, ", exists ",
      s.puts_exists, ", conflict ", s.puts_conflict, ", unavailable ", s.puts_unavailable,
      " of which outcome unknown ", s.puts_outcome_unknown, ", invalid ", s.puts_invalid,
      ", abandoned ", s.puts_abandoned, ") gets=", s.gets, " (found ", s.gets_found, ", notFound ",
      s.gets_not_found, ", unavailable ", s.gets_unavailable, ") messages=", s.messages,
      " dropped=", s.dropped, " duplicated=", s.duplicated, " crashes=", s.crashes,
      " partitions=", s.partitions, " (node ", s.partitions_node, ", cluster ",
      s.partitions_cluster, ") prepares=", s.prepares, " resolves=", s.resolves,
      " client: timeouts ", s.client_timeouts, ", retries ", s.client_retries, ", retry ok ",
      s.puts_retry_ok, ", joined ", s.puts_joined, " catchup: rounds ", s.catchup_rounds,
      ", pulled ", s.catchup_keys_pulled, " probe_race: ok ", s.probe_race_winners, " conflict ",
      s.probe_race_conflicts,
      config.unsafe.empty() ? std::string()
                            : absl::StrCat(" unsafe: unsynced writes lost ", s.unsynced_lost));
}

std::string SimResult::DigestLine() const {
  return absl::StrCat("history digest: ", absl::Hex(history_digest, absl::kZeroPad16));
}

std::string SimResult::Report() const {
  std::string out;
  if (ok()) {
    absl::StrAppend(&out, "PASS ", config.Reproducer(), "\n  ", StatsLine(),
                    "\n  liveness: ", liveness.ToString(), "\n");
    return out;
  }
  const Violation& first = violations.front();
  absl::StrAppend(&out, "FAIL seed ", config.seed, ": invariant ", first.invariant, " violated\n");
  absl::StrAppend(&out, "  reproduce: ", config.Reproducer(), " --trace\n");
  absl::StrAppend(&out, "  first violation: ", first.ToString(), "\n");
  if (violations.size() > 1) {
    absl::StrAppend(&out, "  (", violations.size() - 1, " more)\n");
    for (size_t i = 1; i < violations.size() && i < 5; ++i) {
      absl::StrAppend(&out, "  also: ", violations[i].ToString(), "\n");
    }
  }
  absl::StrAppend(&out, "  ", StatsLine(), "\n  liveness: ", liveness.ToString(), "\n");
  absl::StrAppend(&out, "  history excerpt: ", excerpt_of, " (", excerpt.size(), " of ",
                  history_events, " history lines):\n");
  for (const std::string& line : excerpt) absl::StrAppend(&out, "    ", line, "\n");
  return out;
}

// --- Construction -----------------------------------------------------------

namespace {
SimConfig WithDefaults(SimConfig config) {
  if (config.quiet_ms <= 0) config.quiet_ms = 5 * config.lease_ms + 5 * config.call_deadline_ms;
  return config;
}
}  // namespace

Simulator::Simulator(SimConfig run)
    : world_(WithDefaults(std::move(run))), disk_(&world_), network_(&world_), workload_(&world_) {
  std::vector<int> node_cluster;
  std::vector<core::PeerId> node_ids;
  for (const SimNode& node : world_.nodes()) {
    topology_.members.push_back(core::Member{node.id, absl::StrCat("c", node.cluster),
                                             absl::StrCat("sim:", node.index),
                                             core::PeerState::kVoter});
    node_cluster.push_back(node.cluster);
    node_ids.push_back(node.id);
  }
  // Every initial node of a cluster is one of its founding voters.
  std::map<core::ClusterId, std::vector<core::PeerId>> founders;
  for (const core::Member& m : topology_.members) founders[m.cluster].push_back(m.id);
  for (auto& [cluster, voters] : founders) {
    std::sort(voters.begin(), voters.end());
    topology_.founding.push_back(core::Configuration{cluster, 1, std::move(voters)});
  }
  CheckerOptions options;
  options.check_convergence = config().check_convergence;
  options.expect_liveness = config().faults == "none";
  options.check_durable_at_ok = config().check_durable_at_ok;
  auto checker =
      std::make_unique<Checker>(std::move(node_cluster), std::move(node_ids), disk_.stores(),
                                config().clusters, options, world_.clock());
  if (!config().unsafe.empty()) checker->SetDurableStores(disk_.durable_stores());
  world_.SetChecker(std::move(checker));
  world_.SetDrain([this](int node) { Drain(node); });
}

Simulator::~Simulator() = default;

// --- Run loop ---------------------------------------------------------------

bool Simulator::Step() {
  if (stopped_ || world_.idle()) return false;
  std::function<void()> event = world_.PopNext();
  SimStats& stats = world_.stats();
  stats.events++;
  event();
  if (world_.checker().failed()) stopped_ = true;
  if (stats.events >= config().max_events && !stopped_) {
    world_.checker().Fail("V", {}, absl::StrCat("livelock: ", stats.events, " events"));
    stopped_ = true;
  }
  return !stopped_;
}

void Simulator::RunUntil(TimeMs end, const std::function<bool()>& stop) {
  while (!stopped_ && !world_.idle() && world_.next_time() <= end && !stop()) Step();
  if (!stopped_ && world_.now() < end && (world_.idle() || world_.next_time() > end)) {
    world_.AdvanceTo(end);
  }
}

// --- Engines ----------------------------------------------------------------

void Simulator::StartEngine(SimNode& node) {
  core::EngineConfig engine_config;
  engine_config.self = node.id;
  engine_config.cluster = absl::StrCat("c", node.cluster);
  engine_config.incarnation = node.incarnation;
  engine_config.random_seed = world_.Draw();
  engine_config.call_deadline_ms = config().call_deadline_ms;
  engine_config.lease_ms = config().lease_ms;
  engine_config.catchup_interval_ms = config().catchup_interval_ms;
  // The engine RP_CHECKs its own invariants after every input (TigerBeetle's
  // invariants()); the Checker judges what clients and stores can see.
  engine_config.check_invariants = true;
  const core::MemoryState& store = disk_.store(node.index);
  core::DurableState recovered = store.Recover();
  world_.Trace(
      absl::StrCat(node.id, " start incarnation ", node.incarnation, " with ",
                   recovered.reservations.size(), " reservation(s), ", store.acceptors().size(),
                   " acceptor record(s), ", store.committed().size(), " committed key(s)"),
      {}, History::LineKind::kNodeFault, node.index);
  node.engine = std::make_unique<core::Engine>(engine_config, &store, std::move(recovered));
  node.engine->SetTopology(topology_, world_.now());
  // As the node does: catch up from a peer at every start.
  node.engine->StartCatchUp(world_.now());
  Drain(node.index);
}

void Simulator::Crash(SimNode& node) {
  world_.Trace(absl::StrCat(node.id, " CRASH (incarnation ", node.incarnation, ", ",
                            disk_.writes_in_flight(node.index), " write(s) in flight lost, ",
                            network_.open_requests(node.index), " request(s) unanswered)"),
               {}, History::LineKind::kNodeFault, node.index);
  disk_.OnCrash(node.index);
  world_.stats().crashes++;
  const core::EngineStats lost_stats = node.engine->stats();
  dead_engines_.puts_joined += lost_stats.puts_joined;
  dead_engines_.catchup_rounds += lost_stats.catchup_rounds;
  dead_engines_.catchup_keys_pulled += lost_stats.catchup_keys_pulled;
  node.engine.reset();
  network_.OnCrash(node.index);
  node.tick_at.reset();
  workload_.OnCrash(node.index);
}

void Simulator::Restart(SimNode& node) {
  node.incarnation++;  // never reused: the store outlives every engine
  StartEngine(node);
}

void Simulator::Drain(int index, bool after_tick) {
  SimNode& node = world_.node(index);
  while (node.engine && node.engine->HasEffects()) {
    std::vector<core::Effect> effects = node.engine->TakeEffects();
    for (core::Effect& effect : effects) Dispatch(index, effect);
  }
  ScheduleTick(node, after_tick);
}

void Simulator::Dispatch(int index, core::Effect& effect) {
  std::visit(
      [&](auto& fx) {
        using F = std::decay_t<decltype(fx)>;
        if constexpr (std::is_same_v<F, core::SendEffect>) {
          network_.HandleSend(index, std::move(fx));
        } else if constexpr (std::is_same_v<F, core::RespondEffect>) {
          network_.HandleRespond(index, std::move(fx));
        } else if constexpr (std::is_same_v<F, core::WriteEffect>) {
          disk_.HandleWrite(index, std::move(fx));
        } else if constexpr (std::is_same_v<F, core::PutDoneEffect>) {
          workload_.OnPutDone(index, fx);
        } else if constexpr (std::is_same_v<F, core::GetDoneEffect>) {
          workload_.OnGetDone(index, fx);
        } else if constexpr (std::is_same_v<F, core::ViolationEffect>) {
          History::Tags tags;
          world_.history().TagKey(tags, fx.key);
          world_.Trace(
              absl::StrCat(world_.node(index).id, " VIOLATION ", Quote(fx.key), ": ", fx.detail),
              tags);
          world_.checker().OnEngineViolation(index, fx);
        }
      },
      effect);
}

void Simulator::ScheduleTick(SimNode& node, bool after_tick) {
  if (!node.engine) return;
  std::optional<TimeMs> wake = node.engine->NextWakeup();
  if (!wake) return;
  // After Tick(now) nothing is due at `now` any more; never spin in place.
  const TimeMs at = std::max(*wake, after_tick ? world_.now() + 1 : world_.now());
  if (node.tick_at && *node.tick_at <= at) return;
  node.tick_at = at;
  const int index = node.index;
  const uint64_t incarnation = node.incarnation;
  world_.At(at, [this, index, incarnation, at] {
    SimNode& n = world_.node(index);
    if (!n.engine || n.incarnation != incarnation || n.tick_at != at) return;
    n.tick_at.reset();
    n.engine->Tick(world_.now());
    Drain(index, /*after_tick=*/true);
  });
}

void Simulator::ScheduleCrash(TimeMs after) {
  world_.At(world_.now() + after, [this] {
    if (!world_.faults_active()) return;
    const FaultParams& f = config().fault;
    std::vector<int> up;
    for (const SimNode& node : world_.nodes()) {
      if (node.engine) up.push_back(node.index);
    }
    const int down = world_.node_count() - static_cast<int>(up.size());
    if (down < f.max_down && !up.empty()) {
      SimNode& victim = world_.node(up[world_.Uniform(0, up.size() - 1)]);
      Crash(victim);
      const int index = victim.index;
      const uint64_t incarnation = victim.incarnation;
      // A missed ping shows it down, 1 to 3 s later, if it is still down.
      world_.At(world_.now() + static_cast<TimeMs>(world_.Uniform(1000, 3000)),
                [this, index, incarnation] {
                  const SimNode& node = world_.node(index);
                  if (world_.faults_active() && !node.engine && node.incarnation == incarnation) {
                    ShowDown(index, true);
                  }
                });
      world_.At(world_.now() + static_cast<TimeMs>(world_.Uniform(f.down_min_ms, f.down_max_ms)),
                [this, index, incarnation] {
                  SimNode& node = world_.node(index);
                  // Once faults are off, the quiet phase decides who is up.
                  if (!world_.faults_active() || node.engine || node.incarnation != incarnation) {
                    return;
                  }
                  Restart(node);
                  const uint64_t restarted = node.incarnation;
                  // The next ping shows it up again.
                  world_.At(world_.now() + static_cast<TimeMs>(world_.Uniform(0, 2000)),
                            [this, index, restarted] {
                              const SimNode& n = world_.node(index);
                              if (n.engine && n.incarnation == restarted) ShowDown(index, false);
                            });
                });
    }
    ScheduleCrash(world_.Exponential(f.crash_every_ms));
  });
}

void Simulator::ShowDown(int index, bool down) {
  const SimNode& shown = world_.node(index);
  bool changed = false;
  for (core::Member& m : topology_.members) {
    if (m.id != shown.id || m.state == core::PeerState::kCatchingUp) continue;
    const core::PeerState state = down ? core::PeerState::kDown : core::PeerState::kVoter;
    changed = changed || m.state != state;
    m.state = state;
  }
  if (!changed) return;
  world_.Trace(absl::StrCat("HINT ", shown.id, down ? " shown down" : " shown up"), {},
               History::LineKind::kGlobal);
  for (SimNode& node : world_.nodes()) {
    if (!node.engine) continue;
    node.engine->SetTopology(topology_, world_.now());
    Drain(node.index);
  }
}

void Simulator::ScheduleFalseHint(TimeMs after) {
  world_.At(world_.now() + after, [this] {
    if (!world_.faults_active()) return;
    const int index = static_cast<int>(world_.Uniform(0, world_.node_count() - 1));
    const SimNode& node = world_.node(index);
    if (node.engine) {
      ShowDown(index, true);
      const uint64_t incarnation = node.incarnation;
      world_.At(world_.now() + static_cast<TimeMs>(world_.Uniform(500, 4000)),
                [this, index, incarnation] {
                  const SimNode& n = world_.node(index);
                  if (n.engine && n.incarnation == incarnation) ShowDown(index, false);
                });
    }
    ScheduleFalseHint(world_.Exponential(4000));
  });
}

void Simulator::InjectMutationForTest(int node, const core::Mutation& mutation) {
  disk_.InjectMutationForTest(node, mutation);
}

// --- Phases -----------------------------------------------------------------

void Simulator::RunWorkload() {
  world_.Trace(absl::StrCat("BEGIN ", config().Reproducer()), {}, History::LineKind::kGlobal);
  for (SimNode& node : world_.nodes()) {
    node.incarnation = 1;
    StartEngine(node);
  }
  workload_.Start();
  if (config().fault.partition_every_ms > 0) {
    network_.SchedulePartition(world_.Exponential(config().fault.partition_every_ms));
  }
  if (config().fault.crash_every_ms > 0) {
    ScheduleCrash(world_.Exponential(config().fault.crash_every_ms));
  }
  if (config().fault.crash_every_ms > 0 || config().fault.partition_every_ms > 0) {
    ScheduleFalseHint(world_.Exponential(4000));
  }
  RunUntil(config().workload_max_ms, [this] { return workload_.finished(); });
}

void Simulator::StartQuiet() {
  workload_.Stop();
  world_.StopFaults();
  network_.Heal();
  // The directory's pings reach everyone again.
  for (const SimNode& node : world_.nodes()) ShowDown(node.index, false);
}

bool Simulator::RunQuietMinorityDown(TimeMs minority_ms) {
  // One node of every cluster stays down (crashed now if none is): every
  // cluster has a majority up, so every reservation at an up node must be
  // resolved by the time this part ends (invariant K).
  std::string down;
  for (int c = 0; c < config().clusters; ++c) {
    std::vector<int> members, dead;
    for (const SimNode& node : world_.nodes()) {
      if (node.cluster != c) continue;
      members.push_back(node.index);
      if (!node.engine) dead.push_back(node.index);
    }
    const int keep = dead.empty() ? members[world_.Uniform(0, members.size() - 1)]
                                  : dead[world_.Uniform(0, dead.size() - 1)];
    if (world_.node(keep).engine) Crash(world_.node(keep));
    for (int m : members) {
      if (m != keep && !world_.node(m).engine) Restart(world_.node(m));
    }
    absl::StrAppend(&down, " ", world_.node(keep).id);
  }
  world_.Trace(absl::StrCat("QUIET: faults off, partitions healed, down for ", minority_ms,
                            " ms: one node per cluster:", down),
               {}, History::LineKind::kGlobal);
  RunUntil(world_.now() + minority_ms, [] { return false; });
  if (stopped_) return false;
  std::vector<bool> up;
  for (const SimNode& node : world_.nodes()) up.push_back(node.engine != nullptr);
  world_.checker().CheckNoReservations(
      up, absl::StrCat("after ", minority_ms,
                       " ms with faults off and only one node of each cluster down"));
  if (world_.checker().failed()) {
    stopped_ = true;
    return false;
  }
  return true;
}

void Simulator::RunQuiet() {
  if (stopped_) return;
  StartQuiet();
  TimeMs minority_ms = config().quiet_minority_down_ms;
  // Worst case for a reservation at an up node: a resolve already in flight
  // to an unreachable node (4 call deadlines), the lease, a resolve sent
  // first to the coordinator that is down (4 more), then Paxos rounds at the
  // majority that is up.
  if (minority_ms == 0) minority_ms = 2 * config().lease_ms + 12 * config().call_deadline_ms;
  if (config().fault.crash_every_ms > 0 && minority_ms > 0 && config().nodes_per_cluster >= 3) {
    if (!RunQuietMinorityDown(minority_ms)) return;
  }
  world_.Trace("QUIET: faults off, partitions healed, every node up", {},
               History::LineKind::kGlobal);
  for (SimNode& node : world_.nodes()) {
    if (!node.engine) Restart(node);
  }
  const TimeMs end = world_.now() + config().quiet_ms;
  RunUntil(end, [] { return false; });
}

void Simulator::RunProbe() {
  if (stopped_ || !config().probe) return;
  world_.Trace(
      "PROBE: a fresh key per node, every node racing on one fresh key, a linearizable "
      "get of every committed key",
      {}, History::LineKind::kGlobal);
  Workload::Probe probe;
  workload_.StartProbePuts(&probe);
  std::set<core::Key> keys;
  for (int i = 0; i < world_.node_count(); ++i) {
    for (const auto& [key, value] : disk_.store(i).committed()) keys.insert(key);
  }
  workload_.StartProbeGets(keys, &probe);
  const TimeMs end = world_.now() + config().quiet_ms;
  RunUntil(end, [this] { return workload_.pending() == 0; });
  if (stopped_) return;
  workload_.CheckProbe(probe);
  // Let the probes' asynchronous commits land before the final checks.
  RunUntil(world_.now() + 2 * config().call_deadline_ms, [] { return false; });
}

void Simulator::CheckFinal() {
  if (stopped_) return;
  world_.Trace("CHECK", {}, History::LineKind::kGlobal);
  std::vector<int> open_inbound;
  for (const SimNode& node : world_.nodes()) {
    if (!node.engine) {
      world_.checker().Fail("C", {}, absl::StrCat(node.id, " is down at the end"));
    } else if (config().check_convergence && !node.engine->caught_up()) {
      world_.checker().Fail("5", {}, absl::StrCat(node.id, " never completed a catch-up round"));
    }
    open_inbound.push_back(network_.open_requests(node.index));
  }
  world_.checker().CheckFinal(open_inbound);
}

SimResult Simulator::Result() const {
  SimResult result;
  result.config = config();
  result.violations = world_.checker().violations();
  if (!result.violations.empty()) {
    std::vector<core::PeerId> node_ids;
    for (const SimNode& node : world_.nodes()) node_ids.push_back(node.id);
    History::Excerpt excerpt =
        world_.history().ExcerptOf(result.violations.front(), node_ids, config().trace_tail);
    result.excerpt = std::move(excerpt.lines);
    result.excerpt_of = std::move(excerpt.of);
  }
  result.history_events = world_.history().size();
  result.history_digest = world_.history().digest();
  result.liveness = world_.checker().CountLiveness();
  result.stats = world_.stats();
  result.stats.end_ms = world_.now();
  result.stats.puts_joined = dead_engines_.puts_joined;
  result.stats.catchup_rounds = dead_engines_.catchup_rounds;
  result.stats.catchup_keys_pulled = dead_engines_.catchup_keys_pulled;
  for (const SimNode& node : world_.nodes()) {
    if (!node.engine) continue;
    const core::EngineStats s = node.engine->stats();
    result.stats.puts_joined += s.puts_joined;
    result.stats.catchup_rounds += s.catchup_rounds;
    result.stats.catchup_keys_pulled += s.catchup_keys_pulled;
  }
  return result;
}

SimResult Simulator::Run() {
  RunWorkload();
  RunQuiet();
  RunProbe();
  CheckFinal();
  return Result();
}

SimResult RunSimulation(const SimConfig& config) {
  Simulator sim(config);
  return sim.Run();
}

}  // namespace replicator::sim
