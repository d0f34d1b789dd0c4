#include "core/context.h"

#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace replicator::core {

std::string ReasonOf(const Response& response) {
  if (const auto* u = std::get_if<Unreachable>(&response)) return u->reason;
  return "unexpected response type";
}

const char* DecisionName(Decision d) { return d == Decision::kCommit ? "commit" : "abort"; }

Context::Context(EngineConfig config, const CommittedView* committed)
    : config_(std::move(config)),
      committed_(committed),
      decided_(config_.decision_cache_capacity),
      rng_(config_.random_seed) {
  RP_CHECK(committed_ != nullptr, "an engine needs a committed view");
}

void Context::EndInput() {
  if (open_write_ == 0) return;
  PendingWrite& w = writes_[open_write_];
  w.emitted = true;
  // Moved, not copied: a batch holds every value it writes (a put's value,
  // a catch-up page of tens of thousands of entries), and the engine needs
  // only the write's continuations from here on.
  effects_.push_back(WriteEffect{open_write_, std::move(w.batch)});
  w.batch.mutations.clear();  // valid but unspecified after the move
  open_write_ = 0;
}

uint64_t Context::Send(const PeerId& to, Request request, TimeMs deadline, CallFn then) {
  uint64_t id = next_call_id_++;
  if (then) calls_.emplace(id, std::move(then));
  if (to == config_.self) {
    const uint64_t inbound = next_self_inbound_++;
    self_calls_.emplace(inbound, id);
    self_work_.push_back(SelfRequest{inbound, std::move(request)});
    return id;
  }
  effects_.push_back(SendEffect{id, to, std::move(request), deadline});
  return id;
}

void Context::Respond(uint64_t inbound_id, Response response) {
  if (inbound_id >= kSelfInbound) {
    auto it = self_calls_.find(inbound_id);
    RP_CHECK(it != self_calls_.end(), "self call ", inbound_id, " answered twice");
    self_work_.push_back(SelfResponse{it->second, std::move(response)});
    self_calls_.erase(it);
    return;
  }
  effects_.push_back(RespondEffect{inbound_id, std::move(response)});
}

std::optional<Context::SelfWork> Context::TakeSelfWork() {
  if (self_work_.empty()) return std::nullopt;
  SelfWork w = std::move(self_work_.front());
  self_work_.pop_front();
  return w;
}

void Context::ReportViolation(Key key, std::string detail) {
  if (input_trusted_) {
    ++stats_.safety_violations;
  } else {
    ++stats_.unverified_violation_reports;
    detail = absl::StrCat("(unverified: sent by a peer not authenticated as a member) ", detail);
  }
  effects_.push_back(ViolationEffect{std::move(key), std::move(detail)});
}

uint64_t Context::Mutate(Mutation m) {
  if (open_write_ == 0) {
    open_write_ = next_write_id_++;
    writes_[open_write_];
  }
  writes_[open_write_].batch.mutations.push_back(std::move(m));
  return open_write_;
}

void Context::AfterWrite(uint64_t write_id, WriteFn fn) {
  auto it = writes_.find(write_id);
  if (write_id == 0 || it == writes_.end()) {
    fn();
    return;
  }
  it->second.then.push_back(std::move(fn));
}

void Context::RecordDecision(const ProposalId& p, Decision d) {
  if (!decided_.Record(p, d)) {
    ReportViolation({}, absl::StrCat("proposal ", p.ToString(), " was decided both ways; kept ",
                                     DecisionName(*decided_.Find(p)), ", saw ", DecisionName(d)));
  }
}

Vote Context::MakeVote(Vote::Kind kind) const {
  Vote v;
  v.peer = config_.self;
  v.cluster = config_.cluster;
  v.kind = kind;
  return v;
}

Vote Context::VoteFrom(const PeerId& peer, const ClusterId& cluster, Response& response) {
  if (auto* h = std::get_if<HandleResponse>(&response)) return std::move(h->vote);
  Vote v;
  v.peer = peer;
  v.cluster = cluster;
  v.kind = Vote::Kind::kUnreachable;
  v.reason = ReasonOf(response);
  return v;
}

void Context::OnResponse(uint64_t call_id, Response response, TimeMs now) {
  auto it = calls_.find(call_id);
  if (it == calls_.end()) return;  // fire-and-forget, or a duplicate
  CallFn fn = std::move(it->second);
  calls_.erase(it);
  fn(std::move(response), now);
}

void Context::OnWriteDone(uint64_t write_id) {
  auto it = writes_.find(write_id);
  if (it == writes_.end() || !it->second.emitted) return;
  std::vector<WriteFn> then = std::move(it->second.then);
  writes_.erase(it);
  for (WriteFn& fn : then) fn();
}

std::vector<Effect> Context::TakeEffects() {
  std::vector<Effect> out;
  out.swap(effects_);
  return out;
}

void Context::CheckInvariants() const {
  RP_CHECK(open_write_ == 0, "write ", open_write_, " is still open between inputs");
  RP_CHECK(self_work_.empty(), self_work_.size(), " self calls left unhandled by an input");
  for (const auto& [inbound, call] : self_calls_) {
    RP_CHECK(inbound >= kSelfInbound && inbound < next_self_inbound_ && call < next_call_id_,
             "self call ", inbound, " -> ", call, " was never made");
  }
  for (const auto& [id, w] : writes_) {
    RP_CHECK(w.emitted, "write ", id, " was never emitted");
    RP_CHECK(w.batch.mutations.empty(), "write ", id, " kept mutations the driver holds");
    RP_CHECK(id < next_write_id_, "write ", id, " was never handed out");
  }
  for (const auto& [id, fn] : calls_) {
    RP_CHECK(id < next_call_id_, "call ", id, " was never sent");
    RP_CHECK(static_cast<bool>(fn), "call ", id, " waits with no continuation");
  }
}

}  // namespace replicator::core
