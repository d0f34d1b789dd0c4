#include "storage/write_log.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <system_error>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "storage/record_format.h"

namespace replicator::storage::internal {
namespace {

constexpr size_t kHeaderBytes = 16;  // crc, length, segment id
constexpr std::string_view kSuffix = ".log";
constexpr std::string_view kTempSuffix = ".log.tmp";
// A spare being prepared; removed at open (it ends in kTempSuffix). Once
// written it is renamed to the next segment's name, where open finds it
// unstarted (WriteLog::Open).
constexpr char kNewSpareName[] = "spare-new.log.tmp";

constexpr std::array<uint32_t, 256> MakeCrcTable() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) != 0 ? 0x82F63B78u ^ (c >> 1) : c >> 1;
    table[i] = c;
  }
  return table;
}
constexpr std::array<uint32_t, 256> kCrcTable = MakeCrcTable();

void PutFixed32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutFixed64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t GetFixed(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

std::string SegmentName(uint64_t id) { return absl::StrFormat("%020u%s", id, kSuffix); }

absl::Status Errno(const char* what, const std::string& path) {
  const int e = errno;
  std::string message = absl::StrCat(what, " ", path, ": ", std::strerror(e));
  if (e == ENOSPC || e == EDQUOT) return absl::ResourceExhaustedError(message);
  if (e == EACCES || e == EPERM || e == EROFS) return absl::PermissionDeniedError(message);
  return absl::UnavailableError(message);
}

absl::Status WriteAll(int fd, std::string_view data, uint64_t offset, const std::string& path) {
  while (!data.empty()) {
    const ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("writing", path);
    }
    data.remove_prefix(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
  return absl::OkStatus();
}

absl::Status SyncFd(int fd, const std::string& path) {
  if (::fdatasync(fd) != 0) return Errno("syncing", path);
  return absl::OkStatus();
}

absl::Status SyncDir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("opening", dir);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Errno("syncing", dir);
  return absl::OkStatus();
}

// A segment file mapped read-only: replay reads it where it lies, so a
// segment of 64 MiB costs the pages of its frames, not a 64 MiB copy (the
// zeros or old frames past them are never touched).
class MappedFile {
 public:
  static absl::StatusOr<MappedFile> Open(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return Errno("opening", path);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      absl::Status s = Errno("reading", path);
      ::close(fd);
      return s;
    }
    MappedFile file;
    file.size_ = static_cast<size_t>(st.st_size);
    if (file.size_ > 0) {
      void* addr = ::mmap(nullptr, file.size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (addr == MAP_FAILED) {
        absl::Status s = Errno("mapping", path);
        ::close(fd);
        return s;
      }
      ::madvise(addr, file.size_, MADV_SEQUENTIAL);
      file.addr_ = addr;
    }
    ::close(fd);
    return file;
  }
  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept
      : addr_(std::exchange(other.addr_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  MappedFile& operator=(MappedFile&& other) noexcept {
    if (this != &other) {
      Unmap();
      addr_ = std::exchange(other.addr_, nullptr);
      size_ = std::exchange(other.size_, 0);
    }
    return *this;
  }
  ~MappedFile() { Unmap(); }

  std::string_view data() const {
    return addr_ == nullptr ? std::string_view()
                            : std::string_view(static_cast<const char*>(addr_), size_);
  }

 private:
  void Unmap() {
    if (addr_ != nullptr) ::munmap(addr_, size_);
    addr_ = nullptr;
  }
  void* addr_ = nullptr;
  size_t size_ = 0;
};

// Gives the file `bytes` of allocated blocks that read as zeros
// (fallocate: no data written, so a new segment costs the disk nothing
// now; the first sync of a frame into each new block commits its extent).
// Writes zeros where the file system cannot allocate so.
absl::Status Allocate(int fd, uint64_t bytes, const std::string& path) {
  if (::fallocate(fd, 0, 0, static_cast<off_t>(bytes)) == 0) return absl::OkStatus();
  if (errno != EOPNOTSUPP && errno != ENOSYS) return Errno("allocating", path);
  const std::string zeros(std::min<uint64_t>(bytes, 1 << 20), '\0');
  for (uint64_t at = 0; at < bytes; at += zeros.size()) {
    const std::string_view chunk =
        std::string_view(zeros).substr(0, std::min<uint64_t>(zeros.size(), bytes - at));
    if (absl::Status s = WriteAll(fd, chunk, at, path); !s.ok()) return s;
  }
  return absl::OkStatus();
}

// The segment ids in `dir`, oldest first; removes segments whose creation
// never finished (their temporary files).
absl::StatusOr<std::vector<uint64_t>> ListSegments(const std::string& dir) {
  std::vector<uint64_t> ids;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.size() > kTempSuffix.size() &&
        name.compare(name.size() - kTempSuffix.size(), kTempSuffix.size(), kTempSuffix) == 0) {
      std::filesystem::remove(entry.path(), ec);
      continue;
    }
    uint64_t id = 0;
    if (name.size() == 20 + kSuffix.size() && name.substr(20) == kSuffix &&
        absl::SimpleAtoi(name.substr(0, 20), &id)) {
      ids.push_back(id);
    }
  }
  if (ec == std::errc::no_such_file_or_directory) return ids;
  if (ec) return absl::UnavailableError(absl::StrCat("listing ", dir, ": ", ec.message()));
  std::sort(ids.begin(), ids.end());
  return ids;
}

// One frame read at an offset of a segment.
struct Parsed {
  enum class Kind : uint8_t {
    kFrame,  // `frame` and `size` are set
    kEnd,    // zeros, a frame of another segment, or too few bytes for a header
    kTorn,   // a frame cut short or whose checksum fails
  };
  Kind kind = Kind::kEnd;
  LogFrame frame;
  size_t size = 0;  // header + payload
  std::string error;
};

Parsed ParseAt(std::string_view data, size_t offset, uint64_t segment) {
  Parsed out;
  if (data.size() - offset < kHeaderBytes) return out;
  const char* h = data.data() + offset;
  const uint32_t crc = static_cast<uint32_t>(GetFixed(h, 4));
  const uint64_t length = GetFixed(h + 4, 4);
  const uint64_t id = GetFixed(h + 8, 8);
  if (crc == 0 && length == 0 && id == 0) return out;
  if (id != segment) return out;
  if (length > data.size() - offset - kHeaderBytes) {
    out.kind = Parsed::Kind::kTorn;
    out.error = absl::StrCat("a frame of ", length, " bytes runs past the end of the file");
    return out;
  }
  const std::string_view checked = data.substr(offset + 4, kHeaderBytes - 4 + length);
  if (Crc32c(checked) != crc) {
    out.kind = Parsed::Kind::kTorn;
    out.error = "a frame's checksum does not match";
    return out;
  }
  Reader reader(data.substr(offset + kHeaderBytes, length));
  uint8_t kind = 0;
  if (!reader.ReadByte("frame kind", &kind) ||
      !reader.ReadVarint64("prev_end", &out.frame.prev_end) ||
      !reader.ReadLengthPrefixed("db records", &out.frame.db_records) ||
      !reader.ReadLengthPrefixed("log records", &out.frame.log_records) || !reader.ExpectEnd() ||
      (kind != static_cast<uint8_t>(LogFrame::Kind::kGroup) &&
       kind != static_cast<uint8_t>(LogFrame::Kind::kSnapshot))) {
    // The checksum held, so this is no torn write: it is a frame this build
    // cannot read.
    out.kind = Parsed::Kind::kTorn;
    out.error = reader.error().empty() ? absl::StrCat("unknown frame kind ", kind) : reader.error();
    out.size = SIZE_MAX;  // never a torn tail
    return out;
  }
  out.frame.kind = static_cast<LogFrame::Kind>(kind);
  out.kind = Parsed::Kind::kFrame;
  out.size = kHeaderBytes + length;
  return out;
}

uint32_t Crc32cTable(std::string_view data, uint32_t crc) {
  for (char c : data) crc = kCrcTable[(crc ^ static_cast<uint8_t>(c)) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
// SSE4.2's crc32 instruction computes CRC-32C, eight bytes a step: a
// catch-up page of 1 MiB costs well under a millisecond instead of several.
__attribute__((target("sse4.2"))) uint32_t Crc32cSse42(std::string_view data, uint32_t crc) {
  const char* p = data.data();
  size_t n = data.size();
  uint64_t c = crc;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    c = __builtin_ia32_crc32di(c, word);
  }
  crc = static_cast<uint32_t>(c);
  for (; n > 0; ++p, --n) crc = __builtin_ia32_crc32qi(crc, static_cast<uint8_t>(*p));
  return crc;
}
#endif

}  // namespace

absl::Status SyncDirectory(const std::string& dir) { return SyncDir(dir); }

absl::Status SyncFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("opening", path);
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) return Errno("syncing", path);
  return absl::OkStatus();
}

