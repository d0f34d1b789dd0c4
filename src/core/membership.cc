#include "core/membership.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/acceptor.h"
#include "core/check.h"
#include "core/quorum.h"

namespace replicator::core {
namespace {

// Fewer voters than this may be configured only by a forced removal.
constexpr size_t kMinVoters = 3;
// A change keeps trying rounds for this many call deadlines: its acceptors
// may still be settling the current epoch.
constexpr TimeMs kChangeDeadlineCalls = 10;

const Configuration& NoConfiguration() {
  static const Configuration* none = new Configuration();
  return *none;
}

bool Sorted(const std::vector<PeerId>& v) {
  return std::is_sorted(v.begin(), v.end()) && std::adjacent_find(v.begin(), v.end()) == v.end();
}

// The peers in exactly one of `a` and `b` (both sorted).
size_t Difference(const std::vector<PeerId>& a, const std::vector<PeerId>& b) {
  std::vector<PeerId> diff;
  std::set_symmetric_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(diff));
  return diff.size();
}

}  // namespace

ProposedChange ProposeChange(const Configuration& base, const MembershipChange& change,
                             const std::vector<PeerId>& members) {
  ProposedChange out;
  if (base.epoch == 0) {
    out.error = absl::StrCat("cluster ", base.cluster, " has no configuration yet");
    return out;
  }
  const bool voter = base.Has(change.peer);
  if (change.kind == MembershipChange::Kind::kAdd) {
    if (voter) {
      out.error = absl::StrCat("peer ", change.peer, " is already a voter of cluster ",
                               base.cluster, " (epoch ", base.epoch, ")");
    } else if (std::find(members.begin(), members.end(), change.peer) == members.end()) {
      out.error = absl::StrCat("peer ", change.peer, " is not a member of cluster ", base.cluster);
    } else {
      out.voters = base.voters;
      out.voters.push_back(change.peer);
      std::sort(out.voters.begin(), out.voters.end());
    }
    return out;
  }
  if (!voter) {
    out.error = absl::StrCat("peer ", change.peer, " is not a voter of cluster ", base.cluster,
                             " (epoch ", base.epoch, ")");
  } else if (base.voters.size() == 1) {
    out.error = absl::StrCat("peer ", change.peer, " is the last voter of cluster ", base.cluster);
  } else if (base.voters.size() - 1 < kMinVoters && !change.force) {
    out.error = absl::StrCat("removing ", change.peer, " would leave cluster ", base.cluster,
                             " with ", base.voters.size() - 1, " voters; at least ", kMinVoters,
                             " are needed to survive a failure (force to remove anyway)");
  } else {
    for (const PeerId& v : base.voters) {
      if (v != change.peer) out.voters.push_back(v);
    }
  }
  return out;
}

Membership::Membership(Context& ctx, std::vector<Configuration> recovered,
                       std::vector<ConfigAcceptorRecord> recovered_acceptors)
    : ctx_(ctx) {
  for (Configuration& c : recovered) {
    if (c.cluster == ctx_.cluster()) {
      own_[c.epoch] = std::move(c);
    } else if (c.epoch > others_[c.cluster].epoch) {
      others_[c.cluster] = std::move(c);
    }
  }
  for (ConfigAcceptorRecord& r : recovered_acceptors) {
    if (r.cluster == ctx_.cluster()) acceptor_[r.epoch] = std::move(r);
  }
  // Each cluster's generation from any of its records that has one; every
  // record held gets it.
  for (const auto& [e, c] : own_) {
    if (c.generation != 0) generations_.emplace(c.cluster, c.generation);
    if (c.removed != 0) removals_.emplace(c.cluster, c.removed);
  }
  for (const auto& [cluster, c] : others_) {
    if (c.generation != 0) generations_.emplace(cluster, c.generation);
    if (c.removed != 0) removals_.emplace(cluster, c.removed);
  }
  for (const Configuration& c : recovered) {
    // (What was moved into own_ and others_ above is empty here.)
    if (!c.cluster.empty() && c.generation != 0) generations_.emplace(c.cluster, c.generation);
    if (!c.cluster.empty() && c.removed != 0) removals_.emplace(c.cluster, c.removed);
  }
  for (auto& [e, c] : own_) {
    c.generation = GenerationOf(c.cluster);
    c.removed = RemovedAt(c.cluster);
  }
  for (auto& [cluster, c] : others_) {
    c.generation = GenerationOf(cluster);
    c.removed = RemovedAt(cluster);
  }
  UpdateGeneration(kUnseeded);
  ctx_.stats().config_epoch = epoch();
}

