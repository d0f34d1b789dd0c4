// Helpers for the net layer's unit tests: run a coroutine on a reactor to completion, wait for
// a condition, count down.
#ifndef REPLICATOR_TESTS_UNIT_NET_TEST_UTIL_H_
#define REPLICATOR_TESTS_UNIT_NET_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>
#include <exception>
#include <functional>

#include "net/reactor.h"

namespace replicator::net::testing {

// A bound on how long a test may wait for something that must happen; exceeding it is a failure
// (a hang), never a timing assertion.
inline constexpr std::chrono::seconds kPatience{20};

inline asio::awaitable<void> Sleep(std::chrono::milliseconds duration) {
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  co_await timer.async_wait(asio::use_awaitable);
}

// Waits until `condition` holds; false if it did not within kPatience.
inline asio::awaitable<bool> WaitUntil(std::function<bool()> condition) {
  auto give_up = std::chrono::steady_clock::now() + kPatience;
  while (!condition()) {
    if (std::chrono::steady_clock::now() > give_up) co_return false;
    co_await Sleep(std::chrono::milliseconds(1));
  }
  co_return true;
}

// Runs `work` on the reactor until it finishes; rethrows what escaped it. Fails the test if it
// does not finish within kPatience.
inline void RunToCompletion(Reactor& reactor, asio::awaitable<void> work) {
  std::exception_ptr error;
  bool done = false;
  asio::steady_timer watchdog(reactor.io(), kPatience);
  watchdog.async_wait([&](const std::error_code& e) {
    if (!e) {
      ADD_FAILURE() << "test coroutine did not finish";
      reactor.Stop();
    }
  });
  asio::co_spawn(reactor.io(), std::move(work), [&](std::exception_ptr e) {
    error = e;
    done = true;
    watchdog.cancel();
    reactor.Stop();
  });
  reactor.Run();
  if (done && error) std::rethrow_exception(error);
}

// Counts completions of concurrent coroutines; Wait() returns when the count reaches zero.
class Latch {
 public:
  Latch(asio::any_io_executor executor, int count)
      : timer_(executor, asio::steady_timer::time_point::max()), count_(count) {}

  void CountDown() {
    if (--count_ == 0) timer_.cancel();
  }
  asio::awaitable<void> Wait() {
    if (count_ > 0) {
      co_await timer_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    }
  }
  int count() const { return count_; }

 private:
  asio::steady_timer timer_;
  int count_;
};

}  // namespace replicator::net::testing

#endif  // REPLICATOR_TESTS_UNIT_NET_TEST_UTIL_H_
