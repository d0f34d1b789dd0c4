// A bounded memory of decisions this engine knows to be chosen (learned from
// a commit/abort, a Paxos majority, a resolve answer, or the coordinator's
// own abort). Oldest entries are evicted first; an evicted decision is
// re-learned through recovery, which finds the same value in the acceptors.
// Owned by one engine; not thread-safe.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "core/types.h"

namespace replicator::core {

class DecisionCache {
 public:
  explicit DecisionCache(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

  // Remembers `decision` for `proposal`. Returns false, keeping the first
  // decision, if a different one was already known: decisions never change,
  // so that is a safety violation the caller reports.
  bool Record(const ProposalId& proposal, Decision decision) {
    auto [it, inserted] = decisions_.try_emplace(proposal, decision);
    if (!inserted) return it->second == decision;
    order_.push_back(proposal);
    while (order_.size() > capacity_) {
      decisions_.erase(order_.front());
      order_.pop_front();
    }
    return true;
  }

  std::optional<Decision> Find(const ProposalId& proposal) const {
    auto it = decisions_.find(proposal);
    if (it == decisions_.end()) return std::nullopt;
    return it->second;
  }

  size_t size() const { return decisions_.size(); }

 private:
  size_t capacity_;
  absl::flat_hash_map<ProposalId, Decision> decisions_;
  std::deque<ProposalId> order_;  // insertion order, for eviction
};

}  // namespace replicator::core
