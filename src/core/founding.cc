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
  const std::string prefix = absl::StrCat(SystemPrefix(), kFoundingPrefix);
  if (key.size() != prefix.size() + 20 || key.compare(0, prefix.size(), prefix) != 0) {
    return std::nullopt;
  }
  uint64_t g = 0;
  const std::string digits = key.substr(prefix.size());
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
  if (!c) return false;
  membership_.Learn({*c}, now);
  Refresh();
  return true;
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
  if (in_flight_) return;
  Refresh();
  if (!candidate_) {
    seen_.clear();
    return;
  }
  seen_.emplace(*candidate_, now);
  if (std::optional<TimeMs> due = Due(); due && now >= *due) Propose(*candidate_, now);
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
  return Due();
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
  }
}

}  // namespace replicator::core
