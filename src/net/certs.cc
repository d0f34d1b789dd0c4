#include "net/certs.h"

#include <fmt/format.h>
#include <openssl/asn1.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <string>

#include "absl/status/status.h"
#include "net/openssl_util.h"

namespace replicator::net {

namespace internal {

std::string TakeOpenSslErrors(std::string_view fallback) {
  std::string text;
  while (unsigned long error = ERR_get_error()) {
    if (!text.empty()) text += "; ";
    if (const char* reason = ERR_reason_error_string(error)) {
      text += reason;
    } else {
      std::array<char, 256> buffer;
      ERR_error_string_n(error, buffer.data(), buffer.size());
      text += buffer.data();
    }
  }
  return text.empty() ? std::string(fallback) : text;
}

BioPtr MemoryBio(std::string_view text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

X509StackPtr ReadCertificates(std::string_view pem, std::string* error) {
  ERR_clear_error();
  X509StackPtr certs(sk_X509_new_null());
  BioPtr bio = MemoryBio(pem);
  if (!certs || !bio) {
    *error = TakeOpenSslErrors("out of memory");
    return nullptr;
  }
  for (;;) {
    X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr);
    if (cert == nullptr) break;
    sk_X509_push(certs.get(), cert);
  }
  // The loop ends at the first block that is not a certificate: the end of the text, or junk.
  unsigned long last = ERR_peek_last_error();
  if (last != 0 &&
      !(ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE)) {
    *error = TakeOpenSslErrors();
    return nullptr;
  }
  ERR_clear_error();
  return certs;
}

namespace {

std::string Utf8(const ASN1_STRING* value) {
  unsigned char* out = nullptr;
  int length = ASN1_STRING_to_UTF8(&out, value);
  if (length < 0) return "";
  std::string text(reinterpret_cast<char*>(out), static_cast<size_t>(length));
  OPENSSL_free(out);
  return text;
}

// Every value of attribute `nid` in `name`.
std::vector<std::string> NameEntries(const X509_NAME* name, int nid) {
  std::vector<std::string> values;
  for (int i = X509_NAME_get_index_by_NID(name, nid, -1); i >= 0;
       i = X509_NAME_get_index_by_NID(name, nid, i)) {
    values.push_back(Utf8(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i))));
  }
  return values;
}

absl::StatusOr<Clock::time_point> ToTimePoint(const ASN1_TIME* time) {
  struct tm tm;
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) {
    return absl::InvalidArgumentError("certificate has a malformed validity time");
  }
  return Clock::from_time_t(timegm(&tm));
}

}  // namespace

absl::StatusOr<PeerCertificate> ParseX509(X509* cert) {
  PeerCertificate parsed;
  const X509_NAME* subject = X509_get_subject_name(cert);
  std::vector<std::string> names = NameEntries(subject, NID_commonName);
  if (names.size() != 1 || names[0].empty()) {
    return absl::InvalidArgumentError(fmt::format(
        "certificate must name its holder in exactly one Subject CN (it has {})", names.size()));
  }
  parsed.common_name = names[0];
  const std::string who = fmt::format("certificate \"{}\"", parsed.common_name);

  EVP_PKEY* key = X509_get0_pubkey(cert);
  if (key == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError(who + " has no readable public key");
  }
  if (EVP_PKEY_get_id(key) != EVP_PKEY_ED25519) {
    return absl::InvalidArgumentError(
        fmt::format("{} has a {} key, not Ed25519", who, OBJ_nid2sn(EVP_PKEY_get_base_id(key))));
  }
  std::array<unsigned char, 32> raw;
  size_t raw_length = raw.size();
  if (EVP_PKEY_get_raw_public_key(key, raw.data(), &raw_length) != 1 || raw_length != 32) {
    ERR_clear_error();
    return absl::InvalidArgumentError(who + " has a malformed Ed25519 key");
  }
  parsed.public_key.assign(reinterpret_cast<const char*>(raw.data()), raw_length);

  std::vector<std::string> units = NameEntries(subject, NID_organizationalUnitName);
  if (units.size() != 1) {
    return absl::InvalidArgumentError(fmt::format(
        "{} must carry its role in exactly one Subject OU (node, read, write or admin); it has "
        "{}",
        who, units.size()));
  }
  auto role = ParseRole(units[0]);
  if (!role.ok()) {
    return absl::InvalidArgumentError(
        fmt::format("{}: Subject OU: {}", who, std::string(role.status().message())));
  }
  parsed.role = *role;

  auto not_before = ToTimePoint(X509_get0_notBefore(cert));
  if (!not_before.ok()) return not_before.status();
  auto not_after = ToTimePoint(X509_get0_notAfter(cert));
  if (!not_after.ok()) return not_after.status();
  parsed.not_before = *not_before;
  parsed.not_after = *not_after;

  std::vector<std::string> issuers = NameEntries(X509_get_issuer_name(cert), NID_commonName);
  if (!issuers.empty()) parsed.issuer_common_name = issuers[0];
  BignumPtr serial(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (serial) {
    char* hex = BN_bn2hex(serial.get());
    if (hex != nullptr) {
      parsed.serial = hex;
      OPENSSL_free(hex);
    }
  }
  ERR_clear_error();
  return parsed;
}

}  // namespace internal

