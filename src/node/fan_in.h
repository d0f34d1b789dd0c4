// FanIn<T>: n results filled in by index, in any order, and one coroutine
// that waits until the last is in. Reactor thread only. Used where one
// answer gathers many concurrent parts: a Peer.call batch (EngineDriver)
// and a putMany (servers.cc).
//
//   auto parts = std::make_shared<FanIn<Outcome>>(io.get_executor(), n);
//   ... parts->Set(i, outcome) from each part ...
//   std::vector<Outcome> all = co_await parts->Wait();
#pragma once

#include <asio/awaitable.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <cstddef>
#include <utility>
#include <vector>

namespace replicator::node {

template <typename T>
class FanIn {
 public:
  FanIn(asio::any_io_executor ex, size_t n) : results_(n), remaining_(n), done_(std::move(ex)) {
    done_.expires_at(asio::steady_timer::time_point::max());
  }

  // Part `index` is in; each index is set once.
  void Set(size_t index, T result) {
    results_[index] = std::move(result);
    if (--remaining_ == 0) done_.cancel();
  }

  // Every result, in index order, once the last part is in (at once for
  // n = 0). Call once.
  asio::awaitable<std::vector<T>> Wait() {
    while (remaining_ > 0) {
      asio::error_code ec;
      co_await done_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    co_return std::move(results_);
  }

 private:
  std::vector<T> results_;
  size_t remaining_;
  asio::steady_timer done_;  // cancelled when remaining_ reaches 0
};

}  // namespace replicator::node
