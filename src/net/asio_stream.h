// AsioStream: a kj::AsyncIoStream over a connected, non-blocking asio::ip::tcp::socket, so
// Cap'n Proto's two-party network runs on the reactor's io_context.
//
// Lives on its Reactor's thread. Reads: try recv() first; on EAGAIN wait for readiness with
// async_wait. Small reads are served from a 64 KiB buffer, so the several reads Cap'n Proto
// makes per message (header, then body) cost one recv() for all the messages that arrived
// together. Writes are copied into an outgoing buffer and sent by one send() after the
// current turn of the loop, so every message written in a turn shares a syscall (and a TCP
// segment); a write returns at once unless more than 4 MiB is waiting to be sent. A send
// failure fails the next write. Dropping a returned read promise cancels exactly its own
// readiness wait. Destroying the stream closes the socket, dropping unsent bytes.
#ifndef REPLICATOR_NET_ASIO_STREAM_H_
#define REPLICATOR_NET_ASIO_STREAM_H_

#include <kj/async-io.h>

#include <asio/ip/tcp.hpp>
#include <memory>
#include <vector>

namespace replicator::net {

class AsioStream final : public kj::AsyncIoStream {
 public:
  // Sets the socket non-blocking and TCP_NODELAY.
  explicit AsioStream(asio::ip::tcp::socket socket);
  ~AsioStream() noexcept(false);

  kj::Promise<size_t> tryRead(void* buffer, size_t min_bytes, size_t max_bytes) override;
  kj::Promise<void> write(const void* buffer, size_t size) override;
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override;
  // Never resolves: a failed peer shows up as a failed read or write.
  kj::Promise<void> whenWriteDisconnected() override;
  void shutdownWrite() override;
  void abortRead() override;
  void getsockopt(int level, int option, void* value, kj::uint* length) override;
  void setsockopt(int level, int option, const void* value, kj::uint length) override;
  void getsockname(struct sockaddr* addr, kj::uint* length) override;
  void getpeername(struct sockaddr* addr, kj::uint* length) override;

  asio::ip::tcp::socket& socket() { return socket_; }

 private:
  kj::Promise<void> Ready(asio::socket_base::wait_type wait);
  kj::Promise<size_t> ReadSome(kj::byte* buffer, size_t min_bytes, size_t max_bytes,
                               size_t already_read);
  size_t TakeBuffered(kj::byte* out, size_t max_bytes);
  void ScheduleFlush();
  void Flush();
  void FailWrites(kj::Exception error);

  asio::ip::tcp::socket socket_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for posted handlers

  std::unique_ptr<kj::byte[]> in_;  // bytes received, not yet read: [in_begin_, in_end_)
  size_t in_begin_ = 0;
  size_t in_end_ = 0;

  std::vector<kj::byte> out_;  // bytes written, not yet sent: [out_sent_, out_.size())
  size_t out_sent_ = 0;
  bool flush_posted_ = false;
  bool waiting_writable_ = false;
  bool shutdown_after_flush_ = false;
  kj::Maybe<kj::Exception> write_error_;
  std::vector<kj::Own<kj::PromiseFulfiller<void>>> drained_;  // writers held back
};

}  // namespace replicator::net

#endif  // REPLICATOR_NET_ASIO_STREAM_H_
