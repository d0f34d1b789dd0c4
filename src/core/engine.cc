// Engine: one node's protocol (replica, representative, acceptor, recovery
// proposer, coordinator, reader, lease recovery) as a sans-IO state machine.
//
// Shape of the code: every outgoing call carries a continuation in `calls_`;
// every in-flight operation is a small struct in its own map, found again by
// id when a continuation runs, so a continuation whose operation finished
// (or moved on to a later attempt or phase) is ignored. Mutations of one
// input call are batched into one WriteEffect; replies that depend on a
// mutation wait for its OnWriteDone.
//
// Assumption on the driver: WriteEffects are applied in the order they are
// emitted (a later write never overtakes an earlier one). Storage's group
// commit preserves it.
#include "core/engine.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <unordered_map>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/str_cat.h"
#include "core/acceptor.h"
#include "core/decision_cache.h"
#include "core/rendezvous.h"
#include "core/tally.h"

namespace replicator::core {
namespace {

// Every cluster needs this many voters before a put is attempted: with fewer,
// a majority cannot survive the loss of a single voter.
constexpr size_t kMinVoters = 3;
// Prepare/accept rounds a recovery proposer makes before it gives up.
constexpr int kMaxRecoveryRounds = 4;
// A resolve may take a prepare and an accept round, and a retry.
constexpr TimeMs kResolveDeadlineCalls = 4;
constexpr TimeMs kUnseeded = std::numeric_limits<TimeMs>::min();
// Catch-up pulls in flight at once; bounds the memory a round can pin
// (this many pages of EngineConfig::catchup_pull_max_bytes).
constexpr size_t kMaxPullsInFlight = 8;
// A pull carries a page of up to catchup_pull_max_bytes (MiBs), not one
// small message: it gets this many call deadlines. A round that still times
// out keeps what it applied; the next round pulls only what still differs.
constexpr TimeMs kCatchUpDeadlineCalls = 4;

// A representative gets most of the caller's remaining time, so that its
// answer (with the votes it collected) arrives before the caller gives up.
uint32_t RepresentativeBudget(TimeMs remaining) {
  if (remaining <= 0) return 0;
  TimeMs budget = remaining * 8 / 10;
  return static_cast<uint32_t>(std::min<TimeMs>(budget, std::numeric_limits<uint32_t>::max()));
}

std::string ReasonOf(const Response& response) {
  if (const auto* u = std::get_if<Unreachable>(&response)) return u->reason;
  return "unexpected response type";
}

const char* DecisionName(Decision d) { return d == Decision::kCommit ? "commit" : "abort"; }

}  // namespace

class Engine::Impl {
 public:
  Impl(EngineConfig config, const CommittedView* committed, DurableState recovered)
      : config_(std::move(config)),
        committed_(committed),
        decided_(config_.decision_cache_capacity),
        rng_(config_.random_seed) {
    for (Reservation& r : recovered.reservations) {
      Key key = r.key;
      ReservationEntry& e = reservations_[key];
      e.reservation = std::move(r);
      e.recover_at = kUnseeded;  // set on the first call that brings a clock
    }
  }

  const EngineConfig& config() const { return config_; }
  const Topology& topology() const { return topology_; }

  void SetTopology(Topology topology, TimeMs now) {
    Input in(this, now);
    topology_ = std::move(topology);
    // A catch-up asked for while there was nobody to ask starts once there is.
    if (catchup_wanted_ && !catchup_ && !CatchUpPeers().empty()) StartCatchUpRound(now);
  }

  void StartPut(uint64_t put_id, Key key, Value value, uint64_t request_id, TimeMs now);
  void StartGet(uint64_t get_id, Key key, Consistency consistency, TimeMs now);
  void OnRequest(uint64_t inbound_id, Request request, TimeMs now);
  void OnResponse(uint64_t call_id, Response response, TimeMs now);
  void OnWriteDone(uint64_t write_id, TimeMs now);
  void Tick(TimeMs now);
  std::optional<TimeMs> NextWakeup() const;
  void StartCatchUp(TimeMs now) {
    Input in(this, now);
    StartCatchUpRound(now);
  }
  // A node holds every key committed before its catch-up began once it has
  // completed rounds with a majority of its cluster's voters (itself counted
  // if it votes): every committed key is durable at such a majority. A
  // catching-up node must not be promoted on one peer's word, which may lag.
  bool caught_up() const {
    std::vector<PeerId> voters = CatchUpPeers();
    if (voters.empty()) return true;
    const std::vector<PeerId> all = topology_.Voters(config_.cluster);
    const bool self_votes = std::find(all.begin(), all.end(), config_.self) != all.end();
    const size_t cluster_voters = voters.size() + (self_votes ? 1 : 0);
    const size_t need = cluster_voters / 2 + 1 - (self_votes ? 1 : 0);
    size_t have = 0;
    for (const PeerId& v : voters) have += caught_up_from_.count(v);
    return have >= need;
  }

  std::vector<Effect> TakeEffects() {
    std::vector<Effect> out;
    out.swap(effects_);
    return out;
  }
  bool HasEffects() const { return !effects_.empty(); }

  EngineStats stats() const {
    EngineStats s = stats_;
    s.reservations = reservations_.size();
    return s;
  }

 private:
  using CallFn = std::function<void(Response&&, TimeMs)>;
  using WriteFn = std::function<void()>;
  // nullopt: the decision could not be learned; `reason` says why.
  using DecisionFn = std::function<void(std::optional<Decision>, const std::string& reason, TimeMs)>;
  using VoteFn = std::function<void(Vote)>;

  // Brackets every public input: seeds the clock of recovered reservations
  // and emits the input's batched mutations as one WriteEffect.
  class Input {
   public:
    Input(Impl* impl, TimeMs now) : impl_(impl) {
      impl_->last_now_ = now;
      impl_->Observe(now);
    }
    ~Input() { impl_->FlushWrite(); }
    Input(const Input&) = delete;
    Input& operator=(const Input&) = delete;

   private:
    Impl* impl_;
  };

  // --- Replica state ---------------------------------------------------------

  struct ReservationEntry {
    Reservation reservation;
    uint64_t pending_write = 0;  // the PutReservation write, until durable
    TimeMs recover_at = 0;       // lease expiry, or when to try resolving again
    bool resolving = false;      // a lease-recovery resolve is in flight
  };
  // A PutCommitted this engine emitted that is not durable yet. Lookups see
  // it before the CommittedView does.
  struct PendingCommit {
    Value value;
    uint64_t request_id = 0;
    uint64_t write_id = 0;
  };
  struct CommittedLookup {
    Value value;
    uint64_t request_id = 0;
    uint64_t pending_write = 0;  // 0 when already durable
  };
  struct PendingWrite {
    WriteBatch batch;
    bool emitted = false;
    std::vector<WriteFn> then;  // run in order once durable
  };

  // --- In-flight operations ---------------------------------------------------

  // Representative fan-out of one ForwardRequest.
  struct ForwardOp {
    uint64_t inbound_id = 0;
    size_t voters = 0;
    size_t outstanding = 0;
    size_t oks = 0;
    std::vector<Vote> votes;
  };

  // Remote cluster of one put attempt.
  struct RemoteCluster {
    std::vector<PeerId> candidates;  // rendezvous order for the key
    size_t next = 0;                 // candidate being (or next to be) tried
    std::optional<size_t> answered;  // the representative that answered
  };

  struct PutOp {
    enum class Phase : uint8_t { kReserve, kBackoff, kAccept, kRecover };
    uint64_t put_id = 0;
    Key key;
    Value value;
    uint64_t request_id = 0;
    // Later StartPuts of the same (key, request_id, value) that share this
    // put's outcome.
    std::vector<uint64_t> joined;
    TimeMs started = 0;
    int attempt = 0;  // 1-based number of the current attempt
    Phase phase = Phase::kReserve;
    // The current attempt.
    ProposalId proposal;
    VoterSnapshot voters;
    TimeMs reserve_deadline = 0;
    std::vector<Vote> votes;
    size_t outstanding = 0;  // reserve calls not yet answered
    std::map<ClusterId, RemoteCluster> remotes;
    TimeMs retry_at = 0;         // kBackoff
    TimeMs attempt_started = 0;  // when the current attempt sent its reserves
    size_t accepts_ok = 0;
    size_t accepts_failed = 0;
    // ResolveRequests for `proposal` that arrived while this engine was
    // still deciding it; answered as soon as it is decided.
    std::vector<DecisionFn> resolve_waiters;
  };

  // Commit/abort fan-out to one remote cluster, fire-and-forget.
  struct FanoutOp {
    ReplicaOp op;
    std::vector<PeerId> candidates;
    size_t start = 0;
    size_t tried = 0;
  };

  // Recovery proposer for decision(proposal) over this node's cluster.
  struct RecoveryOp {
    enum class Phase : uint8_t { kPrepare, kAccept };
    ProposalId proposal;
    std::vector<PeerId> voters;
    int rounds = 0;
    Ballot ballot;
    Phase phase = Phase::kPrepare;
    size_t granted = 0;
    size_t failed = 0;
    bool rejected = false;        // some acceptor named a higher ballot
    uint64_t max_round_seen = 0;  // highest round seen for the proposal
    std::optional<AcceptedValue> highest;
    Decision decision = Decision::kAbort;
    std::string last_error;
    std::vector<DecisionFn> waiters;
  };

  // Asking the proposal's coordinator cluster for decision(proposal).
  struct ResolveOp {
    std::vector<PeerId> candidates;
    size_t next = 0;
    std::vector<DecisionFn> waiters;
  };

