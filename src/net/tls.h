// TLS 1.3 with mutual authentication, as a kj::AsyncIoStream over another one (an AsioStream),
// so Cap'n Proto RPC runs over it unchanged. OpenSSL 3, driven through memory buffers: OpenSSL
// never touches the socket.
//
// Both sides present a certificate and its key and verify the other's chain against the
// configured CA certificate(s) only (no system trust store); a peer with no certificate, one
// from another CA, an expired one or one that does not follow the conventions of net/certs.h
// (Ed25519 key, a CN, OU = a role) fails the handshake with an alert. A client also requires the
// server's certificate to have role `node`: only replicatord serves. After the handshake each
// side sees the other's certificate, parsed (PeerCertificate).
//
// In TLS 1.3 a client finishes its handshake before the server has looked at the client's
// certificate, so a refusal would only show on the first read. TlsStream's client handshake
// therefore also waits for the server's NewSessionTicket, which OpenSSL sends only after it
// accepted the client's certificate: a refused client fails in Handshake(), with the server's
// reason. (Tickets are only that signal: no session is ever resumed.)
//
// Performance: the stream keeps AsioStream's shape. Writes are copied into a plaintext buffer
// and encrypted by one SSL_write after the current turn of the loop, so all the messages of a
// turn share TLS records (and one send()); a write waits once more than 4 MiB is pending. Reads
// take up to 64 KiB of ciphertext per read of the inner stream, and decrypt a whole record at a
// time into a buffer that serves Cap'n Proto's small reads (one SSL_read per record, not per
// read).
//
// Lives on one Reactor thread, like AsioStream; the inner stream must be there too.
#ifndef REPLICATOR_NET_TLS_H_
#define REPLICATOR_NET_TLS_H_

#include <kj/async-io.h>

#include <asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "net/certs.h"

struct ssl_ctx_st;
struct ssl_st;

namespace replicator::net {

// What one side of a TLS connection presents and trusts. PEM text, as net/certs.h makes it.
struct TlsConfig {
  // The trust root: the federation's CA certificate. Several CA certificates may be
  // concatenated (while rotating to a new CA, trust both); nothing else is trusted.
  std::string ca_cert_pem;
  // This side's certificate, then any intermediate CA certificates.
  std::string cert_chain_pem;
  // This side's private key (unencrypted PKCS#8 PEM; a node's is its identity.key).
  std::string key_pem;
  // A connection that has not finished its handshake by then is closed.
  std::chrono::milliseconds handshake_timeout{10000};
};

// A TlsConfig checked and loaded once (an OpenSSL SSL_CTX), shared by every connection that uses
// it. Immutable once created; a node reloading certificates creates a new one for new
// connections.
class TlsContext {
 public:
  // InvalidArgument naming the part of `config` that is wrong: no or malformed PEM, a CA
  // certificate that is not a CA's, a key that does not match the certificate, a certificate
  // that does not follow net/certs.h's conventions or does not verify against the CA (expired,
  // another CA's).
  static absl::StatusOr<std::shared_ptr<const TlsContext>> Create(const TlsConfig& config);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  // This side's own certificate, parsed.
  const PeerCertificate& certificate() const { return certificate_; }
  std::chrono::milliseconds handshake_timeout() const { return handshake_timeout_; }

  ssl_ctx_st* native() const { return ctx_.get(); }

 private:
  struct Free {
    void operator()(ssl_ctx_st* ctx) const;
  };
  TlsContext() = default;

  std::unique_ptr<ssl_ctx_st, Free> ctx_;
  PeerCertificate certificate_;
  std::chrono::milliseconds handshake_timeout_{0};
};

class TlsStream final : public kj::AsyncIoStream, private kj::TaskSet::ErrorHandler {
 public:
  enum class Side { kClient, kServer };

  // `io` is the reactor's: flushes are posted to it.
  TlsStream(kj::Own<kj::AsyncIoStream> inner, std::shared_ptr<const TlsContext> context, Side side,
            asio::io_context& io);
  ~TlsStream() noexcept(false);

  // Runs the handshake (on a client, until the server has accepted its certificate). Call once,
  // before any read or write. Rejects with a description of what went wrong: DISCONNECTED if
  // the transport failed or the peer closed it; FAILED otherwise (refused() says whether a
  // certificate was refused, by either side, rather than the peer not speaking TLS 1.3). The
  // caller bounds it with a timeout (TlsContext::handshake_timeout()).
  kj::Promise<void> Handshake();

  // The peer's certificate, parsed; only after Handshake() resolved.
  const PeerCertificate& peer_certificate() const { return *peer_; }
  // After Handshake() rejected: a certificate was refused (ours by the peer, or the peer's by
  // us).
  bool refused() const { return refused_; }

