#include "sim/sim_store.h"

#include <type_traits>
#include <variant>

namespace replicator::sim {

std::optional<core::Value> SimStore::GetCommitted(const core::Key& key) const {
  auto it = committed_.find(key);
  if (it == committed_.end()) return std::nullopt;
  return it->second;
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
          committed_.emplace(m.key, m.value);
        } else if constexpr (std::is_same_v<M, core::PutAcceptor>) {
          acceptors_[m.record.proposal] = m.record;
        } else if constexpr (std::is_same_v<M, core::DeleteAcceptor>) {
          acceptors_.erase(m.proposal);
        }
      },
      mutation);
}

core::DurableState SimStore::Recover() const {
  core::DurableState state;
  for (const auto& [key, r] : reservations_) state.reservations.push_back(r);
  for (const auto& [p, a] : acceptors_) state.acceptors.push_back(a);
  return state;
}

}  // namespace replicator::sim
