// The write log's pure parts: the checksum, and reading a segment's frames
// (where a segment ends, what is a torn last write, what is damage, what is
// a spare never started). The file handling is tested through the storage
// (storage_test.cc).
#include "storage/write_log.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace replicator::storage::internal {
namespace {

// The check values of the iSCSI specification (RFC 3720, B.4).
TEST(Crc32cTest, MatchesTheStandardCheckValues) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(Crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string ascending;
  for (int i = 0; i < 32; ++i) ascending.push_back(static_cast<char>(i));
  EXPECT_EQ(Crc32c(ascending), 0x46DD794Eu);
  EXPECT_EQ(Crc32c(""), 0u);
}

TEST(Crc32cTest, ChainsAcrossPiecesOfAnyLength) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data.push_back(static_cast<char>(i * 7 + 3));
  for (size_t cut : {0u, 1u, 7u, 8u, 9u, 500u, 999u, 1000u}) {
    EXPECT_EQ(Crc32c(data.substr(cut), Crc32c(data.substr(0, cut))), Crc32c(data)) << cut;
  }
}

std::string Snapshot(uint64_t id, uint64_t prev_end = 0) {
  return EncodeFrame(id, LogFrame{LogFrame::Kind::kSnapshot, prev_end, {}, "held"});
}
std::string SnapshotHolding(uint64_t id, std::string records) {
  return EncodeFrame(id, LogFrame{LogFrame::Kind::kSnapshot, 0, {}, records});
}
std::string Group(uint64_t id, std::string records) {
  return EncodeFrame(id, LogFrame{LogFrame::Kind::kGroup, 0, records, {}});
}

struct Read {
  absl::StatusOr<uint64_t> end;
  std::vector<std::string> records;  // of the group frames, in order
};
Read ReadAll(std::string_view data, uint64_t id, std::optional<uint64_t> known_end = {}) {
  Read out;
  out.end = ReadSegment(data, id, known_end, [&](const LogFrame& f) {
    if (f.kind == LogFrame::Kind::kGroup) out.records.emplace_back(f.db_records);
    return absl::OkStatus();
  });
  return out;
}

TEST(ReadSegmentTest, FramesEndAtZerosOrAtAFrameOfAnotherSegment) {
  const std::string frames = Snapshot(5) + Group(5, "a") + Group(5, "b");
  for (const std::string& after : {std::string(64, '\0'), Group(3, "old"), std::string()}) {
    Read r = ReadAll(frames + after, 5);
    ASSERT_TRUE(r.end.ok()) << r.end.status();
    EXPECT_EQ(*r.end, frames.size());
    EXPECT_EQ(r.records, (std::vector<std::string>{"a", "b"}));
  }
}

TEST(ReadSegmentTest, ATornLastFrameEndsTheSegmentBeforeIt) {
  const std::string sound = Snapshot(5) + Group(5, "a");
  std::string torn = Group(5, std::string(100, 'x'));
  for (std::string cut : {torn.substr(0, 40), torn.substr(0, 40) + std::string(80, '\0')}) {
    Read r = ReadAll(sound + cut, 5);
    ASSERT_TRUE(r.end.ok()) << r.end.status();
    EXPECT_EQ(*r.end, sound.size());
    EXPECT_EQ(r.records, std::vector<std::string>{"a"});
  }
}

TEST(ReadSegmentTest, DamageBeforeASoundFrameIsDataLoss) {
  std::string data = Snapshot(5) + Group(5, std::string(50, 'x')) + Group(5, "after");
  data[Snapshot(5).size() + 30] ^= 1;
  Read r = ReadAll(data, 5);
  ASSERT_EQ(r.end.status().code(), absl::StatusCode::kDataLoss) << r.end.status();
  EXPECT_NE(r.end.status().message().find("a sound frame follows it"), std::string::npos);
}

TEST(ReadSegmentTest, ASegmentFollowedByAnotherEndsWhereThatOneSays) {
  const std::string frames = Snapshot(5) + Group(5, "a");
  Read r = ReadAll(frames + Group(5, "not acknowledged"), 5, frames.size());
  ASSERT_TRUE(r.end.ok()) << r.end.status();
  EXPECT_EQ(r.records, std::vector<std::string>{"a"});
  // Frames that end before the end given are damage, not a torn tail.
  r = ReadAll(frames + std::string(64, '\0'), 5, frames.size() + 20);
  EXPECT_EQ(r.end.status().code(), absl::StatusCode::kDataLoss) << r.end.status();
}

TEST(ReadSegmentTest, ASegmentMustBeginWithItsSnapshot) {
  EXPECT_EQ(ReadAll(Group(5, "a"), 5).end.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ReadAll(Snapshot(5) + Snapshot(5), 5).end.status().code(), absl::StatusCode::kDataLoss);
}

TEST(UnstartedTest, OnlyAFileWithoutASnapshotOfItsOwnIsUnstarted) {
  EXPECT_TRUE(Unstarted(std::string(4096, '\0'), 6));
  EXPECT_TRUE(Unstarted(Snapshot(2) + Group(2, "old frames"), 6)) << "a reused file";
  EXPECT_TRUE(Unstarted("", 6));
  // The roll's one write cut short.
  EXPECT_TRUE(Unstarted(Snapshot(6).substr(0, 20) + std::string(100, '\0'), 6));
  EXPECT_FALSE(Unstarted(Snapshot(6) + std::string(100, '\0'), 6));
  // A damaged snapshot that sound frames follow was started, even when the
  // damage is in its segment id field.
  std::string damaged = Snapshot(6) + Group(6, "acknowledged");
  damaged[20] ^= 1;
  EXPECT_FALSE(Unstarted(damaged, 6));
  std::string damaged_id = Snapshot(6) + Group(6, "acknowledged");
  damaged_id[8] ^= 1;
  EXPECT_FALSE(Unstarted(damaged_id, 6));
}

TEST(UnstartedTest, ASnapshotWhoseHeaderWasZeroedIsStartedWhenFramesFollow) {
  // Length zeroed with the rest: where the header says the first frame ends
  // is no frame, but the group frames after the snapshot are sound.
  const std::string snapshot = SnapshotHolding(6, std::string(300, 's'));
  std::string zeroed =
      snapshot + Group(6, "acknowledged") + Group(6, "also acknowledged") + std::string(200, '\0');
  std::fill(zeroed.begin(), zeroed.begin() + 16, '\0');
  EXPECT_FALSE(Unstarted(zeroed, 6));
  // The whole snapshot zeroed, frames after it: still started (and ReadSegment
  // then refuses it for lacking its snapshot).
  std::string wiped = zeroed;
  std::fill(wiped.begin(), wiped.begin() + static_cast<long>(snapshot.size()), '\0');
  EXPECT_FALSE(Unstarted(wiped, 6));
  EXPECT_EQ(ReadAll(wiped, 6).end.status().code(), absl::StatusCode::kDataLoss);
  // A payload that holds this segment's id as bytes is no frame: a reused
  // file of segment 2 whose records happen to contain them.
  std::string id6(8, '\0');
  id6[0] = 6;
  EXPECT_TRUE(Unstarted(Snapshot(2) + Group(2, "xxxxxxxx" + id6 + std::string(40, 'y')), 6));
  // Zeros with the id's bytes in them are no frame either.
  EXPECT_TRUE(Unstarted(std::string(100, '\0') + id6 + std::string(100, '\0'), 6));
}

}  // namespace
}  // namespace replicator::storage::internal
