#include "net/tls.h"

#include <fmt/format.h>
#include <kj/debug.h>
#include <string.h>

#include <algorithm>
#include <asio/post.hpp>
#include <utility>

#include "absl/status/status.h"
#include "net/openssl_util.h"

namespace replicator::net {

using internal::TakeOpenSslErrors;

namespace {

// Ciphertext read from the inner stream at a time.
constexpr size_t kReadBuffer = 64 << 10;
// A write waits for the stream's pending bytes (plaintext and ciphertext) to drop below this.
constexpr size_t kMaxUnsent = 4 << 20;
// Buffers that grew past this for one large message are given back once empty.
constexpr size_t kKeepCapacity = 1 << 20;

// The cipher suites, fastest first on CPUs with AES instructions. All three are TLS 1.3's.
constexpr const char* kCipherSuites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";

// Decrypted bytes kept for reads smaller than this: a TLS record's largest plaintext.
constexpr size_t kDecryptedBuffer = 16 << 10;

// SSL_get_error() needs an empty error queue before the call it explains. Clearing an empty
// queue costs more than looking at it, and this runs for every record.
void ClearErrors() {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

void Release(std::vector<kj::byte>& buffer) {
  buffer.clear();
  if (buffer.capacity() > kKeepCapacity) buffer.shrink_to_fit();
}

// True for the errors that mean a certificate was refused: an alert from the peer about ours,
// or our own verification of the peer's.
bool IsCertificateRefusal(unsigned long error) {
  if (ERR_GET_LIB(error) != ERR_LIB_SSL) return false;
  switch (ERR_GET_REASON(error)) {
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      return true;
    default:
      return false;
  }
}

std::string SubjectOf(X509* cert) {
  if (cert == nullptr) return "?";
  char buffer[256];
  X509_NAME_oneline(X509_get_subject_name(cert), buffer, sizeof(buffer));
  return buffer;
}

}  // namespace

// OpenSSL's callbacks into a TlsStream (found through SSL_get_app_data) and its BIO.
struct TlsCallbacks {
  static TlsStream* StreamOf(SSL* ssl) { return static_cast<TlsStream*>(SSL_get_app_data(ssl)); }

  // The BIO OpenSSL reads ciphertext from and writes it to: the stream's buffers.
  static int BioRead(BIO* bio, char* out, size_t size, size_t* read) {
    auto* self = static_cast<TlsStream*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    size_t available = self->in_end_ - self->in_begin_;
    if (available == 0) {
      *read = 0;
      if (!self->in_eof_) BIO_set_retry_read(bio);
      return 0;
    }
    size_t n = std::min(size, available);
    memcpy(out, self->in_.get() + self->in_begin_, n);
    self->in_begin_ += n;
    if (self->in_begin_ == self->in_end_) self->in_begin_ = self->in_end_ = 0;
    *read = n;
    return 1;
  }

  static int BioWrite(BIO* bio, const char* data, size_t size, size_t* written) {
    auto* self = static_cast<TlsStream*>(BIO_get_data(bio));
    BIO_clear_retry_flags(bio);
    auto* bytes = reinterpret_cast<const kj::byte*>(data);
    self->cipher_out_.insert(self->cipher_out_.end(), bytes, bytes + size);
    *written = size;
    return 1;
  }

  static long BioCtrl(BIO* bio, int command, long, void*) {
    auto* self = static_cast<TlsStream*>(BIO_get_data(bio));
    switch (command) {
      case BIO_CTRL_FLUSH:
        return 1;
      case BIO_CTRL_EOF:
        return self->in_eof_ && self->in_begin_ == self->in_end_ ? 1 : 0;
      case BIO_CTRL_PENDING:
        return static_cast<long>(self->in_end_ - self->in_begin_);
      default:
        return 0;
    }
  }

  static int BioCreate(BIO* bio) {
    BIO_set_init(bio, 1);
    return 1;
  }

  static BIO_METHOD* BioMethod() {
    static BIO_METHOD* method = [] {
      BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "replicator tls");
      BIO_meth_set_read_ex(m, BioRead);
      BIO_meth_set_write_ex(m, BioWrite);
      BIO_meth_set_ctrl(m, BioCtrl);
      BIO_meth_set_create(m, BioCreate);
      return m;
    }();
    return method;
  }

