#include "node/failpoints.h"

#include <unistd.h>

#include <cstdio>
#include <utility>
#include <variant>

#include "fmt/format.h"
#include "util/log.h"

namespace replicator::node {

Failpoints::Failpoints(std::string name, core::PeerId self)
    : name_(std::move(name)), self_(std::move(self)) {
  if (name_ == "crash-before-decide") {
    point_ = Point::kCrashBeforeDecide;
  } else if (name_ == "crash-before-commit") {
    point_ = Point::kCrashBeforeCommit;
  } else if (name_ == "slow-first-put-reply") {
    point_ = Point::kSlowFirstPutReply;
  }
}

void Failpoints::CrashIfNamed(const core::Request& request) const {
  bool crash = false;
  if (point_ == Point::kCrashBeforeDecide) {
    // The coordinator's own accept(ballot 0): reservations are out, the
    // decision is not recorded anywhere.
    const auto* a = std::get_if<core::AcceptRequest>(&request);
    crash = a && a->ballot.round == 0 && a->ballot.proposer == self_;
  } else if (point_ == Point::kCrashBeforeCommit) {
    // The decision is chosen; no voter has heard the commit yet.
    const core::ReplicaOp* op = nullptr;
    if (const auto* h = std::get_if<core::HandleRequest>(&request)) op = &h->op;
    if (const auto* f = std::get_if<core::ForwardRequest>(&request)) op = &f->op;
    crash = op && std::holds_alternative<core::CommitOp>(*op);
  }
  if (crash) {
    util::Log(util::LogLevel::kError, "failpoint", "{}: exiting", name_);
    _exit(86);
  }
}

}  // namespace replicator::node
