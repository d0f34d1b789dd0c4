#include "node/directory_service.h"

#include <algorithm>
#include <random>
#include <utility>

#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "net/bridge.h"
#include "node/convert.h"
#include "node/directory_state.h"
#include "node/durable_file.h"

namespace replicator::node {
namespace {

// Least time between two voter additions in one cluster (see Join).
constexpr std::chrono::seconds kPromotionSpacing{5};

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
  std::map<core::PeerId, Registration> registry;
  if (saved.ok()) {
    absl::StatusOr<std::vector<core::Member>> members = DecodeDirectoryState(*saved, path);
    if (!members.ok()) return members.status();
    // Everyone but this node is down until it joins again with a watcher;
    // voters stay voters, so no quorum is counted over a rebuilt set.
    for (core::Member& m : *members) {
      const core::PeerId id = m.id;
      registry[id] = Registration{std::move(m), std::nullopt, true, 0};
    }
    persisted_ = *saved;
  } else if (!absl::IsNotFound(saved.status())) {
    return saved.status();
  }
  core::Member self = membership_.Self();
  self.state = core::PeerState::kVoter;
  registry[ctx_.identity.peer_id] = Registration{self, std::nullopt, false, 0};
  std::vector<core::Member> members;
  for (const auto& [id, reg] : registry) members.push_back(reg.member);
  if (absl::Status s = Persist(members); !s.ok()) return s;
  registry_ = std::move(registry);
  Broadcast();
  ctx_.Spawn(WatchHealth(ctx_.alive));
  return absl::OkStatus();
}

absl::Status DirectoryService::Persist(const std::vector<core::Member>& members) {
  std::string text = EncodeDirectoryState(members);
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
  // A voter stays a voter (it kept its durable state across a restart). A
  // node new to a cluster that already has the minimum of voters first
  // catches up and then asks to be promoted by joining with state voter; a
  // cluster still forming takes it as a voter at once. Voters are added one
  // join at a time, so any two consecutive voter sets' majorities intersect.
  size_t voters = 0;
  for (const auto& [id, reg] : registry_) {
    voters += id != member.id && reg.member.cluster == member.cluster &&
              reg.member.state == core::PeerState::kVoter;
  }
  bool was_voter = it != registry_.end() && it->second.member.state == core::PeerState::kVoter;
  bool promotion = it != registry_.end() && member.state == core::PeerState::kVoter;
  // Promotions in one cluster are spaced out, so that every node has heard
  // of one voter set before the next is formed: a coordinator whose view
  // lagged two additions behind could count a majority that misses another
  // view's majority. TODO(safety): record membership changes through
  // consensus (joint majorities) instead of relying on spacing.
  auto now = std::chrono::steady_clock::now();
  auto& last = last_promotion_[member.cluster];
  if (promotion && !was_voter && voters >= 3 && now - last < kPromotionSpacing) promotion = false;
  member.state =
      was_voter || promotion || voters < 3 ? core::PeerState::kVoter : core::PeerState::kCatchingUp;
  if (!was_voter && member.state == core::PeerState::kVoter) last = now;
  // Durable before it is answered or told to anyone.
  std::vector<core::Member> next;
  for (const auto& [id, r] : registry_) {
    if (id != member.id) next.push_back(r.member);
  }
  next.push_back(member);
  std::sort(next.begin(), next.end(),
            [](const core::Member& a, const core::Member& b) { return a.id < b.id; });
  if (absl::Status s = Persist(next); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("the directory cannot record the join: ",
                                               s.message()));
  }
  const core::PeerId id = member.id;
  registry_[id] = Registration{std::move(member), std::move(watcher), false,
                               ++registry_generation_};
  Broadcast();
  return Members();
}

void DirectoryService::Broadcast() {
  ++version_.version;
  std::vector<core::Member> members = Members();
  for (auto& [id, reg] : registry_) {
    if (reg.watcher) {
      ctx_.Spawn(Notify(ctx_.alive, id, reg.generation, *reg.watcher, members, version_));
    }
  }
  membership_.OnMembers(std::move(members), version_);
}

asio::awaitable<void> DirectoryService::Notify(std::weak_ptr<bool> token, core::PeerId id,
                                               uint64_t generation, wire::Watcher::Client watcher,
                                               std::vector<core::Member> members,
                                               MapVersion version) {
  auto req = watcher.changedRequest();
  ToWire(members, req.initMembers(members.size()));
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

}  // namespace replicator::node
