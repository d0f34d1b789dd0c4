#include "sim/sim_network.h"

#include <cstddef>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "sim/describe.h"

namespace replicator::sim {

using core::TimeMs;

namespace {

template <typename Variant, typename T, size_t I = 0>
constexpr size_t IndexOf() {
  if constexpr (std::is_same_v<std::variant_alternative_t<I, Variant>, T>) {
    return I;
  } else {
    return IndexOf<Variant, T, I + 1>();
  }
}

// The Response alternative that answers `request` (messages.h pairs them).
size_t AnswerKind(const core::Request& request) {
  return std::visit(
      [](const auto& q) -> size_t {
        using Q = std::decay_t<decltype(q)>;
        using R = core::Response;
        if constexpr (std::is_same_v<Q, core::HandleRequest>) {
          return IndexOf<R, core::HandleResponse>();
        } else if constexpr (std::is_same_v<Q, core::ForwardRequest>) {
          return IndexOf<R, core::ForwardResponse>();
        } else if constexpr (std::is_same_v<Q, core::AcceptRequest>) {
          return IndexOf<R, core::AcceptResponse>();
        } else if constexpr (std::is_same_v<Q, core::PrepareRequest>) {
          return IndexOf<R, core::PrepareResponse>();
        } else if constexpr (std::is_same_v<Q, core::ReadRequest>) {
          return IndexOf<R, core::ReadResponse>();
        } else if constexpr (std::is_same_v<Q, core::ResolveRequest>) {
          return IndexOf<R, core::ResolveResponse>();
        } else if constexpr (std::is_same_v<Q, core::DigestRequest>) {
          return IndexOf<R, core::DigestResponse>();
        } else if constexpr (std::is_same_v<Q, core::PullRequest>) {
          return IndexOf<R, core::PullResponse>();
        } else if constexpr (std::is_same_v<Q, core::ConfigPrepareRequest> ||
                             std::is_same_v<Q, core::ConfigAcceptRequest>) {
          return IndexOf<R, core::ConfigVoteResponse>();
        } else if constexpr (std::is_same_v<Q, core::ConfigLearnRequest>) {
          return IndexOf<R, core::ConfigLearnResponse>();
        } else {
          static_assert(std::is_same_v<Q, core::ChangeRequest>);
          return IndexOf<R, core::ChangeResponse>();
        }
      },
      request);
}

}  // namespace

SimNetwork::SimNetwork(World* world) : world_(*world), endpoints_(world->node_count()) {}

bool SimNetwork::Connected(int a, int b) const {
  return endpoints_[a].group == endpoints_[b].group && !endpoints_[a].isolated &&
         !endpoints_[b].isolated;
}

int SimNetwork::NodeOf(const core::PeerId& id) const {
  for (const SimNode& node : world_.nodes()) {
    if (node.id == id) return node.index;
  }
  return -1;
}

void SimNetwork::OnCrash(int node) { endpoints_[node].inbound.clear(); }

int SimNetwork::open_requests(int node) const {
  return static_cast<int>(endpoints_[node].inbound.size());
}

TimeMs SimNetwork::NetDelay() {
  const FaultParams& f = world_.config().fault;
  TimeMs delay = static_cast<TimeMs>(world_.Uniform(f.net_min_ms, f.net_max_ms));
  if (world_.faults_active() && world_.Chance(f.slow_message)) {
    delay += static_cast<TimeMs>(world_.Uniform(0, f.slow_message_max_ms));
  }
  return delay;
}

// --- Requests and responses -------------------------------------------------

void SimNetwork::HandleSend(int from_index, core::SendEffect send) {
  SimStats& stats = world_.stats();
  const SimNode& node = world_.node(from_index);
  stats.messages++;
  if (std::holds_alternative<core::PrepareRequest>(send.request)) stats.prepares++;
  if (std::holds_alternative<core::ResolveRequest>(send.request)) stats.resolves++;
  if (const auto* pull = std::get_if<core::PullRequest>(&send.request);
      pull != nullptr && !pull->after.empty()) {
    stats.pulls_resumed++;
  }
  const int to = NodeOf(send.to);
  const uint64_t call = next_call_++;
  world_.checker().OnSend(node.index, send.request);
  History::Tags tags = world_.history().TagsOf(send.request);
  world_.Trace(absl::StrCat(node.id, " -> ", send.to, " call#", send.call_id, " ",
                            Describe(send.request), " deadline=", send.deadline),
               tags);
  calls_.emplace(call, Call{node.index, node.incarnation, send.call_id, to, send.deadline, tags});
  world_.At(send.deadline, [this, call] { CallDeadline(call); });
  if (to < 0) {
    world_.checker().Fail("C", {}, absl::StrCat(node.id, " sends to unknown peer '", send.to, "'"));
    return;
  }
  if (to == node.index) {
    // The engine contract: an engine handles its calls to itself.
    world_.checker().Fail("C", {}, absl::StrCat(node.id, " sends ", Describe(send.request),
                                                " to itself"));
    return;
  }
  const SimNode& target = world_.node(to);
  if (!target.engine) {
    world_.Trace(
        absl::StrCat("  ", node.id, " call#", send.call_id, " lost: ", target.id, " is down"),
        tags);
    return;
  }
  if (!Connected(node.index, to)) {
    world_.Trace(
        absl::StrCat("  ", node.id, " call#", send.call_id, " lost: partitioned from ", target.id),
        tags);
    return;
  }
  if (world_.faults_active() && world_.Chance(world_.config().fault.drop)) {
    stats.dropped++;
    world_.Trace(absl::StrCat("  ", node.id, " call#", send.call_id, " dropped"), tags);
    return;
  }
  const int from = node.index;
  const uint64_t incarnation = target.incarnation;
  if (world_.faults_active() && world_.Chance(world_.config().fault.duplicate)) {
    stats.duplicated++;
    world_.At(world_.now() + NetDelay(),
              [this, call, from, to, incarnation, request = send.request] {
                DeliverRequest(call, from, to, incarnation, request, /*duplicate=*/true);
              });
  }
  world_.At(world_.now() + NetDelay(),
            [this, call, from, to, incarnation, request = std::move(send.request)]() mutable {
              DeliverRequest(call, from, to, incarnation, std::move(request),
                             /*duplicate=*/false);
            });
}

void SimNetwork::DeliverRequest(uint64_t call, int from, int to, uint64_t to_incarnation,
                                core::Request request, bool duplicate) {
  SimNode& target = world_.node(to);
  const SimNode& sender = world_.node(from);
  if (!target.engine || target.incarnation != to_incarnation) {
    world_.Trace(absl::StrCat(target.id, " <- ", sender.id,
                              " lost (receiver restarted): ", Describe(request)),
                 world_.history().TagsOf(request));
    return;
  }
  if (from != to && !Connected(from, to)) {
    world_.Trace(
        absl::StrCat(target.id, " <- ", sender.id, " lost (partitioned): ", Describe(request)),
        world_.history().TagsOf(request));
    return;
  }
  Endpoint& endpoint = endpoints_[to];
  const uint64_t inbound = endpoint.next_inbound++;
  std::optional<core::ProposalId> resolve;
  if (auto* r = std::get_if<core::ResolveRequest>(&request)) resolve = r->proposal;
  History::Tags tags = world_.history().TagsOf(request);
  world_.Trace(absl::StrCat(target.id, " <- ", sender.id, " in#", inbound,
                            duplicate ? " (duplicate) " : " ", Describe(request)),
               tags);
  endpoint.inbound.emplace(
      inbound, Inbound{call, duplicate, AnswerKind(request), std::move(resolve), std::move(tags)});
  world_.checker().OnDeliver(to, request);
  // The simulated network knows who sent what: every sender is
  // authenticated, as over TLS.
  target.engine->OnRequest(inbound, std::move(request), world_.now(),
                           core::Sender{sender.id, /*authenticated=*/true});
  world_.Drain(to);
}

void SimNetwork::HandleRespond(int index, core::RespondEffect respond) {
  const SimNode& node = world_.node(index);
  Endpoint& endpoint = endpoints_[index];
  auto it = endpoint.inbound.find(respond.inbound_id);
  if (it == endpoint.inbound.end()) {
    world_.checker().Fail(
        "C", {},
        absl::StrCat(node.id, " responds to in#", respond.inbound_id,
                     " which is unknown or already answered: ", Describe(respond.response)));
    return;
  }
  Inbound inbound = std::move(it->second);
  endpoint.inbound.erase(it);
  History::Tags tags = std::move(inbound.tags);
  world_.history().AddTags(tags, respond.response);
  world_.Trace(
      absl::StrCat(node.id, " respond in#", respond.inbound_id, " ", Describe(respond.response)),
      tags);
  if (respond.response.index() != inbound.answer_kind) {
    world_.checker().Fail("C", {},
                          absl::StrCat(node.id, " answers in#", respond.inbound_id, " with ",
                                       Describe(respond.response), ", not the kind it asked for"));
    return;
  }
  if (auto* r = std::get_if<core::ResolveResponse>(&respond.response); r && inbound.resolve) {
    world_.checker().OnResolveAnswered(index, *inbound.resolve, *r);
  }
  const std::string what = absl::StrCat("  ", node.id, " answer to in#", respond.inbound_id);
  if (inbound.duplicate) {
    world_.Trace(absl::StrCat(what, " discarded: answer to a duplicate"), tags);
    return;
  }
  auto call_it = calls_.find(inbound.call);
  if (call_it == calls_.end()) {
    world_.Trace(absl::StrCat(what, " discarded: the call already ended"), tags);
    return;
  }
  const Call& call = call_it->second;
  const SimNode& caller = world_.node(call.from);
  if (!caller.engine || caller.incarnation != call.from_incarnation) {
    world_.Trace(absl::StrCat(what, " discarded: the caller restarted"), tags);
    return;
  }
  if (!Connected(call.from, index)) {
    world_.Trace(absl::StrCat(what, " lost: partitioned from ", caller.id), tags);
    return;
  }
  if (world_.faults_active() && world_.Chance(world_.config().fault.drop)) {
    world_.stats().dropped++;
    world_.Trace(absl::StrCat(what, " dropped"), tags);
    return;
  }
  const uint64_t id = inbound.call;
  world_.At(world_.now() + NetDelay(),
            [this, id, response = std::move(respond.response)]() mutable {
              DeliverResponse(id, std::move(response));
            });
}

void SimNetwork::DeliverResponse(uint64_t id, core::Response response) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  const Call call = it->second;
  SimNode& caller = world_.node(call.from);
  if (!caller.engine || caller.incarnation != call.from_incarnation) {
    calls_.erase(it);
    return;
  }
  History::Tags tags = call.tags;
  world_.history().AddTags(tags, response);
  if (world_.now() >= call.deadline) {
    world_.Trace(absl::StrCat(caller.id, " late response to call#", call.call_id,
                              " discarded (deadline ", call.deadline, ")"),
                 tags);
    return;
  }
  if (call.to != call.from && !Connected(call.to, call.from)) {
    world_.Trace(absl::StrCat(caller.id, " response to call#", call.call_id, " lost (partitioned)"),
                 tags);
    return;
  }
  calls_.erase(it);
  world_.Trace(absl::StrCat(caller.id, " <- ", world_.node(call.to).id, " call#", call.call_id, " ",
                            Describe(response)),
               tags);
  caller.engine->OnResponse(call.call_id, std::move(response), world_.now());
  world_.Drain(call.from);
}

