// Checker: the invariants of DESIGN.md, checked while a simulation runs and
// after its quiet phase. The Simulator reports what it observes (durable
// mutations before they apply, messages sent and delivered, client answers);
// the checker keeps a global, omniscient history and records every
// violation with the key or proposal it concerns. Single-threaded.
//
// Invariant ids in reports:
//   1  at most one value ever committed per key, on any node
//   2  at most one client put (request id) per key answers ok, with the
//      committed value: a retry of the same client put (same request id)
//      may answer ok again, two different client puts may not; every other
//      answer agrees with the committed value; a put whose own proposal is
//      decided commit did not answer conflict, unavailable (other than
//      "outcome unknown") or keyExists of another value; a put with a
//      request id never answers keyExists of its own value (it answers ok)
//   3  a proposal's decision is chosen once: commit/abort messages, chosen
//      acceptor majorities and resolve answers agree; Paxos acceptor state
//      only moves forward
//   4  when a put answers ok, (key, value) is durable (reserved for the
//      committed proposal or committed) at a strict majority of every cluster
//   5  after the quiet phase: no reservation left; every committed key is
//      committed at a strict majority of every cluster (and, with
//      check_convergence, at every node)
//   L  a linearizable get started after the key was known to exist finds it
//   R  a node never replaces a reservation held for another proposal, nor
//      reserves a key it has committed
//   E  the engine raised a ViolationEffect
//   C  engine contract (exactly one answer per request / put / get)
//   V  liveness in fault-free runs
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/engine.h"
#include "core/messages.h"
#include "core/types.h"
#include "sim/sim_store.h"

namespace replicator::sim {

struct Violation {
  std::string invariant;  // see the list above
  core::TimeMs time = 0;
  std::string subject;  // "key=..." and/or "proposal=..."
  std::string detail;

  std::string ToString() const;
};

struct CheckerOptions {
  bool check_convergence = false;  // invariant 5, full form (catch-up)
  bool expect_liveness = false;    // fault-free run: invariant V
};

// One client operation as the checker sees it.
struct ClientOp {
  enum class Type : uint8_t { kPut, kGetLocal, kGetLinearizable };
  Type type = Type::kPut;
  int node = 0;
  core::Key key;
  core::Value value;             // kPut; unique per client put
  uint64_t request_id = 0;       // kPut; unique per client put, 0: none
  int retry_of = -1;             // kPut: the first op of the client put this retries
  core::TimeMs started = 0;
  core::TimeMs finished = -1;  // -1 while pending
  bool abandoned = false;      // its node crashed first
  std::optional<core::PutOutcome> put;
  std::optional<core::GetOutcome> get;
};

class Checker {
 public:
  // `node_cluster[i]` is node i's cluster index in [0, clusters); `stores[i]`
  // its durable store, valid for the checker's lifetime.
  Checker(std::vector<int> node_cluster, std::vector<core::PeerId> node_ids,
          std::vector<const SimStore*> stores, int clusters, CheckerOptions options,
          const core::TimeMs* now);

  bool failed() const { return !violations_.empty(); }
  const std::vector<Violation>& violations() const { return violations_; }
  void Fail(std::string invariant, std::string subject, std::string detail);

  // --- Observations -------------------------------------------------------
  // Node `node` is about to apply `m` (its WriteBatch completed).
  void BeforeApply(int node, const core::Mutation& m);
  // Node `node` sent `request` (as coordinator, representative or resolver).
  void OnSend(int node, const core::Request& request);
  // `request` was handed to node `node`'s engine.
  void OnDeliver(int node, const core::Request& request);
  // Node `node` answered a ResolveRequest for `proposal`.
  void OnResolveAnswered(int node, const core::ProposalId& proposal,
                         const core::ResolveResponse& response);
  void OnEngineViolation(int node, const core::ViolationEffect& v);

  // Client operations; `op` indexes ops() and is stable.
  int OnOpStarted(ClientOp op);
  void OnPutDone(int op, const core::PutOutcome& outcome);
  void OnGetDone(int op, const core::GetOutcome& outcome);
  void OnOpAbandoned(int op);
  const std::vector<ClientOp>& ops() const { return ops_; }

  // After the quiet phase, every node up. `open_inbound[i]` counts requests
  // node i's engine never answered.
  void CheckFinal(const std::vector<int>& open_inbound);

  // Test hook: the committed value the checker believes in.
  std::optional<core::Value> GlobalCommitted(const core::Key& key) const;

 private:
  int Majority(int cluster) const;
  int ClusterOfPeer(const core::PeerId& peer) const;
  void RecordDecision(const core::ProposalId& p, core::Decision d, const std::string& source);
  void CheckClaim(const core::Key& key, const core::Value& value, const std::string& source);
  void CheckPutOk(int op);
  static bool MayCommit(const ClientOp& op, const core::PutOutcome& outcome);

  std::vector<int> node_cluster_;
  std::vector<core::PeerId> node_ids_;
  std::vector<const SimStore*> stores_;
  int clusters_;
  std::vector<int> cluster_size_;
  CheckerOptions options_;
  const core::TimeMs* now_;

  std::vector<Violation> violations_;
  std::vector<ClientOp> ops_;

  // Invariant 1: the first value ever committed per key.
  std::map<core::Key, core::Value> committed_;
  // The value of the first proposal decided commit, per key (durable or not).
  std::map<core::Key, core::Value> decided_value_;
  // Claims (key, value, source) made before any commit of the key was seen.
  std::map<core::Key, std::vector<std::pair<core::Value, std::string>>> pending_claims_;
  // Invariant 2.
  std::map<core::Key, int> ok_put_;
  // Which put ops a proposal belongs to: the puts of its key and value
  // pending at its coordinator when its first reserve was sent.
  std::map<core::ProposalId, std::vector<int>> ops_of_proposal_;
  std::map<int, std::vector<core::ProposalId>> proposals_of_op_;
  // Invariant 3.
  struct DecisionRecord {
    core::Decision decision;
    std::string source;
  };
  std::map<core::ProposalId, DecisionRecord> decisions_;
  struct AcceptSet {
    core::Decision decision;
    std::set<int> nodes;
  };
  std::map<std::pair<core::ProposalId, core::Ballot>, AcceptSet> accepts_;
  std::map<core::ProposalId, std::pair<core::Key, core::Value>> proposal_kv_;
  std::map<core::Value, std::set<core::ProposalId>> proposals_of_value_;
  // Linearizable get: earliest completion of an answer revealing the key.
  std::map<core::Key, core::TimeMs> known_since_;
};

}  // namespace replicator::sim
