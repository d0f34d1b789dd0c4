#include "sim/simulator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "sim/describe.h"

namespace replicator::sim {

using core::TimeMs;

// --- Configuration ----------------------------------------------------------

bool SimConfig::SetProfile(const std::string& profile) {
  FaultParams f;  // "none": short, fixed-order-free delays, no faults
  if (profile == "none") {
  } else if (profile == "net") {
    f.net_min_ms = 1;
    f.net_max_ms = 20;
    f.slow_message = 0.1;
    f.slow_message_max_ms = 1500;  // sometimes beyond the call deadline
    f.drop = 0.05;
    f.duplicate = 0.05;
  } else if (profile == "partition") {
    f.net_min_ms = 1;
    f.net_max_ms = 10;
    f.slow_message = 0.05;
    f.slow_message_max_ms = 200;
    f.drop = 0.01;
    f.partition_every_ms = 1000;
    f.partition_min_ms = 200;
    f.partition_max_ms = 4000;
  } else if (profile == "crash") {
    f.net_min_ms = 1;
    f.net_max_ms = 10;
    f.crash_every_ms = 800;
    f.down_min_ms = 50;
    f.down_max_ms = 4000;
    f.max_down = 2;
    f.disk_min_ms = 0;
    f.disk_max_ms = 5;
    f.slow_disk = 0.1;
    f.slow_disk_max_ms = 300;
  } else if (profile == "all") {
    f.net_min_ms = 1;
    f.net_max_ms = 20;
    f.slow_message = 0.1;
    f.slow_message_max_ms = 1500;
    f.drop = 0.03;
    f.duplicate = 0.03;
    f.partition_every_ms = 1500;
    f.partition_min_ms = 200;
    f.partition_max_ms = 3000;
    f.crash_every_ms = 1200;
    f.down_min_ms = 50;
    f.down_max_ms = 3000;
    f.max_down = 2;
    f.disk_max_ms = 5;
    f.slow_disk = 0.1;
    f.slow_disk_max_ms = 300;
  } else {
    return false;
  }
  faults = profile;
  fault = f;
  return true;
}

bool SimConfig::ValidUnsafe(const std::string& mode) {
  return mode.empty() || mode == "no-sync-before-vote";
}

SimConfig SimConfig::ForProfile(const std::string& profile) {
  SimConfig config;
  config.SetProfile(profile);
  return config;
}

std::string SimConfig::Reproducer() const {
  SimConfig d;
  std::string out = absl::StrCat("replicator-sim --seed=", seed, " --clusters=", clusters,
                                 " --nodes=", nodes_per_cluster, " --faults=", faults);
  if (clients != d.clients) absl::StrAppend(&out, " --clients=", clients);
  if (keys != d.keys) absl::StrAppend(&out, " --keys=", keys);
  if (ops != d.ops) absl::StrAppend(&out, " --ops=", ops);
  if (lease_ms != d.lease_ms) absl::StrAppend(&out, " --lease-ms=", lease_ms);
  SimConfig p = ForProfile(faults);
  if (fault.net_min_ms != p.fault.net_min_ms || fault.net_max_ms != p.fault.net_max_ms) {
    absl::StrAppend(&out, " --net-ms=", fault.net_min_ms, "..", fault.net_max_ms);
  }
  if (!check_convergence) absl::StrAppend(&out, " --no-converge");
  if (catchup_interval_ms != d.catchup_interval_ms) {
    absl::StrAppend(&out, " --catchup-ms=", catchup_interval_ms);
  }
  if (!check_race) absl::StrAppend(&out, " --no-race-check");
  if (fault.down_max_ms != p.fault.down_max_ms) {
    absl::StrAppend(&out, " --down-max-ms=", fault.down_max_ms);
  }
  if (!unsafe.empty()) absl::StrAppend(&out, " --unsafe=", unsafe);
  if (unsafe_sync_lag_ms != d.unsafe_sync_lag_ms) {
    absl::StrAppend(&out, " --unsafe-sync-lag-ms=", unsafe_sync_lag_ms);
  }
  if (!check_durable_at_ok) absl::StrAppend(&out, " --no-ok-durability-check");
  return out;
}

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

Simulator::Simulator(SimConfig config) : config_(std::move(config)), rng_(config_.seed) {
  if (config_.quiet_ms <= 0) {
    config_.quiet_ms = 5 * config_.lease_ms + 5 * config_.call_deadline_ms;
  }
  const int n = config_.clusters * config_.nodes_per_cluster;
  nodes_.resize(n);
  std::vector<int> node_cluster;
  std::vector<core::PeerId> node_ids;
  std::vector<const SimStore*> stores;
  for (int i = 0; i < n; ++i) {
    Node& node = nodes_[i];
    node.index = i;
    node.cluster = i / config_.nodes_per_cluster;
    node.id = absl::StrCat("c", node.cluster, "n", i % config_.nodes_per_cluster);
    node.store = std::make_unique<SimStore>();
    if (!config_.unsafe.empty()) node.synced = std::make_unique<SimStore>();
    topology_.members.push_back(core::Member{node.id, absl::StrCat("c", node.cluster),
                                             absl::StrCat("sim:", i), core::PeerState::kVoter});
    node_cluster.push_back(node.cluster);
    node_ids.push_back(node.id);
    stores.push_back(node.store.get());
  }
  CheckerOptions options;
  options.check_convergence = config_.check_convergence;
  options.expect_liveness = config_.faults == "none";
  options.check_durable_at_ok = config_.check_durable_at_ok;
  checker_ = std::make_unique<Checker>(std::move(node_cluster), std::move(node_ids),
                                       std::move(stores), config_.clusters, options, &now_);
  if (!config_.unsafe.empty()) {
    std::vector<const SimStore*> synced;
    for (const Node& node : nodes_) synced.push_back(node.synced.get());
    checker_->SetDurableStores(std::move(synced));
  }
  client_seq_.assign(config_.clients, 0);
  client_retry_.assign(config_.clients, std::nullopt);
}

Simulator::~Simulator() = default;

// --- Event queue and randomness ---------------------------------------------

namespace {
struct Later {
  template <typename E>
  bool operator()(const E& a, const E& b) const {
    return a.time != b.time ? a.time > b.time : a.seq > b.seq;
  }
};
}  // namespace

void Simulator::At(TimeMs time, std::function<void()> fn) {
  queue_.push_back(Event{std::max(time, now_), next_seq_++, std::move(fn)});
  std::push_heap(queue_.begin(), queue_.end(), Later{});
}

bool Simulator::Step() {
  if (stopped_ || queue_.empty()) return false;
  std::pop_heap(queue_.begin(), queue_.end(), Later{});
  Event event = std::move(queue_.back());
  queue_.pop_back();
  now_ = event.time;
  stats_.events++;
  event.fn();
  if (checker_->failed()) stopped_ = true;
  if (stats_.events >= config_.max_events && !stopped_) {
    checker_->Fail("V", {}, absl::StrCat("livelock: ", stats_.events, " events"));
    stopped_ = true;
  }
  return !stopped_;
}

void Simulator::RunUntil(TimeMs end, const std::function<bool()>& stop) {
  while (!stopped_ && !queue_.empty() && queue_.front().time <= end && !stop()) Step();
  if (!stopped_ && now_ < end && (queue_.empty() || queue_.front().time > end)) now_ = end;
}

uint64_t Simulator::Uniform(uint64_t lo, uint64_t hi) {
  if (hi <= lo) return lo;
  const unsigned __int128 span = static_cast<unsigned __int128>(hi - lo) + 1;
  return lo + static_cast<uint64_t>((static_cast<unsigned __int128>(rng_()) * span) >> 64);
}

bool Simulator::Chance(double p) {
  if (p <= 0) return false;
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53 < p;
}

TimeMs Simulator::Exponential(TimeMs mean) {
  const double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
  return 1 + static_cast<TimeMs>(-std::log1p(-u) * static_cast<double>(mean));
}

void Simulator::Trace(std::string line, const Tags& tags, LineKind kind, int node) {
  std::string full = absl::StrCat("t=", now_, " ", line);
  for (unsigned char c : full) {
    digest_ ^= c;
    digest_ *= 1099511628211ull;
  }
  digest_ ^= '\n';
  digest_ *= 1099511628211ull;
  if (config_.trace) std::printf("%s\n", full.c_str());
  const uint32_t begin = static_cast<uint32_t>(tag_pool_.size());
  tag_pool_.insert(tag_pool_.end(), tags.begin(), tags.end());
  trace_.push_back(
      TraceLine{std::move(full), begin, static_cast<uint32_t>(tags.size()), kind, node});
}

int32_t Simulator::Intern(std::string tag) {
  auto [it, fresh] = tag_ids_.emplace(std::move(tag), static_cast<int32_t>(tag_ids_.size()));
  return it->second;
}

void Simulator::TagKey(Tags& tags, const core::Key& key) {
  tags.push_back(Intern(absl::StrCat("k", key)));
}

void Simulator::TagClientKey(Tags& tags, const core::Key& key) {
  TagKey(tags, key);
  tags.push_back(Intern(absl::StrCat("c", key)));
}

void Simulator::TagProposal(Tags& tags, const core::ProposalId& p) {
  std::string name = Describe(p);
  auto key = proposal_key_.find(name);
  if (key != proposal_key_.end()) TagKey(tags, key->second);
  tags.push_back(Intern(absl::StrCat("p", std::move(name))));
}

Simulator::Tags Simulator::TagsOf(const core::Request& request) {
  Tags tags;
  const core::ReplicaOp* op = nullptr;
  if (auto* h = std::get_if<core::HandleRequest>(&request)) op = &h->op;
  if (auto* f = std::get_if<core::ForwardRequest>(&request)) op = &f->op;
  if (op != nullptr) {
    std::visit(
        [&](const auto& o) {
          proposal_key_.emplace(Describe(o.proposal), o.key);
          TagProposal(tags, o.proposal);
        },
        *op);
  } else if (auto* a = std::get_if<core::AcceptRequest>(&request)) {
    TagProposal(tags, a->proposal);
  } else if (auto* pr = std::get_if<core::PrepareRequest>(&request)) {
    TagProposal(tags, pr->proposal);
  } else if (auto* r = std::get_if<core::ReadRequest>(&request)) {
    TagKey(tags, r->key);
  } else if (auto* rs = std::get_if<core::ResolveRequest>(&request)) {
    TagProposal(tags, rs->proposal);
  }
  return tags;
}

void Simulator::AddTags(Tags& tags, const core::Response& response) {
  if (auto* pull = std::get_if<core::PullResponse>(&response)) {
    for (const core::PulledEntry& e : pull->entries) TagKey(tags, e.key);
  } else if (auto* read = std::get_if<core::ReadResponse>(&response)) {
    if (read->kind == core::ReadResponse::Kind::kReserved) TagProposal(tags, read->holder);
  }
}

void Simulator::AddTags(Tags& tags, const core::Mutation& mutation) {
  std::visit(
      [&](const auto& m) {
        using M = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<M, core::PutReservation>) {
          proposal_key_.emplace(Describe(m.reservation.proposal), m.reservation.key);
          TagProposal(tags, m.reservation.proposal);
        } else if constexpr (std::is_same_v<M, core::PutAcceptor>) {
          TagProposal(tags, m.record.proposal);
        } else if constexpr (std::is_same_v<M, core::DeleteAcceptor>) {
          TagProposal(tags, m.proposal);
        } else {
          TagKey(tags, m.key);
        }
      },
      mutation);
}