void SimNetwork::CallDeadline(uint64_t id) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  const Call call = it->second;
  calls_.erase(it);
  SimNode& caller = world_.node(call.from);
  if (!caller.engine || caller.incarnation != call.from_incarnation) return;
  world_.Trace(absl::StrCat(caller.id, " call#", call.call_id, " to ",
                            call.to >= 0 ? world_.node(call.to).id : "?", " Unreachable(deadline)"),
               call.tags);
  caller.engine->OnResponse(call.call_id, core::Unreachable{"deadline exceeded"}, world_.now());
  world_.Drain(call.from);
}

// --- Partitions -------------------------------------------------------------

std::string SimNetwork::ChoosePartition() {
  const int n = world_.node_count();
  const std::vector<SimNode>& nodes = world_.nodes();
  // 0: one node alone; 1: one whole cluster alone (a random split with a
  // single cluster); 2: two random sides.
  const uint64_t roll = world_.Uniform(0, 2);
  std::string kind;
  if (roll == 0) {
    const int alone = static_cast<int>(world_.Uniform(0, n - 1));
    for (const SimNode& node : nodes) endpoints_[node.index].group = node.index == alone ? 1 : 0;
    world_.stats().partitions_node++;
    kind = absl::StrCat("node ", nodes[alone].id, " cut off");
  } else if (roll == 1 && world_.config().total_clusters() > 1) {
    const int cluster = static_cast<int>(world_.Uniform(0, world_.config().total_clusters() - 1));
    for (const SimNode& node : nodes) {
      endpoints_[node.index].group = node.cluster == cluster ? 1 : 0;
    }
    world_.stats().partitions_cluster++;
    kind = absl::StrCat("cluster c", cluster, " cut off");
  } else {
    int in_zero = 0;
    for (Endpoint& endpoint : endpoints_) {
      endpoint.group = world_.Chance(0.5) ? 1 : 0;
      in_zero += endpoint.group == 0;
    }
    if (in_zero == 0 || in_zero == n) {
      Endpoint& flip = endpoints_[world_.Uniform(0, n - 1)];
      flip.group = 1 - flip.group;
    }
    kind = "random split";
  }
  std::string sides[2];
  for (const SimNode& node : nodes) {
    absl::StrAppend(&sides[endpoints_[node.index].group], " ", node.id);
  }
  return absl::StrCat(kind, ": {", sides[0], " } | {", sides[1], " }");
}

void SimNetwork::SchedulePartition(TimeMs after) {
  world_.At(world_.now() + after, [this] {
    if (!world_.faults_active()) return;
    const FaultParams& f = world_.config().fault;
    const std::string shape = ChoosePartition();
    world_.stats().partitions++;
    const uint64_t generation = ++partition_generation_;
    world_.Trace(absl::StrCat("PARTITION ", shape), {}, History::LineKind::kGlobal);
    world_.At(
        world_.now() + static_cast<TimeMs>(world_.Uniform(f.partition_min_ms, f.partition_max_ms)),
        [this, generation] {
          if (!world_.faults_active() || generation != partition_generation_) return;
          for (Endpoint& endpoint : endpoints_) endpoint.group = 0;
          world_.Trace("HEAL partition", {}, History::LineKind::kGlobal);
          SchedulePartition(world_.Exponential(world_.config().fault.partition_every_ms));
        });
  });
}

void SimNetwork::Heal() {
  for (Endpoint& endpoint : endpoints_) {
    endpoint.group = 0;
    endpoint.isolated = false;
  }
}

}  // namespace replicator::sim
