// storage_bench: a group-commit measurement. Writer threads each issue
// Write() requests (one PutCommitted of a fresh key each) against RocksDB
// storage in a fresh temporary data dir, keeping at most --inflight of their
// own requests outstanding, and the run prints how many groups and fsyncs
// the writes took. Not a test: it asserts nothing about timing.
//
//   storage_bench --threads=8 --writes=4000 --inflight=16 [--dir=/tmp] [--nosync]
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "storage/storage.h"

namespace {

using replicator::storage::Storage;

struct Flags {
  int threads = 8;
  int writes = 4000;  // in total
  int inflight = 16;  // per thread
  std::string dir = std::filesystem::temp_directory_path().string();
  bool sync = true;
};

bool ParseInt(const char* arg, const char* name, int* out) {
  const size_t n = std::strlen(name);
  if (std::strncmp(arg, name, n) != 0 || arg[n] != '=') return false;
  *out = std::atoi(arg + n + 1);
  return true;
}

// Counts a thread's outstanding requests; Acquire blocks at the limit.
class Window {
 public:
  explicit Window(int limit) : limit_(limit) {}
  void Acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return outstanding_ < limit_; });
    ++outstanding_;
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    --outstanding_;
    cv_.notify_all();
  }
  void Drain() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return outstanding_ == 0; });
  }

 private:
  const int limit_;
  std::mutex mu_;
  std::condition_variable cv_;
  int outstanding_ = 0;
};

// Parses the command line into `flags`; false (after printing why) on a
// usage error.
bool ParseFlags(int argc, char** argv, Flags* flags) {
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    if (ParseInt(a, "--threads", &flags->threads) || ParseInt(a, "--writes", &flags->writes) ||
        ParseInt(a, "--inflight", &flags->inflight)) {
      continue;
    }
    if (std::strncmp(a, "--dir=", 6) == 0) {
      flags->dir = a + 6;
    } else if (std::strcmp(a, "--nosync") == 0) {
      flags->sync = false;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--threads=N] [--writes=N] [--inflight=N] [--dir=D] [--nosync]\n",
                   argv[0]);
      return false;
    }
  }
  if (flags->threads < 1 || flags->writes < flags->threads || flags->inflight < 1) {
    std::fprintf(stderr, "need threads >= 1, writes >= threads, inflight >= 1\n");
    return false;
  }
  return true;
}

// One writer thread's `count` writes of fresh keys, at most `inflight` of
// them outstanding; returns once every one has been answered.
void WriteKeys(Storage& storage, int thread, int count, int inflight, std::atomic<int>* failed) {
  Window window(inflight);
  for (int i = 0; i < count; ++i) {
    window.Acquire();
    std::string key = absl::StrCat("bench/", thread, "/", i);
    replicator::core::WriteBatch batch;
    batch.mutations.push_back(
        replicator::core::PutCommitted{key, std::string(100, 'v'), uint64_t(thread) << 32 | i, {}});
    storage.Write(std::move(batch), [&window, failed](absl::Status s) {
      if (!s.ok()) ++*failed;
      window.Release();
    });
  }
  window.Drain();
}

// The measurement against storage in `dir`; returns the exit status.
int Run(const Flags& flags, const std::string& dir) {
  replicator::storage::RocksDbOptions options;
  options.sync = flags.sync;
  absl::StatusOr<std::unique_ptr<Storage>> opened =
      replicator::storage::OpenRocksDbStorage(dir + "/db", options);
  if (!opened.ok()) {
    std::fprintf(stderr, "%s\n", opened.status().ToString().c_str());
    return 1;
  }
  Storage& storage = **opened;
  const int per_thread = flags.writes / flags.threads;
  const int total = per_thread * flags.threads;
  std::atomic<int> failed{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < flags.threads; ++t) {
    threads.emplace_back([&storage, t, per_thread, &flags, &failed] {
      WriteKeys(storage, t, per_thread, flags.inflight, &failed);
    });
  }
  for (std::thread& t : threads) t.join();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const replicator::storage::StorageStats stats = storage.stats();
  std::printf(
      "threads=%d inflight_per_thread=%d sync=%d\n"
      "writes=%llu batches_written=%llu syncs=%llu failed=%d\n"
      "writes_per_batch=%.1f seconds=%.3f writes_per_second=%.0f\n",
      flags.threads, flags.inflight, flags.sync ? 1 : 0,
      static_cast<unsigned long long>(stats.writes),
      static_cast<unsigned long long>(stats.batches_written),
      static_cast<unsigned long long>(stats.syncs), failed.load(),
      stats.batches_written ? double(stats.writes) / double(stats.batches_written) : 0.0, seconds,
      seconds > 0 ? total / seconds : 0.0);
  return failed.load() != 0 || stats.writes != uint64_t(total) ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  if (!ParseFlags(argc, argv, &flags)) return 2;
  std::string pattern = flags.dir + "/storage_bench.XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    std::perror(pattern.c_str());
    return 1;
  }
  const std::string dir = pattern;
  const int rc = Run(flags, dir);
  std::filesystem::remove_all(dir);
  return rc;
}
