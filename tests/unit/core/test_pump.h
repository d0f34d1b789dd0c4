// Test support for the core unit tests: an in-memory store (a
// core::MemoryState) and a tiny message pump wiring engines together (FIFO
// delivery, writes durable at once, down peers unreachable at once). Deliberately minimal; the seeded
// simulator with faults lives in tests/sim. Single-threaded.
#pragma once

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "core/engine.h"
#include "core/memory_state.h"

namespace replicator::core {

// gtest prints configurations readably: "a@2{a1,a2}g1".
inline void PrintTo(const Configuration& c, std::ostream* os) {
  *os << c.cluster << "@" << c.epoch << "{";
  for (size_t i = 0; i < c.voters.size(); ++i) *os << (i ? "," : "") << c.voters[i];
  *os << "}g" << c.generation;
}

}  // namespace replicator::core

namespace replicator::core::testing {

// Durable state of one node, with one hook for planting state behind an
// engine's back.
class MemoryStore : public MemoryState {
 public:
  // Commits (key, value, request_id), replacing a value `key` already has:
  // committed entries are otherwise write-once, so this is how a test makes
  // a corrupt store. The state is rebuilt with the planted entry first.
  void Plant(const Key& key, const Value& value, uint64_t request_id = 0) {
    MemoryState rebuilt;
    rebuilt.Apply(PutCommitted{key, value, request_id, {}});
    for (const auto& [k, e] : committed()) {
      rebuilt.Apply(PutCommitted{k, e.value, e.request_id, e.proposal});
    }
    for (const auto& [k, r] : reservations()) rebuilt.Apply(PutReservation{r});
    for (const auto& [p, a] : acceptors()) rebuilt.Apply(PutAcceptor{a, false});
    MemoryState::operator=(std::move(rebuilt));
  }
};

// The federation generation a test's hand-built reserves carry: no test
// engine's is higher, so none refuses them for it (core/federation.h).
inline constexpr uint64_t kTestGeneration = 100;

inline EngineConfig ConfigFor(const PeerId& self, const ClusterId& cluster, uint64_t seed = 1) {
  EngineConfig c;
  c.self = self;
  c.cluster = cluster;
  c.incarnation = 1;
  c.random_seed = seed;
  c.check_invariants = true;  // every input of every test engine
  c.auto_promote = false;     // the membership tests turn it on
  return c;
}

// `n` keys that share one digest bucket, in key order.
inline std::vector<Key> KeysInOneBucket(size_t n) {
  const uint32_t bucket = BucketOf("x0");
  std::vector<Key> keys;
  for (int i = 0; keys.size() < n; ++i) {
    Key k = "x" + std::to_string(i);
    if (BucketOf(k) == bucket) keys.push_back(k);
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

// `clusters` maps a cluster id to its members; all but `learners` are its
// founding voters (epoch 1), as the directory names them once a cluster has
// 3. A cluster with fewer is not founded. Founded clusters get generations
// 1, 2, ... in id order, as if founded in that order.
inline Topology MakeTopology(const std::map<ClusterId, std::vector<PeerId>>& clusters,
                             const std::set<PeerId>& learners = {}) {
  Topology t;
  uint64_t generation = 0;
  for (const auto& [cluster, peers] : clusters) {
    std::vector<PeerId> voters;
    for (const PeerId& p : peers) {
      const bool learner = learners.contains(p);
      t.members.push_back(
          Member{p, cluster, p + ":1", learner ? PeerState::kCatchingUp : PeerState::kVoter});
      if (!learner) voters.push_back(p);
    }
    std::sort(voters.begin(), voters.end());
    if (voters.size() >= 3) {
      t.founding.push_back(Configuration{cluster, 1, std::move(voters), ++generation});
    }
  }
  return t;
}

// The peer a request made by a test stands for: the proposal's coordinator
// (reserve, commit, abort, forward) or the ballot's proposer (prepare,
// accept, configuration votes), so that admission (core/admission.h)
// takes it; "a2" for any other request.
inline PeerId NaturalSender(const Request& request) {
  if (const auto* h = std::get_if<HandleRequest>(&request)) {
    return std::visit([](const auto& op) { return op.proposal.coordinator; }, h->op);
  }
  if (const auto* f = std::get_if<ForwardRequest>(&request)) {
    return std::visit([](const auto& op) { return op.proposal.coordinator; }, f->op);
  }
  if (const auto* p = std::get_if<PrepareRequest>(&request)) return p->ballot.proposer;
  if (const auto* a = std::get_if<AcceptRequest>(&request)) return a->ballot.proposer;
  if (const auto* c = std::get_if<ConfigPrepareRequest>(&request)) return c->ballot.proposer;
  if (const auto* c = std::get_if<ConfigAcceptRequest>(&request)) return c->ballot.proposer;
  return "a2";
}

// Engines joined by FIFO delivery. The pseudo-peer kTester issues requests
// from the test itself and collects their responses.
class Pump {
 public:
  static constexpr const char* kTester = "tester";

  // `tweak`, if set, adjusts every engine's config.
  // `learners` are members but not founding voters.
  // `hidden` clusters are founded, but only their own nodes know it yet:
  // every other node is shown the membership without them (see Show), and
  // nothing settles before the test begins.
  // `unfounded` clusters have members but no founding set: the older
  // clusters found them by consensus (core/founding.h).
  explicit Pump(const std::map<ClusterId, std::vector<PeerId>>& clusters,
                const std::function<void(EngineConfig&)>& tweak = nullptr,
                const std::set<PeerId>& learners = {}, const std::set<ClusterId>& hidden = {},
                const std::set<ClusterId>& unfounded = {}) {
    topology_ = MakeTopology(clusters, learners);
    std::erase_if(topology_.founding,
                  [&](const Configuration& c) { return unfounded.contains(c.cluster); });
    uint64_t seed = 1;
    for (const auto& [cluster, peers] : clusters) {
      for (const PeerId& p : peers) {
        Node& n = nodes_[p];
        n.store = std::make_unique<MemoryStore>();
        n.config = ConfigFor(p, cluster, seed++);
        if (tweak) tweak(n.config);
        n.engine = std::make_unique<Engine>(n.config, n.store.get(), DurableState{});
        n.engine->SetTopology(hidden.contains(cluster) ? topology_ : Without(hidden), now);
      }
    }
    for (auto& [p, n] : nodes_) Collect(p);
    if (!hidden.empty()) return;
    // The clusters were founded in order before the test begins: a younger
    // one settles with the federation (core/federation.h) while every store
    // is still empty, so that a test starts from settled engines and sees
    // only its own messages.
    Run();
    // Each settle round starts the next one at the next tick.
    for (int i = 0; i < 16 && !AllSettled(); ++i) AdvanceTo(now);
    sent.clear();
  }

  // The whole membership without `clusters` (members and founding sets).
  Topology Without(const std::set<ClusterId>& clusters) const {
    Topology t;
    for (const Member& m : topology_.members) {
      if (!clusters.contains(m.cluster)) t.members.push_back(m);
    }
    for (const Configuration& f : topology_.founding) {
      if (!clusters.contains(f.cluster)) t.founding.push_back(f);
    }
    return t;
  }
  // Shows `p` the membership `t` (by default the whole one).
  void Show(const PeerId& p, std::optional<Topology> t = std::nullopt) {
    engine(p).SetTopology(t ? *t : topology_, now);
    Collect(p);
  }
  // A crash and restart of `p`: a new engine (the next incarnation) from
  // its store, shown the whole membership unless `show` is false.
  void Restart(const PeerId& p, bool show = true) {
    Node& n = nodes_.at(p);
    n.config.incarnation++;
    n.engine = std::make_unique<Engine>(n.config, n.store.get(), n.store->Recover());
    if (show) n.engine->SetTopology(topology_, now);
    Collect(p);
  }

  Engine& engine(const PeerId& p) { return *nodes_.at(p).engine; }
  bool AllSettled() {
    for (auto& [p, n] : nodes_) {
      if (!n.engine->stats().federation_settled) return false;
    }
    return true;
  }
  MemoryStore& store(const PeerId& p) { return *nodes_.at(p).store; }
  const Topology& topology() const { return topology_; }

  // Requests to a down peer, or that `cut` selects, fail at once with
  // Unreachable.
  std::set<PeerId> down;
  std::function<bool(const PeerId& from, const PeerId& to, const Request&)> cut;
  // When set, alters each response before its caller gets it, knowing the
  // request it answers (say, to answer as an older build would).
  std::function<void(const Request&, Response&)> rewrite;
  // Requests that `hold` selects wait, undelivered, until Release().
  std::function<bool(const PeerId& from, const PeerId& to, const Request&)> hold;
  void Release() {
    hold = nullptr;
    for (auto& step : held_) queue_.push_back(std::move(step));
    held_.clear();
  }
  TimeMs now = 1000;
  std::map<uint64_t, PutOutcome> puts;
  std::map<uint64_t, PutTimings> put_timings;
  int duplicate_put_dones = 0;  // a second PutDone for one put_id: a contract bug
  std::map<uint64_t, GetOutcome> gets;
  std::map<uint64_t, ChangeOutcome> changes;
  std::vector<ViolationEffect> violations;
  // Every request sent, in order: (from, to, request).
  struct Sent {
    PeerId from;
    PeerId to;
    Request request;
  };
  std::vector<Sent> sent;
  // Responses to requests issued with Call(), by tester call id.
  std::map<uint64_t, Response> tester_responses;

  void StartPut(const PeerId& at, uint64_t put_id, Key key, Value value,
                uint64_t request_id = 0) {
    engine(at).StartPut(put_id, std::move(key), std::move(value), request_id, now);
    Collect(at);
  }
  void ChangeMembership(const PeerId& at, uint64_t change_id, MembershipChange change) {
    engine(at).ChangeMembership(change_id, std::move(change), now);
    Collect(at);
  }
  void StartCatchUp(const PeerId& at) {
    engine(at).StartCatchUp(now);
    Collect(at);
  }
  void StartGet(const PeerId& at, uint64_t get_id, Key key, Consistency c) {
    engine(at).StartGet(get_id, std::move(key), c, now);
    Collect(at);
  }
  // Sends `request` from the tester to `to`; the response lands in
  // tester_responses[returned id] once Run() delivers it.
  uint64_t Call(const PeerId& to, Request request) {
    uint64_t id = next_tester_call_++;
    Deliver(kTester, id, to, std::move(request));
    return id;
  }

  // When set, Run() delivers in a seeded random order instead of FIFO.
  std::mt19937_64* shuffle = nullptr;

  // Delivers until nothing is in flight.
  void Run() {
    while (!queue_.empty()) {
      size_t i = 0;
      if (shuffle != nullptr) i = (*shuffle)() % queue_.size();
      std::function<void()> step = std::move(queue_[i]);
      queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(i));
      step();
    }
  }

  // Runs until no engine has timed work left or `limit` ms passed; ticks
  // engines at their NextWakeup.
  void RunUntilQuiet(TimeMs limit = 60000) {
    Run();
    TimeMs end = now + limit;
    while (true) {
      std::optional<TimeMs> next;
      for (auto& [p, n] : nodes_) {
        if (down.count(p)) continue;
        std::optional<TimeMs> w = n.engine->NextWakeup();
        if (w && (!next || *w < *next)) next = w;
      }
      if (!next || *next > end) return;
      AdvanceTo(*next);
    }
  }

  void AdvanceTo(TimeMs t) {
    if (t > now) now = t;
    for (auto& [p, n] : nodes_) {
      if (down.count(p)) continue;
      n.engine->Tick(now);
      Collect(p);
    }
    Run();
  }

 private:
  struct Node {
    std::unique_ptr<MemoryStore> store;
    EngineConfig config;
    std::unique_ptr<Engine> engine;
  };
  struct Caller {
    PeerId peer;
    uint64_t call_id;
    std::shared_ptr<const Request> request;  // kept only while `rewrite` is set
  };

  void Deliver(const PeerId& from, uint64_t call_id, const PeerId& to, Request request) {
    sent.push_back(Sent{from, to, request});
    if (down.count(to) || !nodes_.count(to) || (cut && cut(from, to, request))) {
      queue_.push_back([this, from, call_id, to] {
        Answer(Caller{from, call_id, nullptr}, Unreachable{to + " is down"});
      });
      return;
    }
    const bool held = hold && hold(from, to, request);
    (held ? held_ : queue_).push_back([this, from, call_id, to,
                                       request = std::move(request)]() mutable {
      uint64_t inbound = next_inbound_++;
      inbound_[inbound] =
          Caller{from, call_id, rewrite ? std::make_shared<const Request>(request) : nullptr};
      const Sender sender{from == kTester ? NaturalSender(request) : from, true};
      engine(to).OnRequest(inbound, std::move(request), now, sender);
      Collect(to);
    });
  }

  void Answer(const Caller& caller, Response response) {
    if (rewrite && caller.request) rewrite(*caller.request, response);
    if (caller.peer == kTester) {
      tester_responses[caller.call_id] = std::move(response);
      return;
    }
    if (down.count(caller.peer)) return;
    engine(caller.peer).OnResponse(caller.call_id, std::move(response), now);
    Collect(caller.peer);
  }

  void Collect(const PeerId& p) {
    Engine& e = engine(p);
    for (Effect& fx : e.TakeEffects()) {
      if (auto* s = std::get_if<SendEffect>(&fx)) {
        Deliver(p, s->call_id, s->to, std::move(s->request));
      } else if (auto* r = std::get_if<RespondEffect>(&fx)) {
        auto it = inbound_.find(r->inbound_id);
        if (it == inbound_.end()) continue;
        Caller caller = it->second;
        inbound_.erase(it);
        queue_.push_back([this, caller, resp = std::move(r->response)]() mutable {
          Answer(caller, std::move(resp));
        });
      } else if (auto* w = std::get_if<WriteEffect>(&fx)) {
        store(p).Apply(w->batch);
        e.OnWriteDone(w->write_id, now);
        Collect(p);
      } else if (auto* pd = std::get_if<PutDoneEffect>(&fx)) {
        if (puts.count(pd->put_id)) ++duplicate_put_dones;
        puts[pd->put_id] = pd->outcome;
        put_timings[pd->put_id] = pd->timings;
      } else if (auto* gd = std::get_if<GetDoneEffect>(&fx)) {
        gets[gd->get_id] = gd->outcome;
      } else if (auto* v = std::get_if<ViolationEffect>(&fx)) {
        violations.push_back(*v);
      } else if (auto* c = std::get_if<ChangeDoneEffect>(&fx)) {
        changes[c->change_id] = c->outcome;
      }
    }
  }

  Topology topology_;
  std::map<PeerId, Node> nodes_;
  std::deque<std::function<void()>> queue_;
  std::deque<std::function<void()>> held_;
  std::map<uint64_t, Caller> inbound_;
  uint64_t next_inbound_ = 1;
  uint64_t next_tester_call_ = 1;
};

}  // namespace replicator::core::testing