using internal::BignumPtr;
using internal::BioPtr;
using internal::KeyPtr;
using internal::MemoryBio;
using internal::TakeOpenSslErrors;
using internal::X509Ptr;

namespace {

constexpr std::string_view kRoleNames[] = {"node", "read", "write", "admin"};
// X.509's upper bound on a CN (RFC 5280 ub-common-name).
constexpr size_t kMaxCommonName = 64;

// A PEM pass phrase callback that refuses: an encrypted key is an error, never a prompt on the
// terminal.
int NoPassPhrase(char*, int, int, void*) { return -1; }

std::string CertificateToPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return "";
  BUF_MEM* memory = nullptr;
  BIO_get_mem_ptr(bio.get(), &memory);
  return std::string(memory->data, memory->length);
}

std::string KeyToPem(EVP_PKEY* key, bool private_key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio) return "";
  int ok = private_key
               ? PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr)
               : PEM_write_bio_PUBKEY(bio.get(), key);
  if (ok != 1) return "";
  BUF_MEM* memory = nullptr;
  BIO_get_mem_ptr(bio.get(), &memory);
  return std::string(memory->data, memory->length);
}

absl::StatusOr<KeyPtr> NewEd25519Key() {
  ERR_clear_error();
  KeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"));
  if (!key) {
    return absl::InternalError("cannot create an Ed25519 key: " + TakeOpenSslErrors());
  }
  return key;
}

absl::StatusOr<KeyPtr> ReadPrivateKey(std::string_view pem, std::string_view what) {
  ERR_clear_error();
  BioPtr bio = MemoryBio(pem);
  KeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, NoPassPhrase, nullptr));
  if (!key) {
    return absl::InvalidArgumentError(
        fmt::format("{} is not a PEM private key (an unencrypted PKCS#8 \"BEGIN PRIVATE KEY\" "
                    "block): {}",
                    what, TakeOpenSslErrors()));
  }
  return key;
}

absl::StatusOr<X509Ptr> ReadOneCertificate(std::string_view pem, std::string_view what) {
  std::string error;
  auto certs = internal::ReadCertificates(pem, &error);
  if (!certs) {
    return absl::InvalidArgumentError(fmt::format("{} is malformed PEM: {}", what, error));
  }
  if (sk_X509_num(certs.get()) == 0) {
    return absl::InvalidArgumentError(
        fmt::format("{} holds no PEM certificate (\"BEGIN CERTIFICATE\" block)", what));
  }
  X509* first = sk_X509_value(certs.get(), 0);
  X509_up_ref(first);
  return X509Ptr(first);
}

bool IsEd25519(EVP_PKEY* key) { return EVP_PKEY_get_id(key) == EVP_PKEY_ED25519; }

absl::StatusOr<KeyPtr> Ed25519PublicKeyObject(std::string_view key) {
  auto raw = Ed25519PublicKey(key);
  if (!raw.ok()) return raw.status();
  KeyPtr object(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(raw->data()), raw->size()));
  if (!object) return absl::InternalError("cannot load an Ed25519 key: " + TakeOpenSslErrors());
  return object;
}

absl::Status CheckName(std::string_view name, std::string_view what) {
  if (name.empty()) return absl::InvalidArgumentError(fmt::format("{} is empty", what));
  if (name.size() > kMaxCommonName) {
    return absl::InvalidArgumentError(
        fmt::format("{} \"{}\" is longer than {} bytes", what, name, kMaxCommonName));
  }
  for (char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      return absl::InvalidArgumentError(fmt::format("{} contains a control character", what));
    }
  }
  return absl::OkStatus();
}

