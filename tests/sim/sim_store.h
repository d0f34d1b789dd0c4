// SimStore: one simulated node's durable state — committed entries (with
// their request ids and the per-bucket catch-up digest), reservations and
// Paxos acceptor records. It outlives the node's engines: a crash destroys
// the engine and loses writes not yet applied, never what this store holds.
// Single-threaded, owned by the Simulator.
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

namespace replicator::sim {

class SimStore : public core::CommittedView {
 public:
  SimStore();

  std::optional<core::CommittedEntry> GetEntry(const core::Key& key) const override;
  // Maintained incrementally as entries are applied.
  std::vector<uint64_t> Digest() const override { return digest_; }
  void ForEachInBucket(uint32_t bucket, const core::Key& after,
                       const std::function<bool(const core::Key&, const core::CommittedEntry&)>&
                           visit) const override;

  std::optional<core::AcceptorRecord> GetAcceptor(const core::ProposalId& p) const override;

  // Applies one mutation of a completed WriteBatch. A PutCommitted never
  // replaces a different committed value (the checker reports that case
  // before it reaches the store).
  void Apply(const core::Mutation& mutation);

  // What a restarting engine recovers: reservations, in key order (acceptor
  // records are read on demand through GetAcceptor).
  core::DurableState Recover() const;

  const std::map<core::Key, core::Value>& committed() const { return committed_; }
  uint64_t request_id(const core::Key& key) const;
  const std::map<core::Key, core::Reservation>& reservations() const { return reservations_; }
  const std::map<core::ProposalId, core::AcceptorRecord>& acceptors() const { return acceptors_; }

 private:
  std::map<core::Key, core::Value> committed_;
  std::map<core::Key, uint64_t> request_ids_;      // of committed keys; absent: 0
  std::set<std::pair<uint32_t, core::Key>> by_bucket_;  // committed keys
  std::vector<uint64_t> digest_;
  std::map<core::Key, core::Reservation> reservations_;
  std::map<core::ProposalId, core::AcceptorRecord> acceptors_;
};

}  // namespace replicator::sim
