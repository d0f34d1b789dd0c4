// Reactor: one thread's event loop, an asio::io_context that also drives a kj::EventLoop, so
// Asio coroutines and Cap'n Proto RPC share one thread without locks.
//
// Thread rules: construct, use and destroy a Reactor on one thread (at most one per thread,
// since KJ allows one EventLoop per thread). Only Stop() may be called from other threads; KJ
// work reaches the reactor from other threads through kj::Executor or
// kj::newPromiseAndCrossThreadFulfiller(), which wake it.
//
// Example:
//   net::Reactor reactor;
//   asio::co_spawn(reactor.io(), Serve(), asio::detached);
//   reactor.Run();  // until some handler calls reactor.Stop()
//
// Teardown: destroy every RpcServer, RpcConnection and capability client before the Reactor.
// ~Reactor then drains ready work, destroys suspended coroutines (their kj::Promises are
// cancelled while the KJ loop still exists), and destroys the KJ loop before the io_context.
#ifndef REPLICATOR_NET_REACTOR_H_
#define REPLICATOR_NET_REACTOR_H_

#include <kj/async.h>

#include <asio/io_context.hpp>
#include <memory>

namespace replicator::net {

class Reactor {
 public:
  Reactor();
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  asio::io_context& io();

  // For tests only. The reactor itself never blocks in Promise::wait(). After a test used
  // promise.wait(wait_scope()), call Run() (not io().run()) to resume normal operation.
  kj::WaitScope& wait_scope();

  // Runs io() until Stop(). Returns at once if Stop() was called since the last Run().
  void Run();

  // Thread-safe. Run() returns soon after, leaving pending work in place for the next Run().
  void Stop();

  // The reactor constructed on the calling thread, or nullptr.
  static Reactor* Current();

  // KJ tasks owned by the reactor; destroyed during teardown while the KJ loop still exists.
  // Failures of these tasks are ignored (they are cancellations).
  kj::TaskSet& tasks();

 private:
  class Port;
  class Context;
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace replicator::net

#endif  // REPLICATOR_NET_REACTOR_H_