absl::Status AddNameEntry(X509_NAME* name, const char* field, std::string_view value) {
  if (X509_NAME_add_entry_by_txt(name, field, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(value.data()),
                                 static_cast<int>(value.size()), -1, 0) != 1) {
    return absl::InvalidArgumentError(
        fmt::format("cannot set the Subject {} \"{}\": {}", field, value, TakeOpenSslErrors()));
  }
  return absl::OkStatus();
}

absl::Status AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, issuer, cert, nullptr, nullptr, 0);
  internal::X509ExtensionPtr extension(X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str()));
  if (!extension || X509_add_ext(cert, extension.get(), -1) != 1) {
    return absl::InvalidArgumentError(fmt::format("cannot add the {} extension \"{}\": {}",
                                                  OBJ_nid2ln(nid), value, TakeOpenSslErrors()));
  }
  return absl::OkStatus();
}

absl::Status SetRandomSerial(X509* cert) {
  // 127 random bits: positive and at most 20 octets, as RFC 5280 asks.
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) {
    return absl::InternalError("no random bytes for a serial number: " + TakeOpenSslErrors());
  }
  bytes[0] &= 0x7f;
  bytes[0] |= 0x40;  // never a short serial
  BignumPtr serial(BN_bin2bn(bytes, sizeof(bytes), nullptr));
  if (!serial || BN_to_ASN1_INTEGER(serial.get(), X509_get_serialNumber(cert)) == nullptr) {
    return absl::InternalError("cannot set a serial number: " + TakeOpenSslErrors());
  }
  return absl::OkStatus();
}

absl::Status SetValidity(X509* cert, Clock::time_point not_before, Clock::time_point not_after) {
  if (ASN1_TIME_set(X509_getm_notBefore(cert), Clock::to_time_t(not_before)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert), Clock::to_time_t(not_after)) == nullptr) {
    return absl::InvalidArgumentError("cannot set the validity period: " + TakeOpenSslErrors());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Sign(X509* cert, EVP_PKEY* key) {
  // Ed25519 signs the message itself: no separate digest.
  if (X509_sign(cert, key, nullptr) <= 0) {
    return absl::InternalError("cannot sign the certificate: " + TakeOpenSslErrors());
  }
  std::string pem = CertificateToPem(cert);
  if (pem.empty()) return absl::InternalError("cannot write PEM: " + TakeOpenSslErrors());
  return pem;
}

Clock::time_point DefaultNotBefore() {
  return std::chrono::time_point_cast<std::chrono::seconds>(Clock::now()) - std::chrono::hours(1);
}

}  // namespace

std::string_view RoleName(Role role) { return kRoleNames[static_cast<int>(role)]; }

absl::StatusOr<Role> ParseRole(std::string_view name) {
  for (size_t i = 0; i < std::size(kRoleNames); ++i) {
    if (name == kRoleNames[i]) return static_cast<Role>(i);
  }
  return absl::InvalidArgumentError(
      fmt::format("\"{}\" is not a role: expected node, read, write or admin", name));
}

absl::StatusOr<Ed25519Key> CreateEd25519Key() {
  auto key = NewEd25519Key();
  if (!key.ok()) return key.status();
  Ed25519Key result;
  result.private_key_pem = KeyToPem(key->get(), /*private_key=*/true);
  result.public_key_pem = KeyToPem(key->get(), /*private_key=*/false);
  std::array<unsigned char, 32> raw;
  size_t length = raw.size();
  if (result.private_key_pem.empty() || result.public_key_pem.empty() ||
      EVP_PKEY_get_raw_public_key(key->get(), raw.data(), &length) != 1) {
    return absl::InternalError("cannot write an Ed25519 key: " + TakeOpenSslErrors());
  }
  result.public_key.assign(reinterpret_cast<const char*>(raw.data()), length);
  return result;
}

absl::StatusOr<std::string> Ed25519PublicKey(std::string_view key) {
  if (key.find("-----BEGIN") == std::string_view::npos) {
    if (key.size() == 32) return std::string(key);
    return absl::InvalidArgumentError(fmt::format(
        "an Ed25519 public key is PEM or 32 raw bytes; this is {} bytes and not PEM", key.size()));
  }
  ERR_clear_error();
  KeyPtr object;
  if (key.find("PRIVATE KEY-----") != std::string_view::npos) {
    auto private_key = ReadPrivateKey(key, "the key");
    if (!private_key.ok()) return private_key.status();
    object = std::move(*private_key);
  } else {
    BioPtr bio = MemoryBio(key);
    object.reset(PEM_read_bio_PUBKEY(bio.get(), nullptr, NoPassPhrase, nullptr));
    if (!object) {
      return absl::InvalidArgumentError("the key is not a PEM public key (\"BEGIN PUBLIC KEY\"): " +
                                        TakeOpenSslErrors());
    }
  }
  if (!IsEd25519(object.get())) {
    return absl::InvalidArgumentError(
        fmt::format("the key is {}, not Ed25519", OBJ_nid2sn(EVP_PKEY_get_base_id(object.get()))));
  }
  std::array<unsigned char, 32> raw;
  size_t length = raw.size();
  if (EVP_PKEY_get_raw_public_key(object.get(), raw.data(), &length) != 1 || length != 32) {
    return absl::InvalidArgumentError("malformed Ed25519 key: " + TakeOpenSslErrors());
  }
  return std::string(reinterpret_cast<const char*>(raw.data()), length);
}

