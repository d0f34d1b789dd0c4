#include "net/asio_stream.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>

#include <algorithm>
#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>
#include <asio/post.hpp>
#include <memory>

namespace replicator::net {
namespace {

// Reads asking for less than this go through the stream's buffer.
constexpr size_t kReadBuffer = 64 << 10;
// A write waits for the outgoing buffer to drain below this.
constexpr size_t kMaxUnsent = 4 << 20;

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

size_t AsioStream::TakeBuffered(kj::byte* out, size_t max_bytes) {
  size_t n = std::min(max_bytes, in_end_ - in_begin_);
  if (n == 0) return 0;
  memcpy(out, in_.get() + in_begin_, n);
  in_begin_ += n;
  if (in_begin_ == in_end_) in_begin_ = in_end_ = 0;
  return n;
}

kj::Promise<size_t> AsioStream::tryRead(void* buffer, size_t min_bytes, size_t max_bytes) {
  auto* out = static_cast<kj::byte*>(buffer);
  size_t got = TakeBuffered(out, max_bytes);
  if (got >= min_bytes) return got;
  return ReadSome(out + got, min_bytes - got, max_bytes - got, got);
}

kj::Promise<size_t> AsioStream::ReadSome(kj::byte* buffer, size_t min_bytes, size_t max_bytes,
                                         size_t already_read) {
  if (!socket_.is_open()) {
    return kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__,
                         kj::str("read on a closed socket"));
  }
  for (;;) {
    // Our buffer is empty here. Large reads go straight to the caller's.
    const bool direct = max_bytes >= kReadBuffer;
    if (!direct && !in_) in_ = std::make_unique<kj::byte[]>(kReadBuffer);
    ssize_t n = ::recv(socket_.native_handle(), direct ? buffer : in_.get(),
                       direct ? max_bytes : kReadBuffer, 0);
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
    if (!direct) {
      in_begin_ = 0;
      in_end_ = got;
      got = TakeBuffered(buffer, max_bytes);
    }
    already_read += got;
    if (got >= min_bytes) return already_read;
    buffer += got;
    min_bytes -= got;
    max_bytes -= got;
  }
}

kj::Promise<void> AsioStream::write(const void* buffer, size_t size) {
  kj::ArrayPtr<const kj::byte> piece(static_cast<const kj::byte*>(buffer), size);
  return write(kj::arrayPtr(&piece, 1));
}

kj::Promise<void> AsioStream::write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) {
  KJ_IF_MAYBE(error, write_error_) { return kj::cp(*error); }
  if (!socket_.is_open() || shutdown_after_flush_) {
    return kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__,
                         kj::str("write on a closed socket"));
  }
  for (auto piece : pieces) out_.insert(out_.end(), piece.begin(), piece.end());
  ScheduleFlush();
  if (out_.size() - out_sent_ <= kMaxUnsent) return kj::READY_NOW;
  auto paf = kj::newPromiseAndFulfiller<void>();
  drained_.push_back(kj::mv(paf.fulfiller));
  return kj::mv(paf.promise);
}

void AsioStream::ScheduleFlush() {
  if (flush_posted_ || waiting_writable_) return;
  flush_posted_ = true;
  // Posted, so it runs after the rest of this turn of the KJ loop has
  // written what it has to write.
  asio::post(socket_.get_executor(), [this, alive = std::weak_ptr<bool>(alive_)] {
    if (alive.expired()) return;
    flush_posted_ = false;
    Flush();
  });
}

void AsioStream::Flush() {
  while (out_sent_ < out_.size()) {
    ssize_t n = ::send(socket_.native_handle(), out_.data() + out_sent_, out_.size() - out_sent_,
                       MSG_NOSIGNAL);
    if (n < 0) {
      int error = errno;
      if (error == EINTR) continue;
      if (error == EAGAIN || error == EWOULDBLOCK) {
        waiting_writable_ = true;
        socket_.async_wait(asio::socket_base::wait_write,
                           [this, alive = std::weak_ptr<bool>(alive_)](const std::error_code& ec) {
                             if (alive.expired()) return;
                             waiting_writable_ = false;
                             if (ec) {
                               FailWrites(ErrorCodeException("socket wait", ec));
                             } else {
                               Flush();
                             }
                           });
        // Keep the unsent tail at the front so the buffer does not grow
        // without bound while the peer is slow.
        if (out_sent_ > out_.size() / 2) {
          out_.erase(out_.begin(), out_.begin() + static_cast<ptrdiff_t>(out_sent_));
          out_sent_ = 0;
        }
        return;
      }
      FailWrites(ErrnoException("send", error));
      return;
    }
    out_sent_ += static_cast<size_t>(n);
  }
  out_.clear();
  out_sent_ = 0;
  auto drained = std::move(drained_);
  drained_.clear();
  for (auto& f : drained) f->fulfill();
  if (shutdown_after_flush_) {
    std::error_code ignored;
    socket_.shutdown(asio::socket_base::shutdown_send, ignored);
  }
}

void AsioStream::FailWrites(kj::Exception error) {
  out_.clear();
  out_sent_ = 0;
  auto drained = std::move(drained_);
  drained_.clear();
  for (auto& f : drained) f->reject(kj::cp(error));
  write_error_ = kj::mv(error);
}

kj::Promise<void> AsioStream::whenWriteDisconnected() { return kj::NEVER_DONE; }

void AsioStream::shutdownWrite() {
  if (out_sent_ < out_.size()) {
    shutdown_after_flush_ = true;  // after what was written is sent
    return;
  }
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
