// Storage behaviour, run against both implementations (typed test), plus the
// RocksDB-only cases: damaged records, format checks and the data dir lock.
#include "storage/storage.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "storage/record_format.h"

namespace replicator::storage {
namespace {

// A fresh directory under the test temp dir, removed with the object.
class TempDir {
 public:
  TempDir() {
    std::string pattern = testing::TempDir() + "storage_test.XXXXXX";
    char* made = mkdtemp(pattern.data());
    EXPECT_NE(made, nullptr) << "mkdtemp " << pattern;
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct MemoryBackend {
  static constexpr bool kPersistent = false;
  std::unique_ptr<Storage> Open() { return OpenMemoryStorage(); }
};

struct RocksDbBackend {
  static constexpr bool kPersistent = true;
  std::unique_ptr<Storage> Open() {
    absl::StatusOr<std::unique_ptr<Storage>> s = OpenRocksDbStorage(dir.path() + "/db");
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }
  TempDir dir;
};

core::ProposalId Proposal(std::string coordinator, uint64_t incarnation, uint64_t sequence) {
  core::ProposalId p;
  p.coordinator = std::move(coordinator);
  p.incarnation = incarnation;
  p.sequence = sequence;
  p.started_ms = 1000 + sequence;
  return p;
}

core::Mutation PutReservation(std::string key, const core::ProposalId& p, std::string value) {
  core::Reservation r;
  r.key = std::move(key);
  r.proposal = p;
  r.value = std::move(value);
  r.since = 77;  // not stored
  return core::PutReservation{std::move(r)};
}

core::Mutation PutAcceptor(const core::ProposalId& p, uint64_t promised_round,
                           std::optional<core::Decision> accepted) {
  core::AcceptorRecord a;
  a.proposal = p;
  a.promised = core::Ballot{promised_round, "12D3KooWpromised"};
  if (accepted)
    a.accepted = core::AcceptedValue{core::Ballot{promised_round, "12D3KooWa"}, *accepted};
  return core::PutAcceptor{std::move(a)};
}

core::WriteBatch Batch(std::vector<core::Mutation> mutations) {
  core::WriteBatch b;
  b.mutations = std::move(mutations);
  return b;
}

template <typename Backend>
class StorageTest : public testing::Test {
 protected:
  void SetUp() override {
    storage_ = backend_.Open();
    ASSERT_NE(storage_, nullptr);
  }

  // Closes and reopens a persistent storage; in-memory storage keeps its
  // one instance, which is all it promises to remember.
  void Reopen() {
    if constexpr (Backend::kPersistent) {
      storage_.reset();
      storage_ = backend_.Open();
      ASSERT_NE(storage_, nullptr);
    }
  }

  absl::Status WriteAndWait(core::WriteBatch batch) {
    std::promise<absl::Status> done;
    std::future<absl::Status> result = done.get_future();
    storage_->Write(std::move(batch), [&done](absl::Status s) { done.set_value(std::move(s)); });
    return result.get();
  }

  std::vector<std::pair<std::string, std::string>> Scan(std::string_view from,
                                                        size_t limit = 1000) {
    std::vector<std::pair<std::string, std::string>> out;
    absl::Status s = storage_->ForEachCommitted(from, [&](std::string_view k, std::string_view v) {
      out.emplace_back(k, v);
      return out.size() < limit;
    });
    EXPECT_TRUE(s.ok()) << s;
    return out;
  }

  Backend backend_;
  std::unique_ptr<Storage> storage_;
};

using Backends = testing::Types<MemoryBackend, RocksDbBackend>;
class BackendNames {
 public:
  template <typename T>
  static std::string GetName(int) {
    return std::is_same_v<T, MemoryBackend> ? "Memory" : "RocksDb";
  }
};
TYPED_TEST_SUITE(StorageTest, Backends, BackendNames);

TYPED_TEST(StorageTest, CommittedValueIsVisibleWhenDoneRuns) {
  std::promise<std::optional<core::Value>> seen;
  this->storage_->Write(Batch({core::PutCommitted{"k", "v"}}), [&](absl::Status s) {
    EXPECT_TRUE(s.ok()) << s;
    seen.set_value(this->storage_->GetCommitted("k"));  // on the storage thread
  });
  EXPECT_EQ(seen.get_future().get(), std::optional<core::Value>("v"));
  EXPECT_EQ(this->storage_->GetCommitted("k"), std::optional<core::Value>("v"));
  EXPECT_EQ(this->storage_->GetCommitted("other"), std::nullopt);
  EXPECT_EQ(this->storage_->CommittedCount(), 1u);
}

TYPED_TEST(StorageTest, EmptyBatchCompletes) {
  EXPECT_TRUE(this->WriteAndWait(core::WriteBatch{}).ok());
  EXPECT_EQ(this->storage_->stats().writes, 1u);
}

TYPED_TEST(StorageTest, RecoverReturnsExactlyWhatIsDurable) {
  const core::ProposalId p1 = Proposal("12D3KooWc1", 1, 1);
  const core::ProposalId p2 = Proposal("12D3KooWc1", 1, 2);
  const core::ProposalId p3 = Proposal("12D3KooWc2", 5, 1);
  ASSERT_TRUE(this->WriteAndWait(Batch({
                                     PutReservation("a", p1, "va"),
                                     PutReservation("b", p2, "vb"),
                                     PutReservation(std::string("c\0c", 3), p3, ""),
                                     PutAcceptor(p1, 0, core::Decision::kCommit),
                                     PutAcceptor(p2, 3, std::nullopt),
                                     PutAcceptor(p3, 1, core::Decision::kAbort),
                                 }))
                  .ok());
  ASSERT_TRUE(this->WriteAndWait(Batch({
                                     core::DeleteReservation{"b"},
                                     core::DeleteAcceptor{p2},
                                     core::PutCommitted{"b", "vb"},
                                     // Replaces a's earlier reservation.
                                     PutReservation("a", p2, "va2"),
                                 }))
                  .ok());
  this->Reopen();
  absl::StatusOr<core::DurableState> state = this->storage_->Recover();
  ASSERT_TRUE(state.ok()) << state.status();

  ASSERT_EQ(state->reservations.size(), 2u);
  const core::Reservation& a = state->reservations[0];
  EXPECT_EQ(a.key, "a");
  EXPECT_EQ(a.proposal, p2);
  EXPECT_EQ(a.proposal.started_ms, p2.started_ms);
  EXPECT_EQ(a.value, "va2");
  EXPECT_EQ(a.since, 0);
  const core::Reservation& c = state->reservations[1];
  EXPECT_EQ(c.key, std::string("c\0c", 3));
  EXPECT_EQ(c.proposal, p3);
  EXPECT_EQ(c.value, "");

  std::map<std::string, core::AcceptorRecord> acceptors;
  for (const core::AcceptorRecord& r : state->acceptors) acceptors[r.proposal.ToString()] = r;
  ASSERT_EQ(acceptors.size(), 2u);
  ASSERT_EQ(state->acceptors.size(), 2u);
  const core::AcceptorRecord& r1 = acceptors.at(p1.ToString());
  EXPECT_EQ(r1.proposal.started_ms, p1.started_ms);
  EXPECT_EQ(r1.promised, (core::Ballot{0, "12D3KooWpromised"}));
  ASSERT_TRUE(r1.accepted.has_value());
  EXPECT_EQ(r1.accepted->ballot, (core::Ballot{0, "12D3KooWa"}));
  EXPECT_EQ(r1.accepted->decision, core::Decision::kCommit);
  const core::AcceptorRecord& r3 = acceptors.at(p3.ToString());
  ASSERT_TRUE(r3.accepted.has_value());
  EXPECT_EQ(r3.accepted->decision, core::Decision::kAbort);

  EXPECT_EQ(this->storage_->GetCommitted("b"), std::optional<core::Value>("vb"));
  EXPECT_EQ(this->storage_->CommittedCount(), 1u);
}

TYPED_TEST(StorageTest, LaterMutationInABatchWins) {
  const core::ProposalId p = Proposal("12D3KooWc", 1, 1);
  ASSERT_TRUE(this->WriteAndWait(Batch({
                                     PutReservation("gone", p, "v"),
                                     core::DeleteReservation{"gone"},
                                     core::DeleteReservation{"kept"},
                                     PutReservation("kept", p, "v"),
                                     PutAcceptor(p, 1, std::nullopt),
                                     core::DeleteAcceptor{p},
                                 }))
                  .ok());
  this->Reopen();
  absl::StatusOr<core::DurableState> state = this->storage_->Recover();
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_EQ(state->reservations.size(), 1u);
  EXPECT_EQ(state->reservations[0].key, "kept");
  EXPECT_TRUE(state->acceptors.empty());
}

// Batches written without waiting may share a group; either way the later
// one wins.
TYPED_TEST(StorageTest, LaterBatchWins) {
  const core::ProposalId p = Proposal("12D3KooWc", 1, 1);
  std::vector<std::future<absl::Status>> results;
  std::vector<std::promise<absl::Status>> promises(200);
  for (int i = 0; i < 200; ++i) {
    results.push_back(promises[i].get_future());
    core::WriteBatch b = i % 2 == 0 ? Batch({PutReservation("k", p, absl::StrCat(i))})
                                    : Batch({core::DeleteReservation{"k"}});
    if (i == 198) b = Batch({PutReservation("k", p, "last")});
    this->storage_->Write(std::move(b),
                          [&promises, i](absl::Status s) { promises[i].set_value(std::move(s)); });
  }
  for (auto& r : results) ASSERT_TRUE(r.get().ok());
  this->Reopen();
  absl::StatusOr<core::DurableState> state = this->storage_->Recover();
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_TRUE(state->reservations.empty());  // batch 199 deletes
}

TYPED_TEST(StorageTest, CommittedCountCountsDistinctKeys) {
  ASSERT_TRUE(this->WriteAndWait(Batch({core::PutCommitted{"x", "1"}, core::PutCommitted{"x", "1"},
                                        core::PutCommitted{"y", "2"}}))
                  .ok());
  ASSERT_TRUE(
      this->WriteAndWait(Batch({core::PutCommitted{"x", "1"}, core::PutCommitted{"z", "3"}})).ok());
  EXPECT_EQ(this->storage_->CommittedCount(), 3u);
  EXPECT_EQ(this->storage_->stats().committed_keys, 3u);
  this->Reopen();
  EXPECT_EQ(this->storage_->CommittedCount(), 3u);
  ASSERT_TRUE(this->WriteAndWait(Batch({core::PutCommitted{"y", "2"}})).ok());
  EXPECT_EQ(this->storage_->CommittedCount(), 3u);
}

TYPED_TEST(StorageTest, ConcurrentWritersAllCompleteAndAreGrouped) {
  constexpr int kThreads = 8;
  constexpr int kWritesPerThread = 250;
  constexpr int kWrites = kThreads * kWritesPerThread;
  std::atomic<int> ok{0};
  std::atomic<int> failed{0};
  std::atomic<int> pending{kWrites};
  std::promise<void> all_done;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWritesPerThread; ++i) {
        std::string key = absl::StrCat("t", t, "/", i);
        this->storage_->Write(Batch({core::PutCommitted{key, key + "=v"}}), [&](absl::Status s) {
          (s.ok() ? ok : failed)++;
          if (--pending == 0) all_done.set_value();
        });
      }
    });
  }
  for (std::thread& t : threads) t.join();
  all_done.get_future().wait();
  EXPECT_EQ(ok.load(), kWrites);
  EXPECT_EQ(failed.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kWritesPerThread; ++i) {
      std::string key = absl::StrCat("t", t, "/", i);
      ASSERT_EQ(this->storage_->GetCommitted(key), std::optional<core::Value>(key + "=v"));
    }
  }
  const StorageStats stats = this->storage_->stats();
  EXPECT_EQ(stats.writes, uint64_t{kWrites});
  EXPECT_LE(stats.batches_written, uint64_t{kWrites});
  EXPECT_GE(stats.batches_written, 1u);
  EXPECT_EQ(stats.mutations, uint64_t{kWrites});
  EXPECT_EQ(stats.committed_keys, uint64_t{kWrites});
  EXPECT_EQ(stats.write_errors, 0u);
  if (TypeParam::kPersistent) {
    EXPECT_EQ(stats.syncs, stats.batches_written);  // one fsync per group
  } else {
    EXPECT_EQ(stats.syncs, 0u);
  }
}