// A violation about a key: every event touching the key (its client calls,
// its proposals' messages and writes, catch-up pulls carrying it). About a
// proposal (with or without its key): the proposal's events and the client
// calls of its key. Around them, the crashes and restarts of the nodes that
// appear in them, and the partitions and phases from the first one on.
void Simulator::Excerpt(const Violation& v, SimResult* result) const {
  std::vector<int32_t> want;
  auto find = [&](const std::string& tag) {
    auto it = tag_ids_.find(tag);
    if (it != tag_ids_.end()) want.push_back(it->second);
  };
  if (v.subject.proposal) {
    const std::string name = Describe(*v.subject.proposal);
    find(absl::StrCat("p", name));
    std::optional<core::Key> key = v.subject.key;
    if (!key) {
      auto k = proposal_key_.find(name);
      if (k != proposal_key_.end()) key = k->second;
    }
    if (key) find(absl::StrCat("c", *key));
    result->excerpt_of =
        absl::StrCat("events of proposal ", name,
                     key ? absl::StrCat(" and client calls of key ", Quote(*key)) : std::string());
  } else if (v.subject.key) {
    find(absl::StrCat("k", *v.subject.key));
    result->excerpt_of = absl::StrCat("events touching key ", Quote(*v.subject.key));
  }
  std::vector<size_t> chosen;
  for (size_t i = 0; i < trace_.size(); ++i) {
    const TraceLine& line = trace_[i];
    for (uint32_t t = 0; t < line.tags_count; ++t) {
      if (std::find(want.begin(), want.end(), tag_pool_[line.tags_begin + t]) != want.end()) {
        chosen.push_back(i);
        break;
      }
    }
  }
  if (chosen.empty()) {
    result->excerpt_of = absl::StrCat("the last ", config_.trace_tail, " events");
    const size_t from = trace_.size() > config_.trace_tail ? trace_.size() - config_.trace_tail : 0;
    for (size_t i = from; i < trace_.size(); ++i) result->excerpt.push_back(trace_[i].text);
    return;
  }
  std::vector<bool> involved(nodes_.size(), false);
  for (size_t i : chosen) {
    for (const Node& node : nodes_) {
      if (trace_[i].text.find(node.id) != std::string::npos) involved[node.index] = true;
    }
  }
  std::vector<size_t> lines;
  size_t next = 0;
  for (size_t i = 0; i < trace_.size(); ++i) {
    const TraceLine& line = trace_[i];
    if (next < chosen.size() && chosen[next] == i) {
      lines.push_back(i);
      ++next;
    } else if (line.kind == LineKind::kNodeFault && line.node >= 0 && involved[line.node]) {
      lines.push_back(i);
    } else if (line.kind == LineKind::kGlobal && i > chosen.front()) {
      lines.push_back(i);
    }
  }
  // A hot key's history can be long: keep its start and its end.
  constexpr size_t kHead = 100, kTail = 500;
  for (size_t j = 0; j < lines.size(); ++j) {
    if (lines.size() > kHead + kTail && j == kHead) {
      result->excerpt.push_back(
          absl::StrCat("... ", lines.size() - kHead - kTail, " events of the excerpt left out"));
      j = lines.size() - kTail;
    }
    result->excerpt.push_back(trace_[lines[j]].text);
  }
}

