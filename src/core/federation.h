// Federation: the rule for a cluster founded after others (docs/design.md,
// "New clusters"). Clusters are founded in order, generation 1, 2, ...
// (Configuration::generation); a node's federation generation G is the
// highest g such that it knows a cluster founded at every generation 1..g
// (Membership::generation), and a put it coordinates counts every cluster
// founded up to G. Two rules make a young cluster X (generation g_X > 1)
// complete for reads, although puts acknowledged before some node heard of
// X were counted without it:
//
// - The generation rule. A reserve carries its coordinator's G; a voter
//   whose own G is higher refuses it (Vote::kWrongGeneration, carrying the
//   clusters the coordinator lacks), and the coordinator adopts them and
//   retries counting them. G only grows and is durable before any answer
//   that reports it, so once a voter has answered at G >= g_X it never
//   again gives a vote that a put counted without X could use.
// - The federation settle. A voter of X is settled once it completed
//   catch-up rounds with a majority of the newest voters of the oldest
//   cluster it knows, each answering at that configuration's epoch, at
//   G >= g_X and settled itself; such a round pulls every committed entry
//   the peer has and learns (by resolve) and applies the decision of every
//   reservation the peer held. Or once it completed a round with a node of
//   X that reports itself settled (nodes that join X later, or restart,
//   inherit). A cluster of generation 1 (or unknown, 0) is settled from the
//   start. Settling is not durable: a restarted node settles again (one
//   round with a settled peer of its cluster), so a restart can never make
//   an unsettled node answer as settled.
//
// Until it is settled, a voter of X does not answer a linearizable read
// with "absent" or "reserved" (a committed value it may report): the read
// waits at the voter for the settle, 3/4 of a call deadline at most, then is
// refused (ReadResponse::kNotReady) and the reader reports the cluster as
// still catching up. Reserves it votes on as usual: write-once is carried
// by the older clusters, which every put counts, and refusing them would
// make every put of the federation unavailable while X catches up.
//
// The catch-up rounds themselves run in CatchUp, which asks this role whom
// to ask next and reports each round's end. Part of one Engine;
// single-threaded.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/membership.h"
#include "core/messages.h"
#include "core/types.h"

namespace replicator::core {

class Federation {
 public:
  Federation(Context& ctx, Membership& membership) : ctx_(ctx), membership_(membership) {}

  // --- The generation rule --------------------------------------------------

  // True iff a reserve its coordinator counted at federation generation
  // `request_generation` must be refused here.
  bool Refuses(uint64_t request_generation) const {
    return request_generation < membership_.generation();
  }
  // The refusal of such a reserve: this node's G and the newest
  // configuration of every cluster founded after the request's generation.
  // (The coordinator that gets it adopts `configs` and retries at once.)
  Vote Refusal(uint64_t request_generation) const;

  // --- The federation settle -------------------------------------------------

  // True iff this node holds every key committed by a put counted without
  // its cluster (see above).
  bool settled() const;
  // The cluster a settle round asks when it does not ask one of this node's
  // own cluster: the oldest one known, founded before this node's (empty
  // when there is none).
  ClusterId SourceCluster() const;
  // A catch-up round with `peer` of `cluster` completed: the peer answered
  // at `epoch` of its cluster and federation generation `generation`, and
  // said whether it is settled itself.
  void OnRound(const PeerId& peer, const ClusterId& cluster, uint64_t epoch, uint64_t generation,
               bool peer_settled);

  // --- The gate ---------------------------------------------------------------

  // Runs `fn(true)` once settled (at once if it is), or `fn(false)` at
  // `deadline` if it still is not.
  void WhenSettled(TimeMs deadline, std::function<void(bool)> fn);
  // Why a read is refused while unsettled.
  std::string NotReadyReason() const;

  // Refuses the waiters whose deadline passed.
  void Tick(TimeMs now);
  std::optional<TimeMs> NextWakeup() const;

  void CheckInvariants() const;

 private:
  struct Answer {
    ClusterId cluster;
    uint64_t epoch = 0;
    uint64_t generation = 0;
    bool settled = false;
  };
  struct Waiter {
    TimeMs deadline = 0;
    std::function<void(bool)> fn;
  };
  // Settled now by the rounds recorded? Sets settled_ (once), and then
  // answers the waiters.
  void Evaluate();

  Context& ctx_;
  Membership& membership_;
  bool settled_ = false;  // by a settle in this run; never reset
  // Each peer of another cluster's last completed round.
  std::map<PeerId, Answer> answers_;
  std::vector<Waiter> waiters_;
};

}  // namespace replicator::core
