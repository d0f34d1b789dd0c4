// Membership: the rule for which voters a quorum is counted over, and how
// that set changes. Each cluster's voters are a sequence of configurations,
// epoch 1, 2, ...: epoch 1 is the founding set the directory named once;
// epoch e+1 is chosen by single-decree Paxos on the register
// config(cluster, e+1), whose acceptors are epoch e's voters, and differs
// from epoch e by exactly one voter. An acceptor votes on config(e+1) only
// once it has settled epoch e (CatchUp::settled: it holds everything a
// majority of e's voters held after they adopted e). docs/design.md gives
// the argument why no two quorums of any epochs miss each other.
//
// This role holds this node's cluster's history (every epoch learned, for
// decision registers: decision(p)'s acceptors are the voters of p.epoch),
// the newest configuration of every other cluster heard of, the acceptor
// records of its cluster's config registers, and at most one change it
// proposes (an operator's, or its own promotion once caught up). Part of one
// Engine; single-threaded.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/context.h"
#include "core/engine.h"
#include "core/messages.h"
#include "core/types.h"

namespace replicator::core {

// The one-voter change from `base` that `change` asks for, or why it may not
// be made (an unknown peer, a voter added twice, below 3 voters unforced).
// `members`: the peers known to be of the cluster. Pure.
struct ProposedChange {
  std::vector<PeerId> voters;  // the next configuration's, sorted
  std::string error;           // non-empty: refused
};
ProposedChange ProposeChange(const Configuration& base, const MembershipChange& change,
                             const std::vector<PeerId>& members);

class Membership {
 public:
  Membership(Context& ctx, std::vector<Configuration> recovered,
             std::vector<ConfigAcceptorRecord> recovered_acceptors);

  // True iff this node's cluster has settled (see CatchUp::settled) its
  // current epoch. Set once, before the first input.
  void set_settled(std::function<bool()> settled) { settled_ = std::move(settled); }
  // True iff this node caught up from a majority of its cluster's current
  // voters (CatchUp::caught_up): a learner proposes its promotion only then.
  // Set once, before the first input.
  void set_caught_up(std::function<bool()> caught_up) { caught_up_ = std::move(caught_up); }
  // Runs when this node's cluster moves to a newer epoch. Set once.
  void set_on_epoch(std::function<void(TimeMs)> on_epoch) { on_epoch_ = std::move(on_epoch); }
  // Runs when this node's federation generation grows. Set once.
  void set_on_generation(std::function<void(TimeMs)> on_generation) {
    on_generation_ = std::move(on_generation);
  }

  // This node's cluster's newest configuration (epoch 0: none yet).
  const Configuration& Current() const;
  uint64_t epoch() const { return Current().epoch; }
  // This node's cluster's configuration `epoch`, if learned.
  const Configuration* At(uint64_t epoch) const;
  // The newest configuration of `cluster` known here, if any.
  const Configuration* Latest(const ClusterId& cluster) const;
  // What this node knows: its cluster's history and the newest of others.
  std::vector<Configuration> Known() const;
  // The newest configuration of every cluster known here, this one's first.
  std::vector<Configuration> Newest() const;

  // Generations (core/federation.h). The federation generation G of this
  // node: the highest g such that it knows a cluster founded at every
  // generation 1..g, so that a put it coordinates counts every cluster
  // founded up to G. Derived from the configurations it holds, so it only
  // grows and is durable once AfterDurable runs. 0: none known.
  uint64_t generation() const { return generation_; }
  // The founding generation of `cluster` (0: unknown).
  uint64_t GenerationOf(const ClusterId& cluster) const;
  uint64_t own_generation() const { return GenerationOf(ctx_.cluster()); }
  // The lowest founding generation known (0: none): the oldest cluster's.
  uint64_t oldest_generation() const;
  // The newest configuration of every cluster known here founded or
  // removed after generation `g`: what a node at `g` lacks.
  std::vector<Configuration> FoundedAfter(uint64_t g) const;
  // The generation at which `cluster` was removed from the federation
  // (core/founding.h; 0: not removed, or not known here to be).
  uint64_t RemovedAt(const ClusterId& cluster) const;
  // True iff this node's cluster was removed: it coordinates and serves
  // nothing any more.
  bool cluster_removed() const { return RemovedAt(ctx_.cluster()) != 0; }
  // The newest configuration of every cluster known here and not removed,
  // this one's first (if not removed): the clusters a put counts.
  std::vector<Configuration> Counted() const;
  // This cluster's configurations only, to answer a peer that lags.
  std::vector<Configuration> OwnHistory() const;

