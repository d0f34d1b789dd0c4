#include "node/caller.h"

#include "absl/strings/str_cat.h"

namespace replicator::node {
namespace {

using net::Role;

const char* ActionName(Action action) {
  switch (action) {
    case Action::kPeer:
      return "the Peer face";
    case Action::kDirectory:
      return "the Directory face";
    case Action::kGet:
      return "get";
    case Action::kStatus:
      return "status";
    case Action::kPut:
      return "put";
    case Action::kChangeMember:
      return "a membership change";
  }
  return "this call";
}

// The roles that may, in the words of the refusal.
const char* Needed(Action action) {
  switch (action) {
    case Action::kPeer:
    case Action::kDirectory:
      return "role node";
    case Action::kGet:
    case Action::kStatus:
      return "role read, write or admin";
    case Action::kPut:
      return "role write or admin";
    case Action::kChangeMember:
      return "role admin";
  }
  return "another role";
}

bool Allowed(Role role, Action action) {
  switch (action) {
    case Action::kPeer:
    case Action::kDirectory:
      return role == Role::kNode;
    case Action::kGet:
    case Action::kStatus:
      return role == Role::kRead || role == Role::kWrite || role == Role::kAdmin;
    case Action::kPut:
      return role == Role::kWrite || role == Role::kAdmin;
    case Action::kChangeMember:
      return role == Role::kAdmin;
  }
  return false;
}

}  // namespace

std::string Caller::Describe() const {
  if (!authenticated) return "an unauthenticated caller";
  if (role == Role::kNode) return absl::StrCat("node ", name);
  return absl::StrCat("client ", name, " (role ", std::string(net::RoleName(role)), ")");
}

std::optional<std::string> Authorize(const Caller& caller, Action action) {
  if (!caller.authenticated || Allowed(caller.role, action)) return std::nullopt;
  return absl::StrCat(std::string(kPermissionDenied), ActionName(action), " needs ", Needed(action),
                      "; this certificate (CN ", caller.name, ") has role ",
                      std::string(net::RoleName(caller.role)));
}

std::optional<std::string> AuthorizeJoin(const Caller& caller, std::string_view peer_id) {
  if (auto refused = Authorize(caller, Action::kDirectory)) return refused;
  if (!caller.authenticated || caller.name == peer_id) return std::nullopt;
  return absl::StrCat(std::string(kPermissionDenied), "node ", caller.name,
                      " may register only its own peer id, not ", std::string(peer_id));
}

}  // namespace replicator::node
