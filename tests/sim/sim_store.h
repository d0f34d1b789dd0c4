// SimStore: one simulated node's durable state — committed entries,
// reservations and Paxos acceptor records. It outlives the node's engines:
// a crash destroys the engine and loses writes not yet applied, never what
// this store holds. Single-threaded, owned by the Simulator.
#pragma once

#include <map>
#include <optional>

#include "core/engine.h"
#include "core/messages.h"
#include "core/types.h"

namespace replicator::sim {

class SimStore : public core::CommittedView {
 public:
  std::optional<core::Value> GetCommitted(const core::Key& key) const override;

  // Applies one mutation of a completed WriteBatch. A PutCommitted never
  // replaces a different committed value (the checker reports that case
  // before it reaches the store).
  void Apply(const core::Mutation& mutation);

  // What a restarting engine recovers: reservations and acceptor records, in
  // key / proposal order.
  core::DurableState Recover() const;

  const std::map<core::Key, core::Value>& committed() const { return committed_; }
  const std::map<core::Key, core::Reservation>& reservations() const { return reservations_; }
  const std::map<core::ProposalId, core::AcceptorRecord>& acceptors() const { return acceptors_; }

 private:
  std::map<core::Key, core::Value> committed_;
  std::map<core::Key, core::Reservation> reservations_;
  std::map<core::ProposalId, core::AcceptorRecord> acceptors_;
};

}  // namespace replicator::sim