  // Chain verification, called for each certificate of the peer's chain, root first. On top of
  // OpenSSL's checks: the peer's own certificate must follow net/certs.h's conventions, and a
  // server must be a node.
  static int Verify(int preverified, X509_STORE_CTX* store) {
    SSL* ssl =
        static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    TlsStream* self = StreamOf(ssl);
    if (self == nullptr) return 0;
    X509* cert = X509_STORE_CTX_get_current_cert(store);
    int depth = X509_STORE_CTX_get_error_depth(store);
    if (!preverified) {
      if (self->verify_error_.empty()) {
        self->verify_error_ =
            fmt::format("certificate {} (depth {}): {}", SubjectOf(cert), depth,
                        X509_verify_cert_error_string(X509_STORE_CTX_get_error(store)));
      }
      return 0;
    }
    if (depth != 0) return 1;
    auto parsed = internal::ParseX509(cert);
    if (!parsed.ok()) {
      self->verify_error_ = std::string(parsed.status().message());
      X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
      return 0;
    }
    if (self->side_ == TlsStream::Side::kClient && parsed->role != Role::kNode) {
      self->verify_error_ =
          fmt::format("the server's certificate \"{}\" has role {}: only a node (role node) serves",
                      parsed->common_name, RoleName(parsed->role));
      X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
      return 0;
    }
    self->peer_ = std::move(*parsed);
    return 1;
  }

  // A client received a NewSessionTicket: the server accepted our certificate. The session is
  // not kept (return 0).
  static int NewSession(SSL* ssl, SSL_SESSION*) {
    if (TlsStream* self = StreamOf(ssl)) self->accepted_ = true;
    return 0;
  }

  // Never resume a session: every connection proves its certificate afresh.
  static SSL_TICKET_RETURN DecryptTicket(SSL*, SSL_SESSION*, const unsigned char*, size_t,
                                         SSL_TICKET_STATUS, void*) {
    return SSL_TICKET_RETURN_IGNORE;
  }
};

// ---------------------------------------------------------------------------------------------
// TlsContext

void TlsContext::Free::operator()(ssl_ctx_st* ctx) const { SSL_CTX_free(ctx); }

TlsContext::~TlsContext() = default;

absl::StatusOr<std::shared_ptr<const TlsContext>> TlsContext::Create(const TlsConfig& config) {
  std::string error;
  auto cas = internal::ReadCertificates(config.ca_cert_pem, &error);
  if (!cas) return absl::InvalidArgumentError("TLS CA certificate: malformed PEM: " + error);
  if (sk_X509_num(cas.get()) == 0) {
    return absl::InvalidArgumentError("TLS CA certificate: no PEM certificate");
  }
  for (int i = 0; i < sk_X509_num(cas.get()); ++i) {
    if (X509_check_ca(sk_X509_value(cas.get(), i)) != 1) {
      return absl::InvalidArgumentError(
          fmt::format("TLS CA certificate: {} is not a CA certificate (no CA:TRUE)",
                      SubjectOf(sk_X509_value(cas.get(), i))));
    }
  }
  auto chain = internal::ReadCertificates(config.cert_chain_pem, &error);
  if (!chain) return absl::InvalidArgumentError("TLS certificate: malformed PEM: " + error);
  if (sk_X509_num(chain.get()) == 0) {
    return absl::InvalidArgumentError("TLS certificate: no PEM certificate");
  }
  ERR_clear_error();
  internal::BioPtr key_bio = internal::MemoryBio(config.key_pem);
  internal::KeyPtr key(PEM_read_bio_PrivateKey(
      key_bio.get(), nullptr, [](char*, int, int, void*) { return -1; }, nullptr));
  if (!key) {
    return absl::InvalidArgumentError("TLS key: not an unencrypted PEM private key: " +
                                      TakeOpenSslErrors());
  }
  auto own = VerifyCertificate(config.cert_chain_pem, config.ca_cert_pem);
  if (!own.ok()) {
    return absl::InvalidArgumentError(
        fmt::format("TLS certificate: {}", std::string(own.status().message())));
  }
  if (config.handshake_timeout.count() <= 0) {
    return absl::InvalidArgumentError("TLS handshake timeout must be positive");
  }

  auto context = std::shared_ptr<TlsContext>(new TlsContext());
  context->certificate_ = std::move(*own);
  context->handshake_timeout_ = config.handshake_timeout;
  ERR_clear_error();
  SSL_CTX* ctx = SSL_CTX_new(TLS_method());
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new: " + TakeOpenSslErrors());
  context->ctx_.reset(ctx);
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  if (SSL_CTX_set_ciphersuites(ctx, kCipherSuites) != 1) {
    return absl::InternalError("TLS cipher suites: " + TakeOpenSslErrors());
  }
  // No fake ChangeCipherSpec records for middleboxes: both ends are ours.
  SSL_CTX_clear_options(ctx, SSL_OP_ENABLE_MIDDLEBOX_COMPAT);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  // Send only our own chain, never the CA (the peer has it).
  SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);

