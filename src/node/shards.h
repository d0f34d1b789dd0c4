// Shards: the engines of one node (--shards; core/shard.h, docs/design.md
// "Shards"). Each shard is a whole engine over the keys of its bucket
// range, with its own storage, its own connections to the same shard of
// every peer (PeerNetwork) and its own driver; the node's directory,
// servers and status see them through this class. Owned by Node::Impl;
// reactor thread only.
//
//   Shards shards(ctx, std::move(opened), failpoints);
//   shards.For(key).driver().Put(...);       // a client's put, to its shard
//   shards.ChangeMembership(change, done);   // every shard, one answer
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "core/engine.h"
#include "core/shard.h"
#include "node/engine_driver.h"
#include "node/failpoints.h"
#include "node/node_context.h"
#include "node/peer_network.h"
#include "storage/storage.h"

namespace replicator::node {

class Shard {
 public:
  // `storage` outlives the shard's use of it (EngineDriver).
  Shard(const NodeContext& ctx, core::ShardRange range, storage::Storage* storage,
        core::DurableState recovered, uint64_t incarnation, Failpoints& failpoints);

  core::ShardRange range() const { return range_; }
  EngineDriver& driver() { return driver_; }
  const EngineDriver& driver() const { return driver_; }
  PeerNetwork& network() { return network_; }
  storage::Storage& storage() const { return *storage_; }

 private:
  core::ShardRange range_;
  storage::Storage* storage_;
  PeerNetwork network_;
  EngineDriver driver_;
};

// What each shard's storage opened with, in shard order.
struct OpenedShard {
  storage::Storage* storage = nullptr;
  core::DurableState recovered;
  uint64_t incarnation = 0;
};

class Shards {
 public:
  Shards(const NodeContext& ctx, std::vector<OpenedShard> opened, Failpoints& failpoints);

  uint32_t count() const { return static_cast<uint32_t>(shards_.size()); }
  Shard& at(uint32_t i) { return *shards_.at(i); }
  const Shard& at(uint32_t i) const { return *shards_.at(i); }
  // The shard that owns `key` (core::ShardOf).
  Shard& For(const core::Key& key) { return *shards_[core::ShardOf(key, count())]; }

  // The directory's map, to every shard's engine and network.
  void SetMembers(const std::vector<core::Member>& members);
  void SetTopology(const core::Topology& topology);
  void StartCatchUp();
  // Whether `peer` is a voter in every shard's newest configuration of its
  // cluster: a node shows itself a voter once every shard promoted it.
  bool VoterEverywhere(const core::PeerId& peer) const;

  // Makes `change` in every shard, each by its own consensus; `done` runs
  // once, with CombineChangeOutcomes of theirs.
  void ChangeMembership(const core::MembershipChange& change,
                        std::function<void(core::ChangeOutcome)> done);

  // Shard 0's configurations: the node's, as status shows them.
  const core::Configuration& configuration() const { return at(0).driver().configuration(); }
  std::vector<core::Configuration> configurations() const {
    return at(0).driver().configurations();
  }
  // The shards' engine counters summed; the membership and federation
  // fields are shard 0's, `federation_settled` holds only if every shard's
  // does.
  core::EngineStats stats() const;

  // Shutdown: every driver answers what waits, every network drops its
  // queue and connections.
  void Shutdown();
  void DropQueued();
  void Disconnect();

 private:
  std::vector<std::unique_ptr<Shard>> shards_;
};

// One answer to a membership change made in every shard:
// - every shard chose it (or, in a shard that an earlier try changed
//   already, finds it made: the outcome's configuration shows it): ok,
//   with shard 0's configuration;
// - every shard refused it alike: shard 0's answer, as a node of one shard
//   gives;
// - else the first shard's failure, naming the shard and how many shards
//   have the change, so that the operator retries to finish it.
core::ChangeOutcome CombineChangeOutcomes(const core::MembershipChange& change,
                                          std::vector<core::ChangeOutcome> outcomes);

}  // namespace replicator::node