TYPED_TEST(StorageTest, DestructionCompletesQueuedWrites) {
  constexpr int kWrites = 300;
  std::atomic<int> ok{0};
  for (int i = 0; i < kWrites; ++i) {
    this->storage_->Write(Batch({core::PutCommitted{absl::StrCat("k", i), "v"}}),
                          [&](absl::Status s) { ok += s.ok(); });
  }
  this->storage_.reset();
  EXPECT_EQ(ok.load(), kWrites);
  if (TypeParam::kPersistent) {
    this->storage_ = this->backend_.Open();
    ASSERT_NE(this->storage_, nullptr);
    EXPECT_EQ(this->storage_->CommittedCount(), uint64_t{kWrites});
  }
}

TYPED_TEST(StorageTest, DoneMayWriteAgain) {
  std::promise<absl::Status> second;
  this->storage_->Write(Batch({core::PutCommitted{"first", "1"}}), [&](absl::Status s) {
    ASSERT_TRUE(s.ok());
    this->storage_->Write(Batch({core::PutCommitted{"second", "2"}}),
                          [&](absl::Status s2) { second.set_value(s2); });
  });
  EXPECT_TRUE(second.get_future().get().ok());
  EXPECT_EQ(this->storage_->GetCommitted("second"), std::optional<core::Value>("2"));
}

