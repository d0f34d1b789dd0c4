// Fuzz target: hostile bytes on a connection. The input is what a peer
// sends down one TCP connection to a node: Cap'n Proto's framing (segment
// tables), then its RPC protocol (bootstrap, calls, pipelining, releases),
// read with the node's reader limits, into a Node bootstrap whose Peer
// face converts every call the way the node does (src/node/convert.cc).
// Whatever arrives, the server must answer or drop the connection, never
// crash, hang or read out of bounds. The first byte splits the input into
// writes of varying sizes, as TCP would.
#include <capnp/rpc-twoparty.h>
#include <capnp/rpc.h>
#include <kj/async-io.h>

#include <cstdint>
#include <string>

#include "node/convert.h"
#include "schema/replicator.capnp.h"

namespace replicator::fuzz {
namespace {

// The Peer face: converts each call, answers each as failed.
class PeerStub final : public wire::Peer::Server {
 public:
  kj::Promise<void> call(CallContext context) override {
    auto calls = context.getParams().getCalls();
    auto replies = context.getResults().initReplies(calls.size());
    for (size_t i = 0; i < calls.size(); ++i) {
      (void)node::FromWire(calls[i]);  // throws on a malformed call: the caller hears it
      replies[i].setFailed("fuzz");
    }
    return kj::READY_NOW;
  }
  kj::Promise<void> pull(PullContext context) override {
    (void)node::FromWire(context.getParams());
    return kj::READY_NOW;
  }
};

class NodeStub final : public wire::Node::Server {
 public:
  kj::Promise<void> peer(PeerContext context) override {
    context.getResults().setPeer(kj::heap<PeerStub>());
    return kj::READY_NOW;
  }
  kj::Promise<void> echo(EchoContext context) override {
    context.getResults().setPayload(context.getParams().getPayload());
    return kj::READY_NOW;
  }
};

kj::AsyncIoContext& Io() {
  static kj::AsyncIoContext io = kj::setupAsyncIo();
  return io;
}

// Writes `input` in pieces of 1..64 bytes chosen by `seed`, then closes.
kj::Promise<void> Send(kj::AsyncIoStream& out, kj::ArrayPtr<const kj::byte> input, uint8_t seed) {
  size_t step = 1 + seed % 64;
  size_t n = std::min(step, input.size());
  if (n == 0) {
    out.shutdownWrite();
    return kj::READY_NOW;
  }
  return out.write(input.begin(), n).then([&out, input, seed, n]() {
    return Send(out, input.slice(n, input.size()), static_cast<uint8_t>(seed * 31 + 7));
  });
}

// Reads and drops whatever the server answers, until it closes.
kj::Promise<void> Drain(kj::AsyncIoStream& in, kj::byte* buffer) {
  return in.tryRead(buffer, 1, 4096).then([&in, buffer](size_t n) -> kj::Promise<void> {
    if (n == 0) return kj::READY_NOW;
    return Drain(in, buffer);
  });
}

void OneInput(uint8_t seed, kj::ArrayPtr<const kj::byte> input) {
  kj::AsyncIoContext& io = Io();
  auto pipe = kj::newTwoWayPipe();
  capnp::ReaderOptions options;
  options.traversalLimitInWords = 1 << 20;
  capnp::TwoPartyVatNetwork network(*pipe.ends[0], capnp::rpc::twoparty::Side::SERVER, options);
  capnp::Capability::Client bootstrap = kj::heap<NodeStub>();
  auto rpc = capnp::makeRpcServer(network, bootstrap);
  kj::byte buffer[4096];
  auto sent = Send(*pipe.ends[1], input, seed).eagerlyEvaluate([](kj::Exception&&) {});
  auto drained = Drain(*pipe.ends[1], buffer).eagerlyEvaluate([](kj::Exception&&) {});
  // The input ends with EOF: the server disconnects, whatever it read.
  network.onDisconnect().wait(io.waitScope);
}

}  // namespace
}  // namespace replicator::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  replicator::fuzz::OneInput(data[0], kj::arrayPtr(data + 1, size - 1));
  return 0;
}