absl::StatusOr<CertificateAuthority> CreateCa(std::string_view name,
                                              std::chrono::seconds validity) {
  if (absl::Status status = CheckName(name, "CA name"); !status.ok()) return status;
  if (validity.count() <= 0) return absl::InvalidArgumentError("CA validity must be positive");
  auto key = NewEd25519Key();
  if (!key.ok()) return key.status();
  ERR_clear_error();
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) {
    return absl::InternalError("cannot create a certificate: " + TakeOpenSslErrors());
  }
  if (absl::Status s = SetRandomSerial(cert.get()); !s.ok()) return s;
  X509_NAME* subject = X509_get_subject_name(cert.get());
  if (absl::Status s = AddNameEntry(subject, "CN", name); !s.ok()) return s;
  X509_set_issuer_name(cert.get(), subject);
  Clock::time_point not_before = DefaultNotBefore();
  if (absl::Status s = SetValidity(cert.get(), not_before, not_before + validity); !s.ok()) {
    return s;
  }
  X509_set_pubkey(cert.get(), key->get());
  for (auto [nid, value] :
       {std::pair<int, std::string>{NID_basic_constraints, "critical,CA:TRUE,pathlen:0"},
        {NID_key_usage, "critical,keyCertSign,cRLSign"},
        {NID_subject_key_identifier, "hash"},
        {NID_authority_key_identifier, "keyid:always"}}) {
    if (absl::Status s = AddExtension(cert.get(), cert.get(), nid, value); !s.ok()) return s;
  }
  auto pem = Sign(cert.get(), key->get());
  if (!pem.ok()) return pem.status();
  CertificateAuthority ca;
  ca.cert_pem = std::move(*pem);
  ca.key_pem = KeyToPem(key->get(), /*private_key=*/true);
  if (ca.key_pem.empty()) return absl::InternalError("cannot write PEM: " + TakeOpenSslErrors());
  return ca;
}

