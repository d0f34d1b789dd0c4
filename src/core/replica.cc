#include "core/replica.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "core/check.h"

namespace replicator::core {

Replica::Replica(Context& ctx, const Membership& membership, Federation& federation,
                 std::vector<Reservation> recovered)
    : ctx_(ctx), membership_(membership), federation_(federation) {
  for (Reservation& r : recovered) {
    Key key = r.key;
    Entry& e = reservations_[key];
    e.reservation = std::move(r);
    e.recover_at = kUnseeded;  // set by Observe, on the first input
  }
}

void Replica::Observe(TimeMs now) {
  for (auto& [key, e] : reservations_) {
    if (e.recover_at == kUnseeded) {
      e.reservation.since = now;
      e.recover_at = now + ctx_.config().lease_ms;
      Index(key, e);
    }
  }
}

void Replica::Unindex(const Key& key, const Entry& e) {
  if (e.resolving || e.recover_at == kUnseeded) return;
  lease_index_.erase({e.recover_at, key});
}

void Replica::Index(const Key& key, const Entry& e) {
  if (e.resolving || e.recover_at == kUnseeded) return;
  lease_index_.insert({e.recover_at, key});
}

void Replica::Forget(const Key& key) {
  auto it = reservations_.find(key);
  if (it == reservations_.end()) return;
  Unindex(key, it->second);
  reservations_.erase(it);
}

void Replica::SetRecovery(const Key& key, bool resolving, TimeMs recover_at) {
  auto it = reservations_.find(key);
  if (it == reservations_.end()) return;
  Unindex(key, it->second);
  it->second.resolving = resolving;
  it->second.recover_at = recover_at;
  Index(key, it->second);
}

void Replica::SetOrphanLeases(const Key& key, int leases) {
  if (auto it = reservations_.find(key); it != reservations_.end()) {
    it->second.orphan_leases = leases;
  }
}

void Replica::Handle(const ReplicaOp& op, VoteFn reply, TimeMs now) {
  if (const auto* r = std::get_if<ReserveOp>(&op)) {
    Reserve(*r, std::move(reply), now);
  } else if (const auto* c = std::get_if<CommitOp>(&op)) {
    if (std::optional<std::string> why = Contradicts(*c)) {
      ++ctx_.stats().sender_refusals;
      Vote v = ctx_.MakeVote(Vote::Kind::kUnreachable);
      v.reason = absl::StrCat("refused commit of proposal ", c->proposal.ToString(), ": ", *why);
      if (reply) reply(std::move(v));
      return;
    }
    ApplyCommit(c->key, c->value, c->request_id, c->proposal, std::move(reply));
  } else if (const auto* a = std::get_if<AbortOp>(&op)) {
    ApplyAbort(a->key, a->proposal, std::move(reply));
  }
}

std::optional<std::string> Replica::Contradicts(const CommitOp& c) const {
  if (auto it = reservations_.find(c.key);
      it != reservations_.end() && it->second.reservation.proposal == c.proposal) {
    if (it->second.reservation.value != c.value) {
      return absl::StrCat("its value of ", c.value.size(),
                          " bytes is not the one reserved for it (",
                          it->second.reservation.value.size(), " bytes)");
    }
    return std::nullopt;
  }
  // No reservation of the proposal to match: the commit is taken unless
  // this node knows the proposal was not committed. Only the coordinator
  // proposes commit, at ballot 0, so an abort decided, or accepted here at
  // any round, means commit was never chosen.
  if (ctx_.FindDecision(c.proposal) == Decision::kAbort) {
    return "this node knows the proposal aborted";
  }
  if (std::optional<AcceptorRecord> a = ctx_.committed().GetAcceptor(c.proposal);
      a && a->accepted && a->accepted->decision == Decision::kAbort) {
    return absl::StrCat("this node accepted its abort at ballot round ", a->accepted->ballot.round);
  }
  return std::nullopt;
}

void Replica::Reserve(const ReserveOp& op, VoteFn reply, TimeMs now) {
  if (std::optional<Committed> c = LookupCommitted(op.key)) {
    Vote v = ctx_.MakeVote(Vote::Kind::kStored);
    v.stored = std::move(c->value);
    v.stored_request_id = c->request_id;
    ctx_.AfterWrite(c->pending_write, [reply, v]() mutable { reply(std::move(v)); });
    return;
  }
  // A decided proposal must never gain a reservation: after an abort it
  // would hold the key until its lease ran out.
  if (ctx_.FindDecision(op.proposal)) {
    reply(ctx_.MakeVote(Vote::Kind::kDecided));
    return;
  }
  // The epoch rule: an ok (or a reservation's holder) counts only under the
  // epoch this node votes in. A stored value is final under every epoch, so
  // it is reported above whatever the epoch.
  if (!membership_.Votes(op.epoch)) {
    reply(WrongEpoch(op.epoch));
    return;
  }
  // The generation rule: a coordinator that does not count some cluster
  // founded since is refused, so that once this node has answered a settle
  // round of that cluster at its generation, no put counted without the
  // cluster can use a vote of it (core/federation.h).
  if (federation_.Refuses(op.generation)) {
    ++ctx_.stats().generation_refusals;
    reply(federation_.Refusal(op.generation));
    return;
  }
  if (auto it = reservations_.find(op.key); it != reservations_.end()) {
    const ProposalId holder = it->second.reservation.proposal;
    if (!(holder == op.proposal)) {
      if (std::optional<Decision> d = ctx_.FindDecision(holder)) {
        // The holder's decision is known here but its commit or abort has
        // not arrived (lost, or still on its way): apply it now instead of
        // blocking the key until the lease runs out.
        ApplyDecision(op.key, holder, *d);
        auto again = reservations_.find(op.key);
        if (again == reservations_.end() || !(again->second.reservation.proposal == holder)) {
          Reserve(op, std::move(reply), now);
          return;
        }
      }
    }
  }
  if (auto it = reservations_.find(op.key); it != reservations_.end()) {
    const Entry& e = it->second;
    if (e.reservation.proposal == op.proposal) {
      // Idempotent; a duplicate answers only once the first is durable.
      OkAfter(e.pending_write, std::move(reply));
    } else {
      Vote v = ctx_.MakeVote(Vote::Kind::kReserved);
      v.holder = e.reservation.proposal;
      reply(std::move(v));
    }
    return;
  }
  Reservation r{op.key, op.proposal, op.value, now, op.request_id};
  uint64_t w = ctx_.Mutate(PutReservation{r});
  Forget(op.key);  // none is held here; kept to leave the index exact
  Entry& e = reservations_[op.key];
  e.reservation = std::move(r);
  e.pending_write = w;
  e.recover_at = now + ctx_.config().lease_ms;
  Index(op.key, e);
  Key key = op.key;
  ctx_.AfterWrite(w, [this, key, w, reply]() {
    if (auto it = reservations_.find(key);
        it != reservations_.end() && it->second.pending_write == w) {
      it->second.pending_write = 0;
    }
    reply(ctx_.MakeVote(Vote::Kind::kOk));
  });
}

void Replica::ApplyCommit(const Key& key, const Value& value, uint64_t request_id,
                          const ProposalId& p, VoteFn reply) {
  ctx_.RecordDecision(p, Decision::kCommit);
  auto held = reservations_.find(key);
  bool held_by_p = held != reservations_.end() && held->second.reservation.proposal == p;

  if (std::optional<Committed> c = LookupCommitted(key)) {
    if (c->value != value) {
      ctx_.ReportViolation(
          key, absl::StrCat("commit of proposal ", p.ToString(), " carries a value of ",
                            value.size(), " bytes but the key is committed with another value of ",
                            c->value.size(), " bytes"));
      Vote v = ctx_.MakeVote(Vote::Kind::kStored);
      v.stored = std::move(c->value);
      v.stored_request_id = c->request_id;
      if (reply) reply(std::move(v));
      return;
    }
    uint64_t w = c->pending_write;
    if (held_by_p) {
      w = ctx_.Mutate(DeleteReservation{key});
      Forget(key);
    }
    if (reply) OkAfter(w, std::move(reply));
    return;
  }

  // A commit without a reservation stores the value all the same; another
  // proposal's reservation stays (only its own decision may drop it).
  uint64_t w = WriteCommitted(key, value, request_id, p);
  if (held_by_p) {
    ctx_.Mutate(DeleteReservation{key});
    Forget(key);
  }
  if (reply) OkAfter(w, std::move(reply));
}

void Replica::ApplyAbort(const Key& key, const ProposalId& p, VoteFn reply) {
  ctx_.RecordDecision(p, Decision::kAbort);
  auto held = reservations_.find(key);
  if (held == reservations_.end() || !(held->second.reservation.proposal == p)) {
    if (reply) reply(ctx_.MakeVote(Vote::Kind::kOk));
    return;
  }
  uint64_t w = ctx_.Mutate(DeleteReservation{key});
  Forget(key);
  if (reply) OkAfter(w, std::move(reply));
}

void Replica::OkAfter(uint64_t w, VoteFn reply) {
  ctx_.AfterWrite(w, [this, reply]() { reply(ctx_.MakeVote(Vote::Kind::kOk)); });
}

void Replica::ApplyDecision(const Key& key, const ProposalId& p, Decision d) {
  auto it = reservations_.find(key);
  if (it == reservations_.end() || !(it->second.reservation.proposal == p)) return;
  if (d == Decision::kCommit) {
    const Value value = it->second.reservation.value;
    const uint64_t request_id = it->second.reservation.request_id;
    ApplyCommit(key, value, request_id, p, nullptr);
  } else {
    ApplyAbort(key, p, nullptr);
  }
}

void Replica::HandleRead(uint64_t inbound_id, const ReadRequest& request) {
  ReadResponse resp;
  // A committed value is final even before it is durable here: the commit
  // was chosen, so reporting it early cannot be contradicted later.
  if (std::optional<Committed> c = LookupCommitted(request.key)) {
    resp.kind = ReadResponse::Kind::kCommitted;
    resp.value = std::move(c->value);
  } else if (!membership_.Votes(request.epoch)) {
    ++ctx_.stats().stale_epoch_refusals;
    resp.kind = ReadResponse::Kind::kWrongEpoch;
    resp.epoch = membership_.RefusalEpoch();
    resp.configs = membership_.RefusalConfigs(request.epoch);
  } else if (!federation_.settled()) {
    // Absent or reserved here may miss a put acknowledged without this
    // cluster: wait for the federation settle (a round or two), then read
    // again; or refuse, in time for the reader to hear it.
    const ReadRequest again = request;
    federation_.WhenSettled(ctx_.now() + ctx_.config().call_deadline_ms * 3 / 4,
                            [this, inbound_id, again](bool settled) {
                              if (settled) {
                                HandleRead(inbound_id, again);
                                return;
                              }
                              ++ctx_.stats().reads_not_ready;
                              ReadResponse no;
                              no.kind = ReadResponse::Kind::kNotReady;
                              no.reason = federation_.NotReadyReason();
                              ctx_.Respond(inbound_id, std::move(no));
                            });
    return;
  } else if (auto it = reservations_.find(request.key); it != reservations_.end()) {
    resp.kind = ReadResponse::Kind::kReserved;
    resp.value = it->second.reservation.value;
    resp.holder = it->second.reservation.proposal;
  }
  ctx_.Respond(inbound_id, std::move(resp));
}

Vote Replica::WrongEpoch(uint64_t request_epoch) {
  ++ctx_.stats().stale_epoch_refusals;
  Vote v = ctx_.MakeVote(Vote::Kind::kWrongEpoch);
  v.epoch = membership_.RefusalEpoch();
  v.configs = membership_.RefusalConfigs(request_epoch);
  return v;
}

std::vector<Reservation> Replica::Reservations() const {
  std::vector<Reservation> out;
  out.reserve(reservations_.size());
  for (const auto& [key, e] : reservations_) out.push_back(e.reservation);
  // In key order: the hash map's order differs between processes, and a
  // simulated run must replay exactly.
  std::sort(out.begin(), out.end(),
            [](const Reservation& a, const Reservation& b) { return a.key < b.key; });
  return out;
}

std::optional<Replica::Committed> Replica::LookupCommitted(const Key& key) const {
  if (auto it = pending_committed_.find(key); it != pending_committed_.end()) {
    return Committed{it->second.value, it->second.request_id, it->second.write_id,
                     it->second.proposal};
  }
  if (std::optional<CommittedEntry> e = ctx_.committed().GetEntry(key)) {
    return Committed{std::move(e->value), e->request_id, 0, std::move(e->proposal)};
  }
  return std::nullopt;
}

std::vector<std::optional<Replica::Committed>> Replica::LookupCommitted(
    const std::vector<const Key*>& keys) const {
  std::vector<std::optional<Committed>> out(keys.size());
  std::vector<const Key*> stored_keys;
  std::vector<size_t> stored_at;  // where each of stored_keys goes in `out`
  for (size_t i = 0; i < keys.size(); ++i) {
    if (auto it = pending_committed_.find(*keys[i]); it != pending_committed_.end()) {
      out[i] = Committed{it->second.value, it->second.request_id, it->second.write_id,
                         it->second.proposal};
    } else {
      stored_keys.push_back(keys[i]);
      stored_at.push_back(i);
    }
  }
  if (stored_keys.empty()) return out;
  std::vector<std::optional<CommittedEntry>> stored = ctx_.committed().GetEntries(stored_keys);
  RP_CHECK(stored.size() == stored_keys.size(), "a read of ", stored_keys.size(),
           " committed keys returned ", stored.size(), " entries");
  for (size_t j = 0; j < stored.size(); ++j) {
    if (stored[j]) {
      out[stored_at[j]] = Committed{std::move(stored[j]->value), stored[j]->request_id, 0,
                                    std::move(stored[j]->proposal)};
    }
  }
  return out;
}

uint64_t Replica::WriteCommitted(const std::vector<const PulledEntry*>& entries) {
  if (entries.empty()) return 0;
  uint64_t w = 0;
  std::vector<Key> keys;
  keys.reserve(entries.size());
  for (const PulledEntry* e : entries) {
    w = ctx_.Mutate(PutCommitted{e->key, e->value, e->request_id, e->proposal});
    pending_committed_[e->key] = PendingCommit{e->value, e->request_id, w, e->proposal};
    if (on_committed_) on_committed_(e->key, e->value, e->proposal);
    keys.push_back(e->key);
  }
  ctx_.AfterWrite(w, [this, keys = std::move(keys), w]() {
    for (const Key& key : keys) {
      if (auto it = pending_committed_.find(key);
          it != pending_committed_.end() && it->second.write_id == w) {
        pending_committed_.erase(it);
      }
    }
  });
  return w;
}

uint64_t Replica::WriteCommitted(const Key& key, const Value& value, uint64_t request_id,
                                 const ProposalId& proposal) {
  uint64_t w = ctx_.Mutate(PutCommitted{key, value, request_id, proposal});
  pending_committed_[key] = PendingCommit{value, request_id, w, proposal};
  if (on_committed_) on_committed_(key, value, proposal);
  ctx_.AfterWrite(w, [this, key, w]() {
    if (auto it = pending_committed_.find(key);
        it != pending_committed_.end() && it->second.write_id == w) {
      pending_committed_.erase(it);
    }
  });
  return w;
}

void Replica::DropOrphan(const Key& key) {
  if (!reservations_.contains(key)) return;
  Forget(key);
  ctx_.Mutate(DeleteReservation{key});
  ++ctx_.stats().orphan_reservations_dropped;
}

const Replica::Entry* Replica::Find(const Key& key) const {
  auto it = reservations_.find(key);
  return it == reservations_.end() ? nullptr : &it->second;
}

std::vector<Key> Replica::DueForRecovery(TimeMs now) const {
  std::vector<Key> due;
  for (auto it = lease_index_.begin(); it != lease_index_.end() && it->first <= now; ++it) {
    due.push_back(it->second);
  }
  std::sort(due.begin(), due.end());  // key order, as callers expect
  return due;
}

std::optional<TimeMs> Replica::NextRecovery() const {
  if (lease_index_.empty()) return std::nullopt;
  return lease_index_.begin()->first;
}

void Replica::CheckInvariants() const {
  size_t indexed = 0;
  for (const auto& [key, e] : reservations_) {
    RP_CHECK(e.reservation.key == key, "reservation of ", e.reservation.key, " filed under ", key);
    if (!e.resolving && e.recover_at != kUnseeded) {
      ++indexed;
      RP_CHECK(lease_index_.contains({e.recover_at, key}), "reservation of ", key, " due at ",
               e.recover_at, " is missing from the lease index");
    }
    RP_CHECK(e.pending_write == 0 || ctx_.WritePending(e.pending_write), "reservation of ", key,
             " waits for write ", e.pending_write, ", which is not in flight");
  }
  RP_CHECK(indexed == lease_index_.size(), "the lease index holds ", lease_index_.size(),
           " entries for ", indexed, " reservations due for recovery");
  for (const auto& [key, c] : pending_committed_) {
    RP_CHECK(ctx_.WritePending(c.write_id), "committed entry of ", key, " waits for write ",
             c.write_id, ", which is not in flight");
  }
}

}  // namespace replicator::core
