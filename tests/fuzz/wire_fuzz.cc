// Fuzz target: wire -> core conversion of everything a peer or client can
// send a node (src/node/convert.cc, and the member map entries of
// src/node/directory_service.cc). The first input byte picks the message
// type; the rest is read as a Cap'n Proto message. A malformed message
// must be refused with a KJ exception, never crash or read out of bounds;
// a message that converts must convert back to a message that converts to
// the same bytes again (conversion loses nothing it accepted).
#include <capnp/message.h>
#include <capnp/serialize.h>

#include <cstdint>
#include <cstdlib>
#include <string>

#include "node/convert.h"
#include "schema/replicator.capnp.h"
#include "tests/fuzz/fuzz_util.h"

namespace replicator::fuzz {
namespace {

// Reads `Root` from `words`, converts it to core and back, twice; aborts
// if the second round differs from the first.
template <typename Root, typename Convert>
void RoundTrip(kj::ArrayPtr<const capnp::word> words, Convert convert) {
  std::string first;
  std::string second;
  bool refused = Refused([&] {
    capnp::FlatArrayMessageReader reader(words, Options());
    auto once = convert(reader.getRoot<Root>());
    capnp::MallocMessageBuilder built;
    first = Bytes(*once(built));
  });
  Trace(refused ? "refused" : "converted");
  if (refused) return;
  bool refused_again = Refused([&] {
    // Its own output may be far larger than the input (a list of empty
    // structs costs a word an element; the core's entries more): read it
    // with room to spare.
    auto words2 = Words(reinterpret_cast<const uint8_t*>(first.data()), first.size());
    capnp::FlatArrayMessageReader reader(words2, Options(uint64_t{1} << 28));
    auto twice = convert(reader.getRoot<Root>());
    capnp::MallocMessageBuilder built;
    second = Bytes(*twice(built));
  });
  if (refused_again || first != second) {
    std::fprintf(stderr, "conversion is not stable: %s\n",
                 refused_again ? "its own output was refused" : "the second round differs");
    std::abort();
  }
}

// A conversion of one root type: core value, then a builder of the same type.
template <typename Root, typename Core>
auto Via() {
  return [](typename Root::Reader in) {
    Core core = node::FromWire(in);
    return [core = std::move(core)](capnp::MallocMessageBuilder& out) {
      node::ToWire(core, out.initRoot<Root>());
      return &out;
    };
  };
}

void OneInput(uint8_t kind, kj::ArrayPtr<const capnp::word> words) {
  switch (kind % 8) {
    case 0:
      RoundTrip<wire::PeerCall>(words, Via<wire::PeerCall, core::Request>());
      break;
    case 1:
      RoundTrip<wire::PeerReply>(words, Via<wire::PeerReply, core::Response>());
      break;
    case 2:
      RoundTrip<wire::Peer::DigestResults>(words,
                                           Via<wire::Peer::DigestResults, core::DigestResponse>());
      break;
    case 3:
      RoundTrip<wire::Peer::PullParams>(words, Via<wire::Peer::PullParams, core::PullRequest>());
      break;
    case 4:
      RoundTrip<wire::Peer::PullResults>(words, Via<wire::Peer::PullResults, core::PullResponse>());
      break;
    case 5:
      RoundTrip<wire::Configuration>(words, Via<wire::Configuration, core::Configuration>());
      break;
    case 6:
      RoundTrip<wire::MemberChange>(words, Via<wire::MemberChange, core::MembershipChange>());
      break;
    case 7:
      RoundTrip<wire::PeerInfo>(words, Via<wire::PeerInfo, core::Member>());
      break;
  }
}

}  // namespace
}  // namespace replicator::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  auto words = replicator::fuzz::Words(data + 1, size - 1);
  replicator::fuzz::OneInput(data[0], words);
  return 0;
}
