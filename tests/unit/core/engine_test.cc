// The engine's contract as a whole: answers that need no peer, and inputs
// that name nothing in flight.
#include "core/engine.h"

#include <gtest/gtest.h>

#include <set>

#include "fixtures.h"
#include "test_pump.h"

namespace replicator::core {
namespace {

using testing::kAll;
using testing::kTwoByThree;
using testing::OneEngine;
using testing::Pump;


TEST(EngineTest, PutAndGetAnswersThatNeedNoPeer) {
  struct Case {
    std::string name;
    std::map<ClusterId, std::vector<PeerId>> clusters;
    Key key;
    Value value;
    PutOutcome::Kind want;
    std::string message_has;
  };
  const std::map<ClusterId, std::vector<PeerId>> three = {{"a", {"a1", "a2", "a3"}}};
  const std::vector<Case> cases = {
      {"empty key", three, "", "v", PutOutcome::Kind::kInvalidArgument, "key is empty"},
      {"oversized key", three, std::string(1025, 'k'), "v", PutOutcome::Kind::kInvalidArgument,
       "1025 bytes"},
      {"oversized value", three, "k", std::string((1 << 20) + 1, 'v'),
       PutOutcome::Kind::kInvalidArgument, "value is"},
      {"own cluster too small",
       {{"a", {"a1", "a2"}}},
       "k",
       "v",
       PutOutcome::Kind::kUnavailable,
       "cluster a is not founded yet (2 members known; a cluster is founded once it has 3)"},
      {"system key", three, std::string(1, '\0') + "found/00000000000000000002", "v",
       PutOutcome::Kind::kInvalidArgument, "reserved for the system"},
      {"committed locally", three, "done", "v", PutOutcome::Kind::kKeyExists, ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    OneEngine r({}, c.clusters);
    r.store().Plant("done", "old");
    r.engine().StartPut(7, c.key, c.value, 0, r.now);
    std::vector<Effect> fx = r.Take();
    ASSERT_EQ(fx.size(), 1u);
    const auto& done = std::get<PutDoneEffect>(fx[0]);
    EXPECT_EQ(done.put_id, 7u);
    EXPECT_EQ(done.outcome.kind, c.want);
    EXPECT_NE(done.outcome.message.find(c.message_has), std::string::npos) << done.outcome.message;
    if (c.want == PutOutcome::Kind::kKeyExists) {
      EXPECT_EQ(done.outcome.existing, "old");
    }
  }

  {
    // A remote cluster not founded yet counts for nothing: the put goes on
    // with this cluster's voters only (core/founding.h).
    OneEngine r({}, {{"a", {"a1", "a2", "a3"}}, {"eu", {"e1", "e2"}}});
    r.engine().StartPut(8, "k", "v", 0, r.now);
    std::set<PeerId> asked;
    for (const Effect& fx : r.Take()) {
      ASSERT_FALSE(std::holds_alternative<PutDoneEffect>(fx));
      if (auto* send = std::get_if<SendEffect>(&fx)) asked.insert(send->to);
    }
    EXPECT_EQ(asked, (std::set<PeerId>{"a2", "a3"}));
  }

  OneEngine r;
  r.store().Plant("k", "v");
  r.engine().StartGet(1, "k", Consistency::kLocal, r.now);
  r.engine().StartGet(2, "missing", Consistency::kLocal, r.now);
  r.engine().StartGet(3, "", Consistency::kLinearizable, r.now);
  std::vector<Effect> fx = r.Take();
  ASSERT_EQ(fx.size(), 3u);
  EXPECT_EQ(std::get<GetDoneEffect>(fx[0]).outcome.kind, GetOutcome::Kind::kFound);
  EXPECT_EQ(std::get<GetDoneEffect>(fx[0]).outcome.value, "v");
  EXPECT_EQ(std::get<GetDoneEffect>(fx[1]).outcome.kind, GetOutcome::Kind::kNotFound);
  EXPECT_EQ(std::get<GetDoneEffect>(fx[2]).outcome.kind, GetOutcome::Kind::kInvalidArgument);
  EXPECT_EQ(r.engine().stats().gets, 3u);
}

TEST(EngineTest, StrayResponsesAndWritesAreIgnored) {
  OneEngine r;
  r.engine().OnResponse(424242, Unreachable{"late"}, r.now);
  r.engine().OnWriteDone(99, r.now);
  r.engine().Tick(r.now);
  EXPECT_TRUE(r.Take().empty());
}

// A node's calls to itself (its own reserve, accept, commit, read) are
// handled inside the engine: no SendEffect names the node itself, and its
// own vote still counts.
TEST(EngineTest, CallsToItselfNeverLeaveTheEngine) {
  Pump pump(kTwoByThree);
  pump.StartPut("a1", 1, "k", "v");
  pump.RunUntilQuiet();
  ASSERT_EQ(pump.puts.at(1).kind, PutOutcome::Kind::kOk);
  pump.StartGet("a2", 2, "k", Consistency::kLinearizable);
  pump.RunUntilQuiet();
  ASSERT_EQ(pump.gets.at(2).kind, GetOutcome::Kind::kFound);
  ASSERT_FALSE(pump.sent.empty());
  for (const Pump::Sent& s : pump.sent) EXPECT_NE(s.from, s.to) << "request " << s.request.index();
  for (const PeerId& p : kAll) EXPECT_EQ(pump.store(p).GetCommitted("k"), "v") << p;
}

// With a1's peers down, only a1's own vote is in: a majority of three is
// out of reach, so nothing is stored and the reservation a1 made through
// its call to itself is aborted again.
TEST(EngineTest, ASelfVoteAloneIsNoMajority) {
  Pump pump({{"a", {"a1", "a2", "a3"}}});
  pump.down = {"a2", "a3"};
  pump.StartPut("a1", 1, "k", "v");
  pump.RunUntilQuiet();
  EXPECT_EQ(pump.puts.at(1).kind, PutOutcome::Kind::kUnavailable);
  // a1's own vote was counted: its call to itself reserved the key durably.
  EXPECT_NE(pump.puts.at(1).message.find("reserved at 1 of 3 voters"), std::string::npos)
      << pump.puts.at(1).message;
  // ...and its abort, also a call to itself, dropped the reservation again.
  EXPECT_EQ(pump.engine("a1").stats().reservations, 0u);
  EXPECT_TRUE(pump.store("a1").reservations().empty());
  EXPECT_EQ(pump.store("a1").GetEntry("k"), std::nullopt);
}

}  // namespace
}  // namespace replicator::core
