// The bridge between Asio coroutines and KJ promises, both on one Reactor thread.
//
//   Await(promise)             an asio::awaitable that waits for a kj::Promise
//   AwaitWithin(promise, d)    the same with a deadline, as an absl::Status(Or)
//   ToPromise(io, coroutine)   a kj::Promise for an Asio coroutine (Cap'n Proto server methods)
//
// Every function here must be called on the thread of a Reactor (Reactor::Current() != null).
// Resumption of a coroutine is always posted to its executor, never run inside a KJ callback.
// Dropping the kj::Promise behind an Await (deadline, or cancellation of the awaiting
// coroutine) cancels the KJ side at once, outgoing RPCs included.
//
// Example (a server method written as a coroutine):
//   kj::Promise<void> put(PutContext ctx) override {
//     return net::ToPromise(reactor.io(), Put(ctx));
//   }
//   asio::awaitable<void> Put(PutContext ctx) {
//     auto votes = co_await net::AwaitWithin(peer.reserveRequest().send(), 500ms);
//     ...
//   }
#ifndef REPLICATOR_NET_BRIDGE_H_
#define REPLICATOR_NET_BRIDGE_H_

#include <kj/async.h>
#include <kj/exception.h>

#include <asio/associated_cancellation_slot.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/system_error.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "net/reactor.h"

namespace replicator::net {

// A kj::Exception carried through Asio and standard code (kj::Exception does not derive from
// std::exception). what() is the exception's description.
class RpcError : public std::runtime_error {
 public:
  explicit RpcError(const kj::Exception& exception);

  kj::Exception::Type type() const { return exception_.getType(); }
  // True if the transport failed or closed (kj DISCONNECTED): retrying on a new connection may
  // succeed.
  bool disconnected() const { return type() == kj::Exception::Type::DISCONNECTED; }
  const kj::Exception& exception() const { return exception_; }

 private:
  kj::Exception exception_;
};

namespace internal {

template <typename T>
using StatusOrFor = std::conditional_t<std::is_void_v<T>, absl::Status, absl::StatusOr<T>>;

}  // namespace internal

// Awaits a KJ promise from an Asio coroutine on the reactor. Throws RpcError if the promise
// rejects. Works for any T, including void and capnp::Response<X>; a capnp::RemotePromise<X>
// converts to kj::Promise<capnp::Response<X>>.
// Cancellation: if the awaiting coroutine has been cancelled (its cancellation state says so,
// e.g. the kj::Promise of its ToPromise was dropped), Await drops the KJ promise and throws
// asio::system_error(operation_aborted), even when the value had already arrived. So a server
// coroutine never returns from Await into a call context that was cancelled meanwhile.
template <typename T>
asio::awaitable<T> Await(kj::Promise<T> promise);

// Awaits a KJ promise with a deadline. On expiry the promise is dropped (cancelling the RPC)
// and the result is DeadlineExceeded; a rejected promise becomes Unavailable(description).
// For T = void the result is absl::Status, otherwise absl::StatusOr<T>. Cancellation of the
// awaiting coroutine throws, as for Await: it is not an outcome to handle.
template <typename T>
asio::awaitable<internal::StatusOrFor<T>> AwaitWithin(kj::Promise<T> promise,
                                                      std::chrono::milliseconds deadline);

// Throws asio::system_error(operation_aborted) if the calling coroutine has been cancelled.
// Call it before touching a Cap'n Proto call context after awaiting anything other than
// Await/AwaitWithin (an Asio timer, say): a completion already queued when the call was
// cancelled still resumes the coroutine normally.
asio::awaitable<void> ThrowIfCancelled();

// Runs an Asio coroutine on `io` (posted: it never starts inside the calling KJ callback) and
// exposes its completion as a kj::Promise. An exception escaping the coroutine rejects the
// promise: RpcError keeps its kj::Exception, std::exception becomes a FAILED kj::Exception with
// what(). Dropping the promise emits terminal cancellation into the coroutine, so the operation
// it awaits completes with operation_aborted (for Await: its KJ promise is dropped).
kj::Promise<void> ToPromise(asio::io_context& io, asio::awaitable<void> work);
template <typename T>
kj::Promise<T> ToPromise(asio::io_context& io, asio::awaitable<T> work);

// ---------------------------------------------------------------------------------------------
// Implementation.

namespace internal {

// What became of an awaited kj::Promise.
template <typename T>
struct Outcome {
  using Value = std::conditional_t<std::is_void_v<T>, std::monostate, T>;
  enum class Kind { kValue, kError, kDeadline, kCancelled };

