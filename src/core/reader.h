// Reader: the client gets that arrive at this node. A local get answers
// from this node's committed entries at once. A linearizable get reads at
// a majority of this cluster: any committed value wins; otherwise every
// reservation found is resolved first, since a put that answered ok is
// durable as a reservation at a majority before its commit lands. Only
// voters settled with the federation count (core/federation.h): one that
// is not answers kNotReady, and a read without a majority of the others
// is unavailable, naming the cluster as still catching up.
// Part of one Engine; single-threaded.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/context.h"
#include "core/membership.h"
#include "core/recovery.h"
#include "core/replica.h"

namespace replicator::core {

class Reader {
 public:
  Reader(Context& ctx, Replica& replica, Recovery& recovery, Membership& membership)
      : ctx_(ctx), replica_(replica), recovery_(recovery), membership_(membership) {}

  void StartGet(uint64_t get_id, Key key, Consistency consistency, TimeMs now);

  void CheckInvariants() const;

 private:
  struct GetOp {
    enum class Phase : uint8_t { kRead, kResolve };
    uint64_t get_id = 0;
    Key key;
    Phase phase = Phase::kRead;
    size_t voters = 0;
    uint64_t epoch = 0;  // of this cluster, the reads are counted under
    int attempt = 1;     // a read restarts when a voter moved to a newer epoch
    bool epoch_moved = false;
    size_t not_ready = 0;  // voters still catching up with the federation
    size_t answered = 0;
    size_t outstanding = 0;
    std::string first_error;
    std::vector<ReadResponse> reads;
    size_t resolving = 0;
    std::optional<Value> found;
    std::optional<std::string> unavailable;
  };

  // Sends the reads of a linearizable get, under the newest epoch known.
  void StartReads(uint64_t get_id, Key key, int attempt, TimeMs now);
  void OnRead(uint64_t id, const PeerId& peer, Response&& r, TimeMs now);
  void EvaluateReads(uint64_t id, TimeMs now);
  void OnResolved(uint64_t id, const Value& value, std::optional<Decision> d,
                  const std::string& reason);
  void FinishGet(uint64_t id, GetOutcome outcome);

  Context& ctx_;
  Replica& replica_;
  Recovery& recovery_;
  Membership& membership_;
  std::unordered_map<uint64_t, GetOp> gets_;
};

}  // namespace replicator::core
