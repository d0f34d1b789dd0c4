#include "core/representative.h"

#include <algorithm>

#include "core/check.h"
#include "core/quorum.h"

namespace replicator::core {

uint32_t RepresentativeBudget(TimeMs remaining) {
  if (remaining <= 0) return 0;
  TimeMs budget = remaining * 8 / 10;
  return static_cast<uint32_t>(std::min<TimeMs>(budget, std::numeric_limits<uint32_t>::max()));
}

void Representative::HandleForward(uint64_t inbound_id, ForwardRequest request, TimeMs now) {
  const Configuration& config = membership_.Current();
  if (config.epoch == 0) {
    ctx_.Respond(inbound_id, ForwardResponse{});  // no configuration: no votes
    return;
  }
  // A reserve is counted under this node's epoch of its cluster: the
  // coordinator cannot know it, and tallies under the one answered with.
  if (auto* reserve = std::get_if<ReserveOp>(&request.op)) reserve->epoch = config.epoch;
  uint64_t id = ctx_.NextOpId();
  Fanout& op = forwards_[id];
  op.inbound_id = inbound_id;
  op.config = config;
  op.voters = config.voters.size();
  op.outstanding = config.voters.size();
  TimeMs deadline = now + request.deadline_ms;
  const std::vector<PeerId> voters = config.voters;
  for (const PeerId& voter : voters) {
    ctx_.Send(voter, HandleRequest{request.op}, deadline,
              [this, id, voter](Response&& r, TimeMs t) { OnVote(id, voter, std::move(r), t); });
  }
}

void Representative::OnVote(uint64_t id, const PeerId& voter, Response&& r, TimeMs now) {
  auto it = forwards_.find(id);
  if (it == forwards_.end()) return;
  Fanout& f = it->second;
  f.votes.push_back(Context::VoteFrom(voter, ctx_.cluster(), r));
  const Vote& v = f.votes.back();
  if (v.kind == Vote::Kind::kOk) ++f.oks;
  if (v.kind == Vote::Kind::kWrongEpoch) membership_.OnWrongEpoch(v.peer, v.epoch, v.configs, now);
  if (v.kind == Vote::Kind::kWrongGeneration) membership_.Learn(v.configs, now);
  // Without an ok majority every vote is needed: the coordinator weighs
  // stored, reserved and unreachable ones.
  if (--f.outstanding > 0 && !OkMajorityIsFinal(f.oks, f.voters)) return;
  ctx_.Respond(f.inbound_id, ForwardResponse{std::move(f.votes), std::move(f.config)});
  forwards_.erase(it);
}

void Representative::CheckInvariants() const {
  for (const auto& [id, f] : forwards_) {
    RP_CHECK(f.outstanding > 0 && f.outstanding <= f.voters, "forward ", id, " has ",
             f.outstanding, " of ", f.voters, " votes outstanding");
    RP_CHECK(f.votes.size() + f.outstanding == f.voters, "forward ", id, " counts ",
             f.votes.size(), " votes and ", f.outstanding, " outstanding of ", f.voters);
    RP_CHECK(!OkMajorityIsFinal(f.oks, f.voters), "forward ", id,
             " has an ok majority but did not answer");
  }
}

}  // namespace replicator::core
