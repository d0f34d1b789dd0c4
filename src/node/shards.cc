#include "node/shards.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"

namespace replicator::node {

Shard::Shard(const NodeContext& ctx, core::ShardRange range, storage::Storage* storage,
             core::DurableState recovered, uint64_t incarnation, Failpoints& failpoints)
    : range_(range),
      storage_(storage),
      // The network's answers go to the driver, constructed just below and
      // before any call can be sent.
      network_(ctx, range,
               [this](const std::vector<core::SendEffect>& calls,
                      std::vector<core::Response> responses) {
                 driver_.OnResponses(calls, std::move(responses));
               }),
      driver_(ctx, range, storage, std::move(recovered), incarnation, network_, failpoints) {}

Shards::Shards(const NodeContext& ctx, std::vector<OpenedShard> opened, Failpoints& failpoints) {
  const uint32_t n = static_cast<uint32_t>(opened.size());
  for (uint32_t i = 0; i < n; ++i) {
    shards_.push_back(std::make_unique<Shard>(ctx, core::ShardRange{i, n}, opened[i].storage,
                                              std::move(opened[i].recovered), opened[i].incarnation,
                                              failpoints));
  }
}

void Shards::SetMembers(const std::vector<core::Member>& members) {
  for (auto& s : shards_) s->network().SetMembers(members);
}

void Shards::SetTopology(const core::Topology& topology) {
  for (auto& s : shards_) s->driver().SetTopology(topology);
}

void Shards::StartCatchUp() {
  for (auto& s : shards_) s->driver().StartCatchUp();
}

bool Shards::VoterEverywhere(const core::PeerId& peer) const {
  for (const auto& s : shards_) {
    if (!s->driver().configuration().Has(peer)) return false;
  }
  return true;
}

void Shards::ChangeMembership(const core::MembershipChange& change,
                              std::function<void(core::ChangeOutcome)> done) {
  if (shards_.size() == 1) {
    shards_[0]->driver().ChangeMembership(change, std::move(done));
    return;
  }
  struct Pending {
    core::MembershipChange change;
    std::function<void(core::ChangeOutcome)> done;
    std::vector<core::ChangeOutcome> outcomes;
    size_t left = 0;
  };
  auto pending = std::make_shared<Pending>(Pending{
      change, std::move(done), std::vector<core::ChangeOutcome>(shards_.size()), shards_.size()});
  // A shard may answer before its ChangeMembership returns.
  for (size_t i = 0; i < shards_.size(); ++i) {
    shards_[i]->driver().ChangeMembership(change, [pending, i](core::ChangeOutcome o) {
      pending->outcomes[i] = std::move(o);
      if (--pending->left > 0) return;
      pending->done(CombineChangeOutcomes(pending->change, std::move(pending->outcomes)));
    });
  }
}

core::EngineStats Shards::stats() const {
  core::EngineStats total = shards_[0]->driver().stats();
  for (size_t i = 1; i < shards_.size(); ++i) {
    const core::EngineStats s = shards_[i]->driver().stats();
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

void Shards::Shutdown() {
  for (auto& s : shards_) s->driver().Shutdown();
}

void Shards::DropQueued() {
  for (auto& s : shards_) s->network().DropQueued();
}

void Shards::Disconnect() {
  for (auto& s : shards_) s->network().Disconnect();
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
