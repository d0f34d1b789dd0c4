#include "sim/describe.h"

#include <type_traits>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace replicator::sim {

using namespace replicator::core;  // NOLINT: a file of formatters over core types

std::string Quote(const std::string& bytes) {
  if (bytes.size() <= 24) return absl::StrCat("'", bytes, "'");
  return absl::StrCat("'", bytes.substr(0, 20), "...'(", bytes.size(), "B)");
}

std::string Describe(const ProposalId& p) { return p.ToString(); }

// " rid=N", or nothing for no request id.
static std::string RequestId(uint64_t request_id) {
  return request_id == 0 ? std::string() : absl::StrCat(" rid=", request_id);
}

std::string Describe(const Ballot& b) { return absl::StrCat(b.round, ":", b.proposer); }

std::string Describe(Decision d) { return d == Decision::kCommit ? "commit" : "abort"; }

// "c1@3{n1,n2,n3}": cluster, epoch and voters; "g2" after it for a
// cluster founded at generation 2.
std::string Describe(const Configuration& c) {
  return absl::StrCat(c.cluster, "@", c.epoch, "{", absl::StrJoin(c.voters, ","), "}",
                      c.generation != 0 ? absl::StrCat("g", c.generation) : std::string(),
                      c.removed != 0 ? absl::StrCat(" removed@g", c.removed) : std::string());
}
static std::string Describe(const std::vector<Configuration>& configs) {
  return absl::StrCat(
      "[",
      absl::StrJoin(configs, " ",
                    [](std::string* out, const Configuration& c) { out->append(Describe(c)); }),
      "]");
}

std::string Describe(const Vote& v) {
  switch (v.kind) {
    case Vote::Kind::kOk:
      return absl::StrCat(v.peer, "=ok");
    case Vote::Kind::kStored:
      return absl::StrCat(v.peer, "=stored(", Quote(v.stored), RequestId(v.stored_request_id),
                          ")");
    case Vote::Kind::kReserved:
      return absl::StrCat(v.peer, "=reserved(", Describe(v.holder), ")");
    case Vote::Kind::kUnreachable:
      return absl::StrCat(v.peer, "=unreachable(", v.reason, ")");
    case Vote::Kind::kDecided:
      return absl::StrCat(v.peer, "=decided");
    case Vote::Kind::kWrongEpoch:
      return absl::StrCat(v.peer, "=wrong-epoch(at ", v.epoch, ")");
    case Vote::Kind::kWrongGeneration:
      return absl::StrCat(v.peer, "=wrong-generation(at G", v.generation, " ", Describe(v.configs),
                          ")");
  }
  return "?";
}

std::string Describe(const ReplicaOp& op) {
  return std::visit(
      [](const auto& o) -> std::string {
        using O = std::decay_t<decltype(o)>;
        if constexpr (std::is_same_v<O, ReserveOp>) {
          return absl::StrCat("reserve(", Quote(o.key), ",", Quote(o.value), ",",
                              Describe(o.proposal), RequestId(o.request_id), " @", o.epoch, " G",
                              o.generation, ")");
        } else if constexpr (std::is_same_v<O, CommitOp>) {
          return absl::StrCat("commit(", Quote(o.key), ",", Quote(o.value), ",",
                              Describe(o.proposal), RequestId(o.request_id), ")");
        } else {
          return absl::StrCat("abort(", Quote(o.key), ",", Describe(o.proposal), ")");
        }
      },
      op);
}

std::string Describe(const Request& r) {
  return std::visit(
      [](const auto& q) -> std::string {
        using Q = std::decay_t<decltype(q)>;
        if constexpr (std::is_same_v<Q, HandleRequest>) {
          return absl::StrCat("Handle ", Describe(q.op));
        } else if constexpr (std::is_same_v<Q, ForwardRequest>) {
          return absl::StrCat("Forward ", Describe(q.op), " within ", q.deadline_ms, "ms");
        } else if constexpr (std::is_same_v<Q, AcceptRequest>) {
          return absl::StrCat("Accept ", Describe(q.proposal), " b=", Describe(q.ballot), " ",
                              Describe(q.decision));
        } else if constexpr (std::is_same_v<Q, PrepareRequest>) {
          return absl::StrCat("Prepare ", Describe(q.proposal), " b=", Describe(q.ballot));
        } else if constexpr (std::is_same_v<Q, ReadRequest>) {
          return absl::StrCat("Read ", Quote(q.key), " @", q.epoch);
        } else if constexpr (std::is_same_v<Q, ResolveRequest>) {
          return absl::StrCat("Resolve ", Describe(q.proposal));
        } else if constexpr (std::is_same_v<Q, DigestRequest>) {
          return std::string("Digest");
        } else if constexpr (std::is_same_v<Q, PullRequest>) {
          return absl::StrCat("Pull buckets=", q.bucket, "..", q.bucket_end,
                              " after=", Quote(q.after), " max_bytes=", q.max_bytes);
        } else if constexpr (std::is_same_v<Q, ConfigPrepareRequest>) {
          return absl::StrCat("ConfigPrepare ", q.cluster, "@", q.epoch, " b=", Describe(q.ballot));
        } else if constexpr (std::is_same_v<Q, ConfigAcceptRequest>) {
          return absl::StrCat("ConfigAccept ", q.cluster, "@", q.epoch, " b=", Describe(q.ballot),
                              " {", absl::StrJoin(q.voters, ","), "}");
        } else if constexpr (std::is_same_v<Q, ConfigLearnRequest>) {
          return absl::StrCat("ConfigLearn ", Describe(q.known));
        } else {
          static_assert(std::is_same_v<Q, ChangeRequest>);
          return absl::StrCat("Change ",
                              q.change.kind == MembershipChange::Kind::kAdd ? "add " : "remove ",
                              q.change.peer, q.change.force ? " forced" : "");
        }
      },
      r);
}

