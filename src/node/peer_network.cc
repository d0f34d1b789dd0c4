#include "node/peer_network.h"

#include <kj/debug.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <type_traits>
#include <variant>

#include "absl/strings/str_cat.h"
#include "core/validate.h"
#include "core/wire_limits.h"
#include "net/bridge.h"
#include "net/reactor.h"
#include "node/convert.h"

namespace replicator::node {
namespace {

using std::chrono::milliseconds;

// A batch is sent early once it holds core::kMaxBatchCalls calls, or once
// its calls, or the replies they could get, reach the batch budget: one
// message must stay under the connections' message limit
// (core/wire_limits.h) however many of a batch's reserves find the key
// stored with a large value.
using core::kMaxBatchCalls;
constexpr size_t kReplyOverhead = core::kCallOverheadBytes;

size_t ApproxBytes(const core::Request& r) {
  const core::ReplicaOp* op = nullptr;
  if (const auto* h = std::get_if<core::HandleRequest>(&r)) op = &h->op;
  if (const auto* f = std::get_if<core::ForwardRequest>(&r)) op = &f->op;
  size_t bytes = 64;
  if (op) {
    std::visit(
        [&](const auto& o) {
          bytes += o.key.size();
          if constexpr (!std::is_same_v<std::decay_t<decltype(o)>, core::AbortOp>) {
            bytes += o.value.size();
          }
        },
        *op);
  }
  return bytes;
}

// Catch-up calls (large, rare) have methods of their own and go alone; so
// does a membership change (rare, and answered only once chosen, which
// would hold up every call batched with it).
bool GoesAlone(const core::Request& r) {
  return std::holds_alternative<core::DigestRequest>(r) ||
         std::holds_alternative<core::PullRequest>(r) ||
         std::holds_alternative<core::ChangeRequest>(r);
}

// A rejected Cap'n Proto call carries its reason in the status message.
std::string Reason(const absl::Status& s) { return std::string(s.message()); }

}  // namespace

PeerNetwork::PeerNetwork(const NodeContext& ctx, core::ShardRange range, Deliver deliver)
    : ctx_(ctx), range_(range), deliver_(std::move(deliver)) {}

void PeerNetwork::SetMembers(const std::vector<core::Member>& members) {
  absl::flat_hash_map<std::string_view, size_t> per_cluster;
  for (const core::Member& m : members) ++per_cluster[m.cluster];
  cluster_size_of_.clear();
  address_of_.clear();
  for (const core::Member& m : members) {
    cluster_size_of_[m.id] = per_cluster[m.cluster];
    address_of_[m.id] = m.address;  // a later entry for one id wins
  }
}

size_t PeerNetwork::ReplyBound(const core::SendEffect& effect) const {
  const size_t value = ctx_.options.limits.max_value_bytes + kReplyOverhead;
  if (const auto* h = std::get_if<core::HandleRequest>(&effect.request)) {
    return std::holds_alternative<core::ReserveOp>(h->op) ? value : kReplyOverhead;
  }
  if (const auto* f = std::get_if<core::ForwardRequest>(&effect.request)) {
    auto known = cluster_size_of_.find(effect.to);
    const size_t voters = known == cluster_size_of_.end() ? 1 : std::max<size_t>(known->second, 1);
    return voters * (std::holds_alternative<core::ReserveOp>(f->op) ? value : kReplyOverhead);
  }
  if (std::holds_alternative<core::ReadRequest>(effect.request)) return value;
  return kReplyOverhead;
}

bool PeerNetwork::Send(core::SendEffect effect) {
  if (GoesAlone(effect.request)) {
    core::PeerId to = effect.to;
    std::vector<core::SendEffect> call;
    call.push_back(std::move(effect));
    ctx_.Spawn(SendBatch(ctx_.alive, std::move(to), std::move(call)));
    return false;
  }
  Outbox& box = outboxes_[effect.to];
  box.bytes += ApproxBytes(effect.request);
  box.reply_bytes += ReplyBound(effect);
  box.calls.push_back(std::move(effect));
  const size_t budget = core::BatchBudgetBytes(ctx_.options.limits);
  if (box.bytes >= budget || box.reply_bytes >= budget || box.calls.size() >= kMaxBatchCalls) {
    std::vector<core::SendEffect> calls = std::move(box.calls);
    core::PeerId to = calls.front().to;
    box = Outbox{};
    ctx_.Spawn(SendBatch(ctx_.alive, std::move(to), std::move(calls)));
  }
  return true;
}

void PeerNetwork::Flush() {
  // Take every batch first: a send that fails at once feeds the engine,
  // which may queue more calls (into outboxes_) before this loop is done.
  std::vector<std::pair<core::PeerId, std::vector<core::SendEffect>>> ready;
  for (auto& [to, box] : outboxes_) {
    if (box.calls.empty()) continue;
    ready.emplace_back(to, std::move(box.calls));
    box = Outbox{};
  }
  for (auto& [to, calls] : ready) {
    asio::co_spawn(ctx_.io(), SendBatch(ctx_.alive, std::move(to), std::move(calls)),
                   asio::detached);
  }
}

asio::awaitable<void> PeerNetwork::SendBatch(std::weak_ptr<bool> token, core::PeerId to,
                                             std::vector<core::SendEffect> calls) {
  const auto started = std::chrono::steady_clock::now();
  std::vector<core::Response> responses = co_await Call(to, calls);
  if (token.expired() || ctx_.shut_down) co_return;
  Observe(to, calls.size(), std::chrono::steady_clock::now() - started, responses);
  deliver_(calls, std::move(responses));
}

void PeerNetwork::Observe(const core::PeerId& to, size_t calls,
                          std::chrono::steady_clock::duration elapsed,
                          const std::vector<core::Response>& responses) {
  NodeMetrics& m = ctx_.metrics;
  ++m.peer_batches;
  m.peer_batch_calls.Observe(static_cast<double>(calls));
  // Call answers every call Unreachable when the batch got no answer.
  bool answered = std::any_of(responses.begin(), responses.end(), [](const core::Response& r) {
    return !std::holds_alternative<core::Unreachable>(r);
  });
  PeerMetrics& peer = m.peers[to];
  peer.reachable = answered;
  if (answered) {
    peer.rtt.Observe(elapsed);
  } else {
    ++peer.batches_failed;
  }
}

asio::awaitable<std::vector<core::Response>> PeerNetwork::Call(
    const core::PeerId& to, const std::vector<core::SendEffect>& calls) {
  auto failed = [&](std::string reason) {
    return std::vector<core::Response>(calls.size(), Unreachable(std::move(reason)));
  };
  // Calls queued in one turn have (nearly) the same deadline; the batch
  // waits for the latest, so none is cut short.
  core::TimeMs deadline = 0;
  for (const core::SendEffect& fx : calls) deadline = std::max(deadline, fx.deadline);
  milliseconds remaining(deadline - Now());
  if (remaining.count() <= 0) co_return failed("deadline passed before the call was sent");
  std::weak_ptr<bool> alive = ctx_.alive;
  auto peer = co_await PeerClient(to, remaining);
  if (alive.expired()) co_return failed(std::string(ShuttingDown()));
  if (!peer.ok()) co_return failed(Reason(peer.status()));
  remaining = milliseconds(std::max<core::TimeMs>(1, deadline - Now()));
  try {
    wire::Peer::Client client = std::move(*peer);
    auto answered = co_await Exchange(std::move(client), calls, remaining);
    if (!answered.ok()) co_return failed(Reason(answered.status()));
    co_return std::move(*answered);
  } catch (const kj::Exception& e) {
    // A malformed answer from a peer: as good as none.
    co_return failed(e.getDescription().cStr());
  } catch (const std::exception& e) {
    co_return failed(e.what());
  }
}

asio::awaitable<absl::StatusOr<std::vector<core::Response>>> PeerNetwork::Exchange(
    wire::Peer::Client peer, const std::vector<core::SendEffect>& calls, milliseconds within) {
  // One coroutine per method: g++ 12 warns wrongly (mismatched-new-delete)
  // about one coroutine that awaits several kinds of Cap'n Proto response.
  if (std::holds_alternative<core::DigestRequest>(calls.front().request)) {
    return CallDigest(std::move(peer), within);
  }
  if (const auto* pull = std::get_if<core::PullRequest>(&calls.front().request)) {
    return CallPull(std::move(peer), *pull, within);
  }
  return CallBatch(std::move(peer), calls, within);
}

namespace {

// A peer's answer over this node's limits counts as no answer
// (core/validate.h).
void Screen(const core::Limits& limits, std::vector<core::Response>& responses) {
  for (core::Response& r : responses) {
    if (std::optional<std::string> bad = core::ValidateResponse(limits, r)) {
      r = Unreachable(absl::StrCat("refused the peer's answer: ", *bad));
    }
  }
}

}  // namespace

asio::awaitable<absl::StatusOr<std::vector<core::Response>>> PeerNetwork::CallBatch(
    wire::Peer::Client peer, const std::vector<core::SendEffect>& calls, milliseconds within) {
  auto req = peer.callRequest();
  req.setFrom(ctx_.identity.peer_id);
  auto list = req.initCalls(calls.size());
  for (size_t i = 0; i < calls.size(); ++i) ToWire(calls[i].request, list[i]);
  auto sent = req.send();
  auto r = co_await net::AwaitWithin(kj::mv(sent), within);
  if (!r.ok()) co_return r.status();
  auto replies = r->getReplies();
  if (replies.size() != calls.size()) {
    co_return absl::InternalError(
        absl::StrCat("peer answered ", calls.size(), " calls with ", replies.size(), " replies"));
  }
  std::vector<core::Response> out;
  out.reserve(calls.size());
  for (auto reply : replies) out.push_back(FromWire(reply));
  Screen(ctx_.options.limits, out);
  co_return out;
}

asio::awaitable<absl::StatusOr<std::vector<core::Response>>> PeerNetwork::CallDigest(
    wire::Peer::Client peer, milliseconds within) {
  auto req = peer.digestRequest();
  auto sent = req.send();
  auto r = co_await net::AwaitWithin(kj::mv(sent), within);
  if (!r.ok()) co_return r.status();
  std::vector<core::Response> out;
  out.push_back(FromWire(*r));
  Screen(ctx_.options.limits, out);
  co_return out;
}

asio::awaitable<absl::StatusOr<std::vector<core::Response>>> PeerNetwork::CallPull(
    wire::Peer::Client peer, const core::PullRequest& pull, milliseconds within) {
  auto req = peer.pullRequest();
  ToWire(pull, req);
  auto sent = req.send();
  auto r = co_await net::AwaitWithin(kj::mv(sent), within);
  if (!r.ok()) co_return r.status();
  std::vector<core::Response> out;
  out.push_back(FromWire(*r));
  Screen(ctx_.options.limits, out);
  co_return out;
}

asio::awaitable<absl::StatusOr<wire::Peer::Client>> PeerNetwork::PeerClient(core::PeerId id,
                                                                            milliseconds timeout) {
  // Calls to this node never get here: the engine driver hands them to the
  // engine.
  if (id == ctx_.identity.peer_id) co_return absl::InternalError("a node does not call itself");
  auto known = address_of_.find(id);
  std::string address = known == address_of_.end() ? std::string() : known->second;
  if (address.empty()) co_return absl::NotFoundError(absl::StrCat("peer ", id, " is not known"));
  if (auto it = peers_.find(address); it != peers_.end()) {
    if (!it->second.connection->disconnected()) co_return it->second.peer;
    peers_.erase(it);
  }
  std::weak_ptr<bool> alive = ctx_.alive;
  auto connection =
      co_await net::RpcConnection::Connect(ctx_.reactor, address, timeout, ctx_.options.tls);
  if (alive.expired()) co_return absl::UnavailableError(ShuttingDown());
  if (!connection.ok()) co_return connection.status();
  // With TLS, the node at the address must prove it is the peer meant: an
  // address may since belong to another node.
  if (const net::PeerCertificate* cert = (*connection)->peer_certificate();
      cert != nullptr && cert->common_name != id) {
    co_return absl::UnavailableError(
        absl::StrCat("the node at ", address, " is ", cert->common_name, ", not peer ", id));
  }
  // A concurrent call may have connected first; keep one connection.
  if (auto it = peers_.find(address);
      it != peers_.end() && !it->second.connection->disconnected()) {
    co_return it->second.peer;
  }
  // The peer refuses a shard count other than its own: the calls then
  // fail with its message naming both (servers.cc).
  auto face = (*connection)->Bootstrap<wire::Node>().peerRequest();
  face.setShard(range_.shard);
  face.setShards(range_.shards);
  wire::Peer::Client peer = face.send().getPeer();
  peers_.insert_or_assign(address, PeerConnection{std::move(*connection), peer});
  co_return peer;
}

}  // namespace replicator::node