TimeMs Simulator::NetDelay(bool self) {
  if (self) return static_cast<TimeMs>(Uniform(0, 1));
  const FaultParams& f = config_.fault;
  TimeMs delay = static_cast<TimeMs>(Uniform(f.net_min_ms, f.net_max_ms));
  if (faults_active_ && Chance(f.slow_message)) {
    delay += static_cast<TimeMs>(Uniform(0, f.slow_message_max_ms));
  }
  return delay;
}

// --- Nodes ------------------------------------------------------------------

bool Simulator::Connected(int a, int b) const { return nodes_[a].group == nodes_[b].group; }

int Simulator::NodeOf(const core::PeerId& id) const {
  for (const Node& node : nodes_) {
    if (node.id == id) return node.index;
  }
  return -1;
}

void Simulator::StartEngine(Node& node) {
  core::EngineConfig engine_config;
  engine_config.self = node.id;
  engine_config.cluster = absl::StrCat("c", node.cluster);
  engine_config.incarnation = node.incarnation;
  engine_config.random_seed = rng_();
  engine_config.call_deadline_ms = config_.call_deadline_ms;
  engine_config.lease_ms = config_.lease_ms;
  engine_config.catchup_interval_ms = config_.catchup_interval_ms;
  core::DurableState recovered = node.store->Recover();
  Trace(absl::StrCat(node.id, " start incarnation ", node.incarnation, " with ",
                     recovered.reservations.size(), " reservation(s), ",
                     node.store->acceptors().size(), " acceptor record(s), ",
                     node.store->committed().size(), " committed key(s)"),
        {}, LineKind::kNodeFault, node.index);
  node.engine =
      std::make_unique<core::Engine>(engine_config, node.store.get(), std::move(recovered));
  node.engine->SetTopology(topology_, now_);
  // As the node does: catch up from a peer at every start.
  node.engine->StartCatchUp(now_);
  Drain(node);
}

void Simulator::Crash(Node& node) {
  Trace(absl::StrCat(node.id, " CRASH (incarnation ", node.incarnation, ", ", node.writes.size(),
                     " write(s) in flight lost, ", node.inbound.size(), " request(s) unanswered)"),
        {}, LineKind::kNodeFault, node.index);
  if (node.synced) {
    // Unsafe mode: what the engine was told is durable but the disk had not
    // synced is gone.
    for (const UnsyncedWrite& w : node.unsynced) {
      std::string what;
      for (const core::Mutation& m : w.batch.mutations) absl::StrAppend(&what, " ", Describe(m));
      Trace(
          absl::StrCat(node.id, " write#", w.write_id, " LOST: acknowledged, never synced:", what),
          w.tags);
      stats_.unsynced_lost++;
    }
    node.unsynced.clear();
    *node.store = *node.synced;
    node.sync_free_at = now_;
  }
  stats_.crashes++;
  const core::EngineStats lost_stats = node.engine->stats();
  dead_engines_.puts_joined += lost_stats.puts_joined;
  dead_engines_.catchup_rounds += lost_stats.catchup_rounds;
  dead_engines_.catchup_keys_pulled += lost_stats.catchup_keys_pulled;
  node.engine.reset();
  node.writes.clear();
  node.inbound.clear();
  node.tick_at.reset();
  node.disk_free_at = now_;
  std::vector<int> lost = std::move(node.client_ops);
  node.client_ops.clear();
  for (int op : lost) {
    Tags tags;
    TagClientKey(tags, checker_->ops()[op].key);
    Trace(absl::StrCat(node.id, " #", op + 1, " lost with its node: no answer"), tags);
    checker_->OnOpAbandoned(op);
    if (checker_->ops()[op].type == ClientOp::Type::kPut) stats_.puts_abandoned++;
    OpFinished(op);
  }
}

void Simulator::Restart(Node& node) {
  node.incarnation++;  // never reused: the store outlives every engine
  StartEngine(node);
}

