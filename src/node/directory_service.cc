#include "node/directory_service.h"

#include <algorithm>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>
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
#include "node/durable_file.h"
#include "util/log.h"

namespace replicator::node {
namespace {

// Names a new federation: random, never 0.
uint64_t NewFederation() {
  std::random_device rd;
  uint64_t id = 0;
  while (id == 0) id = (uint64_t{rd()} << 32) ^ rd();
  return id;
}

// Wall-clock microseconds: a node's stamps grow across restarts while its
// clock does; RestampSelf also keeps them above any stamp seen.
uint64_t NowMicros() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

std::string FederationName(uint64_t id) { return fmt::format("{:016x}", id); }

}  // namespace

Entry EntryFromWire(wire::PeerInfo::Reader m) {
  Entry e{FromWire(m), m.getStamp()};
  // An entry carries a claim; `down` is the sender's own liveness view.
  if (e.member.state == core::PeerState::kDown) e.member.state = core::PeerState::kVoter;
  return e;
}

void ToWire(const Entry& e, wire::PeerInfo::Builder out) {
  ToWire(e.member, out);
  out.setStamp(e.stamp);
}

std::vector<Entry> EntriesFromWire(capnp::List<wire::PeerInfo>::Reader list) {
  std::vector<Entry> out;
  out.reserve(list.size());
  for (auto m : list) out.push_back(EntryFromWire(m));
  return out;
}

void ToWire(const std::vector<Entry>& entries, capnp::List<wire::PeerInfo>::Builder out) {
  for (size_t i = 0; i < entries.size(); ++i) ToWire(entries[i], out[i]);
}

DirectoryService::DirectoryService(const NodeContext& ctx, Shards& shards)
    : ctx_(ctx), shards_(shards) {}

absl::StatusOr<bool> DirectoryService::Load() {
  const std::string path = absl::StrCat(ctx_.options.data_dir, "/", kDirectoryStateFile);
  absl::StatusOr<std::string> saved = ReadWholeFile(path, "membership file");
  self_.member = core::Member{ctx_.identity.peer_id, ctx_.options.cluster, ctx_.address, Claim()};
  self_.stamp = NowMicros();
  if (absl::IsNotFound(saved.status())) return false;
  if (!saved.ok()) return saved.status();
  absl::StatusOr<DirectoryState> loaded = DecodeDirectoryState(*saved, path);
  if (!loaded.ok()) return loaded.status();
  state_ = std::move(*loaded);
  persisted_ = *saved;
  // A file from before every node kept one was the first node's: it names
  // founding sets, and now names the federation too.
  if (state_.federation == 0) state_.federation = NewFederation();
  for (const Entry& e : state_.members) {
    if (e.member.id == self_.member.id) self_.stamp = std::max(self_.stamp, e.stamp + 1);
  }
  return true;
}

void DirectoryService::StartFederation() {
  state_.federation = NewFederation();
  state_.names_founding = true;
  util::Log(util::LogLevel::kInfo, "directory",
            "started federation {}; this node names founding sets",
            FederationName(state_.federation));
}

absl::Status DirectoryService::Run() {
  DirectoryState next = state_;
  RestampSelf(next);
  // A file from before founding sets, or a cluster that formed while this
  // (naming) node was down.
  std::set<core::ClusterId> clusters;
  for (const Entry& e : next.members) clusters.insert(e.member.cluster);
  for (const core::ClusterId& c : clusters) MaybeFound(next, c);
  if (absl::Status s = Commit(std::move(next)); !s.ok()) return s;
  ctx_.Spawn(WatchHealth(ctx_.alive));
  ctx_.Spawn(WatchSelf(ctx_.alive));
  return absl::OkStatus();
}

core::PeerState DirectoryService::Claim() const {
  // A voter once every shard has promoted it.
  return shards_.VoterEverywhere(ctx_.identity.peer_id) ? core::PeerState::kVoter
                                                        : core::PeerState::kCatchingUp;
}

void DirectoryService::RestampSelf(DirectoryState& next) {
  uint64_t stamp = std::max(self_.stamp + 1, NowMicros());
  for (const Entry& e : next.members) {
    if (e.member.id == self_.member.id) stamp = std::max(stamp, e.stamp + 1);
  }
  self_.stamp = stamp;
  absl::StatusOr<bool> merged = MergeEntry(next, self_);
  if (!merged.ok()) {
    // This node's id in another cluster: its data dir was moved to a node
    // started with another --cluster. Replace the entry: it is its own.
    std::erase_if(next.members, [&](const Entry& e) { return e.member.id == self_.member.id; });
    (void)MergeEntry(next, self_);
  }
}

absl::StatusOr<bool> DirectoryService::Merge(DirectoryState& next, const Entry& e) {
  absl::StatusOr<bool> merged = MergeEntry(next, e);
  if (!merged.ok() || !*merged) return merged;
  if (MaybeFound(next, e.member.cluster)) {
    for (const core::Configuration& c : next.founding) {
      if (c.cluster == e.member.cluster) {
        util::Log(util::LogLevel::kInfo, "directory", "cluster {} founded by {}", c.cluster,
                  fmt::join(c.voters, ", "));
      }
    }
  }
  return true;
}

absl::Status DirectoryService::Commit(DirectoryState next) {
  if (next == state_ && !persisted_.empty()) return absl::OkStatus();
  std::string text = EncodeDirectoryState(next);
  if (text != persisted_) {
    // Durable before anyone hears of it: a founding set once named is
    // never named again, even across a crash.
    // TODO(perf): a blocking fsync on the reactor thread; changes are rare.
    absl::Status s =
        ReplaceFileDurably(ctx_.options.data_dir, kDirectoryStateFile, text, "membership file");
    if (!s.ok()) return s;
    persisted_ = std::move(text);
  }
  state_ = std::move(next);
  ++version_;
  Publish();
  if (!broadcast_pending_) {
    broadcast_pending_ = true;
    ctx_.Spawn(Broadcast(ctx_.alive));
  }
  return absl::OkStatus();
}

std::vector<core::Member> DirectoryService::Members() const {
  std::vector<core::Member> out;
  out.reserve(state_.members.size());
  for (const Entry& e : state_.members) {
    core::Member m = e.member;
    m.state = ShownState(state_.founding, m);
    // Only a voter is shown down: the state must still say it votes.
    auto w = watches_.find(m.id);
    bool up = m.id == self_.member.id || (w != watches_.end() && !w->second.down);
    if (!up && m.state == core::PeerState::kVoter) m.state = core::PeerState::kDown;
    out.push_back(std::move(m));
  }
  return out;
}

void DirectoryService::Publish() {
  std::vector<core::Member> members = Members();
  shards_.SetMembers(members);
  // `down` is a liveness hint: the engine asks a down voter last, and still
  // counts it in its cluster's quorum (core::PeerState).
  core::Topology topology;
  topology.members = std::move(members);
  topology.founding = state_.founding;
  shards_.SetTopology(topology);
}

absl::StatusOr<std::vector<Entry>> DirectoryService::Join(Entry joining, uint64_t federation,
                                                          uint32_t shards,
                                                          wire::Watcher::Client watcher) {
  const core::Member& m = joining.member;
  if (auto bad = core::ValidateClusterId(m.cluster)) return absl::InvalidArgumentError(*bad);
  if (m.id.empty() || m.address.empty()) {
    return absl::InvalidArgumentError("join needs a peer id and an address");
  }
  if (m.id == self_.member.id) {
    return absl::InvalidArgumentError(
        absl::StrCat("peer ", m.id, " is this node itself (at ", ctx_.address, ")"));
  }
  // A new node joins with 0 and takes this node's.
  if (federation != 0) {
    if (absl::Status s = SameFederation(state_.federation, federation, "peer " + m.id); !s.ok()) {
      return s;
    }
  }
  // Shard i of a node talks to shard i of the others (core/shard.h): a node
  // that cut the keys another way would find its requests refused.
  if (const uint32_t mine = shards_.count(); std::max<uint32_t>(shards, 1) != mine) {
    return absl::FailedPreconditionError(absl::StrCat(
        "peer ", m.id, " runs ", std::max<uint32_t>(shards, 1), " shards and this node ", mine,
        ": every node of a federation runs the same --shards (this one's: --shards=", mine, ")"));
  }
  // TODO(security): a joining node should prove it holds the key behind its
  // peer id (issue 11); until then any caller can take an id over.
  DirectoryState next = state_;
  absl::StatusOr<bool> merged = Merge(next, joining);
  if (!merged.ok()) return merged.status();
  if (absl::Status s = Commit(std::move(next)); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("this node cannot record the join: ", s.message()));
  }
  const core::PeerId id = m.id;
  watches_.insert_or_assign(id, Watch{std::move(watcher), ++watch_generation_, false});
  Publish();  // it is up now
  return state_.members;
}

