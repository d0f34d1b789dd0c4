// AsioStream: a kj::AsyncIoStream over a connected, non-blocking asio::ip::tcp::socket, so
// Cap'n Proto's two-party network runs on the reactor's io_context.
//
// Lives on its Reactor's thread. Strategy (KJ's own): try the syscall first; on EAGAIN wait
// for readiness with async_wait. Dropping a returned promise cancels exactly its own readiness
// wait (per-operation cancellation), never another read or write. Destroying the stream
// closes the socket.
#ifndef REPLICATOR_NET_ASIO_STREAM_H_
#define REPLICATOR_NET_ASIO_STREAM_H_

#include <kj/async-io.h>

#include <asio/ip/tcp.hpp>

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
  kj::Promise<void> WriteAll(kj::ArrayPtr<const kj::byte> first,
                             kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> rest);

  asio::ip::tcp::socket socket_;
};

}  // namespace replicator::net

#endif  // REPLICATOR_NET_ASIO_STREAM_H_