  // Server side: bytes to send, instead of a TLS alert, when the peer's first bytes are not a TLS
  // record at all (a plaintext client). RpcServer sends a Cap'n Proto Abort message, so a
  // plaintext Cap'n Proto client is told in its own protocol that TLS is required.
  void set_plaintext_reply(std::string bytes) { plaintext_reply_ = std::move(bytes); }
  // After Handshake() rejected: the peer's first bytes were not a TLS record.
  bool peer_spoke_plaintext() const { return first_byte_ >= 0 && first_byte_ != kTlsHandshake; }

  // Starts a TLS 1.3 key update once this many bytes were encrypted under one key (default
  // 16 GiB: AES-GCM keys must not protect unbounded data; RFC 8446 section 5.5).
  void set_key_update_interval(uint64_t bytes) { key_update_interval_ = bytes; }

  // Resolves when everything written so far (and any alert a failed handshake left behind) has
  // been handed to the inner stream.
  kj::Promise<void> Flush();

  kj::Promise<size_t> tryRead(void* buffer, size_t min_bytes, size_t max_bytes) override;
  kj::Promise<void> write(const void* buffer, size_t size) override;
  kj::Promise<void> write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) override;
  kj::Promise<void> whenWriteDisconnected() override;
  // Sends close_notify after what was written, then shuts down the inner stream's writes.
  void shutdownWrite() override;
  void abortRead() override;
  void getsockopt(int level, int option, void* value, kj::uint* length) override;
  void setsockopt(int level, int option, const void* value, kj::uint length) override;
  void getsockname(struct sockaddr* addr, kj::uint* length) override;
  void getpeername(struct sockaddr* addr, kj::uint* length) override;

 private:
  friend struct TlsCallbacks;
  struct Free {
    void operator()(ssl_st* ssl) const;
  };

  kj::Promise<void> HandshakeStep();
  kj::Exception HandshakeFailure(int ssl_error);
  kj::Promise<void> ReadInput();
  kj::Promise<size_t> ReadSome(kj::byte* buffer, size_t min_bytes, size_t max_bytes,
                               size_t already_read);
  size_t TakeDecrypted(kj::byte* out, size_t max_bytes);
  size_t Pending() const;
  void ScheduleFlush();
  void EncryptPending();
  void SendCiphertext();
  void AfterSend();
  void FailWrites(kj::Exception error);
  void taskFailed(kj::Exception&& exception) override;

  kj::Own<kj::AsyncIoStream> inner_;
  std::shared_ptr<const TlsContext> context_;
  Side side_;
  asio::io_context& io_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // for posted handlers
  std::unique_ptr<ssl_st, Free> ssl_;

  // Ciphertext received, not yet taken by OpenSSL: [in_begin_, in_end_).
  std::unique_ptr<kj::byte[]> in_;
  size_t in_begin_ = 0;
  size_t in_end_ = 0;
  bool in_eof_ = false;
  // Decrypted, not yet read: [plain_in_begin_, plain_in_end_).
  std::unique_ptr<kj::byte[]> plain_in_;
  size_t plain_in_begin_ = 0;
  size_t plain_in_end_ = 0;

  std::vector<kj::byte> plain_out_;       // written, not yet encrypted
  std::vector<kj::byte> cipher_out_;      // encrypted, not yet handed to the inner stream
  std::vector<kj::byte> cipher_sending_;  // handed to the inner stream, write not yet done
  bool sending_ = false;
  bool flush_posted_ = false;
  bool shutdown_requested_ = false;
  bool close_notify_sent_ = false;
  bool inner_shut_down_ = false;
  kj::Maybe<kj::Exception> write_error_;
  std::vector<kj::Own<kj::PromiseFulfiller<void>>> drained_;  // writers held back
  std::vector<kj::Own<kj::PromiseFulfiller<void>>> flushed_;  // Flush() callers

  bool handshake_done_ = false;  // SSL_do_handshake succeeded
  bool accepted_ = false;        // client: the server's ticket arrived
  bool established_ = false;     // Handshake() resolved
  bool refused_ = false;
  static constexpr int kTlsHandshake = 0x16;  // a TLS record's content type: handshake
  int first_byte_ = -1;                       // of what the peer sent, -1 before anything
  std::string plaintext_reply_;
  uint64_t key_update_interval_ = uint64_t{16} << 30;
  uint64_t encrypted_since_key_update_ = 0;
  std::string verify_error_;  // why our verification refused the peer's certificate
  std::optional<PeerCertificate> peer_;

  // Writes to the inner stream; declared last, so destroyed before what they use.
  kj::TaskSet tasks_;
};

}  // namespace replicator::net

#endif  // REPLICATOR_NET_TLS_H_
