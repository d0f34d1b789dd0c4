#include "node/convert.h"

#include <kj/debug.h>

#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"

namespace replicator::node {
namespace {

// Refuses untrusted input the core must not see, with `why` as the whole
// description (KJ_REQUIRE would append its expression).
[[noreturn]] void Malformed(std::string_view why) {
  kj::throwFatalException(kj::Exception(kj::Exception::Type::FAILED, __FILE__, __LINE__,
                                        kj::heapString(why.data(), why.size())));
}

core::ClusterId ClusterFromWire(capnp::Text::Reader text) {
  core::ClusterId cluster = ToString(text);
  if (auto bad = core::ValidateClusterId(cluster)) Malformed(absl::StrCat("cluster id: ", *bad));
  return cluster;
}

// Voters of a configuration: non-empty peer ids, sorted and each once.
std::vector<core::PeerId> VotersFromWire(capnp::List<capnp::Text>::Reader voters) {
  std::vector<core::PeerId> out;
  out.reserve(voters.size());
  for (auto v : voters) {
    core::PeerId id = ToString(v);
    if (id.empty()) Malformed("a configuration names an empty peer id");
    if (!out.empty() && !(out.back() < id)) {
      Malformed(absl::StrCat("a configuration's voters are not sorted and unique at ", id));
    }
    out.push_back(std::move(id));
  }
  return out;
}

void VotersToWire(const std::vector<core::PeerId>& voters, capnp::List<capnp::Text>::Builder out) {
  for (size_t i = 0; i < voters.size(); ++i) out.set(i, voters[i]);
}

core::Reservation ReservationFromWire(wire::Reservation::Reader r) {
  core::Reservation out;
  out.key = ToString(r.getKey());
  out.value = ToString(r.getValue());
  out.proposal = FromWire(r.getProposal());
  out.request_id = r.getRequestId();
  return out;  // `since` is the holder's clock: not carried
}

void ReservationToWire(const core::Reservation& r, wire::Reservation::Builder out) {
  out.setKey(AsData(r.key));
  out.setValue(AsData(r.value));
  ToWire(r.proposal, out.initProposal());
  out.setRequestId(r.request_id);
}

core::ConfigVoteResponse ConfigVoteFromWire(wire::ConfigVote::Reader v) {
  core::ConfigVoteResponse out;
  switch (v.which()) {
    case wire::ConfigVote::GRANTED: {
      out.kind = core::ConfigVoteResponse::Kind::kGranted;
      auto granted = v.getGranted();
      if (granted.isAccepted()) {
        auto a = granted.getAccepted();
        out.accepted = core::ConfigAccepted{FromWire(a.getBallot()), VotersFromWire(a.getVoters())};
      }
      return out;
    }
    case wire::ConfigVote::REJECTED:
      out.kind = core::ConfigVoteResponse::Kind::kRejected;
      out.higher = FromWire(v.getRejected());
      return out;
    case wire::ConfigVote::CHOSEN:
      out.kind = core::ConfigVoteResponse::Kind::kChosen;
      out.known = FromWire(v.getChosen());
      return out;
    case wire::ConfigVote::NOT_READY:
      out.kind = core::ConfigVoteResponse::Kind::kNotReady;
      out.reason = ToString(v.getNotReady());
      return out;
  }
  Malformed("unknown configuration vote kind (a newer peer?)");
}

void ConfigVoteToWire(const core::ConfigVoteResponse& v, wire::ConfigVote::Builder out) {
  switch (v.kind) {
    case core::ConfigVoteResponse::Kind::kGranted: {
      auto granted = out.initGranted();
      if (v.accepted) {
        auto a = granted.initAccepted();
        ToWire(v.accepted->ballot, a.initBallot());
        VotersToWire(v.accepted->voters, a.initVoters(v.accepted->voters.size()));
      } else {
        granted.setNone();
      }
      break;
    }
    case core::ConfigVoteResponse::Kind::kRejected:
      ToWire(v.higher, out.initRejected());
      break;
    case core::ConfigVoteResponse::Kind::kChosen:
      ToWire(v.known, out.initChosen(v.known.size()));
      break;
    case core::ConfigVoteResponse::Kind::kNotReady:
      out.setNotReady(v.reason);
      break;
  }
}

}  // namespace

std::string ToString(capnp::Text::Reader text) {
  std::string out(text.cStr(), text.size());
  if (out.find('\0') != std::string::npos) Malformed("text holds a NUL byte");
  return out;
}

core::ProposalId FromWire(wire::ProposalId::Reader p) {
  return core::ProposalId{ToString(p.getCoordinator()), p.getIncarnation(), p.getSequence(),
                          p.getStartedMs(), p.getEpoch()};
}

void ToWire(const core::ProposalId& p, wire::ProposalId::Builder out) {
  out.setCoordinator(p.coordinator);
  out.setIncarnation(p.incarnation);
  out.setSequence(p.sequence);
  out.setStartedMs(p.started_ms);
  out.setEpoch(p.epoch);
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

core::Configuration FromWire(wire::Configuration::Reader c) {
  core::Configuration out;
  out.epoch = c.getEpoch();
  out.voters = VotersFromWire(c.getVoters());
  out.generation = c.getGeneration();
  out.removed = c.getRemoved();
  if (out.epoch == 0) {
    // None known: a cluster may be named, voters may not.
    if (!out.voters.empty()) Malformed("a configuration of epoch 0 names voters");
    out.cluster = ToString(c.getCluster());
    if (out.cluster.empty()) return out;
  }
  out.cluster = ClusterFromWire(c.getCluster());
  return out;
}

void ToWire(const core::Configuration& c, wire::Configuration::Builder out) {
  out.setCluster(c.cluster);
  out.setEpoch(c.epoch);
  VotersToWire(c.voters, out.initVoters(c.voters.size()));
  out.setGeneration(c.generation);
  out.setRemoved(c.removed);
}

core::MembershipChange FromWire(wire::MemberChange::Reader c) {
  core::MembershipChange out;
  switch (c.getKind()) {
    case wire::MemberChange::Kind::PROMOTE:
      out.kind = core::MembershipChange::Kind::kAdd;
      break;
    case wire::MemberChange::Kind::REMOVE:
      out.kind = core::MembershipChange::Kind::kRemove;
      break;
    case wire::MemberChange::Kind::REMOVE_CLUSTER:
      out.kind = core::MembershipChange::Kind::kRemoveCluster;
      out.cluster = ClusterFromWire(c.getCluster());
      if (c.getPeer().size() != 0) Malformed("a cluster removal names a peer id");
      return out;
    default:
      Malformed("a membership change of an unknown kind");
  }
  out.peer = ToString(c.getPeer());
  if (out.peer.empty()) Malformed("a membership change names no peer id");
  if (out.peer.size() > 256) Malformed("a membership change names a peer id over 256 bytes");
  out.force = c.getForce();
  return out;
}

void ToWire(const core::MembershipChange& c, wire::MemberChange::Builder out) {
  switch (c.kind) {
    case core::MembershipChange::Kind::kAdd:
      out.setKind(wire::MemberChange::Kind::PROMOTE);
      break;
    case core::MembershipChange::Kind::kRemove:
      out.setKind(wire::MemberChange::Kind::REMOVE);
      break;
    case core::MembershipChange::Kind::kRemoveCluster:
      out.setKind(wire::MemberChange::Kind::REMOVE_CLUSTER);
      out.setCluster(c.cluster);
      return;
  }
  out.setPeer(c.peer);
  out.setForce(c.force);
}

core::ChangeOutcome FromWire(wire::MemberChangeResult::Reader r) {
  core::ChangeOutcome out;
  switch (r.which()) {
    case wire::MemberChangeResult::OK:
      out.kind = core::ChangeOutcome::Kind::kOk;
      break;
    case wire::MemberChangeResult::INVALID_ARGUMENT:
      out.kind = core::ChangeOutcome::Kind::kInvalidArgument;
      out.message = ToString(r.getInvalidArgument());
      break;
    case wire::MemberChangeResult::BUSY:
      out.kind = core::ChangeOutcome::Kind::kBusy;
      out.message = ToString(r.getBusy());
      break;
    case wire::MemberChangeResult::UNAVAILABLE:
      out.kind = core::ChangeOutcome::Kind::kUnavailable;
      out.message = ToString(r.getUnavailable());
      break;
    default:
      Malformed("unknown membership change result (a newer peer?)");
  }
  out.config = FromWire(r.getConfig());
  return out;
}

void ToWire(const core::ChangeOutcome& o, wire::MemberChangeResult::Builder out) {
  switch (o.kind) {
    case core::ChangeOutcome::Kind::kOk:
      out.setOk();
      break;
    case core::ChangeOutcome::Kind::kInvalidArgument:
      out.setInvalidArgument(o.message);
      break;
    case core::ChangeOutcome::Kind::kBusy:
      out.setBusy(o.message);
      break;
    case core::ChangeOutcome::Kind::kUnavailable:
      out.setUnavailable(o.message);
      break;
  }
  ToWire(o.config, out.initConfig());
}

std::vector<core::Configuration> FromWire(capnp::List<wire::Configuration>::Reader configs) {
  std::vector<core::Configuration> out;
  out.reserve(configs.size());
  for (auto c : configs) {
    out.push_back(FromWire(c));
    if (out.back().epoch == 0) Malformed("a list of configurations holds one of epoch 0");
  }
  return out;
}

void ToWire(const std::vector<core::Configuration>& configs,
            capnp::List<wire::Configuration>::Builder out) {
  for (size_t i = 0; i < configs.size(); ++i) ToWire(configs[i], out[i]);
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
    case wire::Vote::WRONG_EPOCH:
      out.kind = core::Vote::Kind::kWrongEpoch;
      out.epoch = v.getWrongEpoch().getEpoch();
      out.configs = FromWire(v.getWrongEpoch().getConfigs());
      break;
    case wire::Vote::WRONG_GENERATION:
      out.kind = core::Vote::Kind::kWrongGeneration;
      out.generation = v.getWrongGeneration().getGeneration();
      out.configs = FromWire(v.getWrongGeneration().getConfigs());
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
    case core::Vote::Kind::kWrongEpoch: {
      auto w = out.initWrongEpoch();
      w.setEpoch(v.epoch);
      ToWire(v.configs, w.initConfigs(v.configs.size()));
      break;
    }
    case core::Vote::Kind::kWrongGeneration: {
      auto w = out.initWrongGeneration();
      w.setGeneration(v.generation);
      ToWire(v.configs, w.initConfigs(v.configs.size()));
      break;
    }
  }
}

core::ReplicaOp FromWire(wire::PeerRequest::Reader r) {
  switch (r.which()) {
    case wire::PeerRequest::RESERVE: {
      auto x = r.getReserve();
      return core::ReserveOp{
          ToString(x.getKey()), ToString(x.getValue()), FromWire(x.getProposal()),
          x.getRequestId(),     x.getEpoch(),           x.getGeneration()};
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
    x.setEpoch(r->epoch);
    x.setGeneration(r->generation);
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
                                 FromWire(a.getDecision()), ToString(a.getKey())};
    }
    case wire::PeerCall::PREPARE: {
      auto p = c.getPrepare();
      return core::PrepareRequest{FromWire(p.getProposal()), FromWire(p.getBallot()),
                                  ToString(p.getKey())};
    }
    case wire::PeerCall::READ:
      return core::ReadRequest{ToString(c.getRead().getKey()), c.getRead().getEpoch()};
    case wire::PeerCall::RESOLVE:
      return core::ResolveRequest{FromWire(c.getResolve()), {}};
    case wire::PeerCall::RESOLVE_KEY: {
      auto r = c.getResolveKey();
      return core::ResolveRequest{FromWire(r.getProposal()), ToString(r.getKey())};
    }
    case wire::PeerCall::CONFIG_PREPARE: {
      auto p = c.getConfigPrepare();
      return core::ConfigPrepareRequest{ClusterFromWire(p.getCluster()), p.getEpoch(),
                                        FromWire(p.getBallot()), FromWire(p.getKnown())};
    }
    case wire::PeerCall::CONFIG_ACCEPT: {
      auto a = c.getConfigAccept();
      return core::ConfigAcceptRequest{ClusterFromWire(a.getCluster()), a.getEpoch(),
                                       FromWire(a.getBallot()), VotersFromWire(a.getVoters()),
                                       FromWire(a.getKnown())};
    }
    case wire::PeerCall::CONFIG_LEARN:
      return core::ConfigLearnRequest{FromWire(c.getConfigLearn().getKnown())};
    case wire::PeerCall::CHANGE:
      return core::ChangeRequest{FromWire(c.getChange())};
  }
  Malformed("unknown peer call kind (a newer peer?)");
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
          a.setKey(AsData(x.key));
        } else if constexpr (std::is_same_v<T, core::PrepareRequest>) {
          auto p = out.initPrepare();
          ToWire(x.proposal, p.initProposal());
          ToWire(x.ballot, p.initBallot());
          p.setKey(AsData(x.key));
        } else if constexpr (std::is_same_v<T, core::ReadRequest>) {
          auto rd = out.initRead();
          rd.setKey(AsData(x.key));
          rd.setEpoch(x.epoch);
        } else if constexpr (std::is_same_v<T, core::ResolveRequest>) {
          if (x.key.empty()) {
            ToWire(x.proposal, out.initResolve());
          } else {
            auto rs = out.initResolveKey();
            ToWire(x.proposal, rs.initProposal());
            rs.setKey(AsData(x.key));
          }
        } else if constexpr (std::is_same_v<T, core::ConfigPrepareRequest>) {
          auto p = out.initConfigPrepare();
          p.setCluster(x.cluster);
          p.setEpoch(x.epoch);
          ToWire(x.ballot, p.initBallot());
          ToWire(x.known, p.initKnown(x.known.size()));
        } else if constexpr (std::is_same_v<T, core::ConfigAcceptRequest>) {
          auto a = out.initConfigAccept();
          a.setCluster(x.cluster);
          a.setEpoch(x.epoch);
          ToWire(x.ballot, a.initBallot());
          VotersToWire(x.voters, a.initVoters(x.voters.size()));
          ToWire(x.known, a.initKnown(x.known.size()));
        } else if constexpr (std::is_same_v<T, core::ConfigLearnRequest>) {
          ToWire(x.known, out.initConfigLearn().initKnown(x.known.size()));
        } else if constexpr (std::is_same_v<T, core::ChangeRequest>) {
          ToWire(x.change, out.initChange());
        } else {
          KJ_FAIL_REQUIRE("digest and pull are not batched");
        }
      },
      r);
}

