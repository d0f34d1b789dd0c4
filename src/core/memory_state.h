// MemoryState: one node's durable state held in memory — committed entries
// with their request ids (indexed by key and by (bucket, key), with the
// per-bucket catch-up digest kept up to date as entries commit),
// reservations, Paxos acceptor records, chosen configurations and the
// acceptor records of configuration registers — and the CommittedView an engine
// reads it through. A value: a copy is a snapshot. Not thread-safe; its
// owner serialises every call (the simulator is single-threaded, in-memory
// storage holds it under its lock).
//
//   MemoryState state;
//   state.Apply(PutCommitted{"k", "v", /*request_id=*/7, {}});
//   Engine engine(config, &state, state.Recover());
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "core/engine.h"
#include "core/messages.h"
#include "core/types.h"

namespace replicator::core {

class MemoryState : public CommittedView {
 public:
  // Where a committed entry sits in catch-up order: (BucketOf(key), key).
  using Position = std::pair<uint32_t, Key>;
  // A configuration register: (cluster, epoch).
  using ConfigId = std::pair<ClusterId, uint64_t>;

  MemoryState();

  // CommittedView. ForEachInBucket visits keys in std::string order
  // (unsigned bytes); `visit` may read this state but not change it.
  std::optional<CommittedEntry> GetEntry(const Key& key) const override;
  std::vector<uint64_t> Digest() const override { return digest_; }
  void ForEachInBucket(
      uint32_t bucket, const Key& after,
      const std::function<bool(const Key&, const CommittedEntry&)>& visit) const override;
  std::optional<AcceptorRecord> GetAcceptor(const ProposalId& p) const override;

  // Applies one mutation. Committed entries are write-once: a PutCommitted
  // of a key already committed changes nothing, its request id included,
  // whatever its value. A caller that must refuse a different value checks
  // first (storage refuses the batch; the simulator's checker reports it).
  // Configurations are write-once the same way: a PutConfig of a (cluster,
  // epoch) already held changes nothing, whatever its voters, except that
  // it fills in the cluster's generation if the record had none (0) and
  // the voters match. A
  // PutConfigAcceptor replaces the record of its (cluster, epoch).
  void Apply(const Mutation& mutation);
  // The batch's mutations in order.
  void Apply(const WriteBatch& batch);

  // What a restarting engine recovers: the reservations, in key order, as
  // stored; every configuration and configuration acceptor record, in
  // (cluster, epoch) order. Acceptor records of decision registers are read
  // on demand through GetAcceptor.
  DurableState Recover() const;

  // Visits committed entries in Position order across buckets, from the
  // first at or after `from` (strictly after unless `inclusive`), until
  // `visit` returns false. `visit` must not change this state.
  void ForEachFrom(const Position& from, bool inclusive,
                   const std::function<bool(const Position&, const CommittedEntry&)>& visit) const;

  const std::map<Key, CommittedEntry>& committed() const { return committed_; }
  // The request id `key` was committed with; 0 if none or not committed.
  uint64_t request_id(const Key& key) const;
  const std::map<Key, Reservation>& reservations() const { return reservations_; }
  const std::map<ProposalId, AcceptorRecord>& acceptors() const { return acceptors_; }
  const std::map<ConfigId, Configuration>& configs() const { return configs_; }
  const std::map<ConfigId, ConfigAcceptorRecord>& config_acceptors() const {
    return config_acceptors_;
  }

 private:
  std::map<Key, CommittedEntry> committed_;
  std::set<Position> by_position_;  // the keys of committed_
  std::vector<uint64_t> digest_;    // digest_[b]: XOR of EntryHash over bucket b's entries
  std::map<Key, Reservation> reservations_;
  std::map<ProposalId, AcceptorRecord> acceptors_;
  std::map<ConfigId, Configuration> configs_;
  std::map<ConfigId, ConfigAcceptorRecord> config_acceptors_;
};

}  // namespace replicator::core
