// Fuzz target: a segment of the storage's write log (src/storage/
// write_log.cc) as a crash, a torn write or a damaged disk may leave it.
// The first byte says whether the next segment gives this one's end (bit
// 0), the next two bytes that end (little-endian); the rest is the
// segment. Reading must refuse or end, never crash or read past the data;
// frames read must re-encode to bytes that read back as the same frames,
// and a segment that begins with a sound snapshot is never "unstarted".
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "storage/write_log.h"
#include "tests/fuzz/fuzz_util.h"

namespace replicator::fuzz {
namespace {

using storage::internal::EncodeFrame;
using storage::internal::LogFrame;
using storage::internal::ReadSegment;

void Check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "write log round trip broke: %s\n", what);
  std::abort();
}

struct Frame {
  LogFrame::Kind kind;
  uint64_t prev_end;
  std::string db_records;
  std::string log_records;
  bool operator==(const Frame&) const = default;
};

// The frames of `data` as segment 1, or nullopt if it is refused.
std::optional<std::vector<Frame>> Read(std::string_view data, std::optional<uint64_t> known_end,
                                       uint64_t* end) {
  std::vector<Frame> frames;
  absl::StatusOr<uint64_t> read = ReadSegment(data, 1, known_end, [&](const LogFrame& f) {
    frames.push_back(
        Frame{f.kind, f.prev_end, std::string(f.db_records), std::string(f.log_records)});
    return absl::OkStatus();
  });
  if (!read.ok()) return std::nullopt;
  *end = *read;
  return frames;
}

std::string Encode(const std::vector<Frame>& frames) {
  std::string out;
  for (const Frame& f : frames) {
    out += EncodeFrame(1, LogFrame{f.kind, f.prev_end, f.db_records, f.log_records});
  }
  return out;
}

}  // namespace
}  // namespace replicator::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace replicator::fuzz;  // NOLINT: this file's helpers
  if (size < 3) return 0;
  std::optional<uint64_t> known_end;
  if ((data[0] & 1) != 0) known_end = data[1] | (uint64_t{data[2]} << 8);
  const std::string_view segment(reinterpret_cast<const char*>(data) + 3, size - 3);
  uint64_t end = 0;
  std::optional<std::vector<Frame>> frames = Read(segment, known_end, &end);
  Trace(frames ? "read" : "refused");
  const bool unstarted = replicator::storage::internal::Unstarted(segment, 1);
  if (!frames) return 0;
  Check(frames->empty() || !unstarted, "a segment read from its snapshot called unstarted");
  Check(end <= segment.size(), "the end lies past the data");
  Check(!known_end || end == *known_end, "a known end was not kept");
  Check(!frames->empty() || end == 0, "an end without a frame");
  if (frames->empty()) return 0;
  const std::string bytes = Encode(*frames);
  uint64_t again_end = 0;
  std::optional<std::vector<Frame>> again = Read(bytes, std::nullopt, &again_end);
  Check(again.has_value() && *again == *frames, "frames re-read");
  Check(again_end == bytes.size(), "re-encoded frames end early");
  Check(Encode(*again) == bytes, "frames re-encode");
  return 0;
}
