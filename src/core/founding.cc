#include "core/founding.h"

#include <algorithm>
#include <random>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "core/check.h"

namespace replicator::core {
namespace {

constexpr char kFoundingPrefix[] = "found/";
constexpr size_t kMinFounders = 3;
// A voter's turn to propose comes this many call deadlines after the turn
// of the voter ranked before it; a failed proposal waits as long again
// (times its rank, plus jitter) before the next.
constexpr TimeMs kTurnCalls = 2;
// A node whose cluster has no configuration asks a peer this often.
constexpr TimeMs kAskCalls = 2;
// An operator's removal is retried for this many call deadlines.
constexpr TimeMs kRemovalCalls = 10;

const Key& SystemPrefix() {
  static const Key* prefix = new Key(1, '\0');
  return *prefix;
}

}  // namespace

bool IsSystemKey(const Key& key) { return !key.empty() && key[0] == '\0'; }

Key FoundingKey(uint64_t generation) {
  // Zero-padded, so that the slots sort by generation.
  std::string digits = absl::StrCat(generation);
  return absl::StrCat(SystemPrefix(), kFoundingPrefix, std::string(20 - digits.size(), '0'),
                      digits);
}

std::optional<uint64_t> FoundingGeneration(const Key& key) {
  // Runs for every key committed here: a user key (never a system key) is
  // turned away before anything is built.
  if (!IsSystemKey(key)) return std::nullopt;
  static const Key* prefix = new Key(absl::StrCat(SystemPrefix(), kFoundingPrefix));
  if (key.size() != prefix->size() + 20 || key.compare(0, prefix->size(), *prefix) != 0) {
    return std::nullopt;
  }
  uint64_t g = 0;
  const std::string digits = key.substr(prefix->size());
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      !absl::SimpleAtoi(digits, &g) || g < 2) {
    return std::nullopt;
  }
  return g;
}

Value EncodeFounding(const Configuration& founding) {
  return absl::StrCat("found ", founding.cluster, " ", absl::StrJoin(founding.voters, " "));
}

std::optional<Configuration> DecodeFounding(uint64_t generation, const Value& value) {
  std::vector<std::string> words = absl::StrSplit(value, ' ');
  if (words.size() < 2 + kMinFounders || words[0] != "found") return std::nullopt;
  Configuration c;
  c.cluster = words[1];
  if (ValidateClusterId(c.cluster)) return std::nullopt;
  c.epoch = 1;
  c.generation = generation;
  c.voters.assign(words.begin() + 2, words.end());
  for (const PeerId& v : c.voters) {
    if (v.empty()) return std::nullopt;
  }
  if (!std::is_sorted(c.voters.begin(), c.voters.end()) ||
      std::adjacent_find(c.voters.begin(), c.voters.end()) != c.voters.end()) {
    return std::nullopt;
  }
  return c;
}

Value EncodeRemoval(const Configuration& removed) {
  return absl::StrCat("remove ", removed.cluster, " ", removed.generation, " ", removed.epoch, " ",
                      absl::StrJoin(removed.voters, " "));
}

std::optional<Configuration> DecodeRemoval(uint64_t generation, const Value& value) {
  std::vector<std::string> words = absl::StrSplit(value, ' ');
  if (words.size() < 5 || words[0] != "remove") return std::nullopt;
  Configuration c;
  c.cluster = words[1];
  if (ValidateClusterId(c.cluster)) return std::nullopt;
  // Founded before the slot that removes it, and never the first cluster.
  if (!absl::SimpleAtoi(words[2], &c.generation) || c.generation < 2 ||
      c.generation >= generation || !absl::SimpleAtoi(words[3], &c.epoch) || c.epoch == 0) {
    return std::nullopt;
  }
  c.voters.assign(words.begin() + 4, words.end());
  for (const PeerId& v : c.voters) {
    if (v.empty()) return std::nullopt;
  }
  if (!std::is_sorted(c.voters.begin(), c.voters.end()) ||
      std::adjacent_find(c.voters.begin(), c.voters.end()) != c.voters.end()) {
    return std::nullopt;
  }
  c.removed = generation;
  return c;
}

