#include "sim/sim_store.h"

#include <type_traits>
#include <variant>

namespace replicator::sim {

SimStore::SimStore() : digest_(core::kDigestBuckets, 0) {}

std::optional<core::CommittedEntry> SimStore::GetEntry(const core::Key& key) const {
  auto it = committed_.find(key);
  if (it == committed_.end()) return std::nullopt;
  return core::CommittedEntry{it->second, request_id(key)};
}

uint64_t SimStore::request_id(const core::Key& key) const {
  auto it = request_ids_.find(key);
  return it == request_ids_.end() ? 0 : it->second;
}

void SimStore::ForEachInBucket(
    uint32_t bucket, const core::Key& after,
    const std::function<bool(const core::Key&, const core::CommittedEntry&)>& visit) const {
  for (auto it = by_bucket_.upper_bound({bucket, after});
       it != by_bucket_.end() && it->first == bucket; ++it) {
    if (!visit(it->second, *GetEntry(it->second))) return;
  }
}

void SimStore::Apply(const core::Mutation& mutation) {
  std::visit(
      [this](const auto& m) {
        using M = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<M, core::PutReservation>) {
          reservations_[m.reservation.key] = m.reservation;
        } else if constexpr (std::is_same_v<M, core::DeleteReservation>) {
          reservations_.erase(m.key);
        } else if constexpr (std::is_same_v<M, core::PutCommitted>) {
          if (committed_.emplace(m.key, m.value).second) {
            if (m.request_id != 0) request_ids_[m.key] = m.request_id;
            const uint32_t bucket = core::BucketOf(m.key);
            by_bucket_.emplace(bucket, m.key);
            digest_[bucket] ^= core::EntryHash(m.key, m.value);
          }
        } else if constexpr (std::is_same_v<M, core::PutAcceptor>) {
          acceptors_[m.record.proposal] = m.record;
        } else if constexpr (std::is_same_v<M, core::DeleteAcceptor>) {
          acceptors_.erase(m.proposal);
        }
      },
      mutation);
}

std::optional<core::AcceptorRecord> SimStore::GetAcceptor(const core::ProposalId& p) const {
  auto it = acceptors_.find(p);
  if (it == acceptors_.end()) return std::nullopt;
  return it->second;
}

core::DurableState SimStore::Recover() const {
  core::DurableState state;
  for (const auto& [key, r] : reservations_) state.reservations.push_back(r);
  return state;
}

}  // namespace replicator::sim
