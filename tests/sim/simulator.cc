#include "sim/simulator.h"

#include <algorithm>
#include <map>
#include <memory>
#include <set>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
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
      ", pulled ", s.catchup_keys_pulled, " in ", s.catchup_pulls, " pulls (", s.pulls_resumed,
      " resumed) probe_race: ok ", s.probe_race_winners, " conflict ", s.probe_race_conflicts,
      config.fault.spares == 0 && config.fault.change_every_ms == 0 &&
              config.fault.pause_every_ms == 0 && config.fault.new_clusters == 0
          ? std::string()
          : absl::StrCat(" membership: joins ", s.joins, ", foundings ", s.foundings,
                         " (late learners ", s.late_learners, "), epochs gained ", s.epochs_gained,
                         " (promotions ", s.promotions, ", removals ", s.removals, "), changes ",
                         s.changes, " (ok ", s.changes_ok, ", refused ", s.changes_refused,
                         ", busy ", s.changes_busy, ", unavailable ", s.changes_unavailable,
                         ", lost ", s.changes_lost, ", replacements ", s.replacements, "), pauses ",
                         s.pauses, " (across changes ", s.pauses_across_changes,
                         "), clusters retired ", s.retirements, " (removals asked ",
                         s.cluster_removals_asked, ")"),
      !config.unsafe_disk() ? std::string()
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
    : world_(WithDefaults(std::move(run))),
      disk_(&world_),
      network_(&world_),
      workload_(&world_),
      shown_down_(world_.node_count(), false),
      traced_epoch_(world_.node_count(), 0),
      pause_generation_(world_.node_count(), 0),
      told_(world_.node_count(), std::vector<bool>(world_.config().total_clusters(), false)),
      shown_(world_.node_count()) {
  std::vector<int> node_cluster;
  std::vector<core::PeerId> node_ids;
  // Every initial node of a cluster is one of its founding voters; spares
  // are no one's.
  const int clusters = config().total_clusters();
  std::vector<core::ClusterId> cluster_ids;
  std::vector<std::vector<core::PeerId>> founders(clusters);
  std::vector<uint64_t> generations;
  for (int c = 0; c < clusters; ++c) {
    cluster_ids.push_back(absl::StrCat("c", c));
    // The initial clusters at generations 1, 2, ...; a cluster founded
    // mid-run gets its founding set and generation by consensus (0 here:
    // the checker learns them from the first node that knows them).
    generations.push_back(c < config().clusters ? static_cast<uint64_t>(c) + 1 : 0);
  }
  for (const SimNode& node : world_.nodes()) {
    node_cluster.push_back(node.cluster);
    node_ids.push_back(node.id);
    if (!node.spare) founders[node.cluster].push_back(node.id);
  }
  for (int c = 0; c < clusters; ++c) {
    std::sort(founders[c].begin(), founders[c].end());
    if (c < config().clusters) {
      topology_.founding.push_back(
          core::Configuration{cluster_ids[c], 1, founders[c], generations[c]});
    } else {
      founders[c].clear();
    }
  }
  CheckerOptions options;
  options.check_convergence = config().check_convergence;
  options.expect_liveness = config().faults == "none";
  options.check_durable_at_ok = config().check_durable_at_ok;
  auto checker = std::make_unique<Checker>(std::move(node_cluster), std::move(node_ids),
                                           disk_.stores(), clusters, options, world_.clock());
  checker->SetMembership(std::move(cluster_ids), std::move(founders), std::move(generations));
  if (config().unsafe_disk()) checker->SetDurableStores(disk_.durable_stores());
  world_.SetChecker(std::move(checker));
  world_.SetDrain([this](int node) { Drain(node); });
  topology_.members = BuildTopology().members;
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
  if (node.retired) return;  // stopped for good
  core::EngineConfig engine_config;
  engine_config.self = node.id;
  engine_config.cluster = absl::StrCat("c", node.cluster);
  engine_config.incarnation = node.incarnation;
  engine_config.random_seed = world_.Draw();
  engine_config.call_deadline_ms = config().call_deadline_ms;
  engine_config.lease_ms = config().lease_ms;
  engine_config.catchup_interval_ms = config().catchup_interval_ms;
  if (config().catchup_page_bytes > 0) {
    engine_config.catchup_pull_max_bytes = config().catchup_page_bytes;
  }
  engine_config.shard = core::ShardRange{config().shard, config().shards};
  // A learner (a spare that joined) catches up, then proposes its own
  // promotion by consensus among the voters.
  engine_config.auto_promote = true;
  engine_config.unsafe_membership = config().unsafe_membership();
  engine_config.unsafe_forget_decided = config().unsafe == "forget-decided";
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
  world_.checker().OnEngineStart(node.index);
  // A node that starts joins the directory, whose answer is the whole map.
  for (int c = 0; c < config().total_clusters(); ++c) told_[node.index][c] = Arrived(c);
  shown_[node.index] = TopologyFor(node.index);
  node.engine->SetTopology(shown_[node.index], world_.now());
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
  dead_engines_.catchup_pulls += lost_stats.catchup_pulls;
  world_.stats().changes_lost += world_.checker().OnNodeCrashed(node.index);
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
  ObserveConfigurations(node);
  ScheduleTick(node, after_tick);
}