absl::Status DirectoryService::OnMap(const std::vector<Entry>& entries,
                                     const std::vector<core::Configuration>& founding,
                                     uint64_t federation, const std::string& from) {
  if (absl::Status s = SameFederation(state_.federation, federation, "the node at " + from);
      !s.ok()) {
    return s;
  }
  DirectoryState next = state_;
  next.federation = federation;  // a new node takes the first it joins
  // A contradiction (a founding set other than the one held, a peer moved
  // to another cluster) is logged and skipped; the rest is taken.
  auto skip = [&](const absl::Status& s) {
    util::Log(util::LogLevel::kWarn, "directory", "from {}: {}", from, std::string(s.message()));
  };
  for (const core::Configuration& c : founding) {
    if (absl::StatusOr<bool> r = MergeFounding(next, c); !r.ok()) skip(r.status());
  }
  const Entry* newer_self = nullptr;
  for (const Entry& e : entries) {
    if (e.member.id == self_.member.id) {
      // Only this node writes its entry: a newer-looking one is an old run's.
      if (e.stamp >= self_.stamp && !(e == self_)) newer_self = &e;
      continue;
    }
    if (absl::StatusOr<bool> r = Merge(next, e); !r.ok()) skip(r.status());
  }
  if (newer_self != nullptr && OutStampOldRun(*newer_self)) RestampSelf(next);
  return Commit(std::move(next));
}

