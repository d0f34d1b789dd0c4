#include "node/directory_service.h"

#include <algorithm>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <cstdio>
#include <random>
#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "fmt/format.h"
#include "fmt/ranges.h"
#include "net/bridge.h"
#include "node/convert.h"
#include "node/directory_state.h"
#include "node/durable_file.h"

namespace replicator::node {
namespace {

bool ById(const core::Member& a, const core::Member& b) { return a.id < b.id; }

// Names one run of the directory in its maps' versions: random, never 0.
uint64_t NewDirectoryRun() {
  std::random_device rd;
  uint64_t run = 0;
  while (run == 0) run = (uint64_t{rd()} << 32) ^ rd();
  return run;
}

}  // namespace

DirectoryService::DirectoryService(const NodeContext& ctx, DirectoryClient& membership)
    : ctx_(ctx), membership_(membership) {
  version_.directory = NewDirectoryRun();
}

absl::Status DirectoryService::Start() {
  const std::string path = absl::StrCat(ctx_.options.data_dir, "/", kDirectoryStateFile);
  absl::StatusOr<std::string> saved = ReadWholeFile(path, "membership file");
  DirectoryState state;
  if (saved.ok()) {
    absl::StatusOr<DirectoryState> loaded = DecodeDirectoryState(*saved, path);
    if (!loaded.ok()) return loaded.status();
    state = std::move(*loaded);
    persisted_ = *saved;
  } else if (!absl::IsNotFound(saved.status())) {
    return saved.status();
  }
  core::Member self = membership_.Self();
  self.state = membership_.Claim();
  self.state = RegisteredState(state.founding, self);
  std::erase_if(state.members, [&](const core::Member& m) { return m.id == self.id; });
  state.members.push_back(self);
  std::sort(state.members.begin(), state.members.end(), ById);
  // A file from before founding sets: a cluster that has its 3 voters is
  // founded with every voter it has, the set its quorums counted until now.
  std::set<core::ClusterId> clusters;
  for (const core::Member& m : state.members) clusters.insert(m.cluster);
  for (const core::ClusterId& c : clusters) MaybeFound(state, c);
  if (absl::Status s = Persist(state); !s.ok()) return s;
  // Everyone but this node is down until it joins again with a watcher;
  // voters stay voters, so no quorum is counted over a rebuilt set.
  std::map<core::PeerId, Registration> registry;
  for (core::Member& m : state.members) {
    const core::PeerId id = m.id;
    registry[id] = Registration{std::move(m), std::nullopt, id != self.id, 0};
  }
  registry_ = std::move(registry);
  founding_ = std::move(state.founding);
  Broadcast();
  ctx_.Spawn(WatchHealth(ctx_.alive));
  ctx_.Spawn(WatchSelf(ctx_.alive));
  return absl::OkStatus();
}

absl::Status DirectoryService::Persist(const DirectoryState& state) {
  std::string text = EncodeDirectoryState(state);
  if (text == persisted_) return absl::OkStatus();
  // TODO(perf): a blocking fsync on the reactor thread; joins are rare.
  absl::Status s =
      ReplaceFileDurably(ctx_.options.data_dir, kDirectoryStateFile, text, "membership file");
  if (s.ok()) persisted_ = std::move(text);
  return s;
}

std::vector<core::Member> DirectoryService::Members() const {
  std::vector<core::Member> out;
  for (const auto& [id, reg] : registry_) {
    out.push_back(reg.member);
    // Only a voter is shown down: the state must still say it votes.
    if (reg.down && reg.member.state == core::PeerState::kVoter) {
      out.back().state = core::PeerState::kDown;
    }
  }
  return out;
}

absl::StatusOr<std::vector<core::Member>> DirectoryService::Join(core::Member member,
                                                                 wire::Watcher::Client watcher) {
  if (auto bad = core::ValidateClusterId(member.cluster)) return absl::InvalidArgumentError(*bad);
  if (member.id.empty() || member.address.empty()) {
    return absl::InvalidArgumentError("join needs a peer id and an address");
  }
  // TODO(security): a joining node should prove it holds the key behind its
  // peer id (sign a challenge); until then any caller can take an id over.
  auto it = registry_.find(member.id);
  if (it != registry_.end() && it->second.member.cluster != member.cluster) {
    return absl::FailedPreconditionError(
        absl::StrCat("peer ", member.id, " is registered in cluster ", it->second.member.cluster,
                     "; a peer cannot move to cluster ", member.cluster));
  }
  // Beyond its cluster's founding set, a node votes when it says so: it
  // knows its cluster's configurations, which consensus chose; the
  // directory only shows them.
  member.state = RegisteredState(founding_, member);
  if (absl::Status s = Register(std::move(member), std::move(watcher)); !s.ok()) {
    return absl::UnavailableError(
        absl::StrCat("the directory cannot record the join: ", s.message()));
  }
  return Members();
}

absl::Status DirectoryService::Register(core::Member member,
                                        std::optional<wire::Watcher::Client> watcher) {
  DirectoryState next{{}, founding_};
  for (const auto& [id, r] : registry_) {
    if (id != member.id) next.members.push_back(r.member);
  }
  next.members.push_back(member);
  std::sort(next.members.begin(), next.members.end(), ById);
  const bool founded = MaybeFound(next, member.cluster);
  // Durable before it is answered or told to anyone.
  if (absl::Status s = Persist(next); !s.ok()) return s;
  for (const core::Configuration& c : next.founding) {
    if (founded && c.cluster == member.cluster) {
      fmt::print(stderr, "replicatord: directory: cluster {} founded by {}\n", c.cluster,
                 fmt::join(c.voters, ", "));
    }
  }
  const core::PeerId id = member.id;
  registry_[id] = Registration{std::move(member), std::move(watcher), false,
                               ++registry_generation_};
  founding_ = std::move(next.founding);
  Broadcast();
  return absl::OkStatus();
}

void DirectoryService::Broadcast() {
  ++version_.version;
  std::vector<core::Member> members = Members();
  for (auto& [id, reg] : registry_) {
    if (reg.watcher) {
      ctx_.Spawn(
          Notify(ctx_.alive, id, reg.generation, *reg.watcher, members, founding_, version_));
    }
  }
  membership_.OnMembers(std::move(members), founding_, version_);
}

asio::awaitable<void> DirectoryService::Notify(std::weak_ptr<bool> token, core::PeerId id,
                                               uint64_t generation, wire::Watcher::Client watcher,
                                               std::vector<core::Member> members,
                                               std::vector<core::Configuration> founding,
                                               MapVersion version) {
  auto req = watcher.changedRequest();
  ToWire(members, req.initMembers(members.size()));
  ToWire(founding, req.initFounding(founding.size()));
  req.setDirectory(version.directory);
  req.setVersion(version.version);
  kj::Promise<void> sent = req.send().ignoreResult();
  absl::Status s = co_await net::AwaitWithin(kj::mv(sent), ctx_.options.call_deadline);
  if (token.expired() || s.ok()) co_return;
  MarkDown(id, generation);
}

asio::awaitable<void> DirectoryService::Ping(std::weak_ptr<bool> token, core::PeerId id,
                                             uint64_t generation, wire::Watcher::Client watcher) {
  kj::Promise<void> sent = watcher.pingRequest().send().ignoreResult();
  absl::Status s = co_await net::AwaitWithin(kj::mv(sent), ctx_.options.call_deadline);
  if (token.expired()) co_return;
  if (s.ok()) {
    MarkUp(id, generation);
  } else {
    MarkDown(id, generation);
  }
}

void DirectoryService::MarkDown(const core::PeerId& id, uint64_t generation) {
  // Only the registration the failed call was made for: the node may have
  // joined again since, with a new watcher.
  auto it = registry_.find(id);
  if (it == registry_.end() || it->second.down || it->second.generation != generation) return;
  it->second.down = true;
  Broadcast();
}

void DirectoryService::MarkUp(const core::PeerId& id, uint64_t generation) {
  auto it = registry_.find(id);
  if (it == registry_.end() || !it->second.down || it->second.generation != generation) return;
  it->second.down = false;
  Broadcast();
}

asio::awaitable<void> DirectoryService::WatchHealth(std::weak_ptr<bool> token) {
  asio::steady_timer timer(ctx_.io());
  while (!token.expired() && !ctx_.shut_down) {
    timer.expires_after(std::chrono::seconds(2));
    asio::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (token.expired() || ctx_.shut_down) co_return;
    for (auto& [id, reg] : registry_) {
      if (reg.watcher) ctx_.Spawn(Ping(token, id, reg.generation, *reg.watcher));
    }
  }
}

asio::awaitable<void> DirectoryService::WatchSelf(std::weak_ptr<bool> token) {
  asio::steady_timer timer(ctx_.io());
  while (!token.expired() && !ctx_.shut_down) {
    timer.expires_after(std::chrono::seconds(1));
    asio::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (token.expired() || ctx_.shut_down) co_return;
    core::Member self = membership_.Self();
    self.state = membership_.Claim();
    self.state = RegisteredState(founding_, self);
    auto it = registry_.find(self.id);
    if (it != registry_.end() && it->second.member == self) continue;
    if (absl::Status s = Register(std::move(self), std::nullopt); !s.ok()) {
      fmt::print(stderr, "replicatord: directory: cannot record this node's own state: {}\n",
                 s.ToString());
    }
  }
}

}  // namespace replicator::node
