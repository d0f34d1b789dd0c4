// Representative: serves a ForwardRequest from another cluster's
// coordinator by fanning its reserve, commit or abort out to every voter of
// this node's cluster (itself included) under the newest configuration it
// knows, and answering with their votes and that configuration:
// as soon as a strict majority voted ok (that settles the cluster for the
// coordinator), else once every voter answered or the deadline passed.
// Part of one Engine; single-threaded.
#pragma once

#include <cstdint>
#include <limits>
#include <unordered_map>
#include <vector>

#include "core/context.h"
#include "core/membership.h"
#include "core/messages.h"

namespace replicator::core {

// A representative gets most of the caller's remaining time, so that its
// answer (with the votes it collected) arrives before the caller gives up.
uint32_t RepresentativeBudget(TimeMs remaining);

class Representative {
 public:
  Representative(Context& ctx, Membership& membership) : ctx_(ctx), membership_(membership) {}

  void HandleForward(uint64_t inbound_id, ForwardRequest request, TimeMs now);

  void CheckInvariants() const;

 private:
  struct Fanout {
    uint64_t inbound_id = 0;
    size_t voters = 0;
    size_t outstanding = 0;
    size_t oks = 0;
    std::vector<Vote> votes;
    Configuration config;
  };
  void OnVote(uint64_t id, const PeerId& voter, Response&& r, TimeMs now);

  Context& ctx_;
  Membership& membership_;
  std::unordered_map<uint64_t, Fanout> forwards_;
};

}  // namespace replicator::core
