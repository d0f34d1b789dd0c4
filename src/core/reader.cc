#include "core/reader.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/quorum.h"
#include "core/shard.h"

namespace replicator::core {

void Reader::StartGet(uint64_t get_id, Key key, Consistency consistency, TimeMs now) {
  ++ctx_.stats().gets;
  if (std::optional<std::string> bad = ValidateKey(ctx_.config().limits, key)) {
    ctx_.Emit(GetDoneEffect{get_id, GetOutcome{GetOutcome::Kind::kInvalidArgument, {}, *bad}});
    return;
  }
  if (std::optional<std::string> other = KeyOutsideShard(ctx_.config().shard, key)) {
    ctx_.Emit(GetDoneEffect{get_id, GetOutcome{GetOutcome::Kind::kInvalidArgument, {}, *other}});
    return;
  }
  if (consistency == Consistency::kLocal) {
    GetOutcome out;
    if (std::optional<Replica::Committed> c = replica_.LookupCommitted(key)) {
      out.kind = GetOutcome::Kind::kFound;
      out.value = std::move(c->value);
    }
    ctx_.Emit(GetDoneEffect{get_id, std::move(out)});
    return;
  }
  StartReads(get_id, std::move(key), 1, now);
}

void Reader::StartReads(uint64_t get_id, Key key, int attempt, TimeMs now) {
  const Configuration& config = membership_.Current();
  if (config.epoch == 0) {
    ctx_.Emit(GetDoneEffect{
        get_id, GetOutcome{GetOutcome::Kind::kUnavailable,
                           {},
                           absl::StrCat("cluster ", ctx_.cluster(), " is not founded yet")}});
    return;
  }
  if (uint64_t removed = membership_.RemovedAt(ctx_.cluster()); removed != 0) {
    // No put counts this cluster any more: its majority misses what was
    // committed since, so it cannot answer for the federation.
    ctx_.Emit(GetDoneEffect{
        get_id, GetOutcome{GetOutcome::Kind::kUnavailable,
                           {},
                           absl::StrCat("cluster ", ctx_.cluster(),
                                        " was removed from the federation at generation ", removed,
                                        "; use a node of another cluster")}});
    return;
  }
  uint64_t id = ctx_.NextOpId();
  GetOp& op = gets_[id];
  op.get_id = get_id;
  op.key = key;
  op.epoch = config.epoch;
  op.attempt = attempt;
  op.voters = config.voters.size();
  op.outstanding = config.voters.size();
  const std::vector<PeerId> voters = config.voters;
  for (const PeerId& v : voters) {
    ctx_.Send(v, ReadRequest{key, op.epoch}, now + ctx_.config().call_deadline_ms,
              [this, id, v](Response&& r, TimeMs t) { OnRead(id, v, std::move(r), t); });
  }
}

void Reader::OnRead(uint64_t id, const PeerId& peer, Response&& r, TimeMs now) {
  auto it = gets_.find(id);
  if (it == gets_.end()) return;
  GetOp& op = it->second;
  --op.outstanding;
  auto* rr = std::get_if<ReadResponse>(&r);
  if (rr != nullptr && rr->kind == ReadResponse::Kind::kWrongEpoch) {
    // Not a read under this epoch: it does not count toward the majority.
    op.epoch_moved = true;
    if (op.first_error.empty()) {
      op.first_error = absl::StrCat("a voter is at epoch ", rr->epoch, ", not ", op.epoch);
    }
    membership_.OnWrongEpoch(peer, rr->epoch, rr->configs, now);
  } else if (rr != nullptr && rr->kind == ReadResponse::Kind::kNotReady) {
    // Not a read either: the voter may lack keys committed before its
    // cluster counted.
    ++op.not_ready;
    if (op.first_error.empty()) op.first_error = rr->reason;
  } else if (rr != nullptr) {
    ++op.answered;
    op.reads.push_back(std::move(*rr));
  } else if (op.first_error.empty()) {
    op.first_error = ReasonOf(r);
  }
  if (op.phase != GetOp::Phase::kRead) return;
  if (IsMajority(op.answered, op.voters) || op.outstanding == 0) EvaluateReads(id, now);
}

void Reader::EvaluateReads(uint64_t id, TimeMs now) {
  auto it = gets_.find(id);
  RP_CHECK(it != gets_.end(), "get ", id, " is not in flight");
  GetOp& op = it->second;
  if (!IsMajority(op.answered, op.voters)) {
    // Some voter moved on: read again under the epoch learned (a bounded
    // number of times; each is a real configuration change).
    constexpr int kMaxReadAttempts = 3;
    if (op.epoch_moved && op.attempt < kMaxReadAttempts && membership_.epoch() != op.epoch) {
      const uint64_t get_id = op.get_id;
      Key key = std::move(op.key);
      const int attempt = op.attempt + 1;
      gets_.erase(it);
      StartReads(get_id, std::move(key), attempt, now);
      return;
    }
    if (op.not_ready > 0 && IsMajority(op.answered + op.not_ready, op.voters)) {
      FinishGet(id, GetOutcome{GetOutcome::Kind::kUnavailable,
                               {},
                               absl::StrCat("cluster ", ctx_.cluster(),
                                            " is still catching up with the federation: only ",
                                            op.answered, " of ", op.voters,
                                            " voters could answer; ", op.first_error)});
      return;
    }
    FinishGet(id, GetOutcome{GetOutcome::Kind::kUnavailable, {},
                             absl::StrCat("only ", op.answered, " of ", op.voters,
                                          " voters of cluster ", ctx_.cluster(),
                                          " answered; ", op.first_error)});
    return;
  }
  for (ReadResponse& r : op.reads) {
    if (r.kind == ReadResponse::Kind::kCommitted) {
      FinishGet(id, GetOutcome{GetOutcome::Kind::kFound, std::move(r.value), {}});
      return;
    }
  }
  // A reservation may belong to a put that already answered ok: its
  // decision must be known before the key can be reported absent.
  std::vector<std::pair<ProposalId, Value>> pending;
  for (const ReadResponse& r : op.reads) {
    if (r.kind != ReadResponse::Kind::kReserved) continue;
    bool seen = std::any_of(pending.begin(), pending.end(),
                            [&](const auto& e) { return e.first == r.holder; });
    if (!seen) pending.emplace_back(r.holder, r.value);
  }
  if (pending.empty()) {
    FinishGet(id, GetOutcome{GetOutcome::Kind::kNotFound, {}, {}});
    return;
  }
  op.phase = GetOp::Phase::kResolve;
  op.resolving = pending.size();
  for (auto& [holder, value] : pending) {
    recovery_.ResolveRemote(
        holder, op.key,
        [this, id, value = std::move(value)](std::optional<Decision> d, const std::string& reason,
                                             TimeMs) { OnResolved(id, value, d, reason); },
        now);
  }
}

void Reader::OnResolved(uint64_t id, const Value& value, std::optional<Decision> d,
                        const std::string& reason) {
  auto it = gets_.find(id);
  if (it == gets_.end()) return;
  GetOp& g = it->second;
  if (d == Decision::kCommit) {
    g.found = value;
  } else if (!d && !g.unavailable) {
    g.unavailable = absl::StrCat("a reservation's outcome is unknown: ", reason);
  }
  if (--g.resolving > 0) return;
  if (g.found) {
    FinishGet(id, GetOutcome{GetOutcome::Kind::kFound, *g.found, {}});
  } else if (g.unavailable) {
    FinishGet(id, GetOutcome{GetOutcome::Kind::kUnavailable, {}, *g.unavailable});
  } else {
    FinishGet(id, GetOutcome{GetOutcome::Kind::kNotFound, {}, {}});
  }
}

void Reader::FinishGet(uint64_t id, GetOutcome outcome) {
  auto it = gets_.find(id);
  RP_CHECK(it != gets_.end(), "get ", id, " finished twice");
  ctx_.Emit(GetDoneEffect{it->second.get_id, std::move(outcome)});
  gets_.erase(it);
}

void Reader::CheckInvariants() const {
  for (const auto& [id, op] : gets_) {
    RP_CHECK(op.answered + op.not_ready + op.outstanding <= op.voters, "get ", id, " counts ",
             op.answered, " answers, ", op.not_ready, " not ready and ", op.outstanding,
             " outstanding of ", op.voters, " voters");
    RP_CHECK(op.phase == GetOp::Phase::kResolve || op.outstanding > 0, "get ", id,
             " reads with no answer outstanding");
    RP_CHECK(op.phase == GetOp::Phase::kRead || op.resolving > 0, "get ", id,
             " resolves nothing");
  }
}

}  // namespace replicator::core
