#include "node/tls_files.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "node/durable_file.h"
#include "node/identity.h"

namespace replicator::node {
namespace {

namespace fs = std::filesystem;

std::string S(std::string_view s) { return std::string(s); }

std::string Join(const std::string& dir, std::string_view name) {
  return (fs::path(dir) / fs::path(S(name))).string();
}

bool Exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

absl::Status MustExist(const std::string& path, std::string_view what, std::string_view flag) {
  if (Exists(path)) return absl::OkStatus();
  return absl::NotFoundError(
      absl::StrCat(S(what), " ", path, " does not exist (", S(flag),
                   "); create it with `replicator cert ...` (see replicator --help)"));
}

// Writes `data` to `path` with `mode`; AlreadyExists naming the file unless
// `overwrite`.
absl::Status WriteNew(const std::string& path, const std::string& data, mode_t mode,
                      bool overwrite) {
  const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (overwrite ? O_TRUNC : O_EXCL);
  const int fd = open(path.c_str(), flags, mode);
  if (fd < 0) {
    if (errno == EEXIST) {
      return absl::AlreadyExistsError(
          absl::StrCat(path, " already exists; pass --overwrite to replace it"));
    }
    return ErrnoStatus(errno, absl::StrCat("cannot create ", path));
  }
  absl::Status status;
  if (fchmod(fd, mode) != 0) status = ErrnoStatus(errno, absl::StrCat("cannot chmod ", path));
  if (status.ok()) status = WriteAllAndSync(fd, data, path, "certificate file");
  close(fd);
  return status;
}

// Fails before anything is written if one of `paths` exists.
absl::Status NoneExist(std::initializer_list<std::string> paths, bool overwrite) {
  if (overwrite) return absl::OkStatus();
  for (const std::string& p : paths) {
    if (Exists(p)) {
      return absl::AlreadyExistsError(
          absl::StrCat(p, " already exists; pass --overwrite to replace it"));
    }
  }
  return absl::OkStatus();
}

absl::Status MakeDir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec)
    return absl::FailedPreconditionError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

struct Ca {
  std::string cert;
  std::string key;
};

absl::StatusOr<Ca> ReadCa(const std::string& certs_dir, const std::string& ca_key) {
  const std::string cert_path = Join(certs_dir, kCaCertFile);
  const std::string key_path = ca_key.empty() ? Join(certs_dir, kCaKeyFile) : ca_key;
  if (absl::Status s = MustExist(cert_path, "CA certificate", "--certs-dir"); !s.ok()) return s;
  if (!Exists(key_path)) {
    return absl::NotFoundError(absl::StrCat(
        "CA key ", key_path,
        " does not exist: create a CA with `replicator cert create-ca --certs-dir=DIR`, or "
        "pass --ca-key=FILE"));
  }
  auto cert = ReadWholeFile(cert_path, "CA certificate");
  if (!cert.ok()) return cert.status();
  auto key = ReadWholeFile(key_path, "CA key");
  if (!key.ok()) return key.status();
  return Ca{*std::move(cert), *std::move(key)};
}

}  // namespace

std::string ClientCertFile(std::string_view name) {
  return absl::StrCat("client.", S(name), ".crt");
}
std::string ClientKeyFile(std::string_view name) {
  return absl::StrCat("client.", S(name), ".key");
}

absl::StatusOr<std::optional<TlsPaths>> ResolveTlsPaths(const TlsFlags& flags,
                                                        const TlsHolder& holder,
                                                        const std::string& node_fallback_key) {
  const bool any =
      !flags.ca.empty() || !flags.cert.empty() || !flags.key.empty() || !flags.certs_dir.empty();
  if (flags.insecure) {
    if (any) {
      return absl::InvalidArgumentError(
          "--insecure cannot be combined with --certs-dir, --ca, --cert or --key");
    }
    return std::optional<TlsPaths>();
  }
  const bool node = holder.client.empty();
  if (!any) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no certificates: pass --certs-dir=DIR (holding ca.crt and ",
        node ? "node.crt" : ClientCertFile(holder.client),
        ", see `replicator cert --help`) or --ca=FILE --cert=FILE", node ? "" : " --key=FILE",
        "; or --insecure to run without TLS, authenticating no one (not for production)"));
  }
  TlsPaths paths;
  const std::string& dir = flags.certs_dir;
  const std::string cert_name = node ? S(kNodeCertFile) : ClientCertFile(holder.client);
  const std::string key_name = node ? S(kNodeKeyFile) : ClientKeyFile(holder.client);
  paths.ca = !flags.ca.empty() ? flags.ca : (dir.empty() ? "" : Join(dir, kCaCertFile));
  paths.cert = !flags.cert.empty() ? flags.cert : (dir.empty() ? "" : Join(dir, cert_name));
  paths.key = !flags.key.empty() ? flags.key : (dir.empty() ? "" : Join(dir, key_name));
  if (node && flags.key.empty() && (paths.key.empty() || !Exists(paths.key))) {
    paths.key = node_fallback_key;
  }
  if (paths.ca.empty()) return absl::InvalidArgumentError("--ca=FILE (or --certs-dir) is needed");
  if (paths.cert.empty()) {
    return absl::InvalidArgumentError("--cert=FILE (or --certs-dir) is needed");
  }
  if (paths.key.empty()) return absl::InvalidArgumentError("--key=FILE (or --certs-dir) is needed");
  if (absl::Status s =
          MustExist(paths.ca, "CA certificate", flags.ca.empty() ? "--certs-dir" : "--ca");
      !s.ok()) {
    return s;
  }
  if (absl::Status s =
          MustExist(paths.cert, "certificate", flags.cert.empty() ? "--certs-dir" : "--cert");
      !s.ok()) {
    return s;
  }
  if (absl::Status s = MustExist(paths.key, "key", flags.key.empty() ? "--certs-dir" : "--key");
      !s.ok()) {
    return s;
  }
  return std::optional<TlsPaths>(std::move(paths));
}

