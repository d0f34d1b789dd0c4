// Shards: the engines of one node (--shards; core/shard.h, docs/design.md
// "Shards"). Each shard is a whole engine over the keys of its bucket
// range, with its own storage, its own connections to the same shard of
// every peer (PeerNetwork), its own driver and metrics. With more than one
// shard, each runs on a reactor thread of its own (an io_context and a KJ
// loop, net::Reactor); with one, it runs on the node's reactor. The
// node's servers and directory live on the node's reactor and reach a
// shard only through this class: Run (a coroutine on the shard's thread,
// the caller resuming on its own), Post (fire and forget, in order) and
// Query (a short read, waited for; never on a shard's own thread).
//
//   Shards shards(ctx, std::move(opened));
//   PutOutcome o = co_await shards.Run(shards.ShardOf(key),
//       [&](EngineDriver& d) { return d.Put(key, value, id); });
//   shards.ChangeMembership(change, done);   // every shard, one answer
//
// Owned by Node::Impl; every method is called on the node's reactor thread.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <cstdint>
#include <exception>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/engine.h"
#include "core/shard.h"
#include "node/engine_driver.h"
#include "node/failpoints.h"
#include "node/node_context.h"
#include "node/node_metrics.h"
#include "node/peer_network.h"
#include "storage/storage.h"

namespace replicator::net {
class Reactor;
}

namespace replicator::node {

// One engine and what drives it. Lives on its reactor's thread.
class Shard {
 public:
  // `node` is the node's context; the shard's is the same but for its
  // reactor and its metrics. `storage` outlives the shard's use of it.
  Shard(const NodeContext& node, net::Reactor& reactor, core::ShardRange range,
        storage::Storage* storage, core::DurableState recovered, uint64_t incarnation);

  core::ShardRange range() const { return range_; }
  EngineDriver& driver() { return driver_; }
  PeerNetwork& network() { return network_; }
  const NodeMetrics& metrics() const { return metrics_; }
  const NodeContext& context() const { return ctx_; }

 private:
  core::ShardRange range_;
  NodeMetrics metrics_;
  NodeContext ctx_;
  Failpoints failpoints_;
  PeerNetwork network_;
  EngineDriver driver_;
};

// What each shard's storage opened with, in shard order.
struct OpenedShard {
  storage::Storage* storage = nullptr;
  core::DurableState recovered;
  uint64_t incarnation = 0;
};

class Shards {
 public:
  Shards(const NodeContext& ctx, std::vector<OpenedShard> opened);
  // Stops the shard threads (Stop) and joins them.
  ~Shards();
  Shards(const Shards&) = delete;
  Shards& operator=(const Shards&) = delete;

  uint32_t count() const { return static_cast<uint32_t>(hosts_.size()); }
  // The shard that owns `key` (core::ShardOf).
  uint32_t ShardOf(const core::Key& key) const { return core::ShardOf(key, count()); }

  // Shard `shard`'s driver when it runs on the node's reactor (one shard),
  // else null: the caller may then use it directly, as on the fast path of
  // a local get.
  EngineDriver* InlineDriver(uint32_t shard) {
    return Threaded(shard) ? nullptr : &ShardAt(shard).driver();
  }

  // Runs make(driver) on shard `shard`'s thread, a coroutine, and resumes
  // the caller on its own executor with what it returns. `make` runs
  // there, so it may touch the driver.
  template <typename F>
  auto Run(uint32_t shard, F make)
      -> asio::awaitable<typename std::invoke_result_t<F&, EngineDriver&>::value_type>;
  // Runs fn(shard) on shard `shard`'s thread later, after what was posted
  // before it; at once with one shard.
  void Post(uint32_t shard, std::function<void(Shard&)> fn);
  // Runs fn(shard) on shard `shard`'s thread and waits for its result: for
  // short reads (status, configurations), never on a hot path.
  template <typename F>
  auto Query(uint32_t shard, F fn) -> std::invoke_result_t<F&, Shard&>;

  // The directory's map, to every shard's engine and network.
  void SetMembers(const std::vector<core::Member>& members);
  void SetTopology(const core::Topology& topology);
  void StartCatchUp();
  // Whether `peer` is a voter in every shard's newest configuration of its
  // cluster: a node shows itself a voter once every shard promoted it.
  bool VoterEverywhere(const core::PeerId& peer);

