// Fixtures shared by the core role tests: one engine driven directly
// (OneEngine: writes held until the test completes them), the 2 x 3
// deployment of the cluster tests, and stranded reservations. Test-only;
// single-threaded.
#pragma once

#include <deque>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/engine.h"
#include "test_pump.h"

namespace replicator::core::testing {

inline const std::map<ClusterId, std::vector<PeerId>> kTwoByThree = {{"a", {"a1", "a2", "a3"}},
                                                                     {"b", {"b1", "b2", "b3"}}};
inline const std::vector<PeerId> kAll = {"a1", "a2", "a3", "b1", "b2", "b3"};

inline std::string MutationName(const Mutation& m) {
  static const char* kNames[] = {"PutReservation",   "DeleteReservation", "PutCommitted",
                                 "PutAcceptor",      "DeleteAcceptor",    "PutConfig",
                                 "PutConfigAcceptor"};
  return kNames[m.index()];
}

// A single engine "a1" of cluster a = {a1, a2, a3}, with writes held until
// the test completes them.
class OneEngine {
 public:
  explicit OneEngine(DurableState recovered = {},
                   std::map<ClusterId, std::vector<PeerId>> clusters = {{"a", {"a1", "a2", "a3"}}})
      : engine_(ConfigFor("a1", "a"), &store_, std::move(recovered)) {
    engine_.SetTopology(MakeTopology(clusters), now);
    // The founding configuration is adopted durably before the test begins.
    Take();
    CompleteWrites();
    last_writes_.clear();
  }

  Engine& engine() { return engine_; }
  MemoryStore& store() { return store_; }
  TimeMs now = 1000;

  // Hands `request` to the engine, as if from the peer it names
  // (NaturalSender, authenticated); returns its effects. Writes are held.
  std::vector<Effect> Request(core::Request request) {
    const Sender from{NaturalSender(request), true};
    return RequestFrom(from, std::move(request));
  }
  // As Request, from `from`.
  std::vector<Effect> RequestFrom(const Sender& from, core::Request request) {
    engine_.OnRequest(next_inbound_++, std::move(request), now, from);
    return Take();
  }
  // Makes every held write durable, in order; returns the effects.
  std::vector<Effect> CompleteWrites() {
    std::vector<Effect> out;
    while (!held_.empty()) {
      WriteEffect w = std::move(held_.front());
      held_.pop_front();
      store_.Apply(w.batch);
      engine_.OnWriteDone(w.write_id, now);
      for (Effect& fx : Take()) out.push_back(std::move(fx));
    }
    return out;
  }
  // Request, then complete its writes; returns its one response.
  Response Settle(core::Request request) {
    std::vector<Effect> fx = Request(std::move(request));
    for (Effect& e : CompleteWrites()) fx.push_back(std::move(e));
    std::vector<Response> rs = Responses(fx);
    EXPECT_EQ(rs.size(), 1u);
    return rs.empty() ? Response{Unreachable{"none"}} : rs[0];
  }
  std::vector<Effect> Take() {
    std::vector<Effect> out;
    for (Effect& fx : engine_.TakeEffects()) {
      if (auto* w = std::get_if<WriteEffect>(&fx)) {
        held_.push_back(*w);
        last_writes_.push_back(*w);
      }
      out.push_back(std::move(fx));
    }
    return out;
  }
  static std::vector<Response> Responses(const std::vector<Effect>& fx) {
    std::vector<Response> out;
    for (const Effect& e : fx) {
      if (auto* r = std::get_if<RespondEffect>(&e)) out.push_back(r->response);
    }
    return out;
  }
  static std::vector<std::string> Mutations(const std::vector<Effect>& fx) {
    std::vector<std::string> out;
    for (const Effect& e : fx) {
      if (auto* w = std::get_if<WriteEffect>(&e)) {
        for (const Mutation& m : w->batch.mutations) out.push_back(MutationName(m));
      }
    }
    return out;
  }

 private:
  MemoryStore store_;
  Engine engine_;
  uint64_t next_inbound_ = 1;
  std::deque<WriteEffect> held_;
  std::vector<WriteEffect> last_writes_;
};

inline Vote VoteOf(const Response& r) {
  const auto* h = std::get_if<HandleResponse>(&r);
  EXPECT_NE(h, nullptr);
  return h ? h->vote : Vote{};
}

// Reserves `key` for proposal `p` at `peers` as if p's coordinator had run
// the reserve phase and then gone silent.
inline void Strand(Pump& pump, const ProposalId& p, const Key& key, const Value& value,
                   const std::vector<PeerId>& peers) {
  for (const PeerId& peer : peers)
    pump.Call(peer, HandleRequest{ReserveOp{key, value, p, 0, 1, kTestGeneration}});
  pump.Run();
}

}  // namespace replicator::core::testing
