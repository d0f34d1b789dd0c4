// Reactor and Asio <-> KJ bridge, without sockets.
#include "net/bridge.h"

#include <gtest/gtest.h>
#include <kj/debug.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "net/reactor.h"
#include "test_util.h"

namespace replicator::net {
namespace {

using std::chrono::milliseconds;
using testing::Latch;
using testing::RunToCompletion;
using testing::Sleep;
using testing::WaitUntil;

// Sets *flag when destroyed: observes that a promise or coroutine frame was dropped.
struct DropFlag {
  explicit DropFlag(bool* target) : flag(target) {}
  DropFlag(DropFlag&& other) noexcept : flag(other.flag) { other.flag = nullptr; }
  ~DropFlag() {
    if (flag != nullptr) *flag = true;
  }
  bool* flag;
};

asio::awaitable<int> ReturnAfterHop(int value) {
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  co_return value;
}

asio::awaitable<void> ThrowAfterHop(std::string message) {
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  throw std::runtime_error(message);
}

TEST(ReactorTest, RunReturnsAfterStopAndCanRunAgain) {
  Reactor reactor;
  int ran = 0;
  asio::post(reactor.io(), [&] {
    ++ran;
    reactor.Stop();
  });
  reactor.Run();
  EXPECT_EQ(ran, 1);
  asio::post(reactor.io(), [&] {
    ++ran;
    reactor.Stop();
  });
  reactor.Run();
  EXPECT_EQ(ran, 2);
}

TEST(ReactorTest, StopFromAnotherThreadEndsRun) {
  Reactor reactor;
  std::thread stopper([&] { reactor.Stop(); });
  stopper.join();
  reactor.Run();  // returns: Stop() came before Run()
  SUCCEED();
}

TEST(ReactorTest, KjEventsRunWithoutWait) {
  Reactor reactor;
  int value = 0;
  auto promise = kj::evalLater([&] { value = 1; })
                     .then([&] {
                       value = 2;
                       reactor.Stop();
                     })
                     .eagerlyEvaluate(nullptr);
  reactor.Run();
  EXPECT_EQ(value, 2);
}

TEST(ReactorTest, LongKjChainsPastTheTurnLimitComplete) {
  Reactor reactor;
  // Far more events than one EventLoop::run() turn budget: needs the re-post.
  kj::Promise<int> chain = 0;
  for (int i = 0; i < 5000; ++i) {
    chain = chain.then([](int n) { return kj::evalLater([n] { return n + 1; }); });
  }
  int result = -1;
  auto done = chain
                  .then([&](int n) {
                    result = n;
                    reactor.Stop();
                  })
                  .eagerlyEvaluate(nullptr);
  reactor.Run();
  EXPECT_EQ(result, 5000);
}

TEST(ReactorTest, BlockingWaitForTestsThenRunAgain) {
  Reactor reactor;
  EXPECT_EQ(kj::evalLater([] { return 5; }).wait(reactor.wait_scope()), 5);
  int value = 0;
  auto promise = kj::evalLater([&] {
                   value = 7;
                   reactor.Stop();
                 }).eagerlyEvaluate(nullptr);
  reactor.Run();
  EXPECT_EQ(value, 7);
}

asio::awaitable<void> AwaitValues() {
  int a = co_await Await(kj::evalLater([] { return 41; }));
  EXPECT_EQ(a, 41);
  co_await Await(kj::Promise<void>(kj::READY_NOW));
  std::string s = co_await Await(kj::evalLater([] { return std::string("kj"); }));
  EXPECT_EQ(s, "kj");
  // A move-only, non-default-constructible value.
  kj::Own<int> own = co_await Await(kj::evalLater([] { return kj::heap<int>(3); }));
  EXPECT_EQ(*own, 3);
}

TEST(BridgeTest, AwaitDeliversValues) {
  Reactor reactor;
  RunToCompletion(reactor, AwaitValues());
}

asio::awaitable<void> AwaitRejected() {
  try {
    co_await Await(kj::Promise<int>(KJ_EXCEPTION(DISCONNECTED, "peer went away")));
    ADD_FAILURE() << "no exception";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.type(), kj::Exception::Type::DISCONNECTED);
    EXPECT_TRUE(e.disconnected());
    EXPECT_NE(std::string(e.what()).find("peer went away"), std::string::npos) << e.what();
  }
}

TEST(BridgeTest, AwaitOfRejectedPromiseThrowsRpcError) {
  Reactor reactor;
  RunToCompletion(reactor, AwaitRejected());
}

asio::awaitable<void> AwaitWithinOutcomes() {
  auto value = co_await AwaitWithin(kj::evalLater([] { return 9; }), milliseconds(10000));
  EXPECT_TRUE(value.ok()) << value.status();
  if (value.ok()) {
    EXPECT_EQ(*value, 9);
  }

  absl::Status ok = co_await AwaitWithin(kj::Promise<void>(kj::READY_NOW), milliseconds(10000));
  EXPECT_TRUE(ok.ok()) << ok;

  auto failed =
      co_await AwaitWithin(kj::Promise<int>(KJ_EXCEPTION(FAILED, "no disk")), milliseconds(10000));
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(failed.status().message().find("no disk"), std::string::npos) << failed.status();

  bool dropped = false;
  kj::Promise<int> never = kj::Promise<int>(kj::NEVER_DONE).attach(DropFlag(&dropped));
  auto late = co_await AwaitWithin(kj::mv(never), milliseconds(20));
  EXPECT_EQ(late.status().code(), absl::StatusCode::kDeadlineExceeded) << late.status();
  EXPECT_TRUE(dropped) << "the KJ promise must be dropped at the deadline";
}

TEST(BridgeTest, AwaitWithinGivesValueUnavailableOrDeadline) {
  Reactor reactor;
  RunToCompletion(reactor, AwaitWithinOutcomes());
}

asio::awaitable<void> ToPromiseRoundTrip(Reactor* reactor) {
  int value = co_await Await(ToPromise(reactor->io(), ReturnAfterHop(12)));
  EXPECT_EQ(value, 12);
  try {
    co_await Await(ToPromise(reactor->io(), ThrowAfterHop("quota exceeded")));
    ADD_FAILURE() << "no exception";
  } catch (const RpcError& e) {
    EXPECT_EQ(e.type(), kj::Exception::Type::FAILED);
    EXPECT_NE(std::string(e.what()).find("quota exceeded"), std::string::npos) << e.what();
  }
}

TEST(BridgeTest, ToPromisePropagatesValuesAndExceptions) {
  Reactor reactor;
  RunToCompletion(reactor, ToPromiseRoundTrip(&reactor));
}

TEST(BridgeTest, ToPromiseWorksFromPlainKj) {
  Reactor reactor;
  int value = 0;
  auto promise = ToPromise(reactor.io(), ReturnAfterHop(33))
                     .then([&](int v) {
                       value = v;
                       reactor.Stop();
                     })
                     .eagerlyEvaluate(nullptr);
  reactor.Run();
  EXPECT_EQ(value, 33);
}

asio::awaitable<void> WaitLong(bool* frame_destroyed, bool* aborted) {
  DropFlag flag(frame_destroyed);
  try {
    co_await Sleep(milliseconds(3600 * 1000));
  } catch (const asio::system_error& e) {
    *aborted = e.code() == asio::error::operation_aborted;
  }
}

asio::awaitable<void> DropToPromise(Reactor* reactor) {
  bool frame_destroyed = false;
  bool aborted = false;
  {
    kj::Promise<void> promise = ToPromise(reactor->io(), WaitLong(&frame_destroyed, &aborted));
    co_await Sleep(milliseconds(5));  // the coroutine is now waiting
  }
  EXPECT_TRUE(co_await WaitUntil([&] { return frame_destroyed; }));
  EXPECT_TRUE(aborted);
}

TEST(BridgeTest, DroppingToPromiseCancelsTheCoroutine) {
  Reactor reactor;
  RunToCompletion(reactor, DropToPromise(&reactor));
}

asio::awaitable<void> AwaitForever(bool* aborted, bool* promise_dropped) {
  try {
    co_await Await(kj::Promise<void>(kj::NEVER_DONE).attach(DropFlag(promise_dropped)));
  } catch (const asio::system_error& e) {
    *aborted = e.code() == asio::error::operation_aborted;
  }
}

asio::awaitable<void> CancelAwait(Reactor* reactor) {
  bool aborted = false;
  bool promise_dropped = false;
  bool finished = false;
  asio::cancellation_signal cancel;
  asio::co_spawn(
      reactor->io(), AwaitForever(&aborted, &promise_dropped),
      asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr) { finished = true; }));
  co_await Sleep(milliseconds(5));
  cancel.emit(asio::cancellation_type::terminal);
  EXPECT_TRUE(promise_dropped) << "cancellation drops the KJ promise at once";
  EXPECT_TRUE(co_await WaitUntil([&] { return finished; }));
  EXPECT_TRUE(aborted);
}

