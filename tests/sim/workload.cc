#include "sim/workload.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "sim/describe.h"

namespace replicator::sim {

using core::TimeMs;

Workload::Workload(World* world)
    : world_(*world),
      node_ops_(world->node_count()),
      client_seq_(world->config().clients, 0),
      client_retry_(world->config().clients, std::nullopt),
      think_max_ms_(world->config().fault.think_max_ms > 0 ? world->config().fault.think_max_ms
                                                           : world->config().think_max_ms) {}

void Workload::Start() {
  for (int c = 0; c < world_.config().clients; ++c) {
    world_.At(static_cast<TimeMs>(world_.Uniform(0, think_max_ms_)), [this, c] { ClientNext(c); });
  }
}

bool Workload::finished() const { return issued_ >= world_.config().ops && pending_ == 0; }

// --- Clients ----------------------------------------------------------------

void Workload::ClientNext(int client) {
  if (done_) return;
  const SimConfig& config = world_.config();
  std::optional<RetryPlan> retry = std::move(client_retry_[client]);
  client_retry_[client].reset();
  if (!retry && issued_ >= config.ops) return;
  std::vector<int> up;
  for (const SimNode& node : world_.nodes()) {
    if (node.engine && !node.draining) up.push_back(node.index);
  }
  if (up.empty()) {
    client_retry_[client] = retry;
    world_.At(world_.now() + 100, [this, client] { ClientNext(client); });
    return;
  }
  const int node = up[world_.Uniform(0, up.size() - 1)];
  ClientOp op;
  op.node = node;
  op.started = world_.now();
  if (retry) {
    // The same client put again: same key, value and request id.
    const ClientOp& first = world_.checker().ops()[retry->first_op];
    op.type = ClientOp::Type::kPut;
    op.key = first.key;
    op.value = first.value;
    op.request_id = first.request_id;
    op.retry_of = retry->first_op;
    world_.stats().client_retries++;
    StartOp(node, std::move(op), client, retry->attempt);
    return;
  }
  // A window of `keys` keys that slides by one key every few operations: each
  // key sees a burst of racing puts while fresh, then keyExists and gets.
  op.key = OwnedKey(absl::StrCat("k", issued_ / 4 + world_.Uniform(0, config.keys - 1)));
  if (world_.Chance(config.put_share)) {
    op.type = ClientOp::Type::kPut;
    op.request_id = (static_cast<uint64_t>(client) + 1) * 1'000'000 + client_seq_[client] + 1;
    op.value = absl::StrCat("v", client, ".", client_seq_[client]++);
    if (world_.Chance(config.invalid_share)) op.key.clear();
  } else {
    op.type = world_.Chance(config.linearizable_share) ? ClientOp::Type::kGetLinearizable
                                                       : ClientOp::Type::kGetLocal;
  }
  issued_++;
  StartOp(node, std::move(op), client);
}

int Workload::StartOp(int node_index, ClientOp op, int client, int attempt) {
  SimNode& node = world_.node(node_index);
  const SimConfig& config = world_.config();
  pending_++;
  const ClientOp::Type type = op.type;
  core::Key key = op.key;
  core::Value value = op.value;
  const int index = world_.checker().OnOpStarted(std::move(op));
  op_client_.resize(index + 1, -1);
  op_client_[index] = client;
  node_ops_[node_index].push_back(index);
  op_attempt_.resize(index + 1, 0);
  op_attempt_[index] = attempt;
  const uint64_t id = static_cast<uint64_t>(index) + 1;
  const std::string who = client >= 0 ? absl::StrCat("client", client) : "probe";
  History::Tags tags;
  world_.history().TagClientKey(tags, key);
  if (type == ClientOp::Type::kPut) {
    world_.stats().puts++;
    const uint64_t request_id = world_.checker().ops()[index].request_id;
    const int retry_of = world_.checker().ops()[index].retry_of;
    world_.Trace(
        absl::StrCat(
            node.id, " ", who, " StartPut #", id, " ", Quote(key), "=", Quote(value),
            request_id != 0 ? absl::StrCat(" rid=", request_id) : std::string(),
            retry_of >= 0 ? absl::StrCat(" (retry of #", retry_of + 1, ")") : std::string()),
        tags);
    if (client >= 0) {
      const TimeMs timeout =
          config.client_timeout_ms > 0 ? config.client_timeout_ms : 2 * config.call_deadline_ms;
      world_.At(world_.now() + timeout, [this, client, index] { ClientTimeout(client, index); });
    }
    node.engine->StartPut(id, std::move(key), std::move(value), request_id, world_.now());
  } else {
    world_.stats().gets++;
    const bool linearizable = type == ClientOp::Type::kGetLinearizable;
    world_.Trace(absl::StrCat(node.id, " ", who, " StartGet #", id, " ", Quote(key),
                              linearizable ? " linearizable" : " local"),
                 tags);
    node.engine->StartGet(
        id, std::move(key),
        linearizable ? core::Consistency::kLinearizable : core::Consistency::kLocal, world_.now());
  }
  world_.Drain(node_index);
  return index;
}

void Workload::OpFinished(int op) {
  pending_--;
  const ClientOp& done = world_.checker().ops()[op];
  std::vector<int>& at_node = node_ops_[done.node];
  auto it = std::find(at_node.begin(), at_node.end(), op);
  if (it != at_node.end()) at_node.erase(it);
  const int client = op_client_[op];
  if (client < 0) return;  // a probe, or its client timed out and moved on
  // An unknown outcome: a real client retries the same put.
  if (done.type == ClientOp::Type::kPut && done.request_id != 0 &&
      (done.abandoned || (done.put && done.put->kind == core::PutOutcome::Kind::kUnavailable))) {
    PlanRetry(client, op);
  }
  world_.At(world_.now() + static_cast<TimeMs>(world_.Uniform(0, think_max_ms_)),
            [this, client] { ClientNext(client); });
}

void Workload::PlanRetry(int client, int op) {
  const int attempt = op_attempt_[op] + 1;
  if (attempt > world_.config().client_max_retries ||
      !world_.Chance(world_.config().client_retry)) {
    return;
  }
  const ClientOp& o = world_.checker().ops()[op];
  client_retry_[client] = RetryPlan{o.retry_of >= 0 ? o.retry_of : op, attempt};
}

void Workload::ClientTimeout(int client, int op) {
  const ClientOp& o = world_.checker().ops()[op];
  if (o.finished >= 0 || o.abandoned || op_client_[op] != client || done_) return;
  // The client stops waiting; the put goes on at its node, and its answer,
  // when it comes, is still checked.
  world_.stats().client_timeouts++;
  op_client_[op] = -1;
  History::Tags tags;
  world_.history().TagClientKey(tags, o.key);
  world_.Trace(absl::StrCat("client", client, " gives up waiting for #", op + 1), tags);
  PlanRetry(client, op);
  world_.At(world_.now() + static_cast<TimeMs>(world_.Uniform(0, think_max_ms_)),
            [this, client] { ClientNext(client); });
}

// --- Answers ----------------------------------------------------------------

void Workload::OnPutDone(int node_index, const core::PutDoneEffect& fx) {
  const SimNode& node = world_.node(node_index);
  Checker& checker = world_.checker();
  SimStats& stats = world_.stats();
  const int op = static_cast<int>(fx.put_id) - 1;
  const std::vector<int>& at_node = node_ops_[node_index];
  auto it = std::find(at_node.begin(), at_node.end(), op);
  if (it == at_node.end() || op < 0 || checker.ops()[op].type != ClientOp::Type::kPut) {
    checker.Fail("C", {},
                 absl::StrCat(node.id, " PutDone for put_id ", fx.put_id,
                              " that is not pending there: ", Describe(fx.outcome)));
    return;
  }
  History::Tags tags;
  world_.history().TagClientKey(tags, checker.ops()[op].key);
  world_.Trace(absl::StrCat(node.id, " PutDone #", fx.put_id, " ", Quote(checker.ops()[op].key),
                            "=", Quote(checker.ops()[op].value), " -> ", Describe(fx.outcome)),
               tags);
  switch (fx.outcome.kind) {
    case core::PutOutcome::Kind::kOk:
      stats.puts_ok++;
      if (checker.ops()[op].retry_of >= 0) stats.puts_retry_ok++;
      break;
    case core::PutOutcome::Kind::kKeyExists:
      stats.puts_exists++;
      break;
    case core::PutOutcome::Kind::kConflict:
      stats.puts_conflict++;
      break;
    case core::PutOutcome::Kind::kUnavailable:
      stats.puts_unavailable++;
      break;
    case core::PutOutcome::Kind::kOutcomeUnknown:
      stats.puts_unavailable++;  // reported as "of which outcome unknown"
      stats.puts_outcome_unknown++;
      break;
    case core::PutOutcome::Kind::kInvalidArgument:
      stats.puts_invalid++;
      break;
  }
  checker.OnPutDone(op, fx.outcome);
  OpFinished(op);
}

void Workload::OnGetDone(int node_index, const core::GetDoneEffect& fx) {
  const SimNode& node = world_.node(node_index);
  Checker& checker = world_.checker();
  SimStats& stats = world_.stats();
  const int op = static_cast<int>(fx.get_id) - 1;
  const std::vector<int>& at_node = node_ops_[node_index];
  auto it = std::find(at_node.begin(), at_node.end(), op);
  if (it == at_node.end() || op < 0 || checker.ops()[op].type == ClientOp::Type::kPut) {
    checker.Fail("C", {},
                 absl::StrCat(node.id, " GetDone for get_id ", fx.get_id,
                              " that is not pending there: ", Describe(fx.outcome)));
    return;
  }
  History::Tags tags;
  world_.history().TagClientKey(tags, checker.ops()[op].key);
  world_.Trace(absl::StrCat(node.id, " GetDone #", fx.get_id, " ", Quote(checker.ops()[op].key),
                            " -> ", Describe(fx.outcome)),
               tags);
  switch (fx.outcome.kind) {
    case core::GetOutcome::Kind::kFound:
      stats.gets_found++;
      break;
    case core::GetOutcome::Kind::kNotFound:
      stats.gets_not_found++;
      break;
    default:
      stats.gets_unavailable++;
      break;
  }
  checker.OnGetDone(op, fx.outcome);
  OpFinished(op);
}

void Workload::OnCrash(int node_index) {
  std::vector<int> lost = std::move(node_ops_[node_index]);
  node_ops_[node_index].clear();
  Checker& checker = world_.checker();
  for (int op : lost) {
    History::Tags tags;
    world_.history().TagClientKey(tags, checker.ops()[op].key);
    world_.Trace(
        absl::StrCat(world_.node(node_index).id, " #", op + 1, " lost with its node: no answer"),
        tags);
    checker.OnOpAbandoned(op);
    if (checker.ops()[op].type == ClientOp::Type::kPut) world_.stats().puts_abandoned++;
    OpFinished(op);
  }
}

// --- Probe ------------------------------------------------------------------

core::Key Workload::OwnedKey(std::string base) const {
  const core::ShardRange range{world_.config().shard, world_.config().shards};
  if (range.Owns(base)) return base;
  for (int i = 0;; ++i) {
    std::string key = absl::StrCat(base, "~", i);
    if (range.Owns(key)) return key;
  }
}

void Workload::StartProbePuts(Probe* probe) {
  for (const SimNode& node : world_.nodes()) {
    if (node.retired) continue;  // stopped for good, its cluster removed
    ClientOp op;
    op.node = node.index;
    op.probe = true;
    op.started = world_.now();
    op.key = OwnedKey(absl::StrCat("probe-", node.id));
    op.value = absl::StrCat("p-", node.id);
    probe->own.push_back(StartOp(node.index, op, -1));
    op.key = OwnedKey("probe-race");
    op.value = absl::StrCat("r-", node.id);
    probe->race.push_back(StartOp(node.index, op, -1));
  }
}

void Workload::StartProbeGets(const std::set<core::Key>& committed, Probe* probe) {
  for (const core::Key& key : committed) {
    if (key.rfind("probe-", 0) == 0) continue;
    ClientOp op;
    op.type = ClientOp::Type::kGetLinearizable;
    op.probe = true;
    op.key = key;
    do {
      op.node = static_cast<int>(world_.Uniform(0, world_.node_count() - 1));
    } while (world_.node(op.node).retired);
    op.started = world_.now();
    probe->gets.push_back(StartOp(op.node, op, -1));
  }
}

void Workload::CheckProbe(const Probe& probe) {
  Checker& checker = world_.checker();
  const auto& ops = checker.ops();
  auto at = [&](int i) { return world_.node(ops[i].node).id; };
  for (int i : probe.own) {
    if (ops[i].put && ops[i].put->kind != core::PutOutcome::Kind::kOk) {
      checker.Fail("V", Subject{ops[i].key, std::nullopt},
                   absl::StrCat("healed cluster: a put of a fresh key at ", at(i), " answered ",
                                Describe(*ops[i].put)));
    }
  }
  int race_ok = 0;
  for (int i : probe.race) {
    if (!ops[i].put) continue;
    race_ok += ops[i].put->kind == core::PutOutcome::Kind::kOk;
    if (ops[i].put->kind == core::PutOutcome::Kind::kUnavailable) {
      checker.Fail("V", Subject{std::string("probe-race"), std::nullopt},
                   absl::StrCat("healed cluster: a racing put at ", at(i), " answered ",
                                Describe(*ops[i].put)));
    }
    if (ops[i].put->kind == core::PutOutcome::Kind::kConflict) {
      world_.stats().probe_race_conflicts++;
    }
  }
  world_.stats().probe_race_winners = race_ok;
  if (race_ok != 1 && (world_.config().check_race || race_ok > 1)) {
    checker.Fail(
        "V", Subject{std::string("probe-race"), std::nullopt},
        absl::StrCat("healed cluster: ", world_.node_count(), " puts raced on a fresh key and ",
                     race_ok, " answered ok (want exactly 1)"));
  }
  for (int i : probe.gets) {
    if (ops[i].get && ops[i].get->kind != core::GetOutcome::Kind::kFound) {
      // notFound for a key committed before the get began is a stale read,
      // a safety violation (L); any other answer is the healed system
      // failing to serve (V).
      const bool stale = ops[i].get->kind == core::GetOutcome::Kind::kNotFound;
      checker.Fail(stale ? "L" : "V", Subject{ops[i].key, std::nullopt},
                   absl::StrCat("healed cluster: a linearizable get of a committed key at ", at(i),
                                " answered ", Describe(*ops[i].get)));
    }
  }
}

}  // namespace replicator::sim