  struct GetOp {
    enum class Phase : uint8_t { kRead, kResolve };
    uint64_t get_id = 0;
    Key key;
    Phase phase = Phase::kRead;
    size_t voters = 0;
    size_t answered = 0;
    size_t outstanding = 0;
    std::string first_error;
    std::vector<ReadResponse> reads;
    size_t resolving = 0;
    std::optional<Value> found;
    std::optional<std::string> unavailable;
  };

  // One catch-up round: the peer's digest, then pulls of the buckets that
  // differ from this node's.
  struct CatchUpRound {
    uint64_t id = 0;
    PeerId peer;
    std::deque<uint32_t> buckets;  // differing, not pulled yet
    size_t pulls_in_flight = 0;
    uint64_t last_write = 0;  // the round is complete once this is durable
  };

  // --- Plumbing ----------------------------------------------------------------

  void Observe(TimeMs now) {
    if (seeded_) return;
    seeded_ = true;
    if (config_.catchup_interval_ms > 0) next_catchup_at_ = now + config_.catchup_interval_ms;
    // Recovered reservations are treated as fresh: their stored `since` is
    // another run's clock.
    for (auto& [key, e] : reservations_) {
      if (e.recover_at == kUnseeded) {
        e.reservation.since = now;
        e.recover_at = now + config_.lease_ms;
      }
    }
  }

  uint64_t Send(const PeerId& to, Request request, TimeMs deadline, CallFn then) {
    uint64_t id = next_call_id_++;
    if (then) calls_.emplace(id, std::move(then));
    effects_.push_back(SendEffect{id, to, std::move(request), deadline});
    return id;
  }

  void Respond(uint64_t inbound_id, Response response) {
    effects_.push_back(RespondEffect{inbound_id, std::move(response)});
  }

  // Adds `m` to the current input's batch; returns the batch's write id.
  uint64_t Mutate(Mutation m) {
    if (open_write_ == 0) {
      open_write_ = next_write_id_++;
      writes_[open_write_];
    }
    writes_[open_write_].batch.mutations.push_back(std::move(m));
    return open_write_;
  }

  void FlushWrite() {
    if (open_write_ == 0) return;
    PendingWrite& w = writes_[open_write_];
    w.emitted = true;
    effects_.push_back(WriteEffect{open_write_, w.batch});
    w.batch.mutations.clear();  // the driver holds the copy
    open_write_ = 0;
  }

  // Runs `fn` once write `write_id` is durable; at once if it already is.
  void AfterWrite(uint64_t write_id, WriteFn fn) {
    auto it = writes_.find(write_id);
    if (write_id == 0 || it == writes_.end()) {
      fn();
      return;
    }
    it->second.then.push_back(std::move(fn));
  }

  std::optional<CommittedLookup> LookupCommitted(const Key& key) const {
    if (auto it = pending_committed_.find(key); it != pending_committed_.end()) {
      return CommittedLookup{it->second.value, it->second.request_id, it->second.write_id};
    }
    if (committed_ != nullptr) {
      if (std::optional<CommittedEntry> e = committed_->GetEntry(key)) {
        return CommittedLookup{std::move(e->value), e->request_id, 0};
      }
    }
    return std::nullopt;
  }

  // Writes (key, value) as committed; lookups see it at once. Returns the
  // write id. The caller has checked that the key is not committed here.
  uint64_t WriteCommitted(const Key& key, const Value& value, uint64_t request_id) {
    uint64_t w = Mutate(PutCommitted{key, value, request_id});
    pending_committed_[key] = PendingCommit{value, request_id, w};
    AfterWrite(w, [this, key, w]() {
      if (auto it = pending_committed_.find(key);
          it != pending_committed_.end() && it->second.write_id == w) {
        pending_committed_.erase(it);
      }
    });
    return w;
  }

  // A put of (value, request_id) over a key committed with `c` was already
  // applied: an earlier attempt of the same client put (a retry after a
  // timeout or an unknown outcome) committed it.
  static bool SamePut(const CommittedLookup& c, const Value& value, uint64_t request_id) {
    return request_id != 0 && c.request_id == request_id && c.value == value;
  }
  static PutOutcome OutcomeOverCommitted(CommittedLookup c, const Value& value,
                                         uint64_t request_id) {
    if (SamePut(c, value, request_id)) return PutOutcome{PutOutcome::Kind::kOk, {}, {}};
    return PutOutcome{PutOutcome::Kind::kKeyExists, std::move(c.value), {}};
  }

  void RecordDecision(const ProposalId& p, Decision d) {
    if (!decided_.Record(p, d)) {
      ++stats_.safety_violations;
      effects_.push_back(ViolationEffect{
          {}, absl::StrCat("proposal ", p.ToString(), " was decided both ways; kept ",
                           DecisionName(*decided_.Find(p)), ", saw ", DecisionName(d))});
    }
  }

  Vote MakeVote(Vote::Kind kind) const {
    Vote v;
    v.peer = config_.self;
    v.cluster = config_.cluster;
    v.kind = kind;
    return v;
  }

  static Vote VoteFrom(const PeerId& peer, const ClusterId& cluster, Response& response) {
    if (auto* h = std::get_if<HandleResponse>(&response)) return std::move(h->vote);
    Vote v;
    v.peer = peer;
    v.cluster = cluster;
    v.kind = Vote::Kind::kUnreachable;
    v.reason = ReasonOf(response);
    return v;
  }

  // Why a put cannot be attempted with the current membership, if so.
  std::optional<std::string> QuorumShortfall() const {
    std::vector<ClusterId> clusters = topology_.Clusters();
    if (std::find(clusters.begin(), clusters.end(), config_.cluster) == clusters.end()) {
      clusters.insert(clusters.begin(), config_.cluster);
    }
    for (const ClusterId& c : clusters) {
      size_t n = topology_.Voters(c).size();
      if (n < kMinVoters) {
        return absl::StrCat("cluster ", c, " has ", n, " voter", n == 1 ? "" : "s",
                            "; puts need at least ", kMinVoters);
      }
    }
    return std::nullopt;
  }

  // --- Replica ------------------------------------------------------------------

  void HandleReplicaOp(const ReplicaOp& op, VoteFn reply, TimeMs now);
  void Reserve(const ReserveOp& op, VoteFn reply, TimeMs now);
  void ApplyCommit(const Key& key, const Value& value, uint64_t request_id, const ProposalId& p,
                   VoteFn reply);
  void ApplyAbort(const Key& key, const ProposalId& p, VoteFn reply);
  void EraseReservation(const Key& key) { reservations_.erase(key); }

  // --- Representative, acceptor, reads, resolve -----------------------------------

  void HandleForward(uint64_t inbound_id, ForwardRequest request, TimeMs now);
  void HandleAccept(uint64_t inbound_id, const AcceptRequest& request);
  void HandlePrepare(uint64_t inbound_id, const PrepareRequest& request);
  template <typename Step>
  void ApplyAcceptorStep(uint64_t inbound_id, const ProposalId& proposal, Step step);
  void HandleRead(uint64_t inbound_id, const ReadRequest& request);
  void HandleResolve(uint64_t inbound_id, const ResolveRequest& request, TimeMs now);
  void HandleDigest(uint64_t inbound_id);
  void HandlePull(uint64_t inbound_id, const PullRequest& request);

  // --- Catch-up ---------------------------------------------------------------------

  std::vector<PeerId> CatchUpPeers() const;
  void StartCatchUpRound(TimeMs now);
  void OnDigest(uint64_t round, Response&& r, TimeMs now);
  void SendPull(uint32_t bucket, const Key& after, TimeMs now);
  void OnPull(uint64_t round, uint32_t bucket, const Key& after, Response&& r, TimeMs now);
  void PumpPulls(TimeMs now);
  void ApplyPulled(const PeerId& from, PulledEntry& entry);
  void AbortCatchUp() { catchup_.reset(); }

  // --- Recovery proposer ---------------------------------------------------------

  void StartRecovery(const ProposalId& p, DecisionFn then, TimeMs now);
  void RecoveryPrepare(RecoveryOp& op, TimeMs now);
  void RecoveryAccept(RecoveryOp& op, TimeMs now);
  void RecoveryRoundFailed(const ProposalId& p, TimeMs now);
  void FinishRecovery(const ProposalId& p, std::optional<Decision> d, const std::string& reason,
                      TimeMs now);
  void OnPrepareReply(const ProposalId& p, uint64_t round, Response&& r, TimeMs now);
  void OnAcceptReply(const ProposalId& p, uint64_t round, Response&& r, TimeMs now);

  // --- Remote resolve (gets, lease recovery) ------------------------------------

  void ResolveRemote(const ProposalId& p, DecisionFn then, TimeMs now);
  void SendResolve(const ProposalId& p, TimeMs now);
  void FinishResolve(const ProposalId& p, std::optional<Decision> d, const std::string& reason,
                     TimeMs now);

  // --- Coordinator --------------------------------------------------------------

