// Reactor: the kj::EventPort that lets asio::io_context drive a kj::EventLoop.
//
// Invariant: whenever the KJ loop may hold runnable events (its "runnable" state is true), a
// handler that runs EventLoop::run() is posted to the io_context, or a blocking
// Promise::wait() (tests only) is turning the loop itself.
#include "net/reactor.h"

#include <asio/executor_work_guard.hpp>
#include <asio/post.hpp>
#include <atomic>
#include <cstdio>

namespace replicator::net {
namespace {

// Bounds one EventLoop::run() call, so that Asio handlers (socket readiness, timers) are not
// starved by a busy KJ queue.
constexpr uint kMaxTurnsPerRun = 256;

// Bounds the drain at teardown: rounds of ready Asio handlers and KJ events.
constexpr int kMaxDrainRounds = 1000;

thread_local Reactor* current_reactor = nullptr;

}  // namespace

// Exposes execution_context::shutdown(), which destroys every pending handler (and so every
// suspended coroutine frame) without running it.
class Reactor::Context : public asio::io_context {
 public:
  Context() : asio::io_context(1) {}
  void DestroyPendingHandlers() { shutdown(); }
};

class Reactor::Port final : public kj::EventPort {
 public:
  explicit Port(Context& io) : io_(io) {}

  void Attach(kj::EventLoop& loop, kj::WaitScope& wait_scope) {
    loop_ = &loop;
    wait_scope_ = &wait_scope;
  }

  // Only reached through Promise::wait() on the reactor thread (tests). Runs one Asio handler,
  // blocking until there is one; handlers that would turn the KJ loop stand down meanwhile.
  bool wait() override {
    if (io_.stopped()) io_.restart();
    in_blocking_wait_ = true;
    io_.run_one();
    in_blocking_wait_ = false;
    return woken_.exchange(false);
  }

  // Reached through WaitScope::poll() and Promise::wait(). Never runs Asio handlers: they must
  // not run inside a turn of the KJ loop.
  bool poll() override { return woken_.exchange(false); }

  void setRunnable(bool runnable) override {
    if (runnable) ScheduleRun();
  }

  // Any thread, under the kj::Executor's lock.
  void wake() const override {
    woken_.store(true);
    if (!wake_posted_.exchange(true)) {
      Port* self = const_cast<Port*>(this);
      asio::post(io_, [self] { self->OnWake(); });
    }
  }

  void ScheduleRun() {
    if (closing_ || run_posted_) return;
    run_posted_ = true;
    asio::post(io_, [this] { RunKj(); });
  }

  // Re-arms the run handler if a blocking wait left the loop's runnable state stale.
  void Resync() {
    if (stale_ || (loop_ != nullptr && loop_->isRunnable())) {
      stale_ = false;
      ScheduleRun();
    }
  }

  void Close() { closing_ = true; }

 private:
  void RunKj() {
    run_posted_ = false;
    if (closing_) return;
    if (in_blocking_wait_) {
      // Promise::wait() turns the loop itself; EventLoop::run() must not nest inside it.
      stale_ = true;
      return;
    }
    loop_->run(kMaxTurnsPerRun);
    // setRunnable() fires only on transitions: a run() cut short by the turn limit leaves the
    // loop runnable without a new notification, so re-post here.
    if (loop_->isRunnable()) ScheduleRun();
  }

  void OnWake() {
    wake_posted_.store(false);
    if (closing_ || in_blocking_wait_) return;  // wait() reports the wake to KJ itself.
    // EventLoop::run() does not look at the cross-thread queue; WaitScope::poll() does, through
    // poll() above. It turns the loop until empty without calling setRunnable(false), so
    // schedule a run() afterwards to bring the runnable state back in line.
    wait_scope_->poll();
    ScheduleRun();
  }

  Context& io_;
  kj::EventLoop* loop_ = nullptr;
  kj::WaitScope* wait_scope_ = nullptr;
  bool run_posted_ = false;
  bool in_blocking_wait_ = false;
  bool stale_ = false;
  bool closing_ = false;
  mutable std::atomic<bool> woken_{false};
  mutable std::atomic<bool> wake_posted_{false};
};

struct Reactor::State final : public kj::TaskSet::ErrorHandler {
  State() : port(io), work(io.get_executor()) {}

  void taskFailed(kj::Exception&&) override {}

  Context io;
  Port port;
  asio::executor_work_guard<asio::io_context::executor_type> work;
  std::unique_ptr<kj::EventLoop> loop;
  std::unique_ptr<kj::WaitScope> wait_scope;
  std::unique_ptr<kj::TaskSet> tasks;
};

Reactor::Reactor() : state_(std::make_unique<State>()) {
  if (current_reactor != nullptr) {
    std::fprintf(stderr, "replicator::net::Reactor: a second Reactor on one thread\n");
    std::abort();
  }
  state_->loop = std::make_unique<kj::EventLoop>(state_->port);
  state_->wait_scope = std::make_unique<kj::WaitScope>(*state_->loop);
  state_->port.Attach(*state_->loop, *state_->wait_scope);
  state_->tasks = std::make_unique<kj::TaskSet>(*state_);
  current_reactor = this;
}

Reactor::~Reactor() {
  State& s = *state_;
  // 1. Drain: let ready handlers and KJ events finish (cancelled calls resume their callers,
  //    which then unwind), within a bound since a coroutine may keep posting forever.
  s.io.restart();
  for (int round = 0; round < kMaxDrainRounds; ++round) {
    s.port.Resync();
    if (s.io.poll() == 0 && !s.loop->isRunnable()) break;
  }
  // 2. Stop feeding the KJ loop into Asio, and destroy every suspended coroutine frame and
  //    pending handler. Their kj::Promises are dropped while the loop still exists.
  s.port.Close();
  s.io.DestroyPendingHandlers();
  // 3. KJ-owned work (awaits of kj::Promises hold their coroutines) goes next, then the events
  //    those destructors queued.
  s.tasks.reset();
  s.loop->run();
  // 4. Wait scope, loop, then (with State) port and io_context.
  current_reactor = nullptr;
  s.wait_scope.reset();
  s.loop.reset();
}

asio::io_context& Reactor::io() { return state_->io; }

kj::WaitScope& Reactor::wait_scope() { return *state_->wait_scope; }

void Reactor::Run() {
  state_->port.Resync();
  state_->io.run();
  state_->io.restart();
}

void Reactor::Stop() { state_->io.stop(); }

Reactor* Reactor::Current() { return current_reactor; }

kj::TaskSet& Reactor::tasks() { return *state_->tasks; }

}  // namespace replicator::net
