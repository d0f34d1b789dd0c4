// Storage behaviour, run against both implementations (typed test), plus the
// RocksDB-only cases: damaged records, format checks and the data dir lock.
// Committed entries are visited in (bucket, key) order, so expectations sort
// by core::BucketOf.
#include "storage/storage.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "rocksdb/db.h"
#include "rocksdb/write_batch.h"
#include "storage/record_format.h"
#include "storage/write_log.h"
#include "tests/unit/temp_dir.h"

namespace replicator::storage {
namespace {

using test_util::TempDir;

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
  TempDir dir{"storage_test"};
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

core::Mutation PutConfig(std::string cluster, uint64_t epoch, std::vector<core::PeerId> voters) {
  return core::PutConfig{core::Configuration{std::move(cluster), epoch, std::move(voters)}};
}

core::ConfigAcceptorRecord ConfigAcceptor(std::string cluster, uint64_t epoch,
                                          uint64_t promised_round,
                                          std::vector<core::PeerId> accepted_voters = {}) {
  core::ConfigAcceptorRecord r;
  r.cluster = std::move(cluster);
  r.epoch = epoch;
  r.promised = core::Ballot{promised_round, "12D3KooWpromised"};
  if (!accepted_voters.empty()) {
    r.accepted =
        core::ConfigAccepted{core::Ballot{promised_round, "12D3KooWa"}, std::move(accepted_voters)};
  }
  return r;
}

core::WriteBatch Batch(std::vector<core::Mutation> mutations) {
  core::WriteBatch b;
  b.mutations = std::move(mutations);
  return b;
}

using Entries = std::vector<std::pair<std::string, std::string>>;

// `entries` in catch-up order: by (BucketOf(key), key).
Entries InVisitOrder(Entries entries) {
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return std::make_pair(core::BucketOf(a.first), a.first) <
           std::make_pair(core::BucketOf(b.first), b.first);
  });
  return entries;
}

// `count` distinct keys "<prefix><n>" that all fall into one bucket, the
// bucket of the first.
std::vector<std::string> KeysInOneBucket(const std::string& prefix, size_t count) {
  std::vector<std::string> keys{prefix + "0"};
  const uint32_t bucket = core::BucketOf(keys[0]);
  for (int n = 1; keys.size() < count; ++n) {
    std::string key = absl::StrCat(prefix, n);
    if (core::BucketOf(key) == bucket) keys.push_back(std::move(key));
  }
  return keys;
}

