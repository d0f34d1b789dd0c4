// CatchUp: anti-entropy over the committed set, a grow-only set that
// replicas converge on by union. Serves digests (4096 bucket hashes, with
// the server's epoch and the reservations it holds) and pulls (a bucket's
// entries, paged); runs rounds that compare this node's digest with one
// voter's, pull every bucket that differs and learn the decision of every
// reservation the voter held, applying the commits. It is also the settle
// rule of membership: a node has settled its cluster's epoch e once rounds
// completed with a majority of e's voters (itself counted if it votes) that
// answered at epoch e or later; it then holds everything such a majority
// held, including what was reserved under earlier epochs (docs/design.md).
// And it runs the federation settle (core/federation.h): until that holds,
// rounds alternate between this cluster's voters and the voters of the
// oldest cluster, learning every reservation's decision.
// Part of one Engine; single-threaded.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "core/context.h"
#include "core/federation.h"
#include "core/membership.h"
#include "core/recovery.h"
#include "core/replica.h"

namespace replicator::core {

class CatchUp {
 public:
  CatchUp(Context& ctx, Replica& replica, Recovery& recovery, Membership& membership,
          Federation& federation)
      : ctx_(ctx),
        replica_(replica),
        recovery_(recovery),
        membership_(membership),
        federation_(federation) {}

  // Schedules the first periodic round, on the first input.
  void Observe(TimeMs now);
  // A round asked for while there was nobody to ask starts once there is.
  void OnTopology(TimeMs now);
  // This node's cluster moved to a newer epoch: settle it at once.
  void OnEpoch(TimeMs now);
  // This node's federation generation grew (or its cluster's became
  // known): settle with the federation at once if it must.
  void OnGeneration(TimeMs now);

  void HandleDigest(uint64_t inbound_id);
  void HandlePull(uint64_t inbound_id, const PullRequest& request);

  void StartRound(TimeMs now);
  // Starts the periodic round when it is due.
  void Tick(TimeMs now);
  std::optional<TimeMs> NextRound() const;
  // A node holds every key committed before its catch-up began once it has
  // completed rounds with a majority of its cluster's voters (itself counted
  // if it votes) of the current epoch, each answering at that epoch or
  // later: every committed key is durable at such a majority. A catching-up
  // node must not be promoted on one peer's word, which may lag.
  bool caught_up() const;
  // Membership's settle rule: caught up under the current epoch, as above,
  // which an epoch with no epoch before it (the founding one) needs not be.
  bool settled() const { return membership_.epoch() <= 1 || caught_up(); }

  void CheckInvariants() const;

 private:
  // Buckets [first, end), pulled page by page as one range.
  struct BucketRange {
    uint32_t first = 0;
    uint32_t end = 0;
  };
  // One round: the peer's digest, then pulls of the buckets that differ.
  struct Round {
    uint64_t id = 0;
    PeerId peer;
    ClusterId cluster;             // the peer's: this node's, or the federation settle's source
    std::deque<BucketRange> buckets;  // differing, not pulled yet
    // Ranges part pulled: where each one's next page starts.
    std::deque<std::pair<BucketRange, Key>> resume;
    size_t pulls_in_flight = 0;
    size_t pages_unwritten = 0;  // applied, not yet durable
    uint64_t last_write = 0;  // the round is complete once this is durable
    uint64_t peer_epoch = 0;  // the epoch the peer answered at
    uint64_t peer_generation = 0;  // the federation generation it answered at
    bool peer_settled = false;     // it said it is federation-settled
    size_t resolving = 0;     // the peer's reservations whose decision is awaited
  };

  // Voters of this cluster but this node, sorted.
  std::vector<PeerId> Peers() const;
  // Whom the next round asks, and of which cluster: round robin over
  // Peers(), alternating, while not federation-settled, with the voters of
  // the federation settle's source cluster. Empty when there is nobody.
  std::pair<PeerId, ClusterId> NextPeer();
  // A round must learn the decision of every reservation its peer holds.
  bool Settling() const { return !settled() || !federation_.settled(); }
  void OnDigest(uint64_t round, Response&& r, TimeMs now);
  void SendPull(BucketRange range, const Key& after, TimeMs now);
  void OnPull(uint64_t round, BucketRange range, const Key& after, Response&& r, TimeMs now);
  void PumpPulls(TimeMs now);
  // Writes the entries of a pulled page that are not committed here yet;
  // reports a key committed here with another value. Returns the write id,
  // 0 if nothing was written.
  uint64_t ApplyPage(const PeerId& from, const std::vector<PulledEntry>& page);
  // Learns reservation `r`'s decision (the peer held it) and applies it.
  void Resolve(Reservation r, TimeMs now);
  void OnResolved(uint64_t round, const Reservation& r, std::optional<Decision> d);
  // Ends the round once every pull and resolve is done and durable.
  void MaybeComplete();
  // Ends the round without counting it; the next is due at the next
  // interval, or soon while not settled with the federation (reads wait).
  void RoundFailed(TimeMs now);

  Context& ctx_;
  Replica& replica_;
  Recovery& recovery_;
  Membership& membership_;
  Federation& federation_;
  std::optional<Round> round_;
  uint64_t next_round_id_ = 1;
  TimeMs next_round_at_ = kUnseeded;  // periodic round; kUnseeded: none
  // Peers a round completed with, and the newest epoch each answered at.
  std::map<PeerId, uint64_t> caught_up_from_;
  bool wanted_ = false;                // a round found nobody to ask
  std::optional<uint64_t> cursor_;     // round robin over Peers()
  std::optional<uint64_t> source_cursor_;  // round robin over the source cluster's voters
  bool source_turn_ = true;                // the next unsettled round asks the source
};

}  // namespace replicator::core
