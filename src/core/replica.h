// Replica: the vote rule. Owns this node's reservation table and the
// committed entries it wrote that are not durable yet; votes on reserve
// (under the epoch rule and the generation rule), applies commit and abort
// (each only for its own proposal), and serves reads (a read that could
// answer absent waits for the federation settle, core/federation.h). Every
// answer that depends on a change waits until it is durable.
// Part of one Engine; single-threaded.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/btree_set.h"
#include "absl/container/flat_hash_map.h"
#include "core/context.h"
#include "core/federation.h"
#include "core/membership.h"
#include "core/messages.h"
#include "core/types.h"

namespace replicator::core {

// Leases after which a reservation whose coordinator no membership view
// and no known configuration shows is dropped (docs/design.md, "Requests
// checked against their sender"): long enough for a node to learn of a
// cluster founded since (a view or a configuration shows it within a few
// directory rounds), so that only a forged coordinator's stays this long.
inline constexpr int kOrphanLeases = 30;

class Replica {
 public:
  struct Entry {
    Reservation reservation;
    uint64_t pending_write = 0;  // the PutReservation write, until durable
    // Lease expiry, or when to try resolving again; set only through
    // SetRecovery (the lease index mirrors it).
    TimeMs recover_at = 0;
    bool resolving = false;  // a lease-recovery resolve is in flight
    // Leases in a row this reservation's coordinator was in no membership
    // view and no configuration known here (see kOrphanLeases).
    int orphan_leases = 0;
  };
  // A committed entry as this engine sees it: durable, or written by this
  // engine and still in flight (`pending_write` names the write).
  struct Committed {
    Value value;
    uint64_t request_id = 0;
    uint64_t pending_write = 0;  // 0 when already durable
    ProposalId proposal;         // CommittedEntry::proposal
  };

  // `recovered`: the reservations storage held at start.
  Replica(Context& ctx, const Membership& membership, Federation& federation,
          std::vector<Reservation> recovered);

  // Gives recovered reservations this run's clock (their stored `since` is
  // another run's): they count as fresh, with a full lease.
  void Observe(TimeMs now);

  // Reserve, commit or abort; `reply` (may be null for commit and abort)
  // gets the vote once what it reports is durable.
  void Handle(const ReplicaOp& op, VoteFn reply, TimeMs now);
  void HandleRead(uint64_t inbound_id, const ReadRequest& request);

  // The committed entry of `key`, durable or in flight from this engine.
  std::optional<Committed> LookupCommitted(const Key& key) const;
  // LookupCommitted of each key, out[i] being *keys[i]'s, with one storage
  // read (CommittedView::GetEntries) for the keys not in flight here.
  std::vector<std::optional<Committed>> LookupCommitted(const std::vector<const Key*>& keys) const;
  // Writes (key, value) as committed by `proposal` (empty: not known);
  // lookups see it at once. Returns the write id. Precondition: `key` is
  // not committed here. Every committed entry this node writes, from any
  // role, is written here.
  uint64_t WriteCommitted(const Key& key, const Value& value, uint64_t request_id,
                          const ProposalId& proposal);
  // WriteCommitted of each entry, with one completion for them all (a
  // catch-up page). Returns the write id, 0 if `entries` is empty.
  // Precondition: no key of `entries` is committed here, and none is there
  // twice.
  uint64_t WriteCommitted(const std::vector<const PulledEntry*>& entries);
  // Runs for every entry WriteCommitted writes, with the proposal that
  // committed it (empty: not known), within the same input (its mutations
  // join the entry's write batch). Set once.
  using CommittedFn = std::function<void(const Key&, const Value&, const ProposalId&)>;
  void set_on_committed(CommittedFn fn) { on_committed_ = std::move(fn); }

  // Applies decision `d` of proposal `p` to `key`'s reservation, if `p`
  // holds it.
  void ApplyDecision(const Key& key, const ProposalId& p, Decision d);

  // Drops `key`'s reservation without a decision: its coordinator stayed
  // unknown for kOrphanLeases leases (core/recovery.cc).
  void DropOrphan(const Key& key);

  // The reservation table, for lease recovery and catch-up.
  const Entry* Find(const Key& key) const;
  // Lease recovery's bookkeeping of `key`'s reservation (nothing if none is
  // held): whether a resolve is in flight, when to try next, and how many
  // leases in a row its coordinator was unknown.
  void SetRecovery(const Key& key, bool resolving, TimeMs recover_at);
  void SetOrphanLeases(const Key& key, int leases);
  // Keys whose lease (or retry time) is due and that are not resolving, in
  // key order. O(due · log reservations), from the lease index.
  std::vector<Key> DueForRecovery(TimeMs now) const;
  // O(1).
  std::optional<TimeMs> NextRecovery() const;
  size_t size() const { return reservations_.size(); }
  // Every reservation held now, as stored (for catch-up's settle).
  std::vector<Reservation> Reservations() const;

  void CheckInvariants() const;

 private:
  struct PendingCommit {
    Value value;
    uint64_t request_id = 0;
    uint64_t write_id = 0;
    ProposalId proposal;
  };

  // Why commit `c` from a peer cannot be its proposal's decision, if this
  // node can tell: the key is reserved for the proposal with another
  // value, or the proposal is known here to have aborted. Empty otherwise.
  std::optional<std::string> Contradicts(const CommitOp& c) const;
  void Reserve(const ReserveOp& op, VoteFn reply, TimeMs now);
  void ApplyCommit(const Key& key, const Value& value, uint64_t request_id, const ProposalId& p,
                   VoteFn reply);
  void ApplyAbort(const Key& key, const ProposalId& p, VoteFn reply);
  // A vote refusing a request under `request_epoch` (the epoch rule).
  Vote WrongEpoch(uint64_t request_epoch);
  // Answers `reply` with ok once write `w` (0: none) is durable.
  void OkAfter(uint64_t w, VoteFn reply);
  // Removes `key`'s reservation from the table and the lease index (not
  // from storage).
  void Forget(const Key& key);
  // Keeps the lease index in step with an entry's recover_at / resolving.
  void Unindex(const Key& key, const Entry& e);
  void Index(const Key& key, const Entry& e);

  Context& ctx_;
  const Membership& membership_;
  Federation& federation_;
  absl::flat_hash_map<Key, Entry> reservations_;
  // (recover_at, key) of every entry that is seeded and not resolving, so
  // that the engine's wakeup and lease scan do not walk the whole table.
  absl::btree_set<std::pair<TimeMs, Key>> lease_index_;
  absl::flat_hash_map<Key, PendingCommit> pending_committed_;
  CommittedFn on_committed_;
};

}  // namespace replicator::core