TYPED_TEST(StorageTest, NextIncarnationStrictlyIncreasesAcrossReopen) {
  absl::StatusOr<uint64_t> a = this->storage_->NextIncarnation();
  absl::StatusOr<uint64_t> b = this->storage_->NextIncarnation();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_GE(*a, 1u);
  EXPECT_GT(*b, *a);
  this->Reopen();
  absl::StatusOr<uint64_t> c = this->storage_->NextIncarnation();
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_GT(*c, *b);
}

TYPED_TEST(StorageTest, ForEachCommittedVisitsInKeyOrderFrom) {
  const core::ProposalId p = Proposal("12D3KooWc", 1, 1);
  // Bytes compare unsigned: "\xff" sorts last, "" < "\0".
  ASSERT_TRUE(this->WriteAndWait(Batch({
                                     core::PutCommitted{"d", "4"},
                                     core::PutCommitted{"b", "2"},
                                     core::PutCommitted{"\xff", "ff"},
                                     core::PutCommitted{"a", "1"},
                                     core::PutCommitted{std::string("\0", 1), "nul"},
                                     core::PutCommitted{"c", ""},
                                     PutReservation("bb", p, "reserved, not committed"),
                                     PutAcceptor(p, 1, std::nullopt),
                                 }))
                  .ok());
  this->Reopen();
  using Entries = std::vector<std::pair<std::string, std::string>>;
  EXPECT_EQ(this->Scan(""), (Entries{{std::string("\0", 1), "nul"},
                                     {"a", "1"},
                                     {"b", "2"},
                                     {"c", ""},
                                     {"d", "4"},
                                     {"\xff", "ff"}}));
  EXPECT_EQ(this->Scan("b"), (Entries{{"b", "2"}, {"c", ""}, {"d", "4"}, {"\xff", "ff"}}));
  EXPECT_EQ(this->Scan("bb"), (Entries{{"c", ""}, {"d", "4"}, {"\xff", "ff"}}));
  EXPECT_EQ(this->Scan("a", 2), (Entries{{"a", "1"}, {"b", "2"}}));
  EXPECT_EQ(this->Scan("\xff\xff"), Entries{});
}