void Simulator::Drain(Node& node, bool after_tick) {
  while (node.engine && node.engine->HasEffects()) {
    std::vector<core::Effect> effects = node.engine->TakeEffects();
    for (core::Effect& effect : effects) {
      std::visit(
          [&](auto& fx) {
            using F = std::decay_t<decltype(fx)>;
            if constexpr (std::is_same_v<F, core::SendEffect>) {
              HandleSend(node, std::move(fx));
            } else if constexpr (std::is_same_v<F, core::RespondEffect>) {
              HandleRespond(node, std::move(fx));
            } else if constexpr (std::is_same_v<F, core::WriteEffect>) {
              HandleWrite(node, std::move(fx));
            } else if constexpr (std::is_same_v<F, core::PutDoneEffect>) {
              const int op = static_cast<int>(fx.put_id) - 1;
              auto it = std::find(node.client_ops.begin(), node.client_ops.end(), op);
              if (it == node.client_ops.end() || op < 0 ||
                  checker_->ops()[op].type != ClientOp::Type::kPut) {
                checker_->Fail("C", {},
                               absl::StrCat(node.id, " PutDone for put_id ", fx.put_id,
                                            " that is not pending there: ", Describe(fx.outcome)));
                return;
              }
              Tags tags;
              TagClientKey(tags, checker_->ops()[op].key);
              Trace(absl::StrCat(node.id, " PutDone #", fx.put_id, " ",
                                 Quote(checker_->ops()[op].key), "=",
                                 Quote(checker_->ops()[op].value), " -> ", Describe(fx.outcome)),
                    tags);
              switch (fx.outcome.kind) {
                case core::PutOutcome::Kind::kOk:
                  stats_.puts_ok++;
                  if (checker_->ops()[op].retry_of >= 0) stats_.puts_retry_ok++;
                  break;
                case core::PutOutcome::Kind::kKeyExists: stats_.puts_exists++; break;
                case core::PutOutcome::Kind::kConflict: stats_.puts_conflict++; break;
                case core::PutOutcome::Kind::kUnavailable: stats_.puts_unavailable++; break;
                case core::PutOutcome::Kind::kOutcomeUnknown:
                  stats_.puts_unavailable++;  // reported as "of which outcome unknown"
                  stats_.puts_outcome_unknown++;
                  break;
                case core::PutOutcome::Kind::kInvalidArgument: stats_.puts_invalid++; break;
              }
              checker_->OnPutDone(op, fx.outcome);
              OpFinished(op);
            } else if constexpr (std::is_same_v<F, core::GetDoneEffect>) {
              const int op = static_cast<int>(fx.get_id) - 1;
              auto it = std::find(node.client_ops.begin(), node.client_ops.end(), op);
              if (it == node.client_ops.end() || op < 0 ||
                  checker_->ops()[op].type == ClientOp::Type::kPut) {
                checker_->Fail("C", {},
                               absl::StrCat(node.id, " GetDone for get_id ", fx.get_id,
                                            " that is not pending there: ", Describe(fx.outcome)));
                return;
              }
              Tags tags;
              TagClientKey(tags, checker_->ops()[op].key);
              Trace(absl::StrCat(node.id, " GetDone #", fx.get_id, " ",
                                 Quote(checker_->ops()[op].key), " -> ", Describe(fx.outcome)),
                    tags);
              switch (fx.outcome.kind) {
                case core::GetOutcome::Kind::kFound: stats_.gets_found++; break;
                case core::GetOutcome::Kind::kNotFound: stats_.gets_not_found++; break;
                default: stats_.gets_unavailable++; break;
              }
              checker_->OnGetDone(op, fx.outcome);
              OpFinished(op);
            } else if constexpr (std::is_same_v<F, core::ViolationEffect>) {
              Tags tags;
              TagKey(tags, fx.key);
              Trace(absl::StrCat(node.id, " VIOLATION ", Quote(fx.key), ": ", fx.detail), tags);
              checker_->OnEngineViolation(node.index, fx);
            }
          },
          effect);
    }
  }
  ScheduleTick(node, after_tick);
}

void Simulator::ScheduleTick(Node& node, bool after_tick) {
  if (!node.engine) return;
  std::optional<TimeMs> wake = node.engine->NextWakeup();
  if (!wake) return;
  // After Tick(now) nothing is due at `now` any more; never spin in place.
  const TimeMs at = std::max(*wake, after_tick ? now_ + 1 : now_);
  if (node.tick_at && *node.tick_at <= at) return;
  node.tick_at = at;
  const int index = node.index;
  const uint64_t incarnation = node.incarnation;
  At(at, [this, index, incarnation, at] {
    Node& n = nodes_[index];
    if (!n.engine || n.incarnation != incarnation || n.tick_at != at) return;
    n.tick_at.reset();
    n.engine->Tick(now_);
    Drain(n, /*after_tick=*/true);
  });
}

// --- Effects ----------------------------------------------------------------

void Simulator::HandleSend(Node& node, core::SendEffect send) {
  stats_.messages++;
  if (std::holds_alternative<core::PrepareRequest>(send.request)) stats_.prepares++;
  if (std::holds_alternative<core::ResolveRequest>(send.request)) stats_.resolves++;
  const int to = NodeOf(send.to);
  const uint64_t call = next_call_++;
  checker_->OnSend(node.index, send.request);
  Tags tags = TagsOf(send.request);
  Trace(absl::StrCat(node.id, " -> ", send.to, " call#", send.call_id, " ", Describe(send.request),
                     " deadline=", send.deadline),
        tags);
  calls_.emplace(call, Call{node.index, node.incarnation, send.call_id, to, send.deadline, tags});
  At(send.deadline, [this, call] { CallDeadline(call); });
  if (to < 0) {
    checker_->Fail("C", {}, absl::StrCat(node.id, " sends to unknown peer '", send.to, "'"));
    return;
  }
  const bool self = to == node.index;
  Node& target = nodes_[to];
  if (!target.engine) {
    Trace(absl::StrCat("  ", node.id, " call#", send.call_id, " lost: ", target.id, " is down"),
          tags);
    return;
  }
  if (!self && !Connected(node.index, to)) {
    Trace(
        absl::StrCat("  ", node.id, " call#", send.call_id, " lost: partitioned from ", target.id),
        tags);
    return;
  }
  if (!self && faults_active_ && Chance(config_.fault.drop)) {
    stats_.dropped++;
    Trace(absl::StrCat("  ", node.id, " call#", send.call_id, " dropped"), tags);
    return;
  }
  const int from = node.index;
  const uint64_t incarnation = target.incarnation;
  if (!self && faults_active_ && Chance(config_.fault.duplicate)) {
    stats_.duplicated++;
    At(now_ + NetDelay(false), [this, call, from, to, incarnation, request = send.request] {
      DeliverRequest(call, from, to, incarnation, request, /*duplicate=*/true);
    });
  }
  At(now_ + NetDelay(self),
     [this, call, from, to, incarnation, request = std::move(send.request)]() mutable {
       DeliverRequest(call, from, to, incarnation, std::move(request), /*duplicate=*/false);
     });
}

