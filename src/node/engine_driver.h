// EngineDriver: carries out the engine's effects on the reactor. Owns the
// core::Engine, the waiters of client puts and gets, the callbacks of
// membership changes, the inbound peer calls in flight and the engine's
// wake-up timer. Storage completions arrive on the storage thread and are posted to
// the reactor; everything else is reactor thread only. Owned by Node::Impl.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "core/engine.h"
#include "node/failpoints.h"
#include "node/fan_in.h"
#include "node/node_context.h"
#include "node/peer_network.h"
#include "node/waiters.h"
#include "storage/storage.h"

namespace replicator::node {

class EngineDriver {
 public:
  // `storage` outlives the driver's use of it: its completions find the
  // liveness token gone once the node is destroyed.
  // The engine owns the keys of `range` (core/shard.h).
  EngineDriver(const NodeContext& ctx, core::ShardRange range, storage::Storage* storage,
               core::DurableState recovered, uint64_t incarnation, PeerNetwork& network,
               Failpoints& failpoints);

  // Client calls.
  asio::awaitable<core::PutOutcome> Put(core::Key key, core::Value value, uint64_t request_id);
  // Starts a get. The slot holds the outcome at once for a local read (no
  // coroutine, no hop through Asio), later for a linearizable one.
  std::shared_ptr<Waiters<core::GetOutcome>::Slot> StartGet(core::Key key,
                                                            core::Consistency consistency);
  // StartGet and its outcome, as one coroutine (for a shard on a thread of
  // its own, whose slot the caller may not wait on).
  asio::awaitable<core::GetOutcome> Get(core::Key key, core::Consistency consistency);

  // Changes this node's cluster by consensus (core::Engine::ChangeMembership).
  // `done` runs exactly once, on the reactor thread and possibly before
  // this returns: with the outcome, or with kUnavailable when the node
  // shuts down first (or has already).
  void ChangeMembership(core::MembershipChange change,
                        std::function<void(core::ChangeOutcome)> done);

  // Peer calls from `from`: hands `requests` to the engine and awaits all
  // their responses, in order.
  asio::awaitable<std::vector<core::Response>> Inbound(std::vector<core::Request> requests,
                                                       core::Sender from);
  // The responses to calls this node sent, in their order.
  void OnResponses(const std::vector<core::SendEffect>& calls,
                   std::vector<core::Response> responses);

  void SetTopology(core::Topology topology);
  void StartCatchUp();
  // This node's cluster's newest configuration known here (epoch 0: none).
  const core::Configuration& configuration() const { return engine_->configuration(); }
  std::vector<core::Configuration> configurations() const { return engine_->configurations(); }
  core::EngineStats stats() const { return engine_->stats(); }

  // Answers everything waiting: puts `outcomeUnknown`, gets and membership
  // changes `unavailable`, inbound calls Unreachable. Requires ctx.shut_down
  // to be set.
  void Shutdown();

 private:
  // Inbound calls in flight: one batch per Peer.call, answered when its
  // last call is.
  using InboundBatch = FanIn<core::Response>;
  struct InboundSlot {
    std::shared_ptr<InboundBatch> batch;
    size_t index = 0;
  };
  // Writes made durable by the storage thread, not yet given to the engine.
  struct CompletedWrites {
    std::mutex mu;
    std::vector<std::pair<uint64_t, absl::Status>> writes;  // guarded by mu
  };

  void Pump();
  void Carry(core::Effect& effect);
  // Through the peer network: the engine never sends to this node itself.
  void Send(core::SendEffect effect);
  void Write(core::WriteEffect effect);
  // Hands the engine every storage write completed since the last drain.
  void DrainCompletedWrites();
  // Answers inbound call `id` (a RespondEffect).
  void Respond(uint64_t id, core::Response response);
  // Everything the engine asks for in one turn of the loop goes out
  // together, at the end of the turn.
  void PostFlush();
  void Flush();
  void ScheduleWakeup();
  // Metrics (ctx_.metrics) and the slow-put log.
  void ObservePut(std::chrono::steady_clock::duration elapsed, size_t key_bytes,
                  uint64_t request_id, const core::PutOutcome& outcome,
                  const core::PutTimings& timings);
  void CountGet(uint64_t get_id, const core::GetOutcome& outcome);

  const NodeContext& ctx_;
  storage::Storage* storage_;
  PeerNetwork& network_;
  Failpoints& failpoints_;
  std::unique_ptr<core::Engine> engine_;

  absl::flat_hash_map<uint64_t, InboundSlot> inbound_;
  bool flush_posted_ = false;
  std::shared_ptr<CompletedWrites> completed_writes_ = std::make_shared<CompletedWrites>();
  Waiters<core::PutDoneEffect> puts_;  // the outcome and where its time went
  Waiters<core::GetOutcome> gets_;
  // When each get in flight started, for its latency.
  absl::flat_hash_map<uint64_t, std::chrono::steady_clock::time_point> get_started_;
  absl::flat_hash_map<uint64_t, std::function<void(core::ChangeOutcome)>> changes_;
  uint64_t next_id_ = 1;
  bool pumping_ = false;
  asio::steady_timer wakeup_;
  std::optional<core::TimeMs> wakeup_at_;
};

}  // namespace replicator::node