TYPED_TEST(StorageTest, ForEachCommittedCoversManyEntries) {
  // More entries than one in-memory scan chunk, so resumption is exercised.
  core::WriteBatch b;
  for (int i = 0; i < 1000; ++i)
    b.mutations.push_back(core::PutCommitted{absl::StrCat(10000 + i), "v"});
  ASSERT_TRUE(this->WriteAndWait(std::move(b)).ok());
  const auto all = this->Scan("", 100000);
  ASSERT_EQ(all.size(), 1000u);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(all[i].first, absl::StrCat(10000 + i));
  // A visitor may call back into storage.
  int visited = 0;
  absl::Status s = this->storage_->ForEachCommitted("", [&](std::string_view k, std::string_view) {
    EXPECT_TRUE(this->storage_->GetCommitted(std::string(k)).has_value());
    return ++visited < 600;
  });
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(visited, 600);
}

// --- RocksDB only -------------------------------------------------------------

class RocksDbStorageTest : public testing::Test {
 protected:
  std::string db_path() const { return dir_.path() + "/db"; }

  std::unique_ptr<Storage> MustOpen() {
    absl::StatusOr<std::unique_ptr<Storage>> s = OpenRocksDbStorage(db_path());
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *std::move(s) : nullptr;
  }

  // Writes raw records behind storage's back; storage must be closed.
  void RawPut(const std::string& key, const std::string& value) {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(options, db_path(), &db);
    ASSERT_TRUE(s.ok()) << s.ToString();
    s = db->Put(rocksdb::WriteOptions(), key, value);
    EXPECT_TRUE(s.ok()) << s.ToString();
    delete db;
  }