  // True iff a vote of this node may be counted under `epoch` of its
  // cluster: it is the newest epoch known here and this node is one of its
  // voters. Every reserve and read is checked so (the epoch rule).
  bool Votes(uint64_t epoch) const;
  // What a node that does not vote under the request's `epoch` answers:
  // its own epoch, and its cluster's history when that is newer.
  uint64_t RefusalEpoch() const { return epoch(); }
  std::vector<Configuration> RefusalConfigs(uint64_t request_epoch) const;
  // A peer answered that it is at `their_epoch` (with `configs`): adopts
  // what is newer, and tells a peer that lags what this node knows.
  void OnWrongEpoch(const PeerId& peer, uint64_t their_epoch,
                    const std::vector<Configuration>& configs, TimeMs now);

  // Adopts every configuration in `configs` newer than the one known here
  // (durably: PutConfig). Returns true iff this node's cluster moved on.
  bool Learn(const std::vector<Configuration>& configs, TimeMs now);
  // Tells `peer` what this node knows and adopts what its answer knows.
  void Tell(const PeerId& peer, TimeMs now) { Exchange(peer, ConfigLearnRequest{Known()}, now); }
  // Runs `fn` once every configuration adopted so far is durable: an answer
  // that tells a peer this node's epoch waits for it, so that a restart can
  // never take the node back to an older epoch it already spoke for.
  void AfterDurable(std::function<void()> fn);

  // The founding configurations in the new membership view: adopted when
  // this node knows no configuration of the cluster.
  void OnTopology(TimeMs now);

  void HandlePrepare(uint64_t inbound_id, const ConfigPrepareRequest& request, TimeMs now);
  void HandleAccept(uint64_t inbound_id, const ConfigAcceptRequest& request, TimeMs now);
  void HandleLearn(uint64_t inbound_id, const ConfigLearnRequest& request, TimeMs now);

  // Gets a change's outcome (null: nobody waits, as for a promotion).
  using ChangeFn = std::function<void(ChangeOutcome)>;
  // An operator's change of any cluster: run here when it is this node's
  // cluster, else asked of that cluster's voters in turn (ChangeRequest).
  void Change(const MembershipChange& change, ChangeFn done, TimeMs now);
  // A ChangeRequest from a node of another cluster.
  void HandleChange(uint64_t inbound_id, const ChangeRequest& request, TimeMs now);
  // Retries a change's round and proposes this node's own promotion when due.
  void Tick(TimeMs now);
  std::optional<TimeMs> NextWakeup() const;
  // The next retry of a change's round, or this node's own promotion.
  std::optional<TimeMs> ChangeWakeup() const;

  // True iff some configuration of this cluster known here had this node as
  // a voter and the newest does not: it was removed, and never proposes its
  // own promotion again.
  bool removed() const;

  void CheckInvariants() const;

 private:
  struct Proposer {
    enum class Phase : uint8_t { kPrepare, kAccept, kWaiting };
    ChangeFn done;  // null: this node's own promotion
    MembershipChange change;
    Configuration base;          // epoch e, whose voters are the acceptors
    std::vector<PeerId> voters;  // proposed for epoch e+1
    Phase phase = Phase::kPrepare;
    Ballot ballot;
    uint64_t max_round_seen = 0;
    int rounds = 0;
    size_t granted = 0;
    size_t answered = 0;
    std::optional<ConfigAccepted> highest;  // among the promises
    std::vector<PeerId> value;              // what the accept phase proposes
    std::string last_error;
    TimeMs retry_at = 0;  // kWaiting
    TimeMs give_up_at = 0;
  };

