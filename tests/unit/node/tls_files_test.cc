// The certificate files of node/tls_files.h: the certs-dir layout and its
// overrides, what is missing, and creating a CA, node and client
// certificates (modes, no silent overwrite, a node's for its identity).
#include "node/tls_files.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "net/certs.h"
#include "node/identity.h"
#include "tests/unit/temp_dir.h"

namespace replicator::node {
namespace {

using test_util::TempDir;

int Mode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

std::string Read(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

TEST(TlsFilesTest, NothingGivenSaysWhatToPass) {
  auto r = ResolveTlsPaths(TlsFlags{}, TlsHolder::Node(), "/d/identity.key");
  ASSERT_TRUE(absl::IsFailedPrecondition(r.status())) << r.status();
  EXPECT_NE(r.status().message().find("--certs-dir"), std::string::npos);
  EXPECT_NE(r.status().message().find("--insecure"), std::string::npos);
}

TEST(TlsFilesTest, InsecureMeansNoFilesAndExcludesCertificates) {
  TlsFlags insecure;
  insecure.insecure = true;
  auto r = ResolveTlsPaths(insecure, TlsHolder::Node());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->has_value());
  insecure.certs_dir = "/etc/certs";
  EXPECT_TRUE(absl::IsInvalidArgument(ResolveTlsPaths(insecure, TlsHolder::Node()).status()));
}

TEST(TlsFilesTest, CertsDirLayoutWithOverridesAndTheIdentityKeyFallback) {
  TempDir dir("tls-files");
  const std::string d = dir.path();
  for (const char* f : {"ca.crt", "node.crt", "client.alice.crt", "client.alice.key", "other.crt",
                        "identity.key"}) {
    std::ofstream(d + "/" + f) << "x";
  }
  TlsFlags flags;
  flags.certs_dir = d;
  auto node = ResolveTlsPaths(flags, TlsHolder::Node(), d + "/identity.key");
  ASSERT_TRUE(node.ok()) << node.status();
  EXPECT_EQ((*node)->ca, d + "/ca.crt");
  EXPECT_EQ((*node)->cert, d + "/node.crt");
  EXPECT_EQ((*node)->key, d + "/identity.key") << "no node.key: the identity key";
  auto client = ResolveTlsPaths(flags, TlsHolder::Client("alice"));
  ASSERT_TRUE(client.ok()) << client.status();
  EXPECT_EQ((*client)->cert, d + "/client.alice.crt");
  EXPECT_EQ((*client)->key, d + "/client.alice.key");
  flags.cert = d + "/other.crt";
  auto overridden = ResolveTlsPaths(flags, TlsHolder::Client("alice"));
  ASSERT_TRUE(overridden.ok()) << overridden.status();
  EXPECT_EQ((*overridden)->cert, d + "/other.crt");
  TlsFlags dir_only;
  dir_only.certs_dir = d;
  auto bob = ResolveTlsPaths(dir_only, TlsHolder::Client("bob"));
  ASSERT_TRUE(absl::IsNotFound(bob.status())) << bob.status();
  EXPECT_NE(bob.status().message().find("client.bob.crt"), std::string::npos);
  TlsFlags ca_only;
  ca_only.ca = d + "/ca.crt";
  auto partial = ResolveTlsPaths(ca_only, TlsHolder::Client("alice"));
  EXPECT_TRUE(absl::IsInvalidArgument(partial.status())) << partial.status();
}

TEST(TlsFilesTest, CreatesCaNodeAndClientThatVerify) {
  TempDir dir("tls-create");
  const std::string certs = dir.path() + "/certs";
  const std::string data = dir.path() + "/data";
  ASSERT_TRUE(CreateCaFiles(certs, false).ok());
  EXPECT_EQ(Mode(certs + "/ca.key"), 0600);
  auto peer = CreateNodeFiles(certs, "", data, false);
  ASSERT_TRUE(peer.ok()) << peer.status();
  EXPECT_EQ(Mode(certs + "/node.key"), 0600);
  auto identity = LoadOrCreateIdentity(data);
  ASSERT_TRUE(identity.ok());
  EXPECT_EQ(*peer, identity->peer_id) << "certified the data dir's (new) identity";
  EXPECT_EQ(Read(certs + "/node.key"), Read(data + "/identity.key"));
  auto node_cert = net::VerifyCertificate(Read(certs + "/node.crt"), Read(certs + "/ca.crt"));
  ASSERT_TRUE(node_cert.ok()) << node_cert.status();
  EXPECT_EQ(node_cert->role, net::Role::kNode);
  EXPECT_TRUE(
      CheckNodeCertificate(*node_cert, identity->peer_id, identity->public_key, "node.crt").ok());

  ASSERT_TRUE(CreateClientFiles(certs, "", "alice", net::Role::kRead, false).ok());
  EXPECT_EQ(Mode(certs + "/client.alice.key"), 0600);
  auto client_cert =
      net::VerifyCertificate(Read(certs + "/client.alice.crt"), Read(certs + "/ca.crt"));
  ASSERT_TRUE(client_cert.ok()) << client_cert.status();
  EXPECT_EQ(client_cert->common_name, "alice");
  EXPECT_EQ(client_cert->role, net::Role::kRead);
  EXPECT_FALSE(
      CheckNodeCertificate(*client_cert, identity->peer_id, identity->public_key, "c").ok());
}

TEST(TlsFilesTest, NeverOverwritesWithoutBeingAsked) {
  TempDir dir("tls-overwrite");
  const std::string certs = dir.path();
  ASSERT_TRUE(CreateCaFiles(certs, false).ok());
  const std::string ca = Read(certs + "/ca.crt");
  absl::Status again = CreateCaFiles(certs, false);
  EXPECT_TRUE(absl::IsAlreadyExists(again)) << again;
  EXPECT_NE(again.message().find("--overwrite"), std::string::npos);
  EXPECT_EQ(Read(certs + "/ca.crt"), ca);
  ASSERT_TRUE(CreateClientFiles(certs, "", "bob", net::Role::kWrite, false).ok());
  EXPECT_TRUE(absl::IsAlreadyExists(CreateClientFiles(certs, "", "bob", net::Role::kWrite, false)));
  EXPECT_TRUE(CreateClientFiles(certs, "", "bob", net::Role::kAdmin, true).ok());
  ASSERT_TRUE(CreateCaFiles(certs, true).ok());
  EXPECT_NE(Read(certs + "/ca.crt"), ca);
}

TEST(TlsFilesTest, RefusesBadRequests) {
  TempDir dir("tls-bad");
  const std::string certs = dir.path();
  EXPECT_TRUE(absl::IsNotFound(CreateClientFiles(certs, "", "alice", net::Role::kRead, false)))
      << "no CA yet";
  ASSERT_TRUE(CreateCaFiles(certs, false).ok());
  EXPECT_TRUE(
      absl::IsInvalidArgument(CreateClientFiles(certs, "", "../x", net::Role::kRead, false)));
  EXPECT_TRUE(absl::IsInvalidArgument(CreateClientFiles(certs, "", "", net::Role::kRead, false)));
  EXPECT_TRUE(absl::IsInvalidArgument(CreateClientFiles(certs, "", "n", net::Role::kNode, false)));
  EXPECT_TRUE(absl::IsInvalidArgument(CreateNodeFiles(certs, "", "", false).status()));
}

}  // namespace
}  // namespace replicator::node