const Configuration& Membership::Current() const {
  return own_.empty() ? NoConfiguration() : own_.rbegin()->second;
}

const Configuration* Membership::At(uint64_t epoch) const {
  auto it = own_.find(epoch);
  return it == own_.end() ? nullptr : &it->second;
}

const Configuration* Membership::Latest(const ClusterId& cluster) const {
  if (cluster == ctx_.cluster()) return own_.empty() ? nullptr : &own_.rbegin()->second;
  auto it = others_.find(cluster);
  return it == others_.end() ? nullptr : &it->second;
}

std::vector<Configuration> Membership::OwnHistory() const {
  std::vector<Configuration> out;
  for (const auto& [e, c] : own_) out.push_back(c);
  return out;
}

std::vector<Configuration> Membership::Known() const {
  std::vector<Configuration> out = OwnHistory();
  for (const auto& [cluster, c] : others_) out.push_back(c);
  return out;
}

std::vector<Configuration> Membership::Newest() const {
  std::vector<Configuration> out;
  if (!own_.empty()) out.push_back(own_.rbegin()->second);
  for (const auto& [cluster, c] : others_) out.push_back(c);
  return out;
}

uint64_t Membership::oldest_generation() const {
  uint64_t oldest = 0;
  for (const auto& [cluster, g] : generations_) {
    if (oldest == 0 || g < oldest) oldest = g;
  }
  return oldest;
}

uint64_t Membership::GenerationOf(const ClusterId& cluster) const {
  auto it = generations_.find(cluster);
  return it == generations_.end() ? 0 : it->second;
}

std::vector<Configuration> Membership::FoundedAfter(uint64_t g) const {
  std::vector<Configuration> out;
  for (const Configuration& c : Newest()) {
    if (c.generation > g || c.removed > g) out.push_back(c);
  }
  return out;
}

uint64_t Membership::RemovedAt(const ClusterId& cluster) const {
  auto it = removals_.find(cluster);
  return it == removals_.end() ? 0 : it->second;
}

std::vector<Configuration> Membership::Counted() const {
  std::vector<Configuration> out;
  for (Configuration& c : Newest()) {
    if (c.removed == 0) out.push_back(std::move(c));
  }
  return out;
}

void Membership::NoteClusterNumber(Configuration& c, uint64_t Configuration::*field,
                                   std::map<ClusterId, uint64_t>& known_numbers, const char* name,
                                   const char* verb) {
  auto found = known_numbers.find(c.cluster);
  const uint64_t known = found == known_numbers.end() ? 0 : found->second;
  uint64_t& heard = c.*field;
  if (heard == 0 || heard == known) {
    heard = known;
    return;
  }
  if (known != 0) {
    // Two for one cluster: the namer named it twice, or one founding slot
    // was not what it should be.
    ctx_.ReportViolation(
        absl::StrCat("config/", c.cluster, "/", name),
        absl::StrCat("cluster ", c.cluster, " is known here as ", verb, " at generation ", known,
                     " and was heard as ", verb, " at generation ", heard));
    heard = known;
    return;
  }
  known_numbers[c.cluster] = heard;
  // The records held without it get it, durably: a restart must not forget
  // it.
  if (c.cluster == ctx_.cluster()) {
    for (auto& [e, held] : own_) {
      held.*field = heard;
      durable_write_ = ctx_.Mutate(PutConfig{held});
    }
  } else if (auto it = others_.find(c.cluster); it != others_.end() && it->second.epoch != 0) {
    it->second.*field = heard;
    durable_write_ = ctx_.Mutate(PutConfig{it->second});
  }
}

void Membership::UpdateGeneration(TimeMs now) {
  // Each slot's holder: a founding, or a removal (which fills its slot as a
  // founding does); two for one slot is a reported violation.
  std::map<uint64_t, ClusterId> founded;
  for (const auto* numbers : {&generations_, &removals_}) {
    const char* name = numbers == &generations_ ? "generation" : "removed";
    for (const auto& [cluster, g] : *numbers) {
      auto [it, fresh] = founded.emplace(g, cluster);
      if (!fresh && now != kUnseeded) {
        ctx_.ReportViolation(absl::StrCat("config/", cluster, "/", name),
                             absl::StrCat("generation ", g,
                                          " is known as the founding or "
                                          "removal of both ",
                                          it->second, " and ", cluster));
      }
    }
  }
  // The longest run 1, 2, ... known: a cluster founded at a generation in a
  // gap would not be counted by this node's puts, so the gap caps G.
  uint64_t g = 0;
  while (founded.contains(g + 1)) ++g;
  if (g <= generation_) return;
  generation_ = g;
  ctx_.stats().federation_generation = g;
  if (now != kUnseeded && on_generation_) on_generation_(now);
}