namespace {

// Throws for a malformed reply; FromWire makes that reply Unreachable.
core::Response ReplyFromWire(wire::PeerReply::Reader r) {
  switch (r.which()) {
    case wire::PeerReply::VOTE:
      return core::HandleResponse{FromWire(r.getVote())};
    case wire::PeerReply::FORWARD: {
      auto f = r.getForward();
      core::ForwardResponse out;
      out.votes.reserve(f.getVotes().size());
      for (auto v : f.getVotes()) out.votes.push_back(FromWire(v));
      out.config = FromWire(f.getConfig());
      return out;
    }
    case wire::PeerReply::ACCEPT: {
      auto a = r.getAccept();
      core::AcceptResponse out;
      out.accepted = a.isAccepted();
      if (a.isRejected()) out.promised = FromWire(a.getRejected());
      out.decided = a.getDecided();
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
      out.decided = p.getDecided();
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
      } else if (rd.isWrongEpoch()) {
        out.kind = core::ReadResponse::Kind::kWrongEpoch;
        out.epoch = rd.getWrongEpoch().getEpoch();
        out.configs = FromWire(rd.getWrongEpoch().getConfigs());
      } else if (rd.isNotReady()) {
        out.kind = core::ReadResponse::Kind::kNotReady;
        out.reason = ToString(rd.getNotReady());
      } else if (!rd.isAbsent()) {
        Malformed("unknown read result kind (a newer peer?)");
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
    case wire::PeerReply::CONFIG_VOTE:
      return ConfigVoteFromWire(r.getConfigVote());
    case wire::PeerReply::CONFIG_LEARN:
      return core::ConfigLearnResponse{FromWire(r.getConfigLearn().getKnown())};
    case wire::PeerReply::CHANGE:
      return core::ChangeResponse{FromWire(r.getChange())};
  }
  return core::Unreachable{"unknown reply kind (a newer peer?)"};
}

}  // namespace

core::Response FromWire(wire::PeerReply::Reader r) {
  core::Response out;
  KJ_IF_MAYBE (e, kj::runCatchingExceptions([&] { out = ReplyFromWire(r); })) {
    return core::Unreachable{absl::StrCat("malformed reply: ", e->getDescription().cStr())};
  }
  return out;
}

void ToWire(const core::Response& r, wire::PeerReply::Builder out) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, core::HandleResponse>) {
          ToWire(x.vote, out.initVote());
        } else if constexpr (std::is_same_v<T, core::ForwardResponse>) {
          auto f = out.initForward();
          auto votes = f.initVotes(x.votes.size());
          for (size_t i = 0; i < x.votes.size(); ++i) ToWire(x.votes[i], votes[i]);
          ToWire(x.config, f.initConfig());
        } else if constexpr (std::is_same_v<T, core::AcceptResponse>) {
          auto a = out.initAccept();
          a.setDecided(x.decided);
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
          p.setDecided(x.decided);
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
            case core::ReadResponse::Kind::kWrongEpoch: {
              auto w = rd.initWrongEpoch();
              w.setEpoch(x.epoch);
              ToWire(x.configs, w.initConfigs(x.configs.size()));
              break;
            }
            case core::ReadResponse::Kind::kNotReady:
              rd.setNotReady(x.reason);
              break;
          }
        } else if constexpr (std::is_same_v<T, core::ResolveResponse>) {
          auto rs = out.initResolve();
          if (x.decision) {
            rs.setDecided(ToWire(*x.decision));
          } else {
            rs.setUnavailable(x.reason);
          }
        } else if constexpr (std::is_same_v<T, core::ConfigVoteResponse>) {
          ConfigVoteToWire(x, out.initConfigVote());
        } else if constexpr (std::is_same_v<T, core::ConfigLearnResponse>) {
          ToWire(x.known, out.initConfigLearn().initKnown(x.known.size()));
        } else if constexpr (std::is_same_v<T, core::ChangeResponse>) {
          ToWire(x.outcome, out.initChange());
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
  out.buckets.reserve(r.getBuckets().size());
  for (uint64_t b : r.getBuckets()) out.buckets.push_back(b);
  out.epoch = r.getEpoch();
  out.reservations.reserve(r.getReservations().size());
  for (auto res : r.getReservations()) out.reservations.push_back(ReservationFromWire(res));
  out.generation = r.getGeneration();
  out.federation_settled = r.getFederationSettled();
  out.known = FromWire(r.getKnown());
  return out;
}

