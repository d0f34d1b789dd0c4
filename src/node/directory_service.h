// DirectoryService: the membership directory, served by the bootstrap peer
// only, kept in memory and in its data dir. Registers joining nodes as
// voters or catching up (directory_state.h has the rules), names each
// cluster's founding configuration once, tells every watcher of each
// change, and pings watchers every 2 s, showing a silent one down. It
// decides no promotion: beyond the founding set, voters come and go by
// consensus, and each node says which it is. Owned by Node::Impl; reactor
// thread only.
#pragma once

#include <asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "core/engine.h"
#include "node/directory_client.h"
#include "node/directory_state.h"
#include "node/node_context.h"
#include "schema/replicator.capnp.h"

namespace replicator::node {

class DirectoryService {
 public:
  // This node's own membership view is `membership`, fed on every change.
  DirectoryService(const NodeContext& ctx, DirectoryClient& membership);

  // Loads the registrations and founding sets this directory had before a
  // restart (from the data dir; each member shown down until it joins
  // again), founds every cluster that has 3 voters and no founding set
  // (a file from before founding sets), registers this node itself as any
  // joiner and starts watching health and this node's own state. Fails,
  // naming the file, if the saved membership cannot be read or written.
  absl::Status Start();

  // `member.state` is what the joiner claims: voter or catching up.
  absl::StatusOr<std::vector<core::Member>> Join(core::Member member,
                                                 wire::Watcher::Client watcher);
  // Every registration; a voter whose watcher stopped answering shows down.
  std::vector<core::Member> Members() const;
  // Each cluster's founding configuration, ordered by cluster.
  const std::vector<core::Configuration>& founding() const { return founding_; }
  // The map Members() returns now.
  MapVersion version() const { return version_; }

 private:
  struct Registration {
    core::Member member;                           // state: kVoter or kCatchingUp
    std::optional<wire::Watcher::Client> watcher;  // empty for this node itself
    bool down = false;                             // its watcher stopped answering
    uint64_t generation = 0;                       // which join `watcher` came from
  };

  // Registers `member` in the state it has (RegisteredState), founding its
  // cluster if it is the third voter, durably, then tells everyone.
  absl::Status Register(core::Member member, std::optional<wire::Watcher::Client> watcher);
  // Makes `state` (members ordered by id) durable, unless it is what was
  // last written. Every change is durable before anyone hears of it.
  absl::Status Persist(const DirectoryState& state);
  void Broadcast();
  asio::awaitable<void> Notify(std::weak_ptr<bool> token, core::PeerId id, uint64_t generation,
                               wire::Watcher::Client watcher, std::vector<core::Member> members,
                               std::vector<core::Configuration> founding, MapVersion version);
  asio::awaitable<void> Ping(std::weak_ptr<bool> token, core::PeerId id, uint64_t generation,
                             wire::Watcher::Client watcher);
  // Shows a registration down when a call to its watcher failed, and up
  // again when one succeeds. The watcher is kept either way: a node that
  // was paused hears every later change once it runs again.
  void MarkDown(const core::PeerId& id, uint64_t generation);
  void MarkUp(const core::PeerId& id, uint64_t generation);
  asio::awaitable<void> WatchHealth(std::weak_ptr<bool> token);
  // Registers this node again whenever the state it claims changes (it
  // has no watcher to join with).
  asio::awaitable<void> WatchSelf(std::weak_ptr<bool> token);

  const NodeContext& ctx_;
  DirectoryClient& membership_;
  uint64_t registry_generation_ = 0;
  MapVersion version_;  // directory: random per run; version: one per Broadcast
  std::map<core::PeerId, Registration> registry_;
  std::vector<core::Configuration> founding_;  // ordered by cluster; each named once
  std::string persisted_;                      // the membership file's contents as last written
};

}  // namespace replicator::node