  TempDir dir_;
};

TEST_F(RocksDbStorageTest, CorruptReservationIsDataLossNamingTheRecord) {
  MustOpen().reset();
  RawPut(internal::ReservationKey("broken-key"), std::string("\x01\x05"
                                                             "ab",
                                                             4));
  std::unique_ptr<Storage> storage = MustOpen();
  ASSERT_NE(storage, nullptr);
  absl::StatusOr<core::DurableState> state = storage->Recover();
  ASSERT_EQ(state.status().code(), absl::StatusCode::kDataLoss) << state.status();
  EXPECT_NE(state.status().message().find("reservation record 'rbroken-key'"), std::string::npos)
      << state.status();
}

TEST_F(RocksDbStorageTest, CorruptAcceptorIsDataLoss) {
  MustOpen().reset();
  core::ProposalId p = Proposal("12D3KooWc", 1, 2);
  RawPut(internal::AcceptorKey(p), "\x01");
  std::unique_ptr<Storage> storage = MustOpen();
  ASSERT_NE(storage, nullptr);
  absl::StatusOr<core::DurableState> state = storage->Recover();
  EXPECT_EQ(state.status().code(), absl::StatusCode::kDataLoss) << state.status();
  EXPECT_NE(state.status().message().find("acceptor record"), std::string::npos) << state.status();
}

TEST_F(RocksDbStorageTest, CorruptIncarnationCounterFailsOpen) {
  MustOpen().reset();
  RawPut(std::string(internal::kIncarnationKey), "\x01\xff");
  absl::StatusOr<std::unique_ptr<Storage>> s = OpenRocksDbStorage(db_path());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
  EXPECT_NE(s.status().message().find("mincarnation"), std::string::npos) << s.status();
}