uint32_t Crc32c(std::string_view data, uint32_t crc) {
  crc = ~crc;
#if defined(__x86_64__)
  static const bool sse42 = __builtin_cpu_supports("sse4.2");
  crc = sse42 ? Crc32cSse42(data, crc) : Crc32cTable(data, crc);
#else
  crc = Crc32cTable(data, crc);
#endif
  return ~crc;
}

std::string EncodeFrame(uint64_t segment, const LogFrame& frame) {
  std::string out;
  out.reserve(kHeaderBytes + frame.db_records.size() + frame.log_records.size() + 32);
  PutFixed32(&out, 0);  // the checksum, below
  PutFixed32(&out, 0);  // the payload's length, below
  PutFixed64(&out, segment);
  out.push_back(static_cast<char>(frame.kind));
  PutVarint64(&out, frame.prev_end);
  PutLengthPrefixed(&out, frame.db_records);
  PutLengthPrefixed(&out, frame.log_records);
  const uint64_t length = out.size() - kHeaderBytes;
  for (int i = 0; i < 4; ++i) out[4 + i] = static_cast<char>((length >> (8 * i)) & 0xff);
  const uint32_t crc = Crc32c(std::string_view(out).substr(4));
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((crc >> (8 * i)) & 0xff);
  return out;
}

