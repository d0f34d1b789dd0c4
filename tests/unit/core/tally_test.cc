#include "core/tally.h"

#include <gtest/gtest.h>

namespace replicator::core {
namespace {

using K = TallyOutcome::Kind;

ProposalId Proposal(const std::string& coordinator, uint64_t seq) {
  return ProposalId{coordinator, 1, seq, 0, 1};
}

const ProposalId kSelf = Proposal("a1", 1);
const ProposalId kOther = Proposal("b1", 7);

Vote V(const PeerId& peer, Vote::Kind kind) {
  Vote v;
  v.peer = peer;
  v.cluster = peer.substr(0, 1);
  v.kind = kind;
  if (kind == Vote::Kind::kStored) v.stored = "old";
  if (kind == Vote::Kind::kReserved) v.holder = kOther;
  if (kind == Vote::Kind::kUnreachable) v.reason = "timed out";
  return v;
}

Vote ReservedBy(const PeerId& peer, const ProposalId& holder) {
  Vote v = V(peer, Vote::Kind::kReserved);
  v.holder = holder;
  return v;
}

constexpr auto kOk = Vote::Kind::kOk;
constexpr auto kStored = Vote::Kind::kStored;
constexpr auto kReserved = Vote::Kind::kReserved;
constexpr auto kUnreachable = Vote::Kind::kUnreachable;
constexpr auto kDecided = Vote::Kind::kDecided;

const VoterSnapshot kTwoClusters = {{"a", {"a1", "a2", "a3"}}, {"b", {"b1", "b2", "b3"}}};

struct Case {
  std::string name;
  VoterSnapshot voters;
  std::vector<Vote> votes;
  K want;
  std::string message_has = "";
};

TEST(TallyTest, Table) {
  const std::vector<Case> cases = {
      {"all ok commits", kTwoClusters,
       {V("a1", kOk), V("a2", kOk), V("a3", kOk), V("b1", kOk), V("b2", kOk), V("b3", kOk)},
       K::kCommit},
      {"bare majority everywhere commits", kTwoClusters,
       {V("a1", kOk), V("a2", kOk), V("a3", kUnreachable), V("b1", kOk), V("b2", kOk),
        V("b3", kUnreachable)},
       K::kCommit},
      {"majority everywhere commits despite a minority reserved elsewhere", kTwoClusters,
       {V("a1", kOk), V("a2", kOk), V("a3", kReserved), V("b1", kOk), V("b2", kOk)},
       K::kCommit},
      {"a stored vote wins over majorities", kTwoClusters,
       {V("a1", kOk), V("a2", kOk), V("a3", kOk), V("b1", kOk), V("b2", kOk), V("b3", kStored)},
       K::kKeyExists},
      {"a lone stored vote on a partial set", kTwoClusters, {V("b2", kStored)}, K::kKeyExists},
      {"remote cluster short, unreachable", kTwoClusters,
       {V("a1", kOk), V("a2", kOk), V("a3", kOk), V("b1", kOk), V("b2", kUnreachable),
        V("b3", kUnreachable)},
       K::kUnavailable, "cluster b reserved at 1 of 3 voters"},
      {"unavailable names the first unreachable reason", kTwoClusters,
       {V("a1", kOk), V("a2", kOk), V("b1", kUnreachable)}, K::kUnavailable,
       "b1 unreachable: timed out"},
      {"short and reserved by another proposal is contention", kTwoClusters,
       {V("a1", kOk), V("a2", kOk), V("a3", kOk), V("b1", kOk), V("b2", kReserved),
        V("b3", kReserved)},
       K::kContention, kOther.ToString()},
      {"contention wins over unreachable", kTwoClusters,
       {V("a1", kOk), V("a2", kReserved), V("a3", kUnreachable), V("b1", kUnreachable)},
       K::kContention},
      {"reserved by itself is not contention", kTwoClusters,
       {V("a1", kOk), V("a2", kOk), ReservedBy("b1", kSelf), V("b2", kUnreachable),
        V("b3", kUnreachable)},
       K::kUnavailable},
      {"decided votes do not count", kTwoClusters,
       {V("a1", kOk), V("a2", kDecided), V("a3", kDecided), V("b1", kOk), V("b2", kOk)},
       K::kUnavailable, "already knew the proposal decided"},
      {"a cluster without voters can never reach a majority",
       {{"a", {"a1", "a2", "a3"}}, {"b", {}}},
       {V("a1", kOk), V("a2", kOk), V("a3", kOk), V("b1", kOk)}, K::kUnavailable,
       "cluster b reserved at 0 of 0"},
      {"votes from non-voters and duplicates count once or not at all", kTwoClusters,
       {V("a1", kOk), V("a2", kOk), V("b1", kOk), V("b1", kOk), V("b9", kOk)}, K::kUnavailable,
       "cluster b reserved at 1 of 3"},
      {"two-voter cluster needs both", {{"a", {"a1", "a2"}}},
       {V("a1", kOk), V("a2", kUnreachable)}, K::kUnavailable, "1 of 2"},
      {"no votes at all", kTwoClusters, {}, K::kUnavailable},
      {"no clusters never commits", {}, {}, K::kUnavailable},
  };
  for (const Case& c : cases) {
    TallyOutcome out = Tally(c.voters, c.votes, kSelf);
    EXPECT_EQ(out.kind, c.want) << c.name << ": " << out.message;
    EXPECT_NE(out.message.find(c.message_has), std::string::npos)
        << c.name << ": message '" << out.message << "' lacks '" << c.message_has << "'";
    if (c.want == K::kKeyExists) {
      EXPECT_EQ(out.existing, "old") << c.name;
    }
    if (c.want == K::kContention) {
      ASSERT_EQ(out.holders.size(), 1u) << c.name;
      EXPECT_EQ(out.holders[0], kOther) << c.name;
    }
  }
}

TEST(TallyTest, ContentionListsEveryDistinctHolder) {
  ProposalId third = Proposal("b2", 3);
  TallyOutcome out = Tally(kTwoClusters,
                           {V("a1", kOk), V("a2", kReserved), ReservedBy("a3", third),
                            V("b1", kReserved), V("b2", kReserved)},
                           kSelf);
  ASSERT_EQ(out.kind, K::kContention);
  EXPECT_EQ(out.holders, (std::vector<ProposalId>{kOther, third}));
}

}  // namespace
}  // namespace replicator::core