  PutOp* FindPut(uint64_t id, int attempt, PutOp::Phase phase) {
    auto it = puts_.find(id);
    if (it == puts_.end() || it->second.attempt != attempt || it->second.phase != phase) {
      return nullptr;
    }
    return &it->second;
  }
  void StartAttempt(uint64_t id, TimeMs now);
  void SendReserveForward(uint64_t id, const ClusterId& cluster, TimeMs now);
  void MaybeTally(uint64_t id, TimeMs now);
  void StartAccept(uint64_t id, TimeMs now);
  void OnPutRecovered(uint64_t id, int attempt, std::optional<Decision> d,
                      const std::string& reason, TimeMs now);
  void CommitChosen(uint64_t id, TimeMs now);
  void AbortAttempt(PutOp& op, TimeMs now);
  void Fanout(const PutOp& op, const ReplicaOp& rop, TimeMs now);
  void RepairStaleReservation(const PutOp& op, const Vote& vote, TimeMs now);
  void SendFanout(uint64_t fid, TimeMs now);
  TimeMs Backoff(const PutOp& op, const std::vector<ProposalId>& holders, TimeMs attempt_took);
  void NotifyResolveWaiters(PutOp& op, Decision d, TimeMs now);
  void FinishPut(uint64_t id, PutOutcome outcome, TimeMs now);
  void ErasePut(uint64_t id);
  void EmitPutDone(uint64_t put_id, PutOutcome outcome);
  void EmitPutDone(const PutOp& op, PutOutcome outcome);

  // --- Reader -------------------------------------------------------------------

  void OnRead(uint64_t id, Response&& r, TimeMs now);
  void EvaluateReads(uint64_t id, TimeMs now);
  void FinishGet(uint64_t id, GetOutcome outcome);

  // --- Lease recovery -------------------------------------------------------------

  void RecoverLease(const Key& key, TimeMs now);
  void ApplyDecision(const Key& key, const ProposalId& p, Decision d);

  EngineConfig config_;
  const CommittedView* committed_;
  Topology topology_;
  DecisionCache decided_;
  std::mt19937_64 rng_;
  EngineStats stats_;
  bool seeded_ = false;

  std::vector<Effect> effects_;
  uint64_t next_call_id_ = 1;
  uint64_t next_write_id_ = 1;
  uint64_t next_op_id_ = 1;
  uint64_t sequence_ = 0;
  uint64_t open_write_ = 0;  // batch of the current input, 0 if none

  absl::flat_hash_map<Key, ReservationEntry> reservations_;
  // Acceptor records written by this engine and not yet durable; durable
  // ones are read through CommittedView::GetAcceptor, so memory holds only
  // the proposals in flight, however many were ever decided.
  // TODO(perf): records stay on disk forever. They may go only once no
  // recovery can ask for them: once every voter holding a reservation of
  // the proposal has applied its decision and no resolve is in flight.
  struct PendingAcceptor {
    AcceptorRecord record;
    uint64_t write = 0;  // the write that makes `record` durable
  };
  absl::flat_hash_map<ProposalId, PendingAcceptor> acceptors_;
  std::optional<AcceptorRecord> FindAcceptor(const ProposalId& p) const {
    if (auto it = acceptors_.find(p); it != acceptors_.end()) return it->second.record;
    return committed_->GetAcceptor(p);
  }
  absl::flat_hash_map<Key, PendingCommit> pending_committed_;
  absl::flat_hash_map<uint64_t, PendingWrite> writes_;
  absl::flat_hash_map<uint64_t, CallFn> calls_;
  // Puts in flight with a request id, by (key, request_id): later StartPuts
  // of the same client put join them.
  absl::flat_hash_map<std::pair<Key, uint64_t>, uint64_t> puts_by_request_;

  // Catch-up.
  std::optional<CatchUpRound> catchup_;
  uint64_t next_round_id_ = 1;
  TimeMs next_catchup_at_ = kUnseeded;  // periodic round; kUnseeded: none
  std::set<PeerId> caught_up_from_;      // peers a round completed with
  TimeMs last_now_ = 0;                  // `now` of the current input
  bool catchup_wanted_ = false;          // a round found nobody to ask
  std::optional<uint64_t> catchup_cursor_;  // round robin over CatchUpPeers()