std::string Describe(const Response& r) {
  return std::visit(
      [](const auto& s) -> std::string {
        using S = std::decay_t<decltype(s)>;
        if constexpr (std::is_same_v<S, HandleResponse>) {
          return absl::StrCat("HandleResp ", Describe(s.vote));
        } else if constexpr (std::is_same_v<S, ForwardResponse>) {
          return absl::StrCat(
              "ForwardResp ", Describe(s.config), " [",
              absl::StrJoin(s.votes, " ",
                            [](std::string* out, const Vote& v) { out->append(Describe(v)); }),
              "]");
        } else if constexpr (std::is_same_v<S, AcceptResponse>) {
          return s.accepted ? std::string("AcceptResp accepted")
                            : absl::StrCat("AcceptResp rejected promised=", Describe(s.promised));
        } else if constexpr (std::is_same_v<S, PrepareResponse>) {
          if (!s.promised) return absl::StrCat("PrepareResp rejected higher=", Describe(s.higher));
          if (!s.accepted) return std::string("PrepareResp promised none-accepted");
          return absl::StrCat("PrepareResp promised accepted=", Describe(s.accepted->ballot), "/",
                              Describe(s.accepted->decision));
        } else if constexpr (std::is_same_v<S, ReadResponse>) {
          switch (s.kind) {
            case ReadResponse::Kind::kCommitted:
              return absl::StrCat("ReadResp committed ", Quote(s.value));
            case ReadResponse::Kind::kReserved:
              return absl::StrCat("ReadResp reserved ", Quote(s.value), " by ",
                                  Describe(s.holder));
            case ReadResponse::Kind::kAbsent:
              return std::string("ReadResp absent");
            case ReadResponse::Kind::kWrongEpoch:
              return absl::StrCat("ReadResp wrong-epoch(at ", s.epoch, ")");
            case ReadResponse::Kind::kNotReady:
              return std::string("ReadResp not-ready (catching up with the federation)");
          }
          return std::string("ReadResp ?");
        } else if constexpr (std::is_same_v<S, ResolveResponse>) {
          if (!s.decision) return absl::StrCat("ResolveResp unavailable(", s.reason, ")");
          return absl::StrCat("ResolveResp ", Describe(*s.decision));
        } else if constexpr (std::is_same_v<S, DigestResponse>) {
          size_t nonzero = 0;
          uint64_t mix = 0;
          for (uint64_t b : s.buckets) {
            nonzero += b != 0;
            mix = mix * 1099511628211ULL ^ b;
          }
          return absl::StrCat("DigestResp ", s.buckets.size(), " buckets, ", nonzero,
                              " non-empty, mix=", absl::Hex(mix), " @", s.epoch, " G", s.generation,
                              s.federation_settled ? " settled" : " unsettled", ", ",
                              s.reservations.size(), " reserved");
        } else if constexpr (std::is_same_v<S, PullResponse>) {
          return absl::StrCat(
              "PullResp [",
              absl::StrJoin(s.entries, " ",
                            [](std::string* out, const PulledEntry& e) {
                              absl::StrAppend(out, Quote(e.key), "=", Quote(e.value),
                                              RequestId(e.request_id));
                            }),
              "]", s.complete ? "" : " more", " end=", s.bucket_end);
        } else if constexpr (std::is_same_v<S, ConfigVoteResponse>) {
          switch (s.kind) {
            case ConfigVoteResponse::Kind::kGranted:
              return absl::StrCat(
                  "ConfigVote granted",
                  s.accepted ? absl::StrCat(" accepted=", Describe(s.accepted->ballot), "{",
                                            absl::StrJoin(s.accepted->voters, ","), "}")
                             : std::string());
            case ConfigVoteResponse::Kind::kRejected:
              return absl::StrCat("ConfigVote rejected higher=", Describe(s.higher));
            case ConfigVoteResponse::Kind::kChosen:
              return absl::StrCat("ConfigVote chosen ", Describe(s.known));
            case ConfigVoteResponse::Kind::kNotReady:
              return absl::StrCat("ConfigVote not-ready(", s.reason, ")");
          }
          return std::string("ConfigVote ?");
        } else if constexpr (std::is_same_v<S, ConfigLearnResponse>) {
          return absl::StrCat("ConfigLearnResp ", Describe(s.known));
        } else if constexpr (std::is_same_v<S, ChangeResponse>) {
          return absl::StrCat("ChangeResp ", static_cast<int>(s.outcome.kind), " ",
                              s.outcome.message, " ", Describe(s.outcome.config));
        } else {
          return absl::StrCat("Unreachable(", s.reason, ")");
        }
      },
      r);
}