bool Membership::Learn(const std::vector<Configuration>& configs, TimeMs now) {
  const uint64_t before = epoch();
  for (const Configuration& in : configs) {
    if (in.epoch == 0 || in.voters.empty() || !Sorted(in.voters)) continue;
    Configuration c = in;
    NoteClusterNumber(c, &Configuration::generation, generations_, "generation", "founded");
    NoteClusterNumber(c, &Configuration::removed, removals_, "removed", "removed");
    if (c.cluster != ctx_.cluster()) {
      // Durable like this cluster's: a restart must not lower G.
      Configuration& known = others_[c.cluster];
      if (c.epoch > known.epoch) {
        known = c;
        durable_write_ = ctx_.Mutate(PutConfig{c});
      }
      continue;
    }
    auto it = own_.find(c.epoch);
    if (it != own_.end()) {
      if (it->second.voters != c.voters) {
        // Two configurations chosen for one epoch: consensus failed.
        ctx_.ReportViolation(
            absl::StrCat("config/", c.cluster, "/", c.epoch),
            absl::StrCat("epoch ", c.epoch, " of cluster ", c.cluster, " is known here as {",
                         absl::StrJoin(it->second.voters, ","), "} and was heard as {",
                         absl::StrJoin(c.voters, ","), "}"));
      }
      continue;
    }
    own_[c.epoch] = c;
    durable_write_ = ctx_.Mutate(PutConfig{c});
  }
  UpdateGeneration(now);
  FillHistory(now);
  if (epoch() == before) return false;
  ctx_.stats().config_epoch = epoch();
  if (on_epoch_) on_epoch_(now);
  return true;
}

void Membership::FillHistory(TimeMs now) {
  if (own_.empty() || own_.size() == epoch() || history_asked_ >= epoch()) return;
  history_asked_ = epoch();
  // Any voter of the newest epoch learned every epoch before it (it settled
  // or was told them); ask each, the first answer fills the gaps.
  const ConfigLearnRequest learn{Known()};
  for (const PeerId& v : Current().voters) {
    if (v == ctx_.self()) continue;
    Exchange(v, learn, now, [this] {
      if (own_.size() != epoch()) history_asked_ = 0;  // still missing: ask again at a tick
    });
  }
}

void Membership::Exchange(const PeerId& to, const ConfigLearnRequest& learn, TimeMs now,
                          std::function<void()> then) {
  ctx_.Send(to, learn, now + ctx_.config().call_deadline_ms,
            [this, then = std::move(then)](Response&& r, TimeMs t) {
              if (auto* lr = std::get_if<ConfigLearnResponse>(&r)) Learn(lr->known, t);
              if (then) then();
            });
}

bool Membership::Votes(uint64_t epoch) const {
  if (ctx_.config().unsafe_membership == EngineConfig::UnsafeMembership::kIgnoreEpoch) {
    return epoch != 0;
  }
  return epoch != 0 && epoch == this->epoch() && Current().Has(ctx_.self());
}

std::vector<Configuration> Membership::RefusalConfigs(uint64_t request_epoch) const {
  if (request_epoch < epoch() || (request_epoch == epoch() && epoch() != 0)) return OwnHistory();
  return {};
}

void Membership::OnWrongEpoch(const PeerId& peer, uint64_t their_epoch,
                              const std::vector<Configuration>& configs, TimeMs now) {
  Learn(configs, now);
  if (their_epoch >= epoch() && !configs.empty()) return;
  // Either side may lag: a learn carries what this node knows, and its
  // answer what the peer knows.
  uint64_t& told = told_[peer];
  if (told >= epoch() && their_epoch <= epoch()) return;
  told = epoch();
  Exchange(peer, ConfigLearnRequest{Known()}, now);
}

void Membership::AfterDurable(std::function<void()> fn) {
  ctx_.AfterWrite(durable_write_, std::move(fn));
}

void Membership::OnTopology(TimeMs now) { Learn(ctx_.topology().founding, now); }

// --- Acceptor -----------------------------------------------------------------