bool Unstarted(std::string_view data, uint64_t id) {
  Parsed p = ParseAt(data, 0, id);
  if (p.kind == Parsed::Kind::kFrame || p.size == SIZE_MAX) return false;
  if (data.size() < kHeaderBytes) return true;
  // Zeros, an old segment's frame, or a torn snapshot (the roll's one
  // write, cut short) — unless a sound frame of this segment follows
  // anywhere: frames after the snapshot are written only once it is synced,
  // so then the first frame is damaged (any of its header's fields, or all
  // of them zeroed), and ReadSegment says so. Where the header says the
  // first frame ends is looked at first; the rest of the file is searched
  // for a header naming this segment, each candidate checked whole (its
  // checksum), so bytes of a payload that happen to match are no frame.
  const uint64_t next = kHeaderBytes + GetFixed(data.data() + 4, 4);
  if (next < data.size() && ParseAt(data, next, id).kind == Parsed::Kind::kFrame) return false;
  std::string id_bytes;
  PutFixed64(&id_bytes, id);
  constexpr size_t kIdOffset = 8;  // of a header: after the crc and the length
  for (size_t at = data.find(id_bytes, kHeaderBytes + kIdOffset); at != std::string_view::npos;
       at = data.find(id_bytes, at + 1)) {
    if (ParseAt(data, at - kIdOffset, id).kind == Parsed::Kind::kFrame) return false;
  }
  return true;
}

absl::StatusOr<uint64_t> ReadSegment(std::string_view data, uint64_t id,
                                     std::optional<uint64_t> known_end,
                                     const WriteLog::Replay& replay) {
  auto at = [](uint64_t offset, absl::string_view what) {
    return absl::DataLossError(absl::StrCat("at offset ", offset, ": ", what));
  };
  size_t offset = 0;
  for (;;) {
    if (known_end && offset == *known_end) break;
    if (known_end && offset > *known_end) {
      return at(offset,
                absl::StrCat("a frame crosses the end (", *known_end, ") the next segment gives"));
    }
    Parsed p = ParseAt(data, offset, id);
    if (p.kind == Parsed::Kind::kFrame) {
      if ((offset == 0) != (p.frame.kind == LogFrame::Kind::kSnapshot)) {
        return at(offset, offset == 0 ? "it does not begin with a snapshot"
                                      : "a snapshot that does not begin its segment");
      }
      if (absl::Status s = replay(p.frame); !s.ok()) return s;
      offset += p.size;
      continue;
    }
    if (offset == 0) return at(0, p.error.empty() ? "no snapshot frame" : p.error);
    if (known_end) {
      return at(offset, absl::StrCat(p.error.empty() ? "the frames end" : p.error, " before ",
                                     *known_end, ", where the next segment says this one ends"));
    }
    if (p.kind == Parsed::Kind::kTorn) {
      // Only the last frame written can be torn: each is synced before the
      // next is written. A sound frame after it means damage, not a tear.
      if (p.size == SIZE_MAX) return at(offset, p.error);
      const uint64_t length = GetFixed(data.data() + offset + 4, 4);
      const uint64_t next = offset + kHeaderBytes + length;
      if (next < data.size() && ParseAt(data, next, id).kind == Parsed::Kind::kFrame) {
        return at(offset, absl::StrCat(p.error, ", and a sound frame follows it"));
      }
    }
    break;  // the end of the log
  }
  return offset;
}

