// Peer.call batches carry every protocol call and answer through
// convert.cc: each kind must come back as it went out, and a kind this
// build does not know must fail that call alone, never be misread.
#include "node/convert.h"

#include <gtest/gtest.h>

#include <capnp/any.h>
#include <capnp/message.h>

#include <string>
#include <variant>
#include <vector>

namespace replicator::node {
namespace {

const core::ProposalId kP{"12D3KooWcoordinator", 3, 17, 1234, /*epoch=*/6};
const core::Configuration kC2{
    "c2", 4, {"12D3KooWa", "12D3KooWb", "12D3KooWc", "12D3KooWd"}, /*generation=*/3};
const core::Configuration kC0{"c0", 1, {"12D3KooWx", "12D3KooWy", "12D3KooWz"}};

core::Request RoundTrip(const core::Request& r) {
  capnp::MallocMessageBuilder message;
  auto call = message.initRoot<wire::PeerCall>();
  ToWire(r, call);
  return FromWire(call.asReader());
}

core::Response RoundTrip(const core::Response& r) {
  capnp::MallocMessageBuilder message;
  auto reply = message.initRoot<wire::PeerReply>();
  ToWire(r, reply);
  return FromWire(reply.asReader());
}

TEST(ConvertTest, EveryBatchedCallKindRoundTrips) {
  std::string value("v\0\xff", 3);
  {
    auto r = std::get<core::HandleRequest>(
        RoundTrip(core::HandleRequest{core::ReserveOp{"k", value, kP, 99}}));
    const auto& op = std::get<core::ReserveOp>(r.op);
    EXPECT_EQ(op.key, "k");
    EXPECT_EQ(op.value, value);
    EXPECT_EQ(op.proposal, kP);
    EXPECT_EQ(op.proposal.started_ms, kP.started_ms);
    EXPECT_EQ(op.proposal.epoch, kP.epoch);
    EXPECT_EQ(op.request_id, 99u);
    EXPECT_EQ(op.epoch, 0u);
  }
  {
    auto r = std::get<core::ForwardRequest>(RoundTrip(core::ForwardRequest{
        core::ReserveOp{"k", value, kP, 99, /*epoch=*/4, /*generation=*/5}, 800}));
    EXPECT_EQ(std::get<core::ReserveOp>(r.op).epoch, 4u);
    EXPECT_EQ(std::get<core::ReserveOp>(r.op).generation, 5u);
  }
  {
    auto r = std::get<core::ForwardRequest>(
        RoundTrip(core::ForwardRequest{core::CommitOp{"k", value, kP, 7}, 800}));
    EXPECT_EQ(r.deadline_ms, 800u);
    const auto& op = std::get<core::CommitOp>(r.op);
    EXPECT_EQ(op.value, value);
    EXPECT_EQ(op.request_id, 7u);
  }
  {
    auto r = std::get<core::HandleRequest>(
        RoundTrip(core::HandleRequest{core::AbortOp{"k", kP}}));
    EXPECT_EQ(std::get<core::AbortOp>(r.op).proposal, kP);
  }
  {
    auto r = std::get<core::AcceptRequest>(RoundTrip(core::AcceptRequest{
        kP, core::Ballot{4, "12D3KooWproposer"}, core::Decision::kCommit, value}));
    EXPECT_EQ(r.proposal, kP);
    EXPECT_EQ(r.ballot, (core::Ballot{4, "12D3KooWproposer"}));
    EXPECT_EQ(r.decision, core::Decision::kCommit);
    EXPECT_EQ(r.key, value);
  }
  {
    auto r = std::get<core::PrepareRequest>(
        RoundTrip(core::PrepareRequest{kP, core::Ballot{2, "12D3KooWp"}, "k"}));
    EXPECT_EQ(r.ballot, (core::Ballot{2, "12D3KooWp"}));
    EXPECT_EQ(r.key, "k");
    // An older build's prepare carries no key.
    EXPECT_EQ(std::get<core::PrepareRequest>(
                  RoundTrip(core::PrepareRequest{kP, core::Ballot{2, "12D3KooWp"}, ""}))
                  .key,
              "");
  }
  {
    auto r = std::get<core::ReadRequest>(RoundTrip(core::ReadRequest{value, /*epoch=*/3}));
    EXPECT_EQ(r.key, value);
    EXPECT_EQ(r.epoch, 3u);
  }
  {
    // With a key it travels as resolveKey; without (what an older build
    // sent), as resolve.
    auto r = std::get<core::ResolveRequest>(RoundTrip(core::ResolveRequest{kP, "k"}));
    EXPECT_EQ(r.proposal, kP);
    EXPECT_EQ(r.key, "k");
    capnp::MallocMessageBuilder message;
    auto call = message.initRoot<wire::PeerCall>();
    ToWire(core::Request{core::ResolveRequest{kP, "k"}}, call);
    EXPECT_EQ(call.which(), wire::PeerCall::RESOLVE_KEY);
    ToWire(core::Request{core::ResolveRequest{kP, ""}}, call);
    EXPECT_EQ(call.which(), wire::PeerCall::RESOLVE);
    auto old = std::get<core::ResolveRequest>(RoundTrip(core::ResolveRequest{kP, ""}));
    EXPECT_EQ(old.proposal, kP);
    EXPECT_EQ(old.key, "");
  }
}

TEST(ConvertTest, EveryConfigurationCallRoundTrips) {
  const core::Ballot ballot{5, "12D3KooWproposer"};
  {
    auto r = std::get<core::ConfigPrepareRequest>(
        RoundTrip(core::ConfigPrepareRequest{"c2", 5, ballot, {kC0, kC2}}));
    EXPECT_EQ(r.cluster, "c2");
    EXPECT_EQ(r.epoch, 5u);
    EXPECT_EQ(r.ballot, ballot);
    EXPECT_TRUE(r.known == (std::vector<core::Configuration>{kC0, kC2}));
  }
  {
    auto r = std::get<core::ConfigAcceptRequest>(RoundTrip(core::ConfigAcceptRequest{
        "c2", 5, ballot, {"12D3KooWa", "12D3KooWb", "12D3KooWc"}, {kC2}}));
    EXPECT_EQ(r.cluster, "c2");
    EXPECT_EQ(r.epoch, 5u);
    EXPECT_EQ(r.ballot, ballot);
    EXPECT_EQ(r.voters, (std::vector<core::PeerId>{"12D3KooWa", "12D3KooWb", "12D3KooWc"}));
    EXPECT_TRUE(r.known == std::vector<core::Configuration>{kC2});
  }
  {
    auto r = std::get<core::ConfigLearnRequest>(RoundTrip(core::ConfigLearnRequest{{kC2, kC0}}));
    EXPECT_TRUE(r.known == (std::vector<core::Configuration>{kC2, kC0}));
    EXPECT_TRUE(
        std::get<core::ConfigLearnRequest>(RoundTrip(core::ConfigLearnRequest{})).known.empty());
  }
}

TEST(ConvertTest, EveryReplyKindRoundTrips) {
  core::Vote stored;
  stored.peer = "12D3KooWvoter";
  stored.cluster = "c2";
  stored.kind = core::Vote::Kind::kStored;
  stored.stored = "old";
  stored.stored_request_id = 5;
  {
    auto r = std::get<core::HandleResponse>(RoundTrip(core::HandleResponse{stored}));
    EXPECT_EQ(r.vote.kind, core::Vote::Kind::kStored);
    EXPECT_EQ(r.vote.stored, "old");
    EXPECT_EQ(r.vote.stored_request_id, 5u);
    EXPECT_EQ(r.vote.cluster, "c2");
  }
  {
    core::Vote reserved = stored;
    reserved.kind = core::Vote::Kind::kReserved;
    reserved.holder = kP;
    core::Vote wrong = stored;
    wrong.kind = core::Vote::Kind::kWrongEpoch;
    wrong.epoch = 4;
    wrong.configs = {kC2};
    core::Vote younger = stored;
    younger.kind = core::Vote::Kind::kWrongGeneration;
    younger.generation = 3;
    younger.configs = {kC2};
    auto r = std::get<core::ForwardResponse>(
        RoundTrip(core::ForwardResponse{{stored, reserved, wrong, younger}, kC2}));
    ASSERT_EQ(r.votes.size(), 4u);
    EXPECT_EQ(r.votes[3].kind, core::Vote::Kind::kWrongGeneration);
    EXPECT_EQ(r.votes[3].generation, 3u);
    EXPECT_TRUE(r.votes[3].configs == std::vector<core::Configuration>{kC2});
    EXPECT_EQ(r.votes[3].configs[0].generation, 3u);
    EXPECT_EQ(r.votes[1].kind, core::Vote::Kind::kReserved);
    EXPECT_EQ(r.votes[1].holder, kP);
    EXPECT_EQ(r.votes[1].holder.epoch, kP.epoch);
    EXPECT_EQ(r.votes[2].kind, core::Vote::Kind::kWrongEpoch);
    EXPECT_EQ(r.votes[2].epoch, 4u);
    EXPECT_TRUE(r.votes[2].configs == std::vector<core::Configuration>{kC2});
    EXPECT_TRUE(r.config == kC2);
    // A representative that knows no configuration: epoch 0, no votes.
    auto none = std::get<core::ForwardResponse>(
        RoundTrip(core::ForwardResponse{{}, core::Configuration{"c2", 0, {}}}));
    EXPECT_TRUE(none.votes.empty());
    EXPECT_TRUE(none.config == (core::Configuration{"c2", 0, {}}));
    EXPECT_TRUE(std::get<core::ForwardResponse>(RoundTrip(core::ForwardResponse{})).config ==
                core::Configuration{});
  }
  {
    auto r = std::get<core::AcceptResponse>(
        RoundTrip(core::AcceptResponse{false, core::Ballot{9, "12D3KooWx"}}));
    EXPECT_FALSE(r.accepted);
    EXPECT_EQ(r.promised, (core::Ballot{9, "12D3KooWx"}));
    EXPECT_FALSE(r.decided);
    EXPECT_TRUE(std::get<core::AcceptResponse>(RoundTrip(core::AcceptResponse{true, {}})).accepted);
    auto d = std::get<core::AcceptResponse>(
        RoundTrip(core::AcceptResponse{false, core::Ballot{1, "12D3KooWx"}, true}));
    EXPECT_FALSE(d.accepted);
    EXPECT_TRUE(d.decided);
  }
  {
    core::PrepareResponse promised;
    promised.promised = true;
    promised.accepted = core::AcceptedValue{core::Ballot{0, "12D3KooWc"}, core::Decision::kCommit};
    auto r = std::get<core::PrepareResponse>(RoundTrip(promised));
    EXPECT_TRUE(r.promised);
    EXPECT_FALSE(r.decided);
    ASSERT_TRUE(r.accepted.has_value());
    EXPECT_EQ(r.accepted->decision, core::Decision::kCommit);
    promised.decided = true;
    EXPECT_TRUE(std::get<core::PrepareResponse>(RoundTrip(promised)).decided);
    core::PrepareResponse refused;
    refused.higher = core::Ballot{3, "12D3KooWy"};
    auto q = std::get<core::PrepareResponse>(RoundTrip(refused));
    EXPECT_FALSE(q.promised);
    EXPECT_EQ(q.higher, refused.higher);
  }
  {
    core::ReadResponse read;
    read.kind = core::ReadResponse::Kind::kReserved;
    read.value = "w";
    read.holder = kP;
    auto r = std::get<core::ReadResponse>(RoundTrip(read));
    EXPECT_EQ(r.kind, core::ReadResponse::Kind::kReserved);
    EXPECT_EQ(r.value, "w");
    EXPECT_EQ(r.holder, kP);
    core::ReadResponse wrong;
    wrong.kind = core::ReadResponse::Kind::kWrongEpoch;
    wrong.epoch = 7;
    wrong.configs = {kC0, kC2};
    auto w = std::get<core::ReadResponse>(RoundTrip(wrong));
    EXPECT_EQ(w.kind, core::ReadResponse::Kind::kWrongEpoch);
    EXPECT_EQ(w.epoch, 7u);
    EXPECT_TRUE(w.configs == wrong.configs);
    EXPECT_EQ(std::get<core::ReadResponse>(RoundTrip(core::ReadResponse{})).kind,
              core::ReadResponse::Kind::kAbsent);
    core::ReadResponse not_ready;
    not_ready.kind = core::ReadResponse::Kind::kNotReady;
    not_ready.reason = "still catching up";
    auto n = std::get<core::ReadResponse>(RoundTrip(not_ready));
    EXPECT_EQ(n.kind, core::ReadResponse::Kind::kNotReady);
    EXPECT_EQ(n.reason, "still catching up");
  }
  {
    auto r = std::get<core::ResolveResponse>(RoundTrip(core::ResolveResponse{std::nullopt, "no"}));
    EXPECT_FALSE(r.decision.has_value());
    EXPECT_EQ(r.reason, "no");
  }
  {
    using Kind = core::ConfigVoteResponse::Kind;
    core::ConfigVoteResponse promised;
    promised.kind = Kind::kGranted;
    promised.accepted = core::ConfigAccepted{core::Ballot{2, "12D3KooWp"}, kC2.voters};
    auto r = std::get<core::ConfigVoteResponse>(RoundTrip(promised));
    EXPECT_EQ(r.kind, Kind::kGranted);
    ASSERT_TRUE(r.accepted.has_value());
    EXPECT_TRUE(*r.accepted == *promised.accepted);

    core::ConfigVoteResponse granted;
    granted.kind = Kind::kGranted;
    r = std::get<core::ConfigVoteResponse>(RoundTrip(granted));
    EXPECT_EQ(r.kind, Kind::kGranted);
    EXPECT_FALSE(r.accepted.has_value());

    core::ConfigVoteResponse rejected;
    rejected.kind = Kind::kRejected;
    rejected.higher = core::Ballot{9, "12D3KooWq"};
    r = std::get<core::ConfigVoteResponse>(RoundTrip(rejected));
    EXPECT_EQ(r.kind, Kind::kRejected);
    EXPECT_EQ(r.higher, rejected.higher);

    core::ConfigVoteResponse chosen;
    chosen.kind = Kind::kChosen;
    chosen.known = {kC2};
    r = std::get<core::ConfigVoteResponse>(RoundTrip(chosen));
    EXPECT_EQ(r.kind, Kind::kChosen);
    EXPECT_TRUE(r.known == chosen.known);

    core::ConfigVoteResponse not_ready;
    not_ready.kind = Kind::kNotReady;
    not_ready.reason = "settling epoch 4";
    r = std::get<core::ConfigVoteResponse>(RoundTrip(not_ready));
    EXPECT_EQ(r.kind, Kind::kNotReady);
    EXPECT_EQ(r.reason, "settling epoch 4");
  }
  {
    auto r = std::get<core::ConfigLearnResponse>(RoundTrip(core::ConfigLearnResponse{{kC0, kC2}}));
    EXPECT_TRUE(r.known == (std::vector<core::Configuration>{kC0, kC2}));
  }
  // A call that could not be answered travels as `failed` and comes back as
  // Unreachable, with its reason.
  auto u = std::get<core::Unreachable>(RoundTrip(core::Unreachable{"node is shutting down"}));
  EXPECT_EQ(u.reason, "node is shutting down");
}

// Sets a union's discriminant to a value this build has no member for, as a
// newer peer's message would carry.
template <typename Builder>
void SetUnknownKind(Builder builder) {
  auto data = capnp::AnyStruct::Builder(kj::mv(builder)).getDataSection();
  ASSERT_GE(data.size(), 2u);
  data[0] = 0x63;  // discriminant 99, little-endian
  data[1] = 0x00;
}

TEST(ConvertTest, UnknownKindsFailInsteadOfBeingMisread) {
  {
    capnp::MallocMessageBuilder message;
    auto call = message.initRoot<wire::PeerCall>();
    call.initRead().setKey(AsData("k"));
    SetUnknownKind(call);
    EXPECT_THROW(FromWire(call.asReader()), kj::Exception);
  }
  {
    capnp::MallocMessageBuilder message;
    auto reply = message.initRoot<wire::PeerReply>();
    reply.initVote();
    SetUnknownKind(reply);
    core::Response r = FromWire(reply.asReader());
    ASSERT_TRUE(std::holds_alternative<core::Unreachable>(r));
    EXPECT_NE(std::get<core::Unreachable>(r).reason.find("unknown"), std::string::npos);
  }
}

// Configurations from a peer are checked before the core sees them: a
// malformed one fails its call (the receiver answers `failed`) or turns its
// reply into Unreachable, never the batch, never a crash.
// Found by fuzz_wire: a peer id holding a NUL was taken whole, and every
// C-string consumer (Cap'n Proto's own setters too) then saw another id.
TEST(ConvertTest, TextHoldingANulIsRefused) {
  capnp::MallocMessageBuilder message;
  auto call = message.initRoot<wire::PeerCall>();
  auto change = call.initChange();
  change.setKind(wire::MemberChange::Kind::REMOVE);
  const char peer[] = "12D3KooWa\0b";
  change.setPeer(capnp::Text::Reader(peer, sizeof(peer) - 1));
  EXPECT_THROW(FromWire(call.asReader()), kj::Exception);
  auto info = message.initRoot<wire::PeerInfo>();
  info.setId("12D3KooWa");
  info.setCluster(capnp::Text::Reader("c1\0", 3));
  info.setAddress("h:1");
  EXPECT_THROW(FromWire(info.asReader()), kj::Exception);
  info.setCluster("c1");
  EXPECT_EQ(FromWire(info.asReader()).cluster, "c1");
}

TEST(ConvertTest, MalformedConfigurationsAreRefused) {
  const struct {
    core::Configuration config;
    std::string names;  // in the error
  } cases[] = {
      {{"c2", 3, {"12D3KooWb", "12D3KooWa"}}, "not sorted"},
      {{"c2", 3, {"12D3KooWa", "12D3KooWa"}}, "not sorted and unique"},
      {{"c2", 3, {"12D3KooWa", ""}}, "empty peer id"},
      {{"c/2", 3, {"12D3KooWa"}}, "cluster id"},
      {{"", 3, {"12D3KooWa"}}, "cluster id"},
      {{"c2", 0, {}}, "epoch 0"},  // in a list, every one has an epoch
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.names);
    EXPECT_THROW(RoundTrip(core::ConfigLearnRequest{{kC0, c.config}}), kj::Exception);
    core::Vote wrong;
    wrong.kind = core::Vote::Kind::kWrongEpoch;
    wrong.configs = {c.config};
    core::Response r = RoundTrip(core::HandleResponse{wrong});
    ASSERT_TRUE(std::holds_alternative<core::Unreachable>(r));
    EXPECT_NE(std::get<core::Unreachable>(r).reason.find("malformed reply"), std::string::npos);
    EXPECT_NE(std::get<core::Unreachable>(r).reason.find(c.names), std::string::npos)
        << std::get<core::Unreachable>(r).reason;
  }
  // Epoch 0 stands alone (a representative that knows none) without voters.
  core::Response r =
      RoundTrip(core::ForwardResponse{{}, core::Configuration{"c2", 0, {"12D3KooWa"}}});
  ASSERT_TRUE(std::holds_alternative<core::Unreachable>(r));
  EXPECT_NE(std::get<core::Unreachable>(r).reason.find("epoch 0"), std::string::npos);
  // A proposed voter set and a cluster id are checked like a configuration's.
  EXPECT_THROW(RoundTrip(core::ConfigAcceptRequest{
                   "c2", 5, core::Ballot{1, "12D3KooWp"}, {"12D3KooWb", "12D3KooWa"}, {}}),
               kj::Exception);
  EXPECT_THROW(RoundTrip(core::ConfigPrepareRequest{"", 5, core::Ballot{1, "12D3KooWp"}, {}}),
               kj::Exception);
  core::ConfigVoteResponse granted;
  granted.kind = core::ConfigVoteResponse::Kind::kGranted;
  granted.accepted = core::ConfigAccepted{core::Ballot{}, {"12D3KooWb", "12D3KooWa"}};
  EXPECT_TRUE(std::holds_alternative<core::Unreachable>(RoundTrip(granted)));
}

TEST(ConvertTest, ConfigurationListsRoundTrip) {
  capnp::MallocMessageBuilder message;
  auto list = message.initRoot<wire::ConfigLearn>().initKnown(2);
  ToWire(std::vector<core::Configuration>{kC0, kC2}, list);
  EXPECT_TRUE(FromWire(list.asReader()) == (std::vector<core::Configuration>{kC0, kC2}));
}

TEST(ConvertTest, CatchUpMethodsRoundTrip) {
  std::string value("v\0\xff", 3);
  {
    capnp::MallocMessageBuilder message;
    auto params = message.initRoot<wire::Peer::PullParams>();
    ToWire(core::PullRequest{7, "after", 1234, 12}, params);
    core::PullRequest p = FromWire(params.asReader());
    EXPECT_EQ(p.bucket, 7u);
    EXPECT_EQ(p.after, "after");
    EXPECT_EQ(p.max_bytes, 1234u);
    EXPECT_EQ(p.bucket_end, 12u);
  }
  {
    capnp::MallocMessageBuilder message;
    auto results = message.initRoot<wire::Peer::PullResults>();
    core::PullResponse sent;
    sent.entries.push_back(core::PulledEntry{"k", value, 42, kP});
    sent.entries.push_back(core::PulledEntry{"old", value, 0, {}});  // proposal not known
    sent.complete = false;
    sent.bucket_end = 4096;
    ToWire(sent, results);
    core::PullResponse r = FromWire(results.asReader());
    ASSERT_EQ(r.entries.size(), 2u);
    EXPECT_EQ(r.entries[0].key, "k");
    EXPECT_EQ(r.entries[0].value, value);
    EXPECT_EQ(r.entries[0].request_id, 42u);
    EXPECT_EQ(r.entries[0].proposal, kP);
    EXPECT_FALSE(results.asReader().getEntries()[1].hasProposal());
    EXPECT_TRUE(r.entries[1].proposal.coordinator.empty());
    EXPECT_FALSE(r.complete);
    EXPECT_EQ(r.bucket_end, 4096u);
  }
  {
    capnp::MallocMessageBuilder message;
    auto results = message.initRoot<wire::Peer::DigestResults>();
    core::DigestResponse sent;
    sent.buckets = {1, 0, ~uint64_t{0}};
    sent.epoch = 3;
    sent.reservations.push_back(core::Reservation{"k", kP, value, /*since=*/55, 42});
    sent.generation = 4;
    sent.federation_settled = true;
    sent.known = {kC0, kC2};
    ToWire(sent, results);
    core::DigestResponse r = FromWire(results.asReader());
    EXPECT_EQ(r.buckets, (std::vector<uint64_t>{1, 0, ~uint64_t{0}}));
    EXPECT_EQ(r.epoch, 3u);
    EXPECT_EQ(r.generation, 4u);
    EXPECT_TRUE(r.federation_settled);
    EXPECT_TRUE(r.known == sent.known);
    ASSERT_EQ(r.reservations.size(), 1u);
    EXPECT_EQ(r.reservations[0].key, "k");
    EXPECT_EQ(r.reservations[0].proposal, kP);
    EXPECT_EQ(r.reservations[0].proposal.epoch, kP.epoch);
    EXPECT_EQ(r.reservations[0].value, value);
    EXPECT_EQ(r.reservations[0].request_id, 42u);
    EXPECT_EQ(r.reservations[0].since, 0) << "the holder's clock is not carried";
  }
}

TEST(ConvertTest, MembersAndStatusKeepEveryField) {
  std::vector<core::Member> members{
      {"12D3KooWa", "c0", "127.0.0.1:1", core::PeerState::kVoter},
      {"12D3KooWb", "c1", "127.0.0.1:2", core::PeerState::kDown},
  };
  capnp::MallocMessageBuilder message;
  auto status = message.initRoot<wire::NodeStatus>();
  StatusReport report;
  report.self = members[0];
  report.members = members;
  report.committed_keys = 5;
  report.engine.puts_ok = 3;
  report.storage.syncs = 2;
  report.engine.put_retries = 11;
  report.engine.puts_joined = 12;
  report.engine.catchup_rounds = 13;
  report.engine.catchup_keys_pulled = 14;
  report.storage.mutations = 15;
  report.storage.write_errors = 16;
  report.storage.writes_refused = 17;
  report.uptime_ms = 99;
  report.engine.config_epoch = 18;
  report.engine.config_changes = 19;
  report.engine.stale_epoch_refusals = 20;
  report.engine.federation_generation = 21;
  report.engine.federation_settled = true;
  report.engine.generation_refusals = 22;
  report.batches.calls = 23;
  report.batches.items = 24;
  ToWire(report, status);
  auto read = status.asReader();
  std::vector<core::Member> back = FromWire(read.getMembers());
  EXPECT_TRUE(back == members);
  EXPECT_TRUE(FromWire(read.getSelf()) == members[0]);
  EXPECT_EQ(read.getCommittedKeys(), 5u);
  EXPECT_EQ(read.getPutsOk(), 3u);
  EXPECT_EQ(read.getStorageSyncs(), 2u);
  EXPECT_EQ(read.getPutRetries(), 11u);
  EXPECT_EQ(read.getPutsJoined(), 12u);
  EXPECT_EQ(read.getCatchupRounds(), 13u);
  EXPECT_EQ(read.getCatchupKeysPulled(), 14u);
  EXPECT_EQ(read.getStorageMutations(), 15u);
  EXPECT_EQ(read.getStorageWriteErrors(), 16u);
  EXPECT_EQ(read.getStorageWritesRefused(), 17u);
  EXPECT_EQ(read.getUptimeMs(), 99u);
  EXPECT_EQ(read.getConfigEpoch(), 18u);
  EXPECT_EQ(read.getConfigChanges(), 19u);
  EXPECT_EQ(read.getStaleEpochRefusals(), 20u);
  EXPECT_EQ(read.getBatchedCalls(), 23u);
  EXPECT_EQ(read.getBatchedItems(), 24u);
  EXPECT_EQ(read.getFederationGeneration(), 21u);
  EXPECT_TRUE(read.getFederationSettled());
  EXPECT_EQ(read.getGenerationRefusals(), 22u);
  EXPECT_EQ(FromWire(wire::Consistency::LINEARIZABLE), core::Consistency::kLinearizable);
}

}  // namespace
}  // namespace replicator::node