  // Makes `change` in every shard, each by its own consensus; `done` runs
  // once, on the node's reactor, with CombineChangeOutcomes of theirs.
  void ChangeMembership(const core::MembershipChange& change,
                        std::function<void(core::ChangeOutcome)> done);

  // Shard 0's configurations: the node's, as status shows them.
  core::Configuration configuration();
  std::vector<core::Configuration> configurations();
  // The shards' engine counters summed; the membership and federation
  // fields are shard 0's, `federation_settled` holds only if every shard's
  // does.
  core::EngineStats stats();
  // Every shard's metrics added into `total`.
  void AddMetrics(NodeMetrics& total);

  // Shutdown: every driver answers what waits, every network drops its
  // queue and connections; each shard's thread keeps running until Stop.
  void Shutdown();
  // Stops every shard's thread (returns once none runs a handler any
  // more); the shards are destroyed with this object. Call once nothing
  // needs them (Node::Impl: after shutdown, before closing storage).
  void Stop();

 private:
  struct Host;
  template <typename T>
  struct Result {
    explicit Result(asio::any_io_executor ex) : timer(std::move(ex)) {
      timer.expires_at(asio::steady_timer::time_point::max());
    }
    asio::steady_timer timer;
    std::optional<T> value;
    std::exception_ptr error;
  };
  template <typename T, typename F>
  static asio::awaitable<void> RunThere(F make, EngineDriver* driver,
                                        std::shared_ptr<Result<T>> result,
                                        asio::any_io_executor caller);
  bool Threaded(uint32_t shard) const;
  Shard& ShardAt(uint32_t shard);
  asio::io_context& IoOf(uint32_t shard);

  asio::any_io_executor node_executor_;  // the node's reactor
  std::vector<std::unique_ptr<Host>> hosts_;
};

// One answer to a membership change made in every shard:
// - every shard chose it (or, in a shard that an earlier try changed
//   already, finds it made: the outcome's configuration shows it): ok,
//   with shard 0's configuration;
// - every shard refused it alike: shard 0's answer, as a node of one shard
//   gives;
// - else the first shard's failure, naming the shard and how many shards
//   have the change, so that the operator retries to finish it.
core::ChangeOutcome CombineChangeOutcomes(const core::MembershipChange& change,
                                          std::vector<core::ChangeOutcome> outcomes);

// ---------------------------------------------------------------------------

template <typename T, typename F>
asio::awaitable<void> Shards::RunThere(F make, EngineDriver* driver,
                                       std::shared_ptr<Result<T>> result,
                                       asio::any_io_executor caller) {
  std::optional<T> value;
  std::exception_ptr error;
  try {
    value.emplace(co_await make(*driver));
  } catch (...) {
    error = std::current_exception();
  }
  // Back on the caller's thread: only it touches `result`'s timer.
  asio::post(caller, [result, value = std::move(value), error]() mutable {
    result->value = std::move(value);
    result->error = error;
    result->timer.cancel();
  });
}

template <typename F>
auto Shards::Run(uint32_t shard, F make)
    -> asio::awaitable<typename std::invoke_result_t<F&, EngineDriver&>::value_type> {
  using T = typename std::invoke_result_t<F&, EngineDriver&>::value_type;
  if (!Threaded(shard)) co_return co_await make(ShardAt(shard).driver());
  asio::any_io_executor caller = co_await asio::this_coro::executor;
  auto result = std::make_shared<Result<T>>(caller);
  EngineDriver* driver = &ShardAt(shard).driver();
  asio::io_context& there = IoOf(shard);
  asio::post(there, [&there, make = std::move(make), driver, result, caller]() mutable {
    asio::co_spawn(there, RunThere<T>(std::move(make), driver, result, caller), asio::detached);
  });
  while (!result->value && !result->error) {
    asio::error_code ec;
    co_await result->timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  if (result->error) std::rethrow_exception(result->error);
  co_return std::move(*result->value);
}

template <typename F>
auto Shards::Query(uint32_t shard, F fn) -> std::invoke_result_t<F&, Shard&> {
  using T = std::invoke_result_t<F&, Shard&>;
  if (!Threaded(shard)) return fn(ShardAt(shard));
  std::packaged_task<T()> task([&fn, s = &ShardAt(shard)] { return fn(*s); });
  std::future<T> answer = task.get_future();
  asio::post(IoOf(shard), [&task] { task(); });
  return answer.get();
}

}  // namespace replicator::node
