#include "net/asio_stream.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <memory>

namespace replicator::net {
namespace {

// iovecs per sendmsg(); the rest of a long message goes in the next call.
constexpr size_t kMaxIov = 64;

bool IsDisconnect(int error) {
  switch (error) {
    case ECONNRESET:
    case ECONNABORTED:
    case ECONNREFUSED:
    case EPIPE:
    case ENOTCONN:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case ENETDOWN:
    case ENETUNREACH:
    case EBADF:
      return true;
    default:
      return false;
  }
}

kj::Exception ErrnoException(const char* what, int error) {
  return kj::Exception(
      IsDisconnect(error) ? kj::Exception::Type::DISCONNECTED : kj::Exception::Type::FAILED,
      __FILE__, __LINE__, kj::str(what, ": ", strerror(error)));
}

kj::Exception ErrorCodeException(const char* what, const std::error_code& error) {
  return kj::Exception(IsDisconnect(error.value()) || error == asio::error::operation_aborted
                           ? kj::Exception::Type::DISCONNECTED
                           : kj::Exception::Type::FAILED,
                       __FILE__, __LINE__, kj::str(what, ": ", error.message().c_str()));
}

// Shared by a readiness wait's kj::Promise and its Asio handler.
struct ReadyOp {
  asio::cancellation_signal cancel;
  bool done = false;  // the handler ran: the signal's slot no longer refers to a live wait
};

}  // namespace

AsioStream::AsioStream(asio::ip::tcp::socket socket) : socket_(std::move(socket)) {
  std::error_code ignored;
  socket_.non_blocking(true, ignored);
  socket_.set_option(asio::ip::tcp::no_delay(true), ignored);
}

AsioStream::~AsioStream() noexcept(false) {
  std::error_code ignored;
  socket_.close(ignored);
}

kj::Promise<void> AsioStream::Ready(asio::socket_base::wait_type wait) {
  auto paf = kj::newPromiseAndFulfiller<void>();
  auto op = std::make_shared<ReadyOp>();
  socket_.async_wait(wait, asio::bind_cancellation_slot(
                               op->cancel.slot(), [op, fulfiller = kj::mv(paf.fulfiller)](
                                                      const std::error_code& error) mutable {
                                 op->done = true;
                                 // A no-op if the promise was dropped.
                                 if (!error) {
                                   fulfiller->fulfill();
                                 } else {
                                   fulfiller->reject(ErrorCodeException("socket wait", error));
                                 }
                               }));
  return paf.promise.attach(kj::defer([op] {
    if (!op->done) op->cancel.emit(asio::cancellation_type::all);
  }));
}

kj::Promise<size_t> AsioStream::tryRead(void* buffer, size_t min_bytes, size_t max_bytes) {
  return ReadSome(static_cast<kj::byte*>(buffer), min_bytes, max_bytes, 0);
}

kj::Promise<size_t> AsioStream::ReadSome(kj::byte* buffer, size_t min_bytes, size_t max_bytes,
                                         size_t already_read) {
  if (!socket_.is_open()) {
    return kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__,
                         kj::str("read on a closed socket"));
  }
  for (;;) {
    ssize_t n = ::recv(socket_.native_handle(), buffer, max_bytes, 0);
    if (n < 0) {
      int error = errno;
      if (error == EINTR) continue;
      if (error == EAGAIN || error == EWOULDBLOCK) {
        return Ready(asio::socket_base::wait_read)
            .then([this, buffer, min_bytes, max_bytes, already_read] {
              return ReadSome(buffer, min_bytes, max_bytes, already_read);
            });
      }
      return ErrnoException("recv", error);
    }
    if (n == 0) return already_read;  // EOF
    size_t got = static_cast<size_t>(n);
    already_read += got;
    if (got >= min_bytes) return already_read;
    buffer += got;
    min_bytes -= got;
    max_bytes -= got;
  }
}

