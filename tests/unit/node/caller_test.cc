// The role rules of node/caller.h: which role may call which face and method,
// what a refusal says, and that a node may register only its own peer id.
#include "node/caller.h"

#include <string>

#include "gtest/gtest.h"

namespace replicator::node {
namespace {

using net::Role;

Caller As(Role role, std::string name = "someone") { return Caller{true, std::move(name), role}; }

TEST(CallerTest, RolesMayCallWhatTheirFaceAllows) {
  const struct {
    Role role;
    Action action;
    bool allowed;
  } table[] = {
      {Role::kNode, Action::kPeer, true},    {Role::kNode, Action::kDirectory, true},
      {Role::kNode, Action::kGet, false},    {Role::kNode, Action::kPut, false},
      {Role::kNode, Action::kStatus, false}, {Role::kNode, Action::kChangeMember, false},
      {Role::kRead, Action::kGet, true},     {Role::kRead, Action::kStatus, true},
      {Role::kRead, Action::kPut, false},    {Role::kRead, Action::kChangeMember, false},
      {Role::kRead, Action::kPeer, false},   {Role::kRead, Action::kDirectory, false},
      {Role::kWrite, Action::kGet, true},    {Role::kWrite, Action::kStatus, true},
      {Role::kWrite, Action::kPut, true},    {Role::kWrite, Action::kChangeMember, false},
      {Role::kWrite, Action::kPeer, false},  {Role::kWrite, Action::kDirectory, false},
      {Role::kAdmin, Action::kGet, true},    {Role::kAdmin, Action::kStatus, true},
      {Role::kAdmin, Action::kPut, true},    {Role::kAdmin, Action::kChangeMember, true},
      {Role::kAdmin, Action::kPeer, false},  {Role::kAdmin, Action::kDirectory, false},
  };
  for (const auto& row : table) {
    EXPECT_EQ(!Authorize(As(row.role), row.action).has_value(), row.allowed)
        << net::RoleName(row.role) << " action " << static_cast<int>(row.action);
  }
}

TEST(CallerTest, UnauthenticatedMayDoAnything) {
  for (Action a : {Action::kPeer, Action::kDirectory, Action::kGet, Action::kStatus, Action::kPut,
                   Action::kChangeMember}) {
    EXPECT_FALSE(Authorize(Caller::Unauthenticated(), a).has_value());
  }
  EXPECT_FALSE(AuthorizeJoin(Caller::Unauthenticated(), "12D3KooWAnyone").has_value());
  EXPECT_TRUE(Caller::Unauthenticated().peer_id().empty());
}

TEST(CallerTest, ARefusalNamesTheRoleNeededAndTheRoleHeld) {
  auto refused = Authorize(As(Role::kRead, "alice"), Action::kPut);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(*refused,
            "permission denied: put needs role write or admin; this certificate (CN alice) has "
            "role read");
  auto admin = Authorize(As(Role::kWrite, "bob"), Action::kChangeMember);
  ASSERT_TRUE(admin.has_value());
  EXPECT_NE(admin->find("needs role admin"), std::string::npos) << *admin;
  auto peer = Authorize(As(Role::kAdmin, "root"), Action::kPeer);
  ASSERT_TRUE(peer.has_value());
  EXPECT_NE(peer->find("the Peer face needs role node"), std::string::npos) << *peer;
}

TEST(CallerTest, ANodeMayRegisterOnlyItself) {
  Caller node = As(Role::kNode, "12D3KooWSelf");
  EXPECT_EQ(node.peer_id(), "12D3KooWSelf");
  EXPECT_FALSE(AuthorizeJoin(node, "12D3KooWSelf").has_value());
  auto other = AuthorizeJoin(node, "12D3KooWVictim");
  ASSERT_TRUE(other.has_value());
  EXPECT_NE(other->find("may register only its own peer id, not 12D3KooWVictim"), std::string::npos)
      << *other;
  auto client = AuthorizeJoin(As(Role::kAdmin, "root"), "root");
  ASSERT_TRUE(client.has_value()) << "a client may not join, even under its own name";
  EXPECT_TRUE(As(Role::kAdmin, "root").peer_id().empty());
}

TEST(CallerTest, FromCertificateTakesNameAndRole) {
  net::PeerCertificate cert;
  cert.common_name = "12D3KooWPeer";
  cert.role = Role::kNode;
  Caller c = Caller::FromCertificate(cert);
  EXPECT_TRUE(c.authenticated);
  EXPECT_EQ(c.peer_id(), "12D3KooWPeer");
  EXPECT_EQ(c.Describe(), "node 12D3KooWPeer");
}

}  // namespace
}  // namespace replicator::node
