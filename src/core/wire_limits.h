// Bounds on one peer message, shared by the node that sends a batch of
// protocol calls and the node that reads it, both derived from the key and
// value limits (core::Limits) rather than Cap'n Proto's defaults. A sender
// closes a batch at kMaxBatchCalls calls, or once its calls, or the largest
// answers they could get, reach BatchBudgetBytes; so a message is at most
// the budget plus one call or one answer, which MaxMessageBytes allows. A
// receiver refuses a longer batch whole, and a larger message as it reads
// it. Constants and pure functions; thread-safe.
#pragma once

#include <cstddef>

#include "core/types.h"

namespace replicator::core {

// Calls in one Peer.call batch, at most.
inline constexpr size_t kMaxBatchCalls = 1024;
// Values (keyExists or found) one KeyValue.putMany or getMany answer
// carries, at most; an item past it answers answerTooLarge. Well inside the
// 64 MiB a client process reads by default (net/rpc.h).
inline constexpr size_t kMaxBatchAnswerBytes = size_t{16} << 20;
// Ids, ballots and framing of one call or one answer, beyond its key and
// value.
inline constexpr size_t kCallOverheadBytes = 256;
// Full-size (key, value) pairs one answer may carry: a representative's
// forward answers with a vote per voter of its cluster, each naming the
// value stored there (clusters of up to 8 voters).
inline constexpr size_t kMaxValuesPerAnswer = 8;
// Full-size pairs one message may carry, its last answer included.
inline constexpr size_t kMaxValuesPerMessage = 32;

// One full-size call (or one value of an answer), framed.
inline size_t FullCallBytes(const Limits& limits) {
  return limits.max_key_bytes + limits.max_value_bytes + kCallOverheadBytes;
}

// A sender closes a batch once its calls, or the answers they could get,
// reach this many bytes.
inline size_t BatchBudgetBytes(const Limits& limits) {
  return (kMaxValuesPerMessage - kMaxValuesPerAnswer) * FullCallBytes(limits);
}

// The largest message a node reads on any connection (client or peer):
// a batch at its budget, plus one more answer, plus every call's framing.
// 1 KiB keys and 1 MiB values (the defaults): about 32 MiB.
// TODO(security): a digest answer lists every reservation held, unbounded;
// a node holding more than about BatchBudgetBytes of reservations cannot
// answer a digest until some are resolved.
inline size_t MaxMessageBytes(const Limits& limits) {
  return BatchBudgetBytes(limits) + kMaxValuesPerAnswer * FullCallBytes(limits) +
         kMaxBatchCalls * kCallOverheadBytes;
}

}  // namespace replicator::core