absl::StatusOr<std::unique_ptr<WriteLog>> WriteLog::Create(const std::string& dir,
                                                           WriteLogOptions options,
                                                           std::string_view snapshot) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("creating ", dir, ": ", ec.message()));
  absl::StatusOr<std::vector<uint64_t>> old = ListSegments(dir);
  if (!old.ok()) return old.status();
  std::unique_ptr<WriteLog> log(new WriteLog(dir, options));
  {
    std::lock_guard<std::mutex> lock(log->segments_mu_);
    log->segments_ = *old;
  }
  const uint64_t id = old->empty() ? 1 : old->back() + 1;
  if (absl::Status s = log->StartSegment(id, 0, snapshot); !s.ok()) return s;
  log->DropBefore(id);
  return log;
}

absl::StatusOr<std::unique_ptr<WriteLog>> WriteLog::Open(
    const std::string& dir, WriteLogOptions options, const Replay& replay,
    const std::function<std::string()>& snapshot) {
  absl::StatusOr<std::vector<uint64_t>> ids = ListSegments(dir);
  if (!ids.ok()) return ids.status();
  // A spare named for the next segment and never started holds nothing.
  if (!ids->empty()) {
    const std::string last = absl::StrCat(dir, "/", SegmentName(ids->back()));
    absl::StatusOr<MappedFile> data = MappedFile::Open(last);
    if (!data.ok()) return data.status();
    // Not removed here: the new segment this open starts takes its name
    // (and if the open fails, the file is left as it was found).
    if (Unstarted(data->data(), ids->back())) ids->pop_back();
  }
  if (ids->empty()) {
    return absl::DataLossError(absl::StrCat(
        "the write log in ", dir,
        " holds no segment: the reservations this node promised are lost. Restore the data dir "
        "from a backup, or remove the node and add it back empty (it catches up from its peers)"));
  }
  auto damaged = [&](uint64_t id, absl::string_view what) {
    return absl::DataLossError(absl::StrCat(
        "the write log in ", dir, " is damaged: segment ", SegmentName(id), " ", what,
        "; refusing to start rather than forget acknowledged writes. Restore the data dir from a "
        "backup, or remove the node and add it back empty (it catches up from its peers)"));
  };
  uint64_t last_end = 0;
  absl::StatusOr<MappedFile> next_data =
      MappedFile::Open(absl::StrCat(dir, "/", SegmentName(ids->front())));
  for (size_t i = 0; i < ids->size(); ++i) {
    const uint64_t id = (*ids)[i];
    if (i > 0 && id != (*ids)[i - 1] + 1) {
      return damaged(id, absl::StrCat("follows ", SegmentName((*ids)[i - 1]), ": segment ",
                                      SegmentName((*ids)[i - 1] + 1), " is missing"));
    }
    absl::StatusOr<MappedFile> data = std::move(next_data);
    if (!data.ok()) return data.status();
    // A segment followed by another ends where that one's snapshot says.
    std::optional<uint64_t> known_end;
    if (i + 1 < ids->size()) {
      const uint64_t next = (*ids)[i + 1];
      next_data = MappedFile::Open(absl::StrCat(dir, "/", SegmentName(next)));
      if (!next_data.ok()) return next_data.status();
      Parsed first = ParseAt(next_data->data(), 0, next);
      if (first.kind != Parsed::Kind::kFrame || first.frame.kind != LogFrame::Kind::kSnapshot) {
        return damaged(next, "at offset 0: it does not begin with a snapshot");
      }
      known_end = first.frame.prev_end;
    }
    absl::StatusOr<uint64_t> end = ReadSegment(data->data(), id, known_end, replay);
    if (!end.ok()) {
      if (!absl::IsDataLoss(end.status())) return end.status();
      return damaged(id, end.status().message());
    }
    last_end = *end;
  }
  std::unique_ptr<WriteLog> log(new WriteLog(dir, options));
  {
    std::lock_guard<std::mutex> lock(log->segments_mu_);
    log->segments_ = *ids;
  }
  const std::string snap = snapshot();
  if (absl::Status s = log->StartSegment(ids->back() + 1, last_end, snap); !s.ok()) return s;
  return log;
}