TEST(BridgeTest, CancellingTheAwaitingCoroutineDropsThePromise) {
  Reactor reactor;
  RunToCompletion(reactor, CancelAwait(&reactor));
}

asio::awaitable<void> AwaitThenRecord(kj::Promise<int> promise, bool* aborted, bool* finished) {
  try {
    co_await Await(std::move(promise));
  } catch (const asio::system_error& e) {
    *aborted = e.code() == asio::error::operation_aborted;
  }
  *finished = true;
}

// The value arrives and the resumption is queued; then the coroutine is cancelled. Await must
// not return the value into a cancelled coroutine (a server call context may be gone).
asio::awaitable<void> CancelAfterValueArrived(Reactor* reactor) {
  auto paf = kj::newPromiseAndFulfiller<int>();
  bool aborted = false;
  bool finished = false;
  asio::cancellation_signal cancel;
  asio::co_spawn(reactor->io(), AwaitThenRecord(kj::mv(paf.promise), &aborted, &finished),
                 asio::bind_cancellation_slot(cancel.slot(), [](std::exception_ptr) {}));
  co_await Sleep(milliseconds(5));
  paf.fulfiller->fulfill(1);
  // The KJ run posted by fulfill() goes first and queues the resumption behind this one.
  co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
  EXPECT_FALSE(finished);
  cancel.emit(asio::cancellation_type::terminal);
  EXPECT_TRUE(co_await WaitUntil([&] { return finished; }));
  EXPECT_TRUE(aborted);
}

