#include "node/identity.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <memory>
#include <system_error>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "node/durable_file.h"
#include "openssl/bio.h"
#include "openssl/err.h"
#include "openssl/evp.h"
#include "openssl/pem.h"

namespace replicator::node {
namespace {

constexpr char kAlphabet[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
constexpr size_t kEd25519KeyBytes = 32;
// multihash code "identity" and digest length 36, then the protobuf
// PublicKey: field 1 (Type) varint 1 = Ed25519, field 2 (Data) 32 bytes.
constexpr unsigned char kPeerIdPrefix[] = {0x00, 0x24, 0x08, 0x01, 0x12, 0x20};

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
using Bio = std::unique_ptr<BIO, BioFree>;

// Drains OpenSSL's thread-local error queue into one line, so a failure
// leaves nothing behind for the next caller on this thread.
std::string OpenSslErrors() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(code, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "no OpenSSL error detail" : out;
}

// Never prompts on the terminal for an encrypted key: an operator starting a
// daemon cannot answer, so an encrypted file simply fails to load.
int NoPassphrase(char*, int, int, void*) { return -1; }

// absl::StrCat wants Abseil's own string_view in this build of Abseil.
std::string S(std::string_view s) { return std::string(s); }

absl::StatusOr<Identity> IdentityOf(EVP_PKEY* pkey, const std::string& path) {
  std::array<unsigned char, kEd25519KeyBytes> raw;
  size_t length = raw.size();
  if (EVP_PKEY_get_raw_public_key(pkey, raw.data(), &length) != 1 || length != raw.size()) {
    return absl::InternalError(
        absl::StrCat("cannot extract the public key of ", path, ": ", OpenSslErrors()));
  }
  Identity id;
  id.public_key.assign(reinterpret_cast<const char*>(raw.data()), raw.size());
  absl::StatusOr<std::string> peer_id = PeerIdFromPublicKey(id.public_key);
  if (!peer_id.ok()) return peer_id.status();
  id.peer_id = *std::move(peer_id);
  return id;
}

absl::StatusOr<Identity> ParseKey(const std::string& pem, const std::string& path) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (bio == nullptr) return absl::ResourceExhaustedError("BIO_new_mem_buf failed");
  Pkey pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassphrase, nullptr));
  if (pkey == nullptr) {
    return absl::DataLossError(absl::StrCat(
        "identity key ", path,
        " is not an unencrypted PEM private key; restore it from a backup, or move it away to "
        "create a new identity (",
        OpenSslErrors(), ")"));
  }
  if (EVP_PKEY_get_id(pkey.get()) != EVP_PKEY_ED25519) {
    const char* type = EVP_PKEY_get0_type_name(pkey.get());
    return absl::FailedPreconditionError(absl::StrCat(
        "identity key ", path, " is a ", type ? type : "unknown", " key, not Ed25519"));
  }
  return IdentityOf(pkey.get(), path);
}

// Writes a new key to `path` unless one appears there first: the identity
// of the new key, or AlreadyExistsError when another process created the
// file meanwhile (load that one instead).
absl::StatusOr<Identity> CreateKey(const std::string& dir, const std::string& path) {
  Pkey pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (pkey == nullptr) {
    return absl::InternalError(absl::StrCat("cannot generate an Ed25519 key: ", OpenSslErrors()));
  }
  Bio bio(BIO_new(BIO_s_mem()));
  // PEM_write_bio_PrivateKey writes PKCS#8 ("BEGIN PRIVATE KEY").
  if (bio == nullptr ||
      PEM_write_bio_PrivateKey(bio.get(), pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return absl::InternalError(absl::StrCat("cannot encode the identity key: ", OpenSslErrors()));
  }
  char* pem = nullptr;
  const long pem_length = BIO_get_mem_data(bio.get(), &pem);

  // The temp name is unique per process; O_EXCL guards against a stale file
  // of a crashed earlier run with the same pid.
  const std::string temp = absl::StrCat(path, ".tmp.", getpid());
  unlink(temp.c_str());
  const int fd = open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("cannot create identity key ", temp));
  absl::Status status;
  // fchmod: the creation mode is subject to umask, which may only narrow it,
  // but be explicit about the one mode the file must have.
  if (fchmod(fd, 0600) != 0) status = ErrnoStatus(errno, absl::StrCat("cannot chmod ", temp));
  if (status.ok()) {
    status = WriteAllAndSync(fd, std::string(pem, static_cast<size_t>(pem_length)), temp,
                             "identity key");
  }
  close(fd);
  if (status.ok() && link(temp.c_str(), path.c_str()) != 0) {
    // EEXIST: another process created the key meanwhile; its key wins.
    status = errno == EEXIST
                 ? absl::AlreadyExistsError(path)
                 : ErrnoStatus(errno, absl::StrCat("cannot create identity key ", path));
  }
  unlink(temp.c_str());
  if (!status.ok()) return status;
  if (absl::Status s = SyncDir(dir); !s.ok()) return s;
  return IdentityOf(pkey.get(), path);
}

}  // namespace

