#include "node/convert.h"

namespace replicator::node {

core::ProposalId FromWire(wire::ProposalId::Reader p) {
  return core::ProposalId{ToString(p.getCoordinator()), p.getIncarnation(), p.getSequence(),
                          p.getStartedMs()};
}

void ToWire(const core::ProposalId& p, wire::ProposalId::Builder out) {
  out.setCoordinator(p.coordinator);
  out.setIncarnation(p.incarnation);
  out.setSequence(p.sequence);
  out.setStartedMs(p.started_ms);
}

core::Ballot FromWire(wire::Ballot::Reader b) {
  return core::Ballot{b.getRound(), ToString(b.getProposer())};
}

void ToWire(const core::Ballot& b, wire::Ballot::Builder out) {
  out.setRound(b.round);
  out.setProposer(b.proposer);
}

core::Decision FromWire(wire::Decision d) {
  return d == wire::Decision::COMMIT ? core::Decision::kCommit : core::Decision::kAbort;
}

wire::Decision ToWire(core::Decision d) {
  return d == core::Decision::kCommit ? wire::Decision::COMMIT : wire::Decision::ABORT;
}

core::Vote FromWire(wire::Vote::Reader v) {
  core::Vote out;
  out.peer = ToString(v.getPeer());
  out.cluster = ToString(v.getCluster());
  switch (v.which()) {
    case wire::Vote::OK:
      out.kind = core::Vote::Kind::kOk;
      break;
    case wire::Vote::STORED:
      out.kind = core::Vote::Kind::kStored;
      out.stored = ToString(v.getStored().getValue());
      out.stored_request_id = v.getStored().getRequestId();
      break;
    case wire::Vote::RESERVED:
      out.kind = core::Vote::Kind::kReserved;
      out.holder = FromWire(v.getReserved());
      break;
    case wire::Vote::UNREACHABLE:
      out.kind = core::Vote::Kind::kUnreachable;
      out.reason = ToString(v.getUnreachable());
      break;
    case wire::Vote::DECIDED:
      out.kind = core::Vote::Kind::kDecided;
      break;
    default:
      // A vote kind from a newer peer: not an ok, so never counted towards
      // a quorum.
      out.kind = core::Vote::Kind::kUnreachable;
      out.reason = "unknown vote kind";
      break;
  }
  return out;
}

void ToWire(const core::Vote& v, wire::Vote::Builder out) {
  out.setPeer(v.peer);
  out.setCluster(v.cluster);
  switch (v.kind) {
    case core::Vote::Kind::kOk:
      out.setOk();
      break;
    case core::Vote::Kind::kStored: {
      auto stored = out.initStored();
      stored.setValue(AsData(v.stored));
      stored.setRequestId(v.stored_request_id);
      break;
    }
    case core::Vote::Kind::kReserved:
      ToWire(v.holder, out.initReserved());
      break;
    case core::Vote::Kind::kUnreachable:
      out.setUnreachable(v.reason);
      break;
    case core::Vote::Kind::kDecided:
      out.setDecided();
      break;
  }
}

core::ReplicaOp FromWire(wire::PeerRequest::Reader r) {
  switch (r.which()) {
    case wire::PeerRequest::RESERVE: {
      auto x = r.getReserve();
      return core::ReserveOp{ToString(x.getKey()), ToString(x.getValue()),
                             FromWire(x.getProposal()), x.getRequestId()};
    }
    case wire::PeerRequest::COMMIT: {
      auto x = r.getCommit();
      return core::CommitOp{ToString(x.getKey()), ToString(x.getValue()),
                            FromWire(x.getProposal()), x.getRequestId()};
    }
    case wire::PeerRequest::ABORT:
    default: {
      auto x = r.getAbort();
      return core::AbortOp{ToString(x.getKey()), FromWire(x.getProposal())};
    }
  }
}

void ToWire(const core::ReplicaOp& op, wire::PeerRequest::Builder out) {
  if (auto* r = std::get_if<core::ReserveOp>(&op)) {
    auto x = out.initReserve();
    x.setKey(AsData(r->key));
    x.setValue(AsData(r->value));
    ToWire(r->proposal, x.initProposal());
    x.setRequestId(r->request_id);
  } else if (auto* c = std::get_if<core::CommitOp>(&op)) {
    auto x = out.initCommit();
    x.setKey(AsData(c->key));
    x.setValue(AsData(c->value));
    ToWire(c->proposal, x.initProposal());
    x.setRequestId(c->request_id);
  } else {
    const auto& a = std::get<core::AbortOp>(op);
    auto x = out.initAbort();
    x.setKey(AsData(a.key));
    ToWire(a.proposal, x.initProposal());
  }
}

core::Member FromWire(wire::PeerInfo::Reader m) {
  core::Member out;
  out.id = ToString(m.getId());
  out.cluster = ToString(m.getCluster());
  out.address = ToString(m.getAddress());
  switch (m.getState()) {
    case wire::PeerState::CATCHING_UP:
      out.state = core::PeerState::kCatchingUp;
      break;
    case wire::PeerState::DOWN:
      out.state = core::PeerState::kDown;
      break;
    case wire::PeerState::VOTER:
    default:
      out.state = core::PeerState::kVoter;
      break;
  }
  return out;
}

void ToWire(const core::Member& m, wire::PeerInfo::Builder out) {
  out.setId(m.id);
  out.setCluster(m.cluster);
  out.setAddress(m.address);
  switch (m.state) {
    case core::PeerState::kVoter:
      out.setState(wire::PeerState::VOTER);
      break;
    case core::PeerState::kCatchingUp:
      out.setState(wire::PeerState::CATCHING_UP);
      break;
    case core::PeerState::kDown:
      out.setState(wire::PeerState::DOWN);
      break;
  }
}

void ToWire(const core::PutOutcome& o, wire::PutResult::Builder out) {
  switch (o.kind) {
    case core::PutOutcome::Kind::kOk:
      out.setOk();
      break;
    case core::PutOutcome::Kind::kKeyExists:
      out.setKeyExists(AsData(o.existing));
      break;
    case core::PutOutcome::Kind::kConflict:
      out.setConflict(o.message);
      break;
    case core::PutOutcome::Kind::kUnavailable:
      out.setUnavailable(o.message);
      break;
    case core::PutOutcome::Kind::kInvalidArgument:
      out.setInvalidArgument(o.message);
      break;
  }
}

void ToWire(const core::GetOutcome& o, wire::GetResult::Builder out) {
  switch (o.kind) {
    case core::GetOutcome::Kind::kFound:
      out.setFound(AsData(o.value));
      break;
    case core::GetOutcome::Kind::kNotFound:
      out.setNotFound();
      break;
    case core::GetOutcome::Kind::kUnavailable:
      out.setUnavailable(o.message);
      break;
    case core::GetOutcome::Kind::kInvalidArgument:
      out.setInvalidArgument(o.message);
      break;
  }
}

}  // namespace replicator::node
