// Certificates: a CA, node and client certificates, parsing and verification.
#include "net/certs.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>

#include <chrono>
#include <string>
#include <vector>

#include "net/openssl_util.h"

namespace replicator::net {
namespace {

using std::chrono::hours;

std::string Str(absl::string_view view) { return std::string(view); }

struct Issued {
  std::string cert_pem;
  Ed25519Key key;
};

Issued Issue(const CertificateAuthority& ca, std::string name, Role role) {
  auto key = CreateEd25519Key();
  EXPECT_TRUE(key.ok()) << key.status();
  CertificateRequest request;
  request.subject_public_key = key->public_key_pem;
  request.common_name = std::move(name);
  request.role = role;
  auto cert = CreateCertificate(ca.cert_pem, ca.key_pem, request);
  EXPECT_TRUE(cert.ok()) << cert.status();
  return Issued{cert.ok() ? *cert : "", *key};
}

CertificateAuthority Ca(std::string name = "test federation") {
  auto ca = CreateCa(name, hours(24 * 365));
  EXPECT_TRUE(ca.ok()) << ca.status();
  return *ca;
}

internal::X509Ptr ReadX509(const std::string& pem) {
  internal::BioPtr bio = internal::MemoryBio(pem);
  return internal::X509Ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

// A certificate made by hand with OpenSSL, to carry what CreateCertificate refuses to write:
// any set of OUs, any key type.
std::string HandMadeCertificate(const CertificateAuthority& ca, EVP_PKEY* subject_key,
                                const std::vector<std::string>& units) {
  internal::BioPtr key_bio = internal::MemoryBio(ca.key_pem);
  internal::KeyPtr ca_key(PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr));
  internal::X509Ptr ca_cert = ReadX509(ca.cert_pem);
  internal::X509Ptr cert(X509_new());
  X509_set_version(cert.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 7);
  X509_NAME* name = X509_get_subject_name(cert.get());
  for (const std::string& unit : units) {
    X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char*>(unit.data()),
                               static_cast<int>(unit.size()), -1, 0);
  }
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>("someone"), -1, -1, 0);
  X509_set_issuer_name(cert.get(), X509_get_subject_name(ca_cert.get()));
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_set_pubkey(cert.get(), subject_key);
  EXPECT_GT(X509_sign(cert.get(), ca_key.get(), nullptr), 0);
  internal::BioPtr out(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(out.get(), cert.get());
  BUF_MEM* memory = nullptr;
  BIO_get_mem_ptr(out.get(), &memory);
  return std::string(memory->data, memory->length);
}

internal::KeyPtr NewKey(const char* type) {
  if (std::string(type) == "EC") {
    return internal::KeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  }
  return internal::KeyPtr(EVP_PKEY_Q_keygen(nullptr, nullptr, type));
}

// ---------------------------------------------------------------------------------------------

TEST(RoleTest, NamesRoundTripAndOthersAreRefused) {
  for (Role role : {Role::kNode, Role::kRead, Role::kWrite, Role::kAdmin}) {
    auto parsed = ParseRole(RoleName(role));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, role);
  }
  EXPECT_EQ(RoleName(Role::kNode), "node");
  EXPECT_EQ(RoleName(Role::kRead), "read");
  EXPECT_EQ(RoleName(Role::kWrite), "write");
  EXPECT_EQ(RoleName(Role::kAdmin), "admin");
  for (const char* bad : {"", "superuser", "Node", "write ", "root"}) {
    auto parsed = ParseRole(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(parsed.status().message().find("read, write or admin"), std::string::npos)
        << parsed.status();
  }
}

TEST(CertsTest, CaIsSelfSignedCaWithEd25519Key) {
  CertificateAuthority ca = Ca("acme federation");
  EXPECT_NE(ca.cert_pem.find("BEGIN CERTIFICATE"), std::string::npos);
  EXPECT_NE(ca.key_pem.find("BEGIN PRIVATE KEY"), std::string::npos);  // PKCS#8
  internal::X509Ptr cert = ReadX509(ca.cert_pem);
  ASSERT_TRUE(cert);
  EXPECT_EQ(X509_check_ca(cert.get()), 1);
  EXPECT_EQ(EVP_PKEY_get_id(X509_get0_pubkey(cert.get())), EVP_PKEY_ED25519);
  EXPECT_EQ(X509_check_issued(cert.get(), cert.get()), X509_V_OK);  // self-signed
  EXPECT_TRUE(X509_get_key_usage(cert.get()) & KU_KEY_CERT_SIGN);
  auto key = Ed25519PublicKey(ca.key_pem);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(key->size(), 32u);
}

TEST(CertsTest, NodeCertificateRoundTrips) {
  CertificateAuthority ca = Ca("acme federation");
  Issued node = Issue(ca, "12D3KooWExamplePeerId", Role::kNode);
  auto parsed = ParseCertificate(node.cert_pem);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->common_name, "12D3KooWExamplePeerId");
  EXPECT_EQ(parsed->role, Role::kNode);
  EXPECT_EQ(parsed->public_key, node.key.public_key);
  EXPECT_EQ(parsed->issuer_common_name, "acme federation");
  EXPECT_FALSE(parsed->serial.empty());
  auto now = Clock::now();
  EXPECT_LT(parsed->not_before, now);
  EXPECT_GT(parsed->not_after, now + hours(24 * 300));

