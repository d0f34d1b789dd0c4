// Ledger: every answer the bench got about each key, and the bench's own
// correctness check over them. A key is named by its index and a value by the
// id of the put that sent it (see keyspace.h). Violations are answers that
// no correct deployment gives:
//   - two puts of one key both answered `ok`;
//   - a `keyExists` answer, a found get or a read-back naming a value other
//     than the one whose put was answered `ok`, or two `keyExists` answers
//     naming different values;
//   - `keyExists` answered to the put whose own value is stored (a retry of
//     an applied put must answer `ok`);
//   - a linearizable get or read-back not finding a key answered `ok`.
// Not thread-safe: the bench uses it from its one reactor thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "keyspace.h"

namespace replicator::bench {

// One answer to one call, as the final table and the JSON count them.
enum class Outcome {
  kOk,               // put stored
  kKeyExists,        // put: the key already holds a value
  kConflict,         // put: contention outlasted the node's retry bound
  kUnavailable,      // put or get: too few nodes answered; nothing stored
  kInvalidArgument,  // put or get: bad key or value
  kError,            // the call failed (transport, deadline): for a put, outcome unknown
  kFound,            // get
  kNotFound,         // get
  kEcho,             // echo returned its payload
};
inline constexpr int kOutcomeCount = 9;
std::string_view OutcomeName(Outcome o);

class Ledger {
 public:
  explicit Ledger(const Keyspace* keyspace) : keyspace_(keyspace) {}

  // A fresh key index (dense from 0).
  uint64_t NewKey();
  uint64_t keys() const { return records_.size(); }

  // Put `put_id` of `key` was answered `outcome`; `existing` is the value a
  // keyExists answer carried.
  void OnPut(uint64_t key, uint64_t put_id, Outcome outcome, std::string_view existing = {});
  // A get of `key` answered found with `value`, or not found. `authoritative`:
  // the answer must reflect every put answered before it (a linearizable
  // get, or a read-back); a local get may lag.
  void OnGet(uint64_t key, bool found, std::string_view value, bool authoritative);

  // The put answered `ok` for `key`, if any.
  std::optional<uint64_t> OkPut(uint64_t key) const;

  // Final checks that need every answer: a keyExists value against the ok'd
  // value. Call once, after the last answer.
  void Finish();

  uint64_t violations() const { return violations_; }
  // The first few violations, described.
  const std::vector<std::string>& examples() const { return examples_; }

 private:
  static constexpr uint64_t kNone = UINT64_MAX;
  struct KeyRecord {
    uint64_t ok_put = kNone;
    uint64_t existing_hash = 0;  // hash of the first keyExists value; 0: none seen
  };
  void Violation(uint64_t key, std::string what);
  static uint64_t Hash(std::string_view bytes);

  const Keyspace* keyspace_;
  std::vector<KeyRecord> records_;
  uint64_t violations_ = 0;
  std::vector<std::string> examples_;
};

}  // namespace replicator::bench
