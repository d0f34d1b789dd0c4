// Non-template parts of the Asio <-> KJ bridge.
#include "net/bridge.h"

#include <cstdio>
#include <cstdlib>

namespace replicator::net {

RpcError::RpcError(const kj::Exception& exception)
    : std::runtime_error(exception.getDescription().cStr()), exception_(exception) {}

namespace internal {

kj::Exception ToKjException(std::exception_ptr error) {
  try {
    std::rethrow_exception(error);
  } catch (const RpcError& e) {
    return e.exception();
  } catch (const kj::Exception& e) {
    return e;
  } catch (const std::exception& e) {
    return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__, kj::str(e.what()));
  } catch (...) {
    return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__,
                         kj::str("unknown exception"));
  }
}

kj::TaskSet& ReactorTasks() {
  Reactor* reactor = Reactor::Current();
  if (reactor == nullptr) {
    std::fprintf(stderr, "replicator::net: Await outside a Reactor thread\n");
    std::abort();
  }
  return reactor->tasks();
}

}  // namespace internal

asio::awaitable<void> ThrowIfCancelled() {
  asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
  if (state.cancelled() != asio::cancellation_type::none) {
    throw asio::system_error(asio::error::operation_aborted);
  }
}

kj::Promise<void> ToPromise(asio::io_context& io, asio::awaitable<void> work) {
  return internal::ToPromiseImpl<void>(io, std::move(work));
}

}  // namespace replicator::net