std::optional<ConfigVoteResponse> Membership::CannotVote(const ClusterId& cluster, uint64_t target,
                                                         const std::vector<Configuration>& known,
                                                         TimeMs now) {
  ConfigVoteResponse no;
  no.kind = ConfigVoteResponse::Kind::kNotReady;
  if (cluster != ctx_.cluster()) {
    no.reason = absl::StrCat(ctx_.self(), " is of cluster ", ctx_.cluster(), ", not ", cluster);
    return no;
  }
  Learn(known, now);
  if (epoch() >= target) {
    no.kind = ConfigVoteResponse::Kind::kChosen;
    no.known = OwnHistory();
    return no;
  }
  if (epoch() + 1 < target) {
    no.reason = absl::StrCat(ctx_.self(), " knows epoch ", epoch(), " only");
    return no;
  }
  if (!Current().Has(ctx_.self())) {
    no.reason = absl::StrCat(ctx_.self(), " is not a voter of epoch ", epoch());
    return no;
  }
  const bool skip_settle =
      ctx_.config().unsafe_membership == EngineConfig::UnsafeMembership::kSkipSettle;
  if (!skip_settle && (!settled_ || !settled_())) {
    no.reason = absl::StrCat(ctx_.self(), " is still settling epoch ", epoch(),
                             " (catching up from a majority of its voters)");
    return no;
  }
  return std::nullopt;
}

ConfigAcceptorRecord& Membership::Record(uint64_t epoch) {
  ConfigAcceptorRecord& r = acceptor_[epoch];
  r.cluster = ctx_.cluster();
  r.epoch = epoch;
  return r;
}

void Membership::RespondDurably(uint64_t inbound_id, ConfigVoteResponse response, uint64_t write) {
  // Writes become durable in order: the later of the two covers both.
  ctx_.AfterWrite(std::max(write, durable_write_),
                  [this, inbound_id, response = std::move(response)]() mutable {
                    ctx_.Respond(inbound_id, std::move(response));
                  });
}

std::optional<ConfigVoteResponse> Membership::AbsurdBallot(uint64_t epoch, const Ballot& ballot) {
  auto it = acceptor_.find(epoch);
  const uint64_t promised = it != acceptor_.end() ? it->second.promised.round : 0;
  std::optional<std::string> bad = CheckBallotRound(ballot.round, promised);
  if (!bad) return std::nullopt;
  ++ctx_.stats().ballot_refusals;
  ConfigVoteResponse no;
  no.kind = ConfigVoteResponse::Kind::kNotReady;
  no.reason = absl::StrCat("refused: ", *bad);
  return no;
}

void Membership::HandlePrepare(uint64_t inbound_id, const ConfigPrepareRequest& request,
                               TimeMs now) {
  if (std::optional<ConfigVoteResponse> no =
          CannotVote(request.cluster, request.epoch, request.known, now)) {
    RespondDurably(inbound_id, std::move(*no), 0);
    return;
  }
  if (std::optional<ConfigVoteResponse> no = AbsurdBallot(request.epoch, request.ballot)) {
    RespondDurably(inbound_id, std::move(*no), 0);
    return;
  }
  ConfigAcceptorRecord& rec = Record(request.epoch);
  ConfigVoteResponse resp;
  uint64_t write = 0;
  if (rec.promised < request.ballot || rec.promised == request.ballot) {
    rec.promised = request.ballot;
    resp.kind = ConfigVoteResponse::Kind::kGranted;
    resp.accepted = rec.accepted;
    write = ctx_.Mutate(PutConfigAcceptor{rec});
  } else {
    resp.kind = ConfigVoteResponse::Kind::kRejected;
    resp.higher = rec.promised;
  }
  RespondDurably(inbound_id, std::move(resp), write);
}

void Membership::HandleAccept(uint64_t inbound_id, const ConfigAcceptRequest& request, TimeMs now) {
  if (std::optional<ConfigVoteResponse> no =
          CannotVote(request.cluster, request.epoch, request.known, now)) {
    RespondDurably(inbound_id, std::move(*no), 0);
    return;
  }
  // One voter per epoch, checked where it is voted on.
  if (!Sorted(request.voters) || Difference(Current().voters, request.voters) != 1) {
    ConfigVoteResponse no;
    no.kind = ConfigVoteResponse::Kind::kNotReady;
    no.reason = absl::StrCat("{", absl::StrJoin(request.voters, ","),
                             "} is not a one-voter change of epoch ", epoch());
    RespondDurably(inbound_id, std::move(no), 0);
    return;
  }
  if (std::optional<ConfigVoteResponse> no = AbsurdBallot(request.epoch, request.ballot)) {
    RespondDurably(inbound_id, std::move(*no), 0);
    return;
  }
  ConfigAcceptorRecord& rec = Record(request.epoch);
  ConfigVoteResponse resp;
  uint64_t write = 0;
  if (request.ballot < rec.promised) {
    resp.kind = ConfigVoteResponse::Kind::kRejected;
    resp.higher = rec.promised;
  } else {
    rec.promised = request.ballot;
    rec.accepted = ConfigAccepted{request.ballot, request.voters};
    resp.kind = ConfigVoteResponse::Kind::kGranted;
    write = ctx_.Mutate(PutConfigAcceptor{rec});
  }
  RespondDurably(inbound_id, std::move(resp), write);
}

