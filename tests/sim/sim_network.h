// SimNetwork: the simulated network of one run — calls in flight with their
// deadlines, requests delivered to a node and not yet answered, partition
// sides, nodes cut off on their own — carrying SendEffects and
// RespondEffects between the World's engines with seeded delay spread (so
// reordering), slow messages, drops, duplicates, partitions of one node, one
// cluster or random halves, and long pauses of single nodes.
// Owns that state; single-threaded, one per run.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/engine.h"
#include "core/messages.h"
#include "core/types.h"
#include "sim/history.h"
#include "sim/sim_world.h"

namespace replicator::sim {

class SimNetwork {
 public:
  explicit SimNetwork(World* world);

  void HandleSend(int node, core::SendEffect send);
  void HandleRespond(int node, core::RespondEffect respond);

  // Starts the partition fault: the first partition `after` ms from now,
  // each followed by a heal and the next partition.
  void SchedulePartition(core::TimeMs after);
  // Every node on one side and none cut off, for good (partitions check
  // faults_active).
  void Heal();
  // Cuts `node` off from every other node, or reconnects it; independent of
  // the partition fault's sides.
  void Isolate(int node, bool isolated) { endpoints_[node].isolated = isolated; }
  bool isolated(int node) const { return endpoints_[node].isolated; }
  // `node` crashed: the requests it was given die unanswered.
  void OnCrash(int node);
  // Requests delivered to `node` and not yet answered.
  int open_requests(int node) const;

 private:
  struct Inbound {
    uint64_t call;  // key of calls_
    bool duplicate;
    size_t answer_kind;                       // the Response::index() that answers it
    std::optional<core::ProposalId> resolve;  // a ResolveRequest's proposal
    History::Tags tags;                       // the request's
  };
  struct Call {
    int from;
    uint64_t from_incarnation;
    uint64_t call_id;
    int to;
    core::TimeMs deadline;
    History::Tags tags;  // the request's
  };
  struct Endpoint {
    int group = 0;  // partition side
    bool isolated = false;  // paused: cut off from every other node
    uint64_t next_inbound = 1;
    absl::flat_hash_map<uint64_t, Inbound> inbound;
  };

  void DeliverRequest(uint64_t call, int from, int to, uint64_t to_incarnation,
                      core::Request request, bool duplicate);
  void DeliverResponse(uint64_t call, core::Response response);
  void CallDeadline(uint64_t call);
  // Sets every node's partition side; returns the shape's description.
  std::string ChoosePartition();
  core::TimeMs NetDelay();
  bool Connected(int a, int b) const;
  int NodeOf(const core::PeerId& id) const;

  World& world_;
  std::vector<Endpoint> endpoints_;  // by node index
  absl::flat_hash_map<uint64_t, Call> calls_;
  uint64_t next_call_ = 1;
  uint64_t partition_generation_ = 0;
};

}  // namespace replicator::sim
