// Catch-up (anti-entropy): serving digests and paged pulls, and rounds that
// compare digests with a peer of the cluster and pull what differs.
// Asserted on stores, stats and the messages a node sends.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "core/engine.h"
#include "test_pump.h"

namespace replicator::core {
namespace {

using testing::KeysInOneBucket;
using testing::kTestGeneration;

using testing::ConfigFor;
using testing::MakeTopology;
using testing::MemoryStore;
using testing::Pump;

const std::map<ClusterId, std::vector<PeerId>> kOneByThree = {{"a", {"a1", "a2", "a3"}}};
const ProposalId kP{"a2", 1, 1, 0, 1};

// Commits (key, value) at `peers` only, as if the others had missed it.
void CommitAt(Pump& pump, const std::vector<PeerId>& peers, const Key& key, const Value& value,
              uint64_t request_id = 0) {
  for (const PeerId& p : peers) pump.Call(p, HandleRequest{CommitOp{key, value, kP, request_id}});
  pump.Run();
}

std::vector<SendEffect> Sends(std::vector<Effect> effects) {
  std::vector<SendEffect> out;
  for (Effect& fx : effects) {
    if (auto* s = std::get_if<SendEffect>(&fx)) out.push_back(std::move(*s));
  }
  return out;
}

int Sent(const Pump& pump, const PeerId& from, size_t request_index) {
  int n = 0;
  for (const Pump::Sent& s : pump.sent) n += s.from == from && s.request.index() == request_index;
  return n;
}

TEST(CatchUpRoleTest, ANodeMissingKeysCatchesUpFromAPeer) {
  Pump pump(kOneByThree);
  for (int i = 0; i < 50; ++i) {
    CommitAt(pump, {"a2", "a3"}, "k" + std::to_string(i), "v" + std::to_string(i), 100 + i);
  }
  EXPECT_FALSE(pump.engine("a1").caught_up());
  pump.StartCatchUp("a1");
  pump.Run();
  EXPECT_TRUE(pump.engine("a1").caught_up());
  for (int i = 0; i < 50; ++i) {
    const Key k = "k" + std::to_string(i);
    ASSERT_TRUE(pump.store("a1").GetEntry(k).has_value()) << k;
    EXPECT_EQ(pump.store("a1").GetEntry(k)->value, "v" + std::to_string(i));
    EXPECT_EQ(pump.store("a1").GetEntry(k)->request_id, static_cast<uint64_t>(100 + i));
  }
  EXPECT_EQ(pump.store("a1").Digest(), pump.store("a2").Digest());
  const EngineStats s = pump.engine("a1").stats();
  EXPECT_EQ(s.catchup_rounds, 1u);
  EXPECT_EQ(s.catchup_keys_pulled, 50u);
  EXPECT_EQ(Sent(pump, "a1", Request(DigestRequest{}).index()), 1);
  // Only the buckets that differed were pulled.
  EXPECT_LE(Sent(pump, "a1", Request(PullRequest{}).index()), 50);
  EXPECT_TRUE(pump.violations.empty());

  // A second round finds nothing to pull.
  pump.StartCatchUp("a1");
  pump.Run();
  EXPECT_EQ(pump.engine("a1").stats().catchup_rounds, 2u);
  EXPECT_EQ(pump.engine("a1").stats().catchup_keys_pulled, 50u);
}

TEST(CatchUpRoleTest, PullsPageThroughABucketWithATinyMaxBytes) {
  const std::vector<Key> keys = KeysInOneBucket(5);
  Pump pump(kOneByThree, [](EngineConfig& c) { c.catchup_pull_max_bytes = 1; });
  for (const Key& k : keys) CommitAt(pump, {"a2", "a3"}, k, "value-of-" + k);

  // The server: one entry per page (at least one, however small max_bytes),
  // complete only on the last.
  Key after;
  for (size_t i = 0; i < keys.size(); ++i) {
    uint64_t call = pump.Call("a2", PullRequest{BucketOf(keys[0]), after, 1, 0});
    pump.Run();
    const auto& page = std::get<PullResponse>(pump.tester_responses.at(call));
    ASSERT_EQ(page.entries.size(), 1u);
    EXPECT_EQ(page.entries[0].key, keys[i]);
    EXPECT_EQ(page.entries[0].value, "value-of-" + keys[i]);
    EXPECT_EQ(page.complete, i + 1 == keys.size());
    after = page.entries[0].key;
  }
  uint64_t all = pump.Call("a2", PullRequest{BucketOf(keys[0]), "", 1 << 20, 0});
  uint64_t other = pump.Call("a2", PullRequest{BucketOf(keys[0]) ^ 1, "", 1 << 20, 0});
  uint64_t bad = pump.Call("a2", PullRequest{kDigestBuckets, "", 1 << 20, 0});
  pump.Run();
  EXPECT_EQ(std::get<PullResponse>(pump.tester_responses.at(all)).entries.size(), keys.size());
  EXPECT_TRUE(std::get<PullResponse>(pump.tester_responses.at(all)).complete);
  EXPECT_TRUE(std::get<PullResponse>(pump.tester_responses.at(other)).entries.empty());
  EXPECT_TRUE(std::get<PullResponse>(pump.tester_responses.at(bad)).entries.empty());

  // The client pages through with `after`.
  pump.StartCatchUp("a1");
  pump.Run();
  EXPECT_TRUE(pump.engine("a1").caught_up());
  for (const Key& k : keys) EXPECT_EQ(pump.store("a1").GetCommitted(k), "value-of-" + k);
  std::vector<Key> afters;
  for (const Pump::Sent& s : pump.sent) {
    if (s.from != "a1") continue;
    if (auto* p = std::get_if<PullRequest>(&s.request)) afters.push_back(p->after);
  }
  std::vector<Key> want = {""};
  want.insert(want.end(), keys.begin(), keys.end() - 1);
  EXPECT_EQ(afters, want);
  EXPECT_EQ(pump.engine("a1").stats().catchup_keys_pulled, keys.size());
}

// Keys "k0", "k1", ... until `buckets` adjacent buckets from `first` hold
// `per_bucket` keys each, sorted in catch-up order (bucket, key).
std::vector<Key> KeysInBuckets(uint32_t first, uint32_t buckets, size_t per_bucket) {
  std::map<uint32_t, std::vector<Key>> by_bucket;
  size_t full = 0;
  for (int i = 0; full < buckets; ++i) {
    Key k = "k" + std::to_string(i);
    const uint32_t b = BucketOf(k);
    if (b < first || b >= first + buckets || by_bucket[b].size() == per_bucket) continue;
    by_bucket[b].push_back(k);
    full += by_bucket[b].size() == per_bucket;
  }
  std::vector<Key> keys;
  for (auto& [b, ks] : by_bucket) {
    std::sort(ks.begin(), ks.end());
    keys.insert(keys.end(), ks.begin(), ks.end());
  }
  return keys;
}

TEST(CatchUpRoleTest, APullOfARangePagesAcrossBucketsInBucketThenKeyOrder) {
  const std::vector<Key> keys = KeysInBuckets(100, 3, 2);
  ASSERT_EQ(keys.size(), 6u);
  Pump pump(kOneByThree);
  for (const Key& k : keys) CommitAt(pump, {"a2", "a3"}, k, "value-of-" + k);

  // One entry per page; a page resumes after the last key, in its bucket.
  uint32_t bucket = 100;
  Key after;
  for (size_t i = 0; i < keys.size(); ++i) {
    uint64_t call = pump.Call("a2", PullRequest{bucket, after, 1, 103});
    pump.Run();
    const auto& page = std::get<PullResponse>(pump.tester_responses.at(call));
    ASSERT_EQ(page.entries.size(), 1u) << i;
    EXPECT_EQ(page.entries[0].key, keys[i]);
    EXPECT_EQ(page.complete, i + 1 == keys.size());
    EXPECT_EQ(page.bucket_end, 103u);
    bucket = BucketOf(page.entries[0].key);
    after = page.entries[0].key;
  }
  // The whole range in one page; past the last bucket, the end is capped.
  uint64_t all = pump.Call("a2", PullRequest{100, "", 1 << 20, 103});
  uint64_t capped = pump.Call("a2", PullRequest{kDigestBuckets - 1, "", 1 << 20, 1u << 31});
  pump.Run();
  const auto& page = std::get<PullResponse>(pump.tester_responses.at(all));
  ASSERT_EQ(page.entries.size(), keys.size());
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(page.entries[i].key, keys[i]);
  EXPECT_TRUE(page.complete);
  EXPECT_EQ(std::get<PullResponse>(pump.tester_responses.at(capped)).bucket_end, kDigestBuckets);
}

// Every key of `keys` committed at a2 and a3 straight into their stores
// (many keys, no puts).
void PlantAtPeers(Pump& pump, const std::vector<Key>& keys) {
  WriteBatch batch;
  for (const Key& k : keys) batch.mutations.push_back(PutCommitted{k, "v-" + k, 0, {}});
  pump.store("a2").Apply(batch);
  pump.store("a3").Apply(batch);
}

std::vector<Key> ManyKeys(size_t n) {
  std::vector<Key> keys;
  for (size_t i = 0; i < n; ++i) keys.push_back("many-" + std::to_string(i));
  return keys;
}

TEST(CatchUpRoleTest, ANodeHoldingNothingPullsRangesNotOneBucketAtATime) {
  // Enough keys to fill nearly every bucket: the differing buckets form a
  // few long runs, each cut so that the pulls in flight share them.
  const std::vector<Key> keys = ManyKeys(30000);
  Pump pump(kOneByThree);
  PlantAtPeers(pump, keys);
  pump.StartCatchUp("a1");
  pump.Run();
  EXPECT_TRUE(pump.engine("a1").caught_up());
  EXPECT_EQ(pump.store("a1").Digest(), pump.store("a2").Digest());
  EXPECT_EQ(pump.engine("a1").stats().catchup_keys_pulled, keys.size());
  std::vector<const PullRequest*> pulls;
  for (const Pump::Sent& s : pump.sent) {
    if (auto* p = std::get_if<PullRequest>(&s.request); p != nullptr && s.from == "a1") {
      pulls.push_back(p);
    }
  }
  EXPECT_GE(pulls.size(), 8u);
  EXPECT_LE(pulls.size(), 64u);
  EXPECT_EQ(pump.engine("a1").stats().catchup_pulls, pulls.size());
  for (const PullRequest* p : pulls) {
    EXPECT_GT(p->bucket_end, p->bucket);
    EXPECT_LE(p->bucket_end - p->bucket, kDigestBuckets / 8) << "a range longer than its share";
  }
  EXPECT_TRUE(pump.violations.empty());
}

TEST(CatchUpRoleTest, APeerServingOneBucketPerPullIsStillPulledCompletely) {
  // A build that predates ranges ignores bucket_end: it answers with the
  // first bucket alone and a bucket_end of 0. The puller goes on from the
  // next bucket rather than taking the range as done.
  const std::vector<Key> keys = ManyKeys(3000);
  Pump pump(kOneByThree, [](EngineConfig& c) { c.catchup_pull_max_bytes = 2000; });
  PlantAtPeers(pump, keys);
  pump.rewrite = [](const Request& q, Response& r) {
    const auto* pull = std::get_if<PullRequest>(&q);
    auto* page = std::get_if<PullResponse>(&r);
    if (pull == nullptr || page == nullptr) return;
    auto other =
        std::find_if(page->entries.begin(), page->entries.end(),
                     [&](const PulledEntry& e) { return BucketOf(e.key) != pull->bucket; });
    if (other != page->entries.end()) {
      page->entries.erase(other, page->entries.end());
      page->complete = true;
    }
    page->bucket_end = 0;
  };
  pump.StartCatchUp("a1");
  pump.Run();
  EXPECT_TRUE(pump.engine("a1").caught_up());
  EXPECT_EQ(pump.store("a1").Digest(), pump.store("a2").Digest());
  EXPECT_EQ(pump.engine("a1").stats().catchup_keys_pulled, keys.size());
  EXPECT_TRUE(pump.violations.empty());
}

TEST(CatchUpRoleTest, APageThatDoesNotAdvanceOrLeavesItsRangeFailsTheRound) {
  struct Case {
    std::string name;
    std::function<void(const PullRequest&, PullResponse&)> rewrite;
  };
  const std::vector<Case> cases = {
      {"incomplete and empty",
       [](const PullRequest&, PullResponse& p) {
         p.entries.clear();
         p.complete = false;
       }},
      {"incomplete, ending before the range",
       [](const PullRequest& q, PullResponse& p) {
         p.complete = false;
         p.entries.assign(1, PulledEntry{KeysInBuckets(q.bucket - 1, 1, 1)[0], "v", 0, {}});
       }},
      {"incomplete, ending past the range",
       [](const PullRequest& q, PullResponse& p) {
         p.complete = false;
         p.entries.assign(1, PulledEntry{KeysInBuckets(q.bucket_end, 1, 1)[0], "v", 0, {}});
       }},
      {"complete past the range's end",
       [](const PullRequest& q, PullResponse& p) { p.bucket_end = q.bucket_end + 1; }},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    // Keys in buckets 200..201 only, so every pull asks for [200, 202).
    const std::vector<Key> keys = KeysInBuckets(200, 2, 1);
    Pump pump(kOneByThree);
    PlantAtPeers(pump, keys);
    pump.rewrite = [&](const Request& q, Response& r) {
      const auto* pull = std::get_if<PullRequest>(&q);
      auto* page = std::get_if<PullResponse>(&r);
      if (pull != nullptr && page != nullptr) c.rewrite(*pull, *page);
    };
    pump.StartCatchUp("a1");
    pump.Run();
    EXPECT_FALSE(pump.engine("a1").caught_up());
    EXPECT_EQ(pump.engine("a1").stats().catchup_rounds, 0u);
  }
}

TEST(CatchUpRoleTest, AConflictingValueIsReportedNotOverwritten) {
  Pump pump(kOneByThree);
  CommitAt(pump, {"a2", "a3"}, "k", "v");
  CommitAt(pump, {"a2", "a3"}, "fine", "f");
  pump.store("a1").Plant("k", "other");  // corrupt: a second value
  pump.StartCatchUp("a1");
  pump.Run();
  ASSERT_EQ(pump.violations.size(), 1u);
  EXPECT_EQ(pump.violations[0].key, "k");
  EXPECT_EQ(pump.engine("a1").stats().safety_violations, 1u);
  EXPECT_EQ(pump.store("a1").GetCommitted("k"), "other");
  EXPECT_EQ(pump.store("a1").GetCommitted("fine"), "f");
  EXPECT_TRUE(pump.engine("a1").caught_up());
}

TEST(CatchUpRoleTest, NoPeerToAskIsTriviallyCaughtUp) {
  struct Case {
    std::string name;
    Topology topology;
  };
  Topology other_cluster_only = MakeTopology({{"a", {"a1"}}, {"b", {"b1", "b2", "b3"}}});
  const std::vector<Case> cases = {
      {"alone in the cluster", MakeTopology({{"a", {"a1"}}})},
      {"peers only in other clusters", other_cluster_only},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    MemoryStore store;
    Engine engine(ConfigFor("a1", "a"), &store, DurableState{});
    engine.SetTopology(c.topology, 1000);
    EXPECT_TRUE(engine.caught_up());
    engine.StartCatchUp(1000);
    for (const Effect& fx : engine.TakeEffects()) {
      EXPECT_FALSE(std::holds_alternative<SendEffect>(fx));
    }
    EXPECT_TRUE(engine.caught_up());
    // A peer appears: the catch-up asked for starts at once.
    engine.SetTopology(MakeTopology(kOneByThree), 1001);
    EXPECT_FALSE(engine.caught_up());
    std::vector<SendEffect> sends = Sends(engine.TakeEffects());
    ASSERT_EQ(sends.size(), 1u);
    EXPECT_TRUE(std::holds_alternative<DigestRequest>(sends[0].request));
  }
}

// Down is a liveness hint, not membership: voters shown down still count
// towards the majority a node must have caught up from, and are asked.
TEST(CatchUpRoleTest, VotersShownDownStillCount) {
  Topology peers_down = MakeTopology(kOneByThree);
  for (Member& m : peers_down.members) {
    if (m.id != "a1") m.state = PeerState::kDown;
  }
  MemoryStore store;
  Engine engine(ConfigFor("a1", "a"), &store, DurableState{});
  engine.SetTopology(peers_down, 1000);
  EXPECT_FALSE(engine.caught_up());
  engine.StartCatchUp(1000);
  std::vector<SendEffect> sends = Sends(engine.TakeEffects());
  ASSERT_EQ(sends.size(), 1u);
  const SendEffect& digest = sends[0];
  EXPECT_TRUE(std::holds_alternative<DigestRequest>(digest.request));
  EXPECT_TRUE(digest.to == "a2" || digest.to == "a3") << digest.to;
}

TEST(CatchUpRoleTest, AnUnreachablePeerAbortsTheRoundAndTheNextIntervalAsksAnother) {
  Pump pump(kOneByThree, [](EngineConfig& c) { c.catchup_interval_ms = 1000; });
  CommitAt(pump, {"a2", "a3"}, "k", "v");
  pump.down = {"a2", "a3"};
  const TimeMs start = pump.now;
  pump.StartCatchUp("a1");
  pump.Run();
  EXPECT_FALSE(pump.engine("a1").caught_up());
  EXPECT_EQ(pump.engine("a1").stats().catchup_rounds, 0u);
  EXPECT_EQ(pump.engine("a1").NextWakeup(), start + 1000);
  // Two more rounds ask each peer in turn; one is back.
  pump.down = {"a2"};
  pump.AdvanceTo(start + 1000);
  pump.AdvanceTo(start + 2000);
  EXPECT_TRUE(pump.engine("a1").caught_up());
  EXPECT_EQ(pump.store("a1").GetCommitted("k"), "v");
  std::set<PeerId> asked;
  for (const Pump::Sent& s : pump.sent) {
    if (s.from == "a1" && std::holds_alternative<DigestRequest>(s.request)) asked.insert(s.to);
  }
  EXPECT_EQ(asked, (std::set<PeerId>{"a2", "a3"}));
}

TEST(CatchUpRoleTest, APulledEntryKeepsAReservationUnlessItsDecisionIsKnown) {
  struct Case {
    std::string name;
    bool names_proposal;  // a2 committed it by holder's commit, not behind its back
    bool decision_known;
    bool stays;
  };
  for (const Case& c : std::vector<Case>{
           {"the entry names the holder: applied as its commit", true, false, false},
           {"no proposal with the entry, undecided: the reservation stays", false, false, true},
           {"no proposal with the entry, known committed: applied as a commit", false, true,
            false}}) {
    SCOPED_TRACE(c.name);
    Pump pump(kOneByThree);
    const ProposalId holder{"a3", 1, 4, 0, 1};
    pump.Call("a1", HandleRequest{ReserveOp{"k", "v", holder, 3, 1, kTestGeneration}});
    pump.Run();
    if (c.names_proposal) {
      // The commit of `holder` reached a2 only.
      pump.Call("a2", HandleRequest{CommitOp{"k", "v", holder, 3}});
    } else {
      // As stored by a build that kept no proposal with an entry.
      pump.store("a2").Apply(PutCommitted{"k", "v", 3, {}});
    }
    if (c.decision_known) {
      // a1 learns the decision without the commit of "k" (a commit of
      // another key of the same proposal stands in for any such path).
      pump.Call("a1", HandleRequest{CommitOp{"elsewhere", "v", holder, 3}});
    }
    pump.Run();
    pump.down = {"a3"};
    pump.StartCatchUp("a1");
    pump.Run();
    if (!pump.engine("a1").caught_up()) {  // asked a3 first; the next round asks a2
      pump.AdvanceTo(pump.now + pump.engine("a1").config().catchup_interval_ms);
    }
    ASSERT_TRUE(pump.engine("a1").caught_up());
    EXPECT_EQ(pump.store("a1").GetCommitted("k"), "v");
    EXPECT_EQ(pump.store("a1").GetEntry("k")->request_id, 3u);
    EXPECT_EQ(pump.store("a1").GetEntry("k")->proposal, c.names_proposal ? holder : ProposalId{});
    EXPECT_EQ(pump.store("a1").reservations().count("k"), c.stays ? 1u : 0u);
    EXPECT_TRUE(pump.violations.empty());
  }
}

TEST(CatchUpRoleTest, TickStartsARoundEveryInterval) {
  Pump pump(kOneByThree, [](EngineConfig& c) { c.catchup_interval_ms = 500; });
  const TimeMs start = pump.now;
  EXPECT_EQ(pump.engine("a1").NextWakeup(), start + 500);
  CommitAt(pump, {"a2"}, "k", "v");
  pump.AdvanceTo(start + 499);
  EXPECT_EQ(pump.engine("a1").stats().catchup_rounds, 0u);
  pump.AdvanceTo(start + 500);
  EXPECT_EQ(pump.engine("a1").stats().catchup_rounds, 1u);
  pump.AdvanceTo(start + 1000);
  EXPECT_EQ(pump.engine("a1").stats().catchup_rounds, 2u);
  // Between them a2 or a3 was asked: either way a2's key reached a3 too.
  pump.AdvanceTo(start + 1500);
  for (const char* p : {"a1", "a3"}) EXPECT_EQ(pump.store(p).GetCommitted("k"), "v") << p;
}

TEST(CatchUpRoleTest, DigestIsTheStoresDigest) {
  Pump pump(kOneByThree);
  CommitAt(pump, {"a2"}, "k", "v");
  uint64_t call = pump.Call("a2", DigestRequest{});
  pump.Run();
  const auto& d = std::get<DigestResponse>(pump.tester_responses.at(call));
  ASSERT_EQ(d.buckets.size(), kDigestBuckets);
  EXPECT_EQ(d.buckets, pump.store("a2").Digest());
  EXPECT_EQ(d.buckets[BucketOf("k")], EntryHash("k", "v"));
}

}  // namespace
}  // namespace replicator::core