void ToWire(const core::DigestResponse& r, wire::Peer::DigestResults::Builder out) {
  auto buckets = out.initBuckets(r.buckets.size());
  for (size_t i = 0; i < r.buckets.size(); ++i) buckets.set(i, r.buckets[i]);
  out.setEpoch(r.epoch);
  auto reservations = out.initReservations(r.reservations.size());
  for (size_t i = 0; i < r.reservations.size(); ++i)
    ReservationToWire(r.reservations[i], reservations[i]);
  out.setGeneration(r.generation);
  out.setFederationSettled(r.federation_settled);
  ToWire(r.known, out.initKnown(r.known.size()));
}

core::PullRequest FromWire(wire::Peer::PullParams::Reader p) {
  return core::PullRequest{p.getBucket(), ToString(p.getAfter()), p.getMaxBytes(),
                           p.getBucketEnd()};
}

void ToWire(const core::PullRequest& p, wire::Peer::PullParams::Builder out) {
  out.setBucket(p.bucket);
  out.setAfter(AsData(p.after));
  out.setMaxBytes(p.max_bytes);
  out.setBucketEnd(p.bucket_end);
}

core::PullResponse FromWire(wire::Peer::PullResults::Reader r) {
  core::PullResponse out;
  auto entries = r.getEntries();
  out.entries.reserve(entries.size());
  for (auto e : entries) {
    out.entries.push_back(
        core::PulledEntry{ToString(e.getKey()), ToString(e.getValue()), e.getRequestId(),
                          e.hasProposal() ? FromWire(e.getProposal()) : core::ProposalId{}});
  }
  out.complete = r.getComplete();
  out.bucket_end = r.getBucketEnd();
  return out;
}

