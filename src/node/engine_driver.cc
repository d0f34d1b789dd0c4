#include "node/engine_driver.h"

#include <algorithm>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <type_traits>
#include <variant>

#include "core/wire_limits.h"
#include "fmt/format.h"
#include "net/reactor.h"
#include "util/log.h"

namespace replicator::node {

using std::chrono::milliseconds;

EngineDriver::EngineDriver(const NodeContext& ctx, core::ShardRange range,
                           storage::Storage* storage, core::DurableState recovered,
                           uint64_t incarnation, PeerNetwork& network, Failpoints& failpoints)
    : ctx_(ctx),
      storage_(storage),
      network_(network),
      failpoints_(failpoints),
      puts_(ctx.io().get_executor()),
      gets_(ctx.io().get_executor()),
      wakeup_(ctx.io()) {
  core::EngineConfig config;
  config.self = ctx_.identity.peer_id;
  config.cluster = ctx_.options.cluster;
  config.incarnation = incarnation;
  config.random_seed =
      std::hash<std::string>()(ctx_.identity.peer_id) ^ incarnation ^ (uint64_t{range.shard} << 48);
  config.limits = ctx_.options.limits;
  config.shard = range;
  config.call_deadline_ms = ctx_.options.call_deadline.count();
  config.lease_ms = ctx_.options.lease.count();
  // A pull's answer must fit in one message (core/wire_limits.h).
  config.catchup_pull_max_bytes = static_cast<uint32_t>(
      std::min<size_t>(config.catchup_pull_max_bytes, core::BatchBudgetBytes(config.limits)));
  engine_ = std::make_unique<core::Engine>(config, storage_, std::move(recovered));
}

void EngineDriver::Shutdown() {
  wakeup_.cancel();
  // A put in flight may have reached its voters: its outcome is unknown.
  core::PutOutcome gone{core::PutOutcome::Kind::kOutcomeUnknown, {}, std::string(ShuttingDown())};
  puts_.CompleteAll(core::PutDoneEffect{0, gone, {}});
  gets_.CompleteAll(
      core::GetOutcome{core::GetOutcome::Kind::kUnavailable, {}, std::string(ShuttingDown())});
  get_started_.clear();
  // A change in flight may still be chosen: unavailable says only that
  // this node will not learn it (configuration() shows what it knows).
  auto changes = std::move(changes_);
  changes_.clear();
  for (auto& [id, done] : changes) {
    done(core::ChangeOutcome{core::ChangeOutcome::Kind::kUnavailable, std::string(ShuttingDown()),
                             engine_->configuration()});
  }
  auto inbound = std::move(inbound_);
  inbound_.clear();
  for (auto& [id, slot] : inbound) {
    slot.batch->Set(slot.index, Unreachable(std::string(ShuttingDown())));
  }
}

void EngineDriver::SetTopology(core::Topology topology) {
  engine_->SetTopology(std::move(topology), Now());
  Pump();
}

void EngineDriver::StartCatchUp() {
  engine_->StartCatchUp(Now());
  Pump();
}

// --- Driving the engine -----------------------------------------------------

void EngineDriver::Pump() {
  // Effects carried out here may feed the engine again (a call that fails at
  // once); the outer loop picks up whatever that produced.
  if (pumping_ || ctx_.shut_down) return;
  pumping_ = true;
  while (engine_->HasEffects()) {
    for (core::Effect& effect : engine_->TakeEffects()) Carry(effect);
  }
  pumping_ = false;
  ScheduleWakeup();
}

void EngineDriver::Carry(core::Effect& effect) {
  std::visit(
      [&](auto& fx) {
        using T = std::decay_t<decltype(fx)>;
        if constexpr (std::is_same_v<T, core::SendEffect>) {
          failpoints_.MaybeCrash(fx.request);
          Send(std::move(fx));
        } else if constexpr (std::is_same_v<T, core::RespondEffect>) {
          Respond(fx.inbound_id, std::move(fx.response));
        } else if constexpr (std::is_same_v<T, core::WriteEffect>) {
          Write(std::move(fx));
        } else if constexpr (std::is_same_v<T, core::PutDoneEffect>) {
          const uint64_t put_id = fx.put_id;
          puts_.Complete(put_id, std::move(fx));
        } else if constexpr (std::is_same_v<T, core::GetDoneEffect>) {
          CountGet(fx.get_id, fx.outcome);
          gets_.Complete(fx.get_id, std::move(fx.outcome));
        } else if constexpr (std::is_same_v<T, core::ChangeDoneEffect>) {
          auto it = changes_.find(fx.change_id);
          if (it == changes_.end()) return;
          auto done = std::move(it->second);
          changes_.erase(it);
          done(std::move(fx.outcome));
        } else if constexpr (std::is_same_v<T, core::ViolationEffect>) {
          util::Log(util::LogLevel::kError, "engine",
                    "SAFETY VIOLATION: two values for one key ({} bytes): {}", fx.key.size(),
                    fx.detail);
        }
      },
      effect);
}

void EngineDriver::Send(core::SendEffect effect) {
  // The engine handles its calls to this node itself; the network refuses one.
  if (!network_.Send(std::move(effect))) return;  // sent alone, not at the end of the turn
  PostFlush();
}

namespace {

// A full, read-only or failing disk: exit (status 1) with the reason, at
// once and without destructors (storage's teardown must not run over the
// failed write, nor anything answer after it).
[[noreturn]] void FailedWrite(const absl::Status& status) {
  fmt::print(stderr,
             "replicatord: fatal: a durable write failed, stopping so that nothing is answered "
             "that is not on disk (check the data dir's disk: full, read-only or failing): {}\n",
             status.ToString());
  std::fflush(stderr);
  std::_Exit(1);
}

}  // namespace

void EngineDriver::Write(core::WriteEffect effect) {
  // The callback runs on the storage thread. Completions of one group commit
  // reach the reactor as one posted handler, so the engine takes them all in
  // one turn and the node pumps once.
  storage_->Write(std::move(effect.batch),
                  [done = completed_writes_, &ctx = ctx_.io(), alive = ctx_.alive, this,
                   id = effect.write_id](absl::Status s) {
                    // A replica that cannot make its promises durable must
                    // not make them at all: exit here, on the storage
                    // thread, before the reactor answers anything more.
                    if (!s.ok()) FailedWrite(s);
                    bool first = false;
                    {
                      std::lock_guard<std::mutex> lock(done->mu);
                      first = done->writes.empty();
                      done->writes.emplace_back(id, std::move(s));
                    }
                    if (!first) return;  // a drain is already posted
                    asio::post(ctx, [alive, this] {
                      if (!alive.expired()) DrainCompletedWrites();
                    });
                  });
}

void EngineDriver::DrainCompletedWrites() {
  std::vector<std::pair<uint64_t, absl::Status>> writes;
  {
    std::lock_guard<std::mutex> lock(completed_writes_->mu);
    writes.swap(completed_writes_->writes);
  }
  core::TimeMs now = Now();
  for (auto& [id, status] : writes) {
    if (!status.ok()) FailedWrite(status);
    engine_->OnWriteDone(id, now);
  }
  Pump();
}

void EngineDriver::ScheduleWakeup() {
  std::optional<core::TimeMs> next = engine_->NextWakeup();
  if (!next || ctx_.shut_down) return;
  if (wakeup_at_ && *wakeup_at_ <= *next) return;  // an earlier wake-up is armed
  wakeup_at_ = next;
  wakeup_.expires_after(milliseconds(std::max<core::TimeMs>(0, *next - Now())));
  std::weak_ptr<bool> alive = ctx_.alive;
  wakeup_.async_wait([this, alive](asio::error_code ec) {
    if (ec || alive.expired()) return;
    wakeup_at_.reset();
    engine_->Tick(Now());
    Pump();
  });
}

// --- Calls out and their answers --------------------------------------------

void EngineDriver::PostFlush() {
  if (flush_posted_) return;
  flush_posted_ = true;
  asio::post(ctx_.io(), [this, alive = ctx_.alive] {
    if (!alive.expired()) Flush();
  });
}

void EngineDriver::Flush() {
  flush_posted_ = false;
  if (ctx_.shut_down) return;
  network_.Flush();
  Pump();
}

void EngineDriver::OnResponses(const std::vector<core::SendEffect>& calls,
                               std::vector<core::Response> responses) {
  core::TimeMs now = Now();
  for (size_t i = 0; i < calls.size(); ++i) {
    engine_->OnResponse(calls[i].call_id, std::move(responses[i]), now);
  }
  Pump();
}

void EngineDriver::Respond(uint64_t id, core::Response response) {
  auto it = inbound_.find(id);
  if (it == inbound_.end()) return;
  it->second.batch->Set(it->second.index, std::move(response));
  inbound_.erase(it);
}

// --- Client and peer calls in ------------------------------------------------

asio::awaitable<core::PutOutcome> EngineDriver::Put(core::Key key, core::Value value,
                                                    uint64_t request_id) {
  if (ctx_.shut_down) {
    co_return core::PutOutcome{
        core::PutOutcome::Kind::kUnavailable, {}, std::string(ShuttingDown())};
  }
  failpoints_.ArmForClientPuts();
  uint64_t id = next_id_++;
  auto slot = puts_.Add(id);
  const auto started = std::chrono::steady_clock::now();
  const size_t key_bytes = key.size();
  engine_->StartPut(id, std::move(key), std::move(value), request_id, Now(), WallNow());
  Pump();
  core::PutDoneEffect done = co_await Waiters<core::PutDoneEffect>::Wait(slot);
  core::PutOutcome outcome = std::move(done.outcome);
  ObservePut(std::chrono::steady_clock::now() - started, key_bytes, request_id, outcome,
             done.timings);
  if (failpoints_.TakeSlowPutReply()) {
    asio::steady_timer delay(ctx_.io(), Failpoints::kSlowPutReply);
    asio::error_code ec;
    co_await delay.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return outcome;
}

asio::awaitable<core::GetOutcome> EngineDriver::Get(core::Key key, core::Consistency consistency) {
  auto slot = StartGet(std::move(key), consistency);
  co_return co_await Waiters<core::GetOutcome>::Wait(std::move(slot));
}

std::shared_ptr<Waiters<core::GetOutcome>::Slot> EngineDriver::StartGet(
    core::Key key, core::Consistency consistency) {
  if (ctx_.shut_down) {
    auto slot = std::make_shared<Waiters<core::GetOutcome>::Slot>(ctx_.io().get_executor());
    slot->value =
        core::GetOutcome{core::GetOutcome::Kind::kUnavailable, {}, std::string(ShuttingDown())};
    return slot;
  }
  uint64_t id = next_id_++;
  auto slot = gets_.Add(id);
  get_started_.emplace(id, std::chrono::steady_clock::now());
  engine_->StartGet(id, std::move(key), consistency, Now());
  Pump();
  return slot;
}

void EngineDriver::ChangeMembership(core::MembershipChange change,
                                    std::function<void(core::ChangeOutcome)> done) {
  if (ctx_.shut_down) {
    done(core::ChangeOutcome{core::ChangeOutcome::Kind::kUnavailable, std::string(ShuttingDown()),
                             engine_->configuration()});
    return;
  }
  uint64_t id = next_id_++;
  changes_.emplace(id, std::move(done));
  engine_->ChangeMembership(id, std::move(change), Now());
  Pump();
}

asio::awaitable<std::vector<core::Response>> EngineDriver::Inbound(
    std::vector<core::Request> requests, core::Sender from) {
  if (ctx_.shut_down) {
    co_return std::vector<core::Response>(requests.size(),
                                          Unreachable(std::string(ShuttingDown())));
  }
  auto batch = std::make_shared<InboundBatch>(ctx_.io().get_executor(), requests.size());
  core::TimeMs now = Now();
  for (size_t i = 0; i < requests.size(); ++i) {
    uint64_t id = next_id_++;
    inbound_[id] = InboundSlot{batch, i};
    engine_->OnRequest(id, std::move(requests[i]), now, from);
  }
  Pump();
  co_return co_await batch->Wait();
}

}  // namespace replicator::node

namespace replicator::node {

namespace {

const char* PutOutcomeName(core::PutOutcome::Kind k) {
  switch (k) {
    case core::PutOutcome::Kind::kOk:
      return "ok";
    case core::PutOutcome::Kind::kKeyExists:
      return "keyExists";
    case core::PutOutcome::Kind::kConflict:
      return "conflict";
    case core::PutOutcome::Kind::kUnavailable:
      return "unavailable";
    case core::PutOutcome::Kind::kInvalidArgument:
      return "invalid";
    case core::PutOutcome::Kind::kOutcomeUnknown:
      return "outcomeUnknown";
  }
  return "?";
}

}  // namespace

void EngineDriver::ObservePut(std::chrono::steady_clock::duration elapsed, size_t key_bytes,
                              uint64_t request_id, const core::PutOutcome& outcome,
                              const core::PutTimings& t) {
  ctx_.metrics.put_duration.Observe(elapsed);
  if (elapsed < ctx_.options.slow_put_threshold) return;
  ++ctx_.metrics.slow_puts;
  // Where the time went (core::PutTimings): the last attempt's reserve
  // phase, its slowest remote cluster, and the decision (accept, and any
  // recovery).
  const std::string where =
      t.attempts == 0
          ? std::string("no round (answered here)")
          : fmt::format("{} attempt{}; last: reserve {} ms{}, decide {} ms", t.attempts,
                        t.attempts == 1 ? "" : "s", t.reserve_ms,
                        t.slowest.empty()
                            ? std::string()
                            : fmt::format(" (slowest cluster {}: {} ms)", t.slowest, t.slowest_ms),
                        t.accept_ms);
  util::Log(util::LogLevel::kWarn, "put",
            "slow put: {:.3f} s (threshold {} ms), outcome {}{}{}; {}; key {} bytes, request id {}",
            std::chrono::duration<double>(elapsed).count(), ctx_.options.slow_put_threshold.count(),
            PutOutcomeName(outcome.kind), outcome.message.empty() ? "" : ": ", outcome.message,
            where, key_bytes, request_id);
}

void EngineDriver::CountGet(uint64_t get_id, const core::GetOutcome& outcome) {
  if (auto it = get_started_.find(get_id); it != get_started_.end()) {
    ctx_.metrics.get_duration.Observe(std::chrono::steady_clock::now() - it->second);
    get_started_.erase(it);
  }
  switch (outcome.kind) {
    case core::GetOutcome::Kind::kFound:
      ++ctx_.metrics.gets_found;
      break;
    case core::GetOutcome::Kind::kNotFound:
      ++ctx_.metrics.gets_not_found;
      break;
    case core::GetOutcome::Kind::kUnavailable:
      ++ctx_.metrics.gets_unavailable;
      break;
    case core::GetOutcome::Kind::kInvalidArgument:
      ++ctx_.metrics.gets_invalid;
      break;
  }
}

}  // namespace replicator::node
