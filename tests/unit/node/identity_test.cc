// Peer identity: base58 vectors, peer id derivation (libp2p cross-implementation
// vector), and the key file's life cycle in a data dir.
#include "node/identity.h"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "tests/unit/temp_dir.h"
#include "openssl/evp.h"
#include "openssl/pem.h"

namespace replicator::node {
namespace {

using test_util::TempDir;

std::string Hex(std::string_view hex) {
  return absl::HexStringToBytes(absl::string_view(hex.data(), hex.size()));
}

std::string KeyPath(const std::string& dir) { return dir + "/identity.key"; }

void WriteFile(const std::string& path, const std::string& contents) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << contents;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// A libp2p cross-implementation vector (rust-libp2p keypair tests): this
// Ed25519 seed has this public key, which prints as this peer id.
constexpr std::string_view kSeedHex =
    "7e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d";
constexpr std::string_view kPublicKeyHex =
    "1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e";
constexpr std::string_view kPeerId = "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq";

TEST(Base58Test, KnownVectors) {
  struct Case {
    std::string bytes;
    std::string text;
  };
  const Case cases[] = {
      {"", ""},
      {std::string("\0\0\x01", 3), "112"},
      {"hello world", "StV1DL6CwTryKyV"},
      {Hex("61"), "2g"},
      {Hex("626262"), "a3gV"},
      {Hex("636363"), "aPEr"},
      {std::string(10, '\0'), "1111111111"},
      {Hex("73696d706c792061206c6f6e6720737472696e67"), "2cFupjhnEsSn59qHXstmK2ffpLv2"},
      {Hex("00eb15231dfceb60925886b67d065299925915aeb172c06647"),
       "1NS17iag9jJgTHD1VXjvLCEnZuQ3rJDE9L"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(Base58Encode(c.bytes), c.text);
    absl::StatusOr<std::string> decoded = Base58Decode(c.text);
    ASSERT_TRUE(decoded.ok()) << c.text << ": " << decoded.status();
    EXPECT_EQ(*decoded, c.bytes) << c.text;
  }
}

TEST(Base58Test, RandomBytesRoundTrip) {
  std::mt19937 rng(20261127);
  std::uniform_int_distribution<int> byte(0, 255);
  for (int trial = 0; trial < 500; ++trial) {
    std::string bytes(trial % 70, '\0');
    // Some leading zero bytes, then random ones.
    for (size_t i = trial % 4; i < bytes.size(); ++i) bytes[i] = static_cast<char>(byte(rng));
    absl::StatusOr<std::string> back = Base58Decode(Base58Encode(bytes));
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, bytes) << "trial " << trial;
  }
}

TEST(Base58Test, DecodeRejectsCharactersOutsideTheAlphabet) {
  // 0, O, I and l are left out of the alphabet as look-alikes.
  const std::string_view bads[] = {
      "0", "abcO", "Il", "ab cd", "+/", std::string_view("a\0b", 3), std::string_view("\xff", 1)};
  for (std::string_view bad : bads) {
    absl::StatusOr<std::string> out = Base58Decode(bad);
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(out.status().message().find("invalid base58 character"), std::string::npos)
        << out.status();
  }
  EXPECT_EQ(Base58Decode("ab0").status().message(), "invalid base58 character '0' at offset 2");
}

TEST(PeerIdTest, MatchesTheLibp2pVector) {
  absl::StatusOr<std::string> id = PeerIdFromPublicKey(Hex(kPublicKeyHex));
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, kPeerId);
  absl::StatusOr<std::string> key = PublicKeyFromPeerId(kPeerId);
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_EQ(*key, Hex(kPublicKeyHex));
}

TEST(PeerIdTest, RejectsWrongShapes) {
  EXPECT_EQ(PeerIdFromPublicKey("short").status().code(), absl::StatusCode::kInvalidArgument);
  // A CIDv0-style sha256 peer id is valid base58 but not an Ed25519 identity id.
  EXPECT_EQ(PublicKeyFromPeerId("QmRLoXS3E73psYaUsma1VSbboTa2J8Z9kso1tpiGLk9WQ4").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(PublicKeyFromPeerId("12D3KooW0").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(IdentityTest, CreatesAKeyFileAndIsStableAcrossLoads) {
  TempDir dir{"identity_test"};
  const std::string data_dir = dir.path() + "/node/data";  // created on demand
  absl::StatusOr<Identity> first = LoadOrCreateIdentity(data_dir);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->peer_id.rfind("12D3KooW", 0), 0u) << first->peer_id;
  EXPECT_EQ(first->public_key.size(), 32u);
  EXPECT_EQ(PeerIdFromPublicKey(first->public_key).value(), first->peer_id);

  struct stat st;
  ASSERT_EQ(stat(KeyPath(data_dir).c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  const std::string pem = ReadFile(KeyPath(data_dir));
  EXPECT_EQ(pem.rfind("-----BEGIN PRIVATE KEY-----", 0), 0u) << pem;  // PKCS#8
  // No temp file is left beside the key.
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(data_dir),
                          std::filesystem::directory_iterator()),
            1);

  for (int i = 0; i < 3; ++i) {
    absl::StatusOr<Identity> again = LoadOrCreateIdentity(data_dir);
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->peer_id, first->peer_id);
    EXPECT_EQ(again->public_key, first->public_key);
  }
  EXPECT_EQ(ReadFile(KeyPath(data_dir)), pem);  // never rewritten
}

TEST(IdentityTest, DifferentDirsHaveDifferentIdentities) {
  TempDir a{"identity_test"};
  TempDir b{"identity_test"};
  absl::StatusOr<Identity> ia = LoadOrCreateIdentity(a.path());
  absl::StatusOr<Identity> ib = LoadOrCreateIdentity(b.path());
  ASSERT_TRUE(ia.ok() && ib.ok());
  EXPECT_NE(ia->peer_id, ib->peer_id);
  EXPECT_NE(ia->public_key, ib->public_key);
}

// A key written by another tool (here: OpenSSL from a known seed) loads and
// yields the libp2p peer id of that key.
TEST(IdentityTest, LoadsAnExistingPkcs8Key) {
  TempDir dir{"identity_test"};
  const std::string seed = Hex(kSeedHex);
  EVP_PKEY* pkey = EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(seed.data()), seed.size());
  ASSERT_NE(pkey, nullptr);
  FILE* f = fopen(KeyPath(dir.path()).c_str(), "w");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(PEM_write_PrivateKey(f, pkey, nullptr, nullptr, 0, nullptr, nullptr), 1);
  fclose(f);
  EVP_PKEY_free(pkey);

  absl::StatusOr<Identity> id = LoadOrCreateIdentity(dir.path());
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->peer_id, kPeerId);
  EXPECT_EQ(id->public_key, Hex(kPublicKeyHex));
}