void ToWire(const core::PullResponse& r, wire::Peer::PullResults::Builder out) {
  auto entries = out.initEntries(r.entries.size());
  for (size_t i = 0; i < r.entries.size(); ++i) {
    entries[i].setKey(AsData(r.entries[i].key));
    entries[i].setValue(AsData(r.entries[i].value));
    entries[i].setRequestId(r.entries[i].request_id);
    if (!r.entries[i].proposal.coordinator.empty()) {
      ToWire(r.entries[i].proposal, entries[i].initProposal());
    }
  }
  out.setComplete(r.complete);
  out.setBucketEnd(r.bucket_end);
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
  ToWire(s.configurations, out.initConfigurations(s.configurations.size()));
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
  out.setConfigEpoch(s.engine.config_epoch);
  out.setConfigChanges(s.engine.config_changes);
  out.setStaleEpochRefusals(s.engine.stale_epoch_refusals);
  out.setFederationGeneration(s.engine.federation_generation);
  out.setFederationSettled(s.engine.federation_settled);
  out.setGenerationRefusals(s.engine.generation_refusals);
  out.setUptimeMs(s.uptime_ms);
  out.setInsecure(s.insecure);
  out.setBatchedCalls(s.batches.calls);
  out.setBatchedItems(s.batches.items);
  out.setShards(s.shards);
}

}  // namespace replicator::node