  // Trust exactly the configured CA certificates.
  X509_STORE* store = X509_STORE_new();
  for (int i = 0; i < sk_X509_num(cas.get()); ++i) {
    X509_STORE_add_cert(store, sk_X509_value(cas.get(), i));
  }
  SSL_CTX_set_cert_store(ctx, store);  // owns it
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, TlsCallbacks::Verify);

  if (SSL_CTX_use_certificate(ctx, sk_X509_value(chain.get(), 0)) != 1) {
    return absl::InvalidArgumentError("TLS certificate: " + TakeOpenSslErrors());
  }
  for (int i = 1; i < sk_X509_num(chain.get()); ++i) {
    if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain.get(), i)) != 1) {
      return absl::InvalidArgumentError("TLS certificate chain: " + TakeOpenSslErrors());
    }
  }
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        fmt::format("TLS key: it does not belong to the certificate \"{}\"",
                    context->certificate_.common_name));
  }

  // A server sends one ticket, right after it accepted the client's certificate (the client's
  // signal, see tls.h); no session is ever stored or resumed.
  SSL_CTX_set_num_tickets(ctx, 1);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, TlsCallbacks::NewSession);
  SSL_CTX_set_session_ticket_cb(ctx, nullptr, TlsCallbacks::DecryptTicket, nullptr);
  return std::shared_ptr<const TlsContext>(std::move(context));
}

// ---------------------------------------------------------------------------------------------
// TlsStream

void TlsStream::Free::operator()(ssl_st* ssl) const { SSL_free(ssl); }

TlsStream::TlsStream(kj::Own<kj::AsyncIoStream> inner, std::shared_ptr<const TlsContext> context,
                     Side side, asio::io_context& io)
    : inner_(kj::mv(inner)),
      context_(std::move(context)),
      side_(side),
      io_(io),
      ssl_(SSL_new(context_->native())),
      in_(std::make_unique<kj::byte[]>(kReadBuffer)),
      tasks_(*this) {
  KJ_REQUIRE(ssl_ != nullptr, "SSL_new failed", TakeOpenSslErrors().c_str());
  BIO* bio = BIO_new(TlsCallbacks::BioMethod());
  KJ_REQUIRE(bio != nullptr, "BIO_new failed", TakeOpenSslErrors().c_str());
  BIO_set_data(bio, this);
  SSL_set_bio(ssl_.get(), bio, bio);  // one reference, owned by the SSL
  SSL_set_app_data(ssl_.get(), this);
  if (side_ == Side::kClient) {
    SSL_set_connect_state(ssl_.get());
  } else {
    SSL_set_accept_state(ssl_.get());
  }
}

TlsStream::~TlsStream() noexcept(false) {}

kj::Promise<void> TlsStream::Handshake() { return HandshakeStep(); }

