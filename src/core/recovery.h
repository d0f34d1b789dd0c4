// Recovery: the whole rule for settling a proposal whose coordinator went
// quiet. The recovery proposer runs Paxos on decision(p) over this node's
// cluster at a ballot above any seen (prepare at a majority, adopt the
// highest accepted decision, else abort; accept it at a majority). Resolve
// asks p's coordinator cluster to do that and answers others' resolves.
// Lease recovery resolves a reservation older than its lease, so no key
// stays reserved forever and none is dropped without its decision.
// Part of one Engine; single-threaded.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/hash/hash.h"
#include "core/acceptor.h"
#include "core/context.h"
#include "core/membership.h"
#include "core/replica.h"

namespace replicator::core {

class Coordinator;

class Recovery {
 public:
  Recovery(Context& ctx, Replica& replica, Acceptors& acceptors, const Membership& membership)
      : ctx_(ctx), replica_(replica), acceptors_(acceptors), membership_(membership) {}
  // The coordinator whose own proposals a resolve waits for rather than
  // aborts. Set once, before the first input.
  void set_coordinator(Coordinator* coordinator) { coordinator_ = coordinator; }

  // Settles decision(p) over its acceptors, the voters of epoch p.epoch of
  // this node's cluster; `then` gets it, or why not. `key` is p's key
  // (empty: not known, from an older build's resolve), which every prepare
  // and accept carries: an acceptor with it committed by p has dropped its
  // record and answers from the committed entry (core/acceptor.h).
  void StartRecovery(const ProposalId& p, const Key& key, DecisionFn then, TimeMs now);
  // Asks p's coordinator cluster for decision(p) of `key`.
  void ResolveRemote(const ProposalId& p, const Key& key, DecisionFn then, TimeMs now);
  // Another node's ResolveRequest: decision(p) lives in this cluster.
  void HandleResolve(uint64_t inbound_id, const ResolveRequest& request, TimeMs now);
  // Resolves every reservation whose lease ran out.
  void RecoverLeases(TimeMs now);

  void CheckInvariants() const;

 private:
  struct Proposer {
    enum class Phase : uint8_t { kPrepare, kAccept };
    ProposalId proposal;
    Key key;
    std::vector<PeerId> voters;
    int rounds = 0;
    Ballot ballot;
    Phase phase = Phase::kPrepare;
    size_t granted = 0;
    size_t failed = 0;
    bool rejected = false;        // some acceptor named a higher ballot
    uint64_t max_round_seen = 0;  // highest round seen for the proposal
    std::optional<AcceptedValue> highest;
    Decision decision = Decision::kAbort;
    std::string last_error;
    std::vector<DecisionFn> waiters;
  };
  struct Resolve {
    Key key;
    std::vector<PeerId> candidates;
    size_t next = 0;
    std::vector<DecisionFn> waiters;
  };

  void Prepare(Proposer& op, TimeMs now);
  void Accept(Proposer& op, TimeMs now);
  void OnPrepareReply(const ProposalId& p, uint64_t round, Response&& r, TimeMs now);
  void OnAcceptReply(const ProposalId& p, uint64_t round, Response&& r, TimeMs now);
  // Counts a refusal that names `higher` (the acceptor's promise).
  static void Refused(Proposer& op, const char* step, const Ballot& higher);
  void RoundFailed(const ProposalId& p, TimeMs now);
  void FinishRecovery(const ProposalId& p, std::optional<Decision> d, const std::string& reason,
                      TimeMs now);

  void SendResolve(const ProposalId& p, TimeMs now);
  void OnResolveReply(const ProposalId& p, const PeerId& peer, Response&& r, TimeMs now);
  void FinishResolve(const ProposalId& p, std::optional<Decision> d, const std::string& reason,
                     TimeMs now);

  void RecoverLease(const Key& key, TimeMs now);
  // Ends the operation on `p` in `ops` (recoveries_ or resolves_): records
  // the decision if learned and answers every waiter.
  template <typename Ops>
  void Finish(Ops& ops, const ProposalId& p, std::optional<Decision> d, const std::string& reason,
              TimeMs now);

  Context& ctx_;
  Replica& replica_;
  Acceptors& acceptors_;
  const Membership& membership_;
  Coordinator* coordinator_ = nullptr;
  // Node-based maps: handlers hold references across calls that insert.
  std::unordered_map<ProposalId, Proposer, absl::Hash<ProposalId>> recoveries_;
  std::unordered_map<ProposalId, Resolve, absl::Hash<ProposalId>> resolves_;
};

}  // namespace replicator::core
