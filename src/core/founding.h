// Founding: the rule for how a cluster joins a running federation
// (docs/design.md, "New clusters"). The federation's first cluster is
// founded by the node that started the federation (there is nobody to agree
// with yet: generation 1, named by the directory). Every later cluster is
// founded by consensus of the clusters before it: its founding set and its
// generation g are the value of the write-once system key FoundingKey(g),
// put by the ordinary protocol. So no two clusters share a generation, and
// no cluster is founded twice:
//
// - A voter of the oldest cluster proposes once its membership view shows a
//   cluster X with at least 3 members and no configuration known here: it
//   puts FoundingKey(G + 1) = "X founded by <its members>" at its own
//   federation generation G (a put counts every cluster founded up to G,
//   core/federation.h). Voters take turns by their rank in the voter set,
//   so that one proposes at a time.
// - Whoever proposes at slot G + 1 knows slots 1..G and that none of them
//   holds X. If X held some later slot s, that slot's proposer knew slot
//   G + 1 filled with another cluster, and this put loses (key exists). So X
//   is in at most one slot, and each slot holds at most one cluster.
// - A node learns a founding when the key is committed here (by a commit,
//   a catch-up pull or a recovery: the configuration is adopted in the same
//   write batch as the entry), when its own put of a slot finds the key
//   taken (the existing value), or from a peer's configurations. A
//   proposer tells the new cluster's members once it learned; a node whose
//   cluster has no configuration asks a node of another cluster now and
//   then, so it learns its founding set even if that message was lost.
//
// Removing a cluster X (an operator's, core/messages.h kRemoveCluster) takes
// a slot the same way: FoundingKey(G + 1) = "remove X ..." put by the node
// asked, counting every cluster but X, so that a cluster that is gone for
// good (a region lost) can be removed without it. From the generation of
// its removal on, no put counts X, and X's nodes coordinate and serve
// nothing. Why it is safe without X: every put counts the oldest cluster,
// which can never be removed, so any two puts of one key still meet at a
// majority of it; and removing a cluster takes nothing from what any other
// cluster's reads see. X's nodes learn of it from any other node (the
// configurations gossiped carry it); until one does, a node of X that is
// still up could answer a linearizable get from X's stale majority, so the
// operator stops X's nodes first (docs/design.md, Removing a cluster).
//
// Keys beginning with a NUL byte are the system's: a client's put of one is
// refused (a client's get of one is allowed, for operators). Part of one
// Engine; single-threaded.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "core/context.h"
#include "core/coordinator.h"
#include "core/membership.h"
#include "core/messages.h"
#include "core/types.h"

namespace replicator::core {

// True iff `key` is in the system's key space (begins with a NUL byte).
bool IsSystemKey(const Key& key);
// The key that holds the cluster founded at `generation` (>= 2).
Key FoundingKey(uint64_t generation);
// The generation FoundingKey() encoded in `key`, if it is one.
std::optional<uint64_t> FoundingGeneration(const Key& key);
// "found <cluster> <voter> <voter> <voter>...": the value of a founding key.
Value EncodeFounding(const Configuration& founding);
// The configuration (epoch 1, `generation`) a founding key's value names;
// empty when it is malformed (not a cluster id, fewer than 3 voters,
// unsorted or repeated).
std::optional<Configuration> DecodeFounding(uint64_t generation, const Value& value);
// "remove <cluster> <its generation> <its epoch> <voter>...": the value of a
// founding key that removes `removed` (its newest configuration known to the
// remover) at the key's generation.
Value EncodeRemoval(const Configuration& removed);
// The removed cluster's configuration, with `removed` = `generation`; empty
// when malformed (as DecodeFounding, or a cluster not founded before it).
std::optional<Configuration> DecodeRemoval(uint64_t generation, const Value& value);

class Founding {
 public:
  Founding(Context& ctx, Membership& membership, Coordinator& coordinator)
      : ctx_(ctx), membership_(membership), coordinator_(coordinator) {}

  // A committed entry is being written here: adopts the founding it names,
  // in the same input (so in the same write batch). Any key may be passed.
  void OnCommitted(const Key& key, const Value& value, TimeMs now);

  // The membership view changed.
  void OnTopology() { Refresh(); }
  // An operator's removal of `cluster` from the federation: `done` gets
  // kOk once decided (the configuration, with `removed` set), or why not:
  // the oldest cluster, this node's own, one unknown or removed already
  // (kInvalidArgument), another removal asked here (kBusy), no quorum in
  // time (kUnavailable).
  void Remove(const ClusterId& cluster, std::function<void(ChangeOutcome)> done, TimeMs now);
  // Proposes a founding when one is due; asks for this cluster's founding
  // set when it has none.
  void Tick(TimeMs now);
  std::optional<TimeMs> NextWakeup() const;

  void CheckInvariants() const;

 private:
  // Recomputes the cluster this node should propose founding next, if any:
  // the smallest id of a cluster shown with at least 3 members and unknown
  // here. Only a voter of the oldest cluster known proposes; rank_ is its
  // index among that cluster's voters. Run on every membership view and
  // founding learned, and before each turn.
  void Refresh();
  // When the candidate's proposal is due here.
  std::optional<TimeMs> Due() const;
  void Propose(const ClusterId& cluster, TimeMs now);
  // A cluster a put counts whose every voter the membership view shows
  // down, if any.
  std::optional<ClusterId> WhollyDown() const;
  void OnPutDone(uint64_t slot, const ClusterId& cluster, const Value& proposed, PutOutcome outcome,
                 TimeMs now);
  // Adopts a founding or removal decided at `generation`; false if `value`
  // is neither.
  bool Learn(uint64_t generation, const Value& value, TimeMs now);
  // Puts the removal asked (removal_) at the next slot.
  void ProposeRemoval(TimeMs now);
  void OnRemovalDone(uint64_t slot, const Value& proposed, PutOutcome outcome, TimeMs now);
  void FinishRemoval(ChangeOutcome::Kind kind, std::string message);

  Context& ctx_;
  Membership& membership_;
  Coordinator& coordinator_;
  std::optional<ClusterId> candidate_;
  size_t rank_ = 0;
  // The proposal in flight: the slot it puts.
  std::optional<uint64_t> in_flight_;
  // When the candidate was first seen (its proposal's turn is counted from
  // then), and the earliest time of the next proposal.
  std::map<ClusterId, TimeMs> seen_;
  TimeMs next_proposal_ = 0;
  struct Removal {
    ClusterId cluster;
    std::function<void(ChangeOutcome)> done;
    std::optional<uint64_t> in_flight;  // the slot being put
    TimeMs retry_at = 0;
    TimeMs give_up_at = 0;
    std::string last_error;
  };
  std::optional<Removal> removal_;  // at most one at a time
  TimeMs next_ask_ = 0;  // when a node of an unfounded cluster asks again
  size_t ask_next_ = 0;  // whom it asks: round robin over other clusters' members
};

}  // namespace replicator::core
