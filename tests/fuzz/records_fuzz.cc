// Fuzz target: the durable formats a node reads back at start, where a
// torn or corrupted disk (or an operator's edit) can put anything: every
// storage record kind (src/storage/record_format.cc) and the membership
// file (src/node/directory_state.cc). The first byte picks the kind, the
// second the length of the record key; the rest is the value. Anything
// malformed must be refused with a status, never crash; a record that
// decodes must re-encode to bytes that decode to the same record.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "node/directory_state.h"
#include "storage/record_format.h"
#include "tests/fuzz/fuzz_util.h"

namespace replicator::fuzz {
namespace {

void Check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "round trip broke: %s\n", what);
  std::abort();
}

// Decode, encode, decode again, encode again: the encodings must agree.
template <typename Decode, typename Encode>
void RoundTrip(std::string_view key, std::string_view value, Decode decode, Encode encode,
               const char* what) {
  auto first = decode(key, value);
  Trace(first.ok() ? "decoded" : "refused");
  if (!first.ok()) return;
  std::string bytes = encode(*first);
  auto second = decode(key, bytes);
  Check(second.ok(), what);
  Check(encode(*second) == bytes, what);
}

void OneInput(uint8_t kind, std::string_view key, std::string_view value) {
  using namespace storage::internal;  // NOLINT: the record format's functions
  switch (kind % 7) {
    case 0: {
      auto parsed = ParseCommittedKey(key);
      if (parsed.ok()) Check(CommittedKey(std::string(parsed->key)) == key, "committed key");
      auto decoded = DecodeCommitted(key, value);
      if (decoded.ok()) {
        std::string bytes = EncodeCommitted(decoded->request_id, decoded->value, decoded->proposal);
        auto again = DecodeCommitted(key, bytes);
        Check(again.ok() && again->request_id == decoded->request_id &&
                  again->value == decoded->value && again->proposal == decoded->proposal,
              "committed value");
      }
      break;
    }
    case 1:
      RoundTrip(key, value, DecodeReservation, EncodeReservation, "reservation");
      break;
    case 2:
      RoundTrip(key, value, DecodeAcceptor, EncodeAcceptor, "acceptor");
      break;
    case 3:
      RoundTrip(key, value, DecodeConfig, EncodeConfig, "configuration");
      break;
    case 4:
      RoundTrip(key, value, DecodeConfigAcceptor, EncodeConfigAcceptor, "config acceptor");
      break;
    case 5:
      RoundTrip(key, value, DecodeCounter, EncodeCounter, "counter");
      break;
    case 6: {
      // The membership file: the whole input after the kind byte.
      std::string text(key);
      text.append(value);
      auto state = node::DecodeDirectoryState(text, "fuzz");
      Trace(state.ok() ? "decoded" : "refused");
      if (!state.ok()) break;
      auto again = node::DecodeDirectoryState(node::EncodeDirectoryState(*state), "fuzz");
      Check(again.ok(), "membership file re-read");
      // A version 1 or 2 file reads as the first node's, federation 0.
      Check(node::EncodeDirectoryState(*again) == node::EncodeDirectoryState(*state),
            "membership file");
      break;
    }
  }
  (void)storage::internal::DescribeRecordKey(key);
}

}  // namespace
}  // namespace replicator::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const char* bytes = reinterpret_cast<const char*>(data);
  size_t key_size = std::min<size_t>(data[1], size - 2);
  replicator::fuzz::OneInput(data[0], std::string_view(bytes + 2, key_size),
                             std::string_view(bytes + 2 + key_size, size - 2 - key_size));
  return 0;
}