namespace replicator::core {
namespace {

// A node that is not a voter yet is caught up only after rounds with a
// majority of the voters: any one voter may have missed a committed key.
TEST(CatchUpRoleTest, ANewNodeIsCaughtUpOnlyFromAMajorityOfVoters) {
  Pump pump({{"a", {"a1", "a2", "a3", "a4"}}}, nullptr, /*learners=*/{"a4"});
  // Each key is committed at two of the three voters (a majority), so no
  // single voter holds both.
  CommitAt(pump, {"a1", "a2"}, "k12", "v");
  CommitAt(pump, {"a2", "a3"}, "k23", "v");
  CommitAt(pump, {"a1", "a3"}, "k13", "v");
  pump.StartCatchUp("a4");
  pump.Run();
  EXPECT_EQ(pump.engine("a4").stats().catchup_rounds, 1u);
  EXPECT_FALSE(pump.engine("a4").caught_up()) << "one voter's word is not enough";
  // The next round, with another voter, starts at once.
  pump.AdvanceTo(pump.now + 1);
  EXPECT_EQ(pump.engine("a4").stats().catchup_rounds, 2u);
  EXPECT_TRUE(pump.engine("a4").caught_up());
  for (const char* k : {"k12", "k23", "k13"}) {
    EXPECT_EQ(pump.store("a4").GetCommitted(k), "v") << k;
  }
  std::set<PeerId> asked;
  for (const Pump::Sent& s : pump.sent) {
    if (s.from == "a4" && std::holds_alternative<DigestRequest>(s.request)) asked.insert(s.to);
  }
  EXPECT_EQ(asked.size(), 2u);
  EXPECT_EQ(asked.count("a4"), 0u);
}

}  // namespace
}  // namespace replicator::core
