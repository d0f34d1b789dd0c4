#include "node/directory_client.h"

#include <kj/exception.h>

#include <algorithm>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <cstdio>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "fmt/format.h"
#include "net/bridge.h"
#include "node/convert.h"
#include "node/servers.h"
#include "util/log.h"

namespace replicator::node {

using std::chrono::milliseconds;

namespace {

struct MapReply {
  std::vector<Entry> entries;
  std::vector<core::Configuration> founding;
  uint64_t federation = 0;
};

// Not in the coroutine: g++ 12 warns wrongly (mismatched-new-delete) about
// a coroutine that catches a KJ exception.
absl::StatusOr<MapReply> MapFromWire(wire::Directory::JoinResults::Reader reply) {
  MapReply out;
  KJ_IF_MAYBE (e, kj::runCatchingExceptions([&] {
                 out.entries = EntriesFromWire(reply.getMembers());
                 out.founding = FromWire(reply.getFounding());
               })) {
    return absl::InvalidArgumentError(e->getDescription().cStr());
  }
  out.federation = reply.getFederation();
  return out;
}

}  // namespace

DirectoryClient::DirectoryClient(const NodeContext& ctx, DirectoryService& directory)
    : ctx_(ctx), directory_(directory) {}

asio::awaitable<absl::Status> DirectoryClient::JoinAt(std::string address, milliseconds timeout) {
  std::weak_ptr<bool> alive = ctx_.alive;
  absl::StatusOr<std::unique_ptr<net::RpcConnection>> connection =
      co_await net::RpcConnection::Connect(ctx_.reactor, address, timeout, ctx_.options.tls);
  if (alive.expired()) co_return absl::UnavailableError(ShuttingDown());
  if (!connection.ok()) {
    if (absl::IsInvalidArgument(connection.status())) co_return connection.status();
    co_return absl::UnavailableError(
        absl::StrCat("cannot reach ", address, ": ", connection.status().message()));
  }
  auto directory = (*connection)->Bootstrap<wire::Node>().directoryRequest().send().getDirectory();
  auto req = directory.joinRequest();
  ToWire(directory_.self(), req.initSelf());
  req.setWatcher(NewWatcherServer(ctx_, &directory_, address));
  req.setFederation(directory_.federation());
  req.setShards(ctx_.options.shards);
  auto sent = req.send();
  auto reply = co_await net::AwaitWithin(kj::mv(sent), timeout);
  if (alive.expired()) co_return absl::UnavailableError(ShuttingDown());
  if (!reply.ok()) {
    co_return absl::FailedPreconditionError(
        absl::StrCat(address, " refused to register this node: ", reply.status().message()));
  }
  absl::StatusOr<MapReply> map = MapFromWire(*reply);
  if (!map.ok()) {
    co_return absl::InvalidArgumentError(
        absl::StrCat(address, " sent a malformed map: ", map.status().message()));
  }
  absl::Status merged = directory_.OnMap(map->entries, map->founding, map->federation, address);
  if (!merged.ok()) co_return merged;
  registrations_[address] = std::move(*connection);
  co_return absl::OkStatus();
}

asio::awaitable<absl::Status> DirectoryClient::JoinFederation() {
  const NodeOptions& options = ctx_.options;
  // Nodes of a deployment often start together: keep trying for the whole
  // bootstrap timeout before giving up.
  auto give_up = std::chrono::steady_clock::now() + options.bootstrap_timeout;
  asio::steady_timer pause(ctx_.io());
  absl::Status last = absl::UnavailableError("no bootstrap peer given");
  while (true) {
    for (const std::string& address : options.bootstrap) {
      auto left =
          std::chrono::duration_cast<milliseconds>(give_up - std::chrono::steady_clock::now());
      milliseconds timeout = std::clamp(left, milliseconds(1), milliseconds(2000));
      last = co_await JoinAt(address, timeout);
      if (last.ok()) co_return last;
      // A bad address or a refusal will not change by retrying.
      if (absl::IsInvalidArgument(last) || absl::IsFailedPrecondition(last)) {
        co_return absl::UnavailableError(
            absl::StrCat("bootstrap peer ", address, ": ", last.message()));
      }
      if (ctx_.alive.expired()) co_return absl::UnavailableError(ShuttingDown());
    }
    if (std::chrono::steady_clock::now() + milliseconds(200) >= give_up) break;
    pause.expires_after(milliseconds(200));
    asio::error_code ec;
    co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (ctx_.alive.expired()) co_return absl::UnavailableError(ShuttingDown());
  }
  co_return absl::UnavailableError(
      absl::StrCat("cannot reach any bootstrap peer (", absl::StrJoin(options.bootstrap, ", "),
                   ") within ", options.bootstrap_timeout.count(), " ms: ", last.message()));
}

asio::awaitable<void> DirectoryClient::Register(std::weak_ptr<bool> token, std::string address) {
  absl::Status s = co_await JoinAt(address, ctx_.options.call_deadline);
  if (token.expired()) co_return;
  joining_.erase(address);
  std::string& reported = reported_[address];
  if (s.ok()) {
    if (!reported.empty())
      util::Log(util::LogLevel::kInfo, "directory", "registered with {} again", address);
    reported.clear();
    co_return;
  }
  // Once per failure, not every second.
  if (reported != s.message() && !absl::IsUnavailable(s)) {
    util::Log(util::LogLevel::kWarn, "directory", "{}", std::string(s.message()));
  }
  reported = std::string(s.message());
}

asio::awaitable<void> DirectoryClient::StayRegistered(std::weak_ptr<bool> token) {
  asio::steady_timer timer(ctx_.io());
  while (!token.expired() && !ctx_.shut_down) {
    timer.expires_after(std::chrono::seconds(1));
    asio::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (token.expired() || ctx_.shut_down) co_return;
    std::set<std::string> wanted(ctx_.options.bootstrap.begin(), ctx_.options.bootstrap.end());
    for (const Entry& e : directory_.Entries()) wanted.insert(e.member.address);
    wanted.erase(ctx_.address);
    wanted.erase(directory_.self().member.address);
    // A member that moved: its old address is no one's now.
    std::erase_if(registrations_, [&](const auto& r) { return !wanted.contains(r.first); });
    for (const std::string& address : wanted) {
      auto it = registrations_.find(address);
      if (it != registrations_.end() && !it->second->disconnected()) continue;
      if (!joining_.insert(address).second) continue;
      ctx_.Spawn(Register(token, address));
    }
  }
}

}  // namespace replicator::node