void Founding::OnCommitted(const Key& key, const Value& value, TimeMs now) {
  std::optional<uint64_t> g = FoundingGeneration(key);
  if (!g) return;
  if (!Learn(*g, value, now)) {
    // Only engines put these keys, and only well-formed values: this one
    // came from elsewhere. It founds nothing.
    ctx_.ReportViolation(
        key, absl::StrCat("founding key of generation ", *g, " committed with a malformed value"));
  }
}

bool Founding::Learn(uint64_t generation, const Value& value, TimeMs now) {
  std::optional<Configuration> c = DecodeFounding(generation, value);
  if (!c) c = DecodeRemoval(generation, value);
  if (!c) return false;
  membership_.Learn({*c}, now);
  Refresh();
  if (removal_ && !removal_->in_flight && membership_.RemovedAt(removal_->cluster) != 0) {
    FinishRemoval(ChangeOutcome::Kind::kOk, "");
  }
  return true;
}

void Founding::Remove(const ClusterId& cluster, std::function<void(ChangeOutcome)> done,
                      TimeMs now) {
  const Configuration* c = membership_.Latest(cluster);
  auto refuse = [&](ChangeOutcome::Kind kind, std::string message) {
    done(ChangeOutcome{kind, std::move(message), c != nullptr ? *c : membership_.Current()});
  };
  using K = ChangeOutcome::Kind;
  if (membership_.Current().epoch == 0) {
    return refuse(K::kUnavailable,
                  absl::StrCat(ctx_.self(), " knows no configuration of its own cluster yet"));
  }
  if (c == nullptr) {
    return refuse(
        K::kInvalidArgument,
        absl::StrCat("cluster ", cluster, " is not a founded cluster known at ", ctx_.self()));
  }
  if (c->removed != 0) {
    return refuse(
        K::kInvalidArgument,
        absl::StrCat("cluster ", cluster, " was removed already, at generation ", c->removed));
  }
  if (c->generation == 0 || c->generation == membership_.oldest_generation()) {
    return refuse(K::kInvalidArgument,
                  absl::StrCat("cluster ", cluster,
                               " is the federation's first cluster, which every put counts: it "
                               "can never be removed"));
  }
  if (cluster == ctx_.cluster()) {
    return refuse(K::kInvalidArgument,
                  absl::StrCat("a cluster is removed by the others: ask a node of another "
                               "cluster than ",
                               cluster));
  }
  if (removal_) {
    return refuse(K::kBusy, absl::StrCat("the removal of cluster ", removal_->cluster,
                                         " is in progress at ", ctx_.self()));
  }
  removal_ = Removal{cluster,
                     std::move(done),
                     std::nullopt,
                     now,
                     now + kRemovalCalls * ctx_.config().call_deadline_ms,
                     ""};
  if (!in_flight_) ProposeRemoval(now);
}

void Founding::ProposeRemoval(TimeMs now) {
  RP_CHECK(removal_ && !removal_->in_flight && !in_flight_, "removal proposed twice");
  const Configuration* c = membership_.Latest(removal_->cluster);
  RP_CHECK(c != nullptr, "removal of ", removal_->cluster, ", which is not known");
  // The slot rule: whoever puts slot G + 1 knows slots 1..G, and none of
  // them removes the cluster (else it would be removed twice).
  RP_CHECK(c->removed == 0, "removal of ", removal_->cluster, ", removed already at ", c->removed);
  const uint64_t slot = membership_.generation() + 1;
  Value value = EncodeRemoval(*c);
  removal_->in_flight = slot;
  coordinator_.StartSystemPut(
      FoundingKey(slot), value,
      [this, slot, value](PutOutcome outcome, TimeMs t) {
        OnRemovalDone(slot, value, std::move(outcome), t);
      },
      now, removal_->cluster);
}

