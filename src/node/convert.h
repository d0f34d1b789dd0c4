// Translation between the wire schema (schema/replicator.capnp) and the
// protocol core's plain values: every conversion the node makes, for peer
// calls, client calls, membership and status. The only place besides
// client/ that knows both. Pure functions; thread-compatible.
//
// What comes off the wire is untrusted. A reader throws kj::Exception for
// input the core must never see (a malformed configuration, a call kind
// this build does not know); the one exception is FromWire(PeerReply),
// which answers such a reply core::Unreachable, as it does a `failed` one.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/engine.h"
#include "core/messages.h"
#include "core/types.h"
#include "schema/replicator.capnp.h"
#include "storage/storage.h"

namespace replicator::node {

inline std::string ToString(capnp::Data::Reader data) {
  return std::string(reinterpret_cast<const char*>(data.begin()), data.size());
}
// Text from a peer or client: a NUL inside it is refused (KJ exception), as
// every consumer of a C string, Cap'n Proto's own setters among them, would
// cut the text there and see another peer id, cluster or address.
std::string ToString(capnp::Text::Reader text);
inline capnp::Data::Reader AsData(std::string_view bytes) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(bytes.data()), bytes.size());
}

core::ProposalId FromWire(wire::ProposalId::Reader p);
void ToWire(const core::ProposalId& p, wire::ProposalId::Builder out);

core::Ballot FromWire(wire::Ballot::Reader b);
void ToWire(const core::Ballot& b, wire::Ballot::Builder out);

core::Decision FromWire(wire::Decision d);
wire::Decision ToWire(core::Decision d);

// A configuration is well formed when its voters are non-empty peer ids,
// sorted and each once, and its cluster id is valid (or empty, with no
// voters, at epoch 0: none). In a list, every configuration has an epoch.
core::Configuration FromWire(wire::Configuration::Reader c);
void ToWire(const core::Configuration& c, wire::Configuration::Builder out);
std::vector<core::Configuration> FromWire(capnp::List<wire::Configuration>::Reader configs);
// `out` holds configs.size() elements.
void ToWire(const std::vector<core::Configuration>& configs,
            capnp::List<wire::Configuration>::Builder out);

// A membership change names a non-empty peer id of at most 256 bytes.
core::MembershipChange FromWire(wire::MemberChange::Reader c);
void ToWire(const core::MembershipChange& c, wire::MemberChange::Builder out);
core::ChangeOutcome FromWire(wire::MemberChangeResult::Reader r);
void ToWire(const core::ChangeOutcome& o, wire::MemberChangeResult::Builder out);

core::Vote FromWire(wire::Vote::Reader v);
void ToWire(const core::Vote& v, wire::Vote::Builder out);

core::ReplicaOp FromWire(wire::PeerRequest::Reader r);
void ToWire(const core::ReplicaOp& op, wire::PeerRequest::Builder out);

// One protocol call in a Peer.call batch. Digest and pull have methods of
// their own; ToWire must not be given them.
core::Request FromWire(wire::PeerCall::Reader c);
void ToWire(const core::Request& r, wire::PeerCall::Builder out);

// The answer to one call. A `failed` reply becomes core::Unreachable.
core::Response FromWire(wire::PeerReply::Reader r);
void ToWire(const core::Response& r, wire::PeerReply::Builder out);

core::Member FromWire(wire::PeerInfo::Reader m);
void ToWire(const core::Member& m, wire::PeerInfo::Builder out);

std::vector<core::Member> FromWire(capnp::List<wire::PeerInfo>::Reader members);
// `out` holds members.size() elements.
void ToWire(const std::vector<core::Member>& members, capnp::List<wire::PeerInfo>::Builder out);

// Catch-up's own methods, Peer.digest and Peer.pull.
core::DigestResponse FromWire(wire::Peer::DigestResults::Reader r);
void ToWire(const core::DigestResponse& r, wire::Peer::DigestResults::Builder out);
core::PullRequest FromWire(wire::Peer::PullParams::Reader p);
void ToWire(const core::PullRequest& p, wire::Peer::PullParams::Builder out);
core::PullResponse FromWire(wire::Peer::PullResults::Reader r);
void ToWire(const core::PullResponse& r, wire::Peer::PullResults::Builder out);

core::Consistency FromWire(wire::Consistency c);
void ToWire(const core::PutOutcome& o, wire::PutResult::Builder out);
void ToWire(const core::GetOutcome& o, wire::GetResult::Builder out);

// KeyValue.putMany and getMany calls served, and the items they carried.
// Reactor thread only.
struct BatchStats {
  uint64_t calls = 0;
  uint64_t items = 0;
};

// What KeyValue.status reports (wire::NodeStatus).
struct StatusReport {
  core::Member self;
  std::vector<core::Member> members;  // ordered by cluster, then id
  uint64_t committed_keys = 0;
  core::EngineStats engine;
  // The newest configuration of every cluster known, this node's first.
  std::vector<core::Configuration> configurations;
  storage::StorageStats storage;
  int64_t uptime_ms = 0;
  bool insecure = false;  // --insecure: plaintext, nobody authenticated
  BatchStats batches;
  uint32_t shards = 1;  // engines the node runs; `engine` sums theirs
};
void ToWire(const StatusReport& s, wire::NodeStatus::Builder out);

}  // namespace replicator::node