kj::Promise<void> TlsStream::HandshakeStep() {
  SSL* ssl = ssl_.get();
  for (;;) {
    ERR_clear_error();
    int result;
    if (!handshake_done_) {
      result = SSL_do_handshake(ssl);
      if (result == 1) {
        handshake_done_ = true;
        continue;
      }
    } else if (side_ == Side::kClient && !accepted_) {
      // Wait for the server's ticket (or its alert). Peek, so application data that came first
      // (it means we were accepted too) stays for the reader.
      kj::byte byte;
      size_t n = 0;
      result = SSL_peek_ex(ssl, &byte, 1, &n);
      if (result == 1) accepted_ = true;
      if (accepted_) continue;
    } else {
      break;
    }
    int error = SSL_get_error(ssl, result);
    SendCiphertext();
    if (error == SSL_ERROR_WANT_READ && !in_eof_) {
      return ReadInput().then(
          [this] { return HandshakeStep(); },
          [](kj::Exception&& e) -> kj::Promise<void> {
            return kj::Exception(e.getType(), __FILE__, __LINE__,
                                 kj::str("TLS handshake: transport failed: ", e.getDescription()));
          });
    }
    return HandshakeFailure(error);
  }
  if (!peer_.has_value()) {
    // Verification normally parsed it; a resumed session would not have run it.
    X509* cert = SSL_get0_peer_certificate(ssl);
    auto parsed = cert == nullptr
                      ? absl::StatusOr<PeerCertificate>(absl::InvalidArgumentError("none"))
                      : internal::ParseX509(cert);
    if (!parsed.ok()) {
      refused_ = true;
      return kj::Exception(
          kj::Exception::Type::FAILED, __FILE__, __LINE__,
          kj::str("TLS: no usable peer certificate: ", std::string(parsed.status().message())));
    }
    peer_ = std::move(*parsed);
  }
  established_ = true;
  SendCiphertext();
  return kj::READY_NOW;
}

kj::Exception TlsStream::HandshakeFailure(int ssl_error) {
  bool peer_refused_us = false;  // the peer's alert says it refused our certificate
  bool no_certificate = false;   // the peer presented none
  std::string reasons;
  while (unsigned long error = ERR_get_error()) {
    if (ERR_GET_LIB(error) == ERR_LIB_SSL) {
      int reason = ERR_GET_REASON(error);
      if (reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        no_certificate = true;
      } else if (reason != SSL_R_CERTIFICATE_VERIFY_FAILED && IsCertificateRefusal(error)) {
        peer_refused_us = true;
      }
    }
    const char* text = ERR_reason_error_string(error);
    if (!reasons.empty()) reasons += "; ";
    reasons += text != nullptr ? text : "unknown error";
  }
  if (side_ == Side::kServer && peer_spoke_plaintext() && !plaintext_reply_.empty()) {
    // A TLS alert would mean nothing to it: answer in the plaintext protocol instead.
    cipher_out_.assign(plaintext_reply_.begin(), plaintext_reply_.end());
  }
  SendCiphertext();  // the alert that tells the peer why, if OpenSSL wrote one
  kj::Exception::Type type = kj::Exception::Type::FAILED;
  std::string what;
  if (peer_spoke_plaintext()) {
    what = fmt::format(
        "TLS handshake: the peer does not speak TLS (its first byte is 0x{:02x}, not a TLS "
        "record): a plaintext client or server?",
        first_byte_);
  } else if (!verify_error_.empty()) {
    refused_ = true;
    what = "TLS handshake: refused the peer's certificate: " + verify_error_;
  } else if (no_certificate) {
    refused_ = true;
    what = "TLS handshake: the peer presented no certificate";
  } else if (peer_refused_us) {
    refused_ = true;
    what = fmt::format("TLS handshake: the peer refused this side's certificate ({})", reasons);
  } else if (in_eof_) {
    type = kj::Exception::Type::DISCONNECTED;
    what = "TLS handshake: the peer closed the connection (is it serving TLS?)";
  } else if (ssl_error == SSL_ERROR_SSL) {
    what = fmt::format("TLS handshake failed: {} (does the peer speak TLS 1.3?)", reasons);
  } else {
    what = fmt::format("TLS handshake failed (OpenSSL error {}): {}", ssl_error,
                       reasons.empty() ? "no detail" : reasons);
  }
  return kj::Exception(type, __FILE__, __LINE__, kj::str(what.c_str()));
}

kj::Promise<void> TlsStream::ReadInput() {
  if (in_begin_ > 0) {
    memmove(in_.get(), in_.get() + in_begin_, in_end_ - in_begin_);
    in_end_ -= in_begin_;
    in_begin_ = 0;
  }
  return inner_->tryRead(in_.get() + in_end_, 1, kReadBuffer - in_end_).then([this](size_t n) {
    if (n == 0) in_eof_ = true;
    if (first_byte_ < 0 && n > 0) first_byte_ = in_[in_end_];
    in_end_ += n;
  });
}

kj::Promise<size_t> TlsStream::tryRead(void* buffer, size_t min_bytes, size_t max_bytes) {
  if (!established_) {
    return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__,
                         kj::str("TLS read before the handshake completed"));
  }
  auto* out = static_cast<kj::byte*>(buffer);
  size_t got = TakeDecrypted(out, max_bytes);
  if (got >= min_bytes) return got;
  return ReadSome(out + got, min_bytes - got, max_bytes - got, got);
}