void Founding::OnRemovalDone(uint64_t slot, const Value& proposed, PutOutcome outcome, TimeMs now) {
  RP_CHECK(removal_ && removal_->in_flight == slot, "removal put of slot ", slot,
           " answered, but it is not in flight");
  removal_->in_flight.reset();
  const ClusterId cluster = removal_->cluster;
  if (outcome.kind == PutOutcome::Kind::kOk) {
    Learn(slot, proposed, now);
  } else if (outcome.kind == PutOutcome::Kind::kKeyExists) {
    // The slot was taken first: by this very removal (another node asked
    // too), or by something else, and the removal goes to the next slot.
    if (!Learn(slot, outcome.existing, now)) {
      ctx_.ReportViolation(FoundingKey(slot), absl::StrCat("founding key of generation ", slot,
                                                           " holds a malformed value"));
    }
  } else {
    removal_->last_error = outcome.message;
  }
  if (!removal_) return;  // Learn finished it
  if (membership_.RemovedAt(cluster) != 0) {
    FinishRemoval(ChangeOutcome::Kind::kOk, "");
    return;
  }
  if (now >= removal_->give_up_at) {
    FinishRemoval(ChangeOutcome::Kind::kUnavailable,
                  absl::StrCat("the removal of cluster ", cluster, " was not decided in time: ",
                               removal_->last_error.empty() ? std::string("slot taken")
                                                            : removal_->last_error));
    return;
  }
  // Slot taken by another: at once, at the next. Else after a call deadline.
  removal_->retry_at =
      outcome.kind == PutOutcome::Kind::kKeyExists ? now : now + ctx_.config().call_deadline_ms;
}

void Founding::FinishRemoval(ChangeOutcome::Kind kind, std::string message) {
  Removal r = std::move(*removal_);
  removal_.reset();
  const Configuration* c = membership_.Latest(r.cluster);
  ChangeOutcome outcome{kind, std::move(message), c != nullptr ? *c : membership_.Current()};
  if (kind == ChangeOutcome::Kind::kOk) {
    // The removed cluster's nodes, if any is up, learn it at once.
    for (const Member& m : ctx_.topology().members) {
      if (m.cluster == r.cluster) membership_.Tell(m.id, ctx_.now());
    }
  }
  r.done(std::move(outcome));
}

void Founding::Refresh() {
  candidate_.reset();
  const Configuration& own = membership_.Current();
  const uint64_t own_generation = membership_.own_generation();
  if (own.epoch == 0 || own_generation == 0 || membership_.generation() == 0) return;
  // Only the oldest cluster's voters propose: every put needs that cluster's
  // majority anyway.
  if (own_generation != membership_.oldest_generation()) return;
  auto self = std::find(own.voters.begin(), own.voters.end(), ctx_.self());
  if (self == own.voters.end()) return;
  rank_ = static_cast<size_t>(self - own.voters.begin());
  for (const ClusterId& c : ctx_.topology().Clusters()) {
    if (c == ctx_.cluster() || membership_.Latest(c) != nullptr) continue;
    size_t members = 0;
    for (const Member& m : ctx_.topology().members) members += m.cluster == c ? 1 : 0;
    if (members >= kMinFounders) {
      candidate_ = c;
      return;
    }
  }
}

void Founding::Tick(TimeMs now) {
  const TimeMs deadline = ctx_.config().call_deadline_ms;
  if (membership_.Current().epoch == 0) {
    // This node's cluster has no configuration it knows of: ask a peer,
    // its own cluster's members first (they know its whole history).
    if (now < next_ask_) return;
    next_ask_ = now + kAskCalls * deadline;
    std::vector<PeerId> peers;
    for (bool own : {true, false}) {
      for (const Member& m : ctx_.topology().members) {
        if ((m.cluster == ctx_.cluster()) == own && m.id != ctx_.self()) peers.push_back(m.id);
      }
    }
    if (peers.empty()) return;
    membership_.Tell(peers[ask_next_++ % peers.size()], now);
    return;
  }
  if (removal_ && !removal_->in_flight && membership_.RemovedAt(removal_->cluster) != 0) {
    // Learned meanwhile (an earlier attempt of this removal that seemed to
    // fail, or another node's, heard from a peer's configurations).
    FinishRemoval(ChangeOutcome::Kind::kOk, "");
  }
  if (removal_ && !removal_->in_flight && !in_flight_ && now >= removal_->retry_at) {
    ProposeRemoval(now);
  }
  if (in_flight_ || (removal_ && removal_->in_flight)) return;
  Refresh();
  if (!candidate_) {
    seen_.clear();
    return;
  }
  seen_.emplace(*candidate_, now);
  if (std::optional<TimeMs> due = Due(); due && now >= *due) {
    if (std::optional<ClusterId> down = WhollyDown()) {
      // The put cannot commit while it counts a cluster none of whose voters
      // answers, and its reservations of the slot would only hold up that
      // cluster's removal (which takes the same slot): wait.
      next_proposal_ = now + deadline;
      return;
    }
    Propose(*candidate_, now);
  }
}