void Simulator::Dispatch(int index, core::Effect& effect) {
  std::visit(
      [&](auto& fx) {
        using F = std::decay_t<decltype(fx)>;
        if constexpr (std::is_same_v<F, core::SendEffect>) {
          network_.HandleSend(index, std::move(fx));
        } else if constexpr (std::is_same_v<F, core::RespondEffect>) {
          world_.checker().OnRespond(index, fx.response);
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
          if (fx.key.rfind("config/", 0) == 0) {
            world_.history().TagCluster(tags, absl::StrCat("c", world_.node(index).cluster));
          }
          world_.Trace(
              absl::StrCat(world_.node(index).id, " VIOLATION ", Quote(fx.key), ": ", fx.detail),
              tags);
          world_.checker().OnEngineViolation(index, fx);
        } else if constexpr (std::is_same_v<F, core::ChangeDoneEffect>) {
          OnChangeDone(index, fx);
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
    int down = 0;
    for (const SimNode& node : world_.nodes()) {
      if (node.engine) {
        up.push_back(node.index);
      } else if (node.joined && !node.retired) {
        ++down;
      }
    }
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
  shown_down_[index] = down;
  const core::Topology next = BuildTopology();
  if (next.members == topology_.members) return;  // a learner is never shown down
  world_.Trace(absl::StrCat("HINT ", shown.id, down ? " shown down" : " shown up"), {},
               History::LineKind::kGlobal);
  PublishTopology();
}

// --- The directory and membership -------------------------------------------

core::Topology Simulator::BuildTopology() const {
  core::Topology t;
  t.founding = topology_.founding;
  for (const SimNode& node : world_.nodes()) {
    if (!node.joined) continue;
    const core::ClusterId cluster = absl::StrCat("c", node.cluster);
    const core::Configuration* newest = world_.checker().Newest(cluster);
    const bool voter = newest != nullptr ? newest->Has(node.id) : !node.spare;
    core::PeerState state = core::PeerState::kCatchingUp;
    if (voter) state = shown_down_[node.index] ? core::PeerState::kDown : core::PeerState::kVoter;
    t.members.push_back(core::Member{node.id, cluster, absl::StrCat("sim:", node.index), state});
  }
  return t;
}

bool Simulator::PublishTopology() {
  core::Topology next = BuildTopology();
  if (next.members == topology_.members && next.founding == topology_.founding) return false;
  topology_ = std::move(next);
  for (SimNode& node : world_.nodes()) ShowTopology(node.index);
  return true;
}

core::Topology Simulator::TopologyFor(int index) const {
  core::Topology t;
  auto told = [&](const core::ClusterId& cluster) {
    for (int c = 0; c < config().total_clusters(); ++c) {
      if (cluster == absl::StrCat("c", c)) return told_[index][c];
    }
    return false;
  };
  for (const core::Member& m : topology_.members) {
    if (told(m.cluster)) t.members.push_back(m);
  }
  for (const core::Configuration& f : topology_.founding) {
    if (told(f.cluster)) t.founding.push_back(f);
  }
  return t;
}

void Simulator::ShowTopology(int index) {
  SimNode& node = world_.node(index);
  if (!node.engine) return;
  core::Topology t = TopologyFor(index);
  if (t.members == shown_[index].members && t.founding == shown_[index].founding) return;
  shown_[index] = t;
  node.engine->SetTopology(std::move(t), world_.now());
  Drain(index);
}

bool Simulator::Arrived(int cluster) const {
  return cluster < config().clusters || arrived_.contains(cluster);
}

void Simulator::ScheduleFoundings() {
  const int late = config().total_clusters() - config().clusters;
  if (late <= 0) return;
  // In the second quarter of the window, after keys exist; in cluster order,
  // so that generations follow the order of founding.
  const TimeMs window = std::max<TimeMs>(config().fault.window_ms, 4000);
  std::vector<TimeMs> at;
  for (int i = 0; i < late; ++i) {
    at.push_back(static_cast<TimeMs>(world_.Uniform(window / 4, window / 2)));
  }
  std::sort(at.begin(), at.end());
  for (int i = 0; i < late; ++i) {
    const int cluster = config().clusters + i;
    world_.At(at[i], [this, cluster] { Found(cluster); });
  }
}

void Simulator::Found(int cluster) {
  if (Arrived(cluster)) return;
  arrived_.insert(cluster);
  world_.stats().foundings++;
  const core::ClusterId id = absl::StrCat("c", cluster);
  std::vector<core::PeerId> joining;
  for (SimNode& node : world_.nodes()) {
    if (node.cluster == cluster && !node.spare) {
      node.joined = true;
      joining.push_back(node.id);
    }
  }
  History::Tags tags;
  world_.history().TagCluster(tags, id);
  world_.Trace(absl::StrCat("FOUND ", id, ": ", absl::StrJoin(joining, ","),
                            " join; the oldest cluster founds it by consensus"),
               tags, History::LineKind::kGlobal);
  topology_.members = BuildTopology().members;
  for (SimNode& node : world_.nodes()) {
    if (node.cluster != cluster || node.spare) continue;
    node.incarnation = 1;
    StartEngine(node);
  }
  // Every other node hears of its members when the directory's
  // notification reaches it: most soon, some late (a lagging watcher,
  // gossip).
  const TimeMs lag = std::max<TimeMs>(1, config().fault.found_lag_ms);
  for (SimNode& node : world_.nodes()) {
    if (node.cluster == cluster) continue;
    const bool late = world_.faults_active() && world_.Chance(1.0 / 3);
    const TimeMs after =
        static_cast<TimeMs>(late ? world_.Uniform(lag, 4 * lag) : world_.Uniform(0, lag));
    const int index = node.index;
    world_.At(world_.now() + after, [this, index, cluster, late] { Tell(index, cluster, late); });
  }
  // Its spares join later, as the other clusters' do.
  const TimeMs latest = std::max<TimeMs>(world_.now() + 500, config().fault.window_ms * 3 / 4);
  for (const SimNode& node : world_.nodes()) {
    if (node.cluster != cluster || !node.spare) continue;
    const int index = node.index;
    world_.At(static_cast<TimeMs>(world_.Uniform(world_.now(), latest)),
              [this, index] { Join(index); });
  }
}

void Simulator::Tell(int index, int cluster, bool late) {
  if (told_[index][cluster]) return;
  told_[index][cluster] = true;
  const SimNode& node = world_.node(index);
  if (!node.engine) return;  // told at its start
  if (late) world_.stats().late_learners++;
  world_.Trace(absl::StrCat("HINT ", node.id, " hears of c", cluster, late ? " (late)" : ""), {},
               History::LineKind::kGlobal);
  ShowTopology(index);
}

uint64_t Simulator::NewestEpoch(int cluster) const {
  const core::Configuration* newest = world_.checker().Newest(absl::StrCat("c", cluster));
  return newest == nullptr ? 0 : newest->epoch;
}

void Simulator::ObserveConfigurations(SimNode& node) {
  if (!node.engine) return;
  const core::Configuration& own = node.engine->configuration();
  if (own.epoch != traced_epoch_[node.index]) {
    traced_epoch_[node.index] = own.epoch;
    History::Tags tags;
    world_.history().TagCluster(tags, absl::StrCat("c", node.cluster));
    world_.Trace(absl::StrCat("CONFIG ", node.id, " adopts ", Describe(own)), tags,
                 History::LineKind::kGlobal);
  }
  if (!world_.checker().OnConfigurations(node.index, node.engine->configurations())) return;
  // A new epoch: the directory shows who votes now, a moment later (as the
  // nodes tell it). The founding epochs are in the first topology already.
  bool beyond_founding = false;
  for (const auto& [key, config] : world_.checker().configurations()) {
    beyond_founding = beyond_founding || key.second > 1;
  }
  if (!beyond_founding || publish_scheduled_) return;
  publish_scheduled_ = true;
  world_.At(world_.now() + static_cast<TimeMs>(world_.Uniform(0, 200)), [this] {
    publish_scheduled_ = false;
    const core::Topology before = topology_;
    if (!PublishTopology()) return;
    std::string shown;
    for (size_t i = 0; i < topology_.members.size(); ++i) {
      const core::Member& m = topology_.members[i];
      if (i < before.members.size() && before.members[i].state == m.state) continue;
      absl::StrAppend(&shown, " ", m.id,
                      m.state == core::PeerState::kCatchingUp ? " catching up" : " voter");
    }
    world_.Trace(absl::StrCat("HINT directory shows", shown), {}, History::LineKind::kGlobal);
  });
}

void Simulator::Join(int index) {
  SimNode& node = world_.node(index);
  if (node.joined || node.retired) return;
  node.joined = true;
  world_.stats().joins++;
  History::Tags tags;
  world_.history().TagCluster(tags, absl::StrCat("c", node.cluster));
  world_.Trace(
      absl::StrCat("JOIN ", node.id, ": a member of c", node.cluster, ", catching up (a learner)"),
      tags, History::LineKind::kGlobal);
  topology_ = BuildTopology();
  node.incarnation = 1;
  StartEngine(node);
  for (SimNode& other : world_.nodes()) {
    if (other.index != index) ShowTopology(other.index);
  }
  // A replacement: a voter goes while the newcomer catches up and
  // promotes itself.
  if (world_.faults_active() && world_.Chance(config().fault.replace)) {
    const int cluster = node.cluster;
    world_.At(world_.now() + static_cast<TimeMs>(world_.Uniform(0, 3000)),
              [this, cluster] { RequestRemoval(cluster); });
  }
  // Half the time another node of the cluster pauses through the changes
  // the join sets off (the promotion, the replacement's removal).
  if (world_.faults_active() && config().fault.pause_every_ms > 0 && !ClusterPaused(node.cluster) &&
      world_.Chance(0.5)) {
    std::vector<int> others;
    for (const SimNode& n : world_.nodes()) {
      if (n.cluster == node.cluster && n.joined && n.index != index) others.push_back(n.index);
    }
    Pause(others[world_.Uniform(0, others.size() - 1)], /*through_changes=*/true);
  }
}

void Simulator::ScheduleJoins() {
  const TimeMs latest = config().fault.window_ms * 3 / 4;
  for (const SimNode& node : world_.nodes()) {
    // A cluster founded mid-run schedules its spares when it is founded.
    if (!node.spare || node.late_cluster) continue;
    const int index = node.index;
    world_.At(static_cast<TimeMs>(world_.Uniform(0, latest)), [this, index] { Join(index); });
  }
}

bool Simulator::MembershipDone() const {
  if (world_.now() < config().fault.window_ms) return false;
  for (const SimNode& node : world_.nodes()) {
    if (!node.joined) return false;
    for (int c = 0; c < config().total_clusters(); ++c) {
      if (!told_[node.index][c]) return false;
    }
  }
  return true;
}

void Simulator::ScheduleChange(TimeMs after) {
  world_.At(world_.now() + after, [this] {
    if (!world_.faults_active()) return;
    std::vector<int> founded;
    for (int c = 0; c < config().total_clusters(); ++c) {
      if (Arrived(c)) founded.push_back(c);
    }
    RequestRemoval(founded[world_.Uniform(0, founded.size() - 1)]);
    ScheduleChange(world_.Exponential(config().fault.change_every_ms));
  });
}

void Simulator::RequestRemoval(int cluster) {
  if (!world_.faults_active()) return;
  std::vector<int> live;
  const core::Configuration* newest = nullptr;
  for (const SimNode& node : world_.nodes()) {
    if (node.cluster != cluster || !node.engine) continue;
    live.push_back(node.index);
    const core::Configuration& c = node.engine->configuration();
    if (newest == nullptr || c.epoch > newest->epoch) newest = &c;
  }
  if (live.empty() || newest == nullptr || newest->voters.empty()) return;
  // Down to 3 voters; 1 time in 10 also below, which must be refused.
  if (newest->voters.size() <= 3 && !world_.Chance(0.1)) return;
  core::MembershipChange change;
  change.kind = core::MembershipChange::Kind::kRemove;
  change.peer = newest->voters[world_.Uniform(0, newest->voters.size() - 1)];
  const core::Configuration base = *newest;
  const int asked = live[world_.Uniform(0, live.size() - 1)];
  SimNode& node = world_.node(asked);
  bool joining = false;  // a spare of the cluster catching up: a replacement
  for (const core::Member& m : topology_.members) {
    const SimNode* spare = nullptr;
    for (const SimNode& n : world_.nodes()) {
      if (n.id == m.id) spare = &n;
    }
    joining =
        joining || (spare != nullptr && spare->spare && spare->cluster == cluster &&
                    m.state == core::PeerState::kCatchingUp && !world_.checker().EverVoter(m.id));
  }
  const uint64_t id = next_change_id_++;
  SimStats& stats = world_.stats();
  stats.changes++;
  if (joining) stats.replacements++;
  History::Tags tags;
  world_.history().TagCluster(tags, base.cluster);
  world_.Trace(absl::StrCat("CHANGE #", id, " at ", node.id, ": ", Describe(change), " (newest ",
                            Describe(base), joining ? ", a spare joining" : "", ")"),
               tags, History::LineKind::kGlobal);
  world_.checker().OnChangeRequested(id, asked, change);
  node.engine->ChangeMembership(id, change, world_.now());
  Drain(asked);
}

void Simulator::OnChangeDone(int index, const core::ChangeDoneEffect& done) {
  const SimNode& node = world_.node(index);
  History::Tags tags;
  world_.history().TagCluster(tags, absl::StrCat("c", node.cluster));
  world_.Trace(
      absl::StrCat("CHANGE #", done.change_id, " at ", node.id, " -> ", Describe(done.outcome)),
      tags, History::LineKind::kGlobal);
  SimStats& stats = world_.stats();
  switch (done.outcome.kind) {
    case core::ChangeOutcome::Kind::kOk:
      stats.changes_ok++;
      break;
    case core::ChangeOutcome::Kind::kInvalidArgument:
      stats.changes_refused++;
      break;
    case core::ChangeOutcome::Kind::kBusy:
      stats.changes_busy++;
      break;
    case core::ChangeOutcome::Kind::kUnavailable:
      stats.changes_unavailable++;
      break;
  }
  world_.checker().OnChangeDone(index, done);
  cluster_removals_pending_.erase(done.change_id);
  if (cluster_removals_.contains(done.change_id) && !cluster_removed_) {
    if (done.outcome.kind == core::ChangeOutcome::Kind::kOk || done.outcome.config.removed != 0) {
      cluster_removed_ = true;
    } else {
      // Not decided in time, or asked of a node that did not know the
      // cluster yet: the operator asks again.
      world_.At(world_.now() + 1000, [this] { RequestClusterRemoval(); });
    }
  }
}

void Simulator::ScheduleRetirement() {
  if (config().fault.retire <= 0 || !world_.Chance(config().fault.retire)) return;
  const TimeMs window = std::max<TimeMs>(config().fault.window_ms, 4000);
  world_.At(static_cast<TimeMs>(world_.Uniform(window / 2, window * 3 / 4)), [this] { Retire(); });
}

void Simulator::Retire() {
  if (!world_.faults_active() || retired_cluster_ >= 0) return;
  // A founded cluster other than the first (generation 1: never removable).
  std::vector<int> candidates;
  for (int c = 1; c < config().total_clusters(); ++c) {
    if (Arrived(c) && world_.checker().Newest(absl::StrCat("c", c)) != nullptr) {
      candidates.push_back(c);
    }
  }
  if (candidates.empty()) {
    world_.At(world_.now() + 500, [this] { Retire(); });
    return;
  }
  const int cluster = candidates[world_.Uniform(0, candidates.size() - 1)];
  retired_cluster_ = cluster;
  History::Tags tags;
  world_.history().TagCluster(tags, absl::StrCat("c", cluster));
  world_.Trace(absl::StrCat("DRAIN c", cluster, ": clients send its nodes nothing more"), tags,
               History::LineKind::kGlobal);
  for (SimNode& node : world_.nodes()) {
    if (node.cluster == cluster) node.draining = true;
  }
  RetireWhenDrained(cluster, world_.now() + 10000, std::nullopt);
}

void Simulator::RetireWhenDrained(int cluster, TimeMs give_up,
                                  std::optional<TimeMs> drained_since) {
  bool drained = true;
  for (const SimNode& node : world_.nodes()) {
    if (node.cluster == cluster && !workload_.Idle(node.index)) drained = false;
  }
  for (int i = 0; drained && i < world_.node_count(); ++i) {
    for (const auto& [key, r] : disk_.store(i).reservations()) {
      for (const SimNode& node : world_.nodes()) {
        if (node.id == r.proposal.coordinator && node.cluster == cluster) drained = false;
      }
    }
  }
  History::Tags tags;
  world_.history().TagCluster(tags, absl::StrCat("c", cluster));
  // Drained for longer than any message takes: no reserve its nodes sent
  // is still on its way.
  const FaultParams& f = config().fault;
  const TimeMs quiet_for = f.net_max_ms + f.slow_message_max_ms + 100;
  if (drained && !drained_since) drained_since = world_.now();
  if (!drained) drained_since.reset();
  if (!drained || world_.now() - *drained_since < quiet_for) {
    if (world_.now() < give_up && world_.faults_active()) {
      world_.At(world_.now() + 100, [this, cluster, give_up, drained_since] {
        RetireWhenDrained(cluster, give_up, drained_since);
      });
      return;
    }
    world_.Trace(absl::StrCat("DRAIN c", cluster, " abandoned: not drained in time"), tags,
                 History::LineKind::kGlobal);
    for (SimNode& node : world_.nodes()) {
      if (node.cluster == cluster) node.draining = false;
    }
    retired_cluster_ = -1;
    return;
  }
  world_.stats().retirements++;
  world_.Trace(
      absl::StrCat("RETIRE c", cluster,
                   ": drained; every node of it stopped for good; the operator removes it"),
      tags, History::LineKind::kGlobal);
  for (SimNode& node : world_.nodes()) {
    if (node.cluster != cluster) continue;
    node.retired = true;
    node.joined = true;  // a spare that had not joined never will
    if (node.engine) Crash(node);
    // Missed pings show it down, 1 to 3 s later.
    const int index = node.index;
    world_.At(world_.now() + static_cast<TimeMs>(world_.Uniform(1000, 3000)),
              [this, index] { ShowDown(index, true); });
  }
  world_.checker().OnClusterRetired(cluster);
  RequestClusterRemoval();
}

void Simulator::RequestClusterRemoval() {
  if (cluster_removed_) return;
  std::vector<int> live;
  for (const SimNode& node : world_.nodes()) {
    if (node.cluster == 0 && node.engine) live.push_back(node.index);
  }
  if (live.empty()) {
    world_.At(world_.now() + 500, [this] { RequestClusterRemoval(); });
    return;
  }
  const int asked = live[world_.Uniform(0, live.size() - 1)];
  core::MembershipChange change;
  change.kind = core::MembershipChange::Kind::kRemoveCluster;
  change.cluster = absl::StrCat("c", retired_cluster_);
  const uint64_t id = next_change_id_++;
  cluster_removals_.insert(id);
  cluster_removals_pending_.insert(id);
  world_.stats().cluster_removals_asked++;
  SimNode& node = world_.node(asked);
  History::Tags tags;
  world_.history().TagCluster(tags, change.cluster);
  world_.Trace(absl::StrCat("CHANGE #", id, " at ", node.id, ": ", Describe(change)), tags,
               History::LineKind::kGlobal);
  world_.checker().OnChangeRequested(id, asked, change);
  node.engine->ChangeMembership(id, change, world_.now());
  Drain(asked);
  WatchClusterRemoval(id, asked, node.incarnation);
}

void Simulator::WatchClusterRemoval(uint64_t id, int asked, uint64_t incarnation) {
  // Its node may crash before it answers: then the operator asks again.
  world_.At(world_.now() + 2 * config().call_deadline_ms, [this, id, asked, incarnation] {
    if (cluster_removed_ || !cluster_removals_pending_.contains(id)) return;
    const SimNode& n = world_.node(asked);
    if (!n.engine || n.incarnation != incarnation) {
      cluster_removals_pending_.erase(id);
      RequestClusterRemoval();
    } else {
      WatchClusterRemoval(id, asked, incarnation);
    }
  });
}

void Simulator::SchedulePause(TimeMs after) {
  world_.At(world_.now() + after, [this] {
    if (!world_.faults_active()) return;
    SchedulePause(world_.Exponential(config().fault.pause_every_ms));
    std::vector<int> candidates;
    for (const SimNode& node : world_.nodes()) {
      if (node.joined && !node.retired && !ClusterPaused(node.cluster)) {
        candidates.push_back(node.index);
      }
    }
    if (!candidates.empty()) {
      Pause(candidates[world_.Uniform(0, candidates.size() - 1)], /*through_changes=*/false);
    }
  });
}

bool Simulator::ClusterPaused(int cluster) const {
  for (const SimNode& node : world_.nodes()) {
    if (node.cluster == cluster && network_.isolated(node.index)) return true;
  }
  return false;
}

void Simulator::Pause(int index, bool through_changes) {
  const FaultParams& f = config().fault;
  const SimNode& node = world_.node(index);
  const TimeMs length = static_cast<TimeMs>(world_.Uniform(f.pause_min_ms, f.pause_max_ms));
  const uint64_t generation = ++pause_generation_[index];
  const uint64_t epoch = NewestEpoch(node.cluster);
  network_.Isolate(index, true);
  world_.stats().pauses++;
  History::Tags tags;
  world_.history().TagCluster(tags, absl::StrCat("c", node.cluster));
  world_.Trace(absl::StrCat("PAUSE ", node.id, " cut off from every node for ", length, " ms",
                            through_changes ? ", or until its cluster moved on by two epochs" : ""),
               tags, History::LineKind::kGlobal);
  // A missed ping shows it down, 1 to 3 s in, if it is still cut off.
  world_.At(world_.now() + static_cast<TimeMs>(world_.Uniform(1000, 3000)),
            [this, index, generation] {
              if (world_.faults_active() && network_.isolated(index) &&
                  pause_generation_[index] == generation && world_.node(index).engine) {
                ShowDown(index, true);
              }
            });
  const TimeMs give_up = world_.now() + 3 * f.pause_max_ms;
  world_.At(world_.now() + length, [this, index, generation, epoch, through_changes, give_up] {
    ResumeWhenDue(index, generation, epoch, through_changes, give_up);
  });
}

void Simulator::ResumeWhenDue(int index, uint64_t generation, uint64_t epoch, bool through_changes,
                              TimeMs give_up) {
  // Once faults are off, the quiet phase has reconnected it.
  if (!world_.faults_active() || pause_generation_[index] != generation) return;
  const SimNode& n = world_.node(index);
  const uint64_t now_epoch = NewestEpoch(n.cluster);
  if (through_changes && now_epoch < epoch + 2 && world_.now() < give_up) {
    world_.At(world_.now() + 500, [this, index, generation, epoch, give_up] {
      ResumeWhenDue(index, generation, epoch, /*through_changes=*/true, give_up);
    });
    return;
  }
  network_.Isolate(index, false);
  if (now_epoch >= epoch + 2) world_.stats().pauses_across_changes++;
  History::Tags t;
  world_.history().TagCluster(t, absl::StrCat("c", n.cluster));
  world_.Trace(absl::StrCat("RESUME ", n.id, ": its cluster went from epoch ", epoch, " to ",
                            now_epoch, " meanwhile"),
               t, History::LineKind::kGlobal);
  if (n.engine) ShowDown(index, false);
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
    if (!node.joined) continue;  // a spare starts when it joins
    node.incarnation = 1;
    StartEngine(node);
  }
  workload_.Start();
  const FaultParams& f = config().fault;
  if (f.partition_every_ms > 0) {
    network_.SchedulePartition(world_.Exponential(f.partition_every_ms));
  }
  if (f.crash_every_ms > 0) ScheduleCrash(world_.Exponential(f.crash_every_ms));
  if (f.crash_every_ms > 0 || f.partition_every_ms > 0 || f.pause_every_ms > 0) {
    ScheduleFalseHint(world_.Exponential(4000));
  }
  ScheduleJoins();
  ScheduleFoundings();
  ScheduleRetirement();
  if (f.change_every_ms > 0) ScheduleChange(world_.Exponential(f.change_every_ms));
  if (f.pause_every_ms > 0) SchedulePause(world_.Exponential(f.pause_every_ms));
  // Every spare joins, and the window passes, before the quiet phase.
  RunUntil(config().workload_max_ms, [this] { return workload_.finished() && MembershipDone(); });
}

void Simulator::StartQuiet() {
  // A cluster not founded yet, or a spare that has not joined yet (the
  // workload phase hit its time bound), joins now: the quiet phase must see
  // every node; and the directory's map reaches everyone.
  for (int c = config().clusters; c < config().total_clusters(); ++c) Found(c);
  for (const SimNode& node : world_.nodes()) {
    if (!node.joined) Join(node.index);
  }
  workload_.Stop();
  world_.StopFaults();
  network_.Heal();
  for (const SimNode& node : world_.nodes()) {
    for (int c = 0; c < config().total_clusters(); ++c) Tell(node.index, c, false);
  }
  // The directory's pings reach everyone again.
  for (const SimNode& node : world_.nodes()) {
    if (!node.retired) ShowDown(node.index, false);
  }
}

bool Simulator::RunQuietMinorityDown(TimeMs minority_ms) {
  // One node of every cluster stays down (crashed now if none is): every
  // cluster has a majority up, so every reservation at an up node must be
  // resolved by the time this part ends (invariant K).
  std::string down;
  for (int c = 0; c < config().total_clusters(); ++c) {
    std::vector<int> members, dead;
    for (const SimNode& node : world_.nodes()) {
      if (node.cluster != c || !node.joined || node.retired) continue;
      members.push_back(node.index);
      if (!node.engine) dead.push_back(node.index);
    }
    if (members.empty()) continue;  // retired
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
    if (!node.engine && !node.retired) Restart(node);
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
  // Let the probes' asynchronous commits land before the final checks. A
  // node that votes in no configuration (retired, or a learner) gets them
  // only by catch-up: give it two rounds' worth too.
  TimeMs settle = 2 * config().call_deadline_ms;
  for (const SimNode& node : world_.nodes()) {
    const core::Configuration* newest = world_.checker().Newest(absl::StrCat("c", node.cluster));
    if (newest != nullptr && !newest->Has(node.id)) {
      settle += 2 * config().catchup_interval_ms;
      break;
    }
  }
  RunUntil(world_.now() + settle, [] { return false; });
}

void Simulator::CheckFinal() {
  if (stopped_) return;
  world_.Trace("CHECK", {}, History::LineKind::kGlobal);
  std::vector<int> open_inbound;
  if (retired_cluster_ >= 0 && !cluster_removed_) {
    world_.checker().Fail(
        "M", {},
        absl::StrCat("c", retired_cluster_, " was retired but never removed from the federation"));
  }
  for (const SimNode& node : world_.nodes()) {
    if (node.retired) {
      open_inbound.push_back(0);
      continue;
    }
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
  result.stats.catchup_pulls = dead_engines_.catchup_pulls;
  for (const SimNode& node : world_.nodes()) {
    if (!node.engine) continue;
    const core::EngineStats s = node.engine->stats();
    result.stats.puts_joined += s.puts_joined;
    result.stats.catchup_rounds += s.catchup_rounds;
    result.stats.catchup_keys_pulled += s.catchup_keys_pulled;
    result.stats.catchup_pulls += s.catchup_pulls;
  }
  const auto& configs = world_.checker().configurations();
  for (const auto& [key, config] : configs) {
    if (key.second == 1) {
      for (const core::PeerId& v : config.voters) {
        for (const SimNode& node : world_.nodes()) {
          if (node.id == v && node.spare) result.stats.spare_founders++;
        }
      }
    }
    auto before = configs.find({key.first, key.second - 1});
    if (key.second <= 1 || before == configs.end()) continue;
    result.stats.epochs_gained++;
    if (config.voters.size() > before->second.voters.size()) {
      result.stats.promotions++;
    } else {
      result.stats.removals++;
    }
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