void Simulator::DeliverRequest(uint64_t call, int from, int to, uint64_t to_incarnation,
                               core::Request request, bool duplicate) {
  Node& target = nodes_[to];
  if (!target.engine || target.incarnation != to_incarnation) {
    Trace(absl::StrCat(target.id, " <- ", nodes_[from].id,
                       " lost (receiver restarted): ", Describe(request)),
          TagsOf(request));
    return;
  }
  if (from != to && !Connected(from, to)) {
    Trace(absl::StrCat(target.id, " <- ", nodes_[from].id,
                       " lost (partitioned): ", Describe(request)),
          TagsOf(request));
    return;
  }
  const uint64_t inbound = target.next_inbound++;
  std::optional<core::ProposalId> resolve;
  if (auto* r = std::get_if<core::ResolveRequest>(&request)) resolve = r->proposal;
  Tags tags = TagsOf(request);
  Trace(absl::StrCat(target.id, " <- ", nodes_[from].id, " in#", inbound,
                     duplicate ? " (duplicate) " : " ", Describe(request)),
        tags);
  target.inbound.emplace(
      inbound, Inbound{call, duplicate, request.index(), std::move(resolve), std::move(tags)});
  checker_->OnDeliver(to, request);
  target.engine->OnRequest(inbound, nodes_[from].id, std::move(request), now_);
  Drain(target);
}

void Simulator::HandleRespond(Node& node, core::RespondEffect respond) {
  auto it = node.inbound.find(respond.inbound_id);
  if (it == node.inbound.end()) {
    checker_->Fail(
        "C", {},
        absl::StrCat(node.id, " responds to in#", respond.inbound_id,
                     " which is unknown or already answered: ", Describe(respond.response)));
    return;
  }
  Inbound inbound = std::move(it->second);
  node.inbound.erase(it);
  Tags tags = std::move(inbound.tags);
  AddTags(tags, respond.response);
  Trace(absl::StrCat(node.id, " respond in#", respond.inbound_id, " ", Describe(respond.response)),
        tags);
  if (respond.response.index() != inbound.request_kind) {
    checker_->Fail("C", {},
                   absl::StrCat(node.id, " answers a request of kind ", inbound.request_kind,
                                " with ", Describe(respond.response)));
    return;
  }
  if (auto* r = std::get_if<core::ResolveResponse>(&respond.response); r && inbound.resolve) {
    checker_->OnResolveAnswered(node.index, *inbound.resolve, *r);
  }
  const std::string what = absl::StrCat("  ", node.id, " answer to in#", respond.inbound_id);
  if (inbound.duplicate) {
    Trace(absl::StrCat(what, " discarded: answer to a duplicate"), tags);
    return;
  }
  auto call_it = calls_.find(inbound.call);
  if (call_it == calls_.end()) {
    Trace(absl::StrCat(what, " discarded: the call already ended"), tags);
    return;
  }
  const Call& call = call_it->second;
  const bool self = call.from == node.index;
  const Node& caller = nodes_[call.from];
  if (!caller.engine || caller.incarnation != call.from_incarnation) {
    Trace(absl::StrCat(what, " discarded: the caller restarted"), tags);
    return;
  }
  if (!self && !Connected(call.from, node.index)) {
    Trace(absl::StrCat(what, " lost: partitioned from ", caller.id), tags);
    return;
  }
  if (!self && faults_active_ && Chance(config_.fault.drop)) {
    stats_.dropped++;
    Trace(absl::StrCat(what, " dropped"), tags);
    return;
  }
  const uint64_t id = inbound.call;
  At(now_ + NetDelay(self), [this, id, response = std::move(respond.response)]() mutable {
    DeliverResponse(id, std::move(response));
  });
}

void Simulator::DeliverResponse(uint64_t id, core::Response response) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  const Call call = it->second;
  Node& caller = nodes_[call.from];
  if (!caller.engine || caller.incarnation != call.from_incarnation) {
    calls_.erase(it);
    return;
  }
  Tags tags = call.tags;
  AddTags(tags, response);
  if (now_ >= call.deadline) {
    Trace(absl::StrCat(caller.id, " late response to call#", call.call_id, " discarded (deadline ",
                       call.deadline, ")"),
          tags);
    return;
  }
  if (call.to != call.from && !Connected(call.to, call.from)) {
    Trace(absl::StrCat(caller.id, " response to call#", call.call_id, " lost (partitioned)"), tags);
    return;
  }
  calls_.erase(it);
  Trace(absl::StrCat(caller.id, " <- ", nodes_[call.to].id, " call#", call.call_id, " ",
                     Describe(response)),
        tags);
  caller.engine->OnResponse(call.call_id, std::move(response), now_);
  Drain(caller);
}

void Simulator::CallDeadline(uint64_t id) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  const Call call = it->second;
  calls_.erase(it);
  Node& caller = nodes_[call.from];
  if (!caller.engine || caller.incarnation != call.from_incarnation) return;
  Trace(absl::StrCat(caller.id, " call#", call.call_id, " to ",
                     call.to >= 0 ? nodes_[call.to].id : "?", " Unreachable(deadline)"),
        call.tags);
  caller.engine->OnResponse(call.call_id, core::Unreachable{"deadline exceeded"}, now_);
  Drain(caller);
}

void Simulator::HandleWrite(Node& node, core::WriteEffect write) {
  const FaultParams& f = config_.fault;
  TimeMs delay = static_cast<TimeMs>(Uniform(f.disk_min_ms, f.disk_max_ms));
  if (faults_active_ && Chance(f.slow_disk)) {
    delay += static_cast<TimeMs>(Uniform(0, f.slow_disk_max_ms));
  }
  const TimeMs done = std::max(now_ + delay, node.disk_free_at);  // in order, like a WAL
  node.disk_free_at = done;
  std::string what;
  Tags tags;
  for (const core::Mutation& m : write.batch.mutations) {
    absl::StrAppend(&what, " ", Describe(m));
    AddTags(tags, m);
  }
  Trace(absl::StrCat(node.id, " write#", write.write_id, " until t=", done, ":", what), tags);
  node.writes.push_back(PendingWrite{write.write_id, std::move(write.batch), std::move(tags)});
  const int index = node.index;
  const uint64_t incarnation = node.incarnation;
  const uint64_t write_id = write.write_id;
  At(done, [this, index, incarnation, write_id] { CompleteWrite(index, incarnation, write_id); });
}

