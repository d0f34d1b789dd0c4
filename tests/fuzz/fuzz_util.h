// Shared by the fuzz targets: reading a fuzz input as a Cap'n Proto
// message the way the node reads one from the network, and a canonical
// byte form of a builder, for round-trip oracles.
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>
#include <kj/exception.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace replicator::fuzz {

// The fuzz input as aligned words (Cap'n Proto reads words), padded with
// zeros to a whole word.
inline kj::Array<capnp::word> Words(const uint8_t* data, size_t size) {
  auto words = kj::heapArray<capnp::word>((size + sizeof(capnp::word) - 1) / sizeof(capnp::word));
  if (words.size() > 0) {
    std::memset(words.begin(), 0, words.asBytes().size());
    std::memcpy(words.begin(), data, size);
  }
  return words;
}

// The node's receive limits (src/net/rpc.cc), scaled down: a fuzz input is
// small, and the limit is what keeps a hostile message from costing more
// than its size.
inline capnp::ReaderOptions Options(uint64_t words = 1 << 20) {
  capnp::ReaderOptions options;
  options.traversalLimitInWords = words;
  return options;
}

inline std::string Bytes(capnp::MessageBuilder& message) {
  kj::Array<capnp::word> flat = capnp::messageToFlatArray(message);
  return std::string(flat.asChars().begin(), flat.asChars().size());
}

// With REPLICATOR_FUZZ_TRACE set, says what became of each input (to check
// that seeds reach past the refusals).
inline void Trace(const char* what) {
  static const bool on = std::getenv("REPLICATOR_FUZZ_TRACE") != nullptr;
  if (on) std::fprintf(stderr, "%s\n", what);
}

// Runs `f`; a KJ exception (a malformed message refused) is an answer,
// not a finding.
template <typename F>
bool Refused(F&& f) {
  return kj::runCatchingExceptions(static_cast<F&&>(f)) != nullptr;
}

}  // namespace replicator::fuzz
