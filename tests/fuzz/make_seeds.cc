// Writes the fuzz targets' seed corpus: one valid input of every message
// and record kind the targets read, in the targets' input layout, so the
// fuzzers start from well-formed inputs and mutate inward. Run by
// `tools/fuzz --seeds` into tests/fuzz/corpus/<target>/, which is checked
// in; the inputs are deterministic.
//
//   make_seeds DIR   (writes DIR/fuzz_wire, DIR/fuzz_records, DIR/fuzz_framing, DIR/fuzz_log)
#include <capnp/message.h>
#include <capnp/rpc-twoparty.h>
#include <capnp/serialize.h>
#include <kj/async-io.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "node/convert.h"
#include "node/directory_state.h"
#include "schema/replicator.capnp.h"
#include "storage/record_format.h"
#include "storage/write_log.h"

namespace replicator::fuzz {
namespace {

namespace fs = std::filesystem;

void Write(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

template <typename Root, typename Core>
std::string Message(uint8_t kind, const Core& value) {
  capnp::MallocMessageBuilder message;
  node::ToWire(value, message.initRoot<Root>());
  kj::Array<capnp::word> flat = capnp::messageToFlatArray(message);
  return std::string(1, static_cast<char>(kind)) +
         std::string(flat.asChars().begin(), flat.asChars().size());
}

core::ProposalId Proposal() {
  return core::ProposalId{"12D3KooWcoordinator", 3, 17, 1767225600000, 2};
}

void WireSeeds(const fs::path& dir) {
  const core::ProposalId p = Proposal();
  const core::Ballot b{4, "12D3KooWproposer"};
  int n = 0;
  auto call = [&](const core::Request& r) {
    Write(dir, "call-" + std::to_string(n++), Message<wire::PeerCall>(0, r));
  };
  call(core::HandleRequest{core::ReserveOp{"key", "value", p, 99, 2}});
  call(core::HandleRequest{core::CommitOp{"key", "value", p, 99}});
  call(core::HandleRequest{core::AbortOp{"key", p}});
  call(core::ForwardRequest{core::ReserveOp{"key", "value", p, 99, 1}, 500});
  call(core::AcceptRequest{p, b, core::Decision::kCommit, "key"});
  call(core::PrepareRequest{p, b, "key"});
  call(core::ReadRequest{"key", 2});
  call(core::ResolveRequest{p, ""});
  call(core::ResolveRequest{p, "key"});
  call(core::ConfigPrepareRequest{"eu", 3, b, {core::Configuration{"eu", 2, {"a", "b", "c"}}}});
  call(core::ConfigAcceptRequest{"eu", 3, b, {"a", "b", "c", "d"}, {}});
  call(core::ConfigLearnRequest{{core::Configuration{"us", 1, {"x", "y", "z"}}}});
  call(core::ChangeRequest{
      core::MembershipChange{core::MembershipChange::Kind::kRemove, "d", false, {}}});
  Write(dir, "reply-read", Message<wire::PeerReply>(1, core::Response(core::ReadResponse{})));
  Write(dir, "reply-unreachable",
        Message<wire::PeerReply>(1, core::Response(core::Unreachable{"gone"})));
  core::DigestResponse digest;
  digest.buckets.assign(core::kDigestBuckets, 0);
  digest.buckets[7] = 12345;
  digest.epoch = 2;
  Write(dir, "digest", Message<wire::Peer::DigestResults>(2, digest));
  Write(dir, "pull", Message<wire::Peer::PullParams>(3, core::PullRequest{7, "after", 1 << 20, 9}));
  core::PullResponse pulled;
  pulled.entries.push_back(core::PulledEntry{"k", "v", 5, p});
  pulled.entries.push_back(core::PulledEntry{"old", "v", 0, {}});
  Write(dir, "pulled", Message<wire::Peer::PullResults>(4, pulled));
  Write(dir, "config",
        Message<wire::Configuration>(5, core::Configuration{"eu", 2, {"a", "b", "c", "d"}}));
  Write(
      dir, "change",
      Message<wire::MemberChange>(
          6, core::MembershipChange{core::MembershipChange::Kind::kAdd, "12D3KooWnew", false, {}}));
  Write(dir, "member",
        Message<wire::PeerInfo>(
            7, core::Member{"12D3KooWa", "eu", "10.0.0.1:7001", core::PeerState::kVoter}));
}

std::string Record(uint8_t kind, const std::string& key, const std::string& value) {
  return std::string(1, static_cast<char>(kind)) + std::string(1, static_cast<char>(key.size())) +
         key + value;
}

void RecordSeeds(const fs::path& dir) {
  using namespace storage::internal;  // NOLINT: the record format's functions
  const core::ProposalId p = Proposal();
  Write(dir, "committed", Record(0, CommittedKey("key"), EncodeCommitted(99, "value", Proposal())));
  core::Reservation r;
  r.key = "key";
  r.value = "value";
  r.proposal = p;
  r.request_id = 99;
  Write(dir, "reservation", Record(1, ReservationKey("key"), EncodeReservation(r)));
  core::AcceptorRecord a;
  a.proposal = p;
  a.promised = core::Ballot{2, "12D3KooWx"};
  a.accepted = core::AcceptedValue{core::Ballot{1, "12D3KooWx"}, core::Decision::kCommit};
  Write(dir, "acceptor", Record(2, AcceptorKey(p), EncodeAcceptor(a)));
  const core::Configuration c{"eu", 2, {"a", "b", "c", "d"}};
  Write(dir, "config", Record(3, ConfigKey("eu", 2), EncodeConfig(c)));
  core::ConfigAcceptorRecord ca;
  ca.cluster = "eu";
  ca.epoch = 3;
  ca.promised = core::Ballot{1, "a"};
  Write(dir, "config-acceptor", Record(4, ConfigAcceptorKey("eu", 3), EncodeConfigAcceptor(ca)));
  Write(dir, "counter", Record(5, std::string(kIncarnationKey), EncodeCounter(42)));
  node::DirectoryState state;
  state.federation = 0xfeed;
  state.names_founding = true;
  for (const char* id : {"12D3KooWa", "12D3KooWb", "12D3KooWc"}) {
    state.members.push_back(
        node::Entry{core::Member{id, "eu", "10.0.0.1:7001", core::PeerState::kVoter}, 7});
  }
  state.founding.push_back(
      core::Configuration{"eu", 1, {"12D3KooWa", "12D3KooWb", "12D3KooWc"}, 1});
  // Kind 6 reads key and value together as the file: an empty key.
  Write(dir, "membership", Record(6, "", node::EncodeDirectoryState(state)));
}

// What a client writes on a connection: bootstrap, node.peer(), then a
// pipelined peer.call with one reserve, captured from a real client.
void FramingSeeds(const fs::path& dir) {
  kj::AsyncIoContext io = kj::setupAsyncIo();
  auto pipe = kj::newTwoWayPipe();
  capnp::TwoPartyClient client(*pipe.ends[0]);
  auto node = client.bootstrap().castAs<wire::Node>();
  auto peer = node.peerRequest().send().getPeer();
  auto req = peer.callRequest();
  auto calls = req.initCalls(1);
  node::ToWire(
      core::Request(core::HandleRequest{core::ReserveOp{"key", "value", Proposal(), 1, 1}}),
      calls[0]);
  auto pending = req.send();
  auto echo = node.echoRequest();
  echo.setPayload(node::AsData("hello"));
  auto echoed = echo.send();
  std::string captured;
  kj::byte buffer[4096];
  while (true) {
    auto read = pipe.ends[1]->tryRead(buffer, 1, sizeof(buffer));
    if (!read.poll(io.waitScope)) break;
    size_t n = read.wait(io.waitScope);
    if (n == 0) break;
    captured.append(reinterpret_cast<const char*>(buffer), n);
  }
  for (uint8_t seed : {0, 1, 63}) {
    Write(dir, "conversation-" + std::to_string(seed), std::string(1, seed) + captured);
  }
}

// Write log segments (tests/fuzz/log_fuzz.cc): a flag byte and a known
// end, then a segment of a snapshot and two group frames; the same with
// its end given; and the same torn in its last frame.
void LogSeeds(const fs::path& dir) {
  using storage::internal::EncodeFrame;
  using storage::internal::LogFrame;
  std::string segment = EncodeFrame(1, LogFrame{LogFrame::Kind::kSnapshot, 77, {}, "snapshot"});
  segment += EncodeFrame(1, LogFrame{LogFrame::Kind::kGroup, 0, "records", "reservations"});
  segment += EncodeFrame(1, LogFrame{LogFrame::Kind::kGroup, 0, "more records", {}});
  const std::string end = {static_cast<char>(segment.size() & 0xff),
                           static_cast<char>(segment.size() >> 8)};
  Write(dir, "segment", std::string(1, '\0') + end + segment + std::string(32, '\0'));
  Write(dir, "segment-known-end", std::string(1, '\1') + end + segment);
  Write(dir, "segment-torn", std::string(1, '\0') + end + segment.substr(0, segment.size() - 5));
}

}  // namespace
}  // namespace replicator::fuzz

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_seeds DIR\n");
    return 1;
  }
  const std::filesystem::path dir(argv[1]);
  replicator::fuzz::WireSeeds(dir / "fuzz_wire");
  replicator::fuzz::RecordSeeds(dir / "fuzz_records");
  replicator::fuzz::FramingSeeds(dir / "fuzz_framing");
  replicator::fuzz::LogSeeds(dir / "fuzz_log");
  return 0;
}