  Kind kind = Kind::kCancelled;
  std::optional<Value> value;
  std::optional<kj::Exception> error;
};

// Converts whatever a coroutine threw into a kj::Exception.
kj::Exception ToKjException(std::exception_ptr error);

// Tasks that hold awaited promises: those of the calling thread's reactor.
kj::TaskSet& ReactorTasks();

class AwaitOpBase {
 public:
  virtual ~AwaitOpBase() = default;
  virtual void Cancel() = 0;
  virtual void Expire() = 0;
};

// Installed in the awaiting coroutine's cancellation slot. Holds the operation weakly: the slot
// may outlive it until the coroutine resumes.
struct AwaitCancellation {
  std::weak_ptr<AwaitOpBase> op;
  void operator()(asio::cancellation_type type) {
    if (type == asio::cancellation_type::none) return;
    if (auto locked = op.lock()) locked->Cancel();
  }
};

// One awaited kj::Promise. Owned by a task in the reactor's kj::TaskSet (so a coroutine that
// waits forever is destroyed with the reactor, while KJ still exists); owns the coroutine's
// completion handler until it posts it.
template <typename T, typename Handler>
class AwaitOp final : public AwaitOpBase, public std::enable_shared_from_this<AwaitOp<T, Handler>> {
 public:
  explicit AwaitOp(Handler handler)
      : handler_(std::move(handler)), executor_(asio::get_associated_executor(*handler_)) {}
  ~AwaitOp() noexcept override {}

  void Start(kj::Promise<T> promise, std::optional<std::chrono::milliseconds> deadline) {
    auto slot = asio::get_associated_cancellation_slot(*handler_);
    if (slot.is_connected()) {
      slot.template emplace<AwaitCancellation>(
          AwaitCancellation{std::weak_ptr<AwaitOpBase>(this->shared_from_this())});
    }
    if (deadline.has_value()) {
      timer_.emplace(executor_, *deadline);
      timer_->async_wait([weak = std::weak_ptr<AwaitOpBase>(this->shared_from_this())](
                             const std::error_code& error) {
        if (error) return;
        if (auto locked = weak.lock()) locked->Expire();
      });
    }
    kj::Promise<void> settled = nullptr;
    if constexpr (std::is_void_v<T>) {
      settled = promise.then(
          [this]() { Settle(Kind::kValue, std::monostate{}, std::nullopt); },
          [this](kj::Exception&& e) { Settle(Kind::kError, std::nullopt, std::move(e)); });
    } else {
      settled = promise.then(
          [this](T&& value) { Settle(Kind::kValue, std::move(value), std::nullopt); },
          [this](kj::Exception&& e) { Settle(Kind::kError, std::nullopt, std::move(e)); });
    }
    ReactorTasks().add(canceler_.wrap(std::move(settled)).attach(this->shared_from_this()));
  }

  // The awaiting coroutine was cancelled.
  void Cancel() override { Abandon(Kind::kCancelled); }
  // The deadline passed.
  void Expire() override { Abandon(Kind::kDeadline); }

 private:
  using Kind = typename Outcome<T>::Kind;
  using Value = typename Outcome<T>::Value;

  void Settle(Kind kind, std::optional<Value> value, std::optional<kj::Exception> error) {
    Resume(Outcome<T>{kind, std::move(value), std::move(error)});
  }

  void Abandon(Kind kind) {
    if (!handler_.has_value()) return;
    Resume(Outcome<T>{kind, std::nullopt, std::nullopt});
    // Drops the KJ promise now (an RPC in flight is cancelled); the task then ends with a
    // cancellation error, which the reactor ignores, and releases this operation.
    canceler_.cancel("await abandoned");
  }

  void Resume(Outcome<T> outcome) {
    if (!handler_.has_value()) return;
    if (timer_.has_value()) timer_->cancel();
    asio::post(executor_, [handler = std::move(*handler_), outcome = std::move(outcome)]() mutable {
      std::move(handler)(std::move(outcome));
    });
    handler_.reset();
  }