TEST(IdentityTest, GarbageKeyFileIsAClearError) {
  TempDir dir{"identity_test"};
  WriteFile(KeyPath(dir.path()), "this is not a key\n");
  absl::StatusOr<Identity> id = LoadOrCreateIdentity(dir.path());
  EXPECT_EQ(id.status().code(), absl::StatusCode::kDataLoss) << id.status();
  EXPECT_NE(id.status().message().find(KeyPath(dir.path())), std::string::npos) << id.status();
  EXPECT_NE(id.status().message().find("not an unencrypted PEM private key"), std::string::npos)
      << id.status();
  EXPECT_EQ(ReadFile(KeyPath(dir.path())), "this is not a key\n");  // left for the operator

  WriteFile(KeyPath(dir.path()), "");
  EXPECT_EQ(LoadOrCreateIdentity(dir.path()).status().code(), absl::StatusCode::kDataLoss);
}

TEST(IdentityTest, NonEd25519KeyIsRefused) {
  TempDir dir{"identity_test"};
  EVP_PKEY* pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "X25519");
  ASSERT_NE(pkey, nullptr);
  FILE* f = fopen(KeyPath(dir.path()).c_str(), "w");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(PEM_write_PrivateKey(f, pkey, nullptr, nullptr, 0, nullptr, nullptr), 1);
  fclose(f);
  EVP_PKEY_free(pkey);

  absl::StatusOr<Identity> id = LoadOrCreateIdentity(dir.path());
  EXPECT_EQ(id.status().code(), absl::StatusCode::kFailedPrecondition) << id.status();
  EXPECT_NE(id.status().message().find("not Ed25519"), std::string::npos) << id.status();
  EXPECT_NE(id.status().message().find(KeyPath(dir.path())), std::string::npos) << id.status();
}

TEST(IdentityTest, UnreadableKeyFileIsAClearError) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads any file";
  TempDir dir{"identity_test"};
  ASSERT_TRUE(LoadOrCreateIdentity(dir.path()).ok());
  ASSERT_EQ(chmod(KeyPath(dir.path()).c_str(), 0), 0);
  absl::StatusOr<Identity> id = LoadOrCreateIdentity(dir.path());
  EXPECT_EQ(id.status().code(), absl::StatusCode::kPermissionDenied) << id.status();
  EXPECT_NE(id.status().message().find(KeyPath(dir.path())), std::string::npos) << id.status();
}

TEST(IdentityTest, KeyPathThatIsADirectoryIsAClearError) {
  TempDir dir{"identity_test"};
  std::filesystem::create_directory(KeyPath(dir.path()));
  absl::StatusOr<Identity> id = LoadOrCreateIdentity(dir.path());
  EXPECT_FALSE(id.ok());
  EXPECT_NE(id.status().message().find(KeyPath(dir.path())), std::string::npos) << id.status();
}

}  // namespace
}  // namespace replicator::node