size_t TlsStream::TakeDecrypted(kj::byte* out, size_t max_bytes) {
  size_t n = std::min(max_bytes, plain_in_end_ - plain_in_begin_);
  if (n == 0) return 0;
  memcpy(out, plain_in_.get() + plain_in_begin_, n);
  plain_in_begin_ += n;
  if (plain_in_begin_ == plain_in_end_) plain_in_begin_ = plain_in_end_ = 0;
  return n;
}

kj::Promise<size_t> TlsStream::ReadSome(kj::byte* buffer, size_t min_bytes, size_t max_bytes,
                                        size_t already_read) {
  SSL* ssl = ssl_.get();
  for (;;) {
    // The decrypted buffer is empty here. A read of a whole record or more goes straight to the
    // caller's buffer; smaller ones take a whole record into ours, so Cap'n Proto's several
    // reads per message (and the many messages of one record) cost one SSL_read.
    const bool direct = max_bytes >= kDecryptedBuffer;
    if (!direct && !plain_in_) plain_in_ = std::make_unique<kj::byte[]>(kDecryptedBuffer);
    ClearErrors();
    size_t n = 0;
    int result = SSL_read_ex(ssl, direct ? buffer : plain_in_.get(),
                             direct ? max_bytes : kDecryptedBuffer, &n);
    if (result == 1) {
      if (!direct) {
        plain_in_begin_ = 0;
        plain_in_end_ = n;
        n = TakeDecrypted(buffer, max_bytes);
      }
      already_read += n;
      if (n >= min_bytes) return already_read;
      buffer += n;
      min_bytes -= n;
      max_bytes -= n;
      continue;
    }
    int error = SSL_get_error(ssl, result);
    // Reading may have produced output (an alert, an answer to a key update).
    SendCiphertext();
    if (error == SSL_ERROR_WANT_READ && !in_eof_) {
      return ReadInput().then([this, buffer, min_bytes, max_bytes, already_read] {
        return ReadSome(buffer, min_bytes, max_bytes, already_read);
      });
    }
    if (error == SSL_ERROR_ZERO_RETURN || in_eof_) {
      // close_notify, or the transport ended without one: end of stream either way (Cap'n
      // Proto's framing tells a message cut short from a clean end).
      ERR_clear_error();
      return already_read;
    }
    return kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__,
                         kj::str("TLS read failed: ", TakeOpenSslErrors().c_str()));
  }
}

kj::Promise<void> TlsStream::write(const void* buffer, size_t size) {
  kj::ArrayPtr<const kj::byte> piece(static_cast<const kj::byte*>(buffer), size);
  return write(kj::arrayPtr(&piece, 1));
}

kj::Promise<void> TlsStream::write(kj::ArrayPtr<const kj::ArrayPtr<const kj::byte>> pieces) {
  KJ_IF_MAYBE (error, write_error_) {
    return kj::cp(*error);
  }
  if (!established_) {
    return kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__,
                         kj::str("TLS write before the handshake completed"));
  }
  if (shutdown_requested_) {
    return kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__,
                         kj::str("TLS write after shutdownWrite()"));
  }
  for (auto piece : pieces) plain_out_.insert(plain_out_.end(), piece.begin(), piece.end());
  ScheduleFlush();
  if (Pending() <= kMaxUnsent) return kj::READY_NOW;
  auto paf = kj::newPromiseAndFulfiller<void>();
  drained_.push_back(kj::mv(paf.fulfiller));
  return kj::mv(paf.promise);
}

size_t TlsStream::Pending() const {
  return plain_out_.size() + cipher_out_.size() + cipher_sending_.size();
}

void TlsStream::ScheduleFlush() {
  if (flush_posted_) return;
  flush_posted_ = true;
  // Posted, so it runs after the rest of this turn of the KJ loop has written what it has to
  // write: one SSL_write for all of it.
  asio::post(io_, [this, alive = std::weak_ptr<bool>(alive_)] {
    if (alive.expired()) return;
    flush_posted_ = false;
    EncryptPending();
  });
}