  // The acceptor's check before it votes on config(cluster, epoch); empty
  // when it may vote, else why not (a ConfigVoteResponse to send).
  std::optional<ConfigVoteResponse> CannotVote(const ClusterId& cluster, uint64_t epoch,
                                               const std::vector<Configuration>& known, TimeMs now);
  ConfigAcceptorRecord& Record(uint64_t epoch);
  // Runs `change` of this node's cluster.
  void ChangeHere(const MembershipChange& change, ChangeFn done, TimeMs now);
  // Asks the voters of `cluster` in turn, from `next`, to run `change`.
  void ChangeThere(const ClusterId& cluster, std::vector<PeerId> voters, size_t next,
                   const MembershipChange& change, ChangeFn done, TimeMs now);
  void RespondDurably(uint64_t inbound_id, ConfigVoteResponse response, uint64_t write);

  void StartRound(TimeMs now);
  void OnPrepareReply(uint64_t round, Response&& r, TimeMs now);
  void OnAcceptReply(uint64_t round, Response&& r, TimeMs now);
  // Notes a response that is neither a grant nor final; ends the round when
  // no majority can be granted any more.
  void Refused(const ConfigVoteResponse* vr, const Response& r, TimeMs now);
  void RoundFailed(TimeMs now);
  void Chosen(std::vector<PeerId> voters, TimeMs now);
  void Finish(ChangeOutcome outcome, TimeMs now);
  void Broadcast(TimeMs now);

  // A number every record of a cluster carries once known (`field`: its
  // founding generation, or the generation of its removal), kept per
  // cluster in `known_numbers`: gives `c` the cluster's if it has none, or
  // learns the cluster's from it and fills it in, durably, in every record
  // held of the cluster. A second, different one is a reported violation
  // (`config/<cluster>/<name>`).
  void NoteClusterNumber(Configuration& c, uint64_t Configuration::*field,
                         std::map<ClusterId, uint64_t>& known_numbers, const char* name,
                         const char* verb);
  // Recomputes generation_ from generations_ and removals_.
  void UpdateGeneration(TimeMs now);

  Context& ctx_;
  std::function<bool()> settled_;
  std::function<bool()> caught_up_;
  std::function<void(TimeMs)> on_epoch_;
  std::function<void(TimeMs)> on_generation_;
  std::map<uint64_t, Configuration> own_;              // this cluster, by epoch
  // The newest of each other cluster, durable like this cluster's (the
  // federation generation is derived from them).
  std::map<ClusterId, Configuration> others_;
  std::map<ClusterId, uint64_t> generations_;          // each known cluster's, when known
  std::map<ClusterId, uint64_t> removals_;             // each removed cluster's removal
  uint64_t generation_ = 0;                            // G, see generation()
  // A refusal of a prepare or accept at `ballot` on config(cluster, epoch)
  // whose round CheckBallotRound refuses (core/acceptor.h); else empty.
  std::optional<ConfigVoteResponse> AbsurdBallot(uint64_t epoch, const Ballot& ballot);
  std::map<uint64_t, ConfigAcceptorRecord> acceptor_;  // this cluster's registers
  uint64_t durable_write_ = 0;                         // the newest PutConfig write
  std::optional<Proposer> proposer_;
  // The epoch each lagging peer was last told of, so it is told once.
  std::map<PeerId, uint64_t> told_;
  // The newest epoch whose missing predecessors were asked for.
  uint64_t history_asked_ = 0;
  // Asks the current voters for this cluster's whole history when epochs
  // before the newest are missing (adopted second-hand, from a node of
  // another cluster, which knows only the newest).
  void FillHistory(TimeMs now);
  // Sends `learn` (what this node knows) to `to` and adopts what its answer
  // knows; `then` (may be null) runs once the answer, or its failure, is in.
  void Exchange(const PeerId& to, const ConfigLearnRequest& learn, TimeMs now,
                std::function<void()> then = nullptr);
  // Every catch-up interval: tells one member of each other cluster what
  // this node knows and learns what it knows, so that every node converges
  // on every cluster's newest configuration (member list shows them).
  void Gossip(TimeMs now);
  TimeMs gossip_at_ = kUnseeded;
  TimeMs promote_at_ = kUnseeded;
};

}  // namespace replicator::core