absl::StatusOr<std::string> CreateCertificate(std::string_view ca_cert_pem,
                                              std::string_view ca_key_pem,
                                              const CertificateRequest& request) {
  if (absl::Status s = CheckName(request.common_name, "common name"); !s.ok()) return s;
  if (request.validity.count() <= 0) {
    return absl::InvalidArgumentError("certificate validity must be positive");
  }
  auto ca = ReadOneCertificate(ca_cert_pem, "the CA certificate");
  if (!ca.ok()) return ca.status();
  auto ca_key = ReadPrivateKey(ca_key_pem, "the CA key");
  if (!ca_key.ok()) return ca_key.status();
  if (X509_check_ca(ca->get()) != 1) {
    return absl::InvalidArgumentError("the CA certificate is not a CA's (no CA:TRUE)");
  }
  if (!IsEd25519(ca_key->get())) {
    return absl::InvalidArgumentError("the CA key is not Ed25519");
  }
  if (X509_check_private_key(ca->get(), ca_key->get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("the CA key does not belong to the CA certificate");
  }
  auto subject_key = Ed25519PublicKeyObject(request.subject_public_key);
  if (!subject_key.ok()) {
    return absl::InvalidArgumentError(
        fmt::format("subject public key: {}", std::string(subject_key.status().message())));
  }
  std::string alt_names;
  for (const std::string& dns : request.dns_names) {
    if (dns.empty() || dns.find_first_of(", \t\r\n") != std::string::npos) {
      return absl::InvalidArgumentError(fmt::format("\"{}\" is not a DNS name", dns));
    }
    alt_names += (alt_names.empty() ? "DNS:" : ",DNS:") + dns;
  }
  for (const std::string& ip : request.ip_addresses) {
    ASN1_OCTET_STRING* parsed = a2i_IPADDRESS(ip.c_str());
    if (parsed == nullptr) {
      ERR_clear_error();
      return absl::InvalidArgumentError(fmt::format("\"{}\" is not an IP address", ip));
    }
    ASN1_OCTET_STRING_free(parsed);
    alt_names += (alt_names.empty() ? "IP:" : ",IP:") + ip;
  }

  ERR_clear_error();
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), X509_VERSION_3) != 1) {
    return absl::InternalError("cannot create a certificate: " + TakeOpenSslErrors());
  }
  if (absl::Status s = SetRandomSerial(cert.get()); !s.ok()) return s;
  X509_NAME* subject = X509_get_subject_name(cert.get());
  if (absl::Status s = AddNameEntry(subject, "OU", RoleName(request.role)); !s.ok()) return s;
  if (absl::Status s = AddNameEntry(subject, "CN", request.common_name); !s.ok()) return s;
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca->get()));

  Clock::time_point not_before = request.not_before.value_or(DefaultNotBefore());
  Clock::time_point not_after = not_before + request.validity;
  // Never outlives its CA: it could not be verified after the CA expires anyway.
  struct tm tm;
  if (ASN1_TIME_to_tm(X509_get0_notAfter(ca->get()), &tm) == 1) {
    not_after = std::min(not_after, Clock::from_time_t(timegm(&tm)));
  }
  if (absl::Status s = SetValidity(cert.get(), not_before, not_after); !s.ok()) return s;
  X509_set_pubkey(cert.get(), subject_key->get());

  std::vector<std::pair<int, std::string>> extensions = {
      {NID_basic_constraints, "critical,CA:FALSE"},
      {NID_key_usage, "critical,digitalSignature"},
      {NID_ext_key_usage, request.role == Role::kNode ? "serverAuth,clientAuth" : "clientAuth"},
      {NID_subject_key_identifier, "hash"},
      {NID_authority_key_identifier, "keyid:always"},
  };
  if (!alt_names.empty()) extensions.emplace_back(NID_subject_alt_name, alt_names);
  for (const auto& [nid, value] : extensions) {
    if (absl::Status s = AddExtension(cert.get(), ca->get(), nid, value); !s.ok()) return s;
  }
  return Sign(cert.get(), ca_key->get());
}

absl::StatusOr<PeerCertificate> ParseCertificate(std::string_view pem) {
  auto cert = ReadOneCertificate(pem, "the certificate");
  if (!cert.ok()) return cert.status();
  return internal::ParseX509(cert->get());
}

absl::StatusOr<PeerCertificate> VerifyCertificate(std::string_view cert_chain_pem,
                                                  std::string_view ca_pem, Clock::time_point at) {
  std::string error;
  auto chain = internal::ReadCertificates(cert_chain_pem, &error);
  if (!chain) return absl::InvalidArgumentError("the certificate is malformed PEM: " + error);
  if (sk_X509_num(chain.get()) == 0) {
    return absl::InvalidArgumentError("no PEM certificate (\"BEGIN CERTIFICATE\" block) to verify");
  }
  auto cas = internal::ReadCertificates(ca_pem, &error);
  if (!cas) return absl::InvalidArgumentError("the CA certificate is malformed PEM: " + error);
  if (sk_X509_num(cas.get()) == 0) {
    return absl::InvalidArgumentError("no CA certificate (\"BEGIN CERTIFICATE\" block)");
  }
  internal::X509StorePtr store(X509_STORE_new());
  for (int i = 0; i < sk_X509_num(cas.get()); ++i) {
    X509_STORE_add_cert(store.get(), sk_X509_value(cas.get(), i));
  }
  X509* leaf = sk_X509_value(chain.get(), 0);
  internal::X509StackPtr untrusted(sk_X509_new_null());
  for (int i = 1; i < sk_X509_num(chain.get()); ++i) {
    X509* cert = sk_X509_value(chain.get(), i);
    X509_up_ref(cert);
    sk_X509_push(untrusted.get(), cert);
  }
  internal::X509StoreCtxPtr context(X509_STORE_CTX_new());
  if (!context || X509_STORE_CTX_init(context.get(), store.get(), leaf, untrusted.get()) != 1) {
    return absl::InternalError("cannot verify: " + TakeOpenSslErrors());
  }
  X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(context.get()), Clock::to_time_t(at));
  if (X509_verify_cert(context.get()) != 1) {
    int code = X509_STORE_CTX_get_error(context.get());
    ERR_clear_error();
    return absl::PermissionDeniedError(fmt::format("certificate does not verify against the CA: {}",
                                                   X509_verify_cert_error_string(code)));
  }
  return internal::ParseX509(leaf);
}

}  // namespace replicator::net
