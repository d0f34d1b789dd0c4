#include "core/catchup.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "core/check.h"
#include "core/founding.h"
#include "core/quorum.h"
#include "core/shard.h"

namespace replicator::core {
namespace {

// Catch-up pages a round holds at once: pulls in flight plus pages applied
// and not yet durable. Bounds the memory a round can pin (this many pages
// of EngineConfig::catchup_pull_max_bytes, each held in a few copies: the
// answer, its write, the lookups' in-flight entries), and keeps a node
// that pulls faster than its disk writes from queueing writes without end.
constexpr size_t kMaxPullsInFlight = 8;
// A pull carries a page of up to catchup_pull_max_bytes (MiBs), not one
// small message: it gets this many call deadlines. A round that still times
// out keeps what it applied; the next round pulls only what still differs.
constexpr TimeMs kCatchUpDeadlineCalls = 4;

}  // namespace

void CatchUp::Observe(TimeMs now) {
  if (ctx_.config().catchup_interval_ms > 0) {
    next_round_at_ = now + ctx_.config().catchup_interval_ms;
  }
  // A node of a young cluster starts (or restarts) unsettled: settle at once.
  // (One that knows no configuration yet settles once it learns one:
  // OnGeneration.)
  if (membership_.Current().epoch != 0 && !federation_.settled()) next_round_at_ = now;
}

void CatchUp::OnTopology(TimeMs now) {
  if (wanted_ && !round_ && !Peers().empty()) StartRound(now);
}

void CatchUp::OnEpoch(TimeMs now) {
  if (settled()) return;
  if (round_) {
    next_round_at_ = now;  // the next round starts once this one ends
  } else {
    StartRound(now);
  }
}

void CatchUp::OnGeneration(TimeMs now) {
  if (federation_.settled()) return;
  if (round_) {
    next_round_at_ = now;
  } else {
    StartRound(now);
  }
}

void CatchUp::HandleDigest(uint64_t inbound_id) {
  // The reservations now; the digest once everything written until now is
  // durable, so that a key committed here in memory and no longer reserved
  // is in the digest. The epoch and the federation generation reported are
  // this instant's, with the reservations (a vote given after it is not in
  // them, and would be given at this epoch and generation or later), and
  // durable by the answer: a settle counts this answer as given at them.
  auto resp = std::make_shared<DigestResponse>();
  resp->reservations = replica_.Reservations();
  resp->epoch = membership_.epoch();
  resp->generation = membership_.generation();
  resp->federation_settled = federation_.settled();
  resp->known = membership_.Newest();
  ctx_.AfterWrite(ctx_.LastWrite(), [this, inbound_id, resp]() {
    resp->buckets = ctx_.committed().Digest();
    resp->buckets.resize(kDigestBuckets, 0);
    ctx_.Respond(inbound_id, std::move(*resp));
  });
}

void CatchUp::HandlePull(uint64_t inbound_id, const PullRequest& request) {
  PullResponse resp;
  const uint32_t end =
      std::min<uint32_t>(std::max(request.bucket_end, request.bucket + 1), kDigestBuckets);
  resp.bucket_end = end;
  size_t bytes = 0;
  // At least one entry per page, so a page larger than max_bytes still
  // makes progress; `complete` is false only when an entry was left out.
  for (uint32_t b = request.bucket; b < end && resp.complete; ++b) {
    ctx_.committed().ForEachInBucket(
        b, b == request.bucket ? request.after : Key(),
        [&](const Key& key, const CommittedEntry& e) {
          const size_t size = key.size() + e.value.size();
          if (!resp.entries.empty() && bytes + size > request.max_bytes) {
            resp.complete = false;
            return false;
          }
          resp.entries.push_back(PulledEntry{key, e.value, e.request_id, e.proposal});
          bytes += size;
          return true;
        });
  }
  ctx_.Respond(inbound_id, std::move(resp));
}

std::vector<PeerId> CatchUp::Peers() const {
  // Voters only: a catching-up member may itself lack keys, and a chain of
  // new nodes vouching for each other must not pass for caught up.
  std::vector<PeerId> peers;
  if (membership_.epoch() != 0) {
    for (const PeerId& v : membership_.Current().voters) {
      if (v != ctx_.self()) peers.push_back(v);
    }
    return peers;
  }
  for (const Member& m : ctx_.topology().members) {
    if (m.cluster != ctx_.cluster() || m.id == ctx_.self()) continue;
    if (m.state != PeerState::kCatchingUp) peers.push_back(m.id);
  }
  std::sort(peers.begin(), peers.end());
  peers.erase(std::unique(peers.begin(), peers.end()), peers.end());
  return peers;
}

bool CatchUp::caught_up() const {
  const Configuration& config = membership_.Current();
  if (config.epoch == 0) return Peers().empty();
  size_t have = 0;
  for (const PeerId& v : config.voters) {
    if (v == ctx_.self()) {
      ++have;  // what it holds, it holds
      continue;
    }
    auto it = caught_up_from_.find(v);
    if (it != caught_up_from_.end() && it->second >= config.epoch) ++have;
  }
  return IsMajority(have, config.voters.size());
}

void CatchUp::Tick(TimeMs now) {
  if (!round_ && next_round_at_ != kUnseeded && next_round_at_ <= now) StartRound(now);
}

std::optional<TimeMs> CatchUp::NextRound() const {
  // A running round schedules nothing; the next one is due once it ended.
  if (round_ || next_round_at_ == kUnseeded) return std::nullopt;
  return next_round_at_;
}

void CatchUp::StartRound(TimeMs now) {
  if (round_) return;
  if (ctx_.config().catchup_interval_ms > 0) {
    next_round_at_ = now + ctx_.config().catchup_interval_ms;
  }
  auto [peer, cluster] = NextPeer();
  if (peer.empty()) {
    // Trivially caught up (caught_up() says so); start once someone appears.
    wanted_ = true;
    return;
  }
  wanted_ = false;
  Round& round = round_.emplace();
  round.id = next_round_id_++;
  round.peer = peer;
  round.cluster = cluster;
  const uint64_t id = round.id;
  // A digest is small; only pulls carry pages. While reads here wait for the
  // federation settle, a silent peer costs one call deadline, not four.
  const TimeMs calls = federation_.settled() ? kCatchUpDeadlineCalls : 1;
  ctx_.Send(peer, DigestRequest{}, now + calls * ctx_.config().call_deadline_ms,
            [this, id](Response&& r, TimeMs t) { OnDigest(id, std::move(r), t); });
}

std::pair<PeerId, ClusterId> CatchUp::NextPeer() {
  std::vector<PeerId> peers = Peers();
  if (!federation_.settled()) {
    // Every other round (every round, alone in the cluster) asks the source
    // cluster, the first one included (its voters ran before this cluster
    // was founded); the others ask this cluster's voters, one of which may
    // have settled already (a node that restarts, or joins, inherits).
    const ClusterId source = federation_.SourceCluster();
    const Configuration* c = source.empty() ? nullptr : membership_.Latest(source);
    const bool ask_source = c != nullptr && !c->voters.empty() && (source_turn_ || peers.empty());
    source_turn_ = !source_turn_;
    if (ask_source) {
      if (!source_cursor_) source_cursor_ = ctx_.rng()();
      const PeerId peer = c->voters[*source_cursor_ % c->voters.size()];
      ++*source_cursor_;
      return {peer, source};
    }
  }
  if (peers.empty()) return {};
  if (!cursor_) cursor_ = ctx_.rng()();
  const PeerId peer = peers[*cursor_ % peers.size()];
  ++*cursor_;
  return {peer, ctx_.cluster()};
}

void CatchUp::OnDigest(uint64_t round, Response&& r, TimeMs now) {
  if (!round_ || round_->id != round) return;
  auto* digest = std::get_if<DigestResponse>(&r);
  if (digest == nullptr || digest->buckets.size() != kDigestBuckets) {
    RoundFailed(now);
    return;
  }
  // A reservation of a key this shard does not own (a peer that runs
  // another shard count) must not be settled here, which would commit it.
  for (const Reservation& held : digest->reservations) {
    if (!ctx_.config().shard.Owns(held.key)) {
      RoundFailed(now);
      return;
    }
  }
  round_->peer_epoch = digest->epoch;
  round_->peer_generation = digest->generation;
  round_->peer_settled = digest->federation_settled;
  // What the peer knows is adopted, durably before the round counts: so a
  // settle of this cluster's epoch also carries the federation generation
  // (docs/design.md, "New clusters").
  membership_.Learn(digest->known, now);
  if (!round_ || round_->id != round) return;
  round_->last_write = std::max(round_->last_write, ctx_.LastWrite());
  if (round_->cluster == ctx_.cluster()) {
    if (digest->epoch != membership_.epoch()) {
      membership_.OnWrongEpoch(round_->peer, digest->epoch, {}, now);
    }
  } else {
    // A settle source behind its cluster's newest epoch known here, or that
    // does not know this node's cluster, does not count: tell it.
    const Configuration* c = membership_.Latest(round_->cluster);
    if ((c != nullptr && digest->epoch < c->epoch) ||
        digest->generation < membership_.own_generation()) {
      membership_.Tell(round_->peer, now);
    }
  }
  std::vector<uint64_t> mine = ctx_.committed().Digest();
  mine.resize(kDigestBuckets, 0);
  std::vector<uint32_t> differ;
  for (uint32_t b = 0; b < kDigestBuckets; ++b) {
    if (digest->buckets[b] != mine[b]) differ.push_back(b);
  }
  // Runs of adjacent differing buckets, each pulled as one range; a run is
  // cut so that the pulls in flight share the work (a node that holds
  // nothing yet pulls kMaxPullsInFlight ranges, not kDigestBuckets buckets).
  const size_t most =
      std::max<size_t>(1, (differ.size() + kMaxPullsInFlight - 1) / kMaxPullsInFlight);
  for (size_t i = 0; i < differ.size();) {
    size_t j = i + 1;
    while (j < differ.size() && j - i < most && differ[j] == differ[j - 1] + 1) ++j;
    round_->buckets.push_back(BucketRange{differ[i], differ[j - 1] + 1});
    i = j;
  }
  // Held open while the resolves start: one may answer at once.
  const uint64_t id = round_->id;
  ++round_->resolving;
  // Only a settle needs the peer's reservations decided; a periodic round
  // leaves them to their leases.
  if (Settling()) {
    for (Reservation& held : digest->reservations) {
      Resolve(std::move(held), now);
      if (!round_ || round_->id != id) return;  // a resolve failed: the round ended
    }
  }
  --round_->resolving;
  PumpPulls(now);
}

void CatchUp::Resolve(Reservation r, TimeMs now) {
  if (replica_.LookupCommitted(r.key)) return;  // final here already
  if (std::optional<Decision> d = ctx_.FindDecision(r.proposal)) {
    OnResolved(round_->id, r, d);
    return;
  }
  ++round_->resolving;
  const uint64_t id = round_->id;
  recovery_.ResolveRemote(
      r.proposal, r.key,
      [this, id, r](std::optional<Decision> d, const std::string&, TimeMs t) {
        if (!round_ || round_->id != id) return;
        --round_->resolving;
        if (!d) {
          RoundFailed(t);  // not settled from this peer; a later round retries
          return;
        }
        OnResolved(id, r, d);
        MaybeComplete();
      },
      now);
}

void CatchUp::OnResolved(uint64_t round, const Reservation& r, std::optional<Decision> d) {
  if (!round_ || round_->id != round || !d) return;
  if (const Replica::Entry* held = replica_.Find(r.key);
      held != nullptr && held->reservation.proposal == r.proposal) {
    replica_.ApplyDecision(r.key, r.proposal, *d);
  }
  if (*d != Decision::kCommit) return;
  if (std::optional<Replica::Committed> c = replica_.LookupCommitted(r.key)) {
    if (c->value != r.value) {
      ctx_.ReportViolation(r.key,
                           absl::StrCat("catch-up learned that proposal ", r.proposal.ToString(),
                                        " committed a value of ", r.value.size(),
                                        " bytes but the key is committed "
                                        "here with another value of ",
                                        c->value.size(), " bytes"));
    }
    round_->last_write = std::max(round_->last_write, c->pending_write);
    return;
  }
  round_->last_write = replica_.WriteCommitted(r.key, r.value, r.request_id, r.proposal);
  ++ctx_.stats().catchup_keys_pulled;
}

void CatchUp::SendPull(BucketRange range, const Key& after, TimeMs now) {
  Round& round = *round_;
  ++round.pulls_in_flight;
  ++ctx_.stats().catchup_pulls;
  const uint64_t id = round.id;
  ctx_.Send(round.peer,
            PullRequest{range.first, after, ctx_.config().catchup_pull_max_bytes, range.end},
            now + kCatchUpDeadlineCalls * ctx_.config().call_deadline_ms,
            [this, id, range, after](Response&& r, TimeMs t) {
              OnPull(id, range, after, std::move(r), t);
            });
}

void CatchUp::OnPull(uint64_t round, BucketRange range, const Key& after, Response&& r,
                     TimeMs now) {
  if (!round_ || round_->id != round) return;
  --round_->pulls_in_flight;
  auto* pull = std::get_if<PullResponse>(&r);
  if (pull == nullptr) {
    RoundFailed(now);
    return;
  }
  // A page holds entries of the range in (bucket, key) order, past where it
  // began: so no key twice, and paging ends. An incomplete one must hold
  // at least one; the next page starts after its last.
  uint32_t last_bucket = range.first;
  const Key* last_key = &after;
  for (const PulledEntry& e : pull->entries) {
    const uint32_t b = BucketOf(e.key);
    // A page in order and in range, of keys this shard owns (core/shard.h:
    // a bucket it does not own can differ only by system keys).
    if (b >= range.end || b < last_bucket || (b == last_bucket && e.key <= *last_key) ||
        !(ctx_.config().shard.OwnsBucket(b) || IsSystemKey(e.key))) {
      RoundFailed(now);
      return;
    }
    last_bucket = b;
    last_key = &e.key;
  }
  // Where the next page of the range starts, if one is due. A complete page
  // covers the range, or (from a build that serves one bucket per pull,
  // bucket_end 0) its first bucket.
  std::optional<std::pair<BucketRange, Key>> next;
  if (!pull->complete) {
    if (pull->entries.empty()) {
      RoundFailed(now);
      return;
    }
    next.emplace(BucketRange{last_bucket, range.end}, *last_key);
  } else {
    const uint32_t covered = pull->bucket_end == 0 ? range.first + 1 : pull->bucket_end;
    if (covered <= range.first || covered > range.end) {
      RoundFailed(now);
      return;
    }
    if (covered < range.end) next.emplace(BucketRange{covered, range.end}, Key());
  }
  if (next) round_->resume.push_back(std::move(*next));
  const uint64_t w = ApplyPage(round_->peer, pull->entries);
  if (!round_ || round_->id != round) return;  // what it applied ended the round
  if (w != 0) {
    // The page counts against the round's pages until it is durable.
    ++round_->pages_unwritten;
    ctx_.AfterWrite(w, [this, round]() {
      if (!round_ || round_->id != round) return;
      --round_->pages_unwritten;
      PumpPulls(ctx_.now());
    });
  }
  PumpPulls(now);
}

void CatchUp::PumpPulls(TimeMs now) {
  Round& round = *round_;
  // Ranges begun first, so that a round holds few half-pulled ranges.
  while (round.pulls_in_flight + round.pages_unwritten < kMaxPullsInFlight) {
    if (!round.resume.empty()) {
      auto [range, after] = std::move(round.resume.front());
      round.resume.pop_front();
      SendPull(range, after, now);
    } else if (!round.buckets.empty()) {
      const BucketRange range = round.buckets.front();
      round.buckets.pop_front();
      SendPull(range, Key(), now);
    } else {
      break;
    }
  }
  MaybeComplete();
}

void CatchUp::MaybeComplete() {
  Round& round = *round_;
  if (round.pulls_in_flight > 0 || !round.buckets.empty() || !round.resume.empty() ||
      round.resolving > 0) {
    return;
  }
  // Every differing bucket was pulled and every reservation's decision
  // applied; the round counts once what it applied is durable.
  const uint64_t id = round.id;
  ctx_.AfterWrite(round.last_write, [this, id]() {
    if (!round_ || round_->id != id) return;
    Round done = std::move(*round_);
    round_.reset();
    if (done.cluster == ctx_.cluster()) {
      uint64_t& epoch = caught_up_from_[done.peer];
      epoch = std::max(epoch, done.peer_epoch);
    }
    ++ctx_.stats().catchup_rounds;
    federation_.OnRound(done.peer, done.cluster, done.peer_epoch, done.peer_generation,
                        done.peer_settled);
    // Not yet caught up from a majority, or not settled with the
    // federation: ask the next one at once.
    if (!caught_up() || !federation_.settled()) next_round_at_ = ctx_.now();
  });
}

void CatchUp::RoundFailed(TimeMs now) {
  round_.reset();
  if (federation_.settled()) return;
  // Linearizable reads here wait for the federation settle: try again soon
  // (a round that failed at once, say at a node not started yet, must not
  // cost a whole interval).
  const TimeMs soon = now + std::max<TimeMs>(1, ctx_.config().call_deadline_ms / 10);
  next_round_at_ = next_round_at_ == kUnseeded ? soon : std::min(next_round_at_, soon);
}

uint64_t CatchUp::ApplyPage(const PeerId& from, const std::vector<PulledEntry>& page) {
  // One read of the page's keys and one write of those missing here: a
  // page holds no key twice (OnPull checked its order).
  std::vector<const Key*> keys;
  keys.reserve(page.size());
  for (const PulledEntry& e : page) keys.push_back(&e.key);
  std::vector<std::optional<Replica::Committed>> held = replica_.LookupCommitted(keys);
  std::vector<const PulledEntry*> missing;
  missing.reserve(page.size());
  for (size_t i = 0; i < page.size(); ++i) {
    if (!held[i]) {
      missing.push_back(&page[i]);
    } else if (held[i]->value != page[i].value) {
      // Never overwrite a committed value; report it.
      ctx_.ReportViolation(page[i].key, absl::StrCat("catch-up from ", from, " pulled a value of ",
                                                     page[i].value.size(),
                                                     " bytes but the key is committed here "
                                                     "with another value of ",
                                                     held[i]->value.size(), " bytes"));
    }
  }
  if (missing.empty()) return 0;
  const uint64_t w = replica_.WriteCommitted(missing);
  round_->last_write = std::max(round_->last_write, w);
  ctx_.stats().catchup_keys_pulled += missing.size();
  // A reservation of a key stays: only its own proposal's decision may drop
  // it (lease recovery or its commit will settle it). If that decision is
  // known here already, or the entry names the holder as the proposal that
  // committed it, apply it now.
  if (replica_.size() == 0) return w;
  for (const PulledEntry* e : missing) {
    if (const Replica::Entry* reserved = replica_.Find(e->key)) {
      const ProposalId holder = reserved->reservation.proposal;
      if (e->proposal == holder) {
        replica_.ApplyDecision(e->key, holder, Decision::kCommit);
      } else if (std::optional<Decision> d = ctx_.FindDecision(holder)) {
        replica_.ApplyDecision(e->key, holder, *d);
      }
    }
  }
  return w;
}

void CatchUp::CheckInvariants() const {
  if (!round_) return;
  RP_CHECK(round_->pulls_in_flight + round_->pages_unwritten <= kMaxPullsInFlight,
           "catch-up round ", round_->id, " has ", round_->pages_unwritten,
           " pages not yet durable and ", round_->pulls_in_flight, " pulls in flight");
  RP_CHECK(round_->peer != ctx_.self(), "catch-up round ", round_->id, " pulls from itself");
  RP_CHECK(round_->id < next_round_id_, "catch-up round ", round_->id, " was never started");
  uint32_t previous_end = 0;
  for (const BucketRange& r : round_->buckets) {
    RP_CHECK(r.first >= previous_end && r.first < r.end && r.end <= kDigestBuckets,
             "catch-up round ", round_->id, " queued buckets [", r.first, ", ", r.end,
             ") after a range ending at ", previous_end);
    previous_end = r.end;
  }
}

}  // namespace replicator::core