  std::optional<Handler> handler_;
  asio::associated_executor_t<Handler> executor_;
  std::optional<asio::steady_timer> timer_;
  kj::Canceler canceler_;
};

template <typename T>
auto AwaitOutcome(kj::Promise<T> promise, std::optional<std::chrono::milliseconds> deadline) {
  return asio::async_initiate<const asio::use_awaitable_t<>&, void(Outcome<T>)>(
      [](auto handler, kj::Promise<T> p, std::optional<std::chrono::milliseconds> d) {
        using Op = AwaitOp<T, std::decay_t<decltype(handler)>>;
        std::make_shared<Op>(std::move(handler))->Start(std::move(p), d);
      },
      asio::use_awaitable, std::move(promise), deadline);
}

// Shared by ToPromise's kj::Promise and its coroutine.
template <typename T>
struct SpawnState {
  kj::Own<kj::PromiseFulfiller<T>> fulfiller;
  asio::cancellation_signal cancel;
  bool dropped = false;  // the kj::Promise is gone
  bool done = false;     // the coroutine finished
};

template <typename T>
asio::awaitable<void> RunAndFulfill(asio::awaitable<T> work, std::shared_ptr<SpawnState<T>> state) {
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(work);
      state->done = true;
      state->fulfiller->fulfill();
    } else {
      T value = co_await std::move(work);
      state->done = true;
      state->fulfiller->fulfill(std::move(value));
    }
  } catch (...) {
    state->done = true;
    state->fulfiller->reject(ToKjException(std::current_exception()));
  }
}

template <typename T>
kj::Promise<T> ToPromiseImpl(asio::io_context& io, asio::awaitable<T> work) {
  auto paf = kj::newPromiseAndFulfiller<T>();
  auto state = std::make_shared<SpawnState<T>>();
  state->fulfiller = std::move(paf.fulfiller);
  asio::post(io, [&io, state, work = std::move(work)]() mutable {
    if (state->dropped) return;
    asio::co_spawn(io, RunAndFulfill<T>(std::move(work), state),
                   asio::bind_cancellation_slot(state->cancel.slot(), [](std::exception_ptr) {}));
  });
  return paf.promise.attach(kj::defer([state] {
    state->dropped = true;
    if (!state->done) state->cancel.emit(asio::cancellation_type::terminal);
  }));
}

}  // namespace internal

template <typename T>
asio::awaitable<T> Await(kj::Promise<T> promise) {
  using Kind = typename internal::Outcome<T>::Kind;
  internal::Outcome<T> outcome =
      co_await internal::AwaitOutcome<T>(std::move(promise), std::nullopt);
  co_await ThrowIfCancelled();
  switch (outcome.kind) {
    case Kind::kValue:
      break;
    case Kind::kError:
      throw RpcError(*outcome.error);
    case Kind::kDeadline:
    case Kind::kCancelled:
      throw asio::system_error(asio::error::operation_aborted);
  }
  if constexpr (std::is_void_v<T>) {
    co_return;
  } else {
    co_return std::move(*outcome.value);
  }
}

template <typename T>
asio::awaitable<internal::StatusOrFor<T>> AwaitWithin(kj::Promise<T> promise,
                                                      std::chrono::milliseconds deadline) {
  using Kind = typename internal::Outcome<T>::Kind;
  internal::Outcome<T> outcome = co_await internal::AwaitOutcome<T>(std::move(promise), deadline);
  co_await ThrowIfCancelled();
  switch (outcome.kind) {
    case Kind::kValue:
      break;
    case Kind::kError:
      co_return absl::UnavailableError(outcome.error->getDescription().cStr());
    case Kind::kDeadline:
      co_return absl::DeadlineExceededError("no reply within " + std::to_string(deadline.count()) +
                                            " ms");
    case Kind::kCancelled:
      throw asio::system_error(asio::error::operation_aborted);
  }
  if constexpr (std::is_void_v<T>) {
    co_return absl::OkStatus();
  } else {
    co_return std::move(*outcome.value);
  }
}

template <typename T>
kj::Promise<T> ToPromise(asio::io_context& io, asio::awaitable<T> work) {
  return internal::ToPromiseImpl<T>(io, std::move(work));
}

}  // namespace replicator::net

#endif  // REPLICATOR_NET_BRIDGE_H_