void Membership::HandleLearn(uint64_t inbound_id, const ConfigLearnRequest& request, TimeMs now) {
  Learn(request.known, now);
  AfterDurable([this, inbound_id]() { ctx_.Respond(inbound_id, ConfigLearnResponse{Known()}); });
}

// --- Proposer -----------------------------------------------------------------

void Membership::Change(const MembershipChange& change, ChangeFn done, TimeMs now) {
  // The cluster the change is of: the peer's, as the membership view or a
  // configuration known here shows it.
  std::optional<ClusterId> cluster;
  if (const Member* m = ctx_.topology().Find(change.peer)) cluster = m->cluster;
  for (const Configuration& c : Known()) {
    if (!cluster && c.Has(change.peer)) cluster = c.cluster;
  }
  if (!cluster) {
    done(ChangeOutcome{ChangeOutcome::Kind::kInvalidArgument,
                       absl::StrCat("peer ", change.peer,
                                    " is not a member of any cluster known at ", ctx_.self()),
                       Current()});
    return;
  }
  if (uint64_t removed = RemovedAt(*cluster); removed != 0) {
    const Configuration* c = Latest(*cluster);
    done(ChangeOutcome{ChangeOutcome::Kind::kInvalidArgument,
                       absl::StrCat("cluster ", *cluster,
                                    " was removed from the federation at generation ", removed),
                       c != nullptr ? *c : Current()});
    return;
  }
  if (*cluster == ctx_.cluster()) {
    ChangeHere(change, std::move(done), now);
    return;
  }
  const Configuration* there = Latest(*cluster);
  ChangeThere(*cluster, there != nullptr ? there->voters : ctx_.topology().Voters(*cluster), 0,
              change, std::move(done), now);
}

void Membership::ChangeThere(const ClusterId& cluster, std::vector<PeerId> voters, size_t next,
                             const MembershipChange& change, ChangeFn done, TimeMs now) {
  if (next >= voters.size()) {
    done(ChangeOutcome{ChangeOutcome::Kind::kUnavailable,
                       absl::StrCat("no voter of cluster ", cluster, " answered the change"),
                       {}});
    return;
  }
  const PeerId to = voters[next];
  // The voter may take every round of its change, and the call's own time.
  const TimeMs deadline = now + (kChangeDeadlineCalls + 1) * ctx_.config().call_deadline_ms;
  ctx_.Send(to, ChangeRequest{change}, deadline,
            [this, cluster, voters = std::move(voters), next, change, done = std::move(done)](
                Response&& r, TimeMs t) mutable {
              if (auto* cr = std::get_if<ChangeResponse>(&r)) {
                Learn({cr->outcome.config}, t);
                done(std::move(cr->outcome));
                return;
              }
              ChangeThere(cluster, std::move(voters), next + 1, change, std::move(done), t);
            });
}

void Membership::HandleChange(uint64_t inbound_id, const ChangeRequest& request, TimeMs now) {
  ChangeFn done = [this, inbound_id](ChangeOutcome outcome) {
    ctx_.Respond(inbound_id, ChangeResponse{std::move(outcome)});
  };
  const Member* m = ctx_.topology().Find(request.change.peer);
  if (m != nullptr && m->cluster != ctx_.cluster()) {
    done(ChangeOutcome{ChangeOutcome::Kind::kInvalidArgument,
                       absl::StrCat("peer ", request.change.peer, " is of cluster ", m->cluster,
                                    ", not ", ctx_.cluster()),
                       Current()});
    return;
  }
  ChangeHere(request.change, std::move(done), now);
}

