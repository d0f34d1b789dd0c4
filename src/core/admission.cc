#include "core/admission.h"

#include <type_traits>
#include <variant>

#include "absl/strings/str_cat.h"

namespace replicator::core {
namespace {

const ProposalId& ProposalOf(const ReplicaOp& op) {
  return std::visit([](const auto& x) -> const ProposalId& { return x.proposal; }, op);
}

const char* OpName(const ReplicaOp& op) {
  if (std::holds_alternative<ReserveOp>(op)) return "reserve";
  if (std::holds_alternative<CommitOp>(op)) return "commit";
  return "abort";
}

std::optional<std::string> FromProposer(const Sender& from, const Ballot& ballot,
                                        const char* what) {
  if (ballot.proposer == from.peer) return std::nullopt;
  return absl::StrCat(what, " at ballot (", ballot.round, ", ", ballot.proposer, ") came from ",
                      from.peer, ", not from its proposer");
}

std::optional<std::string> FromOwnCluster(const Sender& from, const MemberOfOwnCluster& in_own,
                                          const char* what) {
  if (in_own(from.peer)) return std::nullopt;
  return absl::StrCat(what, " came from ", from.peer,
                      ", which is not a member of this node's cluster");
}

}  // namespace

std::optional<std::string> Admit(const Sender& from, const Request& request,
                                 const MemberOfOwnCluster& in_own_cluster) {
  return std::visit(
      [&](const auto& x) -> std::optional<std::string> {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, HandleRequest>) {
          const ProposalId& p = ProposalOf(x.op);
          if (from.peer == p.coordinator) return std::nullopt;
          if (!in_own_cluster(from.peer)) {
            return absl::StrCat(OpName(x.op), " of proposal ", p.ToString(), " came from ",
                                from.peer,
                                ", neither its coordinator nor a representative of this cluster");
          }
          if (in_own_cluster(p.coordinator)) {
            return absl::StrCat(OpName(x.op), " of proposal ", p.ToString(), " was relayed by ",
                                from.peer, ", but its coordinator is of this cluster");
          }
          return std::nullopt;
        } else if constexpr (std::is_same_v<T, ForwardRequest>) {
          const ProposalId& p = ProposalOf(x.op);
          if (from.peer == p.coordinator) return std::nullopt;
          return absl::StrCat("forward of proposal ", p.ToString(), " came from ", from.peer,
                              ", not from its coordinator");
        } else if constexpr (std::is_same_v<T, PrepareRequest>) {
          if (x.ballot.round == 0) {
            return std::string("prepare at round 0: that round belongs to the coordinator");
          }
          if (auto bad = FromProposer(from, x.ballot, "prepare")) return bad;
          return FromOwnCluster(from, in_own_cluster, "prepare");
        } else if constexpr (std::is_same_v<T, AcceptRequest>) {
          if (auto bad = FromProposer(from, x.ballot, "accept")) return bad;
          if (x.ballot.round == 0 && from.peer != x.proposal.coordinator) {
            return absl::StrCat("accept at round 0 of proposal ", x.proposal.ToString(),
                                " came from ", from.peer, ", not from its coordinator");
          }
          return FromOwnCluster(from, in_own_cluster, "accept");
        } else if constexpr (std::is_same_v<T, ConfigPrepareRequest> ||
                             std::is_same_v<T, ConfigAcceptRequest>) {
          return FromProposer(from, x.ballot, "configuration vote");
        } else {
          return std::nullopt;
        }
      },
      request);
}

}  // namespace replicator::core
