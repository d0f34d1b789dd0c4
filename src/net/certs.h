// Certificates for Replicator's TLS transport: a private certificate authority (the
// federation's trust root), and certificates it issues to nodes and clients. Pure functions on
// PEM text (OpenSSL 3); no files, no shared state, thread-safe.
//
// Conventions (what every certificate issued here says, and what the transport checks):
//   - Every key is Ed25519: the CA's, each node's and each client's.
//   - Subject CN is the holder's name: a node's peer id ("12D3KooW...", derived from the very key
//     the certificate carries), or a client's user name.
//   - Subject OU is the holder's role, exactly one of `node`, `read`, `write`, `admin`
//     (RoleName). A node's certificate is issued for the node's existing identity key
//     (DATA_DIR/identity.key), so the key the TLS handshake proves IS the node's identity.
//   - Node certificates may act as TLS server and client (extendedKeyUsage serverAuth,
//     clientAuth); client certificates only as TLS client (clientAuth).
//   - Validity starts an hour before issue (clock skew between machines) and never ends after
//     the issuing CA's.
//
// Example:
//   auto ca = net::CreateCa("my federation", net::kDefaultCaValidity);
//   auto key = net::CreateEd25519Key();
//   net::CertificateRequest request{.subject_public_key = key->public_key_pem,
//                                   .common_name = "alice", .role = net::Role::kWrite};
//   auto cert = net::CreateCertificate(ca->cert_pem, ca->key_pem, request);
//   auto parsed = net::VerifyCertificate(*cert, ca->cert_pem);  // role kWrite, CN "alice"
#ifndef REPLICATOR_NET_CERTS_H_
#define REPLICATOR_NET_CERTS_H_

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace replicator::net {

// What a certificate's holder may do (its Subject OU).
enum class Role {
  kNode,   // a replicatord of the federation: Peer and Directory faces
  kRead,   // a client that may get and status
  kWrite,  // ... and put
  kAdmin,  // ... and change membership
};

// "node", "read", "write", "admin".
std::string_view RoleName(Role role);
// The inverse; InvalidArgument naming the text and the four valid names otherwise.
absl::StatusOr<Role> ParseRole(std::string_view name);

using Clock = std::chrono::system_clock;

inline constexpr std::chrono::hours kDefaultCaValidity{24 * 365 * 10};
inline constexpr std::chrono::hours kDefaultCertificateValidity{24 * 365 * 5};

// A key pair and its certificate, PEM: the key as PKCS#8 ("BEGIN PRIVATE KEY", the format of
// identity.key), the certificate as "BEGIN CERTIFICATE".
struct CertificateAuthority {
  std::string cert_pem;
  std::string key_pem;
};

// A fresh Ed25519 key: the private key as PKCS#8 PEM, the public key as SubjectPublicKeyInfo
// PEM ("BEGIN PUBLIC KEY") and as its 32 raw bytes.
struct Ed25519Key {
  std::string private_key_pem;
  std::string public_key_pem;
  std::string public_key;
};
absl::StatusOr<Ed25519Key> CreateEd25519Key();

// The 32 raw bytes of an Ed25519 public key given as a public key PEM, a private key PEM (its
// public half) or the 32 raw bytes themselves. InvalidArgument for anything else, naming what
// was wrong (malformed PEM, a key that is not Ed25519, an encrypted key).
absl::StatusOr<std::string> Ed25519PublicKey(std::string_view key);

// A new CA: a fresh Ed25519 key and a self-signed certificate with Subject CN = `name`,
// basicConstraints critical CA:TRUE (no intermediates below it: pathlen 0), keyUsage critical
// keyCertSign, cRLSign. InvalidArgument for an empty name or a non-positive validity.
absl::StatusOr<CertificateAuthority> CreateCa(std::string_view name,
                                              std::chrono::seconds validity = kDefaultCaValidity);

struct CertificateRequest {
  // Ed25519, in any form Ed25519PublicKey() reads: a node passes its identity.key.
  std::string subject_public_key;
  std::string common_name;  // a node's peer id, or a client's user name
  Role role = Role::kRead;
  std::chrono::seconds validity = kDefaultCertificateValidity;
  // Default: an hour before now. Tests set it to issue certificates that expired long ago.
  std::optional<Clock::time_point> not_before;
  // Optional subjectAltName entries. Nothing in Replicator checks them (peers are named by the
  // CN); other TLS tools may want them.
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;
};

// A certificate for `request`, signed by the CA, PEM. InvalidArgument for a bad request (empty
// or over-long CN, a key that is not Ed25519, a malformed SAN, non-positive validity) or a CA
// that is not one (not a CA certificate, key not matching it, not Ed25519).
absl::StatusOr<std::string> CreateCertificate(std::string_view ca_cert_pem,
                                              std::string_view ca_key_pem,
                                              const CertificateRequest& request);

// What Replicator reads from a certificate.
struct PeerCertificate {
  std::string common_name;
  Role role = Role::kRead;
  std::string public_key;  // 32 raw Ed25519 bytes
  Clock::time_point not_before;
  Clock::time_point not_after;
  std::string issuer_common_name;
  std::string serial;  // hex
};

// Reads the first certificate of `pem`, without checking who signed it or when it is valid.
// InvalidArgument, saying which: not a PEM certificate, its key is not Ed25519, no (or more
// than one) CN, no OU or more than one, an OU that is not a role.
absl::StatusOr<PeerCertificate> ParseCertificate(std::string_view pem);

// ParseCertificate, once the certificate (the first of `cert_chain_pem`, with any
// intermediates after it) is found to chain to one of the CA certificates in `ca_pem` and to be
// valid at `at`. PermissionDenied naming OpenSSL's reason ("certificate has expired", "unable to
// get local issuer certificate", ...) when it does not verify; InvalidArgument for malformed
// input.
absl::StatusOr<PeerCertificate> VerifyCertificate(std::string_view cert_chain_pem,
                                                  std::string_view ca_pem,
                                                  Clock::time_point at = Clock::now());

}  // namespace replicator::net

#endif  // REPLICATOR_NET_CERTS_H_