  auto verified = VerifyCertificate(node.cert_pem, ca.cert_pem);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->common_name, parsed->common_name);
  EXPECT_EQ(verified->public_key, node.key.public_key);

  // A node certificate serves and dials; it is no CA.
  internal::X509Ptr cert = ReadX509(node.cert_pem);
  EXPECT_EQ(X509_check_ca(cert.get()), 0);
  EXPECT_EQ(X509_check_purpose(cert.get(), X509_PURPOSE_SSL_SERVER, 0), 1);
  EXPECT_EQ(X509_check_purpose(cert.get(), X509_PURPOSE_SSL_CLIENT, 0), 1);
}

TEST(CertsTest, ClientCertificatesCarryTheirRoleAndOnlyDial) {
  CertificateAuthority ca = Ca();
  for (Role role : {Role::kRead, Role::kWrite, Role::kAdmin}) {
    Issued client = Issue(ca, "alice", role);
    auto parsed = VerifyCertificate(client.cert_pem, ca.cert_pem);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->common_name, "alice");
    EXPECT_EQ(parsed->role, role);
    EXPECT_EQ(parsed->public_key, client.key.public_key);
    internal::X509Ptr cert = ReadX509(client.cert_pem);
    EXPECT_EQ(X509_check_purpose(cert.get(), X509_PURPOSE_SSL_CLIENT, 0), 1);
    EXPECT_EQ(X509_check_purpose(cert.get(), X509_PURPOSE_SSL_SERVER, 0), 0);
  }
}

TEST(CertsTest, SubjectKeyMayBeAPrivateKeyPemOrRawBytes) {
  CertificateAuthority ca = Ca();
  auto key = CreateEd25519Key();
  ASSERT_TRUE(key.ok()) << key.status();
  // The private key PEM is how a node passes its identity.key.
  for (const std::string& form : {key->private_key_pem, key->public_key_pem, key->public_key}) {
    CertificateRequest request;
    request.subject_public_key = form;
    request.common_name = "node";
    request.role = Role::kNode;
    auto cert = CreateCertificate(ca.cert_pem, ca.key_pem, request);
    ASSERT_TRUE(cert.ok()) << cert.status();
    auto parsed = ParseCertificate(*cert);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->public_key, key->public_key);
  }
  auto from_private = Ed25519PublicKey(key->private_key_pem);
  ASSERT_TRUE(from_private.ok());
  EXPECT_EQ(*from_private, key->public_key);
}