TEST_F(RocksDbStorageTest, NewerFormatIsRefused) {
  MustOpen().reset();
  RawPut(std::string(internal::kFormatKey), internal::EncodeCounter(internal::kFormatVersion + 1));
  absl::StatusOr<std::unique_ptr<Storage>> s = OpenRocksDbStorage(db_path());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
  EXPECT_NE(s.status().message().find("format version 2"), std::string::npos) << s.status();
}

TEST_F(RocksDbStorageTest, ForeignDatabaseIsRefused) {
  RawPut("something", "else");
  absl::StatusOr<std::unique_ptr<Storage>> s = OpenRocksDbStorage(db_path());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
  EXPECT_NE(s.status().message().find("no format version record"), std::string::npos) << s.status();
}

TEST_F(RocksDbStorageTest, SecondOpenOfALockedDirFails) {
  std::unique_ptr<Storage> first = MustOpen();
  ASSERT_NE(first, nullptr);
  absl::StatusOr<std::unique_ptr<Storage>> second = OpenRocksDbStorage(db_path());
  ASSERT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition) << second.status();
  EXPECT_NE(second.status().message().find("data dir " + db_path() + " is in use"),
            std::string::npos)
      << second.status();
  first.reset();
  EXPECT_NE(MustOpen(), nullptr);  // the lock goes with the instance
}

// Another process holds the LOCK file (RocksDB locks it with fcntl). The
// child only makes async-signal-safe calls, as a fork of a threaded process
// must.
TEST_F(RocksDbStorageTest, DirLockedByAnotherProcessFails) {
  MustOpen().reset();
  const std::string lock_path = db_path() + "/LOCK";
  int locked[2];
  int release[2];
  ASSERT_EQ(pipe(locked), 0);
  ASSERT_EQ(pipe(release), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(locked[0]);
    close(release[1]);
    const int fd = open(lock_path.c_str(), O_RDWR);
    struct flock lock = {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    char ok = (fd >= 0 && fcntl(fd, F_SETLK, &lock) == 0) ? 1 : 0;
    if (write(locked[1], &ok, 1) != 1) _exit(2);
    char ignored;
    while (read(release[0], &ignored, 1) > 0) {
    }
    _exit(0);
  }
  close(locked[1]);
  close(release[0]);
  char ok = 0;
  ASSERT_EQ(read(locked[0], &ok, 1), 1);
  ASSERT_EQ(ok, 1) << "child could not lock " << lock_path;
  absl::StatusOr<std::unique_ptr<Storage>> s = OpenRocksDbStorage(db_path());
  close(release[1]);
  close(locked[0]);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
  EXPECT_NE(s.status().message().find("is in use by another replicatord process"),
            std::string::npos)
      << s.status();
}

TEST_F(RocksDbStorageTest, DataDirThatIsAFileFails) {
  const std::string path = dir_.path() + "/file";
  std::ofstream(path) << "not a dir";
  absl::StatusOr<std::unique_ptr<Storage>> s = OpenRocksDbStorage(path);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find(path), std::string::npos) << s.status();
}

TEST_F(RocksDbStorageTest, UnreadableDirFails) {
  if (geteuid() == 0) GTEST_SKIP() << "root reads any directory";
  MustOpen().reset();
  std::filesystem::permissions(db_path(), std::filesystem::perms::none);
  absl::StatusOr<std::unique_ptr<Storage>> s = OpenRocksDbStorage(db_path());
  std::filesystem::permissions(db_path(), std::filesystem::perms::owner_all);
  EXPECT_EQ(s.status().code(), absl::StatusCode::kPermissionDenied) << s.status();
  EXPECT_NE(s.status().message().find(db_path()), std::string::npos) << s.status();
}

}  // namespace
}  // namespace replicator::storage
