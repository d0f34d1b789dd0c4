// Workload: the clients of one run and the probe of the healed system. Each
// client issues puts and gets at random up nodes over a window of `keys`
// keys that slides as operations are issued, pauses between them, gives up
// waiting after a timeout and retries a put whose outcome it does not know
// with the same request id. Every call and answer goes into the checker's
// history of operations. Owns the clients' and the operations' state;
// single-threaded, one per run.
#pragma once

#include <optional>
#include <set>
#include <vector>

#include "core/engine.h"
#include "core/types.h"
#include "sim/checker.h"
#include "sim/sim_world.h"

namespace replicator::sim {

class Workload {
 public:
  explicit Workload(World* world);

  // Schedules every client's first operation after a random pause.
  void Start();
  // Clients issue nothing more; operations in flight still finish.
  void Stop() { done_ = true; }
  // Every one of config.ops operations was issued and has finished.
  bool finished() const;
  int pending() const { return pending_; }
  // No operation is pending at `node`.
  bool Idle(int node) const { return node_ops_[node].empty(); }

  void OnPutDone(int node, const core::PutDoneEffect& done);
  void OnGetDone(int node, const core::GetDoneEffect& done);
  // `node` crashed: the operations pending there are lost (abandoned).
  void OnCrash(int node);

  // The probe (see Simulator::RunProbe): checker op indexes of its parts.
  struct Probe {
    std::vector<int> own;   // a put of a fresh key at every node
    std::vector<int> race;  // every node's put of one fresh key
    std::vector<int> gets;  // a linearizable get of every committed key
  };
  void StartProbePuts(Probe* probe);
  // `committed`: every key committed at any node.
  void StartProbeGets(const std::set<core::Key>& committed, Probe* probe);
  // Fails the checker unless the probe's answers show a healed system.
  void CheckProbe(const Probe& probe);

 private:
  struct RetryPlan {
    int first_op;
    int attempt;
  };

  // `base` if the engines' shard owns it, else the first of base~0,
  // base~1, ... that it owns: distinct bases give distinct keys.
  core::Key OwnedKey(std::string base) const;
  void ClientNext(int client);
  // Plans a retry of put `op` for its client, if the dice say so.
  void PlanRetry(int client, int op);
  void ClientTimeout(int client, int op);
  // `client` < 0: a probe, which issues nothing further when it finishes.
  // `attempt`: retries of the same client put before this one.
  int StartOp(int node, ClientOp op, int client, int attempt = 0);
  void OpFinished(int op);

  World& world_;
  bool done_ = false;
  int issued_ = 0;
  int pending_ = 0;
  std::vector<std::vector<int>> node_ops_;  // by node: checker op indexes started there, pending
  std::vector<int> client_seq_;
  std::vector<int> op_client_;   // checker op index -> client; -1: probe or detached
  std::vector<int> op_attempt_;  // checker op index -> retries before it (puts)
  std::vector<std::optional<RetryPlan>> client_retry_;
  core::TimeMs think_max_ms_;  // a client's pause between operations, at most
};

}  // namespace replicator::sim
