// Caller: who is on the other end of one inbound connection, as its TLS
// handshake proved it, and the rules of what each role may call. This is the
// seam through which every face implementation (servers.cc) learns its
// caller: one Caller per connection, fixed when the connection is accepted.
// Plain values and pure functions; thread-safe.
//
//   Caller caller = Caller::FromCertificate(cert);  // or Caller::Unauthenticated()
//   if (auto refused = Authorize(caller, Action::kPut)) { /* fail the call with *refused */ }
//   caller.peer_id();  // the proven peer id of a node, empty for a client or --insecure
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "net/certs.h"

namespace replicator::node {

struct Caller {
  // False with --insecure: nothing was proven, and every call is allowed.
  bool authenticated = false;
  // The certificate's CN: a node's peer id (net/certs.h ties it to the key
  // the handshake proved), or a client's user name. Empty if unauthenticated.
  std::string name;
  // The certificate's OU; meaningful only when authenticated.
  net::Role role = net::Role::kRead;

  static Caller Unauthenticated() { return Caller{}; }
  static Caller FromCertificate(const net::PeerCertificate& cert) {
    return Caller{true, cert.common_name, cert.role};
  }
  // The proven peer id of a node (role `node`); empty for a client or an
  // unauthenticated caller. Per-sender checks compare message senders to it.
  std::string_view peer_id() const {
    return authenticated && role == net::Role::kNode ? std::string_view(name) : std::string_view();
  }
  // "node 12D3KooW...", "client alice (role read)", "an unauthenticated caller".
  std::string Describe() const;
};

// What a call asks for, by face and method.
enum class Action {
  kPeer,          // Node.peer(): the Paxos face between nodes
  kDirectory,     // Node.directory(): join, list
  kGet,           // KeyValue.get
  kStatus,        // KeyValue.status
  kPut,           // KeyValue.put
  kChangeMember,  // KeyValue.changeMember (promote, remove)
};

// Every refusal's message starts with this; clients map it to
// PermissionDenied.
inline constexpr std::string_view kPermissionDenied = "permission denied: ";

// The role rules: Peer and Directory need role `node`; get and status need
// `read`, `write` or `admin`; put needs `write` or `admin`; changeMember
// needs `admin`. A `node` certificate is no client: it may not use KeyValue.
// nullopt when `caller` may; otherwise why not, naming the role needed and
// the role held. An unauthenticated caller (--insecure) may do anything.
std::optional<std::string> Authorize(const Caller& caller, Action action);

// A directory registration (Directory.join) of `peer_id`: an authenticated
// node may register only itself. nullopt when allowed, else why not.
std::optional<std::string> AuthorizeJoin(const Caller& caller, std::string_view peer_id);

}  // namespace replicator::node
