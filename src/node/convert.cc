#include "node/convert.h"

#include <type_traits>
#include <variant>

#include <kj/debug.h>

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

core::Request FromWire(wire::PeerCall::Reader c) {
  switch (c.which()) {
    case wire::PeerCall::HANDLE:
      return core::HandleRequest{FromWire(c.getHandle())};
    case wire::PeerCall::FORWARD: {
      auto f = c.getForward();
      return core::ForwardRequest{FromWire(f.getRequest()), f.getDeadlineMs()};
    }
    case wire::PeerCall::ACCEPT: {
      auto a = c.getAccept();
      return core::AcceptRequest{FromWire(a.getProposal()), FromWire(a.getBallot()),
                                 FromWire(a.getDecision())};
    }
    case wire::PeerCall::PREPARE: {
      auto p = c.getPrepare();
      return core::PrepareRequest{FromWire(p.getProposal()), FromWire(p.getBallot())};
    }
    case wire::PeerCall::READ:
      return core::ReadRequest{ToString(c.getRead())};
    case wire::PeerCall::RESOLVE:
      return core::ResolveRequest{FromWire(c.getResolve())};
  }
  KJ_FAIL_REQUIRE("unknown peer call kind (a newer peer?)");
}

void ToWire(const core::Request& r, wire::PeerCall::Builder out) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, core::HandleRequest>) {
          ToWire(x.op, out.initHandle());
        } else if constexpr (std::is_same_v<T, core::ForwardRequest>) {
          auto f = out.initForward();
          ToWire(x.op, f.initRequest());
          f.setDeadlineMs(x.deadline_ms);
        } else if constexpr (std::is_same_v<T, core::AcceptRequest>) {
          auto a = out.initAccept();
          ToWire(x.proposal, a.initProposal());
          ToWire(x.ballot, a.initBallot());
          a.setDecision(ToWire(x.decision));
        } else if constexpr (std::is_same_v<T, core::PrepareRequest>) {
          auto p = out.initPrepare();
          ToWire(x.proposal, p.initProposal());
          ToWire(x.ballot, p.initBallot());
        } else if constexpr (std::is_same_v<T, core::ReadRequest>) {
          out.setRead(AsData(x.key));
        } else if constexpr (std::is_same_v<T, core::ResolveRequest>) {
          ToWire(x.proposal, out.initResolve());
        } else {
          KJ_FAIL_REQUIRE("digest and pull are not batched");
        }
      },
      r);
}

core::Response FromWire(wire::PeerReply::Reader r) {
  switch (r.which()) {
    case wire::PeerReply::VOTE:
      return core::HandleResponse{FromWire(r.getVote())};
    case wire::PeerReply::VOTES: {
      core::ForwardResponse out;
      for (auto v : r.getVotes()) out.votes.push_back(FromWire(v));
      return out;
    }
    case wire::PeerReply::ACCEPT: {
      auto a = r.getAccept();
      core::AcceptResponse out;
      out.accepted = a.isAccepted();
      if (a.isRejected()) out.promised = FromWire(a.getRejected());
      return out;
    }
    case wire::PeerReply::PREPARE: {
      auto p = r.getPrepare();
      core::PrepareResponse out;
      if (p.isRejected()) {
        out.higher = FromWire(p.getRejected());
        return out;
      }
      out.promised = true;
      auto accepted = p.getPromised();
      if (accepted.isValue()) {
        auto v = accepted.getValue();
        out.accepted = core::AcceptedValue{FromWire(v.getBallot()), FromWire(v.getDecision())};
      }
      return out;
    }
    case wire::PeerReply::READ: {
      auto rd = r.getRead();
      core::ReadResponse out;
      if (rd.isCommitted()) {
        out.kind = core::ReadResponse::Kind::kCommitted;
        out.value = ToString(rd.getCommitted());
      } else if (rd.isReserved()) {
        out.kind = core::ReadResponse::Kind::kReserved;
        out.holder = FromWire(rd.getReserved().getProposal());
        out.value = ToString(rd.getReserved().getValue());
      }
      return out;
    }
    case wire::PeerReply::RESOLVE: {
      auto rs = r.getResolve();
      core::ResolveResponse out;
      if (rs.isDecided()) {
        out.decision = FromWire(rs.getDecided());
      } else {
        out.reason = ToString(rs.getUnavailable());
      }
      return out;
    }
    case wire::PeerReply::FAILED:
      return core::Unreachable{ToString(r.getFailed())};
  }
  return core::Unreachable{"unknown reply kind (a newer peer?)"};
}