void Membership::ChangeHere(const MembershipChange& change, ChangeFn done, TimeMs now) {
  auto refuse = [&](ChangeOutcome::Kind kind, std::string message) {
    if (done) done(ChangeOutcome{kind, std::move(message), Current()});
  };
  if (proposer_) {
    refuse(ChangeOutcome::Kind::kBusy,
           absl::StrCat("a change of cluster ", ctx_.cluster(), " to epoch ",
                        proposer_->base.epoch + 1, " is in progress; retry when it is done"));
    return;
  }
  std::vector<PeerId> members = Current().voters;
  for (const Member& m : ctx_.topology().members) {
    if (m.cluster == ctx_.cluster()) members.push_back(m.id);
  }
  ProposedChange pc = ProposeChange(Current(), change, members);
  if (!pc.error.empty()) {
    refuse(ChangeOutcome::Kind::kInvalidArgument, std::move(pc.error));
    return;
  }
  Proposer& op = proposer_.emplace();
  op.done = std::move(done);
  op.change = change;
  op.base = Current();
  op.voters = std::move(pc.voters);
  op.give_up_at = now + kChangeDeadlineCalls * ctx_.config().call_deadline_ms;
  if (auto it = acceptor_.find(op.base.epoch + 1); it != acceptor_.end()) {
    op.max_round_seen = it->second.promised.round;
  }
  StartRound(now);
}

void Membership::StartRound(TimeMs now) {
  Proposer& op = *proposer_;
  if (op.max_round_seen >= kMaxBallotRound) {  // rounds never wrap
    Finish(ChangeOutcome{ChangeOutcome::Kind::kUnavailable,
                         absl::StrCat("config register of epoch ", op.base.epoch + 1,
                                      " reached ballot round ", op.max_round_seen,
                                      "; no higher round may be made"),
                         Current()},
           now);
    return;
  }
  ++op.rounds;
  op.ballot = Ballot{op.max_round_seen + 1, ctx_.self()};
  op.max_round_seen = op.ballot.round;
  op.phase = Proposer::Phase::kPrepare;
  op.granted = op.answered = 0;
  op.highest.reset();
  const uint64_t round = op.ballot.round;
  const ConfigPrepareRequest prepare{ctx_.cluster(), op.base.epoch + 1, op.ballot, OwnHistory()};
  for (const PeerId& v : op.base.voters) {
    ctx_.Send(v, prepare, now + ctx_.config().call_deadline_ms,
              [this, round](Response&& r, TimeMs t) { OnPrepareReply(round, std::move(r), t); });
  }
}

void Membership::OnPrepareReply(uint64_t round, Response&& r, TimeMs now) {
  if (!proposer_ || proposer_->phase != Proposer::Phase::kPrepare ||
      proposer_->ballot.round != round) {
    return;
  }
  Proposer& op = *proposer_;
  ++op.answered;
  auto* vr = std::get_if<ConfigVoteResponse>(&r);
  if (vr != nullptr && vr->kind == ConfigVoteResponse::Kind::kGranted) {
    ++op.granted;
    if (vr->accepted && (!op.highest || op.highest->ballot < vr->accepted->ballot)) {
      op.highest = vr->accepted;
    }
  } else {
    Refused(vr, r, now);
    return;
  }
  const size_t n = op.base.voters.size();
  if (!IsMajority(op.granted, n)) {
    if (op.answered == n) RoundFailed(now);
    return;
  }
  // Phase 2: the highest value accepted in an earlier ballot, if any, else
  // this change.
  op.phase = Proposer::Phase::kAccept;
  op.value = op.highest ? op.highest->voters : op.voters;
  op.granted = op.answered = 0;
  const ConfigAcceptRequest accept{ctx_.cluster(), op.base.epoch + 1, op.ballot, op.value,
                                   OwnHistory()};
  for (const PeerId& v : op.base.voters) {
    ctx_.Send(
        v, accept, now + ctx_.config().call_deadline_ms,
        [this, round](Response&& reply, TimeMs t) { OnAcceptReply(round, std::move(reply), t); });
  }
}

void Membership::OnAcceptReply(uint64_t round, Response&& r, TimeMs now) {
  if (!proposer_ || proposer_->phase != Proposer::Phase::kAccept ||
      proposer_->ballot.round != round) {
    return;
  }
  Proposer& op = *proposer_;
  ++op.answered;
  auto* vr = std::get_if<ConfigVoteResponse>(&r);
  if (vr == nullptr || vr->kind != ConfigVoteResponse::Kind::kGranted) {
    Refused(vr, r, now);
    return;
  }
  ++op.granted;
  if (IsMajority(op.granted, op.base.voters.size())) Chosen(op.value, now);
}

