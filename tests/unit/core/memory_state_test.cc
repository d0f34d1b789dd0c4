// MemoryState: the in-memory durable state the simulator, the core unit
// tests and in-memory storage share. Asserted through CommittedView and
// Recover, the way an engine reads it.
#include "core/memory_state.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "test_pump.h"

namespace replicator::core {
namespace {

using testing::KeysInOneBucket;


// Every (key, request id) ForEachInBucket visits after `after`, stopping
// after `limit` visits.
std::vector<std::pair<Key, uint64_t>> Scan(const MemoryState& s, uint32_t bucket, const Key& after,
                                           size_t limit = 1000) {
  std::vector<std::pair<Key, uint64_t>> out;
  s.ForEachInBucket(bucket, after, [&](const Key& k, const CommittedEntry& e) {
    out.emplace_back(k, e.request_id);
    return out.size() < limit;
  });
  return out;
}

TEST(MemoryStateTest, DigestIsTheXorOfEntryHashesPerBucket) {
  MemoryState s;
  EXPECT_EQ(s.Digest(), std::vector<uint64_t>(kDigestBuckets, 0));
  const std::vector<Key> same = KeysInOneBucket(2);
  s.Apply(PutCommitted{same[0], "v0", 0, {}});
  s.Apply(PutCommitted{same[1], "v1", 0, {}});
  s.Apply(PutCommitted{"other", "w", 0, {}});
  std::vector<uint64_t> want(kDigestBuckets, 0);
  want[BucketOf(same[0])] = EntryHash(same[0], "v0") ^ EntryHash(same[1], "v1");
  want[BucketOf("other")] ^= EntryHash("other", "w");
  EXPECT_EQ(s.Digest(), want);
}

TEST(MemoryStateTest, CommittedEntriesAreWriteOnce) {
  struct Case {
    std::string name;
    PutCommitted second;
  };
  const std::vector<Case> cases = {
      {"same value, another request id", PutCommitted{"k", "v", 8, {}}},
      {"same value, no request id", PutCommitted{"k", "v", 0, {}}},
      {"another value", PutCommitted{"k", "w", 9, {}}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    MemoryState s;
    s.Apply(PutCommitted{"k", "v", 7, {}});
    const std::vector<uint64_t> digest = s.Digest();
    s.Apply(c.second);
    ASSERT_TRUE(s.GetEntry("k").has_value());
    EXPECT_EQ(s.GetEntry("k")->value, "v");
    EXPECT_EQ(s.GetEntry("k")->request_id, 7u);
    EXPECT_EQ(s.request_id("k"), 7u);
    EXPECT_EQ(s.Digest(), digest);
    EXPECT_EQ(s.committed().size(), 1u);
    EXPECT_EQ(Scan(s, BucketOf("k"), "").size(), 1u);
  }
  MemoryState s;
  EXPECT_FALSE(s.GetEntry("k").has_value());
  EXPECT_EQ(s.request_id("k"), 0u);
}

TEST(MemoryStateTest, BucketScansAreInKeyOrderAndPageWithAfter) {
  const std::vector<Key> keys = KeysInOneBucket(5);
  MemoryState s;
  // Applied in reverse: the scan order must not be the order of commits.
  for (size_t i = keys.size(); i-- > 0;) s.Apply(PutCommitted{keys[i], "v", 100 + i, {}});
  s.Apply(PutCommitted{"elsewhere", "v", 0, {}});
  ASSERT_NE(BucketOf("elsewhere"), BucketOf(keys[0]));
  const uint32_t bucket = BucketOf(keys[0]);

  std::vector<std::pair<Key, uint64_t>> all = Scan(s, bucket, "");
  ASSERT_EQ(all.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) {
    EXPECT_EQ(all[i].first, keys[i]);
    EXPECT_EQ(all[i].second, 100 + i);
  }
  // Pages of two, each resuming after the last key of the one before.
  std::vector<Key> paged;
  Key after;
  for (;;) {
    std::vector<std::pair<Key, uint64_t>> page = Scan(s, bucket, after, 2);
    if (page.empty()) break;
    for (const auto& [k, rid] : page) paged.push_back(k);
    after = page.back().first;
  }
  EXPECT_EQ(paged, keys);
  // `after` need not be a committed key: the scan starts past it.
  EXPECT_EQ(Scan(s, bucket, keys[1] + "\x01").front().first, keys[2]);
  EXPECT_TRUE(Scan(s, bucket, keys.back()).empty());
  // Other buckets hold only their own keys; there is no bucket past the last.
  std::vector<std::pair<Key, uint64_t>> other = Scan(s, BucketOf("elsewhere"), "");
  ASSERT_EQ(other.size(), 1u);
  EXPECT_EQ(other[0].first, "elsewhere");
  EXPECT_TRUE(Scan(s, kDigestBuckets, "").empty());
}

TEST(MemoryStateTest, ForEachFromCrossesBucketsInPositionOrder) {
  MemoryState s;
  const std::vector<Key> keys = {"a", "b", "c", "d", "e", "f"};
  for (const Key& k : keys) s.Apply(PutCommitted{k, "v", 0, {}});
  std::vector<MemoryState::Position> want;
  for (const Key& k : keys) want.emplace_back(BucketOf(k), k);
  std::sort(want.begin(), want.end());

  auto from = [&](const MemoryState::Position& p, bool inclusive) {
    std::vector<MemoryState::Position> out;
    s.ForEachFrom(p, inclusive, [&](const MemoryState::Position& at, const CommittedEntry&) {
      out.push_back(at);
      return true;
    });
    return out;
  };
  EXPECT_EQ(from({0, ""}, true), want);
  EXPECT_EQ(from(want[2], true), std::vector<MemoryState::Position>(want.begin() + 2, want.end()));
  EXPECT_EQ(from(want[2], false), std::vector<MemoryState::Position>(want.begin() + 3, want.end()));
}

TEST(MemoryStateTest, RecoverReturnsReservationsInKeyOrderAsStored) {
  const ProposalId p1{"a1", 1, 1, 0, 1}, p2{"a1", 1, 2, 0, 1};
  MemoryState s;
  s.Apply(WriteBatch{{PutReservation{Reservation{"z", p1, "vz", 5, 11}},
                      PutReservation{Reservation{"m", p2, "vm", 6, 0}},
                      PutReservation{Reservation{"gone", p2, "x", 7, 0}}}});
  s.Apply(DeleteReservation{"gone"});
  // A later reservation of a key replaces the earlier one.
  s.Apply(PutReservation{Reservation{"m", p1, "vm2", 8, 12}});
  DurableState d = s.Recover();
  ASSERT_EQ(d.reservations.size(), 2u);
  EXPECT_EQ(d.reservations[0].key, "m");
  EXPECT_EQ(d.reservations[0].value, "vm2");
  EXPECT_EQ(d.reservations[0].since, 8);
  EXPECT_EQ(d.reservations[0].request_id, 12u);
  EXPECT_EQ(d.reservations[1].key, "z");
  EXPECT_TRUE(d.reservations[1].proposal == p1);
}

TEST(MemoryStateTest, AcceptorRecordsAreReplacedAndDeleted) {
  const ProposalId p{"a1", 1, 1, 0, 1}, q{"a1", 1, 2, 0, 1};
  MemoryState s;
  s.Apply(PutAcceptor{AcceptorRecord{p, Ballot{1, "a1"}, std::nullopt}});
  s.Apply(PutAcceptor{AcceptorRecord{q, Ballot{1, "a2"}, std::nullopt}});
  s.Apply(PutAcceptor{
      AcceptorRecord{p, Ballot{3, "a3"}, AcceptedValue{Ballot{3, "a3"}, Decision::kCommit}}});
  s.Apply(DeleteAcceptor{q});
  ASSERT_TRUE(s.GetAcceptor(p).has_value());
  EXPECT_EQ(s.GetAcceptor(p)->promised, (Ballot{3, "a3"}));
  ASSERT_TRUE(s.GetAcceptor(p)->accepted.has_value());
  EXPECT_EQ(s.GetAcceptor(p)->accepted->decision, Decision::kCommit);
  EXPECT_FALSE(s.GetAcceptor(q).has_value());
  EXPECT_EQ(s.acceptors().size(), 1u);
  EXPECT_TRUE(s.Recover().reservations.empty());  // acceptors are not preloaded
}

TEST(MemoryStateTest, ConfigsAreWriteOnceAndRecoveredInClusterEpochOrder) {
  MemoryState s;
  // Applied out of order; "a-" sorts after "a", epoch 10 after 9.
  s.Apply(PutConfig{Configuration{"b", 1, {"p1", "p2", "p3"}}});
  s.Apply(PutConfig{Configuration{"a", 10, {"p1", "p2", "p4"}}});
  s.Apply(PutConfig{Configuration{"a-", 1, {"q1", "q2", "q3"}}});
  s.Apply(PutConfig{Configuration{"a", 9, {"p1", "p2", "p3"}}});
  // Another voter set for a configuration held: nothing changes.
  s.Apply(PutConfig{Configuration{"a", 9, {"p1", "p2"}}});
  ASSERT_EQ(s.configs().size(), 4u);
  EXPECT_EQ(s.configs().at({"a", 9}).voters, (std::vector<PeerId>{"p1", "p2", "p3"}));
  const DurableState d = s.Recover();
  const std::vector<Configuration> want = {
      Configuration{"a", 9, {"p1", "p2", "p3"}}, Configuration{"a", 10, {"p1", "p2", "p4"}},
      Configuration{"a-", 1, {"q1", "q2", "q3"}}, Configuration{"b", 1, {"p1", "p2", "p3"}}};
  EXPECT_EQ(d.configs, want);
  EXPECT_TRUE(d.reservations.empty());
  EXPECT_TRUE(d.config_acceptors.empty());
}

TEST(MemoryStateTest, ConfigAcceptorRecordsAreReplacedAndRecovered) {
  MemoryState s;
  s.Apply(PutConfigAcceptor{ConfigAcceptorRecord{"c1", 2, Ballot{1, "p1"}, std::nullopt}});
  s.Apply(PutConfigAcceptor{ConfigAcceptorRecord{"c1", 1, Ballot{4, "p2"}, std::nullopt}});
  // A later write of (c1, 2) replaces the first.
  const ConfigAccepted accepted{Ballot{3, "p3"}, {"p1", "p2", "p3", "p4"}};
  s.Apply(PutConfigAcceptor{ConfigAcceptorRecord{"c1", 2, Ballot{3, "p3"}, accepted}});
  ASSERT_EQ(s.config_acceptors().size(), 2u);
  const DurableState d = s.Recover();
  ASSERT_EQ(d.config_acceptors.size(), 2u);
  EXPECT_EQ(d.config_acceptors[0].cluster, "c1");
  EXPECT_EQ(d.config_acceptors[0].epoch, 1u);
  EXPECT_EQ(d.config_acceptors[0].promised, (Ballot{4, "p2"}));
  EXPECT_FALSE(d.config_acceptors[0].accepted.has_value());
  EXPECT_EQ(d.config_acceptors[1].epoch, 2u);
  EXPECT_EQ(d.config_acceptors[1].promised, (Ballot{3, "p3"}));
  EXPECT_EQ(d.config_acceptors[1].accepted, std::optional<ConfigAccepted>(accepted));
  EXPECT_TRUE(d.configs.empty());
}

TEST(MemoryStateTest, ProposalEpochIsKeptInReservationsAndAcceptorRecords) {
  ProposalId p{"a1", 1, 1, 500};
  p.epoch = 7;
  MemoryState s;
  s.Apply(PutReservation{Reservation{"k", p, "v", 0, 0}});
  s.Apply(PutAcceptor{AcceptorRecord{p, Ballot{0, "a1"}, std::nullopt}});
  const DurableState d = s.Recover();
  ASSERT_EQ(d.reservations.size(), 1u);
  EXPECT_EQ(d.reservations[0].proposal.epoch, 7u);
  ASSERT_TRUE(s.GetAcceptor(p).has_value());
  EXPECT_EQ(s.GetAcceptor(p)->proposal.epoch, 7u);
}

TEST(MemoryStateTest, ACopyIsASnapshot) {
  MemoryState s;
  s.Apply(PutCommitted{"k", "v", 1, {}});
  const MemoryState snapshot = s;
  s.Apply(PutCommitted{"later", "w", 2, {}});
  s.Apply(PutReservation{Reservation{"r", ProposalId{"a1", 1, 1, 0, 1}, "x", 0, 0}});
  s.Apply(PutConfig{Configuration{"c1", 2, {"p1", "p2", "p3"}}});
  s.Apply(PutConfigAcceptor{ConfigAcceptorRecord{"c1", 3, Ballot{1, "p1"}, std::nullopt}});
  s = snapshot;  // a crash rolling back to what was synced
  EXPECT_FALSE(s.GetEntry("later").has_value());
  EXPECT_TRUE(s.reservations().empty());
  EXPECT_TRUE(s.configs().empty());
  EXPECT_TRUE(s.config_acceptors().empty());
  EXPECT_EQ(s.Digest(), snapshot.Digest());
  EXPECT_EQ(s.committed().size(), 1u);
  for (const auto& [key, rid] : Scan(s, BucketOf("later"), "")) EXPECT_NE(key, "later");
}

}  // namespace
}  // namespace replicator::core