WriteLog::~WriteLog() {
  if (fd_ >= 0) ::close(fd_);
}

absl::Status WriteLog::StartSegment(uint64_t id, uint64_t prev_end, std::string_view snapshot) {
  const std::string path = absl::StrCat(dir_, "/", SegmentName(id));
  const std::string frame =
      EncodeFrame(id, LogFrame{LogFrame::Kind::kSnapshot, prev_end, std::string_view(), snapshot});
  bool spare = false;
  {
    std::unique_lock<std::mutex> lock(segments_mu_);
    // A spare named for `id` is taken once its name is durable (its dir
    // sync is quick, and it is only asked for when the current segment is
    // half full); without one, the name is held here while the segment is
    // written, so that no spare can be renamed onto it meanwhile.
    spare_cv_.wait(lock, [&] { return spare_ != Spare::kNamed || spare_durable_; });
    spare = spare_ == Spare::kNamed && current_ != 0;
    spare_ = Spare::kStarting;
    spare_asked_ = false;
  }
  auto release = [&] {
    std::lock_guard<std::mutex> lock(segments_mu_);
    spare_ = Spare::kNone;
  };
  absl::Status s;
  int fd = -1;
  uint64_t size = 0;
  if (spare) {
    // Made already (allocated, or an old segment whose frames name another
    // id): the roll is one write and one sync of the snapshot.
    fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
      release();
      return Errno("opening", path);
    }
    struct stat st {};
    if (::fstat(fd, &st) == 0) size = static_cast<uint64_t>(st.st_size);
    s = WriteAll(fd, frame, 0, path);
    if (s.ok() && options_.sync) s = SyncFd(fd, path);
  } else {
    // A new file: written under a temporary name, synced, renamed into
    // place, the dir synced.
    const std::string temp = absl::StrCat(dir_, "/", absl::StrFormat("%020u%s", id, kTempSuffix));
    fd = ::open(temp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) {
      release();
      return Errno("creating", temp);
    }
    size = std::max<uint64_t>(frame.size(), options_.first_segment_bytes);
    s = Allocate(fd, size, temp);
    if (s.ok()) s = WriteAll(fd, frame, 0, temp);
    if (s.ok() && options_.sync) s = SyncFd(fd, temp);
    if (s.ok() && ::rename(temp.c_str(), path.c_str()) != 0) s = Errno("renaming", temp);
    if (s.ok() && options_.sync) s = SyncDir(dir_);
  }
  if (!s.ok()) {
    release();
    ::close(fd);
    return s;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  current_path_ = path;
  end_ = frame.size();
  allocated_ = std::max<uint64_t>(size, frame.size());
  // current_ and the name it holds change together: NameSpare names the
  // spare after current_.
  std::lock_guard<std::mutex> lock(segments_mu_);
  const uint64_t sealed = current_;
  current_ = id;
  spare_ = Spare::kNone;
  if (sealed != 0) sequences_[sealed] = current_sequence_;
  segments_.push_back(id);
  next_bytes_ = std::min(options_.segment_bytes, std::max(allocated_, uint64_t{1}) * 2);
  next_bytes_ = std::max(next_bytes_, options_.first_segment_bytes);
  return absl::OkStatus();
}

