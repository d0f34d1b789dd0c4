// Translation between the wire schema (schema/replicator.capnp) and the
// protocol core's plain values. The only place besides client/ that knows
// both. Pure functions; thread-compatible.
#pragma once

#include <string>
#include <string_view>

#include "core/engine.h"
#include "core/messages.h"
#include "core/types.h"
#include "schema/replicator.capnp.h"

namespace replicator::node {

inline std::string ToString(capnp::Data::Reader data) {
  return std::string(reinterpret_cast<const char*>(data.begin()), data.size());
}
inline std::string ToString(capnp::Text::Reader text) { return std::string(text.cStr(), text.size()); }
inline capnp::Data::Reader AsData(std::string_view bytes) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(bytes.data()), bytes.size());
}

core::ProposalId FromWire(wire::ProposalId::Reader p);
void ToWire(const core::ProposalId& p, wire::ProposalId::Builder out);

core::Ballot FromWire(wire::Ballot::Reader b);
void ToWire(const core::Ballot& b, wire::Ballot::Builder out);

core::Decision FromWire(wire::Decision d);
wire::Decision ToWire(core::Decision d);

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

void ToWire(const core::PutOutcome& o, wire::PutResult::Builder out);
void ToWire(const core::GetOutcome& o, wire::GetResult::Builder out);

}  // namespace replicator::node