void ToWire(const core::Response& r, wire::PeerReply::Builder out) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, core::HandleResponse>) {
          ToWire(x.vote, out.initVote());
        } else if constexpr (std::is_same_v<T, core::ForwardResponse>) {
          auto votes = out.initVotes(x.votes.size());
          for (size_t i = 0; i < x.votes.size(); ++i) ToWire(x.votes[i], votes[i]);
        } else if constexpr (std::is_same_v<T, core::AcceptResponse>) {
          auto a = out.initAccept();
          if (x.accepted) {
            a.setAccepted();
          } else {
            ToWire(x.promised, a.initRejected());
          }
        } else if constexpr (std::is_same_v<T, core::PrepareResponse>) {
          auto p = out.initPrepare();
          if (!x.promised) {
            ToWire(x.higher, p.initRejected());
            return;
          }
          auto promised = p.initPromised();
          if (x.accepted) {
            auto v = promised.initValue();
            ToWire(x.accepted->ballot, v.initBallot());
            v.setDecision(ToWire(x.accepted->decision));
          } else {
            promised.setNone();
          }
        } else if constexpr (std::is_same_v<T, core::ReadResponse>) {
          auto rd = out.initRead();
          switch (x.kind) {
            case core::ReadResponse::Kind::kCommitted:
              rd.setCommitted(AsData(x.value));
              break;
            case core::ReadResponse::Kind::kReserved: {
              auto e = rd.initReserved();
              ToWire(x.holder, e.initProposal());
              e.setValue(AsData(x.value));
              break;
            }
            case core::ReadResponse::Kind::kAbsent:
              rd.setAbsent();
              break;
          }
        } else if constexpr (std::is_same_v<T, core::ResolveResponse>) {
          auto rs = out.initResolve();
          if (x.decision) {
            rs.setDecided(ToWire(*x.decision));
          } else {
            rs.setUnavailable(x.reason);
          }
        } else if constexpr (std::is_same_v<T, core::Unreachable>) {
          out.setFailed(x.reason);
        } else {
          // Digest and pull answer through their own methods; an engine
          // answering a batched call with one is a bug, reported as a failure.
          out.setFailed("engine answered with the wrong response type");
        }
      },
      r);
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

std::vector<core::Member> FromWire(capnp::List<wire::PeerInfo>::Reader members) {
  std::vector<core::Member> out;
  for (auto m : members) out.push_back(FromWire(m));
  return out;
}

void ToWire(const std::vector<core::Member>& members, capnp::List<wire::PeerInfo>::Builder out) {
  for (size_t i = 0; i < members.size(); ++i) ToWire(members[i], out[i]);
}

core::DigestResponse FromWire(wire::Peer::DigestResults::Reader r) {
  core::DigestResponse out;
  for (uint64_t b : r.getBuckets()) out.buckets.push_back(b);
  return out;
}

void ToWire(const core::DigestResponse& r, wire::Peer::DigestResults::Builder out) {
  auto buckets = out.initBuckets(r.buckets.size());
  for (size_t i = 0; i < r.buckets.size(); ++i) buckets.set(i, r.buckets[i]);
}

core::PullRequest FromWire(wire::Peer::PullParams::Reader p) {
  return core::PullRequest{p.getBucket(), ToString(p.getAfter()), p.getMaxBytes()};
}

void ToWire(const core::PullRequest& p, wire::Peer::PullParams::Builder out) {
  out.setBucket(p.bucket);
  out.setAfter(AsData(p.after));
  out.setMaxBytes(p.max_bytes);
}

core::PullResponse FromWire(wire::Peer::PullResults::Reader r) {
  core::PullResponse out;
  for (auto e : r.getEntries()) {
    out.entries.push_back(
        core::PulledEntry{ToString(e.getKey()), ToString(e.getValue()), e.getRequestId()});
  }
  out.complete = r.getComplete();
  return out;
}

void ToWire(const core::PullResponse& r, wire::Peer::PullResults::Builder out) {
  auto entries = out.initEntries(r.entries.size());
  for (size_t i = 0; i < r.entries.size(); ++i) {
    entries[i].setKey(AsData(r.entries[i].key));
    entries[i].setValue(AsData(r.entries[i].value));
    entries[i].setRequestId(r.entries[i].request_id);
  }
  out.setComplete(r.complete);
}

core::Consistency FromWire(wire::Consistency c) {
  return c == wire::Consistency::LINEARIZABLE ? core::Consistency::kLinearizable
                                              : core::Consistency::kLocal;
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
    case core::PutOutcome::Kind::kOutcomeUnknown:
      out.setOutcomeUnknown(o.message);
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

void ToWire(const StatusReport& s, wire::NodeStatus::Builder out) {
  ToWire(s.self, out.initSelf());
  ToWire(s.members, out.initMembers(s.members.size()));
  out.setCommittedKeys(s.committed_keys);
  out.setReservations(s.engine.reservations);
  out.setPutsOk(s.engine.puts_ok);
  out.setPutsKeyExists(s.engine.puts_key_exists);
  out.setPutsConflict(s.engine.puts_conflict);
  out.setPutsUnavailable(s.engine.puts_unavailable);
  out.setPutsOutcomeUnknown(s.engine.puts_outcome_unknown);
  out.setPutsInvalid(s.engine.puts_invalid);
  out.setGets(s.engine.gets);
  out.setSafetyViolations(s.engine.safety_violations);
  out.setStorageWrites(s.storage.writes);
  out.setStorageBatches(s.storage.batches_written);
  out.setStorageSyncs(s.storage.syncs);
  out.setPutRetries(s.engine.put_retries);
  out.setPutsJoined(s.engine.puts_joined);
  out.setCatchupRounds(s.engine.catchup_rounds);
  out.setCatchupKeysPulled(s.engine.catchup_keys_pulled);
  out.setStorageMutations(s.storage.mutations);
  out.setStorageWriteErrors(s.storage.write_errors);
  out.setStorageWritesRefused(s.storage.writes_refused);
  out.setUptimeMs(s.uptime_ms);
}

}  // namespace replicator::node