TEST(BridgeTest, CancelledCoroutineDoesNotResumeWithAValue) {
  Reactor reactor;
  RunToCompletion(reactor, CancelAfterValueArrived(&reactor));
}

asio::awaitable<void> AwaitCrossThread() {
  auto paf = kj::newPromiseAndCrossThreadFulfiller<int>();
  std::thread other([fulfiller = paf.fulfiller.get()] { fulfiller->fulfill(77); });
  int value = co_await Await(kj::mv(paf.promise));
  other.join();
  EXPECT_EQ(value, 77);
}

TEST(BridgeTest, AwaitOfPromiseFulfilledFromAnotherThread) {
  Reactor reactor;
  RunToCompletion(reactor, AwaitCrossThread());
}

asio::awaitable<void> AwaitExecutorWork() {
  const kj::Executor& executor = kj::getCurrentThreadExecutor();
  auto paf = kj::newPromiseAndFulfiller<int>();
  kj::PromiseFulfiller<int>* fulfiller = paf.fulfiller.get();
  // executeSync blocks the other thread until the reactor ran the function.
  std::thread other(
      [&executor, fulfiller] { executor.executeSync([fulfiller] { fulfiller->fulfill(5); }); });
  int value = co_await Await(kj::mv(paf.promise));
  other.join();
  EXPECT_EQ(value, 5);
}

TEST(BridgeTest, AwaitOfPromiseFulfilledThroughExecutor) {
  Reactor reactor;
  RunToCompletion(reactor, AwaitExecutorWork());
}

asio::awaitable<void> ManyCrossThreadAwaits(Latch* latch, int value) {
  auto paf = kj::newPromiseAndCrossThreadFulfiller<int>();
  std::thread other([fulfiller = paf.fulfiller.get(), value] { fulfiller->fulfill(int(value)); });
  int got = co_await Await(kj::mv(paf.promise));
  other.join();
  EXPECT_EQ(got, value);
  latch->CountDown();
}

asio::awaitable<void> CrossThreadStorm() {
  auto executor = co_await asio::this_coro::executor;
  constexpr int kCount = 50;
  Latch latch(executor, kCount);
  for (int i = 0; i < kCount; ++i) {
    asio::co_spawn(executor, ManyCrossThreadAwaits(&latch, i), asio::detached);
  }
  co_await latch.Wait();
  EXPECT_EQ(latch.count(), 0);
}

TEST(BridgeTest, ManyCrossThreadWakes) {
  Reactor reactor;
  RunToCompletion(reactor, CrossThreadStorm());
}

asio::awaitable<void> SuspendForever(bool* frame_destroyed, bool* promise_dropped) {
  DropFlag flag(frame_destroyed);
  co_await Await(kj::Promise<void>(kj::NEVER_DONE).attach(DropFlag(promise_dropped)));
  ADD_FAILURE() << "resumed";
}

asio::awaitable<void> SleepForever(bool* frame_destroyed, std::shared_ptr<int> token) {
  DropFlag flag(frame_destroyed);
  (void)token;
  co_await Sleep(milliseconds(3600 * 1000));
}

TEST(ReactorTest, TeardownDestroysSuspendedCoroutinesWhileKjExists) {
  bool awaiting_frame_destroyed = false;
  bool promise_dropped = false;
  bool sleeping_frame_destroyed = false;
  auto token = std::make_shared<int>(0);
  {
    Reactor reactor;
    asio::co_spawn(reactor.io(), SuspendForever(&awaiting_frame_destroyed, &promise_dropped),
                   asio::detached);
    asio::co_spawn(reactor.io(), SleepForever(&sleeping_frame_destroyed, token), asio::detached);
    asio::steady_timer stop(reactor.io(), milliseconds(5));
    stop.async_wait([&](const std::error_code&) { reactor.Stop(); });
    reactor.Run();
    EXPECT_FALSE(awaiting_frame_destroyed);
  }
  EXPECT_TRUE(awaiting_frame_destroyed);
  EXPECT_TRUE(promise_dropped);
  EXPECT_TRUE(sleeping_frame_destroyed);
  EXPECT_EQ(token.use_count(), 1);
}

}  // namespace
}  // namespace replicator::net