void Membership::Refused(const ConfigVoteResponse* vr, const Response& r, TimeMs now) {
  Proposer& op = *proposer_;
  if (vr != nullptr && vr->kind == ConfigVoteResponse::Kind::kChosen) {
    // The register was decided already; learn how, and end.
    const uint64_t target = op.base.epoch + 1;
    Learn(vr->known, now);
    const Configuration* chosen = At(target);
    if (chosen != nullptr && chosen->voters == op.voters) {
      Finish(ChangeOutcome{ChangeOutcome::Kind::kOk, {}, *chosen}, now);
    } else {
      Finish(ChangeOutcome{ChangeOutcome::Kind::kBusy,
                           absl::StrCat("cluster ", ctx_.cluster(), " moved to epoch ", epoch(),
                                        " by another change; retry against it"),
                           Current()},
             now);
    }
    return;
  }
  if (vr != nullptr && vr->kind == ConfigVoteResponse::Kind::kRejected) {
    op.max_round_seen = std::max(op.max_round_seen, vr->higher.round);
    op.last_error =
        absl::StrCat("ballot round ", vr->higher.round, " was promised to ", vr->higher.proposer);
  } else if (vr != nullptr) {
    op.last_error = vr->reason;
  } else {
    op.last_error = ReasonOf(r);
  }
  const size_t n = op.base.voters.size();
  if (!IsMajority(op.granted + (n - op.answered), n)) RoundFailed(now);
}

void Membership::RoundFailed(TimeMs now) {
  Proposer& op = *proposer_;
  if (now < op.give_up_at) {
    op.phase = Proposer::Phase::kWaiting;
    const TimeMs pause = std::max<TimeMs>(1, ctx_.config().call_deadline_ms / 4);
    op.retry_at = now + pause + static_cast<TimeMs>(ctx_.rng()() % pause);
    return;
  }
  Finish(ChangeOutcome{ChangeOutcome::Kind::kUnavailable,
                       absl::StrCat("no majority of the ", op.base.voters.size(),
                                    " voters of epoch ", op.base.epoch, " of cluster ",
                                    ctx_.cluster(), " agreed to epoch ", op.base.epoch + 1,
                                    " after ", op.rounds, " rounds; last: ", op.last_error),
                       Current()},
         now);
}

void Membership::Chosen(std::vector<PeerId> voters, TimeMs now) {
  Proposer& op = *proposer_;
  Configuration next{ctx_.cluster(), op.base.epoch + 1, std::move(voters), op.base.generation};
  Learn({next}, now);
  ++ctx_.stats().config_changes;
  Broadcast(now);
  if (next.voters == op.voters) {
    Finish(ChangeOutcome{ChangeOutcome::Kind::kOk, {}, next}, now);
  } else {
    Finish(ChangeOutcome{ChangeOutcome::Kind::kBusy,
                         absl::StrCat("an earlier proposal for epoch ", next.epoch, " of cluster ",
                                      ctx_.cluster(), " won ({", absl::StrJoin(next.voters, ","),
                                      "}); retry against it"),
                         next},
           now);
  }
}

void Membership::Broadcast(TimeMs now) {
  std::set<PeerId> to(Current().voters.begin(), Current().voters.end());
  for (const Member& m : ctx_.topology().members) to.insert(m.id);
  if (proposer_) to.insert(proposer_->base.voters.begin(), proposer_->base.voters.end());
  to.erase(ctx_.self());
  const ConfigLearnRequest learn{Known()};
  for (const PeerId& peer : to) Exchange(peer, learn, now);
}

void Membership::Finish(ChangeOutcome outcome, TimeMs now) {
  ChangeFn done = std::move(proposer_->done);
  const bool ok = outcome.kind == ChangeOutcome::Kind::kOk;
  proposer_.reset();
  if (done) {
    done(std::move(outcome));
  } else if (!ok) {
    const TimeMs retry = std::max<TimeMs>(1, ctx_.config().promote_retry_ms);
    promote_at_ = now + retry + static_cast<TimeMs>(ctx_.rng()() % retry);
  }
}

bool Membership::removed() const {
  if (Current().Has(ctx_.self())) return false;
  for (const auto& [e, c] : own_) {
    if (c.Has(ctx_.self())) return true;
  }
  return false;
}

// --- Time -----------------------------------------------------------------------

