// TLS certificate files on disk: where a node or a client finds its CA
// certificate, certificate and key (CockroachDB's --certs-dir layout, with
// --ca/--cert/--key overriding single files), and creating them for
// `replicator cert ...` and the local launcher. Plain functions doing their
// own file I/O; thread-safe.
//
// A certs dir holds:
//   ca.crt                the federation's CA certificate(s) (several, concatenated, while
//                         rotating to a new CA)
//   ca.key                the CA's key: only where certificates are issued, never on a node
//   node.crt, node.key    a node's certificate, for its identity key (node.key is a copy of
//                         DATA_DIR/identity.key)
//   client.NAME.crt/.key  the certificate of client (user) NAME
//
//   TlsFlags flags{.certs_dir = "/etc/replicator/certs"};
//   auto paths = ResolveTlsPaths(flags, TlsHolder::Node(), data_dir + "/identity.key");
//   auto pem = ReadTlsFiles(**paths);  // then net::TlsContext::Create({pem->ca, ...})
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "net/certs.h"

namespace replicator::node {

inline constexpr std::string_view kCaCertFile = "ca.crt";
inline constexpr std::string_view kCaKeyFile = "ca.key";
inline constexpr std::string_view kNodeCertFile = "node.crt";
inline constexpr std::string_view kNodeKeyFile = "node.key";
std::string ClientCertFile(std::string_view name);  // "client.NAME.crt"
std::string ClientKeyFile(std::string_view name);   // "client.NAME.key"

// The transport flags every binary takes.
struct TlsFlags {
  std::string ca;         // --ca
  std::string cert;       // --cert
  std::string key;        // --key
  std::string certs_dir;  // --certs-dir
  bool insecure = false;  // --insecure
};

// Whose files to look for in a certs dir: a node's, or client NAME's.
struct TlsHolder {
  std::string client;  // empty: a node
  static TlsHolder Node() { return TlsHolder{}; }
  static TlsHolder Client(std::string name) { return TlsHolder{std::move(name)}; }
};

struct TlsPaths {
  std::string ca;
  std::string cert;
  std::string key;
};

// The files `flags` name for `holder`; nullopt with --insecure. --ca,
// --cert and --key override the certs dir's files. A node without --key and
// without node.key in its certs dir uses `node_fallback_key` (its
// DATA_DIR/identity.key).
// FailedPrecondition when neither certificates nor --insecure are given
// (the message says what to pass); InvalidArgument for --insecure together
// with certificate flags, or an incomplete set; NotFound naming a file that
// does not exist.
absl::StatusOr<std::optional<TlsPaths>> ResolveTlsPaths(const TlsFlags& flags,
                                                        const TlsHolder& holder,
                                                        const std::string& node_fallback_key = "");

// The PEM text of the three files; NotFound / PermissionDenied naming a file.
struct TlsPem {
  std::string ca;
  std::string cert;
  std::string key;
};
absl::StatusOr<TlsPem> ReadTlsFiles(const TlsPaths& paths);

// A client name usable as a CN and a file name: 1..64 of [A-Za-z0-9._-], not
// starting with '.'. InvalidArgument otherwise.
absl::Status ValidateClientName(std::string_view name);

// `replicator cert create-ca`: a new CA in `certs_dir` (created, mode 0700):
// ca.crt and ca.key (0600). AlreadyExists naming the file unless `overwrite`.
absl::Status CreateCaFiles(const std::string& certs_dir, bool overwrite,
                           const std::string& name = "Replicator CA");

// `replicator cert create-node`: node.crt (CN = the node's peer id) and
// node.key (a copy of its identity key) in `certs_dir`, signed by the CA
// whose certificate is certs_dir/ca.crt and key `ca_key` (empty:
// certs_dir/ca.key). The identity is DATA_DIR/identity.key, created if the
// data dir has none. Returns the peer id.
absl::StatusOr<std::string> CreateNodeFiles(const std::string& certs_dir, const std::string& ca_key,
                                            const std::string& data_dir, bool overwrite);

// `replicator cert create-client NAME --role=...`: client.NAME.crt and
// client.NAME.key (a fresh Ed25519 key, 0600) in `certs_dir`.
absl::Status CreateClientFiles(const std::string& certs_dir, const std::string& ca_key,
                               const std::string& name, net::Role role, bool overwrite);

// A node's certificate must be for its own identity: its key is the
// identity's public key and its CN the peer id. FailedPrecondition saying
// what to do otherwise.
absl::Status CheckNodeCertificate(const net::PeerCertificate& cert, const std::string& peer_id,
                                  const std::string& public_key, const std::string& cert_path);

}  // namespace replicator::node