void TlsStream::EncryptPending() {
  if (write_error_ != nullptr) return;
  if (!plain_out_.empty()) {
    if (encrypted_since_key_update_ >= key_update_interval_) {
      // Fresh keys for what follows; the peer need not update its own (it counts its own).
      ClearErrors();
      if (SSL_key_update(ssl_.get(), SSL_KEY_UPDATE_NOT_REQUESTED) != 1) {
        FailWrites(kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__,
                                 kj::str("TLS key update failed: ", TakeOpenSslErrors().c_str())));
        return;
      }
      encrypted_since_key_update_ = 0;
    }
    encrypted_since_key_update_ += plain_out_.size();
    ClearErrors();
    size_t written = 0;
    if (SSL_write_ex(ssl_.get(), plain_out_.data(), plain_out_.size(), &written) != 1 ||
        written != plain_out_.size()) {
      FailWrites(kj::Exception(kj::Exception::Type::DISCONNECTED, __FILE__, __LINE__,
                               kj::str("TLS write failed: ", TakeOpenSslErrors().c_str())));
      return;
    }
    Release(plain_out_);
  }
  if (shutdown_requested_ && !close_notify_sent_) {
    close_notify_sent_ = true;
    ERR_clear_error();
    SSL_shutdown(ssl_.get());  // writes close_notify; we do not wait for the peer's
    ERR_clear_error();
  }
  SendCiphertext();
}

void TlsStream::SendCiphertext() {
  if (sending_ || write_error_ != nullptr) return;
  if (cipher_out_.empty()) {
    AfterSend();
    return;
  }
  std::swap(cipher_out_, cipher_sending_);
  sending_ = true;
  tasks_.add(inner_->write(cipher_sending_.data(), cipher_sending_.size()).then([this] {
    sending_ = false;
    Release(cipher_sending_);
    SendCiphertext();
  }));
  AfterSend();
}

void TlsStream::AfterSend() {
  if (Pending() <= kMaxUnsent && !drained_.empty()) {
    auto drained = std::move(drained_);
    drained_.clear();
    for (auto& f : drained) f->fulfill();
  }
  if (sending_ || !cipher_out_.empty() || flush_posted_) return;
  if (!flushed_.empty() && plain_out_.empty()) {
    auto flushed = std::move(flushed_);
    flushed_.clear();
    for (auto& f : flushed) f->fulfill();
  }
  if (close_notify_sent_ && !inner_shut_down_ && plain_out_.empty()) {
    inner_shut_down_ = true;
    inner_->shutdownWrite();
  }
}

void TlsStream::FailWrites(kj::Exception error) {
  Release(plain_out_);
  Release(cipher_out_);
  auto drained = std::move(drained_);
  drained_.clear();
  for (auto& f : drained) f->reject(kj::cp(error));
  auto flushed = std::move(flushed_);
  flushed_.clear();
  for (auto& f : flushed) f->reject(kj::cp(error));
  write_error_ = kj::mv(error);
}

void TlsStream::taskFailed(kj::Exception&& exception) {
  sending_ = false;
  Release(cipher_sending_);
  FailWrites(kj::mv(exception));
}

kj::Promise<void> TlsStream::Flush() {
  KJ_IF_MAYBE (error, write_error_) {
    return kj::cp(*error);
  }
  if (established_) EncryptPending();
  if (!sending_ && cipher_out_.empty() && plain_out_.empty()) return kj::READY_NOW;
  auto paf = kj::newPromiseAndFulfiller<void>();
  flushed_.push_back(kj::mv(paf.fulfiller));
  return kj::mv(paf.promise);
}

kj::Promise<void> TlsStream::whenWriteDisconnected() { return inner_->whenWriteDisconnected(); }

void TlsStream::shutdownWrite() {
  if (!established_) {
    inner_->shutdownWrite();
    return;
  }
  shutdown_requested_ = true;
  ScheduleFlush();
}

void TlsStream::abortRead() { inner_->abortRead(); }

void TlsStream::getsockopt(int level, int option, void* value, kj::uint* length) {
  inner_->getsockopt(level, option, value, length);
}

void TlsStream::setsockopt(int level, int option, const void* value, kj::uint length) {
  inner_->setsockopt(level, option, value, length);
}

void TlsStream::getsockname(struct sockaddr* addr, kj::uint* length) {
  inner_->getsockname(addr, length);
}

void TlsStream::getpeername(struct sockaddr* addr, kj::uint* length) {
  inner_->getpeername(addr, length);
}

}  // namespace replicator::net
