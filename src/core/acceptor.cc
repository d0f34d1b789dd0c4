#include "core/acceptor.h"

namespace replicator::core {

PrepareStep OnPrepare(const AcceptorRecord* current, const PrepareRequest& request) {
  PrepareStep step;
  if (current != nullptr && !(current->promised < request.ballot)) {
    step.response.promised = false;
    step.response.higher = current->promised;
    return step;
  }
  AcceptorRecord record;
  if (current != nullptr) record = *current;
  record.proposal = request.proposal;
  record.promised = request.ballot;
  step.response.promised = true;
  step.response.accepted = record.accepted;
  step.updated = std::move(record);
  return step;
}

AcceptStep OnAccept(const AcceptorRecord* current, const AcceptRequest& request) {
  AcceptStep step;
  if (current != nullptr && request.ballot < current->promised) {
    step.response.accepted = false;
    step.response.promised = current->promised;
    return step;
  }
  AcceptorRecord record;
  record.proposal = request.proposal;
  record.promised = request.ballot;
  record.accepted = AcceptedValue{request.ballot, request.decision};
  step.response.accepted = true;
  step.updated = std::move(record);
  return step;
}

}  // namespace replicator::core