kj::Promise<void> AsioStream::write(const void* buffer, size_t size) {
  return WriteAll(kj::arrayPtr(static_cast<const kj::byte*>(buffer), size), nullptr);
}

kj::Promise<void> AsioStream::write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) {
  if (pieces.size() == 0) return kj::READY_NOW;
  return WriteAll(pieces[0], pieces.slice(1, pieces.size()));
}

kj::Promise<void> AsioStream::WriteAll(kj::ArrayPtr<const kj::byte> first,
                                       kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> rest) {
  if (!socket_.is_open()) {
    return kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__,
                         kj::str("write on a closed socket"));
  }
  for (;;) {
    // Skip empty pieces so that "nothing left" is simply both empty.
    while (first.size() == 0 && rest.size() > 0) {
      first = rest[0];
      rest = rest.slice(1, rest.size());
    }
    if (first.size() == 0) return kj::READY_NOW;

    struct iovec iov[kMaxIov];
    size_t count = 0;
    iov[count++] = {const_cast<kj::byte*>(first.begin()), first.size()};
    for (size_t i = 0; i < rest.size() && count < kMaxIov; ++i) {
      if (rest[i].size() == 0) continue;
      iov[count++] = {const_cast<kj::byte*>(rest[i].begin()), rest[i].size()};
    }
    struct msghdr msg {};
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    ssize_t n = ::sendmsg(socket_.native_handle(), &msg, MSG_NOSIGNAL);
    if (n < 0) {
      int error = errno;
      if (error == EINTR) continue;
      if (error == EAGAIN || error == EWOULDBLOCK) {
        return Ready(asio::socket_base::wait_write).then([this, first, rest] {
          return WriteAll(first, rest);
        });
      }
      return ErrnoException("sendmsg", error);
    }
    size_t sent = static_cast<size_t>(n);
    // Advance past what was sent.
    if (sent < first.size()) {
      first = first.slice(sent, first.size());
      continue;
    }
    sent -= first.size();
    first = nullptr;
    while (rest.size() > 0 && sent >= rest[0].size()) {
      sent -= rest[0].size();
      rest = rest.slice(1, rest.size());
    }
    if (rest.size() > 0) {
      first = rest[0].slice(sent, rest[0].size());
      rest = rest.slice(1, rest.size());
    }
  }
}

kj::Promise<void> AsioStream::whenWriteDisconnected() { return kj::NEVER_DONE; }

void AsioStream::shutdownWrite() {
  std::error_code ignored;
  socket_.shutdown(asio::socket_base::shutdown_send, ignored);
}

void AsioStream::abortRead() {
  std::error_code ignored;
  socket_.shutdown(asio::socket_base::shutdown_receive, ignored);
}

void AsioStream::getsockopt(int level, int option, void* value, kj::uint* length) {
  socklen_t socklen = *length;
  if (::getsockopt(socket_.native_handle(), level, option, value, &socklen) < 0) {
    kj::throwFatalException(ErrnoException("getsockopt", errno));
  }
  *length = socklen;
}

void AsioStream::setsockopt(int level, int option, const void* value, kj::uint length) {
  if (::setsockopt(socket_.native_handle(), level, option, value, length) < 0) {
    kj::throwFatalException(ErrnoException("setsockopt", errno));
  }
}

void AsioStream::getsockname(struct sockaddr* addr, kj::uint* length) {
  socklen_t socklen = *length;
  if (::getsockname(socket_.native_handle(), addr, &socklen) < 0) {
    kj::throwFatalException(ErrnoException("getsockname", errno));
  }
  *length = socklen;
}

void AsioStream::getpeername(struct sockaddr* addr, kj::uint* length) {
  socklen_t socklen = *length;
  if (::getpeername(socket_.native_handle(), addr, &socklen) < 0) {
    kj::throwFatalException(ErrnoException("getpeername", errno));
  }
  *length = socklen;
}

}  // namespace replicator::net