void Membership::Gossip(TimeMs now) {
  const TimeMs every = ctx_.config().catchup_interval_ms;
  if (every <= 0) return;
  if (gossip_at_ == kUnseeded) gossip_at_ = now + every;
  if (gossip_at_ > now) return;
  gossip_at_ = now + every;
  std::map<ClusterId, std::vector<PeerId>> others;
  for (const Member& m : ctx_.topology().members) {
    if (m.cluster != ctx_.cluster()) others[m.cluster].push_back(m.id);
  }
  const ConfigLearnRequest learn{Known()};
  for (const auto& [cluster, members] : others) {
    Exchange(members[ctx_.rng()() % members.size()], learn, now);
  }
}

void Membership::Tick(TimeMs now) {
  FillHistory(now);
  Gossip(now);
  if (proposer_ && proposer_->phase == Proposer::Phase::kWaiting && proposer_->retry_at <= now) {
    StartRound(now);
  }
  if (std::optional<TimeMs> at = ChangeWakeup(); at && *at <= now && !proposer_) {
    ChangeHere(MembershipChange{MembershipChange::Kind::kAdd, ctx_.self(), false, {}}, nullptr,
               now);
  }
}

std::optional<TimeMs> Membership::NextWakeup() const {
  std::optional<TimeMs> gossip;
  if (gossip_at_ != kUnseeded) gossip = gossip_at_;
  std::optional<TimeMs> change = ChangeWakeup();
  if (!gossip) return change;
  if (!change) return gossip;
  return std::min(*gossip, *change);
}

std::optional<TimeMs> Membership::ChangeWakeup() const {
  if (proposer_) {
    if (proposer_->phase == Proposer::Phase::kWaiting) return proposer_->retry_at;
    return std::nullopt;
  }
  // This node's own promotion: a learner of a configured cluster, caught up
  // (not merely settled, which the founding epoch always is).
  const Member* self = ctx_.topology().Find(ctx_.self());
  if (!ctx_.config().auto_promote || epoch() == 0 || Current().Has(ctx_.self()) || removed() ||
      self == nullptr || self->cluster != ctx_.cluster() || !caught_up_ || !caught_up_()) {
    return std::nullopt;
  }
  return promote_at_ == kUnseeded ? ctx_.now() : promote_at_;
}

void Membership::CheckInvariants() const {
  const Configuration* prev = nullptr;
  for (const auto& [e, c] : own_) {
    RP_CHECK(c.epoch == e && c.cluster == ctx_.cluster(), "configuration filed as epoch ", e,
             " is epoch ", c.epoch, " of ", c.cluster);
    RP_CHECK(!c.voters.empty() && Sorted(c.voters), "epoch ", e, " has unsorted or no voters");
    if (prev != nullptr && prev->epoch + 1 == e) {
      RP_CHECK(Difference(prev->voters, c.voters) == 1, "epoch ", e,
               " differs from the one before by other than one voter");
    }
    prev = &c;
  }
  for (const auto& [e, c] : own_) {
    RP_CHECK(c.generation == own_generation(), "epoch ", e, " of ", c.cluster, " has generation ",
             c.generation, ", the cluster ", own_generation());
  }
  for (const auto& [cluster, c] : others_) {
    RP_CHECK(c.cluster == cluster && c.generation == GenerationOf(cluster), "the newest of ",
             cluster, " is filed as ", c.cluster, " with generation ", c.generation);
    RP_CHECK(c.removed == RemovedAt(cluster), "the newest of ", cluster, " says removed at ",
             c.removed, ", the cluster ", RemovedAt(cluster));
  }
  for (const auto& [e, c] : own_) {
    RP_CHECK(c.removed == RemovedAt(c.cluster), "epoch ", e, " says removed at ", c.removed,
             ", the cluster ", RemovedAt(c.cluster));
  }
  for (const auto& [e, r] : acceptor_) {
    RP_CHECK(r.epoch == e && r.cluster == ctx_.cluster(), "config acceptor record filed as ", e,
             " is epoch ", r.epoch, " of ", r.cluster);
    RP_CHECK(!r.accepted || !(r.promised < r.accepted->ballot), "config acceptor ", e,
             " accepted above its promise");
  }
  if (proposer_) {
    const Proposer& op = *proposer_;
    RP_CHECK(op.granted <= op.answered && op.answered <= op.base.voters.size(),
             "config proposer counted ", op.granted, " grants of ", op.answered, " answers from ",
             op.base.voters.size(), " voters");
    RP_CHECK(Difference(op.base.voters, op.voters) == 1,
             "config proposer proposes other than a one-voter change");
  }
}

}  // namespace replicator::core
