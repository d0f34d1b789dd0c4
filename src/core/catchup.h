// CatchUp: anti-entropy over the committed set, a grow-only set that
// replicas converge on by union. Serves digests (4096 bucket hashes) and
// pulls (a bucket's entries, paged); runs rounds that compare this node's
// digest with one voter's and pull every bucket that differs. A node is
// caught up once rounds completed with a majority of its cluster's voters.
// Part of one Engine; single-threaded.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <vector>

#include "core/context.h"
#include "core/replica.h"

namespace replicator::core {

class CatchUp {
 public:
  CatchUp(Context& ctx, Replica& replica) : ctx_(ctx), replica_(replica) {}

  // Schedules the first periodic round, on the first input.
  void Observe(TimeMs now);
  // A round asked for while there was nobody to ask starts once there is.
  void OnTopology(TimeMs now);

  void HandleDigest(uint64_t inbound_id);
  void HandlePull(uint64_t inbound_id, const PullRequest& request);

  void StartRound(TimeMs now);
  // Starts the periodic round when it is due.
  void Tick(TimeMs now);
  std::optional<TimeMs> NextRound() const;
  // A node holds every key committed before its catch-up began once it has
  // completed rounds with a majority of its cluster's voters (itself counted
  // if it votes): every committed key is durable at such a majority. A
  // catching-up node must not be promoted on one peer's word, which may lag.
  bool caught_up() const;

  void CheckInvariants() const;

 private:
  // One round: the peer's digest, then pulls of the buckets that differ.
  struct Round {
    uint64_t id = 0;
    PeerId peer;
    std::deque<uint32_t> buckets;  // differing, not pulled yet
    size_t pulls_in_flight = 0;
    uint64_t last_write = 0;  // the round is complete once this is durable
  };

  // Voters of this cluster but this node, sorted.
  std::vector<PeerId> Peers() const;
  void OnDigest(uint64_t round, Response&& r, TimeMs now);
  void SendPull(uint32_t bucket, const Key& after, TimeMs now);
  void OnPull(uint64_t round, uint32_t bucket, const Key& after, Response&& r, TimeMs now);
  void PumpPulls(TimeMs now);
  void ApplyPulled(const PeerId& from, PulledEntry& entry);

  Context& ctx_;
  Replica& replica_;
  std::optional<Round> round_;
  uint64_t next_round_id_ = 1;
  TimeMs next_round_at_ = kUnseeded;  // periodic round; kUnseeded: none
  std::set<PeerId> caught_up_from_;    // peers a round completed with
  bool wanted_ = false;                // a round found nobody to ask
  std::optional<uint64_t> cursor_;     // round robin over Peers()
};

}  // namespace replicator::core
