// Vocabulary of the replication protocol: keys, peers, proposals, votes,
// ballots and membership. Plain values, no behaviour beyond ordering and
// hashing; shared by every layer. Thread-compatible.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace replicator::core {

using Key = std::string;
using Value = std::string;
using PeerId = std::string;     // base58 text, e.g. "12D3KooW..."
using ClusterId = std::string;  // 1..64 chars of [A-Za-z0-9_.-]
using TimeMs = int64_t;         // monotonic milliseconds, virtual in simulation

// One attempt to store (key, value). Unique forever: the coordinator never
// reuses an (incarnation, sequence) pair. `started_ms` is carried for
// backoff priority only and is not part of the identity. `epoch` is the
// configuration epoch of the coordinator's cluster the proposal was made
// under: decision(p)'s acceptors are that configuration's voters, forever.
// Fixed at creation, so it is not part of the identity either.
struct ProposalId {
  PeerId coordinator;
  uint64_t incarnation = 0;
  uint64_t sequence = 0;
  uint64_t started_ms = 0;
  uint64_t epoch = 0;

  friend bool operator==(const ProposalId& a, const ProposalId& b) {
    return a.coordinator == b.coordinator && a.incarnation == b.incarnation &&
           a.sequence == b.sequence;
  }
  friend bool operator<(const ProposalId& a, const ProposalId& b) {
    return std::tie(a.coordinator, a.incarnation, a.sequence) <
           std::tie(b.coordinator, b.incarnation, b.sequence);
  }
  template <typename H>
  friend H AbslHashValue(H h, const ProposalId& p) {
    return H::combine(std::move(h), p.coordinator, p.incarnation, p.sequence);
  }
  std::string ToString() const;  // "coordinator/incarnation/sequence"
};

// A Paxos ballot for one decision register. Round 0 belongs to the
// proposal's coordinator alone; higher rounds are (round, proposer) ordered.
struct Ballot {
  uint64_t round = 0;
  PeerId proposer;

  friend bool operator==(const Ballot& a, const Ballot& b) {
    return a.round == b.round && a.proposer == b.proposer;
  }
  friend bool operator<(const Ballot& a, const Ballot& b) {
    return std::tie(a.round, a.proposer) < std::tie(b.round, b.proposer);
  }
};

enum class Decision : uint8_t { kCommit = 0, kAbort = 1 };

// One configuration of a cluster: the voters its quorums are counted over.
// Epoch 1 is the cluster's founding set (the first voters the directory
// shows); epoch e+1 is chosen by consensus among epoch e's voters and
// differs from epoch e by exactly one voter (see core/membership.h).
// `generation` is the cluster's place in the order the federation's
// clusters were founded (1: the first), named by the directory with the
// founding set and carried unchanged by every later epoch, so that a node
// that knows only a cluster's newest configuration knows it too. 0: not
// known (a record written before generations existed). See
// core/federation.h.
struct Configuration {
  ClusterId cluster;
  uint64_t epoch = 0;          // 0: none known
  std::vector<PeerId> voters;  // sorted, unique
  uint64_t generation = 0;     // the cluster's founding generation; 0: unknown
  // The generation at which the cluster was removed from the federation
  // (core/founding.h): from then on no put counts it and its nodes serve
  // nothing. 0: not removed. Carried by every record of the cluster once
  // known, like `generation`.
  uint64_t removed = 0;

  bool Has(const PeerId& id) const;
  friend bool operator==(const Configuration&, const Configuration&) = default;
};

// A voter's answer to reserve (or its acknowledgement of commit/abort).
struct Vote {
  enum class Kind : uint8_t {
    kOk,           // durably reserved (or commit/abort applied)
    kStored,       // key committed there with `stored`
    kReserved,     // key reserved for `holder`, another proposal
    kUnreachable,  // no answer within the deadline; `reason` says why
    kDecided,      // the proposal is already decided; reservation refused
    // The request named another epoch of the voter's cluster than the
    // voter's own (`epoch`); nothing was done. When the voter's is newer,
    // `configs` carries what it knows, for the sender to adopt and retry.
    kWrongEpoch,
    // The reserve was counted at a lower federation generation than the
    // voter's (`generation`): its coordinator does not count some cluster
    // founded since (core/federation.h). Nothing was done; `configs`
    // carries the newest configuration of each such cluster, for the
    // coordinator to adopt and retry counting them.
    kWrongGeneration,
  };
  PeerId peer;
  ClusterId cluster;
  Kind kind = Kind::kUnreachable;
  Value stored;        // kStored
  uint64_t stored_request_id = 0;  // kStored: the request id stored with it
  ProposalId holder;   // kReserved
  std::string reason;  // kUnreachable
  uint64_t epoch = 0;  // kWrongEpoch: the voter's epoch
  uint64_t generation = 0;             // kWrongGeneration: the voter's federation generation
  std::vector<Configuration> configs;  // kWrongEpoch, kWrongGeneration
};

// kDown is a voter that missed the directory's ping: a liveness hint that
// steers whom to ask first. It still votes and still counts in quorums (a
// partition must not shrink a majority below half of the real voters).
enum class PeerState : uint8_t { kVoter = 0, kCatchingUp = 1, kDown = 2 };

struct Member {
  PeerId id;
  ClusterId cluster;
  std::string address;  // "host:port"
  PeerState state = PeerState::kVoter;

  friend bool operator==(const Member&, const Member&) = default;
};

// A node's view of the membership. Quorums count voters only.
struct Topology {
  std::vector<Member> members;
  // Each cluster's founding configuration (epoch 1), named once by the
  // directory. A node that knows no configuration of its cluster adopts its
  // cluster's; every later one is chosen by consensus.
  std::vector<Configuration> founding;

  const Member* Find(const PeerId& id) const;
  // Voters of `cluster`, down ones included, ordered by id.
  std::vector<PeerId> Voters(const ClusterId& cluster) const;
  // Every cluster with at least one member, ordered.
  std::vector<ClusterId> Clusters() const;
};

// Catch-up compares committed sets bucket by bucket: a key's bucket and an
// entry's hash are fixed functions (identical on every node and build), a
// bucket's digest is the XOR of its entries' hashes.
inline constexpr uint32_t kDigestBuckets = 4096;
uint32_t BucketOf(const Key& key);
uint64_t EntryHash(const Key& key, const Value& value);

// Validation limits; configurable per node.
struct Limits {
  size_t max_key_bytes = 1024;
  size_t max_value_bytes = 1 << 20;
};

// Empty when (key, value) is acceptable, else a message for the client.
std::optional<std::string> ValidatePut(const Limits& limits, const Key& key,
                                       const Value& value);
std::optional<std::string> ValidateKey(const Limits& limits, const Key& key);
// Empty when `id` is a well-formed cluster id, else why not.
std::optional<std::string> ValidateClusterId(const ClusterId& id);

}  // namespace replicator::core
