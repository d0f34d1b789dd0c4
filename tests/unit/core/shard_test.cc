// Shards (core/shard.h): which keys one engine of a sharded node owns, and
// that an engine refuses every way of making it hold a key of another
// shard: a client's put or get, a peer's request, a catch-up page.
#include "core/shard.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "core/engine.h"
#include "core/founding.h"
#include "test_pump.h"

namespace replicator::core {
namespace {

using testing::Pump;

const std::map<ClusterId, std::vector<PeerId>> kOneByThree = {{"a", {"a1", "a2", "a3"}}};
const ProposalId kP{"a2", 1, 1, 0, 1};

// A key of shard `shard` of `shards`, not a system key.
Key KeyOfShard(uint32_t shard, uint32_t shards, int skip = 0) {
  for (int i = 0;; ++i) {
    Key k = "k" + std::to_string(i);
    if (ShardOf(k, shards) == shard && skip-- == 0) return k;
  }
}

TEST(ShardTest, TheRangesPartitionTheBucketsAndAgreeWithShardOf) {
  for (uint32_t shards = 1; shards <= kMaxShards; ++shards) {
    uint32_t next = 0;
    for (uint32_t i = 0; i < shards; ++i) {
      const ShardRange r{i, shards};
      ASSERT_EQ(r.first_bucket(), next) << i << " of " << shards;
      ASSERT_LT(r.first_bucket(), r.end_bucket()) << "shard " << i << " of " << shards;
      for (uint32_t b = r.first_bucket(); b < r.end_bucket(); ++b) {
        ASSERT_EQ(ShardOfBucket(b, shards), i) << "bucket " << b;
        ASSERT_TRUE(r.OwnsBucket(b));
      }
      next = r.end_bucket();
    }
    ASSERT_EQ(next, kDigestBuckets) << shards;
  }
}

TEST(ShardTest, AKeyBelongsToTheShardOfItsBucketAndASystemKeyToEvery) {
  const Key k = KeyOfShard(1, 3);
  EXPECT_EQ(ShardOf(k, 3), ShardOfBucket(BucketOf(k), 3));
  EXPECT_TRUE((ShardRange{1, 3}).Owns(k));
  EXPECT_FALSE((ShardRange{0, 3}).Owns(k));
  EXPECT_FALSE((ShardRange{2, 3}).Owns(k));
  EXPECT_TRUE((ShardRange{0, 1}).Owns(k));  // one shard owns all
  const Key system = FoundingKey(7);
  for (uint32_t i = 0; i < 3; ++i) EXPECT_TRUE((ShardRange{i, 3}).Owns(system)) << i;
  EXPECT_EQ(ShardOf(system, 3), 0u);
}

TEST(ShardTest, ShardCountsOutsideOneTo256AreRefused) {
  EXPECT_TRUE(ValidateShardCount(0).has_value());
  EXPECT_FALSE(ValidateShardCount(1).has_value());
  EXPECT_FALSE(ValidateShardCount(kMaxShards).has_value());
  EXPECT_TRUE(ValidateShardCount(kMaxShards + 1).has_value());
}

TEST(ShardTest, RequestsNamingAKeyOfAnotherShardAreRefusedAndOthersPass) {
  const ShardRange mine{0, 2};
  const Key other = KeyOfShard(1, 2);
  const Key own = KeyOfShard(0, 2);
  for (const Request& r : std::vector<Request>{
           HandleRequest{ReserveOp{other, "v", kP, 0, 1, 1}},
           ForwardRequest{CommitOp{other, "v", kP, 0}, 100},
           AcceptRequest{kP, Ballot{1, "a1"}, Decision::kCommit, other},
           PrepareRequest{kP, Ballot{1, "a1"}, other},
           ReadRequest{other, 1},
           ResolveRequest{kP, other},
       }) {
    std::optional<std::string> why = KeyOutsideShard(mine, r);
    ASSERT_TRUE(why.has_value()) << r.index();
    EXPECT_NE(why->find("shard 1 of 2"), std::string::npos) << *why;
    EXPECT_FALSE(KeyOutsideShard(ShardRange{1, 2}, r).has_value()) << r.index();
  }
  EXPECT_FALSE(KeyOutsideShard(mine, ReadRequest{own, 1}).has_value());
  // Requests without a key, and an older build's accept without its key.
  EXPECT_FALSE(KeyOutsideShard(mine, DigestRequest{}).has_value());
  EXPECT_FALSE(KeyOutsideShard(mine, PullRequest{}).has_value());
  EXPECT_FALSE(
      KeyOutsideShard(mine, AcceptRequest{kP, Ballot{1, "a1"}, Decision::kCommit, ""}).has_value());
}

// Three nodes, each running shard 0 of 2: a whole federation of engines
// that owns half the keys.
Pump ShardZeroOfTwo() {
  return Pump(kOneByThree, [](EngineConfig& c) { c.shard = ShardRange{0, 2}; });
}

TEST(ShardTest, AnEngineCommitsItsOwnKeysAndRefusesClientsOthers) {
  Pump pump = ShardZeroOfTwo();
  ASSERT_TRUE(pump.AllSettled());  // the cluster was founded by shard 0's own system keys
  const Key own = KeyOfShard(0, 2);
  const Key other = KeyOfShard(1, 2);
  pump.StartPut("a1", 1, own, "v1");
  pump.StartPut("a1", 2, other, "v2");
  pump.Run();
  EXPECT_EQ(pump.puts.at(1).kind, PutOutcome::Kind::kOk);
  EXPECT_EQ(pump.puts.at(2).kind, PutOutcome::Kind::kInvalidArgument);
  EXPECT_NE(pump.puts.at(2).message.find("belongs to shard 1 of 2"), std::string::npos)
      << pump.puts.at(2).message;
  for (const char* p : {"a1", "a2", "a3"}) {
    EXPECT_TRUE(pump.store(p).GetEntry(own).has_value()) << p;
    EXPECT_FALSE(pump.store(p).GetEntry(other).has_value()) << p;
  }
  pump.StartGet("a2", 3, own, Consistency::kLinearizable);
  pump.StartGet("a2", 4, other, Consistency::kLocal);
  pump.Run();
  EXPECT_EQ(pump.gets.at(3).kind, GetOutcome::Kind::kFound);
  EXPECT_EQ(pump.gets.at(4).kind, GetOutcome::Kind::kInvalidArgument);
}

TEST(ShardTest, APeersRequestForAKeyOfAnotherShardIsRefusedUnapplied) {
  Pump pump = ShardZeroOfTwo();
  const Key other = KeyOfShard(1, 2);
  const uint64_t reserve = pump.Call("a1", HandleRequest{ReserveOp{other, "v", kP, 0, 1, 1}});
  const uint64_t commit = pump.Call("a1", HandleRequest{CommitOp{other, "v", kP, 0}});
  pump.Run();
  for (uint64_t id : {reserve, commit}) {
    const auto* refused = std::get_if<Unreachable>(&pump.tester_responses.at(id));
    ASSERT_NE(refused, nullptr) << id;
    EXPECT_NE(refused->reason.find("belongs to shard 1 of 2"), std::string::npos)
        << refused->reason;
  }
  EXPECT_EQ(pump.engine("a1").stats().shard_refusals, 2u);
  EXPECT_EQ(pump.engine("a1").stats().reservations, 0u);
  EXPECT_FALSE(pump.store("a1").GetEntry(other).has_value());
}

TEST(ShardTest, ACatchUpPageHoldingAKeyOfAnotherShardEndsTheRoundUnapplied) {
  Pump pump = ShardZeroOfTwo();
  // a2 and a3 hold a key a1 lacks, so a1's round pulls its bucket...
  const Key own = KeyOfShard(0, 2);
  for (const char* p : {"a2", "a3"}) pump.Call(p, HandleRequest{CommitOp{own, "v", kP, 0}});
  pump.Run();
  // ...and the page comes back with a key of shard 1 beside it, as from a
  // peer that runs another shard count.
  const Key other = KeyOfShard(1, 2);
  pump.rewrite = [&](const Request&, Response& r) {
    if (auto* page = std::get_if<PullResponse>(&r)) {
      page->entries.push_back(PulledEntry{other, "w", 0, kP});
      std::sort(page->entries.begin(), page->entries.end(),
                [](const PulledEntry& a, const PulledEntry& b) {
                  return std::make_pair(BucketOf(a.key), a.key) <
                         std::make_pair(BucketOf(b.key), b.key);
                });
    }
  };
  pump.StartCatchUp("a1");
  pump.Run();
  EXPECT_FALSE(pump.store("a1").GetEntry(other).has_value());
  EXPECT_FALSE(pump.store("a1").GetEntry(own).has_value());  // the page was refused whole
  EXPECT_EQ(pump.engine("a1").stats().catchup_keys_pulled, 0u);

  // The same page from an honest peer is taken.
  pump.rewrite = nullptr;
  pump.StartCatchUp("a1");
  pump.Run();
  ASSERT_TRUE(pump.store("a1").GetEntry(own).has_value());
  EXPECT_EQ(pump.engine("a1").stats().catchup_keys_pulled, 1u);
}

TEST(ShardTest, ADigestHoldingAReservationOfAnotherShardEndsTheRoundUnsettled) {
  Pump pump = ShardZeroOfTwo();
  // As from a peer of another shard count: its digest lists a reservation
  // of a key of shard 1, which a settle would resolve and commit here.
  const Key other = KeyOfShard(1, 2);
  pump.rewrite = [&](const Request&, Response& r) {
    if (auto* digest = std::get_if<DigestResponse>(&r)) {
      digest->reservations.push_back(Reservation{other, kP, "w", 0, 0});
    }
  };
  const uint64_t rounds = pump.engine("a1").stats().catchup_rounds;
  pump.StartCatchUp("a1");
  pump.Run();
  EXPECT_EQ(pump.engine("a1").stats().catchup_rounds, rounds);  // the round failed
  EXPECT_FALSE(pump.store("a1").GetEntry(other).has_value());
  pump.rewrite = nullptr;
  pump.StartCatchUp("a1");
  pump.Run();
  EXPECT_EQ(pump.engine("a1").stats().catchup_rounds, rounds + 1);
}

}  // namespace
}  // namespace replicator::core