std::string Describe(const Mutation& m) {
  return std::visit(
      [](const auto& x) -> std::string {
        using X = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<X, PutReservation>) {
          return absl::StrCat("PutReservation(", Quote(x.reservation.key), ",",
                              Quote(x.reservation.value), ",", Describe(x.reservation.proposal),
                              ")");
        } else if constexpr (std::is_same_v<X, DeleteReservation>) {
          return absl::StrCat("DeleteReservation(", Quote(x.key), ")");
        } else if constexpr (std::is_same_v<X, PutCommitted>) {
          return absl::StrCat("PutCommitted(", Quote(x.key), ",", Quote(x.value),
                              RequestId(x.request_id), ")");
        } else if constexpr (std::is_same_v<X, PutAcceptor>) {
          std::string acc = x.record.accepted ? absl::StrCat(Describe(x.record.accepted->ballot),
                                                             "/",
                                                             Describe(x.record.accepted->decision))
                                              : std::string("none");
          return absl::StrCat("PutAcceptor(", Describe(x.record.proposal),
                              " promised=", Describe(x.record.promised), " accepted=", acc, ")");
        } else if constexpr (std::is_same_v<X, DeleteAcceptor>) {
          return absl::StrCat("DeleteAcceptor(", Describe(x.proposal), ")");
        } else if constexpr (std::is_same_v<X, PutConfig>) {
          return absl::StrCat("PutConfig(", Describe(x.config), ")");
        } else {
          static_assert(std::is_same_v<X, PutConfigAcceptor>);
          return absl::StrCat("PutConfigAcceptor(", x.record.cluster, "@", x.record.epoch,
                              " promised=", Describe(x.record.promised), ")");
        }
      },
      m);
}

std::string Describe(const PutOutcome& o) {
  switch (o.kind) {
    case PutOutcome::Kind::kOk:
      return "ok";
    case PutOutcome::Kind::kKeyExists:
      return absl::StrCat("keyExists(", Quote(o.existing), ")");
    case PutOutcome::Kind::kConflict:
      return absl::StrCat("conflict(", o.message, ")");
    case PutOutcome::Kind::kUnavailable:
      return absl::StrCat("unavailable(", o.message, ")");
    case PutOutcome::Kind::kInvalidArgument:
      return absl::StrCat("invalidArgument(", o.message, ")");
    case PutOutcome::Kind::kOutcomeUnknown:
      return absl::StrCat("outcomeUnknown(", o.message, ")");
  }
  return "?";
}

std::string Describe(const GetOutcome& o) {
  switch (o.kind) {
    case GetOutcome::Kind::kFound:
      return absl::StrCat("found(", Quote(o.value), ")");
    case GetOutcome::Kind::kNotFound:
      return "notFound";
    case GetOutcome::Kind::kUnavailable:
      return absl::StrCat("unavailable(", o.message, ")");
    case GetOutcome::Kind::kInvalidArgument:
      return absl::StrCat("invalidArgument(", o.message, ")");
  }
  return "?";
}

std::string Describe(const MembershipChange& c) {
  if (c.kind == MembershipChange::Kind::kRemoveCluster) return "remove cluster " + c.cluster;
  return absl::StrCat(c.kind == MembershipChange::Kind::kAdd ? "add " : "remove ", c.peer,
                      c.force ? " (forced)" : "");
}

std::string Describe(const ChangeOutcome& o) {
  switch (o.kind) {
    case ChangeOutcome::Kind::kOk:
      return absl::StrCat("ok ", Describe(o.config));
    case ChangeOutcome::Kind::kInvalidArgument:
      return absl::StrCat("invalidArgument(", o.message, ")");
    case ChangeOutcome::Kind::kBusy:
      return absl::StrCat("busy(", o.message, ") at ", Describe(o.config));
    case ChangeOutcome::Kind::kUnavailable:
      return absl::StrCat("unavailable(", o.message, ")");
  }
  return "?";
}

}  // namespace replicator::sim
