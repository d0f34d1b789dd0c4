// DirectoryService: this node's copy of the federation's member map, which
// every node keeps, serves (Directory.join) and passes on by gossip. The
// map's entries and merge rules are in directory_state.h; this part keeps
// it durable in the data dir, registers the nodes that join here, merges
// the maps peers send, tells every watcher registered here of each change,
// pings them every 2 s (showing a silent one down: a local liveness hint,
// never passed on), keeps this node's own entry current (its address and
// its claim to vote), and hands the map to the engine and the network.
// Founding sets are named here only on the node that started the
// federation. Owned by Node::Impl; reactor thread only.
#pragma once

#include <asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine.h"
#include "node/directory_state.h"
#include "node/node_context.h"
#include "node/shards.h"
#include "schema/replicator.capnp.h"

namespace replicator::node {

class DirectoryService {
 public:
  DirectoryService(const NodeContext& ctx, Shards& shards);

  // Takes this node's own entry (its address must be known: call after
  // listening) and loads the map this node had before a restart from its
  // data dir (every other node shown down until it registers here again).
  // Returns whether there was one: a node without one is new and must join
  // a federation (or start one) before Run. Fails, naming the file, if it
  // cannot be read.
  absl::StatusOr<bool> Load();
  // Starts a new federation with this node as its first member and the
  // namer of founding sets (a new node started without --bootstrap).
  void StartFederation();
  // Registers this node's own entry (address and claim, newly stamped),
  // makes the map durable, hands it to the engine and starts the loops.
  // Fails, naming the file, if the map cannot be written.
  absl::Status Run();

  // A node joining here: its entry, the federation it belongs to (0: none
  // yet), its shard count (0 from a build without shards: 1; refused unless
  // this node's) and its watcher. Returns the whole map (Entries()).
  absl::StatusOr<std::vector<Entry>> Join(Entry joining, uint64_t federation, uint32_t shards,
                                          wire::Watcher::Client watcher);
  // A map from the peer at `from` (a join reply or a notification): merged
  // into this one, and passed on if anything was new; an entry or founding
  // set that contradicts this map is logged and skipped. Fails, taking
  // nothing, when it is of another federation or cannot be made durable.
  absl::Status OnMap(const std::vector<Entry>& entries,
                     const std::vector<core::Configuration>& founding, uint64_t federation,
                     const std::string& from);

  // Every member, in the state shown to the engine, `status` and `member
  // list`: ShownState, and a voter that has not registered here or stopped
  // answering pings shown down. Ordered by id.
  std::vector<core::Member> Members() const;
  // The map as gossiped: each member's own claim and stamp.
  const std::vector<Entry>& Entries() const { return state_.members; }
  const std::vector<core::Configuration>& founding() const { return state_.founding; }
  uint64_t federation() const { return state_.federation; }
  uint64_t version() const { return version_; }
  // This node's own entry.
  const Entry& self() const { return self_; }

 private:
  struct Watch {
    wire::Watcher::Client watcher;
    uint64_t generation = 0;  // which join it came from
    bool down = false;        // its last ping or notification failed
  };

  // The claim this node's entry makes: a voter when its cluster's newest
  // configuration it knows includes it, else catching up.
  core::PeerState Claim() const;
  // Stamps `self_` afresh (higher than any stamp seen for it) and merges it
  // into `next`.
  void RestampSelf(DirectoryState& next);
  // Whether to restamp this node's entry above `seen`, an entry for this
  // node's id that looks newer than its own.
  bool OutStampOldRun(const Entry& seen);
  // Merges `e` into `next` and, on the namer, founds its cluster if it is
  // now due.
  absl::StatusOr<bool> Merge(DirectoryState& next, const Entry& e);
  // Makes `next` the map: durable first (nothing changes if that fails),
  // then handed to the engine, then told to every watcher (on the next
  // handler, so changes coalesce).
  absl::Status Commit(DirectoryState next);
  void Publish();
  asio::awaitable<void> Broadcast(std::weak_ptr<bool> token);
  asio::awaitable<void> Notify(std::weak_ptr<bool> token, core::PeerId id, uint64_t generation,
                               wire::Watcher::Client watcher);
  asio::awaitable<void> Ping(std::weak_ptr<bool> token, core::PeerId id, uint64_t generation,
                             wire::Watcher::Client watcher);
  // A call to the watcher registered by `id` at `generation` failed or
  // succeeded. Only that registration: the node may have joined again.
  void SetDown(const core::PeerId& id, uint64_t generation, bool down);
  asio::awaitable<void> WatchHealth(std::weak_ptr<bool> token);
  // Restamps this node's entry whenever its claim changes.
  asio::awaitable<void> WatchSelf(std::weak_ptr<bool> token);

  const NodeContext& ctx_;
  Shards& shards_;
  DirectoryState state_;
  Entry self_;
  uint64_t version_ = 0;  // changes to state_ since start
  std::map<core::PeerId, Watch> watches_;
  uint64_t watch_generation_ = 0;
  bool broadcast_pending_ = false;
  std::chrono::steady_clock::time_point last_foreign_restamp_;
  std::string persisted_;  // the membership file's contents as last written
};

// PeerInfo with its stamp, both ways.
Entry EntryFromWire(wire::PeerInfo::Reader m);
void ToWire(const Entry& e, wire::PeerInfo::Builder out);
std::vector<Entry> EntriesFromWire(capnp::List<wire::PeerInfo>::Reader list);
void ToWire(const std::vector<Entry>& entries, capnp::List<wire::PeerInfo>::Builder out);

}  // namespace replicator::node