void Simulator::CompleteWrite(int index, uint64_t incarnation, uint64_t write_id) {
  Node& node = nodes_[index];
  if (!node.engine || node.incarnation != incarnation) return;  // lost in a crash
  auto it = std::find_if(node.writes.begin(), node.writes.end(),
                         [&](const PendingWrite& w) { return w.write_id == write_id; });
  if (it == node.writes.end()) return;
  PendingWrite write = std::move(*it);
  node.writes.erase(it);
  for (const core::Mutation& m : write.batch.mutations) {
    checker_->BeforeApply(index, m);
    node.store->Apply(m);
  }
  if (node.synced) {
    // Unsafe mode: acknowledged now, synced later (or lost by a crash).
    const TimeMs sync_at = std::max(
        now_ + static_cast<TimeMs>(Uniform(0, config_.unsafe_sync_lag_ms)), node.sync_free_at);
    node.sync_free_at = sync_at;
    Trace(absl::StrCat(node.id, " write#", write_id, " acknowledged, NOT synced until t=", sync_at),
          write.tags);
    node.unsynced.push_back(UnsyncedWrite{write_id, std::move(write.batch), write.tags});
    At(sync_at, [this, index, incarnation, write_id] { SyncWrite(index, incarnation, write_id); });
  } else {
    Trace(absl::StrCat(node.id, " write#", write_id, " durable"), write.tags);
  }
  node.engine->OnWriteDone(write_id, now_);
  Drain(node);
}

void Simulator::SyncWrite(int index, uint64_t incarnation, uint64_t write_id) {
  Node& node = nodes_[index];
  if (node.incarnation != incarnation || node.unsynced.empty() ||
      node.unsynced.front().write_id != write_id) {
    return;  // lost in a crash
  }
  UnsyncedWrite write = std::move(node.unsynced.front());
  node.unsynced.pop_front();
  for (const core::Mutation& m : write.batch.mutations) node.synced->Apply(m);
  Trace(absl::StrCat(node.id, " write#", write_id, " synced"), write.tags);
}

void Simulator::InjectMutationForTest(int node, const core::Mutation& mutation) {
  Tags tags;
  AddTags(tags, mutation);
  Trace(absl::StrCat(nodes_[node].id, " INJECTED ", Describe(mutation)), tags);
  checker_->BeforeApply(node, mutation);
  nodes_[node].store->Apply(mutation);
  if (nodes_[node].synced) nodes_[node].synced->Apply(mutation);
}

// --- Faults -----------------------------------------------------------------

std::string Simulator::ChoosePartition() {
  const int n = static_cast<int>(nodes_.size());
  // 0: one node alone; 1: one whole cluster alone (a random split with a
  // single cluster); 2: two random sides.
  const uint64_t roll = Uniform(0, 2);
  std::string kind;
  if (roll == 0) {
    const int alone = static_cast<int>(Uniform(0, n - 1));
    for (Node& node : nodes_) node.group = node.index == alone ? 1 : 0;
    stats_.partitions_node++;
    kind = absl::StrCat("node ", nodes_[alone].id, " cut off");
  } else if (roll == 1 && config_.clusters > 1) {
    const int cluster = static_cast<int>(Uniform(0, config_.clusters - 1));
    for (Node& node : nodes_) node.group = node.cluster == cluster ? 1 : 0;
    stats_.partitions_cluster++;
    kind = absl::StrCat("cluster c", cluster, " cut off");
  } else {
    int in_zero = 0;
    for (Node& node : nodes_) {
      node.group = Chance(0.5) ? 1 : 0;
      in_zero += node.group == 0;
    }
    if (in_zero == 0 || in_zero == n) {
      Node& flip = nodes_[Uniform(0, n - 1)];
      flip.group = 1 - flip.group;
    }
    kind = "random split";
  }
  std::string sides[2];
  for (const Node& node : nodes_) absl::StrAppend(&sides[node.group], " ", node.id);
  return absl::StrCat(kind, ": {", sides[0], " } | {", sides[1], " }");
}

void Simulator::SchedulePartition(TimeMs after) {
  At(now_ + after, [this] {
    if (!faults_active_) return;
    const FaultParams& f = config_.fault;
    const std::string shape = ChoosePartition();
    stats_.partitions++;
    const uint64_t generation = ++partition_generation_;
    Trace(absl::StrCat("PARTITION ", shape), {}, LineKind::kGlobal);
    At(now_ + static_cast<TimeMs>(Uniform(f.partition_min_ms, f.partition_max_ms)),
       [this, generation] {
         if (!faults_active_ || generation != partition_generation_) return;
         for (Node& node : nodes_) node.group = 0;
         Trace("HEAL partition", {}, LineKind::kGlobal);
         SchedulePartition(Exponential(config_.fault.partition_every_ms));
       });
  });
}

void Simulator::ScheduleCrash(TimeMs after) {
  At(now_ + after, [this] {
    if (!faults_active_) return;
    const FaultParams& f = config_.fault;
    std::vector<int> up;
    for (const Node& node : nodes_) {
      if (node.engine) up.push_back(node.index);
    }
    const int down = static_cast<int>(nodes_.size() - up.size());
    if (down < f.max_down && !up.empty()) {
      Node& victim = nodes_[up[Uniform(0, up.size() - 1)]];
      Crash(victim);
      const int index = victim.index;
      const uint64_t incarnation = victim.incarnation;
      At(now_ + static_cast<TimeMs>(Uniform(f.down_min_ms, f.down_max_ms)),
         [this, index, incarnation] {
           Node& node = nodes_[index];
           // Once faults are off, the quiet phase decides who is up.
           if (!faults_active_ || node.engine || node.incarnation != incarnation) return;
           Restart(node);
         });
    }
    ScheduleCrash(Exponential(f.crash_every_ms));
  });
}

// --- Workload ---------------------------------------------------------------

