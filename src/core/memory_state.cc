#include "core/memory_state.h"

#include <type_traits>
#include <variant>

namespace replicator::core {

MemoryState::MemoryState() : digest_(kDigestBuckets, 0) {}

std::optional<CommittedEntry> MemoryState::GetEntry(const Key& key) const {
  auto it = committed_.find(key);
  if (it == committed_.end()) return std::nullopt;
  return it->second;
}

uint64_t MemoryState::request_id(const Key& key) const {
  auto it = committed_.find(key);
  return it == committed_.end() ? 0 : it->second.request_id;
}

void MemoryState::ForEachInBucket(
    uint32_t bucket, const Key& after,
    const std::function<bool(const Key&, const CommittedEntry&)>& visit) const {
  for (auto it = by_position_.upper_bound({bucket, after});
       it != by_position_.end() && it->first == bucket; ++it) {
    if (!visit(it->second, committed_.at(it->second))) return;
  }
}

void MemoryState::ForEachFrom(
    const Position& from, bool inclusive,
    const std::function<bool(const Position&, const CommittedEntry&)>& visit) const {
  for (auto it = inclusive ? by_position_.lower_bound(from) : by_position_.upper_bound(from);
       it != by_position_.end(); ++it) {
    if (!visit(*it, committed_.at(it->second))) return;
  }
}

std::optional<AcceptorRecord> MemoryState::GetAcceptor(const ProposalId& p) const {
  auto it = acceptors_.find(p);
  if (it == acceptors_.end()) return std::nullopt;
  return it->second;
}

void MemoryState::Apply(const Mutation& mutation) {
  std::visit(
      [this](const auto& m) {
        using M = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<M, PutReservation>) {
          reservations_.insert_or_assign(m.reservation.key, m.reservation);
        } else if constexpr (std::is_same_v<M, DeleteReservation>) {
          reservations_.erase(m.key);
        } else if constexpr (std::is_same_v<M, PutCommitted>) {
          // The proposal's identity only, as on disk.
          const ProposalId identity{m.proposal.coordinator, m.proposal.incarnation,
                                    m.proposal.sequence};
          if (committed_.emplace(m.key, CommittedEntry{m.value, m.request_id, identity}).second) {
            const uint32_t bucket = BucketOf(m.key);
            by_position_.emplace(bucket, m.key);
            digest_[bucket] ^= EntryHash(m.key, m.value);
          }
        } else if constexpr (std::is_same_v<M, PutAcceptor>) {
          acceptors_.insert_or_assign(m.record.proposal, m.record);
        } else if constexpr (std::is_same_v<M, DeleteAcceptor>) {
          acceptors_.erase(m.proposal);
        } else if constexpr (std::is_same_v<M, PutConfig>) {
          // Write-once, but a generation learned after the record was
          // written (0: unknown) is filled in; the voters never change.
          auto [it, fresh] = configs_.emplace(ConfigId{m.config.cluster, m.config.epoch}, m.config);
          if (!fresh && it->second.generation == 0 && it->second.voters == m.config.voters) {
            it->second.generation = m.config.generation;
          }
          // Likewise a removal (core/founding.h), which is never undone.
          if (!fresh && it->second.removed == 0 && it->second.voters == m.config.voters) {
            it->second.removed = m.config.removed;
          }
        } else if constexpr (std::is_same_v<M, PutConfigAcceptor>) {
          config_acceptors_.insert_or_assign(ConfigId{m.record.cluster, m.record.epoch}, m.record);
        } else {
          static_assert(std::is_same_v<M, void>, "a mutation kind MemoryState does not apply");
        }
      },
      mutation);
}

void MemoryState::Apply(const WriteBatch& batch) {
  for (const Mutation& m : batch.mutations) Apply(m);
}

DurableState MemoryState::Recover() const {
  DurableState state;
  state.reservations.reserve(reservations_.size());
  for (const auto& [key, r] : reservations_) state.reservations.push_back(r);
  state.configs.reserve(configs_.size());
  for (const auto& [id, config] : configs_) state.configs.push_back(config);
  state.config_acceptors.reserve(config_acceptors_.size());
  for (const auto& [id, record] : config_acceptors_) state.config_acceptors.push_back(record);
  return state;
}

}  // namespace replicator::core
