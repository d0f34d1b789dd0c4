// DirectoryService: the membership directory, served by the bootstrap peer
// only and kept in memory. Registers joining nodes as voters or catching
// up, tells every watcher of each change, and pings watchers every 2 s,
// showing a silent one down. Owned by Node::Impl; reactor thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include <asio/awaitable.hpp>

#include "absl/status/statusor.h"
#include "core/engine.h"
#include "node/directory_client.h"
#include "node/node_context.h"
#include "schema/replicator.capnp.h"

namespace replicator::node {

class DirectoryService {
 public:
  // This node's own membership view is `membership`, fed on every change.
  DirectoryService(const NodeContext& ctx, DirectoryClient& membership);

  // Loads the registrations this directory had before a restart (from the
  // data dir; each shown down until it joins again), registers this node
  // itself as a voter and starts watching health. Fails, naming the file,
  // if the saved membership cannot be read or written.
  absl::Status Start();

  absl::StatusOr<std::vector<core::Member>> Join(core::Member member,
                                                 wire::Watcher::Client watcher);
  // Every registration; a voter whose watcher stopped answering shows down.
  std::vector<core::Member> Members() const;
  // The map Members() returns now.
  MapVersion version() const { return version_; }

 private:
  struct Registration {
    core::Member member;                           // state: kVoter or kCatchingUp
    std::optional<wire::Watcher::Client> watcher;  // empty for this node itself
    bool down = false;                             // its watcher stopped answering
    uint64_t generation = 0;                       // which join `watcher` came from
  };

  // Makes `members` (ordered by id) durable, unless it is what was last
  // written. Every change is durable before anyone hears of it.
  absl::Status Persist(const std::vector<core::Member>& members);
  void Broadcast();
  asio::awaitable<void> Notify(std::weak_ptr<bool> token, core::PeerId id, uint64_t generation,
                               wire::Watcher::Client watcher, std::vector<core::Member> members,
                               MapVersion version);
  asio::awaitable<void> Ping(std::weak_ptr<bool> token, core::PeerId id, uint64_t generation,
                             wire::Watcher::Client watcher);
  // Shows a registration down when a call to its watcher failed, and up
  // again when one succeeds. The watcher is kept either way: a node that
  // was paused hears every later change once it runs again.
  void MarkDown(const core::PeerId& id, uint64_t generation);
  void MarkUp(const core::PeerId& id, uint64_t generation);
  asio::awaitable<void> WatchHealth(std::weak_ptr<bool> token);

  const NodeContext& ctx_;
  DirectoryClient& membership_;
  uint64_t registry_generation_ = 0;
  MapVersion version_;  // directory: random per run; version: one per Broadcast
  std::map<core::PeerId, Registration> registry_;
  std::string persisted_;  // the membership file's contents as last written
  std::map<core::ClusterId, std::chrono::steady_clock::time_point> last_promotion_;
};

}  // namespace replicator::node
