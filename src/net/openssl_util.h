// Internal to src/net: owning pointers for OpenSSL objects, and OpenSSL's thread-local error
// queue as text. Not part of the net layer's interface.
#ifndef REPLICATOR_NET_OPENSSL_UTIL_H_
#define REPLICATOR_NET_OPENSSL_UTIL_H_

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "net/certs.h"

namespace replicator::net::internal {

template <auto Free>
struct OpenSslDeleter {
  template <typename T>
  void operator()(T* p) const {
    Free(p);
  }
};

using BioPtr = std::unique_ptr<BIO, OpenSslDeleter<BIO_free_all>>;
using BignumPtr = std::unique_ptr<BIGNUM, OpenSslDeleter<BN_free>>;
using KeyPtr = std::unique_ptr<EVP_PKEY, OpenSslDeleter<EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, OpenSslDeleter<X509_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, OpenSslDeleter<X509_STORE_free>>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, OpenSslDeleter<X509_STORE_CTX_free>>;
using X509ExtensionPtr = std::unique_ptr<X509_EXTENSION, OpenSslDeleter<X509_EXTENSION_free>>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, OpenSslDeleter<SSL_CTX_free>>;
using SslPtr = std::unique_ptr<SSL, OpenSslDeleter<SSL_free>>;

struct X509StackDeleter {
  void operator()(STACK_OF(X509) * stack) const { sk_X509_pop_free(stack, X509_free); }
};
using X509StackPtr = std::unique_ptr<STACK_OF(X509), X509StackDeleter>;

// Drains OpenSSL's error queue of the calling thread: "reason; reason", or `fallback` if the
// queue was empty.
std::string TakeOpenSslErrors(std::string_view fallback = "unknown OpenSSL error");

// A read-only memory BIO over `text` (which must outlive it).
BioPtr MemoryBio(std::string_view text);

// Every certificate in a PEM text, in order. Empty if there is none; fails (nullptr) only on a
// malformed block.
X509StackPtr ReadCertificates(std::string_view pem, std::string* error);

// ParseCertificate of a certificate already read (the TLS handshake's peer certificate).
absl::StatusOr<PeerCertificate> ParseX509(X509* cert);

}  // namespace replicator::net::internal

#endif  // REPLICATOR_NET_OPENSSL_UTIL_H_
