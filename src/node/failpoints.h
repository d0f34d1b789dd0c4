// Failpoints: test-only fault injection named by --failpoint (empty in
// production). The name is parsed once at start, so with no failpoint set
// every check is one comparison. Owned by Node::Impl; reactor thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "core/messages.h"
#include "core/types.h"

namespace replicator::node {

class Failpoints {
 public:
  // An unknown name sets no failpoint (replicatord rejects it first).
  Failpoints(std::string name, core::PeerId self);

  // Exits the process when `request` is the point the failpoint names, once
  // a client's put has begun here (ArmForClientPuts): the node's own puts
  // before that (founding a cluster) must not trip it.
  void MaybeCrash(const core::Request& request) const {
    if (point_ == Point::kNone || !armed_) return;
    CrashIfNamed(request);
  }
  // A client's put began at this node.
  void ArmForClientPuts() { armed_ = true; }

  // True once, for the first put answered, under slow-first-put-reply: that
  // reply is held back kSlowPutReply, so the client times out although the
  // put was applied.
  bool TakeSlowPutReply() {
    if (point_ != Point::kSlowFirstPutReply || slowed_reply_) return false;
    slowed_reply_ = true;
    return true;
  }
  static constexpr std::chrono::seconds kSlowPutReply{3};

 private:
  enum class Point : uint8_t { kNone, kCrashBeforeDecide, kCrashBeforeCommit, kSlowFirstPutReply };

  void CrashIfNamed(const core::Request& request) const;

  std::string name_;
  core::PeerId self_;
  Point point_ = Point::kNone;
  bool slowed_reply_ = false;
  bool armed_ = false;
};

}  // namespace replicator::node