TEST(CertsTest, SubjectAltNamesAreWritten) {
  CertificateAuthority ca = Ca();
  auto key = CreateEd25519Key();
  ASSERT_TRUE(key.ok());
  CertificateRequest request;
  request.subject_public_key = key->public_key;
  request.common_name = "node";
  request.role = Role::kNode;
  request.dns_names = {"node1.example.com"};
  request.ip_addresses = {"10.0.0.7", "::1"};
  auto cert = CreateCertificate(ca.cert_pem, ca.key_pem, request);
  ASSERT_TRUE(cert.ok()) << cert.status();
  internal::X509Ptr x509 = ReadX509(*cert);
  EXPECT_EQ(X509_check_host(x509.get(), "node1.example.com", 0, 0, nullptr), 1);
  EXPECT_EQ(X509_check_ip_asc(x509.get(), "10.0.0.7", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(x509.get(), "::1", 0), 1);
  EXPECT_EQ(X509_check_ip_asc(x509.get(), "10.0.0.8", 0), 0);

  request.ip_addresses = {"10.0.0.300"};
  EXPECT_EQ(CreateCertificate(ca.cert_pem, ca.key_pem, request).status().code(),
            absl::StatusCode::kInvalidArgument);
  request.ip_addresses = {};
  request.dns_names = {"a,DNS:evil.example"};
  EXPECT_EQ(CreateCertificate(ca.cert_pem, ca.key_pem, request).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CertsTest, CertificateOfAnotherCaFailsVerification) {
  CertificateAuthority ours = Ca("ours");
  CertificateAuthority theirs = Ca("theirs");
  Issued intruder = Issue(theirs, "12D3KooWIntruder", Role::kNode);
  auto verified = VerifyCertificate(intruder.cert_pem, ours.cert_pem);
  EXPECT_EQ(verified.status().code(), absl::StatusCode::kPermissionDenied) << verified.status();
  EXPECT_NE(verified.status().message().find("unable to get local issuer certificate"),
            std::string::npos)
      << verified.status();
  // Parsing alone does not check the issuer.
  EXPECT_TRUE(ParseCertificate(intruder.cert_pem).ok());
  // Trusting both (a CA rotation) accepts it.
  EXPECT_TRUE(VerifyCertificate(intruder.cert_pem, ours.cert_pem + theirs.cert_pem).ok());
  // Same CA name, different key: still refused.
  CertificateAuthority impostor = Ca("ours");
  Issued forged = Issue(impostor, "12D3KooWIntruder", Role::kNode);
  EXPECT_EQ(VerifyCertificate(forged.cert_pem, ours.cert_pem).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(CertsTest, ExpiredAndNotYetValidCertificatesFailVerification) {
  CertificateAuthority ca = Ca();
  auto key = CreateEd25519Key();
  ASSERT_TRUE(key.ok());
  CertificateRequest request;
  request.subject_public_key = key->public_key_pem;
  request.common_name = "bob";
  request.role = Role::kRead;
  request.not_before = Clock::now() - hours(48);
  request.validity = hours(24);
  auto expired = CreateCertificate(ca.cert_pem, ca.key_pem, request);
  ASSERT_TRUE(expired.ok()) << expired.status();
  auto verified = VerifyCertificate(*expired, ca.cert_pem);
  EXPECT_EQ(verified.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(verified.status().message().find("expired"), std::string::npos) << verified.status();

  // A valid certificate checked after its end, or before its start.
  Issued fresh = Issue(ca, "carol", Role::kWrite);
  EXPECT_EQ(VerifyCertificate(fresh.cert_pem, ca.cert_pem, Clock::now() + hours(24 * 365 * 6))
                .status()
                .code(),
            absl::StatusCode::kPermissionDenied);
  auto early = VerifyCertificate(fresh.cert_pem, ca.cert_pem, Clock::now() - hours(24));
  EXPECT_EQ(early.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(early.status().message().find("not yet valid"), std::string::npos) << early.status();
}

TEST(CertsTest, CertificateNeverOutlivesItsCa) {
  auto ca = CreateCa("short-lived", hours(48));
  ASSERT_TRUE(ca.ok());
  Issued node = Issue(*ca, "node", Role::kNode);  // asks for 5 years
  auto cert = ParseCertificate(node.cert_pem);
  ASSERT_TRUE(cert.ok());
  EXPECT_LT(cert->not_after, Clock::now() + hours(48));
}

TEST(CertsTest, WrongMissingOrDoubleRoleIsRefused) {
  CertificateAuthority ca = Ca();
  internal::KeyPtr key = NewKey("ED25519");
  struct Case {
    std::vector<std::string> units;
    std::string expected;
  };
  for (const Case& c : std::vector<Case>{{{"superuser"}, "\"superuser\" is not a role"},
                                         {{}, "exactly one Subject OU"},
                                         {{"read", "admin"}, "exactly one Subject OU"}}) {
    std::string pem = HandMadeCertificate(ca, key.get(), c.units);
    auto parsed = ParseCertificate(pem);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << c.expected;
    EXPECT_NE(parsed.status().message().find(c.expected), std::string::npos) << parsed.status();
    EXPECT_NE(parsed.status().message().find("someone"), std::string::npos) << parsed.status();
    // It does chain to the CA: verification says what is wrong with it all the same.
    EXPECT_EQ(VerifyCertificate(pem, ca.cert_pem).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
  std::string good = HandMadeCertificate(ca, key.get(), {"admin"});
  auto parsed = VerifyCertificate(good, ca.cert_pem);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->role, Role::kAdmin);
}

TEST(CertsTest, KeysOtherThanEd25519AreRefused) {
  CertificateAuthority ca = Ca();
  internal::KeyPtr ec = NewKey("EC");
  ASSERT_TRUE(ec);
  std::string pem = HandMadeCertificate(ca, ec.get(), {"node"});
  auto parsed = ParseCertificate(pem);
  EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(parsed.status().message().find("not Ed25519"), std::string::npos) << parsed.status();

  internal::BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PUBKEY(bio.get(), ec.get());
  BUF_MEM* memory = nullptr;
  BIO_get_mem_ptr(bio.get(), &memory);
  CertificateRequest request;
  request.subject_public_key.assign(memory->data, memory->length);
  request.common_name = "node";
  request.role = Role::kNode;
  auto cert = CreateCertificate(ca.cert_pem, ca.key_pem, request);
  EXPECT_EQ(cert.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(cert.status().message().find("not Ed25519"), std::string::npos) << cert.status();
}

TEST(CertsTest, MalformedInputIsRefusedClearly) {
  for (const std::string& bad :
       {std::string(""), std::string("hello"),
        std::string(
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")}) {
    auto parsed = ParseCertificate(bad);
    EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_NE(Str(ParseCertificate("hello").status().message()).find("no PEM certificate"),
            std::string::npos);
  CertificateAuthority ca = Ca();
  Issued node = Issue(ca, "node", Role::kNode);
  std::string truncated = node.cert_pem.substr(0, node.cert_pem.size() / 2);
  EXPECT_EQ(ParseCertificate(truncated).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VerifyCertificate(node.cert_pem, "not a ca").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Ed25519PublicKey("short").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Ed25519PublicKey("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CertsTest, CreateCertificateChecksItsInputs) {
  CertificateAuthority ca = Ca();
  CertificateAuthority other = Ca("other");
  Issued node = Issue(ca, "node", Role::kNode);
  auto key = CreateEd25519Key();
  ASSERT_TRUE(key.ok());
  CertificateRequest request;
  request.subject_public_key = key->public_key_pem;
  request.common_name = "alice";
  request.role = Role::kWrite;

  struct Case {
    std::string ca_cert, ca_key;
    std::string common_name;
    std::string expected;
  };
  for (const Case& c : std::vector<Case>{
           {ca.cert_pem, other.key_pem, "alice", "does not belong to the CA certificate"},
           {node.cert_pem, node.key.private_key_pem, "alice", "not a CA"},
           {"junk", ca.key_pem, "alice", "no PEM certificate"},
           {ca.cert_pem, "junk", "alice", "not a PEM private key"},
           {ca.cert_pem, ca.key_pem, "", "common name is empty"},
           {ca.cert_pem, ca.key_pem, std::string(65, 'x'), "longer than 64"},
           {ca.cert_pem, ca.key_pem, "bad\nname", "control character"},
       }) {
    CertificateRequest r = request;
    r.common_name = c.common_name;
    auto cert = CreateCertificate(c.ca_cert, c.ca_key, r);
    EXPECT_EQ(cert.status().code(), absl::StatusCode::kInvalidArgument) << c.expected;
    EXPECT_NE(cert.status().message().find(c.expected), std::string::npos) << cert.status();
  }
  request.validity = std::chrono::seconds(0);
  EXPECT_EQ(CreateCertificate(ca.cert_pem, ca.key_pem, request).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateCa("", hours(1)).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CreateCa("x", std::chrono::seconds(-1)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CertsTest, FreshKeysDiffer) {
  auto a = CreateEd25519Key();
  auto b = CreateEd25519Key();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->public_key.size(), 32u);
  EXPECT_NE(a->public_key, b->public_key);
  EXPECT_NE(a->private_key_pem.find("BEGIN PRIVATE KEY"), std::string::npos);
  EXPECT_NE(a->public_key_pem.find("BEGIN PUBLIC KEY"), std::string::npos);
}

}  // namespace
}  // namespace replicator::net
