// Waiters: coroutines on one reactor parked until a value for their id
// arrives (an engine effect answering them). Lives on the reactor thread;
// not thread-safe.
//
//   auto slot = waiters.Add(id);
//   engine.StartPut(id, ...);           // may complete `id` synchronously
//   PutOutcome o = co_await Waiters<PutOutcome>::Wait(slot);
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

#include <asio/awaitable.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "absl/container/flat_hash_map.h"

namespace replicator::node {

template <typename T>
class Waiters {
 public:
  struct Slot {
    explicit Slot(asio::any_io_executor ex) : timer(std::move(ex)) {
      timer.expires_at(asio::steady_timer::time_point::max());
    }
    asio::steady_timer timer;
    std::optional<T> value;
  };

  explicit Waiters(asio::any_io_executor ex) : ex_(std::move(ex)) {}

  std::shared_ptr<Slot> Add(uint64_t id) {
    auto slot = std::make_shared<Slot>(ex_);
    slots_[id] = slot;
    return slot;
  }

  // Resumption is posted by the timer, never run inline in Complete().
  void Complete(uint64_t id, T value) {
    auto it = slots_.find(id);
    if (it == slots_.end()) return;
    it->second->value = std::move(value);
    it->second->timer.cancel();
    slots_.erase(it);
  }

  // Completes every waiter with `value` (shutdown).
  void CompleteAll(const T& value) {
    auto slots = std::move(slots_);
    slots_.clear();
    for (auto& [id, slot] : slots) {
      slot->value = value;
      slot->timer.cancel();
    }
  }

  size_t size() const { return slots_.size(); }

  static asio::awaitable<T> Wait(std::shared_ptr<Slot> slot) {
    while (!slot->value) {
      asio::error_code ec;
      co_await slot->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    co_return std::move(*slot->value);
  }

 private:
  asio::any_io_executor ex_;
  absl::flat_hash_map<uint64_t, std::shared_ptr<Slot>> slots_;
};

}  // namespace replicator::node