void Simulator::ClientNext(int client) {
  if (workload_done_) return;
  std::optional<RetryPlan> retry = std::move(client_retry_[client]);
  client_retry_[client].reset();
  if (!retry && ops_issued_ >= config_.ops) return;
  std::vector<int> up;
  for (const Node& node : nodes_) {
    if (node.engine) up.push_back(node.index);
  }
  if (up.empty()) {
    client_retry_[client] = retry;
    At(now_ + 100, [this, client] { ClientNext(client); });
    return;
  }
  Node& node = nodes_[up[Uniform(0, up.size() - 1)]];
  ClientOp op;
  op.node = node.index;
  op.started = now_;
  if (retry) {
    // The same client put again: same key, value and request id.
    const ClientOp& first = checker_->ops()[retry->first_op];
    op.type = ClientOp::Type::kPut;
    op.key = first.key;
    op.value = first.value;
    op.request_id = first.request_id;
    op.retry_of = retry->first_op;
    stats_.client_retries++;
    StartOp(node, std::move(op), client, retry->attempt);
    return;
  }
  // A window of `keys` keys that slides by one key every few operations: each
  // key sees a burst of racing puts while fresh, then keyExists and gets.
  op.key = absl::StrCat("k", ops_issued_ / 4 + Uniform(0, config_.keys - 1));
  if (Chance(config_.put_share)) {
    op.type = ClientOp::Type::kPut;
    op.request_id = (static_cast<uint64_t>(client) + 1) * 1'000'000 + client_seq_[client] + 1;
    op.value = absl::StrCat("v", client, ".", client_seq_[client]++);
    if (Chance(config_.invalid_share)) op.key.clear();
  } else {
    op.type = Chance(config_.linearizable_share) ? ClientOp::Type::kGetLinearizable
                                                 : ClientOp::Type::kGetLocal;
  }
  ops_issued_++;
  StartOp(node, std::move(op), client);
}

int Simulator::StartOp(Node& node, ClientOp op, int client, int attempt) {
  ops_pending_++;
  const ClientOp::Type type = op.type;
  core::Key key = op.key;
  core::Value value = op.value;
  const int index = checker_->OnOpStarted(std::move(op));
  op_client_.resize(index + 1, -1);
  op_client_[index] = client;
  node.client_ops.push_back(index);
  op_attempt_.resize(index + 1, 0);
  op_attempt_[index] = attempt;
  const uint64_t id = static_cast<uint64_t>(index) + 1;
  const std::string who = client >= 0 ? absl::StrCat("client", client) : "probe";
  Tags tags;
  TagClientKey(tags, key);
  if (type == ClientOp::Type::kPut) {
    stats_.puts++;
    const uint64_t request_id = checker_->ops()[index].request_id;
    const int retry_of = checker_->ops()[index].retry_of;
    Trace(absl::StrCat(
              node.id, " ", who, " StartPut #", id, " ", Quote(key), "=", Quote(value),
              request_id != 0 ? absl::StrCat(" rid=", request_id) : std::string(),
              retry_of >= 0 ? absl::StrCat(" (retry of #", retry_of + 1, ")") : std::string()),
          tags);
    if (client >= 0) {
      const TimeMs timeout = config_.client_timeout_ms > 0 ? config_.client_timeout_ms
                                                           : 2 * config_.call_deadline_ms;
      At(now_ + timeout, [this, client, index] { ClientTimeout(client, index); });
    }
    node.engine->StartPut(id, std::move(key), std::move(value), request_id, now_);
  } else {
    stats_.gets++;
    const bool linearizable = type == ClientOp::Type::kGetLinearizable;
    Trace(absl::StrCat(node.id, " ", who, " StartGet #", id, " ", Quote(key),
                       linearizable ? " linearizable" : " local"),
          tags);
    node.engine->StartGet(id, std::move(key),
                          linearizable ? core::Consistency::kLinearizable
                                       : core::Consistency::kLocal,
                          now_);
  }
  Drain(node);
  return index;
}

void Simulator::OpFinished(int op) {
  ops_pending_--;
  const ClientOp& done = checker_->ops()[op];
  Node& node = nodes_[done.node];
  auto it = std::find(node.client_ops.begin(), node.client_ops.end(), op);
  if (it != node.client_ops.end()) node.client_ops.erase(it);
  const int client = op_client_[op];
  if (client < 0) return;  // a probe, or its client timed out and moved on
  // An unknown outcome: a real client retries the same put.
  if (done.type == ClientOp::Type::kPut && done.request_id != 0 &&
      (done.abandoned ||
       (done.put && done.put->kind == core::PutOutcome::Kind::kUnavailable))) {
    PlanRetry(client, op);
  }
  At(now_ + static_cast<TimeMs>(Uniform(0, config_.think_max_ms)),
     [this, client] { ClientNext(client); });
}

void Simulator::PlanRetry(int client, int op) {
  const int attempt = op_attempt_[op] + 1;
  if (attempt > config_.client_max_retries || !Chance(config_.client_retry)) return;
  const ClientOp& o = checker_->ops()[op];
  client_retry_[client] = RetryPlan{o.retry_of >= 0 ? o.retry_of : op, attempt};
}

void Simulator::ClientTimeout(int client, int op) {
  const ClientOp& o = checker_->ops()[op];
  if (o.finished >= 0 || o.abandoned || op_client_[op] != client || workload_done_) return;
  // The client stops waiting; the put goes on at its node, and its answer,
  // when it comes, is still checked.
  stats_.client_timeouts++;
  op_client_[op] = -1;
  Tags tags;
  TagClientKey(tags, o.key);
  Trace(absl::StrCat("client", client, " gives up waiting for #", op + 1), tags);
  PlanRetry(client, op);
  At(now_ + static_cast<TimeMs>(Uniform(0, config_.think_max_ms)),
     [this, client] { ClientNext(client); });
}

// --- Phases -----------------------------------------------------------------

void Simulator::RunWorkload() {
  Trace(absl::StrCat("BEGIN ", config_.Reproducer()), {}, LineKind::kGlobal);
  for (Node& node : nodes_) {
    node.incarnation = 1;
    StartEngine(node);
  }
  for (int c = 0; c < config_.clients; ++c) {
    At(static_cast<TimeMs>(Uniform(0, config_.think_max_ms)), [this, c] { ClientNext(c); });
  }
  if (config_.fault.partition_every_ms > 0) {
    SchedulePartition(Exponential(config_.fault.partition_every_ms));
  }
  if (config_.fault.crash_every_ms > 0) ScheduleCrash(Exponential(config_.fault.crash_every_ms));
  RunUntil(config_.workload_max_ms,
           [this] { return ops_issued_ >= config_.ops && ops_pending_ == 0; });
}

void Simulator::StartQuiet() {
  workload_done_ = true;
  faults_active_ = false;
  for (Node& node : nodes_) node.group = 0;
}

