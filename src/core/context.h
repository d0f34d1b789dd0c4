// Context: what the roles of one engine share, and the only way they act on
// the world. It holds the configuration, the membership view, the committed
// view, the decisions known, the random source and the counters; it turns a
// role's sends, answers and mutations into Effects, keeps each send's
// continuation until its response arrives, and batches one input's
// mutations into one WriteEffect whose continuations run once it is
// durable. Owned by the Engine; single-threaded, like the engine.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "core/decision_cache.h"
#include "core/engine.h"
#include "core/messages.h"
#include "core/types.h"

namespace replicator::core {

// The continuation of a send: the peer's response, or Unreachable.
using CallFn = std::function<void(Response&&, TimeMs)>;
// Runs once a write is durable.
using WriteFn = std::function<void()>;
// nullopt: the decision could not be learned; `reason` says why.
using DecisionFn =
    std::function<void(std::optional<Decision>, const std::string& reason, TimeMs)>;
// A replica's answer to a reserve, commit or abort.
using VoteFn = std::function<void(Vote)>;

// A time not yet set: recovered state gets its clock on the first input.
inline constexpr TimeMs kUnseeded = std::numeric_limits<TimeMs>::min();

// Why a response is not the one a call expected.
std::string ReasonOf(const Response& response);
const char* DecisionName(Decision d);

class Context {
 public:
  Context(EngineConfig config, const CommittedView* committed);
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const EngineConfig& config() const { return config_; }
  const PeerId& self() const { return config_.self; }
  const ClusterId& cluster() const { return config_.cluster; }
  const CommittedView& committed() const { return *committed_; }
  const Topology& topology() const { return topology_; }
  void set_topology(Topology topology) { topology_ = std::move(topology); }
  EngineStats& stats() { return stats_; }
  const EngineStats& stats() const { return stats_; }
  std::mt19937_64& rng() { return rng_; }

  // `now` of the input being handled.
  TimeMs now() const { return now_; }
  // Brackets every input: the input's mutations go out as one WriteEffect
  // when it ends.
  void BeginInput(TimeMs now) {
    now_ = now;
    input_trusted_ = true;
  }
  // The input being handled is a request from a sender that is (true) or is
  // not an authenticated member of the federation; every other input is
  // trusted. A violation an untrusted input shows is reported, not counted.
  void set_input_trusted(bool trusted) { input_trusted_ = trusted; }
  void EndInput();

  // Ids unique within this engine: of in-flight operations, and the
  // sequence of this incarnation's proposals.
  uint64_t NextOpId() { return next_op_id_++; }
  uint64_t NextSequence() { return ++sequence_; }

  // Sends `request` to `to`; `then` (may be null: fire-and-forget) gets the
  // response or Unreachable. Returns the call id. A call to this node itself
  // never leaves the engine: it becomes SelfWork, handled before the input
  // ends, and has no deadline (the answer waits only for this node's writes).
  uint64_t Send(const PeerId& to, Request request, TimeMs deadline, CallFn then);
  void Respond(uint64_t inbound_id, Response response);

  // A call this engine made to itself, or the answer to one.
  struct SelfRequest {
    uint64_t inbound_id = 0;
    Request request;
  };
  struct SelfResponse {
    uint64_t call_id = 0;
    Response response;
  };
  using SelfWork = std::variant<SelfRequest, SelfResponse>;
  // The oldest self call or answer not handled yet, in the order made.
  std::optional<SelfWork> TakeSelfWork();
  void Emit(Effect effect) { effects_.push_back(std::move(effect)); }
  // Counts and reports a safety violation.
  void ReportViolation(Key key, std::string detail);

  // Adds `m` to the current input's batch; returns the batch's write id.
  uint64_t Mutate(Mutation m);
  // The newest write handed out so far (0: none): once it is durable, every
  // mutation made until now is.
  uint64_t LastWrite() const { return next_write_id_ - 1; }
  // Runs `fn` once write `write_id` is durable; at once if it already is
  // (or `write_id` is 0).
  void AfterWrite(uint64_t write_id, WriteFn fn);

  // Decisions known here. Recording a decision that contradicts a known one
  // keeps the first and reports a safety violation.
  std::optional<Decision> FindDecision(const ProposalId& p) const { return decided_.Find(p); }
  void RecordDecision(const ProposalId& p, Decision d);

  // A vote of this node.
  Vote MakeVote(Vote::Kind kind) const;
  // The vote a reserve fan-out got from `peer`: its own, or unreachable.
  static Vote VoteFrom(const PeerId& peer, const ClusterId& cluster, Response& response);

  // Inputs routed here by the engine.
  void OnResponse(uint64_t call_id, Response response, TimeMs now);
  void OnWriteDone(uint64_t write_id);

  std::vector<Effect> TakeEffects();
  bool HasEffects() const { return !effects_.empty(); }

  // True iff `write_id` was handed out and is not durable yet.
  bool WritePending(uint64_t write_id) const { return writes_.contains(write_id); }
  // RP_CHECKs what must hold between inputs.
  void CheckInvariants() const;

 private:
  struct PendingWrite {
    WriteBatch batch;
    bool emitted = false;
    std::vector<WriteFn> then;  // run in order once durable
  };

  EngineConfig config_;
  const CommittedView* committed_;
  Topology topology_;
  DecisionCache decided_;
  std::mt19937_64 rng_;
  bool input_trusted_ = true;
  EngineStats stats_;
  TimeMs now_ = 0;

  std::vector<Effect> effects_;
  uint64_t next_call_id_ = 1;
  uint64_t next_write_id_ = 1;
  uint64_t next_op_id_ = 1;
  uint64_t sequence_ = 0;
  uint64_t open_write_ = 0;  // batch of the current input, 0 if none
  absl::flat_hash_map<uint64_t, PendingWrite> writes_;
  absl::flat_hash_map<uint64_t, CallFn> calls_;

  // Inbound ids of self calls start here, far above any driver's ids.
  static constexpr uint64_t kSelfInbound = uint64_t{1} << 63;
  uint64_t next_self_inbound_ = kSelfInbound;
  std::deque<SelfWork> self_work_;
  // Self calls not answered yet: inbound id -> the caller's call id.
  absl::flat_hash_map<uint64_t, uint64_t> self_calls_;
};

}  // namespace replicator::core