  // Node-based maps: handlers hold references across calls that insert.
  std::unordered_map<uint64_t, ForwardOp> forwards_;
  std::unordered_map<uint64_t, PutOp> puts_;
  std::unordered_map<uint64_t, FanoutOp> fanouts_;
  std::unordered_map<uint64_t, GetOp> gets_;
  std::unordered_map<ProposalId, RecoveryOp, absl::Hash<ProposalId>> recoveries_;
  std::unordered_map<ProposalId, ResolveOp, absl::Hash<ProposalId>> resolves_;
};

// ============================================================================
// Inputs
// ============================================================================

void Engine::Impl::OnRequest(uint64_t inbound_id, Request request, TimeMs now) {
  Input in(this, now);
  if (auto* h = std::get_if<HandleRequest>(&request)) {
    HandleReplicaOp(
        h->op, [this, inbound_id](Vote v) { Respond(inbound_id, HandleResponse{std::move(v)}); },
        now);
  } else if (auto* f = std::get_if<ForwardRequest>(&request)) {
    HandleForward(inbound_id, std::move(*f), now);
  } else if (auto* a = std::get_if<AcceptRequest>(&request)) {
    HandleAccept(inbound_id, *a);
  } else if (auto* p = std::get_if<PrepareRequest>(&request)) {
    HandlePrepare(inbound_id, *p);
  } else if (auto* r = std::get_if<ReadRequest>(&request)) {
    HandleRead(inbound_id, *r);
  } else if (auto* s = std::get_if<ResolveRequest>(&request)) {
    HandleResolve(inbound_id, *s, now);
  } else if (std::holds_alternative<DigestRequest>(request)) {
    HandleDigest(inbound_id);
  } else if (auto* q = std::get_if<PullRequest>(&request)) {
    HandlePull(inbound_id, *q);
  }
}

void Engine::Impl::OnResponse(uint64_t call_id, Response response, TimeMs now) {
  Input in(this, now);
  auto it = calls_.find(call_id);
  if (it == calls_.end()) return;  // fire-and-forget, or a duplicate
  CallFn fn = std::move(it->second);
  calls_.erase(it);
  fn(std::move(response), now);
}

void Engine::Impl::OnWriteDone(uint64_t write_id, TimeMs now) {
  Input in(this, now);
  auto it = writes_.find(write_id);
  if (it == writes_.end() || !it->second.emitted) return;
  std::vector<WriteFn> then = std::move(it->second.then);
  writes_.erase(it);
  for (WriteFn& fn : then) fn();
}

void Engine::Impl::Tick(TimeMs now) {
  Input in(this, now);
  std::vector<uint64_t> retries;
  for (const auto& [id, op] : puts_) {
    if (op.phase == PutOp::Phase::kBackoff && op.retry_at <= now) retries.push_back(id);
  }
  std::sort(retries.begin(), retries.end());  // deterministic order
  for (uint64_t id : retries) StartAttempt(id, now);

  std::vector<Key> due;
  for (const auto& [key, e] : reservations_) {
    if (!e.resolving && e.recover_at != kUnseeded && e.recover_at <= now) due.push_back(key);
  }
  std::sort(due.begin(), due.end());
  for (const Key& key : due) RecoverLease(key, now);

  if (!catchup_ && next_catchup_at_ != kUnseeded && next_catchup_at_ <= now) {
    StartCatchUpRound(now);
  }
}

std::optional<TimeMs> Engine::Impl::NextWakeup() const {
  std::optional<TimeMs> next;
  auto consider = [&next](TimeMs t) {
    if (!next || t < *next) next = t;
  };
  for (const auto& [id, op] : puts_) {
    if (op.phase == PutOp::Phase::kBackoff) consider(op.retry_at);
  }
  // TODO(perf): index reservations by recover_at instead of scanning.
  for (const auto& [key, e] : reservations_) {
    if (!e.resolving && e.recover_at != kUnseeded) consider(e.recover_at);
  }
  // A running round schedules nothing; the next one is due once it ended.
  if (!catchup_ && next_catchup_at_ != kUnseeded) consider(next_catchup_at_);
  return next;
}

// ============================================================================
// Replica: votes on reserve, applies commit and abort
// ============================================================================

void Engine::Impl::HandleReplicaOp(const ReplicaOp& op, VoteFn reply, TimeMs now) {
  if (const auto* r = std::get_if<ReserveOp>(&op)) {
    Reserve(*r, std::move(reply), now);
  } else if (const auto* c = std::get_if<CommitOp>(&op)) {
    ApplyCommit(c->key, c->value, c->request_id, c->proposal, std::move(reply));
  } else if (const auto* a = std::get_if<AbortOp>(&op)) {
    ApplyAbort(a->key, a->proposal, std::move(reply));
  }
}

void Engine::Impl::Reserve(const ReserveOp& op, VoteFn reply, TimeMs now) {
  if (std::optional<CommittedLookup> c = LookupCommitted(op.key)) {
    Vote v = MakeVote(Vote::Kind::kStored);
    v.stored = std::move(c->value);
    v.stored_request_id = c->request_id;
    AfterWrite(c->pending_write, [reply, v]() mutable { reply(std::move(v)); });
    return;
  }
  // A decided proposal must never gain a reservation: after an abort it
  // would hold the key until its lease ran out.
  if (decided_.Find(op.proposal)) {
    reply(MakeVote(Vote::Kind::kDecided));
    return;
  }
  if (auto it = reservations_.find(op.key); it != reservations_.end()) {
    const ProposalId holder = it->second.reservation.proposal;
    if (!(holder == op.proposal)) {
      if (std::optional<Decision> d = decided_.Find(holder)) {
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
    const ReservationEntry& e = it->second;
    if (e.reservation.proposal == op.proposal) {
      // Idempotent; a duplicate answers only once the first is durable.
      AfterWrite(e.pending_write, [this, reply]() { reply(MakeVote(Vote::Kind::kOk)); });
    } else {
      Vote v = MakeVote(Vote::Kind::kReserved);
      v.holder = e.reservation.proposal;
      reply(std::move(v));
    }
    return;
  }
  Reservation r{op.key, op.proposal, op.value, now, op.request_id};
  uint64_t w = Mutate(PutReservation{r});
  ReservationEntry& e = reservations_[op.key];
  e.reservation = std::move(r);
  e.pending_write = w;
  e.recover_at = now + config_.lease_ms;
  Key key = op.key;
  ProposalId p = op.proposal;
  AfterWrite(w, [this, key, p, w, reply]() {
    if (auto it = reservations_.find(key);
        it != reservations_.end() && it->second.pending_write == w) {
      it->second.pending_write = 0;
    }
    reply(MakeVote(Vote::Kind::kOk));
  });
}

void Engine::Impl::ApplyCommit(const Key& key, const Value& value, uint64_t request_id,
                               const ProposalId& p, VoteFn reply) {
  RecordDecision(p, Decision::kCommit);
  auto held = reservations_.find(key);
  bool held_by_p = held != reservations_.end() && held->second.reservation.proposal == p;

  if (std::optional<CommittedLookup> c = LookupCommitted(key)) {
    if (c->value != value) {
      ++stats_.safety_violations;
      effects_.push_back(ViolationEffect{
          key, absl::StrCat("commit of proposal ", p.ToString(), " carries a value of ",
                            value.size(), " bytes but the key is committed with another value of ",
                            c->value.size(), " bytes")});
      Vote v = MakeVote(Vote::Kind::kStored);
      v.stored = std::move(c->value);
      v.stored_request_id = c->request_id;
      if (reply) reply(std::move(v));
      return;
    }
    uint64_t w = c->pending_write;
    if (held_by_p) {
      w = Mutate(DeleteReservation{key});
      EraseReservation(key);
    }
    if (reply) AfterWrite(w, [this, reply]() { reply(MakeVote(Vote::Kind::kOk)); });
    return;
  }

  // A commit without a reservation stores the value all the same; another
  // proposal's reservation stays (only its own decision may drop it).
  uint64_t w = WriteCommitted(key, value, request_id);
  if (held_by_p) {
    Mutate(DeleteReservation{key});
    EraseReservation(key);
  }
  if (reply) AfterWrite(w, [this, reply]() { reply(MakeVote(Vote::Kind::kOk)); });
}

void Engine::Impl::ApplyAbort(const Key& key, const ProposalId& p, VoteFn reply) {
  RecordDecision(p, Decision::kAbort);
  auto held = reservations_.find(key);
  if (held == reservations_.end() || !(held->second.reservation.proposal == p)) {
    if (reply) reply(MakeVote(Vote::Kind::kOk));
    return;
  }
  uint64_t w = Mutate(DeleteReservation{key});
  EraseReservation(key);
  if (reply) AfterWrite(w, [this, reply]() { reply(MakeVote(Vote::Kind::kOk)); });
}

// ============================================================================
// Representative, acceptor, reads, resolve
// ============================================================================

void Engine::Impl::HandleForward(uint64_t inbound_id, ForwardRequest request, TimeMs now) {
  std::vector<PeerId> voters = topology_.Voters(config_.cluster);
  if (voters.empty()) {
    Respond(inbound_id, ForwardResponse{});
    return;
  }
  uint64_t id = next_op_id_++;
  ForwardOp& op = forwards_[id];
  op.inbound_id = inbound_id;
  op.voters = voters.size();
  op.outstanding = voters.size();
  TimeMs deadline = now + request.deadline_ms;
  for (const PeerId& voter : voters) {
    Send(voter, HandleRequest{request.op}, deadline,
         [this, id, voter](Response&& r, TimeMs) {
           auto it = forwards_.find(id);
           if (it == forwards_.end()) return;
           ForwardOp& f = it->second;
           f.votes.push_back(VoteFrom(voter, config_.cluster, r));
           if (f.votes.back().kind == Vote::Kind::kOk) ++f.oks;
           // A majority of ok decides this cluster for the coordinator (it
           // decides early on the same rule), so a slow or dead voter does
           // not hold the answer up until the deadline. Otherwise every
           // vote is needed: the coordinator weighs stored, reserved and
           // unreachable ones.
           if (--f.outstanding > 0 && !IsMajority(f.oks, f.voters)) return;
           Respond(f.inbound_id, ForwardResponse{std::move(f.votes)});
           forwards_.erase(it);
         });
  }
}

void Engine::Impl::HandleAccept(uint64_t inbound_id, const AcceptRequest& request) {
  std::optional<AcceptorRecord> current = FindAcceptor(request.proposal);
  ApplyAcceptorStep(inbound_id, request.proposal,
                    OnAccept(current ? &*current : nullptr, request));
}

void Engine::Impl::HandlePrepare(uint64_t inbound_id, const PrepareRequest& request) {
  std::optional<AcceptorRecord> current = FindAcceptor(request.proposal);
  ApplyAcceptorStep(inbound_id, request.proposal,
                    OnPrepare(current ? &*current : nullptr, request));
}

template <typename Step>
void Engine::Impl::ApplyAcceptorStep(uint64_t inbound_id, const ProposalId& proposal,
                                     Step step) {
  // A promise or an accept is answered only once it is durable.
  if (!step.updated) {
    Respond(inbound_id, step.response);
    return;
  }
  uint64_t w = Mutate(PutAcceptor{*step.updated});
  acceptors_[proposal] = PendingAcceptor{*step.updated, w};
  AfterWrite(w, [this, inbound_id, proposal, w, resp = step.response]() {
    // Durable: storage answers for it from now on.
    if (auto it = acceptors_.find(proposal); it != acceptors_.end() && it->second.write == w) {
      acceptors_.erase(it);
    }
    Respond(inbound_id, resp);
  });
}

void Engine::Impl::HandleRead(uint64_t inbound_id, const ReadRequest& request) {
  ReadResponse resp;
  // A committed value is final even before it is durable here: the commit
  // was chosen, so reporting it early cannot be contradicted later.
  if (std::optional<CommittedLookup> c = LookupCommitted(request.key)) {
    resp.kind = ReadResponse::Kind::kCommitted;
    resp.value = std::move(c->value);
  } else if (auto it = reservations_.find(request.key); it != reservations_.end()) {
    resp.kind = ReadResponse::Kind::kReserved;
    resp.value = it->second.reservation.value;
    resp.holder = it->second.reservation.proposal;
  }
  Respond(inbound_id, std::move(resp));
}

void Engine::Impl::HandleResolve(uint64_t inbound_id, const ResolveRequest& request,
                                 TimeMs now) {
  const ProposalId& p = request.proposal;
  DecisionFn answer = [this, inbound_id](std::optional<Decision> d, const std::string& reason,
                                         TimeMs) {
    ResolveResponse resp;
    resp.decision = d;
    if (!d) resp.reason = reason;
    Respond(inbound_id, std::move(resp));
  };
  if (std::optional<Decision> d = decided_.Find(p)) {
    answer(d, "", now);
    return;
  }
  // Our own proposal, still being decided: wait for the coordinator's own
  // decision rather than abort it from under the put.
  if (p.coordinator == config_.self && p.incarnation == config_.incarnation) {
    // TODO(perf): index puts by proposal if resolves become frequent.
    for (auto& [id, op] : puts_) {
      if (op.proposal == p &&
          (op.phase == PutOp::Phase::kReserve || op.phase == PutOp::Phase::kAccept)) {
        op.resolve_waiters.push_back(std::move(answer));
        return;
      }
    }
  }
  // decision(p) lives in the acceptors of p's coordinator cluster only.
  const Member* coordinator = topology_.Find(p.coordinator);
  if (coordinator == nullptr) {
    answer(std::nullopt,
           absl::StrCat("coordinator ", p.coordinator, " of proposal ", p.ToString(),
                        " is not in this node's membership view"),
           now);
    return;
  }
  if (coordinator->cluster != config_.cluster) {
    answer(std::nullopt,
           absl::StrCat("proposal ", p.ToString(), " belongs to cluster ", coordinator->cluster,
                        ", not to this node's cluster ", config_.cluster),
           now);
    return;
  }
  StartRecovery(p, std::move(answer), now);
}

// ============================================================================
// Recovery proposer: settles decision(p) by Paxos over this node's cluster.
// ============================================================================

void Engine::Impl::StartRecovery(const ProposalId& p, DecisionFn then, TimeMs now) {
  if (std::optional<Decision> d = decided_.Find(p)) {
    then(d, "", now);
    return;
  }
  if (auto it = recoveries_.find(p); it != recoveries_.end()) {
    it->second.waiters.push_back(std::move(then));
    return;
  }
  RecoveryOp& op = recoveries_[p];
  op.proposal = p;
  op.voters = topology_.Voters(config_.cluster);
  op.waiters.push_back(std::move(then));
  if (std::optional<AcceptorRecord> a = FindAcceptor(p)) {
    op.max_round_seen = a->promised.round;
    if (a->accepted) op.max_round_seen = std::max(op.max_round_seen, a->accepted->ballot.round);
  }
  RecoveryPrepare(op, now);
}

void Engine::Impl::RecoveryPrepare(RecoveryOp& op, TimeMs now) {
  ++op.rounds;
  op.ballot = Ballot{op.max_round_seen + 1, config_.self};
  op.max_round_seen = op.ballot.round;
  op.phase = RecoveryOp::Phase::kPrepare;
  op.granted = op.failed = 0;
  op.rejected = false;
  op.highest.reset();
  if (op.voters.empty()) {
    FinishRecovery(op.proposal, std::nullopt,
                   absl::StrCat("cluster ", config_.cluster, " has no voters"), now);
    return;
  }
  const ProposalId p = op.proposal;
  const uint64_t round = op.ballot.round;
  const std::vector<PeerId> voters = op.voters;
  for (const PeerId& v : voters) {
    Send(v, PrepareRequest{p, Ballot{round, config_.self}}, now + config_.call_deadline_ms,
         [this, p, round](Response&& r, TimeMs t) { OnPrepareReply(p, round, std::move(r), t); });
  }
}

void Engine::Impl::OnPrepareReply(const ProposalId& p, uint64_t round, Response&& r, TimeMs now) {
  auto it = recoveries_.find(p);
  if (it == recoveries_.end()) return;
  RecoveryOp& op = it->second;
  if (op.ballot.round != round || op.phase != RecoveryOp::Phase::kPrepare) return;
  if (auto* pr = std::get_if<PrepareResponse>(&r)) {
    if (pr->promised) {
      ++op.granted;
      if (pr->accepted && (!op.highest || op.highest->ballot < pr->accepted->ballot)) {
        op.highest = pr->accepted;
      }
    } else {
      ++op.failed;
      op.rejected = true;
      op.max_round_seen = std::max(op.max_round_seen, pr->higher.round);
      op.last_error = absl::StrCat("prepare refused: ballot round ", pr->higher.round,
                                   " promised to ", pr->higher.proposer);
    }
  } else {
    ++op.failed;
    op.last_error = ReasonOf(r);
  }
  const size_t n = op.voters.size();
  if (IsMajority(op.granted, n)) {
    // Adopt the highest accepted decision; none accepted means the
    // coordinator's ballot 0 (the only commit proposal) was not chosen.
    op.decision = op.highest ? op.highest->decision : Decision::kAbort;
    RecoveryAccept(op, now);
  } else if (!IsMajority(n - op.failed, n)) {
    RecoveryRoundFailed(p, now);
  }
}

void Engine::Impl::RecoveryAccept(RecoveryOp& op, TimeMs now) {
  op.phase = RecoveryOp::Phase::kAccept;
  op.granted = op.failed = 0;
  op.rejected = false;
  const ProposalId p = op.proposal;
  const uint64_t round = op.ballot.round;
  const Decision d = op.decision;
  const std::vector<PeerId> voters = op.voters;
  for (const PeerId& v : voters) {
    Send(v, AcceptRequest{p, Ballot{round, config_.self}, d}, now + config_.call_deadline_ms,
         [this, p, round](Response&& r, TimeMs t) { OnAcceptReply(p, round, std::move(r), t); });
  }
}

void Engine::Impl::OnAcceptReply(const ProposalId& p, uint64_t round, Response&& r, TimeMs now) {
  auto it = recoveries_.find(p);
  if (it == recoveries_.end()) return;
  RecoveryOp& op = it->second;
  if (op.ballot.round != round || op.phase != RecoveryOp::Phase::kAccept) return;
  if (auto* ar = std::get_if<AcceptResponse>(&r)) {
    if (ar->accepted) {
      ++op.granted;
    } else {
      ++op.failed;
      op.rejected = true;
      op.max_round_seen = std::max(op.max_round_seen, ar->promised.round);
      op.last_error = absl::StrCat("accept refused: ballot round ", ar->promised.round,
                                   " promised to ", ar->promised.proposer);
    }
  } else {
    ++op.failed;
    op.last_error = ReasonOf(r);
  }
  const size_t n = op.voters.size();
  if (IsMajority(op.granted, n)) {
    FinishRecovery(p, op.decision, "", now);
  } else if (!IsMajority(n - op.failed, n)) {
    RecoveryRoundFailed(p, now);
  }
}

void Engine::Impl::RecoveryRoundFailed(const ProposalId& p, TimeMs now) {
  RecoveryOp& op = recoveries_.at(p);
  // Only a competing proposer is worth outbidding; lost answers would be
  // lost again at once.
  if (op.rejected && op.rounds < kMaxRecoveryRounds) {
    RecoveryPrepare(op, now);
    return;
  }
  FinishRecovery(p, std::nullopt,
                 absl::StrCat("decision of proposal ", p.ToString(), " not settled in cluster ",
                              config_.cluster, " after ", op.rounds, " round",
                              op.rounds == 1 ? "" : "s", " over ", op.voters.size(),
                              " voters; last error: ", op.last_error),
                 now);
}

void Engine::Impl::FinishRecovery(const ProposalId& p, std::optional<Decision> d,
                                  const std::string& reason, TimeMs now) {
  auto it = recoveries_.find(p);
  if (it == recoveries_.end()) return;
  std::vector<DecisionFn> waiters = std::move(it->second.waiters);
  recoveries_.erase(it);
  if (d) RecordDecision(p, *d);
  for (DecisionFn& fn : waiters) fn(d, reason, now);
}

// ============================================================================
// Remote resolve: ask p's coordinator cluster for decision(p)
// ============================================================================

void Engine::Impl::ResolveRemote(const ProposalId& p, DecisionFn then, TimeMs now) {
  if (std::optional<Decision> d = decided_.Find(p)) {
    then(d, "", now);
    return;
  }
  if (auto it = resolves_.find(p); it != resolves_.end()) {
    it->second.waiters.push_back(std::move(then));
    return;
  }
  const Member* coordinator = topology_.Find(p.coordinator);
  if (coordinator == nullptr) {
    then(std::nullopt,
         absl::StrCat("coordinator ", p.coordinator, " of proposal ", p.ToString(),
                      " is not in the membership"),
         now);
    return;
  }
  // The coordinator knows its own decisions best; any voter of its cluster
  // can settle the decision by recovery.
  std::vector<PeerId> candidates;
  if (coordinator->state != PeerState::kDown) candidates.push_back(coordinator->id);
  for (PeerId& v : topology_.Voters(coordinator->cluster)) {
    if (v != coordinator->id) candidates.push_back(std::move(v));
  }
  if (candidates.empty()) {
    then(std::nullopt, absl::StrCat("cluster ", coordinator->cluster, " has no voters"), now);
    return;
  }
  ResolveOp& op = resolves_[p];
  op.candidates = std::move(candidates);
  op.waiters.push_back(std::move(then));
  SendResolve(p, now);
}

void Engine::Impl::SendResolve(const ProposalId& p, TimeMs now) {
  ResolveOp& op = resolves_.at(p);
  const PeerId peer = op.candidates[op.next];
  Send(peer, ResolveRequest{p}, now + kResolveDeadlineCalls * config_.call_deadline_ms,
       [this, p, peer](Response&& r, TimeMs t) {
         auto it = resolves_.find(p);
         if (it == resolves_.end()) return;
         if (auto* rr = std::get_if<ResolveResponse>(&r)) {
           FinishResolve(p, rr->decision, rr->reason, t);
           return;
         }
         ResolveOp& cur = it->second;
         if (++cur.next < cur.candidates.size()) {
           SendResolve(p, t);
           return;
         }
         FinishResolve(p, std::nullopt,
                       absl::StrCat("no node of the coordinator's cluster answered resolve of ",
                                    p.ToString(), "; last: ", peer, ": ", ReasonOf(r)),
                       t);
       });
}

void Engine::Impl::FinishResolve(const ProposalId& p, std::optional<Decision> d,
                                 const std::string& reason, TimeMs now) {
  auto it = resolves_.find(p);
  if (it == resolves_.end()) return;
  std::vector<DecisionFn> waiters = std::move(it->second.waiters);
  resolves_.erase(it);
  if (d) RecordDecision(p, *d);
  for (DecisionFn& fn : waiters) fn(d, reason, now);
}

// ============================================================================
// Coordinator
// ============================================================================

void Engine::Impl::StartPut(uint64_t put_id, Key key, Value value, uint64_t request_id,
                            TimeMs now) {
  Input in(this, now);
  if (std::optional<std::string> bad = ValidatePut(config_.limits, key, value)) {
    EmitPutDone(put_id, PutOutcome{PutOutcome::Kind::kInvalidArgument, {}, *bad});
    return;
  }
  if (std::optional<CommittedLookup> c = LookupCommitted(key)) {
    EmitPutDone(put_id, OutcomeOverCommitted(std::move(*c), value, request_id));
    return;
  }
  if (request_id != 0) {
    // The same client put is in flight here (the client retried before it
    // answered): share its outcome rather than race it. A different value
    // under the same request id is a different put and goes its own way.
    if (auto it = puts_by_request_.find(std::make_pair(key, request_id));
        it != puts_by_request_.end()) {
      PutOp& first = puts_.at(it->second);
      if (first.value == value) {
        first.joined.push_back(put_id);
        ++stats_.puts_joined;
        return;
      }
    }
  }
  if (std::optional<std::string> shortfall = QuorumShortfall()) {
    EmitPutDone(put_id, PutOutcome{PutOutcome::Kind::kUnavailable, {}, *shortfall});
    return;
  }
  uint64_t id = next_op_id_++;
  PutOp& op = puts_[id];
  op.put_id = put_id;
  op.key = std::move(key);
  op.value = std::move(value);
  op.request_id = request_id;
  op.started = now;
  if (request_id != 0) puts_by_request_.emplace(std::make_pair(op.key, request_id), id);
  StartAttempt(id, now);
}

void Engine::Impl::StartAttempt(uint64_t id, TimeMs now) {
  PutOp& op = puts_.at(id);
  if (op.attempt > 0) {
    // A retry after backoff: the facts may have changed meanwhile.
    if (std::optional<CommittedLookup> c = LookupCommitted(op.key)) {
      FinishPut(id, OutcomeOverCommitted(std::move(*c), op.value, op.request_id), now);
      return;
    }
    if (std::optional<std::string> shortfall = QuorumShortfall()) {
      FinishPut(id, PutOutcome{PutOutcome::Kind::kUnavailable, {}, *shortfall}, now);
      return;
    }
  }
  ++op.attempt;
  op.attempt_started = now;
  op.proposal = ProposalId{config_.self, config_.incarnation, ++sequence_,
                           static_cast<uint64_t>(std::max<TimeMs>(op.started, 0))};
  op.phase = PutOp::Phase::kReserve;
  op.voters.clear();
  for (const ClusterId& c : topology_.Clusters()) op.voters[c] = topology_.Voters(c);
  op.voters[config_.cluster] = topology_.Voters(config_.cluster);
  op.reserve_deadline = now + config_.call_deadline_ms;
  op.votes.clear();
  op.outstanding = 0;
  op.remotes.clear();

  const int attempt = op.attempt;
  const ReserveOp reserve{op.key, op.value, op.proposal, op.request_id};
  for (const PeerId& v : op.voters[config_.cluster]) {
    ++op.outstanding;
    Send(v, HandleRequest{reserve}, op.reserve_deadline,
         [this, id, attempt, v](Response&& r, TimeMs t) {
           PutOp* put = FindPut(id, attempt, PutOp::Phase::kReserve);
           if (put == nullptr) return;
           --put->outstanding;
           put->votes.push_back(VoteFrom(v, config_.cluster, r));
           RepairStaleReservation(*put, put->votes.back(), t);
           MaybeTally(id, t);
         });
  }
  for (const auto& [cluster, voters] : op.voters) {
    if (cluster == config_.cluster) continue;
    op.remotes[cluster].candidates = RendezvousOrder(op.key, voters);
  }
  std::vector<ClusterId> remote_clusters;
  for (const auto& [cluster, rc] : op.remotes) remote_clusters.push_back(cluster);
  for (const ClusterId& cluster : remote_clusters) SendReserveForward(id, cluster, now);
}

void Engine::Impl::SendReserveForward(uint64_t id, const ClusterId& cluster, TimeMs now) {
  PutOp& op = puts_.at(id);
  RemoteCluster& rc = op.remotes.at(cluster);
  const PeerId peer = rc.candidates[rc.next];
  const int attempt = op.attempt;
  ++op.outstanding;
  // The call may use all the attempt's remaining time, so failover happens
  // only on failures reported before the deadline (refused connection, a
  // peer known down). TODO(perf): a shorter first deadline would let a
  // silent representative be replaced within the same attempt.
  Send(peer,
       ForwardRequest{ReserveOp{op.key, op.value, op.proposal, op.request_id},
                      RepresentativeBudget(op.reserve_deadline - now)},
       op.reserve_deadline, [this, id, attempt, cluster, peer](Response&& r, TimeMs t) {
         PutOp* put = FindPut(id, attempt, PutOp::Phase::kReserve);
         if (put == nullptr) return;
         --put->outstanding;
         RemoteCluster& remote = put->remotes.at(cluster);
         if (auto* fr = std::get_if<ForwardResponse>(&r)) {
           remote.answered = remote.next;
           for (Vote& v : fr->votes) {
             put->votes.push_back(std::move(v));
             RepairStaleReservation(*put, put->votes.back(), t);
           }
         } else {
           ++remote.next;
           if (remote.next < remote.candidates.size() && t < put->reserve_deadline) {
             SendReserveForward(id, cluster, t);
             return;
           }
           for (const PeerId& v : put->voters.at(cluster)) {
             Vote vote;
             vote.peer = v;
             vote.cluster = cluster;
             vote.kind = Vote::Kind::kUnreachable;
             vote.reason = absl::StrCat("no representative of cluster ", cluster,
                                        " answered; last tried ", peer, ": ", ReasonOf(r));
             put->votes.push_back(std::move(vote));
           }
         }
         MaybeTally(id, t);
       });
}

void Engine::Impl::MaybeTally(uint64_t id, TimeMs now) {
  PutOp& op = puts_.at(id);
  TallyOutcome t = Tally(op.voters, op.votes, op.proposal);
  using K = TallyOutcome::Kind;
  // Commit and keyExists are final on a partial vote set (see Tally); the
  // other outcomes may still change while answers are outstanding.
  if (op.outstanding > 0 && t.kind != K::kCommit && t.kind != K::kKeyExists) return;
  switch (t.kind) {
    case K::kCommit:
      StartAccept(id, now);
      return;
    case K::kKeyExists: {
      AbortAttempt(op, now);
      CommittedLookup stored{std::move(t.existing), t.existing_request_id, 0};
      FinishPut(id, OutcomeOverCommitted(std::move(stored), op.value, op.request_id), now);
      return;
    }
    case K::kContention:
      AbortAttempt(op, now);
      if (op.attempt < config_.max_attempts && now - op.started < config_.max_retry_ms) {
        op.phase = PutOp::Phase::kBackoff;
        op.retry_at = now + Backoff(op, t.holders, now - op.attempt_started);
        ++stats_.put_retries;
        return;
      }
      FinishPut(id, PutOutcome{PutOutcome::Kind::kConflict, {},
                               absl::StrCat(t.message, " (gave up after ", op.attempt,
                                            " attempt", op.attempt == 1 ? "" : "s", ")")}, now);
      return;
    case K::kUnavailable:
      AbortAttempt(op, now);
      FinishPut(id, PutOutcome{PutOutcome::Kind::kUnavailable, {},
                               absl::StrCat(t.message, "; aborted, nothing stored")}, now);
      return;
  }
}

TimeMs Engine::Impl::Backoff(const PutOp& op, const std::vector<ProposalId>& holders,
                             TimeMs attempt_took) {
  // Backoff is measured in attempts, not fixed milliseconds: an attempt that
  // crossed clusters in 80 ms leaves reservations behind for about as long
  // again while its aborts travel, so any retry sooner than that collides.
  const TimeMs unit = std::max<TimeMs>({1, config_.backoff_base_ms, attempt_took});
  // Priority to the oldest put (wait-die): it retries as soon as the younger
  // racers' aborts have landed; younger ones wait until the oldest has had
  // time to finish, and longer with every attempt, so a race converges on
  // one winner. `started_ms` comes from each coordinator's own clock; the
  // comparison steers liveness, never safety.
  auto age = [](const ProposalId& p) { return std::tie(p.started_ms, p); };
  bool oldest = std::all_of(holders.begin(), holders.end(),
                            [&](const ProposalId& h) { return age(op.proposal) < age(h); });
  if (oldest) return std::uniform_int_distribution<TimeMs>(unit / 2, unit)(rng_);
  const TimeMs lo = 2 * unit;
  const TimeMs hi = lo + unit * (TimeMs{1} << std::min(op.attempt, 5));
  return std::uniform_int_distribution<TimeMs>(lo, hi)(rng_);
}

void Engine::Impl::StartAccept(uint64_t id, TimeMs now) {
  PutOp& op = puts_.at(id);
  op.phase = PutOp::Phase::kAccept;
  op.accepts_ok = op.accepts_failed = 0;
  const int attempt = op.attempt;
  // Ballot 0 belongs to the coordinator alone, so no prepare is needed.
  const AcceptRequest accept{op.proposal, Ballot{0, config_.self}, Decision::kCommit};
  for (const PeerId& v : op.voters.at(config_.cluster)) {
    Send(v, accept, now + config_.call_deadline_ms, [this, id, attempt](Response&& r, TimeMs t) {
      PutOp* put = FindPut(id, attempt, PutOp::Phase::kAccept);
      if (put == nullptr) return;
      auto* ar = std::get_if<AcceptResponse>(&r);
      if (ar != nullptr && ar->accepted) {
        ++put->accepts_ok;
      } else {
        ++put->accepts_failed;
      }
      const size_t n = put->voters.at(config_.cluster).size();
      if (IsMajority(put->accepts_ok, n)) {
        CommitChosen(id, t);
      } else if (!IsMajority(n - put->accepts_failed, n)) {
        // Ballot 0 cannot win now; a recovery may already have chosen
        // either way. Learn (or settle) the decision before answering.
        put->phase = PutOp::Phase::kRecover;
        std::vector<DecisionFn> waiters = std::move(put->resolve_waiters);
        put->resolve_waiters.clear();
        const ProposalId p = put->proposal;
        for (DecisionFn& w : waiters) StartRecovery(p, std::move(w), t);
        StartRecovery(p,
                      [this, id, attempt](std::optional<Decision> d, const std::string& reason,
                                          TimeMs t2) { OnPutRecovered(id, attempt, d, reason, t2); },
                      t);
      }
    });
  }
}

void Engine::Impl::OnPutRecovered(uint64_t id, int attempt, std::optional<Decision> d,
                                  const std::string& reason, TimeMs now) {
  PutOp* op = FindPut(id, attempt, PutOp::Phase::kRecover);
  if (op == nullptr) return;
  if (!d) {
    FinishPut(id, PutOutcome{PutOutcome::Kind::kOutcomeUnknown, {},
                             absl::StrCat("the decision could not be learned: ", reason)},
              now);
    return;
  }
  if (*d == Decision::kCommit) {
    CommitChosen(id, now);
    return;
  }
  Fanout(*op, AbortOp{op->key, op->proposal}, now);
  FinishPut(id, PutOutcome{PutOutcome::Kind::kUnavailable, {},
                           "aborted by a concurrent recovery; nothing stored"}, now);
}

void Engine::Impl::CommitChosen(uint64_t id, TimeMs now) {
  PutOp& op = puts_.at(id);
  RecordDecision(op.proposal, Decision::kCommit);
  NotifyResolveWaiters(op, Decision::kCommit, now);
  EmitPutDone(op, PutOutcome{PutOutcome::Kind::kOk, {}, {}});
  Fanout(op, CommitOp{op.key, op.value, op.proposal, op.request_id}, now);
  ErasePut(id);
}

void Engine::Impl::AbortAttempt(PutOp& op, TimeMs now) {
  // No Paxos round is needed to abort: only the coordinator ever proposes
  // commit, at ballot 0, and it did not for this proposal. So no acceptor
  // holds an accepted commit, and any recovery adopts nothing and chooses
  // abort as well.
  RecordDecision(op.proposal, Decision::kAbort);
  NotifyResolveWaiters(op, Decision::kAbort, now);
  Fanout(op, AbortOp{op.key, op.proposal}, now);
}

void Engine::Impl::NotifyResolveWaiters(PutOp& op, Decision d, TimeMs now) {
  std::vector<DecisionFn> waiters = std::move(op.resolve_waiters);
  op.resolve_waiters.clear();
  for (DecisionFn& fn : waiters) fn(d, "", now);
}

void Engine::Impl::Fanout(const PutOp& op, const ReplicaOp& rop, TimeMs now) {
  const TimeMs deadline = now + config_.call_deadline_ms;
  for (const PeerId& v : op.voters.at(config_.cluster)) {
    Send(v, HandleRequest{rop}, deadline, nullptr);
  }
  // Remote clusters go through the representative that answered the
  // reserve; a cluster that never answered still gets the decision, since
  // the reserve may have arrived without its answer.
  for (const auto& [cluster, rc] : op.remotes) {
    if (rc.candidates.empty()) continue;
    uint64_t fid = next_op_id_++;
    FanoutOp& f = fanouts_[fid];
    f.op = rop;
    f.candidates = rc.candidates;
    f.start = rc.answered.value_or(0);
    SendFanout(fid, now);
  }
}

void Engine::Impl::RepairStaleReservation(const PutOp& op, const Vote& vote, TimeMs now) {
  if (vote.kind != Vote::Kind::kReserved) return;
  // A voter still holds the key for a proposal this engine knows aborted
  // (typically its own earlier attempt whose abort was lost): tell it, so the
  // next attempt is not blocked until the lease runs out. Only aborts are
  // repaired this way; a commit needs the value, which lease recovery has.
  if (decided_.Find(vote.holder) != Decision::kAbort) return;
  Send(vote.peer, HandleRequest{AbortOp{op.key, vote.holder}}, now + config_.call_deadline_ms,
       nullptr);
}

void Engine::Impl::SendFanout(uint64_t fid, TimeMs now) {
  FanoutOp& f = fanouts_.at(fid);
  const PeerId peer = f.candidates[(f.start + f.tried) % f.candidates.size()];
  ++f.tried;
  Send(peer, ForwardRequest{f.op, RepresentativeBudget(config_.call_deadline_ms)},
       now + config_.call_deadline_ms, [this, fid](Response&& r, TimeMs t) {
         auto it = fanouts_.find(fid);
         if (it == fanouts_.end()) return;
         // Once around the candidates; lease recovery and catch-up repair
         // whatever is still missed.
         if (std::holds_alternative<Unreachable>(r) &&
             it->second.tried < it->second.candidates.size()) {
           SendFanout(fid, t);
           return;
         }
         fanouts_.erase(it);
       });
}

void Engine::Impl::FinishPut(uint64_t id, PutOutcome outcome, TimeMs now) {
  auto it = puts_.find(id);
  if (it == puts_.end()) return;
  PutOp& op = it->second;
  // Waiters for an undecided proposal (outcome unknown) must still be
  // answered; recovery will settle it.
  if (!op.resolve_waiters.empty()) {
    std::vector<DecisionFn> waiters = std::move(op.resolve_waiters);
    for (DecisionFn& w : waiters) {
      w(decided_.Find(op.proposal),
        absl::StrCat("coordinator gave up on proposal ", op.proposal.ToString()), now);
    }
  }
  EmitPutDone(op, std::move(outcome));
  ErasePut(id);
}

void Engine::Impl::EmitPutDone(const PutOp& op, PutOutcome outcome) {
  // Joined puts are one client put with `op`: counted once, by op.
  for (uint64_t joined : op.joined) effects_.push_back(PutDoneEffect{joined, outcome});
  EmitPutDone(op.put_id, std::move(outcome));
}

void Engine::Impl::ErasePut(uint64_t id) {
  auto it = puts_.find(id);
  if (it == puts_.end()) return;
  if (it->second.request_id != 0) {
    auto idx = puts_by_request_.find(std::make_pair(it->second.key, it->second.request_id));
    if (idx != puts_by_request_.end() && idx->second == id) puts_by_request_.erase(idx);
  }
  puts_.erase(it);
}

void Engine::Impl::EmitPutDone(uint64_t put_id, PutOutcome outcome) {
  switch (outcome.kind) {
    case PutOutcome::Kind::kOk: ++stats_.puts_ok; break;
    case PutOutcome::Kind::kKeyExists: ++stats_.puts_key_exists; break;
    case PutOutcome::Kind::kConflict: ++stats_.puts_conflict; break;
    case PutOutcome::Kind::kUnavailable: ++stats_.puts_unavailable; break;
    case PutOutcome::Kind::kInvalidArgument: ++stats_.puts_invalid; break;
    case PutOutcome::Kind::kOutcomeUnknown: ++stats_.puts_outcome_unknown; break;
  }
  effects_.push_back(PutDoneEffect{put_id, std::move(outcome)});
}

// ============================================================================
// Reader
// ============================================================================

void Engine::Impl::StartGet(uint64_t get_id, Key key, Consistency consistency, TimeMs now) {
  Input in(this, now);
  ++stats_.gets;
  if (std::optional<std::string> bad = ValidateKey(config_.limits, key)) {
    effects_.push_back(
        GetDoneEffect{get_id, GetOutcome{GetOutcome::Kind::kInvalidArgument, {}, *bad}});
    return;
  }
  if (consistency == Consistency::kLocal) {
    GetOutcome out;
    if (std::optional<CommittedLookup> c = LookupCommitted(key)) {
      out.kind = GetOutcome::Kind::kFound;
      out.value = std::move(c->value);
    }
    effects_.push_back(GetDoneEffect{get_id, std::move(out)});
    return;
  }
  std::vector<PeerId> voters = topology_.Voters(config_.cluster);
  if (voters.empty()) {
    effects_.push_back(GetDoneEffect{
        get_id, GetOutcome{GetOutcome::Kind::kUnavailable, {},
                           absl::StrCat("cluster ", config_.cluster, " has no voters")}});
    return;
  }
  uint64_t id = next_op_id_++;
  GetOp& op = gets_[id];
  op.get_id = get_id;
  op.key = key;
  op.voters = voters.size();
  op.outstanding = voters.size();
  for (const PeerId& v : voters) {
    Send(v, ReadRequest{key}, now + config_.call_deadline_ms,
         [this, id](Response&& r, TimeMs t) { OnRead(id, std::move(r), t); });
  }
}

void Engine::Impl::OnRead(uint64_t id, Response&& r, TimeMs now) {
  auto it = gets_.find(id);
  if (it == gets_.end()) return;
  GetOp& op = it->second;
  --op.outstanding;
  if (auto* rr = std::get_if<ReadResponse>(&r)) {
    ++op.answered;
    op.reads.push_back(std::move(*rr));
  } else if (op.first_error.empty()) {
    op.first_error = ReasonOf(r);
  }
  if (op.phase != GetOp::Phase::kRead) return;
  if (IsMajority(op.answered, op.voters) || op.outstanding == 0) EvaluateReads(id, now);
}

void Engine::Impl::EvaluateReads(uint64_t id, TimeMs now) {
  GetOp& op = gets_.at(id);
  if (!IsMajority(op.answered, op.voters)) {
    FinishGet(id, GetOutcome{GetOutcome::Kind::kUnavailable, {},
                             absl::StrCat("only ", op.answered, " of ", op.voters,
                                          " voters of cluster ", config_.cluster,
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
    ResolveRemote(
        holder,
        [this, id, value = std::move(value)](std::optional<Decision> d, const std::string& reason,
                                             TimeMs) {
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
        },
        now);
  }
}

void Engine::Impl::FinishGet(uint64_t id, GetOutcome outcome) {
  auto it = gets_.find(id);
  uint64_t get_id = it == gets_.end() ? 0 : it->second.get_id;
  effects_.push_back(GetDoneEffect{get_id, std::move(outcome)});
  if (it != gets_.end()) gets_.erase(it);
}

// ============================================================================
// Lease recovery
// ============================================================================

void Engine::Impl::RecoverLease(const Key& key, TimeMs now) {
  auto it = reservations_.find(key);
  if (it == reservations_.end()) return;
  ReservationEntry& e = it->second;
  const ProposalId p = e.reservation.proposal;
  if (std::optional<Decision> d = decided_.Find(p)) {
    ApplyDecision(key, p, *d);
    return;
  }
  if (topology_.Find(p.coordinator) == nullptr) {
    // Nobody to ask; a later membership view may know the coordinator.
    e.recover_at = now + config_.lease_ms;
    return;
  }
  e.resolving = true;
  ResolveRemote(
      p,
      [this, key, p](std::optional<Decision> d, const std::string&, TimeMs t) {
        auto held = reservations_.find(key);
        if (held == reservations_.end() || !(held->second.reservation.proposal == p)) return;
        held->second.resolving = false;
        if (!d) {
          held->second.recover_at = t + config_.lease_ms;  // try again later
          return;
        }
        ApplyDecision(key, p, *d);
      },
      now);
}

void Engine::Impl::ApplyDecision(const Key& key, const ProposalId& p, Decision d) {
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

// ============================================================================
// Catch-up (anti-entropy): serve digests and pulls; run rounds
// ============================================================================

void Engine::Impl::HandleDigest(uint64_t inbound_id) {
  DigestResponse resp;
  if (committed_ != nullptr) resp.buckets = committed_->Digest();
  resp.buckets.resize(kDigestBuckets, 0);
  Respond(inbound_id, std::move(resp));
}

void Engine::Impl::HandlePull(uint64_t inbound_id, const PullRequest& request) {
  PullResponse resp;
  if (committed_ != nullptr && request.bucket < kDigestBuckets) {
    size_t bytes = 0;
    // At least one entry per page, so a page larger than max_bytes still
    // makes progress; `complete` is false only when an entry was left out.
    committed_->ForEachInBucket(
        request.bucket, request.after, [&](const Key& key, const CommittedEntry& e) {
          const size_t size = key.size() + e.value.size();
          if (!resp.entries.empty() && bytes + size > request.max_bytes) {
            resp.complete = false;
            return false;
          }
          resp.entries.push_back(PulledEntry{key, e.value, e.request_id});
          bytes += size;
          return true;
        });
  }
  Respond(inbound_id, std::move(resp));
}

std::vector<PeerId> Engine::Impl::CatchUpPeers() const {
  // Voters only: a catching-up member may itself lack keys, and a chain of
  // new nodes vouching for each other must not pass for caught up.
  std::vector<PeerId> peers;
  for (const Member& m : topology_.members) {
    if (m.cluster != config_.cluster || m.id == config_.self) continue;
    if (m.state == PeerState::kVoter) peers.push_back(m.id);
  }
  std::sort(peers.begin(), peers.end());
  peers.erase(std::unique(peers.begin(), peers.end()), peers.end());
  return peers;
}

void Engine::Impl::StartCatchUpRound(TimeMs now) {
  if (catchup_) return;
  if (config_.catchup_interval_ms > 0) next_catchup_at_ = now + config_.catchup_interval_ms;
  std::vector<PeerId> peers = CatchUpPeers();
  if (peers.empty()) {
    // Trivially caught up (caught_up() says so); start once someone appears.
    catchup_wanted_ = true;
    return;
  }
  catchup_wanted_ = false;
  if (!catchup_cursor_) catchup_cursor_ = rng_();
  const PeerId peer = peers[*catchup_cursor_ % peers.size()];
  ++*catchup_cursor_;
  CatchUpRound& round = catchup_.emplace();
  round.id = next_round_id_++;
  round.peer = peer;
  const uint64_t id = round.id;
  Send(peer, DigestRequest{}, now + kCatchUpDeadlineCalls * config_.call_deadline_ms,
       [this, id](Response&& r, TimeMs t) { OnDigest(id, std::move(r), t); });
}

void Engine::Impl::OnDigest(uint64_t round, Response&& r, TimeMs now) {
  if (!catchup_ || catchup_->id != round) return;
  auto* digest = std::get_if<DigestResponse>(&r);
  if (digest == nullptr || digest->buckets.size() != kDigestBuckets) {
    AbortCatchUp();  // retried at the next interval
    return;
  }
  std::vector<uint64_t> mine;
  if (committed_ != nullptr) mine = committed_->Digest();
  mine.resize(kDigestBuckets, 0);
  for (uint32_t b = 0; b < kDigestBuckets; ++b) {
    if (digest->buckets[b] != mine[b]) catchup_->buckets.push_back(b);
  }
  PumpPulls(now);
}

void Engine::Impl::SendPull(uint32_t bucket, const Key& after, TimeMs now) {
  CatchUpRound& round = *catchup_;
  ++round.pulls_in_flight;
  const uint64_t id = round.id;
  Send(round.peer, PullRequest{bucket, after, config_.catchup_pull_max_bytes},
       now + kCatchUpDeadlineCalls * config_.call_deadline_ms,
       [this, id, bucket, after](Response&& r, TimeMs t) {
         OnPull(id, bucket, after, std::move(r), t);
       });
}

void Engine::Impl::OnPull(uint64_t round, uint32_t bucket, const Key& after, Response&& r,
                          TimeMs now) {
  if (!catchup_ || catchup_->id != round) return;
  --catchup_->pulls_in_flight;
  auto* pull = std::get_if<PullResponse>(&r);
  // An incomplete page must end past `after`, or paging would never end.
  if (pull == nullptr ||
      (!pull->complete && (pull->entries.empty() || pull->entries.back().key <= after))) {
    AbortCatchUp();
    return;
  }
  const PeerId peer = catchup_->peer;
  for (PulledEntry& e : pull->entries) ApplyPulled(peer, e);
  if (!pull->complete) SendPull(bucket, pull->entries.back().key, now);
  PumpPulls(now);
}

void Engine::Impl::PumpPulls(TimeMs now) {
  CatchUpRound& round = *catchup_;
  while (round.pulls_in_flight < kMaxPullsInFlight && !round.buckets.empty()) {
    const uint32_t b = round.buckets.front();
    round.buckets.pop_front();
    SendPull(b, Key(), now);
  }
  if (round.pulls_in_flight > 0 || !round.buckets.empty()) return;
  // Every differing bucket was pulled; the round counts once what it
  // applied is durable.
  const uint64_t id = round.id;
  AfterWrite(round.last_write, [this, id]() {
    if (!catchup_ || catchup_->id != id) return;
    caught_up_from_.insert(catchup_->peer);
    catchup_.reset();
    ++stats_.catchup_rounds;
    // Not yet caught up from a majority: ask the next voter at once.
    if (!caught_up()) next_catchup_at_ = last_now_;
  });
}

void Engine::Impl::ApplyPulled(const PeerId& from, PulledEntry& entry) {
  if (std::optional<CommittedLookup> c = LookupCommitted(entry.key)) {
    if (c->value != entry.value) {
      // Never overwrite a committed value; report it.
      ++stats_.safety_violations;
      effects_.push_back(ViolationEffect{
          entry.key, absl::StrCat("catch-up from ", from, " pulled a value of ",
                                  entry.value.size(), " bytes but the key is committed here "
                                  "with another value of ", c->value.size(), " bytes")});
    }
    return;
  }
  catchup_->last_write = WriteCommitted(entry.key, entry.value, entry.request_id);
  ++stats_.catchup_keys_pulled;
  // A reservation of the key stays: only its own proposal's decision may
  // drop it (lease recovery or its commit will settle it). If that decision
  // is known here already, apply it now.
  if (auto held = reservations_.find(entry.key); held != reservations_.end()) {
    const ProposalId holder = held->second.reservation.proposal;
    if (std::optional<Decision> d = decided_.Find(holder)) ApplyDecision(entry.key, holder, *d);
  }
}

// ============================================================================
// Engine: forwards to Impl
// ============================================================================

Engine::Engine(EngineConfig config, const CommittedView* committed, DurableState recovered)
    : impl_(std::make_unique<Impl>(std::move(config), committed, std::move(recovered))) {}
Engine::~Engine() = default;

const EngineConfig& Engine::config() const { return impl_->config(); }
void Engine::SetTopology(Topology topology, TimeMs now) {
  impl_->SetTopology(std::move(topology), now);
}
const Topology& Engine::topology() const { return impl_->topology(); }
void Engine::StartPut(uint64_t put_id, Key key, Value value, uint64_t request_id, TimeMs now) {
  impl_->StartPut(put_id, std::move(key), std::move(value), request_id, now);
}
void Engine::StartGet(uint64_t get_id, Key key, Consistency consistency, TimeMs now) {
  impl_->StartGet(get_id, std::move(key), consistency, now);
}
void Engine::OnRequest(uint64_t inbound_id, const PeerId& /*from*/, Request request,
                       TimeMs now) {
  impl_->OnRequest(inbound_id, std::move(request), now);
}
void Engine::OnResponse(uint64_t call_id, Response response, TimeMs now) {
  impl_->OnResponse(call_id, std::move(response), now);
}
void Engine::OnWriteDone(uint64_t write_id, TimeMs now) { impl_->OnWriteDone(write_id, now); }
void Engine::Tick(TimeMs now) { impl_->Tick(now); }
std::optional<TimeMs> Engine::NextWakeup() const { return impl_->NextWakeup(); }
void Engine::StartCatchUp(TimeMs now) { impl_->StartCatchUp(now); }
bool Engine::caught_up() const { return impl_->caught_up(); }
std::vector<Effect> Engine::TakeEffects() { return impl_->TakeEffects(); }
bool Engine::HasEffects() const { return impl_->HasEffects(); }
EngineStats Engine::stats() const { return impl_->stats(); }

}  // namespace replicator::core
