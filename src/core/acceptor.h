// Paxos acceptor rules for one decision register decision(p), as pure
// functions over the register's record. The engine owns the records,
// persists every changed record (PutAcceptor) and answers only after the
// write is durable. Thread-safe (no state).
#pragma once

#include <optional>

#include "core/messages.h"

namespace replicator::core {

struct PrepareStep {
  PrepareResponse response;
  std::optional<AcceptorRecord> updated;  // set iff the record changed
};
struct AcceptStep {
  AcceptResponse response;
  std::optional<AcceptorRecord> updated;  // set iff the record changed
};

// `current` is null when nothing was promised for the register yet (lower
// than any ballot). Promise iff b > promised; the answer carries the
// accepted value, if any. Otherwise refuse, naming the promised ballot.
PrepareStep OnPrepare(const AcceptorRecord* current, const PrepareRequest& request);

// Accept iff b >= promised (so ballot 0 of the coordinator is accepted by a
// fresh register without a prepare): promised = accepted ballot = b.
// Otherwise refuse, naming the promised ballot.
AcceptStep OnAccept(const AcceptorRecord* current, const AcceptRequest& request);

}  // namespace replicator::core