absl::StatusOr<TlsPem> ReadTlsFiles(const TlsPaths& paths) {
  TlsPem pem;
  auto ca = ReadWholeFile(paths.ca, "CA certificate");
  if (!ca.ok()) return ca.status();
  auto cert = ReadWholeFile(paths.cert, "certificate");
  if (!cert.ok()) return cert.status();
  auto key = ReadWholeFile(paths.key, "key");
  if (!key.ok()) return key.status();
  return TlsPem{*std::move(ca), *std::move(cert), *std::move(key)};
}

absl::Status ValidateClientName(std::string_view name) {
  bool ok = !name.empty() && name.size() <= 64 && name.front() != '.';
  for (char c : name) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '_' || c == '-');
  }
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "client name '", S(name), "' must be 1 to 64 of A-Z a-z 0-9 . _ - (not starting with .)"));
}

absl::Status CreateCaFiles(const std::string& certs_dir, bool overwrite, const std::string& name) {
  const std::string cert_path = Join(certs_dir, kCaCertFile);
  const std::string key_path = Join(certs_dir, kCaKeyFile);
  if (absl::Status s = NoneExist({cert_path, key_path}, overwrite); !s.ok()) return s;
  if (absl::Status s = MakeDir(certs_dir); !s.ok()) return s;
  auto ca = net::CreateCa(name);
  if (!ca.ok()) return ca.status();
  if (absl::Status s = WriteNew(key_path, ca->key_pem, 0600, overwrite); !s.ok()) return s;
  return WriteNew(cert_path, ca->cert_pem, 0644, overwrite);
}

absl::StatusOr<std::string> CreateNodeFiles(const std::string& certs_dir, const std::string& ca_key,
                                            const std::string& data_dir, bool overwrite) {
  if (data_dir.empty()) return absl::InvalidArgumentError("--data-dir is required");
  const std::string cert_path = Join(certs_dir, kNodeCertFile);
  const std::string key_path = Join(certs_dir, kNodeKeyFile);
  if (absl::Status s = NoneExist({cert_path, key_path}, overwrite); !s.ok()) return s;
  auto ca = ReadCa(certs_dir, ca_key);
  if (!ca.ok()) return ca.status();
  auto identity = LoadOrCreateIdentity(data_dir);
  if (!identity.ok()) return identity.status();
  const std::string identity_path = Join(data_dir, kIdentityKeyFile);
  auto identity_pem = ReadWholeFile(identity_path, "identity key");
  if (!identity_pem.ok()) return identity_pem.status();
  net::CertificateRequest request;
  request.subject_public_key = *identity_pem;
  request.common_name = identity->peer_id;
  request.role = net::Role::kNode;
  auto cert = net::CreateCertificate(ca->cert, ca->key, request);
  if (!cert.ok()) return cert.status();
  if (absl::Status s = WriteNew(key_path, *identity_pem, 0600, overwrite); !s.ok()) return s;
  if (absl::Status s = WriteNew(cert_path, *cert, 0644, overwrite); !s.ok()) return s;
  return identity->peer_id;
}

absl::Status CreateClientFiles(const std::string& certs_dir, const std::string& ca_key,
                               const std::string& name, net::Role role, bool overwrite) {
  if (absl::Status s = ValidateClientName(name); !s.ok()) return s;
  if (role == net::Role::kNode) {
    return absl::InvalidArgumentError(
        "a client's --role is read, write or admin; node certificates come from create-node");
  }
  const std::string cert_path = Join(certs_dir, ClientCertFile(name));
  const std::string key_path = Join(certs_dir, ClientKeyFile(name));
  if (absl::Status s = NoneExist({cert_path, key_path}, overwrite); !s.ok()) return s;
  auto ca = ReadCa(certs_dir, ca_key);
  if (!ca.ok()) return ca.status();
  auto key = net::CreateEd25519Key();
  if (!key.ok()) return key.status();
  net::CertificateRequest request;
  request.subject_public_key = key->public_key_pem;
  request.common_name = name;
  request.role = role;
  auto cert = net::CreateCertificate(ca->cert, ca->key, request);
  if (!cert.ok()) return cert.status();
  if (absl::Status s = WriteNew(key_path, key->private_key_pem, 0600, overwrite); !s.ok()) {
    return s;
  }
  return WriteNew(cert_path, *cert, 0644, overwrite);
}

absl::Status CheckNodeCertificate(const net::PeerCertificate& cert, const std::string& peer_id,
                                  const std::string& public_key, const std::string& cert_path) {
  if (cert.role != net::Role::kNode) {
    return absl::FailedPreconditionError(absl::StrCat(
        "certificate ", cert_path, " has role ", S(net::RoleName(cert.role)),
        ", not node: issue a node certificate with `replicator cert create-node --data-dir=...`"));
  }
  if (cert.public_key != public_key || cert.common_name != peer_id) {
    return absl::FailedPreconditionError(absl::StrCat(
        "certificate ", cert_path, " is for ", cert.common_name,
        ", not for this node's identity key (peer ", peer_id,
        "): issue one for this data dir with `replicator cert create-node --data-dir=DATA_DIR`"));
  }
  return absl::OkStatus();
}

}  // namespace replicator::node