std::optional<TimeMs> Founding::Due() const {
  if (!candidate_) return std::nullopt;
  auto seen = seen_.find(*candidate_);
  if (seen == seen_.end()) return ctx_.now();
  const TimeMs deadline = ctx_.config().call_deadline_ms;
  return std::max(seen->second + static_cast<TimeMs>(rank_) * kTurnCalls * deadline,
                  next_proposal_);
}

std::optional<TimeMs> Founding::NextWakeup() const {
  if (membership_.Current().epoch == 0) {
    // Nothing to ask before there is a peer.
    if (ctx_.topology().members.size() < 2) return std::nullopt;
    return next_ask_;
  }
  if (in_flight_) return std::nullopt;
  if (removal_) {
    if (removal_->in_flight) return std::nullopt;
    std::optional<TimeMs> due = Due();
    return due ? std::min(*due, removal_->retry_at) : removal_->retry_at;
  }
  return Due();
}

std::optional<ClusterId> Founding::WhollyDown() const {
  for (const Configuration& c : membership_.Counted()) {
    if (c.cluster == ctx_.cluster()) continue;
    bool all_down = !c.voters.empty();
    for (const PeerId& v : c.voters) {
      const Member* m = ctx_.topology().Find(v);
      all_down = all_down && m != nullptr && m->state == PeerState::kDown;
    }
    if (all_down) return c.cluster;
  }
  return std::nullopt;
}

void Founding::Propose(const ClusterId& cluster, TimeMs now) {
  Configuration founding{cluster, 1, {}, 0};
  for (const Member& m : ctx_.topology().members) {
    if (m.cluster == cluster) founding.voters.push_back(m.id);
  }
  std::sort(founding.voters.begin(), founding.voters.end());
  const uint64_t slot = membership_.generation() + 1;
  Value value = EncodeFounding(founding);
  in_flight_ = slot;
  coordinator_.StartSystemPut(
      FoundingKey(slot), value,
      [this, slot, cluster, value](PutOutcome outcome, TimeMs t) {
        OnPutDone(slot, cluster, value, std::move(outcome), t);
      },
      now);
}

void Founding::OnPutDone(uint64_t slot, const ClusterId& cluster, const Value& proposed,
                         PutOutcome outcome, TimeMs now) {
  RP_CHECK(in_flight_ == slot, "founding put of slot ", slot, " answered, but ",
           in_flight_ ? absl::StrCat("slot ", *in_flight_) : std::string("none"), " is in flight");
  in_flight_.reset();
  bool decided = false;
  if (outcome.kind == PutOutcome::Kind::kOk) {
    // Learned already if the commit was written here; if not, now.
    decided = Learn(slot, proposed, now);
  } else if (outcome.kind == PutOutcome::Kind::kKeyExists) {
    // The slot was taken first (maybe by this very cluster): adopt it; the
    // next proposal, if still due, is for the next slot.
    decided = Learn(slot, outcome.existing, now);
    if (!decided) {
      ctx_.ReportViolation(FoundingKey(slot), absl::StrCat("founding key of generation ", slot,
                                                           " holds a malformed value"));
    }
  }
  if (decided) {
    // The new cluster's members learn their founding set at once rather
    // than when they next ask.
    if (membership_.Latest(cluster) != nullptr) {
      for (const Member& m : ctx_.topology().members) {
        if (m.cluster == cluster && m.id != ctx_.self()) membership_.Tell(m.id, now);
      }
    }
    return;
  }
  // Contention with another proposer, or some cluster's majority out of
  // reach: try again later, the later the lower this node's rank.
  Refresh();
  const TimeMs deadline = ctx_.config().call_deadline_ms;
  std::uniform_int_distribution<TimeMs> jitter(0, deadline);
  next_proposal_ =
      now + static_cast<TimeMs>(rank_ + 1) * kTurnCalls * deadline + jitter(ctx_.rng());
}

void Founding::CheckInvariants() const {
  if (in_flight_) {
    RP_CHECK(*in_flight_ >= 2, "founding put of slot ", *in_flight_, " in flight");
    RP_CHECK(!removal_ || !removal_->in_flight, "a founding and a removal put in flight");
  }
  if (removal_) {
    RP_CHECK(removal_->cluster != ctx_.cluster(), "this node removes its own cluster");
  }
}

}  // namespace replicator::core