absl::Status WriteLog::Append(std::string_view db_records, std::string_view log_records,
                              const std::function<std::string()>& snapshot) {
  const LogFrame group{LogFrame::Kind::kGroup, 0, db_records, log_records};
  std::string frame = EncodeFrame(current_, group);
  if (end_ + frame.size() > allocated_) {
    absl::StatusOr<uint64_t> next = Roll(snapshot());
    if (!next.ok()) return next.status();
    frame = EncodeFrame(current_, group);  // the segment id is part of the frame
  }
  // A frame larger than a whole segment grows the file: its sync then
  // commits the new size as well.
  if (absl::Status s = WriteAll(fd_, frame, end_, current_path_); !s.ok()) return s;
  if (options_.sync) {
    if (absl::Status s = SyncFd(fd_, current_path_); !s.ok()) return s;
  }
  end_ += frame.size();
  allocated_ = std::max(allocated_, end_);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> WriteLog::Roll(std::string_view snapshot) {
  if (absl::Status s = StartSegment(current_ + 1, end_, snapshot); !s.ok()) return s;
  return current_;
}

bool WriteLog::WantsSpare() {
  std::lock_guard<std::mutex> lock(segments_mu_);
  if (spare_ != Spare::kNone || spare_asked_ || end_ * 2 < allocated_) return false;
  spare_asked_ = true;
  return true;
}

bool WriteLog::NameSpare(const std::string& from, bool fresh) {
  // Under segments_mu_. The storage thread's current_ only changes in
  // StartSegment, which holds the name of the segment it starts first.
  if (current_ == 0 || spare_ == Spare::kStarting) return false;
  // A segment used before is written through already; it replaces a fresh
  // spare, whose blocks would each cost their first sync an extent commit.
  if (spare_ == Spare::kNamed && (fresh || !spare_fresh_)) return false;
  if (::rename(from.c_str(), absl::StrCat(dir_, "/", SegmentName(current_ + 1)).c_str()) != 0) {
    return false;
  }
  spare_ = Spare::kNamed;
  spare_fresh_ = fresh;
  spare_durable_ = false;
  return true;
}

void WriteLog::SpareNamed() {
  // Until the dir is synced, a crash may lose the name; a roll waits.
  const bool synced = !options_.sync || SyncDir(dir_).ok();
  std::lock_guard<std::mutex> lock(segments_mu_);
  if (spare_ == Spare::kNamed) {
    if (synced) {
      spare_durable_ = true;
    } else {
      spare_ = Spare::kNone;  // the roll writes a new segment itself (and syncs the dir)
    }
  }
  spare_cv_.notify_all();
}

absl::Status WriteLog::PrepareSpare() {
  uint64_t size = 0;
  {
    std::lock_guard<std::mutex> lock(segments_mu_);
    if (spare_ != Spare::kNone) return absl::OkStatus();
    size = next_bytes_;
  }
  const std::string temp = absl::StrCat(dir_, "/", kNewSpareName);
  const int fd = ::open(temp.c_str(), O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("creating", temp);
  absl::Status s = Allocate(fd, size, temp);
  if (s.ok() && options_.sync) s = SyncFd(fd, temp);
  ::close(fd);
  if (!s.ok()) return s;
  bool named = false;
  {
    std::lock_guard<std::mutex> lock(segments_mu_);
    named = NameSpare(temp, true);
  }
  if (!named) {
    ::unlink(temp.c_str());
    return absl::OkStatus();
  }
  SpareNamed();
  return absl::OkStatus();
}

void WriteLog::DropBefore(uint64_t segment) {
  bool named = false;
  {
    std::lock_guard<std::mutex> lock(segments_mu_);
    while (!segments_.empty() && segments_.front() < segment) {
      const std::string path = absl::StrCat(dir_, "/", SegmentName(segments_.front()));
      const bool newest_dropped = segments_.size() == 1 || segments_[1] >= segment;
      // The newest obsolete segment becomes the spare: its blocks are
      // written already, and its old frames name another segment id.
      std::error_code ec;
      const uint64_t size = std::filesystem::file_size(path, ec);
      if (newest_dropped && !ec && size >= next_bytes_ && NameSpare(path, false)) {
        named = true;
      } else if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
        // Oldest first, so what is left is always a run of consecutive
        // segments; one that cannot be removed stays, and is replayed
        // (harmlessly) again.
        break;
      }
      sequences_.erase(segments_.front());
      segments_.erase(segments_.begin());
    }
  }
  if (named) SpareNamed();
}

void WriteLog::DropFlushed(uint64_t flushed) {
  uint64_t keep = 0;
  {
    std::lock_guard<std::mutex> lock(segments_mu_);
    for (uint64_t id : segments_) {
      keep = id;
      auto it = sequences_.find(id);
      if (it == sequences_.end() || it->second > flushed) break;  // current, or not flushed
    }
  }
  if (keep != 0) DropBefore(keep);
}

}  // namespace replicator::storage::internal