void Simulator::RunQuiet() {
  if (stopped_) return;
  StartQuiet();
  TimeMs minority_ms = config_.quiet_minority_down_ms;
  // Worst case for a reservation at an up node: a resolve already in flight
  // to an unreachable node (4 call deadlines), the lease, a resolve sent
  // first to the coordinator that is down (4 more), then Paxos rounds at the
  // majority that is up.
  if (minority_ms == 0) minority_ms = 2 * config_.lease_ms + 12 * config_.call_deadline_ms;
  if (config_.fault.crash_every_ms > 0 && minority_ms > 0 && config_.nodes_per_cluster >= 3) {
    // One node of every cluster stays down (crashed now if none is): every
    // cluster has a majority up, so every reservation at an up node must be
    // resolved by the time this part ends (invariant K).
    std::string down;
    for (int c = 0; c < config_.clusters; ++c) {
      std::vector<int> members, dead;
      for (const Node& node : nodes_) {
        if (node.cluster != c) continue;
        members.push_back(node.index);
        if (!node.engine) dead.push_back(node.index);
      }
      const int keep = dead.empty() ? members[Uniform(0, members.size() - 1)]
                                    : dead[Uniform(0, dead.size() - 1)];
      if (nodes_[keep].engine) Crash(nodes_[keep]);
      for (int m : members) {
        if (m != keep && !nodes_[m].engine) Restart(nodes_[m]);
      }
      absl::StrAppend(&down, " ", nodes_[keep].id);
    }
    Trace(absl::StrCat("QUIET: faults off, partitions healed, down for ", minority_ms,
                       " ms: one node per cluster:", down),
          {}, LineKind::kGlobal);
    RunUntil(now_ + minority_ms, [] { return false; });
    if (stopped_) return;
    std::vector<bool> up;
    for (const Node& node : nodes_) up.push_back(node.engine != nullptr);
    checker_->CheckNoReservations(
        up, absl::StrCat("after ", minority_ms,
                         " ms with faults off and only one node of each cluster down"));
    if (checker_->failed()) {
      stopped_ = true;
      return;
    }
  }
  Trace("QUIET: faults off, partitions healed, every node up", {}, LineKind::kGlobal);
  for (Node& node : nodes_) {
    if (!node.engine) Restart(node);
  }
  const TimeMs end = now_ + config_.quiet_ms;
  RunUntil(end, [] { return false; });
}

void Simulator::RunProbe() {
  if (stopped_ || !config_.probe) return;
  Trace(
      "PROBE: a fresh key per node, every node racing on one fresh key, a linearizable "
      "get of every committed key",
      {}, LineKind::kGlobal);
  std::vector<int> own, race, gets;
  for (Node& node : nodes_) {
    ClientOp op;
    op.node = node.index;
    op.probe = true;
    op.started = now_;
    op.key = absl::StrCat("probe-", node.id);
    op.value = absl::StrCat("p-", node.id);
    own.push_back(StartOp(node, op, -1));
    op.key = "probe-race";
    op.value = absl::StrCat("r-", node.id);
    race.push_back(StartOp(node, op, -1));
  }
  std::set<core::Key> keys;
  for (const Node& node : nodes_) {
    for (const auto& [key, value] : node.store->committed()) keys.insert(key);
  }
  for (const core::Key& key : keys) {
    if (key.rfind("probe-", 0) == 0) continue;
    ClientOp op;
    op.type = ClientOp::Type::kGetLinearizable;
    op.probe = true;
    op.key = key;
    op.node = static_cast<int>(Uniform(0, nodes_.size() - 1));
    op.started = now_;
    gets.push_back(StartOp(nodes_[op.node], op, -1));
  }
  const TimeMs end = now_ + config_.quiet_ms;
  RunUntil(end, [this] { return ops_pending_ == 0; });
  if (stopped_) return;
  const auto& ops = checker_->ops();
  for (int i : own) {
    if (ops[i].put && ops[i].put->kind != core::PutOutcome::Kind::kOk) {
      checker_->Fail("V", Subject{ops[i].key, std::nullopt},
                     absl::StrCat("healed cluster: a put of a fresh key at ",
                                  nodes_[ops[i].node].id, " answered ", Describe(*ops[i].put)));
    }
  }
  int race_ok = 0;
  for (int i : race) {
    if (!ops[i].put) continue;
    race_ok += ops[i].put->kind == core::PutOutcome::Kind::kOk;
    if (ops[i].put->kind == core::PutOutcome::Kind::kUnavailable) {
      checker_->Fail("V", Subject{std::string("probe-race"), std::nullopt},
                     absl::StrCat("healed cluster: a racing put at ", nodes_[ops[i].node].id,
                                  " answered ", Describe(*ops[i].put)));
    }
    if (ops[i].put->kind == core::PutOutcome::Kind::kConflict) stats_.probe_race_conflicts++;
  }
  stats_.probe_race_winners = race_ok;
  if (race_ok != 1 && (config_.check_race || race_ok > 1)) {
    checker_->Fail(
        "V", Subject{std::string("probe-race"), std::nullopt},
        absl::StrCat("healed cluster: ", nodes_.size(), " puts raced on a fresh key and ", race_ok,
                     " answered ok (want exactly 1)"));
  }
  for (int i : gets) {
    if (ops[i].get && ops[i].get->kind != core::GetOutcome::Kind::kFound) {
      checker_->Fail("V", Subject{ops[i].key, std::nullopt},
                     absl::StrCat("healed cluster: a linearizable get of a committed key at ",
                                  nodes_[ops[i].node].id, " answered ", Describe(*ops[i].get)));
    }
  }
  // Let the probes' asynchronous commits land before the final checks.
  RunUntil(now_ + 2 * config_.call_deadline_ms, [] { return false; });
}

void Simulator::CheckFinal() {
  if (stopped_) return;
  Trace("CHECK", {}, LineKind::kGlobal);
  std::vector<int> open_inbound;
  for (const Node& node : nodes_) {
    if (!node.engine) {
      checker_->Fail("C", {}, absl::StrCat(node.id, " is down at the end"));
    } else if (config_.check_convergence && !node.engine->caught_up()) {
      checker_->Fail("5", {}, absl::StrCat(node.id, " never completed a catch-up round"));
    }
    open_inbound.push_back(static_cast<int>(node.inbound.size()));
  }
  checker_->CheckFinal(open_inbound);
}

SimResult Simulator::Result() const {
  SimResult result;
  result.config = config_;
  result.violations = checker_->violations();
  if (!result.violations.empty()) Excerpt(result.violations.front(), &result);
  result.history_events = trace_.size();
  result.history_digest = digest_;
  result.liveness = checker_->CountLiveness();
  result.stats = stats_;
  result.stats.end_ms = now_;
  result.stats.puts_joined = dead_engines_.puts_joined;
  result.stats.catchup_rounds = dead_engines_.catchup_rounds;
  result.stats.catchup_keys_pulled = dead_engines_.catchup_keys_pulled;
  for (const Node& node : nodes_) {
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