bool DirectoryService::OutStampOldRun(const Entry& seen) {
  // At this node's own address: an earlier run of it (whose clock was
  // ahead). Elsewhere: maybe a second process with this data dir's
  // identity, which would answer each restamp with its own; out-stamp it
  // at most every 10 s, and say so, rather than gossip without end.
  if (seen.member.address == self_.member.address) return true;
  auto now = std::chrono::steady_clock::now();
  if (now - last_foreign_restamp_ < std::chrono::seconds(10)) return false;
  last_foreign_restamp_ = now;
  util::Log(util::LogLevel::kWarn, "directory",
            "an entry for this node's peer id at {} (stamp {}) is "
            "newer than this node's own: an earlier run, or another process using this data "
            "dir's identity",
            seen.member.address, seen.stamp);
  return true;
}

asio::awaitable<void> DirectoryService::Broadcast(std::weak_ptr<bool> token) {
  if (token.expired()) co_return;
  broadcast_pending_ = false;
  for (auto& [id, w] : watches_) ctx_.Spawn(Notify(token, id, w.generation, w.watcher));
}

asio::awaitable<void> DirectoryService::Notify(std::weak_ptr<bool> token, core::PeerId id,
                                               uint64_t generation, wire::Watcher::Client watcher) {
  auto req = watcher.changedRequest();
  ToWire(state_.members, req.initMembers(state_.members.size()));
  ToWire(state_.founding, req.initFounding(state_.founding.size()));
  req.setFederation(state_.federation);
  req.setVersion(version_);
  kj::Promise<void> sent = req.send().ignoreResult();
  absl::Status s = co_await net::AwaitWithin(kj::mv(sent), ctx_.options.call_deadline);
  if (token.expired() || s.ok()) co_return;
  SetDown(id, generation, true);
}

asio::awaitable<void> DirectoryService::Ping(std::weak_ptr<bool> token, core::PeerId id,
                                             uint64_t generation, wire::Watcher::Client watcher) {
  kj::Promise<void> sent = watcher.pingRequest().send().ignoreResult();
  absl::Status s = co_await net::AwaitWithin(kj::mv(sent), ctx_.options.call_deadline);
  if (token.expired()) co_return;
  SetDown(id, generation, !s.ok());
}

void DirectoryService::SetDown(const core::PeerId& id, uint64_t generation, bool down) {
  auto it = watches_.find(id);
  if (it == watches_.end() || it->second.down == down || it->second.generation != generation) {
    return;
  }
  it->second.down = down;
  Publish();
}

asio::awaitable<void> DirectoryService::WatchHealth(std::weak_ptr<bool> token) {
  asio::steady_timer timer(ctx_.io());
  while (!token.expired() && !ctx_.shut_down) {
    timer.expires_after(std::chrono::seconds(2));
    asio::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (token.expired() || ctx_.shut_down) co_return;
    for (auto& [id, w] : watches_) ctx_.Spawn(Ping(token, id, w.generation, w.watcher));
  }
}

asio::awaitable<void> DirectoryService::WatchSelf(std::weak_ptr<bool> token) {
  asio::steady_timer timer(ctx_.io());
  while (!token.expired() && !ctx_.shut_down) {
    timer.expires_after(std::chrono::seconds(1));
    asio::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (token.expired() || ctx_.shut_down) co_return;
    // Consensus added or removed this node: show it (the map's display;
    // quorums count configurations, not the map).
    if (self_.member.state == Claim()) continue;
    DirectoryState next = state_;
    self_.member.state = Claim();
    RestampSelf(next);
    if (absl::Status s = Commit(std::move(next)); !s.ok()) {
      util::Log(util::LogLevel::kError, "directory", "cannot record this node's own state: {}",
                s.ToString());
    }
  }
}

}  // namespace replicator::node
