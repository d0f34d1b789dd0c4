#include "node/shards.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "net/reactor.h"

namespace replicator::node {

Shard::Shard(const NodeContext& node, net::Reactor& reactor, core::ShardRange range,
             storage::Storage* storage, core::DurableState recovered, uint64_t incarnation)
    : range_(range),
      ctx_{reactor,        node.options, node.identity, node.address,
           node.shut_down, node.alive,   metrics_},
      failpoints_(node.options.failpoint, node.identity.peer_id),
      // The network's answers go to the driver, constructed just below and
      // before any call can be sent.
      network_(ctx_, range,
               [this](const std::vector<core::SendEffect>& calls,
                      std::vector<core::Response> responses) {
                 driver_.OnResponses(calls, std::move(responses));
               }),
      driver_(ctx_, range, storage, std::move(recovered), incarnation, network_, failpoints_) {}

// A shard and, with more than one, the thread whose reactor it lives on.
struct Shards::Host {
  // Set once the shard exists; on the thread's reactor, or the node's.
  Shard* shard = nullptr;
  net::Reactor* reactor = nullptr;
  std::unique_ptr<Shard> owned;  // on the node's reactor
  std::thread thread;            // its own reactor's, or none
  std::promise<void> ready;      // the shard exists
  std::promise<void> stopped;    // the thread left its reactor's Run
  std::promise<void> release;    // the thread may destroy the shard
  bool running = false;
};

Shards::Shards(const NodeContext& ctx, std::vector<OpenedShard> opened)
    : node_executor_(ctx.io().get_executor()) {
  const uint32_t n = static_cast<uint32_t>(opened.size());
  for (uint32_t i = 0; i < n; ++i) {
    auto host = std::make_unique<Host>();
    const core::ShardRange range{i, n};
    if (n == 1) {
      host->owned = std::make_unique<Shard>(ctx, ctx.reactor, range, opened[i].storage,
                                            std::move(opened[i].recovered), opened[i].incarnation);
      host->shard = host->owned.get();
      host->reactor = &ctx.reactor;
    } else {
      // The reactor and the shard are made, run and destroyed on the
      // thread (a KJ loop belongs to one thread).
      Host* h = host.get();
      std::future<void> started = h->ready.get_future();
      h->running = true;
      h->thread = std::thread([h, &ctx, range, shard = std::move(opened[i])]() mutable {
        net::Reactor reactor;
        {
          Shard s(ctx, reactor, range, shard.storage, std::move(shard.recovered),
                  shard.incarnation);
          h->shard = &s;
          h->reactor = &reactor;
          h->ready.set_value();
          reactor.Run();
          h->stopped.set_value();
          h->release.get_future().wait();
        }
      });
      started.wait();
    }
    hosts_.push_back(std::move(host));
  }
}

Shards::~Shards() {
  Stop();
  for (auto& h : hosts_) {
    if (!h->thread.joinable()) continue;
    h->release.set_value();
    h->thread.join();
  }
}

bool Shards::Threaded(uint32_t shard) const { return hosts_[shard]->thread.joinable(); }
Shard& Shards::ShardAt(uint32_t shard) { return *hosts_[shard]->shard; }
asio::io_context& Shards::IoOf(uint32_t shard) { return hosts_[shard]->reactor->io(); }

void Shards::Post(uint32_t shard, std::function<void(Shard&)> fn) {
  if (!Threaded(shard)) {
    fn(ShardAt(shard));
    return;
  }
  asio::post(IoOf(shard), [fn = std::move(fn), s = &ShardAt(shard)] { fn(*s); });
}

void Shards::SetMembers(const std::vector<core::Member>& members) {
  for (uint32_t i = 0; i < count(); ++i) {
    Post(i, [members](Shard& s) { s.network().SetMembers(members); });
  }
}

void Shards::SetTopology(const core::Topology& topology) {
  for (uint32_t i = 0; i < count(); ++i) {
    Post(i, [topology](Shard& s) { s.driver().SetTopology(topology); });
  }
}

void Shards::StartCatchUp() {
  for (uint32_t i = 0; i < count(); ++i) {
    Post(i, [](Shard& s) { s.driver().StartCatchUp(); });
  }
}

bool Shards::VoterEverywhere(const core::PeerId& peer) {
  for (uint32_t i = 0; i < count(); ++i) {
    if (!Query(i, [&peer](Shard& s) { return s.driver().configuration().Has(peer); })) {
      return false;
    }
  }
  return true;
}

core::Configuration Shards::configuration() {
  return Query(0, [](Shard& s) { return s.driver().configuration(); });
}

std::vector<core::Configuration> Shards::configurations() {
  return Query(0, [](Shard& s) { return s.driver().configurations(); });
}

void Shards::ChangeMembership(const core::MembershipChange& change,
                              std::function<void(core::ChangeOutcome)> done) {
  if (count() == 1) {
    ShardAt(0).driver().ChangeMembership(change, std::move(done));
    return;
  }
  struct Pending {
    core::MembershipChange change;
    std::function<void(core::ChangeOutcome)> done;
    std::vector<core::ChangeOutcome> outcomes;
    size_t left = 0;
  };
  auto pending = std::make_shared<Pending>(
      Pending{change, std::move(done), std::vector<core::ChangeOutcome>(count()), count()});
  for (uint32_t i = 0; i < count(); ++i) {
    // Each shard's answer comes back to the node's reactor, where the last
    // one combines them.
    asio::any_io_executor back = node_executor_;
    Post(i, [pending, i, change, back](Shard& s) {
      s.driver().ChangeMembership(change, [pending, i, back](core::ChangeOutcome o) {
        asio::post(back, [pending, i, o = std::move(o)]() mutable {
          pending->outcomes[i] = std::move(o);
          if (--pending->left > 0) return;
          pending->done(CombineChangeOutcomes(pending->change, std::move(pending->outcomes)));
        });
      });
    });
  }
}

core::EngineStats Shards::stats() {
  core::EngineStats total = Query(0, [](Shard& s) { return s.driver().stats(); });
  for (uint32_t i = 1; i < count(); ++i) {
    const core::EngineStats s = Query(i, [](Shard& sh) { return sh.driver().stats(); });
    total.reservations += s.reservations;
    total.puts_ok += s.puts_ok;
    total.puts_key_exists += s.puts_key_exists;
    total.puts_conflict += s.puts_conflict;
    total.puts_unavailable += s.puts_unavailable;
    total.puts_outcome_unknown += s.puts_outcome_unknown;
    total.puts_invalid += s.puts_invalid;
    total.put_retries += s.put_retries;
    total.puts_joined += s.puts_joined;
    total.gets += s.gets;
    total.safety_violations += s.safety_violations;
    total.catchup_rounds += s.catchup_rounds;
    total.catchup_keys_pulled += s.catchup_keys_pulled;
    total.catchup_pulls += s.catchup_pulls;
    total.stale_epoch_refusals += s.stale_epoch_refusals;
    total.federation_settled = total.federation_settled && s.federation_settled;
    total.generation_refusals += s.generation_refusals;
    total.reads_not_ready += s.reads_not_ready;
    total.ballot_refusals += s.ballot_refusals;
    total.acceptor_records_dropped += s.acceptor_records_dropped;
    total.sender_refusals += s.sender_refusals;
    total.shard_refusals += s.shard_refusals;
    total.unverified_violation_reports += s.unverified_violation_reports;
    total.orphan_reservations_dropped += s.orphan_reservations_dropped;
  }
  return total;
}

void Shards::AddMetrics(NodeMetrics& total) {
  for (uint32_t i = 0; i < count(); ++i) {
    Query(i, [&total](Shard& s) {
      total.Add(s.metrics());
      return true;
    });
  }
}

void Shards::Shutdown() {
  for (uint32_t i = 0; i < count(); ++i) {
    Query(i, [](Shard& s) {
      s.driver().Shutdown();
      s.network().DropQueued();
      s.network().Disconnect();
      return true;
    });
  }
}

void Shards::Stop() {
  for (auto& h : hosts_) {
    if (!h->running) continue;
    h->running = false;
    h->reactor->Stop();
    h->stopped.get_future().wait();
  }
}

namespace {

// Whether a shard that refused `change` as invalid holds it made already:
// a promotion of a peer its configuration has, a removal of one it lacks.
bool FoundMade(const core::MembershipChange& change, const core::ChangeOutcome& o) {
  if (o.kind != core::ChangeOutcome::Kind::kInvalidArgument || o.config.epoch == 0) return false;
  switch (change.kind) {
    case core::MembershipChange::Kind::kAdd:
      return o.config.Has(change.peer);
    case core::MembershipChange::Kind::kRemove:
      return !o.config.Has(change.peer);
    case core::MembershipChange::Kind::kRemoveCluster:
      return false;
  }
  return false;
}

}  // namespace

core::ChangeOutcome CombineChangeOutcomes(const core::MembershipChange& change,
                                          std::vector<core::ChangeOutcome> outcomes) {
  if (outcomes.size() == 1) return std::move(outcomes[0]);
  size_t chosen = 0;
  size_t made = 0;
  std::optional<size_t> failed;
  bool alike = true;
  for (size_t i = 0; i < outcomes.size(); ++i) {
    alike = alike && outcomes[i].kind == outcomes[0].kind;
    if (outcomes[i].kind == core::ChangeOutcome::Kind::kOk) {
      ++chosen;
    } else if (FoundMade(change, outcomes[i])) {
      ++made;
    } else if (!failed) {
      failed = i;
    }
  }
  if (!failed) {
    // Every shard has it: chosen now by some, or by an earlier try. A
    // change every shard found made is refused as one shard refuses it.
    if (chosen == 0) return std::move(outcomes[0]);
    return core::ChangeOutcome{core::ChangeOutcome::Kind::kOk, "", std::move(outcomes[0].config)};
  }
  if (alike && chosen == 0 && made == 0) return std::move(outcomes[0]);
  core::ChangeOutcome out = std::move(outcomes[*failed]);
  out.message = absl::StrCat("shard ", *failed, " of ", outcomes.size(), ": ", out.message, " (",
                             chosen + made, " of ", outcomes.size(),
                             " shards have the change; retry it to finish)");
  return out;
}

}  // namespace replicator::node
