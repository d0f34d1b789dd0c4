#include "sim/checker.h"

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "sim/describe.h"

namespace replicator::sim {

using core::Decision;
using core::GetOutcome;
using core::PutOutcome;

std::string Subject::ToString() const {
  std::string out;
  if (key) absl::StrAppend(&out, "key=", Quote(*key));
  if (proposal) absl::StrAppend(&out, key ? " " : "", "proposal=", Describe(*proposal));
  if (cluster) absl::StrAppend(&out, out.empty() ? "" : " ", "cluster=", *cluster);
  return out;
}

std::string Violation::ToString() const {
  return absl::StrCat("invariant ", invariant, " violated at t=", time, "ms ", subject.ToString(),
                      ": ", detail);
}

void Liveness::Add(const Liveness& o) {
  puts += o.puts;
  ok += o.ok;
  key_exists += o.key_exists;
  conflict += o.conflict;
  unavailable += o.unavailable;
  outcome_unknown += o.outcome_unknown;
  no_answer += o.no_answer;
}

std::string Liveness::ToString() const {
  const double share = puts == 0 ? 100.0 : 100.0 * static_cast<double>(definite()) / puts;
  return absl::StrCat(definite(), "/", puts, " puts definite (", absl::StrFormat("%.2f", share),
                      "%): ok ", ok, ", keyExists ", key_exists, ", conflict ", conflict,
                      ", unavailable ", unavailable, "; indefinite: outcome unknown ",
                      outcome_unknown, ", no answer ", no_answer);
}

namespace {

Subject KeySubject(const core::Key& key) { return Subject{key, std::nullopt}; }

Subject ProposalSubject(const core::ProposalId& p) { return Subject{std::nullopt, p}; }

Subject KeyProposal(const core::Key& key, const core::ProposalId& p) { return Subject{key, p}; }

Subject ClusterSubject(const core::ClusterId& cluster) {
  Subject s;
  s.cluster = cluster;
  return s;
}

const core::ReplicaOp* ReplicaOpOf(const core::Request& request) {
  if (auto* h = std::get_if<core::HandleRequest>(&request)) return &h->op;
  if (auto* f = std::get_if<core::ForwardRequest>(&request)) return &f->op;
  return nullptr;
}

}  // namespace

Checker::Checker(std::vector<int> node_cluster, std::vector<core::PeerId> node_ids,
                 std::vector<const core::MemoryState*> stores, int clusters, CheckerOptions options,
                 const core::TimeMs* now)
    : node_cluster_(std::move(node_cluster)),
      node_ids_(std::move(node_ids)),
      stores_(std::move(stores)),
      durable_stores_(stores_),
      clusters_(clusters),
      founders_(clusters),
      options_(options),
      now_(now),
      known_by_node_(node_ids_.size()),
      own_epoch_(node_ids_.size(), 0),
      durable_epoch_(node_ids_.size(), 0),
      started_(node_ids_.size(), false),
      generation_(node_ids_.size(), 0),
      durable_generations_(node_ids_.size()),
      durable_removals_(node_ids_.size()) {
  removed_at_.assign(clusters_, 0);
  retired_.assign(clusters_, false);
  for (int c = 0; c < clusters_; ++c) cluster_ids_.push_back(absl::StrCat("c", c));
  for (size_t n = 0; n < node_ids_.size(); ++n) founders_[node_cluster_[n]].push_back(node_ids_[n]);
}

void Checker::SetMembership(std::vector<core::ClusterId> cluster_ids,
                            std::vector<std::vector<core::PeerId>> founders,
                            std::vector<uint64_t> generations) {
  cluster_ids_ = std::move(cluster_ids);
  founders_ = std::move(founders);
  generations_ = std::move(generations);
  for (std::vector<core::PeerId>& f : founders_) std::sort(f.begin(), f.end());
}

void Checker::Fail(std::string invariant, Subject subject, std::string detail) {
  violations_.push_back(
      Violation{std::move(invariant), *now_, std::move(subject), std::move(detail)});
}

void Checker::SetDurableStores(std::vector<const core::MemoryState*> durable) {
  durable_stores_ = std::move(durable);
}

std::optional<core::Value> Checker::GlobalCommitted(const core::Key& key) const {
  auto it = committed_.find(key);
  if (it == committed_.end()) return std::nullopt;
  return it->second;
}

int Checker::NodeOfPeer(const core::PeerId& peer) const {
  for (size_t i = 0; i < node_ids_.size(); ++i) {
    if (node_ids_[i] == peer) return static_cast<int>(i);
  }
  return -1;
}

int Checker::ClusterOfPeer(const core::PeerId& peer) const {
  const int node = NodeOfPeer(peer);
  return node < 0 ? -1 : node_cluster_[node];
}

int Checker::ClusterIndex(const core::ClusterId& cluster) const {
  for (size_t c = 0; c < cluster_ids_.size(); ++c) {
    if (cluster_ids_[c] == cluster) return static_cast<int>(c);
  }
  return -1;
}

std::vector<int> Checker::VoterNodes(int cluster, uint64_t epoch) const {
  auto it = configs_.find(ConfigKey{cluster_ids_[cluster], epoch});
  const std::vector<core::PeerId>& voters =
      it != configs_.end() ? it->second.voters : founders_[cluster];
  std::vector<int> nodes;
  for (const core::PeerId& v : voters) {
    const int node = NodeOfPeer(v);
    if (node >= 0) nodes.push_back(node);
  }
  return nodes;
}

std::vector<int> Checker::NewestVoterNodes(int cluster) const {
  const core::Configuration* newest = Newest(cluster_ids_[cluster]);
  return VoterNodes(cluster, newest != nullptr ? newest->epoch : 0);
}

const core::Configuration* Checker::Newest(const core::ClusterId& cluster) const {
  // configs_ is ordered by (cluster, epoch): the last entry of `cluster`.
  auto it = configs_.lower_bound(ConfigKey{cluster, UINT64_MAX});
  if (it == configs_.begin()) return nullptr;
  --it;
  return it->first.first == cluster ? &it->second : nullptr;
}

// Answers after which the put's value may or may not end up committed: ok,
// keyExists naming the put's own value (an earlier attempt of it won), and
// outcomeUnknown (the coordinator could not learn its own decision;
// docs/design.md). Any other answer promises nothing was stored.
bool Checker::MayCommit(const ClientOp& op, const PutOutcome& outcome) {
  switch (outcome.kind) {
    case PutOutcome::Kind::kOk:
      return true;
    case PutOutcome::Kind::kKeyExists:
      return outcome.existing == op.value;
    case PutOutcome::Kind::kOutcomeUnknown:
      return true;
    default:
      return false;
  }
}

// --- Durable mutations ------------------------------------------------------

void Checker::BeforeApply(int node, const core::Mutation& m) {
  if (auto* pr = std::get_if<core::PutReservation>(&m)) {
    BeforePutReservation(node, pr->reservation);
  } else if (auto* dr = std::get_if<core::DeleteReservation>(&m)) {
    BeforeDeleteReservation(node, dr->key);
  } else if (auto* pc = std::get_if<core::PutCommitted>(&m)) {
    BeforePutCommitted(node, *pc);
  } else if (auto* pa = std::get_if<core::PutAcceptor>(&m)) {
    BeforePutAcceptor(node, pa->record);
  } else if (auto* da = std::get_if<core::DeleteAcceptor>(&m)) {
    BeforeDeleteAcceptor(node, da->proposal);
  } else if (auto* config = std::get_if<core::PutConfig>(&m)) {
    if (config->config.cluster == cluster_ids_[node_cluster_[node]]) {
      durable_epoch_[node] = std::max(durable_epoch_[node], config->config.epoch);
    }
    if (config->config.generation != 0) {
      durable_generations_[node][config->config.cluster] = config->config.generation;
    }
    if (config->config.removed != 0) {
      durable_removals_[node][config->config.cluster] = config->config.removed;
    }
  }
}

void Checker::BeforePutReservation(int node, const core::Reservation& r) {
  const core::MemoryState& store = *stores_[node];
  const core::PeerId& self = node_ids_[node];
  proposal_kv_.emplace(r.proposal, std::make_pair(r.key, r.value));
  proposals_of_value_[r.value].insert(r.proposal);
  if (auto committed = store.GetCommitted(r.key)) {
    Fail("R", KeySubject(r.key),
         absl::StrCat(self, " reserves for ", Describe(r.proposal), " a key it has committed (",
                      Quote(*committed), ")"));
  }
  auto it = store.reservations().find(r.key);
  if (it != store.reservations().end() && !(it->second.proposal == r.proposal)) {
    Fail("R", KeySubject(r.key),
         absl::StrCat(self, " replaces the reservation of ", Describe(it->second.proposal),
                      " with one for ", Describe(r.proposal), " without dropping it first"));
  }
}

void Checker::BeforeDeleteReservation(int node, const core::Key& key) {
  const core::MemoryState& store = *stores_[node];
  auto it = store.reservations().find(key);
  if (it != store.reservations().end() && !decisions_.contains(it->second.proposal)) {
    Fail("R", KeyProposal(key, it->second.proposal),
         absl::StrCat(node_ids_[node],
                      " drops a reservation whose decision nobody has chosen or sent"));
  }
}

void Checker::BeforePutCommitted(int node, const core::PutCommitted& pc) {
  const core::PeerId& self = node_ids_[node];
  auto mine = stores_[node]->GetCommitted(pc.key);
  if (mine && *mine != pc.value) {
    Fail("1", KeySubject(pc.key),
         absl::StrCat(self, " commits ", Quote(pc.value), " over its committed ", Quote(*mine)));
  }
  CheckCommitAgainstHistory(self, pc.key, pc.value);
  if (!SomeProposalDecidedCommit(pc.value)) {
    Fail("3", KeySubject(pc.key),
         absl::StrCat(self, " commits ", Quote(pc.value),
                      " but no proposal of that value was decided commit"));
  }
}

void Checker::CheckCommitAgainstHistory(const core::PeerId& self, const core::Key& key,
                                        const core::Value& value) {
  auto it = committed_.find(key);
  if (it != committed_.end()) {
    if (it->second != value) {
      Fail("1", KeySubject(key),
           absl::StrCat(self, " commits ", Quote(value), " but ", Quote(it->second),
                        " was committed before"));
    }
    return;
  }
  committed_.emplace(key, value);
  auto claims = pending_claims_.find(key);
  if (claims == pending_claims_.end()) return;
  for (const auto& [claimed, source] : claims->second) {
    if (claimed != value) {
      Fail("2", KeySubject(key),
           absl::StrCat(source, " reported ", Quote(claimed), " but ", self, " commits ",
                        Quote(value)));
    }
  }
  pending_claims_.erase(claims);
}

bool Checker::SomeProposalDecidedCommit(const core::Value& value) const {
  auto ps = proposals_of_value_.find(value);
  if (ps == proposals_of_value_.end()) return false;
  for (const core::ProposalId& p : ps->second) {
    auto d = decisions_.find(p);
    if (d != decisions_.end() && d->second.decision == Decision::kCommit) return true;
  }
  return false;
}

void Checker::BeforeDeleteAcceptor(int node, const core::ProposalId& p) {
  const core::PeerId& self = node_ids_[node];
  // The committed entry answers for the register from now on, so it must
  // be there already (the commit comes first in the same write).
  auto kv = proposal_kv_.find(p);
  std::optional<core::CommittedEntry> entry;
  if (kv != proposal_kv_.end()) entry = stores_[node]->GetEntry(kv->second.first);
  if (!entry || !(entry->proposal == p)) {
    Fail("3", ProposalSubject(p),
         absl::StrCat(self, " deletes its acceptor record of ", Describe(p),
                      " without holding the proposal's key committed by it"));
  }
  dropped_acceptors_.emplace(node, p);
}

void Checker::BeforePutAcceptor(int node, const core::AcceptorRecord& rec) {
  const core::PeerId& self = node_ids_[node];
  if (dropped_acceptors_.contains(std::make_pair(node, rec.proposal))) {
    Fail("3", ProposalSubject(rec.proposal),
         absl::StrCat(self, " writes an acceptor record of ", Describe(rec.proposal),
                      " after deleting it (the register is decided)"));
  }
  auto prev = stores_[node]->acceptors().find(rec.proposal);
  if (prev != stores_[node]->acceptors().end()) {
    if (rec.promised < prev->second.promised) {
      Fail("3", ProposalSubject(rec.proposal),
           absl::StrCat(self, " lowers its promise from ", Describe(prev->second.promised), " to ",
                        Describe(rec.promised)));
    }
    if (prev->second.accepted &&
        (!rec.accepted || rec.accepted->ballot < prev->second.accepted->ballot)) {
      Fail("3", ProposalSubject(rec.proposal),
           absl::StrCat(self, " forgets or lowers its accepted ballot ",
                        Describe(prev->second.accepted->ballot)));
    }
  }
  if (rec.accepted) CountAccept(node, rec.proposal, *rec.accepted);
}

// A majority of the voters of the proposal's epoch of the coordinator's
// cluster accepting one ballot chooses its decision; other acceptors do not
// count towards it.
void Checker::CountAccept(int node, const core::ProposalId& proposal,
                          const core::AcceptedValue& accepted) {
  auto& set = accepts_[{proposal, accepted.ballot}];
  if (!set.nodes.empty() && set.decision != accepted.decision) {
    Fail("3", ProposalSubject(proposal),
         absl::StrCat("ballot ", Describe(accepted.ballot), " carries both ",
                      Describe(set.decision), " and ", Describe(accepted.decision)));
  }
  set.decision = accepted.decision;
  const int c0 = ClusterOfPeer(proposal.coordinator);
  if (c0 < 0) return;
  // decision(p)'s acceptors are the voters of p's epoch, forever.
  const std::vector<int> voters = VoterNodes(c0, proposal.epoch);
  if (std::find(voters.begin(), voters.end(), node) == voters.end()) return;
  set.nodes.insert(node);
  if (set.nodes.size() == voters.size() / 2 + 1) {
    RecordDecision(proposal, set.decision,
                   absl::StrCat("chosen at ballot ", Describe(accepted.ballot)));
  }
}

// --- Messages ---------------------------------------------------------------

void Checker::OnSend(int node, const core::Request& request) {
  const core::ReplicaOp* op = ReplicaOpOf(request);
  if (op == nullptr) return;
  const core::PeerId& self = node_ids_[node];
  if (auto* r = std::get_if<core::ReserveOp>(op)) {
    proposal_kv_.emplace(r->proposal, std::make_pair(r->key, r->value));
    proposals_of_value_[r->value].insert(r->proposal);
    // A HandleRequest goes to a voter of the sender's own cluster (from
    // the coordinator or a representative), counted under `epoch` of it.
    if (std::holds_alternative<core::HandleRequest>(request)) {
      reserve_epochs_[{r->proposal, node_cluster_[node]}].insert(r->epoch);
    }
    if (r->proposal.coordinator == self) {
      uint64_t& g = proposal_generation_[r->proposal];
      g = std::max(g, r->generation);
    }
    if (r->proposal.coordinator == self && !ops_of_proposal_.contains(r->proposal)) {
      std::vector<int>& owners = ops_of_proposal_[r->proposal];
      for (size_t i = 0; i < ops_.size(); ++i) {
        const ClientOp& o = ops_[i];
        if (o.type != ClientOp::Type::kPut || o.node != node || o.finished >= 0 ||
            o.abandoned || o.key != r->key || o.value != r->value) {
          continue;
        }
        owners.push_back(static_cast<int>(i));
        proposals_of_op_[static_cast<int>(i)].push_back(r->proposal);
      }
    }
  } else if (auto* c = std::get_if<core::CommitOp>(op)) {
    proposal_kv_.emplace(c->proposal, std::make_pair(c->key, c->value));
    proposals_of_value_[c->value].insert(c->proposal);
    RecordDecision(c->proposal, Decision::kCommit, absl::StrCat("commit sent by ", self));
  } else if (auto* a = std::get_if<core::AbortOp>(op)) {
    RecordDecision(a->proposal, Decision::kAbort, absl::StrCat("abort sent by ", self));
  }
}

void Checker::OnDeliver(int node, const core::Request& request) { OnSend(node, request); }

void Checker::OnRespond(int node, const core::Response& response) {
  const auto* digest = std::get_if<core::DigestResponse>(&response);
  if (digest == nullptr || durable_stores_ != stores_) return;
  std::set<uint64_t> durable;
  for (const auto& [cluster, g] : durable_generations_[node]) durable.insert(g);
  for (const auto& [cluster, g] : durable_removals_[node]) durable.insert(g);
  uint64_t g = 0;
  while (durable.contains(g + 1)) ++g;
  const core::ClusterId& own = cluster_ids_[node_cluster_[node]];
  if (digest->generation > g || digest->epoch > durable_epoch_[node]) {
    Fail("M", ClusterSubject(own),
         absl::StrCat(node_ids_[node], " answered a digest at epoch ", digest->epoch,
                      " and federation generation ", digest->generation,
                      " but has made only epoch ", durable_epoch_[node], " and generation ", g,
                      " durable: a restart could take it back"));
  }
}

void Checker::OnResolveAnswered(int node, const core::ProposalId& proposal,
                                const core::ResolveResponse& response) {
  if (response.decision) {
    RecordDecision(proposal, *response.decision,
                   absl::StrCat("resolve answered by ", node_ids_[node]));
  }
}

void Checker::OnEngineViolation(int node, const core::ViolationEffect& v) {
  // Membership's violations name "config/<cluster>/<epoch>" as their key.
  constexpr std::string_view kConfig = "config/";
  Subject subject = KeySubject(v.key);
  if (v.key.rfind(kConfig, 0) == 0) {
    subject = ClusterSubject(
        v.key.substr(kConfig.size(), v.key.find('/', kConfig.size()) - kConfig.size()));
  }
  Fail("E", std::move(subject), absl::StrCat(node_ids_[node], " reports: ", v.detail));
}

void Checker::RecordDecision(const core::ProposalId& p, Decision d, const std::string& source) {
  auto [it, fresh] = decisions_.emplace(p, DecisionRecord{d, source});
  if (!fresh && it->second.decision != d) {
    Fail("3", ProposalSubject(p),
         absl::StrCat(Describe(it->second.decision), " (", it->second.source, ") vs ",
                      Describe(d), " (", source, ")"));
    return;
  }
  if (!fresh || d != Decision::kCommit) return;
  auto kv = proposal_kv_.find(p);
  if (kv == proposal_kv_.end()) return;
  auto [decided, first] = decided_value_.emplace(kv->second.first, kv->second.second);
  if (!first && decided->second != kv->second.second) {
    Fail("1", KeySubject(kv->second.first),
         absl::StrCat("two values decided commit: ", Quote(decided->second), " and ",
                      Quote(kv->second.second), " (", source, ")"));
  }
  auto owners = ops_of_proposal_.find(p);
  if (owners == ops_of_proposal_.end()) return;
  for (int index : owners->second) {
    const ClientOp& put = ops_[index];
    if (put.put && !MayCommit(put, *put.put)) {
      Fail("2", KeyProposal(put.key, p),
           absl::StrCat("the put of ", Quote(put.value), " answered ", Describe(*put.put),
                        " but its proposal is decided commit (", source, ")"));
    }
  }
}

// --- Client operations ------------------------------------------------------

int Checker::OnOpStarted(ClientOp op) {
  int index = static_cast<int>(ops_.size());
  op.started_seq = ++history_seq_;
  ops_.push_back(std::move(op));
  return index;
}

void Checker::OnOpAbandoned(int op) {
  if (ops_[op].finished < 0) ops_[op].abandoned = true;
}

void Checker::CheckClaim(const core::Key& key, const core::Value& value,
                         const std::string& source) {
  auto it = committed_.find(key);
  if (it == committed_.end()) {
    pending_claims_[key].emplace_back(value, source);
  } else if (it->second != value) {
    Fail("2", KeySubject(key),
         absl::StrCat(source, " reported ", Quote(value), " but ", Quote(it->second),
                      " is committed"));
  }
}

void Checker::CheckPutOk(int index) {
  const ClientOp& op = ops_[index];
  // Which proposal of this put was chosen commit (by a majority of acceptors)?
  const core::ProposalId* chosen = nullptr;
  auto ps = proposals_of_value_.find(op.value);
  if (ps != proposals_of_value_.end()) {
    for (const core::ProposalId& p : ps->second) {
      auto d = decisions_.find(p);
      if (d != decisions_.end() && d->second.decision == Decision::kCommit) chosen = &p;
    }
  }
  if (chosen == nullptr) {
    Fail("3", KeySubject(op.key),
         absl::StrCat("put of ", Quote(op.value), " at ", node_ids_[op.node],
                      " answered ok, but no proposal of it is decided commit"));
    return;
  }
  if (!options_.check_durable_at_ok) return;
  auto g = proposal_generation_.find(*chosen);
  const uint64_t counted = g == proposal_generation_.end() ? UINT64_MAX : g->second;
  for (int c = 0; c < clusters_; ++c) {
    // A cluster founded after the generation the put was counted at is not
    // one of its clusters: the federation settle of that cluster brings it
    // the put (docs/design.md, "New clusters").
    // So is one not founded yet (its generation unknown to every node).
    if (c < static_cast<int>(generations_.size()) &&
        (generations_[c] == 0 || generations_[c] > counted)) {
      continue;
    }
    // Nor one removed at or before it (core/founding.h).
    if (removed_at_[c] != 0 && removed_at_[c] <= counted) continue;
    // Durable at a majority of the voters of some epoch the reserves were
    // counted under (votes are only ever ok under the voter's own epoch).
    std::set<uint64_t> epochs{0};
    if (auto it = reserve_epochs_.find({*chosen, c}); it != reserve_epochs_.end()) {
      epochs = it->second;
    }
    bool enough = false;
    std::string report;
    for (uint64_t epoch : epochs) {
      const std::vector<int> voters = VoterNodes(c, epoch);
      size_t durable = 0;
      std::string where;
      for (int n : voters) {
        const core::MemoryState& s = *durable_stores_[n];
        auto committed = s.GetCommitted(op.key);
        auto r = s.reservations().find(op.key);
        bool has = (committed && *committed == op.value) ||
                   (r != s.reservations().end() && r->second.proposal == *chosen &&
                    r->second.value == op.value);
        if (has) {
          durable++;
          absl::StrAppend(&where, " ", node_ids_[n]);
        }
      }
      enough = enough || durable >= voters.size() / 2 + 1;
      absl::StrAppend(&report, report.empty() ? "" : ";", " ", durable, "/", voters.size(),
                      " voters", epoch == 0 ? std::string() : absl::StrCat(" of epoch ", epoch),
                      ":", where);
    }
    if (!enough) {
      Fail("4", KeyProposal(op.key, *chosen),
           absl::StrCat("put of ", Quote(op.value), " answered ok but cluster ", c,
                        " holds it durably (synced) at only", report));
    }
  }
}

void Checker::OnPutDone(int index, const PutOutcome& outcome) {
  ClientOp& op = ops_[index];
  if (op.finished >= 0) {
    Fail("C", KeySubject(op.key),
         absl::StrCat("a second PutDone for the put of ", Quote(op.value), ": ",
                      Describe(outcome)));
    return;
  }
  op.finished = *now_;
  op.finished_seq = ++history_seq_;
  op.put = outcome;
  const bool valid = !core::ValidatePut(core::Limits{}, op.key, op.value).has_value();
  if (valid == (outcome.kind == PutOutcome::Kind::kInvalidArgument)) {
    Fail("C", KeySubject(op.key),
         absl::StrCat("put of ", Quote(op.value), " answered ", Describe(outcome),
                      valid ? " though it is valid" : " though it is invalid"));
    return;
  }
  switch (outcome.kind) {
    case PutOutcome::Kind::kOk: {
      auto [it, fresh] = ok_put_.emplace(op.key, index);
      const ClientOp& first = ops_[it->second];
      if (!fresh && (op.request_id == 0 || first.request_id != op.request_id)) {
        Fail("2", KeySubject(op.key),
             absl::StrCat("a second client put answered ok: ", Quote(op.value), " (request id ",
                          op.request_id, ") after ", Quote(first.value), " (request id ",
                          first.request_id, ")"));
      }
      CheckClaim(op.key, op.value, absl::StrCat("put ok at ", node_ids_[op.node]));
      CheckPutOk(index);
      known_since_.emplace(op.key, Known{*now_, op.finished_seq});
      break;
    }
    case PutOutcome::Kind::kKeyExists: {
      if (!committed_.contains(op.key) && !decided_value_.contains(op.key)) {
        Fail("2", KeySubject(op.key),
             absl::StrCat("put of ", Quote(op.value), " answered keyExists(",
                          Quote(outcome.existing),
                          ") but no node has committed the key, nor was a commit decided"));
      } else {
        CheckClaim(op.key, outcome.existing,
                   absl::StrCat("put keyExists at ", node_ids_[op.node]));
      }
      if (op.request_id != 0 && outcome.existing == op.value) {
        Fail("2", KeySubject(op.key),
             absl::StrCat("put of ", Quote(op.value), " with request id ", op.request_id,
                          " answered keyExists of its own value instead of ok"));
      }
      known_since_.emplace(op.key, Known{*now_, op.finished_seq});
      break;
    }
    default:
      break;
  }
  if (!MayCommit(op, outcome)) {
    auto ps = proposals_of_op_.find(index);
    if (ps == proposals_of_op_.end()) return;
    for (const core::ProposalId& p : ps->second) {
      auto d = decisions_.find(p);
      if (d != decisions_.end() && d->second.decision == Decision::kCommit) {
        Fail("2", KeyProposal(op.key, p),
             absl::StrCat("the put of ", Quote(op.value), " answered ", Describe(outcome),
                          " but its proposal is decided commit (", d->second.source, ")"));
      }
    }
  }
}

void Checker::OnGetDone(int index, const GetOutcome& outcome) {
  ClientOp& op = ops_[index];
  if (op.finished >= 0) {
    Fail("C", KeySubject(op.key), absl::StrCat("a second GetDone: ", Describe(outcome)));
    return;
  }
  op.finished = *now_;
  op.finished_seq = ++history_seq_;
  op.get = outcome;
  const bool valid = !core::ValidateKey(core::Limits{}, op.key).has_value();
  if (valid == (outcome.kind == GetOutcome::Kind::kInvalidArgument)) {
    Fail("C", KeySubject(op.key),
         absl::StrCat("get answered ", Describe(outcome),
                      valid ? " though the key is valid" : " though the key is invalid"));
    return;
  }
  const bool linearizable = op.type == ClientOp::Type::kGetLinearizable;
  const std::string source = absl::StrCat(linearizable ? "linearizable" : "local", " get at ",
                                          node_ids_[op.node]);
  if (outcome.kind == GetOutcome::Kind::kFound) {
    if (!linearizable && !committed_.contains(op.key) && !decided_value_.contains(op.key)) {
      Fail("L", KeySubject(op.key),
           absl::StrCat(source, " found ", Quote(outcome.value),
                        " but no node has committed the key, nor was a commit decided"));
    } else {
      CheckClaim(op.key, outcome.value, source);
    }
    known_since_.emplace(op.key, Known{*now_, op.finished_seq});
  } else if (outcome.kind == GetOutcome::Kind::kNotFound && linearizable) {
    auto known = known_since_.find(op.key);
    if (known != known_since_.end() && known->second.seq < op.started_seq) {
      Fail("L", KeySubject(op.key),
           absl::StrCat(source, " started at t=", op.started,
                        "ms answered notFound, but the key was known to exist since t=",
                        known->second.time, "ms (an answer before the get started)"));
    }
  }
}

// --- Membership -------------------------------------------------------------

namespace {

// The peers in exactly one of `a` and `b` (both sorted).
std::vector<core::PeerId> SymmetricDifference(const std::vector<core::PeerId>& a,
                                              const std::vector<core::PeerId>& b) {
  std::vector<core::PeerId> out;
  std::set_symmetric_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

}  // namespace

void Checker::OnEngineStart(int node) { started_[node] = true; }

void Checker::OnClusterRetired(int cluster) { retired_[cluster] = true; }

bool Checker::EverVoter(const core::PeerId& peer) const {
  for (const auto& [key, c] : configs_) {
    if (c.Has(peer)) return true;
  }
  return false;
}

bool Checker::OnConfigurations(int node, const std::vector<core::Configuration>& known) {
  if (!started_[node] && known == known_by_node_[node]) return false;
  bool fresh = false;
  for (const core::Configuration& c : known) fresh = RecordConfiguration(node, c) || fresh;
  const core::ClusterId& own = cluster_ids_[node_cluster_[node]];
  uint64_t epoch = 0;
  for (const core::Configuration& c : known) {
    if (c.cluster == own) epoch = std::max(epoch, c.epoch);
  }
  // A restart must not take a node back to an older epoch it adopted
  // durably (it may have answered under it). Only synced state counts, so
  // this holds unless the disk itself is broken.
  if (started_[node] && epoch < durable_epoch_[node] && durable_stores_ == stores_) {
    Fail("M", ClusterSubject(own),
         absl::StrCat(node_ids_[node], " restarted at epoch ", epoch, " of ", own,
                      " though it had made epoch ", durable_epoch_[node], " durable"));
  }
  // The federation generation: the longest run of generations 1, 2, ... of
  // the clusters it knows. It never goes down; a restart starts at least at
  // the one its durable configurations give.
  auto run = [](const std::set<uint64_t>& generations) {
    uint64_t g = 0;
    while (generations.contains(g + 1)) ++g;
    return g;
  };
  // A removal fills its slot as a founding does.
  std::set<uint64_t> generations;
  for (const core::Configuration& c : known) {
    if (c.generation != 0) generations.insert(c.generation);
    if (c.removed != 0) generations.insert(c.removed);
  }
  const uint64_t g = run(generations);
  if (started_[node]) {
    std::set<uint64_t> durable;
    for (const auto& [cluster, dg] : durable_generations_[node]) durable.insert(dg);
    for (const auto& [cluster, dr] : durable_removals_[node]) durable.insert(dr);
    if (g < run(durable) && durable_stores_ == stores_) {
      Fail("M", ClusterSubject(own),
           absl::StrCat(node_ids_[node], " restarted at federation generation ", g,
                        " though its durable configurations give ", run(durable)));
    }
  } else if (g < generation_[node]) {
    Fail("M", ClusterSubject(own),
         absl::StrCat(node_ids_[node], " went from federation generation ", generation_[node],
                      " down to ", g));
  }
  generation_[node] = g;
  started_[node] = false;
  own_epoch_[node] = epoch;
  known_by_node_[node] = known;
  return fresh;
}

bool Checker::RecordConfiguration(int node, const core::Configuration& c) {
  const int cluster = ClusterIndex(c.cluster);
  if (cluster < 0) {
    Fail("M", ClusterSubject(c.cluster),
         absl::StrCat(node_ids_[node], " knows ", Describe(c), " of an unknown cluster"));
    return false;
  }
  if (cluster >= static_cast<int>(generations_.size())) generations_.resize(cluster + 1, 0);
  if (generations_[cluster] == 0 && c.generation != 0) {
    // A cluster founded by consensus: the first generation heard of is its
    // generation, and no other cluster may have it, nor any removal.
    for (size_t other = 0; other < generations_.size(); ++other) {
      if (static_cast<int>(other) != cluster && generations_[other] == c.generation) {
        Fail("M", ClusterSubject(c.cluster),
             absl::StrCat(node_ids_[node], " knows ", Describe(c), " but ", cluster_ids_[other],
                          " was founded at generation ", c.generation, " too"));
      }
    }
    for (size_t other = 0; other < removed_at_.size(); ++other) {
      if (removed_at_[other] == c.generation) {
        Fail("M", ClusterSubject(c.cluster),
             absl::StrCat(node_ids_[node], " knows ", Describe(c), " but generation ", c.generation,
                          " removed ", cluster_ids_[other]));
      }
    }
    generations_[cluster] = c.generation;
  } else if (generations_[cluster] != 0 && c.generation != generations_[cluster]) {
    Fail("M", ClusterSubject(c.cluster),
         absl::StrCat(node_ids_[node], " knows ", Describe(c), " but ", c.cluster,
                      " was founded at generation ", generations_[cluster]));
  }
  if (c.removed != 0 && cluster < static_cast<int>(removed_at_.size())) {
    // A removal: of a cluster founded before it and never the first, once,
    // at a generation no founding and no other removal holds.
    if (removed_at_[cluster] == 0) {
      if (c.generation <= 1 || c.removed <= c.generation) {
        Fail("M", ClusterSubject(c.cluster),
             absl::StrCat(node_ids_[node], " knows ", Describe(c),
                          ": the first cluster, or removed before it was founded"));
      }
      for (size_t other = 0; other < generations_.size(); ++other) {
        if (generations_[other] == c.removed ||
            (static_cast<int>(other) != cluster && other < removed_at_.size() &&
             removed_at_[other] == c.removed)) {
          Fail("M", ClusterSubject(c.cluster),
               absl::StrCat(node_ids_[node], " knows ", Describe(c), " but generation ", c.removed,
                            " holds ", cluster_ids_[other], " too"));
        }
      }
      removed_at_[cluster] = c.removed;
    } else if (removed_at_[cluster] != c.removed) {
      Fail("M", ClusterSubject(c.cluster),
           absl::StrCat(node_ids_[node], " knows ", Describe(c), " but ", c.cluster,
                        " was removed at generation ", removed_at_[cluster]));
    }
  }
  const ConfigKey key{c.cluster, c.epoch};
  auto it = configs_.find(key);
  if (it != configs_.end()) {
    if (it->second.voters != c.voters) {
      Fail("M", ClusterSubject(c.cluster),
           absl::StrCat("two voter sets for epoch ", c.epoch, " of ", c.cluster, ": ",
                        node_ids_[node], " knows ", Describe(c), ", ", config_known_first_at_[key],
                        " knew ", Describe(it->second)));
    }
    return false;
  }
  configs_.emplace(key, c);
  config_known_first_at_.emplace(key, node_ids_[node]);
  for (const core::PeerId& v : c.voters) {
    if (ClusterOfPeer(v) != cluster) {
      Fail("M", ClusterSubject(c.cluster),
           absl::StrCat(node_ids_[node], " knows ", Describe(c), ", whose voter ", v,
                        " is not a node of ", c.cluster));
    }
  }
  if (c.epoch == 1 && founders_[cluster].empty()) {
    // Founded by consensus: the first founding set heard of; a second one
    // is caught above (two voter sets for epoch 1).
    founders_[cluster] = c.voters;
  } else if (c.epoch == 1 && c.voters != founders_[cluster]) {
    Fail("M", ClusterSubject(c.cluster),
         absl::StrCat(node_ids_[node], " knows ", Describe(c),
                      " but the founding set (epoch 1) is {",
                      absl::StrJoin(founders_[cluster], ","), "}"));
  }
  CheckConfigSequence(c.cluster, c.epoch);
  return true;
}

void Checker::CheckConfigSequence(const core::ClusterId& cluster, uint64_t epoch) {
  const core::Configuration& c = configs_.at(ConfigKey{cluster, epoch});
  for (uint64_t other : {epoch - 1, epoch + 1}) {
    auto it = configs_.find(ConfigKey{cluster, other});
    if (other == 0 || it == configs_.end()) continue;
    const std::vector<core::PeerId> diff = SymmetricDifference(it->second.voters, c.voters);
    if (diff.size() != 1) {
      Fail("M", ClusterSubject(cluster),
           absl::StrCat("consecutive epochs differ by ", diff.size(),
                        " voters, not one: ", Describe(other < epoch ? it->second : c), " then ",
                        Describe(other < epoch ? c : it->second)));
    }
  }
  // Nothing here adds a removed voter back, and a removed node never
  // promotes itself again: over the epochs known, each peer is a voter in
  // one unbroken run of them.
  std::map<core::PeerId, int> state;  // 0: not yet a voter, 1: a voter, 2: removed
  for (auto it = configs_.lower_bound(ConfigKey{cluster, 0});
       it != configs_.end() && it->first.first == cluster; ++it) {
    const core::Configuration& e = it->second;
    for (const core::PeerId& v : e.voters) {
      int& st = state[v];
      if (st == 2) {
        Fail("M", ClusterSubject(cluster),
             absl::StrCat(v, " is a voter again in ", Describe(e), " after it was removed"));
        return;
      }
      st = 1;
    }
    for (auto& [peer, st] : state) {
      if (st == 1 && !e.Has(peer)) st = 2;
    }
  }
}

void Checker::OnChangeRequested(uint64_t change_id, int node,
                                const core::MembershipChange& change) {
  auto [it, fresh] = changes_.emplace(change_id, Change{node, change});
  if (!fresh) Fail("C", {}, absl::StrCat("membership change id ", change_id, " used twice"));
}

void Checker::OnChangeDone(int node, const core::ChangeDoneEffect& done) {
  auto it = changes_.find(done.change_id);
  if (it == changes_.end() || it->second.node != node || it->second.done || it->second.lost) {
    Fail("C", {},
         absl::StrCat(node_ids_[node], " ChangeDone for change #", done.change_id,
                      " that is not pending there: ", Describe(done.outcome)));
    return;
  }
  Change& change = it->second;
  change.done = true;
  if (done.outcome.kind != core::ChangeOutcome::Kind::kOk) return;
  const core::Configuration& config = done.outcome.config;
  if (change.change.kind == core::MembershipChange::Kind::kRemoveCluster) {
    if (config.cluster != change.change.cluster || config.removed == 0) {
      Fail("M", ClusterSubject(change.change.cluster),
           absl::StrCat(node_ids_[node], " answered change #", done.change_id, " (",
                        Describe(change.change), ") ok with ", Describe(config)));
    }
    RecordConfiguration(node, config);
    return;
  }
  const bool has = config.Has(change.change.peer);
  const bool add = change.change.kind == core::MembershipChange::Kind::kAdd;
  if (config.epoch < 2 || has != add || config.cluster != cluster_ids_[node_cluster_[node]]) {
    Fail("M", ClusterSubject(cluster_ids_[node_cluster_[node]]),
         absl::StrCat(node_ids_[node], " answered change #", done.change_id, " (",
                      Describe(change.change), ") ok with ", Describe(config)));
  }
  RecordConfiguration(node, config);
}

int Checker::OnNodeCrashed(int node) {
  int lost = 0;
  for (auto& [id, change] : changes_) {
    if (change.node == node && !change.done && !change.lost) {
      change.lost = true;
      ++lost;
    }
  }
  return lost;
}

void Checker::CheckEveryChangeFinished() {
  for (const auto& [id, change] : changes_) {
    if (!change.done && !change.lost) {
      Fail("C", ClusterSubject(cluster_ids_[node_cluster_[change.node]]),
           absl::StrCat("membership change #", id, " (", Describe(change.change), ") at ",
                        node_ids_[change.node], " never finished, and its node stayed up"));
    }
  }
}

void Checker::CheckConfigurationsConverged() {
  for (size_t n = 0; n < node_ids_.size(); ++n) {
    if (NodeRetired(n)) continue;
    // Every removal is known everywhere.
    for (int c = 0; c < clusters_; ++c) {
      if (removed_at_[c] == 0) continue;
      bool knows = false;
      for (const core::Configuration& k : known_by_node_[n]) {
        knows = knows || (k.cluster == cluster_ids_[c] && k.removed == removed_at_[c]);
      }
      if (!knows) {
        Fail("M", ClusterSubject(cluster_ids_[c]),
             absl::StrCat("configurations not converged: ", node_ids_[n], " does not know that ",
                          cluster_ids_[c], " was removed at generation ", removed_at_[c]));
      }
    }
    const core::ClusterId& cluster = cluster_ids_[node_cluster_[n]];
    const core::Configuration* newest = Newest(cluster);
    if (newest == nullptr) continue;
    if (own_epoch_[n] != newest->epoch) {
      Fail("M", ClusterSubject(cluster),
           absl::StrCat("configurations not converged: ", node_ids_[n], " knows epoch ",
                        own_epoch_[n], " of ", cluster, " after the quiet phase, not the newest, ",
                        Describe(*newest)));
      continue;
    }
    // Its cluster's whole history (docs/design.md): decision(p)'s
    // acceptors are the voters of p.epoch, which recovery looks up there.
    std::set<uint64_t> known;
    for (const core::Configuration& c : known_by_node_[n]) {
      if (c.cluster == cluster) known.insert(c.epoch);
    }
    std::string missing;
    for (uint64_t e = 1; e <= newest->epoch; ++e) {
      if (!known.contains(e)) absl::StrAppend(&missing, missing.empty() ? "" : ",", e);
    }
    if (!missing.empty()) {
      Fail("M", ClusterSubject(cluster),
           absl::StrCat("configurations not converged: ", node_ids_[n], " is at epoch ",
                        newest->epoch, " of ", cluster, " but lacks epoch(s) ", missing,
                        " of its history"));
    }
  }
}

// --- After the quiet phase --------------------------------------------------

void Checker::CheckNoReservations(const std::vector<bool>& up, const std::string& when) {
  for (size_t n = 0; n < stores_.size(); ++n) {
    if (!up[n]) continue;
    for (const auto& [key, r] : stores_[n]->reservations()) {
      Fail("K", KeyProposal(key, r.proposal),
           absl::StrCat(node_ids_[n], " still holds a reservation for ", Quote(r.value),
                        " (since t=", r.since, "ms) ", when));
    }
  }
}

Liveness Checker::CountLiveness() const {
  Liveness l;
  for (const ClientOp& op : ops_) {
    if (op.type != ClientOp::Type::kPut || op.probe) continue;
    if (op.put && op.put->kind == PutOutcome::Kind::kInvalidArgument) continue;
    if (!op.put && core::ValidatePut(core::Limits{}, op.key, op.value)) continue;
    l.puts++;
    if (!op.put) {
      l.no_answer++;
      continue;
    }
    switch (op.put->kind) {
      case PutOutcome::Kind::kOk:
        l.ok++;
        break;
      case PutOutcome::Kind::kKeyExists:
        l.key_exists++;
        break;
      case PutOutcome::Kind::kConflict:
        l.conflict++;
        break;
      case PutOutcome::Kind::kUnavailable:
        l.unavailable++;
        break;
      case PutOutcome::Kind::kOutcomeUnknown:
        l.outcome_unknown++;
        break;
      case PutOutcome::Kind::kInvalidArgument:
        break;
    }
  }
  return l;
}

void Checker::CheckFinal(const std::vector<int>& open_inbound) {
  // Every cluster whose nodes joined is founded by the end (a founding is
  // retried until it is decided: the quiet phase heals every fault).
  for (int c = 0; c < clusters_; ++c) {
    if (founders_[c].empty()) {
      Fail("M", ClusterSubject(cluster_ids_[c]),
           absl::StrCat(cluster_ids_[c], " was never founded (no node knows its epoch 1)"));
    }
  }
  std::vector<bool> up(stores_.size(), true);
  for (size_t n = 0; n < up.size(); ++n) up[n] = !NodeRetired(n);
  CheckNoReservations(up, "after the quiet phase, every node up (but a retired cluster's)");
  std::set<core::Key> keys;
  for (const auto& [key, value] : committed_) keys.insert(key);
  for (const auto& [key, op] : ok_put_) keys.insert(key);
  for (const core::Key& key : keys) CheckKeyReplicated(key);
  CheckNoClaimLeft();
  CheckEveryOpFinished();
  CheckEveryChangeFinished();
  CheckEveryRequestAnswered(open_inbound);
  if (options_.check_convergence) CheckConfigurationsConverged();
  if (options_.expect_liveness) CheckFaultFreeLiveness();
}

void Checker::CheckKeyReplicated(const core::Key& key) {
  auto global = committed_.find(key);
  if (global == committed_.end()) {
    Fail("5", KeySubject(key), "a put answered ok but no node ever committed the key");
    return;
  }
  std::vector<bool> has(stores_.size(), false);
  std::string missing;
  for (size_t n = 0; n < stores_.size(); ++n) {
    auto v = stores_[n]->GetCommitted(key);
    has[n] = v && *v == global->second;
    if (!has[n] && !NodeRetired(n)) absl::StrAppend(&missing, " ", node_ids_[n]);
  }
  for (int c = 0; c < clusters_; ++c) {
    if (retired_[c]) continue;  // stopped, and removed from the federation
    const std::vector<int> voters = NewestVoterNodes(c);
    size_t have = 0;
    for (int n : voters) have += has[n];
    if (have < voters.size() / 2 + 1) {
      const core::Configuration* newest = Newest(cluster_ids_[c]);
      Fail("5", KeySubject(key),
           absl::StrCat("committed ", Quote(global->second), " at only ", have, "/", voters.size(),
                        " voters of cluster ", c,
                        newest != nullptr ? absl::StrCat(" (", Describe(*newest), ")") : "",
                        " after the quiet phase; missing at:", missing));
    }
  }
  // DESIGN.md invariant 5: by catch-up, every node converges to every
  // committed key.
  if (options_.check_convergence && !missing.empty()) {
    Fail("5", KeySubject(key),
         absl::StrCat("not converged: ", Quote(global->second), " missing at:", missing));
  }
}

void Checker::CheckNoClaimLeft() {
  for (const auto& [key, claims] : pending_claims_) {
    for (const auto& [value, source] : claims) {
      Fail("2", KeySubject(key),
           absl::StrCat(source, " reported ", Quote(value),
                        " but the key was never committed anywhere"));
    }
  }
}

void Checker::CheckEveryOpFinished() {
  for (size_t i = 0; i < ops_.size(); ++i) {
    const ClientOp& op = ops_[i];
    if (op.finished < 0 && !op.abandoned) {
      Fail("C", KeySubject(op.key),
           absl::StrCat(op.type == ClientOp::Type::kPut ? "put of " + Quote(op.value) : "get",
                        " started at ", node_ids_[op.node], " t=", op.started,
                        "ms never finished, and its node stayed up"));
    }
  }
}

void Checker::CheckEveryRequestAnswered(const std::vector<int>& open_inbound) {
  for (size_t n = 0; n < open_inbound.size(); ++n) {
    if (open_inbound[n] > 0) {
      Fail("C", {},
           absl::StrCat(node_ids_[n], " never answered ", open_inbound[n],
                        " request(s) after the quiet phase"));
    }
  }
}

void Checker::CheckFaultFreeLiveness() {
  std::set<core::Key> put_keys;
  for (const ClientOp& op : ops_) {
    if (op.finished < 0) continue;  // reported by CheckEveryOpFinished
    if (op.put) {
      if (op.put->kind == PutOutcome::Kind::kUnavailable) {
        Fail("V", KeySubject(op.key),
             absl::StrCat("fault-free run: put of ", Quote(op.value), " at ", node_ids_[op.node],
                          " answered ", Describe(*op.put)));
      }
      if (op.put->kind != PutOutcome::Kind::kInvalidArgument) put_keys.insert(op.key);
    }
    if (op.get && op.get->kind == GetOutcome::Kind::kUnavailable) {
      Fail("V", KeySubject(op.key),
           absl::StrCat("fault-free run: get at ", node_ids_[op.node], " answered ",
                        Describe(*op.get)));
    }
  }
  for (const core::Key& key : put_keys) {
    if (!committed_.contains(key)) {
      Fail("V", KeySubject(key),
           "fault-free run: puts raced on the key and none won (all conflict)");
    }
  }
}

}  // namespace replicator::sim