absl::StatusOr<Identity> LoadOrCreateIdentity(const std::string& data_dir) {
  std::error_code ec;
  std::filesystem::create_directories(data_dir, ec);
  if (ec) {
    return ErrnoStatus(ec.value(), absl::StrCat("cannot create data dir ", data_dir));
  }
  const std::string path = absl::StrCat(data_dir, "/", S(kIdentityKeyFile));
  // Two rounds at most: a lost creation race loads the winner's key.
  for (int attempt = 0; attempt < 2; ++attempt) {
    absl::StatusOr<std::string> pem = ReadWholeFile(path, "identity key");
    if (pem.ok()) return ParseKey(*pem, path);
    if (!absl::IsNotFound(pem.status())) return pem.status();
    absl::StatusOr<Identity> created = CreateKey(data_dir, path);
    if (!absl::IsAlreadyExists(created.status())) return created;
  }
  return absl::InternalError(absl::StrCat("identity key ", path, " appeared and vanished"));
}

absl::StatusOr<std::string> PeerIdFromPublicKey(std::string_view public_key) {
  if (public_key.size() != kEd25519KeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat("an Ed25519 public key has ", kEd25519KeyBytes,
                                                   " bytes, not ", public_key.size()));
  }
  std::string bytes(reinterpret_cast<const char*>(kPeerIdPrefix), sizeof(kPeerIdPrefix));
  bytes.append(public_key);
  return Base58Encode(bytes);
}

absl::StatusOr<std::string> PublicKeyFromPeerId(std::string_view peer_id) {
  absl::StatusOr<std::string> bytes = Base58Decode(peer_id);
  if (!bytes.ok()) return bytes.status();
  const std::string_view prefix(reinterpret_cast<const char*>(kPeerIdPrefix),
                                sizeof(kPeerIdPrefix));
  if (bytes->size() != prefix.size() + kEd25519KeyBytes ||
      std::string_view(*bytes).substr(0, prefix.size()) != prefix) {
    return absl::InvalidArgumentError(
        absl::StrCat("peer id '", S(peer_id), "' is not an Ed25519 identity-multihash peer id"));
  }
  return bytes->substr(prefix.size());
}

std::string Base58Encode(std::string_view bytes) {
  size_t zeros = 0;
  while (zeros < bytes.size() && bytes[zeros] == '\0') ++zeros;
  // Base-58 digits, least significant first; log(256)/log(58) < 1.37.
  std::string digits;
  digits.reserve((bytes.size() - zeros) * 137 / 100 + 1);
  for (size_t i = zeros; i < bytes.size(); ++i) {
    unsigned carry = static_cast<unsigned char>(bytes[i]);
    for (char& d : digits) {
      carry += static_cast<unsigned>(d) << 8;
      d = static_cast<char>(carry % 58);
      carry /= 58;
    }
    while (carry > 0) {
      digits.push_back(static_cast<char>(carry % 58));
      carry /= 58;
    }
  }
  std::string out(zeros, '1');
  out.reserve(zeros + digits.size());
  for (auto it = digits.rbegin(); it != digits.rend(); ++it)
    out.push_back(kAlphabet[static_cast<unsigned char>(*it)]);
  return out;
}

absl::StatusOr<std::string> Base58Decode(std::string_view text) {
  std::array<int8_t, 256> value;
  value.fill(-1);
  for (int i = 0; i < 58; ++i)
    value[static_cast<unsigned char>(kAlphabet[i])] = static_cast<int8_t>(i);

  size_t ones = 0;
  while (ones < text.size() && text[ones] == '1') ++ones;
  // Base-256 bytes, least significant first; log(58)/log(256) < 0.74.
  std::string bytes;
  bytes.reserve((text.size() - ones) * 74 / 100 + 1);
  for (size_t i = ones; i < text.size(); ++i) {
    const int8_t v = value[static_cast<unsigned char>(text[i])];
    if (v < 0) {
      const unsigned char c = static_cast<unsigned char>(text[i]);
      const std::string shown = std::isprint(c) ? absl::StrCat("'", std::string(1, text[i]), "'")
                                                : absl::StrCat("0x", absl::Hex(c, absl::kZeroPad2));
      return absl::InvalidArgumentError(
          absl::StrCat("invalid base58 character ", shown, " at offset ", i));
    }
    unsigned carry = static_cast<unsigned>(v);
    for (char& b : bytes) {
      carry += static_cast<unsigned>(static_cast<unsigned char>(b)) * 58;
      b = static_cast<char>(carry & 0xff);
      carry >>= 8;
    }
    while (carry > 0) {
      bytes.push_back(static_cast<char>(carry & 0xff));
      carry >>= 8;
    }
  }
  std::string out(ones, '\0');
  out.append(bytes.rbegin(), bytes.rend());
  return out;
}

}  // namespace replicator::node
