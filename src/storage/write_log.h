// WriteLog: RocksDB storage's own write-ahead log (docs/storage.md, "The
// write log"). Every group write is one frame, appended and synced before
// its records reach RocksDB (which is written without a WAL of its own).
// Some records live only here and in memory (the reservations, the bucket
// summaries and the young acceptor records: the log-only records): each
// segment begins with a
// snapshot of them, so a segment older than the newest one holds nothing
// that is not elsewhere once RocksDB has flushed the records its frames
// carried, and is then dropped.
//
//   segment = frame*                       one file: <dir>/<20-digit id>.log
//   frame   = fixed32 crc, fixed32 length, fixed64 segment id, payload[length]
//   payload = byte kind (1 group, 2 snapshot), varint prev_end,
//             bytes db_records, bytes log_records   (length-prefixed)
//
// `crc` is the CRC-32C of everything after it (length, id, payload), so a
// frame from another segment (a stale one) or a torn one does not pass for
// a frame of this one. db_records and log_records are rocksdb::WriteBatch
// encodings: the records the group writes to RocksDB, and the log-only
// ones (reservation puts and deletes, 'r' keys; summary puts, 's' keys;
// acceptor record puts and deletes, 'a' keys).
// A snapshot's log_records are puts of every log-only record held when it
// was written, and its prev_end is the length of the previous segment's
// frames (0 in the first segment).
//
// Thread rules: Append and Roll on one thread (the storage thread);
// PrepareSpare, DropBefore and DropFlushed on one other. Not copyable.
#pragma once

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace replicator::storage::internal {

// CRC-32C (Castagnoli), as iSCSI and ext4 use it.
uint32_t Crc32c(std::string_view data, uint32_t crc = 0);

struct LogFrame {
  enum class Kind : uint8_t { kGroup = 1, kSnapshot = 2 };
  Kind kind = Kind::kGroup;
  uint64_t prev_end = 0;          // kSnapshot: the previous segment's length
  std::string_view db_records;    // a rocksdb::WriteBatch encoding
  std::string_view log_records;   // a rocksdb::WriteBatch encoding
};

// One frame as it lies on disk, for `segment`.
std::string EncodeFrame(uint64_t segment, const LogFrame& frame);

// Segments are files of a fixed size, written (zeros, or an obsolete
// segment's old frames) before they are used, so that the sync of a frame
// has no file size or block allocation to commit: only the frame's own
// blocks. The next segment (the spare) is prepared on another thread while
// the current one fills; each segment is twice the size of the one before,
// from `first_segment_bytes` up to `segment_bytes`, so a short-lived node
// never writes large ones.
class WriteLog;

// Reads the frames of segment `id` held in `data` (the whole file), calling
// `replay` for each, and returns where they end: at `known_end` when the
// next segment gives it (a bad frame before it is damage), else at the
// first place that holds no frame of this segment or a torn last one. Pure
// but for `replay`. DataLossError saying where and what for damage;
// `replay`'s errors as they are.
// True when `data`, segment `id`'s file, was never started: it holds no
// snapshot of its own at offset 0 (zeros, an old segment's frames, or a
// snapshot whose one write was cut short) and no sound frame of `id`
// anywhere after it. Pure; reads the whole file when its start is not a
// sound snapshot (a spare at open), which costs one pass of a search.
bool Unstarted(std::string_view data, uint64_t id);

// fsync of a directory (its entries), and of a file by its path, for files
// the storage writes beside the log (catch-up pages as table files).
absl::Status SyncDirectory(const std::string& dir);
absl::Status SyncFile(const std::string& path);

absl::StatusOr<uint64_t> ReadSegment(std::string_view data, uint64_t id,
                                     std::optional<uint64_t> known_end,
                                     const std::function<absl::Status(const LogFrame&)>& replay);

struct WriteLogOptions {
  // fdatasync every frame. Off only in benchmarks.
  bool sync = true;
  uint64_t segment_bytes = 64 << 20;
  uint64_t first_segment_bytes = 1 << 20;
};

class WriteLog {
 public:
  // Called for every frame of the log, oldest first; an error stops the
  // open and is returned.
  using Replay = std::function<absl::Status(const LogFrame&)>;

  // Reads the log in `dir` (which must hold at least one segment), replaying
  // every frame, and starts a new segment that begins with `snapshot()`
  // (called after the replay). A torn last frame (one whose write never
  // finished, so never acknowledged) ends the log; any other damage is
  // DataLossError naming the segment and offset.
  static absl::StatusOr<std::unique_ptr<WriteLog>> Open(
      const std::string& dir, WriteLogOptions options, const Replay& replay,
      const std::function<std::string()>& snapshot);
  // Removes every segment in `dir` (creating it if need be) and starts the
  // log afresh with a segment that begins with `snapshot` (reservation
  // puts, a rocksdb::WriteBatch encoding).
  static absl::StatusOr<std::unique_ptr<WriteLog>> Create(const std::string& dir,
                                                          WriteLogOptions options,
                                                          std::string_view snapshot);

  ~WriteLog();
  WriteLog(const WriteLog&) = delete;
  WriteLog& operator=(const WriteLog&) = delete;

  // Appends one group frame and syncs it (WriteLogOptions::sync). A frame
  // that does not fit in the current segment first starts the next one
  // (Roll, with `snapshot()`: what the log-only records are before this
  // group).
  absl::Status Append(std::string_view db_records, std::string_view log_records,
                      const std::function<std::string()>& snapshot);
  // Starts the next segment, beginning with a snapshot (`snapshot`:
  // reservation puts). Returns the new segment's id: every older segment is
  // obsolete once the records of its frames are durable elsewhere.
  absl::StatusOr<uint64_t> Roll(std::string_view snapshot);
  // True when the current segment is half full and no spare is ready or
  // being prepared; the caller then has PrepareSpare run (once).
  bool WantsSpare();
  // Writes the spare for the next roll (zeros, synced). Any one thread.
  absl::Status PrepareSpare();
  // Deletes the segments older than `segment`, oldest first; the newest of
  // them becomes the spare instead when none is ready and it is big enough.
  // Any one thread.
  void DropBefore(uint64_t segment);
  // Storage thread: the records of the current segment's frames so far
  // are in RocksDB at or below sequence number `sequence`.
  void NoteSequence(uint64_t sequence) {
    current_sequence_ = std::max(current_sequence_, sequence);
  }
  // Drops (DropBefore) every segment older than the current one whose
  // records RocksDB holds flushed: at or below `flushed` (a sequence
  // number). Any one thread.
  void DropFlushed(uint64_t flushed);

  uint64_t current_segment() const { return current_; }

 private:
  WriteLog(std::string dir, WriteLogOptions options) : dir_(std::move(dir)), options_(options) {}
  // Starts segment `id` with a snapshot frame (`prev_end`, `snapshot`):
  // written into the spare if one holds the name (one write, one sync),
  // else into a new file of first_segment_bytes, written under a temporary
  // name, synced, renamed into place, the dir synced.
  absl::Status StartSegment(uint64_t id, uint64_t prev_end, std::string_view snapshot);
  // Under segments_mu_: renames `from` (`fresh`: allocated, never written;
  // else a used segment) to the next segment's name, as the spare, unless
  // there is one (a used segment replaces a fresh one); true if it did.
  // SpareNamed (without the lock) then syncs the dir and lets a roll take it.
  bool NameSpare(const std::string& from, bool fresh);
  void SpareNamed();

  const std::string dir_;
  const WriteLogOptions options_;
  int fd_ = -1;           // the current segment
  uint64_t current_ = 0;  // its id; changed under segments_mu_ (NameSpare reads it)
  std::string current_path_;
  uint64_t end_ = 0;               // the length of its frames
  uint64_t allocated_ = 0;         // its file size (written, not frames, past end_)
  uint64_t current_sequence_ = 0;  // see NoteSequence
  mutable std::mutex segments_mu_;
  // Guarded by segments_mu_:
  std::vector<uint64_t> segments_;  // on disk, oldest first
  // Sealed segment -> the highest RocksDB sequence number of its records
  // (unknown, so never flushed, for segments replayed at open).
  std::map<uint64_t, uint64_t> sequences_;
  uint64_t next_bytes_ = 0;  // the size the next segment should have
  // The next segment's name (current_ + 1): free, held by a file not yet
  // started (the spare), or held by StartSegment while it starts it.
  enum class Spare : uint8_t { kNone, kNamed, kStarting };
  Spare spare_ = Spare::kNone;
  bool spare_fresh_ = false;          // kNamed: allocated, never written (not a used segment)
  bool spare_durable_ = false;        // kNamed: the name is synced to the dir
  bool spare_asked_ = false;          // WantsSpare said so, and no spare came of it yet
  std::condition_variable spare_cv_;  // spare_durable_ became true
};

}  // namespace replicator::storage::internal