struct BucketEntry {
  std::string key;
  std::string value;
  uint64_t request_id = 0;
  friend bool operator==(const BucketEntry&, const BucketEntry&) = default;
  friend std::ostream& operator<<(std::ostream& os, const BucketEntry& e) {
    return os << "{" << e.key << "=" << e.value << " #" << e.request_id << "}";
  }
};

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

  // Digest() as recomputed from what ForEachInBucket visits.
  std::vector<uint64_t> RecomputedDigest() {
    std::vector<uint64_t> digest(core::kDigestBuckets);
    for (const auto& [key, value] : AllCommitted()) {
      digest[core::BucketOf(key)] ^= core::EntryHash(key, value);
    }
    return digest;
  }

  std::vector<BucketEntry> InBucket(uint32_t bucket, const std::string& after,
                                    size_t limit = 1000) {
    std::vector<BucketEntry> out;
    storage_->ForEachInBucket(bucket, after,
                              [&](const core::Key& k, const core::CommittedEntry& e) {
                                out.push_back({k, e.value, e.request_id});
                                return out.size() < limit;
                              });
    return out;
  }

  // Every committed entry, bucket by bucket: catch-up order.
  Entries AllCommitted() {
    Entries out;
    for (uint32_t bucket = 0; bucket < core::kDigestBuckets; ++bucket) {
      for (BucketEntry& e : InBucket(bucket, "", 1000000)) {
        out.emplace_back(std::move(e.key), std::move(e.value));
      }
    }
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
  this->storage_->Write(Batch({core::PutCommitted{"k", "v", 0, {}}}), [&](absl::Status s) {
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
                                     core::PutCommitted{"b", "vb", 0, {}},
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

  // Acceptor records are read on demand, not recovered in bulk.
  std::optional<core::AcceptorRecord> found1 = this->storage_->GetAcceptor(p1);
  std::optional<core::AcceptorRecord> found3 = this->storage_->GetAcceptor(p3);
  ASSERT_TRUE(found1.has_value());
  ASSERT_TRUE(found3.has_value());
  EXPECT_FALSE(this->storage_->GetAcceptor(p2).has_value());  // deleted
  const core::AcceptorRecord& r1 = *found1;
  EXPECT_EQ(r1.proposal.started_ms, p1.started_ms);
  EXPECT_EQ(r1.promised, (core::Ballot{0, "12D3KooWpromised"}));
  ASSERT_TRUE(r1.accepted.has_value());
  EXPECT_EQ(r1.accepted->ballot, (core::Ballot{0, "12D3KooWa"}));
  EXPECT_EQ(r1.accepted->decision, core::Decision::kCommit);
  const core::AcceptorRecord& r3 = *found3;
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
  EXPECT_FALSE(this->storage_->GetAcceptor(p).has_value());
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
  ASSERT_TRUE(this->WriteAndWait(Batch({core::PutCommitted{"x", "1", 0, {}},
                                        core::PutCommitted{"x", "1", 0, {}},
                                        core::PutCommitted{"y", "2", 0, {}}}))
                  .ok());
  ASSERT_TRUE(this->WriteAndWait(Batch({core::PutCommitted{"x", "1", 0, {}},
                                        core::PutCommitted{"z", "3", 0, {}}}))
                  .ok());
  EXPECT_EQ(this->storage_->CommittedCount(), 3u);
  EXPECT_EQ(this->storage_->stats().committed_keys, 3u);
  this->Reopen();
  EXPECT_EQ(this->storage_->CommittedCount(), 3u);
  ASSERT_TRUE(this->WriteAndWait(Batch({core::PutCommitted{"y", "2", 0, {}}})).ok());
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
        this->storage_->Write(Batch({core::PutCommitted{key, key + "=v", 0, {}}}),
                              [&](absl::Status s) {
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
    this->storage_->Write(Batch({core::PutCommitted{absl::StrCat("k", i), "v", 0, {}}}),
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
  this->storage_->Write(Batch({core::PutCommitted{"first", "1", 0, {}}}), [&](absl::Status s) {
    ASSERT_TRUE(s.ok());
    this->storage_->Write(Batch({core::PutCommitted{"second", "2", 0, {}}}),
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

TYPED_TEST(StorageTest, BucketsHoldOnlyCommittedEntriesInUnsignedKeyOrder) {
  const core::ProposalId p = Proposal("12D3KooWc", 1, 1);
  // Within a bucket, bytes compare unsigned: "\xff" sorts after "a".
  const std::vector<std::string> same = KeysInOneBucket("s", 3);
  const Entries all = InVisitOrder({{"d", "4"},
                                    {"b", "2"},
                                    {"\xff", "ff"},
                                    {"a", "1"},
                                    {std::string("\0", 1), "nul"},
                                    {"c", ""},
                                    {same[0], "s0"},
                                    {same[1], "s1"},
                                    {same[2], "s2"}});
  core::WriteBatch b;
  for (const auto& [k, v] : all) b.mutations.push_back(core::PutCommitted{k, v, 0, {}});
  b.mutations.push_back(PutReservation("bb", p, "reserved, not committed"));
  b.mutations.push_back(PutAcceptor(p, 1, std::nullopt));
  ASSERT_TRUE(this->WriteAndWait(std::move(b)).ok());
  this->Reopen();
  EXPECT_EQ(this->AllCommitted(), all);
  const std::vector<BucketEntry> in_same = this->InBucket(core::BucketOf(same[0]), "");
  ASSERT_EQ(in_same.size(), 3u);
  EXPECT_TRUE(std::is_sorted(in_same.begin(), in_same.end(),
                             [](const BucketEntry& x, const BucketEntry& y) {
                               return x.key < y.key;
                             }));
}

TYPED_TEST(StorageTest, RequestIdIsStoredWithTheValue) {
  ASSERT_TRUE(this->WriteAndWait(Batch({core::PutCommitted{"with", "v1", 42, {}},
                                        core::PutCommitted{"max", "v2", ~uint64_t{0}, {}},
                                        core::PutCommitted{"none", "v3", 0, {}}}))
                  .ok());
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round == 0 ? "before reopen" : "after reopen");
    std::optional<core::CommittedEntry> with = this->storage_->GetEntry("with");
    ASSERT_TRUE(with.has_value());
    EXPECT_EQ(with->value, "v1");
    EXPECT_EQ(with->request_id, 42u);
    std::optional<core::CommittedEntry> max = this->storage_->GetEntry("max");
    ASSERT_TRUE(max.has_value());
    EXPECT_EQ(max->request_id, ~uint64_t{0});
    std::optional<core::CommittedEntry> none = this->storage_->GetEntry("none");
    ASSERT_TRUE(none.has_value());
    EXPECT_EQ(none->value, "v3");
    EXPECT_EQ(none->request_id, 0u);
    EXPECT_EQ(this->storage_->GetEntry("absent"), std::nullopt);
    EXPECT_EQ(this->InBucket(core::BucketOf("with"), ""),
              (std::vector<BucketEntry>{{"with", "v1", 42}}));
    this->Reopen();
  }
}

TYPED_TEST(StorageTest, DigestMatchesTheCommittedSet) {
  EXPECT_EQ(this->storage_->Digest(), std::vector<uint64_t>(core::kDigestBuckets));
  const std::vector<std::string> same = KeysInOneBucket("same", 3);
  const uint32_t shared_bucket = core::BucketOf(same[0]);
  for (int batch = 0; batch < 5; ++batch) {
    core::WriteBatch b;
    for (int i = 0; i < 300; ++i) {
      std::string key = absl::StrCat("k", batch, "/", i);
      if (core::BucketOf(key) == shared_bucket) continue;
      b.mutations.push_back(
          core::PutCommitted{std::move(key), absl::StrCat("v", i), uint64_t(i), {}});
    }
    b.mutations.push_back(core::PutCommitted{same[batch % 3], "shared", 0, {}});  // repeats too
    ASSERT_TRUE(this->WriteAndWait(std::move(b)).ok());
  }
  const std::vector<uint64_t> digest = this->storage_->Digest();
  ASSERT_EQ(digest.size(), core::kDigestBuckets);
  EXPECT_EQ(digest, this->RecomputedDigest());
  // Three keys XORed into one bucket.
  EXPECT_EQ(digest[shared_bucket], core::EntryHash(same[0], "shared") ^
                                       core::EntryHash(same[1], "shared") ^
                                       core::EntryHash(same[2], "shared"));
  this->Reopen();
  EXPECT_EQ(this->storage_->Digest(), digest);
  EXPECT_EQ(this->RecomputedDigest(), digest);
  // Still maintained after reopen.
  ASSERT_TRUE(this->WriteAndWait(Batch({core::PutCommitted{"late", "v", 0, {}}})).ok());
  const std::vector<uint64_t> later = this->storage_->Digest();
  EXPECT_EQ(later[core::BucketOf("late")],
            digest[core::BucketOf("late")] ^ core::EntryHash("late", "v"));
  EXPECT_EQ(later, this->RecomputedDigest());
}

TYPED_TEST(StorageTest, ForEachInBucketVisitsExactlyTheBucketInKeyOrder) {
  std::vector<std::string> keys = KeysInOneBucket("b", 6);
  const uint32_t bucket = core::BucketOf(keys[0]);
  core::WriteBatch b;
  // Written out of order, with neighbours in the buckets around it.
  Entries written;
  for (size_t i = keys.size(); i-- > 0;) {
    b.mutations.push_back(core::PutCommitted{keys[i], "v" + keys[i], 100 + i, {}});
    written.emplace_back(keys[i], "v" + keys[i]);
  }
  for (int n = 0, placed = 0; placed < 40; ++n) {
    std::string key = absl::StrCat("n", n);
    const uint32_t kb = core::BucketOf(key);
    if (kb != bucket && (kb + 1 == bucket || kb == bucket + 1 || n < 30)) {
      b.mutations.push_back(core::PutCommitted{key, "other", 0, {}});
      written.emplace_back(key, "other");
      ++placed;
    }
  }
  ASSERT_TRUE(this->WriteAndWait(std::move(b)).ok());
  std::vector<BucketEntry> expected;
  for (size_t i = 0; i < keys.size(); ++i) expected.push_back({keys[i], "v" + keys[i], 100 + i});
  std::sort(expected.begin(), expected.end(),
            [](const BucketEntry& x, const BucketEntry& y) { return x.key < y.key; });
  this->Reopen();
  EXPECT_EQ(this->InBucket(bucket, ""), expected);
  // `after` is exclusive, whether present or not.
  EXPECT_EQ(this->InBucket(bucket, expected[1].key),
            std::vector<BucketEntry>(expected.begin() + 2, expected.end()));
  EXPECT_EQ(this->InBucket(bucket, expected[1].key + std::string("\0", 1)),
            std::vector<BucketEntry>(expected.begin() + 2, expected.end()));
  EXPECT_EQ(this->InBucket(bucket, expected.back().key), std::vector<BucketEntry>{});
  EXPECT_EQ(this->InBucket(bucket, "\xff\xff\xff"), std::vector<BucketEntry>{});
  // Early stop.
  EXPECT_EQ(this->InBucket(bucket, "", 2),
            std::vector<BucketEntry>(expected.begin(), expected.begin() + 2));
  EXPECT_EQ(this->InBucket(core::kDigestBuckets, ""), std::vector<BucketEntry>{});
  // Every bucket together is the committed set, each key in its own bucket.
  Entries from_buckets;
  for (uint32_t bk = 0; bk < core::kDigestBuckets; ++bk) {
    for (const BucketEntry& e : this->InBucket(bk, "")) {
      EXPECT_EQ(core::BucketOf(e.key), bk) << e;
      from_buckets.emplace_back(e.key, e.value);
    }
  }
  EXPECT_EQ(from_buckets, InVisitOrder(written));
}

TYPED_TEST(StorageTest, GetEntriesReadsManyKeysAsGetEntryDoesEachInOrder) {
  ASSERT_TRUE(this->WriteAndWait(Batch({core::PutCommitted{"a", "va", 7, {}},
                                        core::PutCommitted{"c", std::string("v\0c", 3), 9, {}}}))
                  .ok());
  const std::vector<core::Key> keys = {"c", "b", "a", "c", "", "zz"};
  std::vector<const core::Key*> ptrs;
  for (const core::Key& k : keys) ptrs.push_back(&k);
  for (int pass = 0; pass < 2; ++pass) {  // from the memtable, then from files
    SCOPED_TRACE(pass == 0 ? "before reopen" : "after reopen");
    std::vector<std::optional<core::CommittedEntry>> got = this->storage_->GetEntries(ptrs);
    ASSERT_EQ(got.size(), keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      std::optional<core::CommittedEntry> one = this->storage_->GetEntry(keys[i]);
      ASSERT_EQ(got[i].has_value(), one.has_value()) << keys[i];
      if (!one) continue;
      EXPECT_EQ(got[i]->value, one->value) << keys[i];
      EXPECT_EQ(got[i]->request_id, one->request_id) << keys[i];
    }
    EXPECT_EQ(got[0]->value, std::string("v\0c", 3));
    EXPECT_EQ(got[2]->request_id, 7u);
    EXPECT_FALSE(got[1].has_value());
    EXPECT_TRUE(this->storage_->GetEntries({}).empty());
    this->Reopen();
  }
}

TYPED_TEST(StorageTest, ForEachInBucketVisitorMayCallBack) {
  // More than one in-memory scan chunk in one bucket.
  const std::vector<std::string> keys = KeysInOneBucket("cb", 300);
  core::WriteBatch b;
  for (const std::string& k : keys) b.mutations.push_back(core::PutCommitted{k, "v", 0, {}});
  ASSERT_TRUE(this->WriteAndWait(std::move(b)).ok());
  size_t visited = 0;
  this->storage_->ForEachInBucket(core::BucketOf(keys[0]), "",
                                  [&](const core::Key& k, const core::CommittedEntry&) {
                                    EXPECT_TRUE(this->storage_->GetEntry(k).has_value());
                                    ++visited;
                                    return true;
                                  });
  EXPECT_EQ(visited, keys.size());
}

TYPED_TEST(StorageTest, CommittedValueIsWriteOnce) {
  const core::ProposalId p = Proposal("12D3KooWc", 1, 1);
  ASSERT_TRUE(this->WriteAndWait(Batch({core::PutCommitted{"k", "first", 1, {}}})).ok());
  const std::vector<uint64_t> digest = this->storage_->Digest();

  // The same value again, under another request id: changes nothing.
  ASSERT_TRUE(this->WriteAndWait(Batch({core::PutCommitted{"k", "first", 2, {}}})).ok());
  // Another value: the batch is refused whole, its reservation included.
  absl::Status refused = this->WriteAndWait(
      Batch({PutReservation("r", p, "v"), core::PutCommitted{"k", "second", 3, {}},
             core::PutCommitted{"new", "v", 0, {}}}));
  EXPECT_EQ(refused.code(), absl::StatusCode::kAlreadyExists) << refused;
  EXPECT_NE(refused.message().find("'k'"), std::string::npos) << refused;
  // Two values for one key within a batch: refused too.
  EXPECT_EQ(this->WriteAndWait(Batch({core::PutCommitted{"twice", "a", 0, {}},
                                      core::PutCommitted{"twice", "b", 0, {}}}))
                .code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(this->storage_->stats().writes_refused, 2u);

  // A refused batch among others written without waiting: only it fails.
  std::vector<std::promise<absl::Status>> promises(3);
  const std::vector<core::WriteBatch> batches = {Batch({core::PutCommitted{"g1", "v", 0, {}}}),
                                                 Batch({core::PutCommitted{"k", "third", 0, {}}}),
                                                 Batch({core::PutCommitted{"g2", "v", 0, {}}})};
  for (size_t i = 0; i < batches.size(); ++i) {
    this->storage_->Write(batches[i],
                          [&promises, i](absl::Status s) { promises[i].set_value(std::move(s)); });
  }
  EXPECT_TRUE(promises[0].get_future().get().ok());
  EXPECT_EQ(promises[1].get_future().get().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(promises[2].get_future().get().ok());

  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round == 0 ? "before reopen" : "after reopen");
    std::optional<core::CommittedEntry> k = this->storage_->GetEntry("k");
    ASSERT_TRUE(k.has_value());
    EXPECT_EQ(k->value, "first");
    EXPECT_EQ(k->request_id, 1u);
    EXPECT_EQ(this->storage_->GetEntry("new"), std::nullopt);
    EXPECT_EQ(this->storage_->GetEntry("twice"), std::nullopt);
    EXPECT_EQ(this->storage_->CommittedCount(), 3u);  // k, g1, g2
    std::vector<uint64_t> expected = digest;
    expected[core::BucketOf("g1")] ^= core::EntryHash("g1", "v");
    expected[core::BucketOf("g2")] ^= core::EntryHash("g2", "v");
    EXPECT_EQ(this->storage_->Digest(), expected);
    EXPECT_EQ(this->RecomputedDigest(), expected);
    absl::StatusOr<core::DurableState> state = this->storage_->Recover();
    ASSERT_TRUE(state.ok()) << state.status();
    EXPECT_TRUE(state->reservations.empty());
    this->Reopen();
  }
}

TYPED_TEST(StorageTest, ConfigsAndConfigAcceptorsAreRecoveredInClusterEpochOrder) {
  // Written out of order over two batches; "a-" sorts after "a", epoch 10
  // after 9 and 256 after both.
  ASSERT_TRUE(this->WriteAndWait(Batch({
                                     PutConfig("b", 1, {"p1", "p2", "p3"}),
                                     PutConfig("a", 10, {"p1", "p2", "p3", "p4"}),
                                     core::PutConfigAcceptor{ConfigAcceptor("a", 11, 2)},
                                     core::PutConfigAcceptor{ConfigAcceptor("a", 10, 1)},
                                 }))
                  .ok());
  ASSERT_TRUE(this
                  ->WriteAndWait(Batch({
                      PutConfig("a", 256, {"p2", "p3", "p4"}),
                      PutConfig("a-", 1, {"q1", "q2", "q3"}),
                      PutConfig("a", 9, {"p1", "p2", "p3"}),
                      // Replaces the earlier record of (a, 11).
                      core::PutConfigAcceptor{ConfigAcceptor("a", 11, 5, {"p1", "p2", "p3", "p5"})},
                      core::PutConfigAcceptor{ConfigAcceptor("a-", 2, 1)},
                  }))
                  .ok());
  this->Reopen();
  absl::StatusOr<core::DurableState> state = this->storage_->Recover();
  ASSERT_TRUE(state.ok()) << state.status();
  const std::vector<core::Configuration> want = {
      {"a", 9, {"p1", "p2", "p3"}},   {"a", 10, {"p1", "p2", "p3", "p4"}},
      {"a", 256, {"p2", "p3", "p4"}}, {"a-", 1, {"q1", "q2", "q3"}},
      {"b", 1, {"p1", "p2", "p3"}},
  };
  EXPECT_EQ(state->configs, want);
  ASSERT_EQ(state->config_acceptors.size(), 3u);
  const core::ConfigAcceptorRecord& a10 = state->config_acceptors[0];
  EXPECT_EQ(a10.cluster, "a");
  EXPECT_EQ(a10.epoch, 10u);
  EXPECT_EQ(a10.promised, (core::Ballot{1, "12D3KooWpromised"}));
  EXPECT_FALSE(a10.accepted.has_value());
  const core::ConfigAcceptorRecord& a11 = state->config_acceptors[1];
  EXPECT_EQ(a11.epoch, 11u);
  EXPECT_EQ(a11.promised, (core::Ballot{5, "12D3KooWpromised"}));
  ASSERT_TRUE(a11.accepted.has_value());
  EXPECT_EQ(a11.accepted->ballot, (core::Ballot{5, "12D3KooWa"}));
  EXPECT_EQ(a11.accepted->voters, (std::vector<core::PeerId>{"p1", "p2", "p3", "p5"}));
  EXPECT_EQ(state->config_acceptors[2].cluster, "a-");
  EXPECT_EQ(state->config_acceptors[2].epoch, 2u);
  EXPECT_TRUE(state->reservations.empty());
  EXPECT_EQ(this->storage_->CommittedCount(), 0u);
}

TYPED_TEST(StorageTest, ConfigIsWriteOnce) {
  const core::ProposalId p = Proposal("12D3KooWc", 1, 1);
  const std::vector<core::PeerId> voters = {"p1", "p2", "p3"};
  ASSERT_TRUE(this->WriteAndWait(Batch({PutConfig("c1", 2, voters)})).ok());
  // The same voters again: changes nothing.
  ASSERT_TRUE(this->WriteAndWait(Batch({PutConfig("c1", 2, voters)})).ok());
  // Other voters: the batch is refused whole, its other mutations included.
  absl::Status refused = this->WriteAndWait(
      Batch({PutReservation("r", p, "v"), core::PutConfigAcceptor{ConfigAcceptor("c1", 3, 1)},
             PutConfig("c1", 2, {"p1", "p2", "p4"}), PutConfig("c1", 3, {"p1", "p2"}),
             core::PutCommitted{"k", "v", 0, {}}}));
  EXPECT_EQ(refused.code(), absl::StatusCode::kAlreadyExists) << refused;
  EXPECT_NE(refused.message().find("configuration 'c1' epoch 2"), std::string::npos) << refused;
  // Two voter sets for one configuration within a batch: refused too.
  EXPECT_EQ(this->WriteAndWait(
                    Batch({PutConfig("c1", 4, {"p1", "p2"}), PutConfig("c1", 4, {"p1", "p3"})}))
                .code(),
            absl::StatusCode::kAlreadyExists);
  // Another cluster's configuration of the same epoch is another record.
  ASSERT_TRUE(this->WriteAndWait(Batch({PutConfig("c2", 2, {"q1", "q2", "q3"})})).ok());
  EXPECT_EQ(this->storage_->stats().writes_refused, 2u);

  // Written without waiting, so that they may share a group: a later batch
  // is checked against the configuration an earlier one adds.
  std::vector<std::promise<absl::Status>> promises(3);
  const std::vector<core::WriteBatch> batches = {Batch({PutConfig("c1", 5, voters)}),
                                                 Batch({PutConfig("c1", 5, {"p9"})}),
                                                 Batch({PutConfig("c1", 5, voters)})};
  for (size_t i = 0; i < batches.size(); ++i) {
    this->storage_->Write(
        batches[i], [&promises, i](absl::Status st) { promises[i].set_value(std::move(st)); });
  }
  EXPECT_TRUE(promises[0].get_future().get().ok());
  EXPECT_EQ(promises[1].get_future().get().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(promises[2].get_future().get().ok());

  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round == 0 ? "before reopen" : "after reopen");
    absl::StatusOr<core::DurableState> state = this->storage_->Recover();
    ASSERT_TRUE(state.ok()) << state.status();
    const std::vector<core::Configuration> want = {
        {"c1", 2, voters}, {"c1", 5, voters}, {"c2", 2, {"q1", "q2", "q3"}}};
    EXPECT_EQ(state->configs, want);
    EXPECT_TRUE(state->config_acceptors.empty());
    EXPECT_TRUE(state->reservations.empty());
    EXPECT_EQ(this->storage_->GetEntry("k"), std::nullopt);
    this->Reopen();
  }
  // A configuration held before a reopen is checked against after it.
  EXPECT_EQ(this->WriteAndWait(Batch({PutConfig("c1", 2, {"p1"})})).code(),
            absl::StatusCode::kAlreadyExists);
}

// A record written before the cluster's generation was known (0) gets it
// filled in once; a known generation is write-once like the voters.
TYPED_TEST(StorageTest, ConfigGenerationIsFilledInOnceThenWriteOnce) {
  const std::vector<core::PeerId> voters = {"p1", "p2", "p3"};
  auto with_generation = [&](uint64_t epoch, uint64_t generation) {
    return core::Mutation{core::PutConfig{core::Configuration{"c1", epoch, voters, generation}}};
  };
  ASSERT_TRUE(this->WriteAndWait(Batch({with_generation(1, 0)})).ok());
  ASSERT_TRUE(this->WriteAndWait(Batch({with_generation(1, 3)})).ok());
  // Unknown again, or the same: changes nothing.
  ASSERT_TRUE(this->WriteAndWait(Batch({with_generation(1, 0)})).ok());
  ASSERT_TRUE(this->WriteAndWait(Batch({with_generation(1, 3)})).ok());
  absl::Status refused = this->WriteAndWait(Batch({with_generation(1, 4)}));
  EXPECT_EQ(refused.code(), absl::StatusCode::kAlreadyExists) << refused;
  EXPECT_NE(refused.message().find("has generation 3; refusing generation 4"), std::string::npos)
      << refused;
  // Added and filled in within one batch: the filled-in one is written.
  ASSERT_TRUE(this->WriteAndWait(Batch({with_generation(2, 0), with_generation(2, 3)})).ok());
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round == 0 ? "before reopen" : "after reopen");
    absl::StatusOr<core::DurableState> state = this->storage_->Recover();
    ASSERT_TRUE(state.ok()) << state.status();
    const std::vector<core::Configuration> want = {{"c1", 1, voters, 3}, {"c1", 2, voters, 3}};
    EXPECT_EQ(state->configs, want);
    this->Reopen();
  }
}

// A cluster's removal (core/founding.h) is filled in once, never undone by
// a record written without it, and write-once like the generation.
TYPED_TEST(StorageTest, ConfigRemovalIsFilledInOnceAndNeverUndone) {
  const std::vector<core::PeerId> voters = {"p1", "p2", "p3"};
  auto with_removal = [&](uint64_t removed) {
    return core::Mutation{core::PutConfig{core::Configuration{"c1", 1, voters, 3, removed}}};
  };
  ASSERT_TRUE(this->WriteAndWait(Batch({with_removal(0)})).ok());
  ASSERT_TRUE(this->WriteAndWait(Batch({with_removal(5)})).ok());
  ASSERT_TRUE(this->WriteAndWait(Batch({with_removal(0)})).ok());
  absl::Status refused = this->WriteAndWait(Batch({with_removal(6)}));
  EXPECT_EQ(refused.code(), absl::StatusCode::kAlreadyExists) << refused;
  EXPECT_NE(refused.message().find("was removed at generation 5; refusing removal at 6"),
            std::string::npos)
      << refused;
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round == 0 ? "before reopen" : "after reopen");
    absl::StatusOr<core::DurableState> state = this->storage_->Recover();
    ASSERT_TRUE(state.ok()) << state.status();
    const std::vector<core::Configuration> want = {{"c1", 1, voters, 3, 5}};
    EXPECT_EQ(state->configs, want);
    this->Reopen();
  }
}

TYPED_TEST(StorageTest, ProposalEpochSurvivesARestart) {
  core::ProposalId p = Proposal("12D3KooWc", 1, 1);
  p.epoch = 7;
  core::ProposalId q = Proposal("12D3KooWc", 1, 2);
  q.epoch = ~uint64_t{0};
  ASSERT_TRUE(this->WriteAndWait(Batch({PutReservation("k", p, "v"), PutReservation("l", q, "w"),
                                        PutAcceptor(p, 0, core::Decision::kCommit),
                                        PutAcceptor(q, 2, std::nullopt)}))
                  .ok());
  this->Reopen();
  absl::StatusOr<core::DurableState> state = this->storage_->Recover();
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_EQ(state->reservations.size(), 2u);
  EXPECT_EQ(state->reservations[0].proposal.epoch, 7u);
  EXPECT_EQ(state->reservations[1].proposal.epoch, ~uint64_t{0});
  std::optional<core::AcceptorRecord> ap = this->storage_->GetAcceptor(p);
  std::optional<core::AcceptorRecord> aq = this->storage_->GetAcceptor(q);
  ASSERT_TRUE(ap.has_value());
  ASSERT_TRUE(aq.has_value());
  EXPECT_EQ(ap->proposal.epoch, 7u);
  EXPECT_EQ(ap->proposal.started_ms, p.started_ms);
  EXPECT_EQ(aq->proposal.epoch, ~uint64_t{0});
}

// --- RocksDB only -------------------------------------------------------------

// The write log of the data dir at `db`.
std::filesystem::path LogDir(const std::string& db) { return db + "/replicator-log"; }

absl::Status WriteAndWait(Storage& storage, core::WriteBatch batch) {
  std::promise<absl::Status> done;
  storage.Write(std::move(batch), [&done](absl::Status s) { done.set_value(std::move(s)); });
  return done.get_future().get();
}

class RocksDbStorageTest : public testing::Test {
 protected:
  std::string db_path() const { return dir_.path() + "/db"; }

  std::unique_ptr<Storage> MustOpen(RocksDbOptions options = {}) {
    absl::StatusOr<std::unique_ptr<Storage>> s = OpenRocksDbStorage(db_path(), options);
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

  // Deletes a raw record behind storage's back; storage must be closed.
  void RawDelete(const std::string& key) {
    rocksdb::DB* db = nullptr;
    rocksdb::Status s = rocksdb::DB::Open(rocksdb::Options(), db_path(), &db);
    ASSERT_TRUE(s.ok()) << s.ToString();
    s = db->Delete(rocksdb::WriteOptions(), key);
    EXPECT_TRUE(s.ok()) << s.ToString();
    delete db;
  }

  // Opens, commits keys <prefix>0 .. <prefix><n - 1> (value "v") in one
  // write, and closes.
  void CommitAndClose(const std::string& prefix, int n) {
    std::unique_ptr<Storage> storage = MustOpen();
    ASSERT_NE(storage, nullptr);
    core::WriteBatch batch;
    for (int i = 0; i < n; ++i) {
      batch.mutations.push_back(core::PutCommitted{absl::StrCat(prefix, i), "v", 0, {}});
    }
    ASSERT_TRUE(WriteAndWait(*storage, std::move(batch)).ok());
  }

  // Opens with Verify::kBackground; `verified` gets the keys it checked.
  absl::StatusOr<std::unique_ptr<Storage>> OpenVerifyingInBackground(
      std::promise<uint64_t>* verified) {
    RocksDbOptions background;
    background.verify = Verify::kBackground;
    background.verified = [verified](uint64_t keys, double) { verified->set_value(keys); };
    return OpenRocksDbStorage(db_path(), background);
  }

  // Reads a raw record; storage must be closed.
  std::optional<std::string> RawGet(const std::string& key) {
    rocksdb::DB* db = nullptr;
    rocksdb::Status s = rocksdb::DB::OpenForReadOnly(rocksdb::Options(), db_path(), &db);
    EXPECT_TRUE(s.ok()) << s.ToString();
    if (!s.ok()) return std::nullopt;
    std::string value;
    s = db->Get(rocksdb::ReadOptions(), key, &value);
    delete db;
    if (!s.ok()) return std::nullopt;
    return value;
  }

  TempDir dir_{"storage_test"};
};

TEST_F(RocksDbStorageTest, CorruptConfigIsDataLossNamingTheRecord) {
  MustOpen().reset();
  RawPut(internal::ConfigKey("c1", 2), std::string("\x01\x02"
                                                   "c1"));  // truncated in the epoch
  std::unique_ptr<Storage> storage = MustOpen();
  ASSERT_NE(storage, nullptr);
  absl::StatusOr<core::DurableState> state = storage->Recover();
  ASSERT_EQ(state.status().code(), absl::StatusCode::kDataLoss) << state.status();
  EXPECT_NE(state.status().message().find("corrupt configuration record 'ec1\\x00"),
            std::string::npos)
      << state.status();
}

TEST_F(RocksDbStorageTest, ConfigFiledUnderAnotherEpochIsDataLoss) {
  MustOpen().reset();
  RawPut(internal::ConfigKey("c1", 3),
         internal::EncodeConfig(core::Configuration{"c1", 2, {"p1", "p2", "p3"}}));
  std::unique_ptr<Storage> storage = MustOpen();
  ASSERT_NE(storage, nullptr);
  absl::StatusOr<core::DurableState> state = storage->Recover();
  ASSERT_EQ(state.status().code(), absl::StatusCode::kDataLoss) << state.status();
  EXPECT_NE(state.status().message().find("key does not match"), std::string::npos)
      << state.status();
}

TEST_F(RocksDbStorageTest, CorruptConfigAcceptorIsDataLoss) {
  MustOpen().reset();
  std::string value = internal::EncodeConfigAcceptor(ConfigAcceptor("c1", 2, 1, {"p1", "p2"}));
  value.pop_back();
  RawPut(internal::ConfigAcceptorKey("c1", 2), value);
  std::unique_ptr<Storage> storage = MustOpen();
  ASSERT_NE(storage, nullptr);
  absl::StatusOr<core::DurableState> state = storage->Recover();
  ASSERT_EQ(state.status().code(), absl::StatusCode::kDataLoss) << state.status();
  EXPECT_NE(state.status().message().find("corrupt configuration acceptor record 'pc1"),
            std::string::npos)
      << state.status();
}

// A format-2 data dir holds reservations and acceptor records at record
// version 1 (no epoch). It opens, reads them with epoch 0, and is marked
// the current format (with the bucket summary of its committed key) so that
// a format-2 build no longer opens it.
TEST_F(RocksDbStorageTest, Format2DataDirIsUpgradedInPlace) {
  ASSERT_EQ(internal::kFormatVersion, 7u);
  const core::ProposalId p = Proposal("12D3KooWc", 4, 9);
  std::string reservation;
  internal::PutVarint64(&reservation, 1);
  internal::PutLengthPrefixed(&reservation, p.coordinator);
  internal::PutVarint64(&reservation, p.incarnation);
  internal::PutVarint64(&reservation, p.sequence);
  internal::PutVarint64(&reservation, p.started_ms);
  std::string acceptor = reservation;  // the same version and proposal
  internal::PutLengthPrefixed(&reservation, "v");
  internal::PutVarint64(&reservation, 5);  // request id
  internal::PutVarint64(&acceptor, 3);     // promised round
  internal::PutLengthPrefixed(&acceptor, "12D3KooWpromised");
  acceptor.push_back('\0');  // nothing accepted
  RawPut(std::string(internal::kFormatKey), internal::EncodeCounter(2));
  RawPut(internal::ReservationKey("k"), reservation);
  RawPut(internal::AcceptorKey(p), acceptor);
  RawPut(internal::CommittedKey("c"), internal::EncodeCommitted(1, "cv"));

  std::unique_ptr<Storage> storage = MustOpen();
  ASSERT_NE(storage, nullptr);
  absl::StatusOr<core::DurableState> state = storage->Recover();
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_EQ(state->reservations.size(), 1u);
  EXPECT_EQ(state->reservations[0].proposal, p);
  EXPECT_EQ(state->reservations[0].proposal.epoch, 0u);
  EXPECT_EQ(state->reservations[0].request_id, 5u);
  std::optional<core::AcceptorRecord> a = storage->GetAcceptor(p);
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->proposal.epoch, 0u);
  EXPECT_EQ(a->promised, (core::Ballot{3, "12D3KooWpromised"}));
  EXPECT_EQ(storage->GetCommitted("c"), std::optional<core::Value>("cv"));
  EXPECT_EQ(storage->CommittedCount(), 1u);
  storage.reset();
  EXPECT_EQ(RawGet(std::string(internal::kFormatKey)),
            internal::EncodeCounter(internal::kFormatVersion));
  // The reservation and the bucket summary live in the write log.
  EXPECT_FALSE(RawGet(internal::ReservationKey("k")).has_value());
  EXPECT_FALSE(RawGet(internal::SummaryKey(core::BucketOf("c"))).has_value());
  storage = MustOpen();
  ASSERT_NE(storage, nullptr);
  state = storage->Recover();
  ASSERT_TRUE(state.ok()) << state.status();
  ASSERT_EQ(state->reservations.size(), 1u);
  EXPECT_EQ(state->reservations[0].proposal, p);
  EXPECT_EQ(storage->CommittedCount(), 1u);
  std::vector<uint64_t> digest(core::kDigestBuckets);
  digest[core::BucketOf("c")] = core::EntryHash("c", "cv");
  EXPECT_EQ(storage->Digest(), digest);
}

// A format-6 data dir has the write log and committed records of record
// version 1 (no proposal). It opens as it is, reads those with an empty
// proposal, and is marked 7, whose version-2 records a format-6 build
// would reject as corrupt.
TEST_F(RocksDbStorageTest, Format6DataDirOpensAsItIsAndIsMarked7) {
  const core::ProposalId p = Proposal("12D3KooWc", 4, 9);
  {
    std::unique_ptr<Storage> storage = MustOpen();
    ASSERT_NE(storage, nullptr);
    core::WriteBatch batch;
    batch.mutations.push_back(core::PutCommitted{"old", "ov", 2, p});
    batch.mutations.push_back(core::PutCommitted{"new", "nv", 3, p});
    batch.mutations.push_back(PutReservation("k", p, "v"));
    ASSERT_TRUE(WriteAndWait(*storage, std::move(batch)).ok());
  }
  // What a format-6 build wrote: "old" at record version 1, same value.
  std::string v1;
  internal::PutVarint64(&v1, 1);
  internal::PutVarint64(&v1, 2);
  internal::PutLengthPrefixed(&v1, "ov");
  RawPut(internal::CommittedKey("old"), v1);
  RawPut(std::string(internal::kFormatKey), internal::EncodeCounter(6));
  for (int open = 0; open < 2; ++open) {
    SCOPED_TRACE(open);
    std::unique_ptr<Storage> storage = MustOpen();
    ASSERT_NE(storage, nullptr);
    absl::StatusOr<core::DurableState> state = storage->Recover();
    ASSERT_TRUE(state.ok()) << state.status();
    ASSERT_EQ(state->reservations.size(), 1u);
    EXPECT_EQ(state->reservations[0].proposal, p);
    std::optional<core::CommittedEntry> old_entry = storage->GetEntry("old");
    ASSERT_TRUE(old_entry.has_value());
    EXPECT_EQ(old_entry->value, "ov");
    EXPECT_EQ(old_entry->request_id, 2u);
    EXPECT_TRUE(old_entry->proposal.coordinator.empty());
    std::optional<core::CommittedEntry> new_entry = storage->GetEntry("new");
    ASSERT_TRUE(new_entry.has_value());
    EXPECT_EQ(new_entry->proposal, p);
    EXPECT_EQ(storage->CommittedCount(), 2u);
  }
  EXPECT_EQ(RawGet(std::string(internal::kFormatKey)), internal::EncodeCounter(7));
}

// A format-5 data dir keeps its reservations and bucket summaries as
// RocksDB records. Open moves both into the write log and deletes the
// records, with the format bump, so the next open finds them in the log.
TEST_F(RocksDbStorageTest, Format5DataDirMovesItsReservationsAndSummariesIntoTheLog) {
  const core::ProposalId p = Proposal("12D3KooWc", 4, 9);
  core::Reservation r;
  r.key = "k";
  r.proposal = p;
  r.value = "v";
  RawPut(std::string(internal::kFormatKey), internal::EncodeCounter(5));
  RawPut(internal::ReservationKey("k"), internal::EncodeReservation(r));
  RawPut(internal::CommittedKey("c"), internal::EncodeCommitted(1, "cv"));
  RawPut(internal::SummaryKey(core::BucketOf("c")),
         internal::EncodeSummary({1, core::EntryHash("c", "cv")}));
  std::vector<uint64_t> digest(core::kDigestBuckets);
  digest[core::BucketOf("c")] = core::EntryHash("c", "cv");
  for (int open = 0; open < 2; ++open) {
    std::unique_ptr<Storage> storage = MustOpen();
    ASSERT_NE(storage, nullptr);
    absl::StatusOr<core::DurableState> state = storage->Recover();
    ASSERT_TRUE(state.ok()) << state.status();
    ASSERT_EQ(state->reservations.size(), 1u) << "open " << open;
    EXPECT_EQ(state->reservations[0].proposal, p);
    EXPECT_EQ(storage->CommittedCount(), 1u) << "open " << open;
    EXPECT_EQ(storage->Digest(), digest) << "open " << open;
  }
  EXPECT_EQ(RawGet(std::string(internal::kFormatKey)),
            internal::EncodeCounter(internal::kFormatVersion));
  EXPECT_FALSE(RawGet(internal::ReservationKey("k")).has_value());
  EXPECT_FALSE(RawGet(internal::SummaryKey(core::BucketOf("c"))).has_value());
}

// A format-3 data dir holds configurations at record version 1 (no
// generation). It opens, reads them with generation 0, and is marked
// format 4 so that a format-3 build no longer opens it (it would reject the
// version-2 configuration records written from now on as corrupt).
TEST_F(RocksDbStorageTest, Format3DataDirIsUpgradedInPlace) {
  std::string config;
  internal::PutVarint64(&config, 1);
  internal::PutLengthPrefixed(&config, "c1");
  internal::PutVarint64(&config, 1);
  internal::PutVarint64(&config, 3);
  for (const char* v : {"p1", "p2", "p3"}) internal::PutLengthPrefixed(&config, v);
  RawPut(std::string(internal::kFormatKey), internal::EncodeCounter(3));
  RawPut(internal::ConfigKey("c1", 1), config);

  std::unique_ptr<Storage> storage = MustOpen();
  ASSERT_NE(storage, nullptr);
  absl::StatusOr<core::DurableState> state = storage->Recover();
  ASSERT_TRUE(state.ok()) << state.status();
  const core::Configuration want{"c1", 1, {"p1", "p2", "p3"}, 0};
  ASSERT_EQ(state->configs, std::vector<core::Configuration>{want});
  storage.reset();
  EXPECT_EQ(RawGet(std::string(internal::kFormatKey)),
            internal::EncodeCounter(internal::kFormatVersion));
}

// A format-4 data dir (the last without bucket summaries) with committed
// keys: open scans them once, writes their summaries and format 5 together,
// and opens the next time from the summaries alone.
TEST_F(RocksDbStorageTest, Format4DataDirGetsItsBucketSummariesAtOpen) {
  RawPut(std::string(internal::kFormatKey), internal::EncodeCounter(4));
  std::vector<uint64_t> want(core::kDigestBuckets);
  for (int i = 0; i < 50; ++i) {
    const std::string key = absl::StrCat("k", i);
    const std::string value = absl::StrCat("v", i);
    RawPut(internal::CommittedKey(key), internal::EncodeCommitted(0, value));
    want[core::BucketOf(key)] ^= core::EntryHash(key, value);
  }
  std::unique_ptr<Storage> storage = MustOpen();
  ASSERT_NE(storage, nullptr);
  EXPECT_EQ(storage->CommittedCount(), 50u);
  EXPECT_EQ(storage->Digest(), want);
  storage.reset();
  EXPECT_EQ(RawGet(std::string(internal::kFormatKey)),
            internal::EncodeCounter(internal::kFormatVersion));
  // Now the summaries are what open reads: with verification off, a record
  // removed behind storage's back is not noticed...
  RawDelete(internal::CommittedKey("k7"));
  RocksDbOptions off;
  off.verify = Verify::kOff;
  absl::StatusOr<std::unique_ptr<Storage>> unverified = OpenRocksDbStorage(db_path(), off);
  ASSERT_TRUE(unverified.ok()) << unverified.status();
  EXPECT_EQ((*unverified)->CommittedCount(), 50u);
  EXPECT_EQ((*unverified)->Digest(), want);
  unverified->reset();
  // ...and verification finds it, naming the bucket.
  absl::StatusOr<std::unique_ptr<Storage>> verified = OpenRocksDbStorage(db_path());
  ASSERT_EQ(verified.status().code(), absl::StatusCode::kDataLoss) << verified.status();
  EXPECT_NE(verified.status().message().find(
                absl::StrCat("digest bucket ", core::BucketOf("k7"), " holds 0 committed keys")),
            std::string::npos)
      << verified.status();
}

// Every group rewrites the summaries of the buckets it commits into, in the
// same write: a reopen without verification has the count and digest, and
// verification agrees with them.
TEST_F(RocksDbStorageTest, TheCountAndDigestSurviveARestartWithoutAScan) {
  std::vector<uint64_t> digest;
  {
    std::unique_ptr<Storage> storage = MustOpen();
    ASSERT_NE(storage, nullptr);
    for (int round = 0; round < 4; ++round) {
      core::WriteBatch batch;
      for (int i = 0; i < 100; ++i) {
        // Several keys per bucket across groups, and one key twice.
        const std::string key = absl::StrCat("key-", round * 100 + i);
        batch.mutations.push_back(core::PutCommitted{key, absl::StrCat("value-", i), 0, {}});
      }
      batch.mutations.push_back(core::PutCommitted{"key-0", "value-0", 0, {}});
      std::promise<absl::Status> done;
      storage->Write(std::move(batch), [&done](absl::Status st) { done.set_value(st); });
      ASSERT_TRUE(done.get_future().get().ok());
    }
    EXPECT_EQ(storage->CommittedCount(), 400u);
    digest = storage->Digest();
  }
  RocksDbOptions off;
  off.verify = Verify::kOff;
  {
    absl::StatusOr<std::unique_ptr<Storage>> reopened = OpenRocksDbStorage(db_path(), off);
    ASSERT_TRUE(reopened.ok()) << reopened.status();
    EXPECT_EQ((*reopened)->CommittedCount(), 400u);
    EXPECT_EQ((*reopened)->Digest(), digest);
  }
  RocksDbOptions at_open;  // Verify::kAtOpen, the default
  uint64_t checked = 0;
  at_open.verified = [&checked](uint64_t keys, double) { checked = keys; };
  std::unique_ptr<Storage> verified = MustOpen(at_open);
  ASSERT_NE(verified, nullptr);
  EXPECT_EQ(checked, 400u) << "every key read and found sound before open returned";
  EXPECT_EQ(verified->Digest(), digest);
}

// Replaces the write log of the (closed) data dir with one segment whose
// snapshot holds `records`: a frame that is sound, around records that
// are not.
void ReplaceLog(const std::string& db, const rocksdb::WriteBatch& records) {
  std::filesystem::remove_all(LogDir(db));
  std::filesystem::create_directories(LogDir(db));
  std::ofstream f(LogDir(db) / "00000000000000000001.log", std::ios::binary);
  const std::string frame = internal::EncodeFrame(
      1, internal::LogFrame{internal::LogFrame::Kind::kSnapshot, 0, {}, records.Data()});
  f.write(frame.data(), static_cast<std::streamsize>(frame.size()));
}

TEST_F(RocksDbStorageTest, ADamagedBucketSummaryFailsOpen) {
  MustOpen().reset();
  rocksdb::WriteBatch bad;
  ASSERT_TRUE(bad.Put(internal::SummaryKey(17), "\x01\x05").ok());
  ReplaceLog(db_path(), bad);
  RocksDbOptions off;
  off.verify = Verify::kOff;
  absl::StatusOr<std::unique_ptr<Storage>> s = OpenRocksDbStorage(db_path(), off);
  ASSERT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
  EXPECT_NE(s.status().message().find("corrupt bucket summary record 's\\x00\\x11'"),
            std::string::npos)
      << s.status();
}

// Background verification reads every record after open and reports a
// sound store through the callback.
TEST_F(RocksDbStorageTest, BackgroundVerificationReportsASoundStore) {
  CommitAndClose("k", 300);
  std::promise<uint64_t> verified;
  absl::StatusOr<std::unique_ptr<Storage>> s = OpenVerifyingInBackground(&verified);
  ASSERT_TRUE(s.ok()) << s.status();
  std::future<uint64_t> keys = verified.get_future();
  // A bound against a hang, not a timing expectation.
  ASSERT_EQ(keys.wait_for(std::chrono::seconds(120)), std::future_status::ready);
  EXPECT_EQ(keys.get(), 300u);
}

// The summaries live in memory, the records in RocksDB: a verifier that
// took its snapshot between a group's RocksDB write and its summaries'
// update would find a bucket off by a key and stop a sound node. It takes
// both under the lock the storage thread holds across the two. Writes run
// all through the verification here; any mismatch would end the process.
TEST_F(RocksDbStorageTest, BackgroundVerificationAgreesWithWritesMadeWhileItRuns) {
  CommitAndClose("old", 20000);
  std::promise<uint64_t> verified;
  absl::StatusOr<std::unique_ptr<Storage>> s = OpenVerifyingInBackground(&verified);
  ASSERT_TRUE(s.ok()) << s.status();
  std::future<uint64_t> keys = verified.get_future();
  int written = 0;
  // Bounded: at most 2000 writes, stopping once verification is done.
  while (written < 2000 && keys.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
    ASSERT_TRUE(
        WriteAndWait(**s, Batch({core::PutCommitted{absl::StrCat("new", written), "v", 0, {}}}))
            .ok());
    ++written;
  }
  // A bound against a hang, not a timing expectation.
  ASSERT_EQ(keys.wait_for(std::chrono::seconds(120)), std::future_status::ready);
  const uint64_t checked = keys.get();
  EXPECT_GE(checked, 20000u);
  EXPECT_LE(checked, 20000u + written);
  EXPECT_EQ((*s)->CommittedCount(), 20000u + written);
}

// Damage found by background verification stops the process (exit 1)
// printing what is damaged: a node must not vote on a committed set it
// cannot trust.
TEST_F(RocksDbStorageTest, BackgroundVerificationStopsTheProcessOnDamage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  {
    std::unique_ptr<Storage> storage = MustOpen();
    ASSERT_NE(storage, nullptr);
    core::WriteBatch batch;
    batch.mutations.push_back(core::PutCommitted{"lost", "v", 0, {}});
    std::promise<absl::Status> done;
    storage->Write(std::move(batch), [&done](absl::Status st) { done.set_value(st); });
    ASSERT_TRUE(done.get_future().get().ok());
  }
  RawDelete(internal::CommittedKey("lost"));
  EXPECT_EXIT(
      {
        RocksDbOptions background;
        background.verify = Verify::kBackground;
        absl::StatusOr<std::unique_ptr<Storage>> s = OpenRocksDbStorage(db_path(), background);
        if (!s.ok()) std::_Exit(3);
        // Bounded: the verifier stops the process long before this ends.
        for (int i = 0; i < 1200; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
        std::_Exit(0);
      },
      testing::ExitedWithCode(1), "is damaged: digest bucket");
}

TEST_F(RocksDbStorageTest, CorruptReservationIsDataLossNamingTheRecord) {
  MustOpen().reset();
  // A log whose one segment holds a reservation that does not decode (its
  // frame is sound: the damage is in what was written).
  rocksdb::WriteBatch bad;
  ASSERT_TRUE(bad.Put(internal::ReservationKey("broken-key"), std::string("\x01\x05"
                                                                          "ab",
                                                                          4))
                  .ok());
  ReplaceLog(db_path(), bad);
  std::unique_ptr<Storage> storage = MustOpen();
  ASSERT_NE(storage, nullptr);
  absl::StatusOr<core::DurableState> state = storage->Recover();
  ASSERT_EQ(state.status().code(), absl::StatusCode::kDataLoss) << state.status();
  EXPECT_NE(state.status().message().find("reservation record 'rbroken-key'"), std::string::npos)
      << state.status();
}

// Acceptor records are checked with the committed ones (Verify::kAtOpen
// here), not by Recover, which does not read them all.
TEST_F(RocksDbStorageTest, CorruptAcceptorIsDataLoss) {
  MustOpen().reset();
  core::ProposalId p = Proposal("12D3KooWc", 1, 2);
  RawPut(internal::AcceptorKey(p), "\x01");
  absl::StatusOr<std::unique_ptr<Storage>> s = OpenRocksDbStorage(db_path());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
  EXPECT_NE(s.status().message().find("acceptor record"), std::string::npos) << s.status();
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
  EXPECT_NE(s.status().message().find(
                absl::StrCat("has format version ", internal::kFormatVersion + 1,
                             "; this build reads only version ", internal::kFormatVersion)),
            std::string::npos)
      << s.status();
}

// Version 1 stored committed values raw under 'c' + key; it is refused, not
// misread.
TEST_F(RocksDbStorageTest, OlderFormatIsRefusedNamingBothVersions) {
  RawPut(std::string(internal::kFormatKey), internal::EncodeCounter(1));
  RawPut("cold-layout-key", "raw value");
  absl::StatusOr<std::unique_ptr<Storage>> s = OpenRocksDbStorage(db_path());
  ASSERT_EQ(s.status().code(), absl::StatusCode::kFailedPrecondition) << s.status();
  EXPECT_NE(s.status().message().find(absl::StrCat("data dir ", db_path(),
                                                   " has format version 1; this build reads "
                                                   "only version ",
                                                   internal::kFormatVersion)),
            std::string::npos)
      << s.status();
  EXPECT_NE(s.status().message().find("does not migrate"), std::string::npos) << s.status();
}

TEST_F(RocksDbStorageTest, CorruptCommittedRecordFailsOpen) {
  MustOpen().reset();
  RawPut(internal::CommittedKey("k"), "\x01\x05");
  absl::StatusOr<std::unique_ptr<Storage>> s = OpenRocksDbStorage(db_path());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
  EXPECT_NE(s.status().message().find("committed record"), std::string::npos) << s.status();
}

TEST_F(RocksDbStorageTest, CommittedRecordInTheWrongBucketFailsOpen) {
  MustOpen().reset();
  std::string record_key = internal::CommittedKey("k");
  record_key[2] = static_cast<char>(record_key[2] ^ 1);
  RawPut(record_key, internal::EncodeCommitted(0, "v"));
  absl::StatusOr<std::unique_ptr<Storage>> s = OpenRocksDbStorage(db_path());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
  EXPECT_NE(s.status().message().find("hashes to"), std::string::npos) << s.status();
}

std::string ReadAll(const std::filesystem::path& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// Its started segments, oldest first (not the spare, a file already named
// for the next segment that holds no snapshot of its own).
std::vector<std::filesystem::path> Segments(const std::string& db) {
  std::vector<std::filesystem::path> out;
  for (const auto& e : std::filesystem::directory_iterator(LogDir(db))) {
    if (e.path().extension() != ".log") continue;
    const uint64_t id = std::stoull(e.path().stem().string());
    if (!internal::Unstarted(ReadAll(e.path()), id)) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void WriteAt(const std::filesystem::path& path, size_t offset, const std::string& bytes) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Options whose close leaves the write log as a crash would: RocksDB's
// memtables unflushed, every frame still needed.
RocksDbOptions AsIfCrashing() {
  RocksDbOptions options;
  options.flush_on_close = false;
  return options;
}

TEST_F(RocksDbStorageTest, ATornLogTailIsDroppedAndEverySyncedWriteBeforeItKept) {
  {
    std::unique_ptr<Storage> storage = MustOpen(AsIfCrashing());
    ASSERT_NE(storage, nullptr);
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE(
          WriteAndWait(*storage, Batch({core::PutCommitted{absl::StrCat("k", i), "v", 0, {}}}))
              .ok());
    }
    ASSERT_TRUE(
        WriteAndWait(*storage, Batch({core::PutCommitted{"last", std::string(4000, 'x'), 0, {}}}))
            .ok());
  }
  // A crash in the middle of the last write: the second half of its frame
  // never reached the disk (the segment holds zeros there).
  const std::filesystem::path segment = Segments(db_path()).back();
  const std::string data = ReadAll(segment);
  const size_t value = data.find(std::string(4000, 'x'));
  ASSERT_NE(value, std::string::npos);
  WriteAt(segment, value + 2000, std::string(2000, '\0'));
  std::unique_ptr<Storage> storage = MustOpen();
  ASSERT_NE(storage, nullptr);
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(storage->GetEntry(absl::StrCat("k", i)).has_value()) << i;
  }
  EXPECT_FALSE(storage->GetEntry("last").has_value()) << "a torn write cannot be read back";
  EXPECT_EQ(storage->CommittedCount(), 20u);
}

// A clean close flushes and starts a segment that holds only the
// reservations: the next open has no logged write to replay, so its cost
// does not depend on how much was written since the last flush.
TEST_F(RocksDbStorageTest, ACleanCloseLeavesNoLogToReplay) {
  {
    std::unique_ptr<Storage> storage = MustOpen();
    ASSERT_NE(storage, nullptr);
    for (int i = 0; i < 20; ++i) {
      ASSERT_TRUE(WriteAndWait(*storage, Batch({core::PutCommitted{
                                             absl::StrCat("k", i), std::string(200, 'v'), 0, {}}}))
                      .ok());
    }
  }
  const std::vector<std::filesystem::path> segments = Segments(db_path());
  ASSERT_EQ(segments.size(), 1u);
  EXPECT_EQ(ReadAll(segments[0]).find(std::string(200, 'v')), std::string::npos)
      << segments[0] << " still holds a write";
  std::unique_ptr<Storage> storage = MustOpen();
  ASSERT_NE(storage, nullptr);
  EXPECT_EQ(storage->CommittedCount(), 20u);
  EXPECT_TRUE(storage->GetEntry("k19").has_value());
}

TEST_F(RocksDbStorageTest, ADamagedSyncedLogRefusesTheStart) {
  {
    std::unique_ptr<Storage> storage = MustOpen(AsIfCrashing());
    ASSERT_NE(storage, nullptr);
    for (int i = 0; i < 40; ++i) {
      ASSERT_TRUE(WriteAndWait(*storage, Batch({core::PutCommitted{
                                             absl::StrCat("k", i), std::string(200, 'v'), 0, {}}}))
                      .ok());
    }
  }
  // Overwrite bytes of the first write's frame: acknowledged frames after
  // it would be lost by a recovery that stops at the damage.
  const std::filesystem::path segment = Segments(db_path()).back();
  const size_t value = ReadAll(segment).find(std::string(200, 'v'));
  ASSERT_NE(value, std::string::npos);
  WriteAt(segment, value + 50, std::string(64, '\x5a'));
  absl::StatusOr<std::unique_ptr<Storage>> s = OpenRocksDbStorage(db_path());
  ASSERT_FALSE(s.ok()) << "a damaged synced log must not be replayed up to the damage";
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
  EXPECT_NE(s.status().message().find("refusing to start"), std::string::npos) << s.status();
  EXPECT_NE(s.status().message().find("a sound frame follows it"), std::string::npos) << s.status();
}

// A catch-up page: many committed entries in one write, and nothing else.
core::WriteBatch Page(int first, int n, const std::string& value_prefix = "value-") {
  core::WriteBatch page;
  for (int i = first + n - 1; i >= first; --i) {  // not in key order
    page.mutations.push_back(
        core::PutCommitted{absl::StrCat("page-", i), absl::StrCat(value_prefix, i), 7, {}});
  }
  return page;
}

std::vector<uint64_t> DigestOfPage(int first, int n) {
  std::vector<uint64_t> digest(core::kDigestBuckets);
  for (int i = first; i < first + n; ++i) {
    const std::string key = absl::StrCat("page-", i);
    digest[core::BucketOf(key)] ^= core::EntryHash(key, absl::StrCat("value-", i));
  }
  return digest;
}

bool StagingDirIsEmpty(const std::string& db) {
  const std::filesystem::path staged = std::filesystem::path(db) / "replicator-ingest";
  return std::filesystem::is_directory(staged) && std::filesystem::is_empty(staged);
}

// A long page of committed entries goes to RocksDB as a table file it
// ingests, not through the memtable: read back, counted and digested as
// any other write, refused whole when it contradicts a committed value.
TEST_F(RocksDbStorageTest, ACatchUpPageIsIngestedAsATableFile) {
  {
    std::unique_ptr<Storage> storage = MustOpen();
    ASSERT_NE(storage, nullptr);
    // One key of the page is committed already, with the same value (by a
    // page of its own: a record in the memtable would send the page through
    // it, see below).
    ASSERT_TRUE(WriteAndWait(*storage, Page(5, 1024)).ok());
    ASSERT_TRUE(WriteAndWait(*storage, Page(0, 3000)).ok());
    EXPECT_EQ(storage->stats().pages_ingested, 2u);
    EXPECT_EQ(storage->CommittedCount(), 3000u);
    EXPECT_EQ(storage->Digest(), DigestOfPage(0, 3000));
    for (int i : {0, 5, 1234, 2999}) {
      std::optional<core::CommittedEntry> e = storage->GetEntry(absl::StrCat("page-", i));
      ASSERT_TRUE(e.has_value()) << i;
      EXPECT_EQ(e->value, absl::StrCat("value-", i));
      EXPECT_EQ(e->request_id, 7u);
    }
    const uint32_t bucket = core::BucketOf("page-1234");
    std::vector<core::Key> in_bucket;
    storage->ForEachInBucket(bucket, "", [&](const core::Key& k, const core::CommittedEntry&) {
      in_bucket.push_back(k);
      return true;
    });
    EXPECT_TRUE(std::is_sorted(in_bucket.begin(), in_bucket.end()));
    EXPECT_NE(std::find(in_bucket.begin(), in_bucket.end(), "page-1234"), in_bucket.end());
    EXPECT_TRUE(StagingDirIsEmpty(db_path()));

    // A page naming a committed key with another value applies nothing.
    core::WriteBatch bad = Page(3000, 2000);
    bad.mutations.push_back(core::PutCommitted{"page-7", "another value", 7, {}});
    absl::Status refused = WriteAndWait(*storage, std::move(bad));
    EXPECT_EQ(refused.code(), absl::StatusCode::kAlreadyExists) << refused;
    EXPECT_FALSE(storage->GetEntry("page-3000").has_value());
    EXPECT_EQ(storage->CommittedCount(), 3000u);
    EXPECT_EQ(storage->stats().pages_ingested, 2u);
    EXPECT_TRUE(StagingDirIsEmpty(db_path()));
  }
  std::unique_ptr<Storage> storage = MustOpen();
  ASSERT_NE(storage, nullptr);
  EXPECT_EQ(storage->CommittedCount(), 3000u);
  EXPECT_EQ(storage->Digest(), DigestOfPage(0, 3000));
  EXPECT_EQ(storage->GetCommitted("page-2999"), std::optional<core::Value>("value-2999"));
}

// A page whose key range the memtable holds records in (a voter taking live
// commits beside its catch-up) takes the memtable path: ingesting it would
// make RocksDB flush first, a level-0 file per page. Once they are flushed
// (here by a clean close), such a page is ingested again.
TEST_F(RocksDbStorageTest, APageOverlappingTheMemtableIsWrittenThroughIt) {
  {
    std::unique_ptr<Storage> storage = MustOpen();
    ASSERT_NE(storage, nullptr);
    ASSERT_TRUE(
        WriteAndWait(*storage, Batch({core::PutCommitted{"page-5", "value-5", 7, {}}})).ok());
    ASSERT_TRUE(WriteAndWait(*storage, Page(0, 3000)).ok());
    EXPECT_EQ(storage->stats().pages_ingested, 0u)
        << "page-5, in the page's range, is in the memtable";
    EXPECT_EQ(storage->CommittedCount(), 3000u);
    EXPECT_EQ(storage->Digest(), DigestOfPage(0, 3000));
    EXPECT_EQ(storage->GetCommitted("page-2999"), std::optional<core::Value>("value-2999"));
  }
  std::unique_ptr<Storage> storage = MustOpen();
  ASSERT_NE(storage, nullptr);
  ASSERT_TRUE(WriteAndWait(*storage, Page(3000, 3000)).ok());
  EXPECT_EQ(storage->stats().pages_ingested, 1u);
  EXPECT_EQ(storage->CommittedCount(), 6000u);
  EXPECT_EQ(storage->Digest(), DigestOfPage(0, 6000));
}

// The page's frame (its summaries, and the file's name) is durable before
// RocksDB ingests the file: a crash between the two leaves the file staged,
// and the next open ingests it, so that what the summaries count is there.
// A file staged for a frame that never became durable is removed.
TEST_F(RocksDbStorageTest, APageWhoseIngestionACrashInterruptedIsIngestedAtOpen) {
  {
    RocksDbOptions options = AsIfCrashing();
    options.testing_stop_before_ingest = true;
    std::unique_ptr<Storage> storage = MustOpen(options);
    ASSERT_NE(storage, nullptr);
    EXPECT_FALSE(WriteAndWait(*storage, Page(0, 2000)).ok());
  }
  ASSERT_FALSE(StagingDirIsEmpty(db_path())) << "the test did not stop before the ingestion";
  const std::filesystem::path stray =
      std::filesystem::path(db_path()) / "replicator-ingest" / "99999999999999999999.sst";
  std::ofstream(stray) << "a page whose frame never became durable";
  {
    std::unique_ptr<Storage> storage = MustOpen();
    ASSERT_NE(storage, nullptr);
    EXPECT_EQ(storage->CommittedCount(), 2000u);
    EXPECT_EQ(storage->Digest(), DigestOfPage(0, 2000));
    EXPECT_EQ(storage->GetCommitted("page-1999"), std::optional<core::Value>("value-1999"));
    EXPECT_TRUE(StagingDirIsEmpty(db_path()));
    ASSERT_TRUE(WriteAndWait(*storage, Page(2000, 2000)).ok());
  }
  RocksDbOptions check;
  check.verify = Verify::kAtOpen;
  std::unique_ptr<Storage> storage = MustOpen(check);
  ASSERT_NE(storage, nullptr);
  EXPECT_EQ(storage->CommittedCount(), 4000u);
  EXPECT_EQ(storage->Digest(), DigestOfPage(0, 4000));
}

// The current segment's first header zeroed (as a bad sector or a wrong
// write could): its later frames hold acknowledged writes, so the open must
// not take it for a spare never started and replay only the segments
// before it.
TEST_F(RocksDbStorageTest, AZeroedSegmentHeaderRefusesTheStart) {
  RocksDbOptions options = AsIfCrashing();
  options.log_segment_bytes = 4096;
  {
    std::unique_ptr<Storage> storage = MustOpen(options);
    ASSERT_NE(storage, nullptr);
    for (int i = 0; i < 60; ++i) {
      ASSERT_TRUE(
          WriteAndWait(*storage, Batch({core::PutCommitted{
                                     absl::StrCat("k", i), absl::StrCat("value-", i), 0, {}}}))
              .ok());
    }
  }
  std::vector<std::filesystem::path> segments = Segments(db_path());
  ASSERT_GT(segments.size(), 1u) << "the writes did not roll segments";
  std::filesystem::path last;
  for (const std::filesystem::path& segment : segments) {
    if (ReadAll(segment).find("value-59") != std::string::npos) last = segment;
  }
  ASSERT_FALSE(last.empty()) << "no segment holds the last write";
  WriteAt(last, 0, std::string(16, '\0'));
  absl::StatusOr<std::unique_ptr<Storage>> s = OpenRocksDbStorage(db_path(), options);
  ASSERT_FALSE(s.ok()) << "the frames after a zeroed snapshot header were dropped silently";
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
  EXPECT_NE(s.status().message().find("refusing to start"), std::string::npos) << s.status();
}

// Reservations are no RocksDB records: they live in the write log (each
// segment begins with a snapshot of them) and survive a crash, and the
// rolls of many segments, as every other acknowledged write does.
TEST_F(RocksDbStorageTest, ACrashKeepsEveryAcknowledgedWriteAcrossSegmentRolls) {
  RocksDbOptions options = AsIfCrashing();
  options.log_segment_bytes = 4096;  // a roll every ~15 writes below
  const core::ProposalId held = Proposal("12D3KooWc", 1, 1);
  const core::ProposalId dropped = Proposal("12D3KooWc", 1, 2);
  std::vector<uint64_t> digest(core::kDigestBuckets);
  int written = 0;
  // Commits keys k<written>.. k<written + n - 1>, one per write.
  auto commit = [&](Storage& storage, int n) {
    for (int end = written + n; written < end; ++written) {
      const std::string key = absl::StrCat("k", written);
      const std::string value = absl::StrCat(std::string(100, 'v'), written);
      std::vector<core::Mutation> m{core::PutCommitted{key, value, 0, {}}};
      if (written == 150) m.push_back(core::DeleteReservation{"dropped"});
      ASSERT_TRUE(WriteAndWait(storage, Batch(std::move(m))).ok()) << written;
      digest[core::BucketOf(key)] ^= core::EntryHash(key, value);
    }
  };
  {
    std::unique_ptr<Storage> storage = MustOpen(options);
    ASSERT_NE(storage, nullptr);
    ASSERT_TRUE(WriteAndWait(*storage, Batch({PutReservation("held", held, "hv"),
                                              PutReservation("dropped", dropped, "dv"),
                                              PutAcceptor(held, 3, core::Decision::kCommit)}))
                    .ok());
    commit(*storage, 300);
    EXPECT_GT(Segments(db_path()).size(), 10u) << "the writes did not roll segments";
  }
  // Round 0 replays the segments the crash left, keeps one (its snapshot
  // holds the reservation) and writes more into segments that reuse the
  // old ones' files; round 1 replays those after another crash; round 2
  // opens what round 1's open kept, and closes cleanly; round 3 opens what
  // the clean close kept.
  for (int round = 0; round < 4; ++round) {
    if (round == 2) options.flush_on_close = true;
    std::unique_ptr<Storage> storage = MustOpen(options);
    ASSERT_NE(storage, nullptr);
    // Open replays, flushes and keeps only the segment it starts.
    EXPECT_EQ(Segments(db_path()).size(), 1u) << "round " << round;
    absl::StatusOr<core::DurableState> state = storage->Recover();
    ASSERT_TRUE(state.ok()) << state.status();
    ASSERT_EQ(state->reservations.size(), 1u) << "round " << round;
    EXPECT_EQ(state->reservations[0].key, "held");
    EXPECT_EQ(state->reservations[0].proposal, held);
    EXPECT_EQ(state->reservations[0].value, "hv");
    std::optional<core::AcceptorRecord> a = storage->GetAcceptor(held);
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(a->promised.round, 3u);
    EXPECT_EQ(storage->CommittedCount(), static_cast<uint64_t>(written)) << "round " << round;
    EXPECT_EQ(storage->Digest(), digest) << "round " << round;
    EXPECT_EQ(storage->GetCommitted(absl::StrCat("k", written - 1)),
              std::optional<core::Value>(absl::StrCat(std::string(100, 'v'), written - 1)));
    if (round == 0) commit(*storage, 100);
  }
  EXPECT_FALSE(RawGet(internal::ReservationKey("held")).has_value())
      << "a reservation must not be a RocksDB record";
}

// Acceptor records are written to the write log, not RocksDB; one still
// held two segments later moves to RocksDB in a later frame, so the log
// (and memory) hold only the young ones. Updates and deletes of either kind
// survive crashes and a clean close.
TEST_F(RocksDbStorageTest, AcceptorRecordsLiveInTheLogUntilTheyOutliveASegment) {
  RocksDbOptions options = AsIfCrashing();
  options.log_segment_bytes = 4096;  // a roll every ~15 writes below
  const core::ProposalId old_p = Proposal("12D3KooWc", 1, 1);
  const core::ProposalId gone_p = Proposal("12D3KooWc", 1, 2);
  const core::ProposalId young_p = Proposal("12D3KooWc", 1, 3);
  int written = 0;
  auto commit = [&](Storage& storage, int n) {
    for (int end = written + n; written < end; ++written) {
      const std::string key = absl::StrCat("k", written);
      ASSERT_TRUE(
          WriteAndWait(storage, Batch({core::PutCommitted{key, std::string(100, 'v'), 0, {}}}))
              .ok());
    }
  };
  auto round_of = [](Storage& storage, const core::ProposalId& p) -> std::optional<uint64_t> {
    std::optional<core::AcceptorRecord> a = storage.GetAcceptor(p);
    if (!a) return std::nullopt;
    return a->promised.round;
  };
  {
    std::unique_ptr<Storage> storage = MustOpen(options);
    ASSERT_NE(storage, nullptr);
    ASSERT_TRUE(WriteAndWait(*storage, Batch({PutAcceptor(old_p, 3, core::Decision::kCommit),
                                              PutAcceptor(gone_p, 1, std::nullopt)}))
                    .ok());
    ASSERT_TRUE(WriteAndWait(*storage, Batch({core::DeleteAcceptor{gone_p}})).ok());
    EXPECT_EQ(storage->stats().log_acceptor_records, 1u);
    EXPECT_EQ(round_of(*storage, gone_p), std::nullopt);
    EXPECT_TRUE(storage->HasAcceptor(old_p));  // in the log
    EXPECT_FALSE(storage->HasAcceptor(gone_p));
    commit(*storage, 60);
    // Two rolls later the old record is in RocksDB, and still read.
    EXPECT_EQ(storage->stats().acceptor_records_moved, 1u);
    EXPECT_EQ(storage->stats().log_acceptor_records, 0u);
    EXPECT_EQ(round_of(*storage, old_p), 3u);
    EXPECT_TRUE(storage->HasAcceptor(old_p));  // in RocksDB
    // An update of a moved record is written where it is (storage looks
    // for it); a new one goes to the log (the engine says it is new).
    core::Mutation young = PutAcceptor(young_p, 2, std::nullopt);
    std::get<core::PutAcceptor>(young).new_register = true;
    ASSERT_TRUE(
        WriteAndWait(*storage, Batch({PutAcceptor(old_p, 5, core::Decision::kCommit), young}))
            .ok());
    EXPECT_EQ(storage->stats().log_acceptor_records, 1u);
    EXPECT_EQ(round_of(*storage, old_p), 5u);
  }
  {
    std::unique_ptr<Storage> storage = MustOpen(options);  // after a crash
    ASSERT_NE(storage, nullptr);
    EXPECT_EQ(round_of(*storage, old_p), 5u);
    EXPECT_EQ(round_of(*storage, young_p), 2u);
    EXPECT_EQ(round_of(*storage, gone_p), std::nullopt);
    EXPECT_EQ(storage->stats().log_acceptor_records, 1u);
  }
  options.flush_on_close = true;
  MustOpen(options).reset();  // a clean close: RocksDB flushed, the log rolled
  EXPECT_TRUE(RawGet(internal::AcceptorKey(old_p)).has_value()) << "the moved record";
  EXPECT_FALSE(RawGet(internal::AcceptorKey(young_p)).has_value())
      << "a young acceptor record must not be a RocksDB record";
  EXPECT_FALSE(RawGet(internal::AcceptorKey(gone_p)).has_value());
  options.flush_on_close = false;
  {
    std::unique_ptr<Storage> storage = MustOpen(options);
    ASSERT_NE(storage, nullptr);
    EXPECT_EQ(round_of(*storage, young_p), 2u);
    ASSERT_TRUE(
        WriteAndWait(*storage, Batch({core::DeleteAcceptor{old_p}, core::DeleteAcceptor{young_p}}))
            .ok());
    EXPECT_EQ(round_of(*storage, old_p), std::nullopt);
    EXPECT_EQ(round_of(*storage, young_p), std::nullopt);
  }
  std::unique_ptr<Storage> storage = MustOpen(options);  // after a crash
  ASSERT_NE(storage, nullptr);
  EXPECT_EQ(round_of(*storage, old_p), std::nullopt);
  EXPECT_EQ(round_of(*storage, young_p), std::nullopt);
  EXPECT_EQ(storage->stats().log_acceptor_records, 0u);
  EXPECT_EQ(storage->CommittedCount(), 60u);
}

// Without its write log a data dir has lost its reservations (and whatever
// RocksDB had not flushed): it is refused, not opened half-empty.
TEST_F(RocksDbStorageTest, AMissingWriteLogRefusesTheStart) {
  MustOpen().reset();
  std::filesystem::remove_all(LogDir(db_path()));
  absl::StatusOr<std::unique_ptr<Storage>> s = OpenRocksDbStorage(db_path());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
  EXPECT_NE(s.status().message().find("holds no segment"), std::string::npos) << s.status();
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
