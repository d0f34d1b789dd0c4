#include "node/directory_client.h"

#include <kj/exception.h>

#include <algorithm>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>
#include <cstdio>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "fmt/format.h"
#include "net/bridge.h"
#include "node/convert.h"
#include "node/servers.h"

namespace replicator::node {

using std::chrono::milliseconds;

namespace {

// Not in the coroutine: g++ 12 warns wrongly (mismatched-new-delete) about
// a coroutine that catches a KJ exception.
absl::StatusOr<std::vector<core::Configuration>> FoundingFromWire(
    wire::Directory::JoinResults::Reader reply) {
  std::vector<core::Configuration> founding;
  KJ_IF_MAYBE (e, kj::runCatchingExceptions([&] { founding = FromWire(reply.getFounding()); })) {
    return absl::InvalidArgumentError(e->getDescription().cStr());
  }
  return founding;
}

}  // namespace

DirectoryClient::DirectoryClient(const NodeContext& ctx, EngineDriver& driver, PeerNetwork& network)
    : ctx_(ctx), driver_(driver), network_(network) {}

core::Member DirectoryClient::Self() const {
  core::PeerState state = core::PeerState::kCatchingUp;
  for (const core::Member& m : members_) {
    if (m.id == ctx_.identity.peer_id) state = m.state;
  }
  return core::Member{ctx_.identity.peer_id, ctx_.options.cluster, ctx_.address, state};
}

core::PeerState DirectoryClient::Claim() const {
  return driver_.configuration().Has(ctx_.identity.peer_id) ? core::PeerState::kVoter
                                                            : core::PeerState::kCatchingUp;
}

void DirectoryClient::OnMembers(std::vector<core::Member> members,
                                std::vector<core::Configuration> founding, MapVersion version) {
  if (!Supersedes(version, applied_)) return;  // older than applied, or the same again
  applied_ = version;
  members_ = std::move(members);
  network_.SetMembers(members_);
  // `down` is a liveness hint: the engine asks a down voter last, and still
  // counts it in its cluster's quorum (core::PeerState).
  core::Topology topology;
  topology.members = members_;
  topology.founding = std::move(founding);
  driver_.SetTopology(std::move(topology));
}

asio::awaitable<absl::Status> DirectoryClient::JoinDirectory() {
  std::weak_ptr<bool> alive = ctx_.alive;
  const NodeOptions& options = ctx_.options;
  // Nodes of a deployment often start together: keep trying for the whole
  // bootstrap timeout before giving up.
  auto give_up = std::chrono::steady_clock::now() + options.bootstrap_timeout;
  asio::steady_timer pause(ctx_.io());
  absl::StatusOr<std::unique_ptr<net::RpcConnection>> connection;
  while (true) {
    auto left =
        std::chrono::duration_cast<milliseconds>(give_up - std::chrono::steady_clock::now());
    milliseconds timeout = std::max(left, milliseconds(1));
    connection = co_await net::RpcConnection::Connect(ctx_.reactor, options.bootstrap, timeout);
    if (alive.expired()) co_return absl::UnavailableError(ShuttingDown());
    if (connection.ok() || absl::IsInvalidArgument(connection.status()) ||
        std::chrono::steady_clock::now() + milliseconds(200) >= give_up) {
      break;
    }
    pause.expires_after(milliseconds(200));
    asio::error_code ec;
    co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (alive.expired()) co_return absl::UnavailableError(ShuttingDown());
  }
  if (!connection.ok()) {
    co_return absl::UnavailableError(absl::StrCat("cannot reach bootstrap peer ", options.bootstrap,
                                                  ": ", connection.status().message()));
  }
  auto directory = (*connection)->Bootstrap<wire::Node>().directoryRequest().send().getDirectory();
  auto req = directory.joinRequest();
  core::Member self = Self();
  self.state = Claim();
  ToWire(self, req.initSelf());
  req.setWatcher(NewWatcherServer(ctx_, this));
  auto sent = req.send();
  auto reply = co_await net::AwaitWithin(kj::mv(sent), options.bootstrap_timeout);
  if (alive.expired()) co_return absl::UnavailableError(ShuttingDown());
  if (!reply.ok()) {
    co_return absl::UnavailableError(
        absl::StrCat("bootstrap peer ", options.bootstrap,
                     " refused to register this node: ", reply.status().message()));
  }
  std::vector<core::Member> members = FromWire(reply->getMembers());
  absl::StatusOr<std::vector<core::Configuration>> founding = FoundingFromWire(*reply);
  if (!founding.ok()) {
    co_return absl::UnavailableError(
        absl::StrCat("bootstrap peer ", options.bootstrap,
                     " sent a malformed founding configuration: ", founding.status().message()));
  }
  const MapVersion version{reply->getDirectory(), reply->getVersion()};
  directory_connection_ = std::move(*connection);
  claimed_ = self.state;
  OnMembers(std::move(members), std::move(*founding), version);
  co_return absl::OkStatus();
}

asio::awaitable<void> DirectoryClient::StayJoined(std::weak_ptr<bool> token) {
  // Nodes keep working while the bootstrap peer is down, and re-register
  // when it is back (so it sees them up again and has their watchers).
  asio::steady_timer timer(ctx_.io());
  while (!token.expired() && !ctx_.shut_down) {
    timer.expires_after(std::chrono::seconds(1));
    asio::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (token.expired() || ctx_.shut_down) co_return;
    bool connected = directory_connection_ && !directory_connection_->disconnected();
    // Consensus added or removed this node: show it (the directory's
    // display; quorums count configurations, not the directory).
    bool reclaim = claimed_ != Claim();
    if (connected && !reclaim) continue;
    absl::Status s = co_await JoinDirectory();
    if (token.expired()) co_return;
    if (s.ok() && !connected) {
      fmt::print(stderr, "replicatord: re-registered with {}\n", ctx_.options.bootstrap);
    }
  }
}

}  // namespace replicator::node
