// Replicator's C++ client: an asynchronous connection to one node, used from
// Asio coroutines on a replicator::net::Reactor (one thread; a Client and
// its calls stay on that reactor's thread).
//
//   replicator::net::Reactor reactor;
//   asio::co_spawn(reactor.io(), [&]() -> asio::awaitable<void> { ... }, asio::detached);
//   // inside the coroutine:
//   auto client = co_await replicator::Client::Connect(reactor, "127.0.0.1:7001");
//   auto put = co_await (*client)->Put("user/42", "alice");
//   if (put.ok() && put->kind == replicator::PutResult::Kind::kKeyExists) { /* choose another */ }
//
// Protocol outcomes are values in PutResult / GetResult. An absl::Status error
// (Unavailable, DeadlineExceeded) means the outcome is unknown: the call
// failed, or the node could not learn its own decision, after every retry.
// A put may then still have been applied; read the key before choosing another.
//
// Calls made concurrently (from many coroutines) share the connection; those
// made in one turn of the event loop are sent together (ClientOptions::coalesce).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>

#include "absl/status/statusor.h"

namespace replicator {

namespace net {
class Reactor;
class TlsContext;  // net/tls.h
}

struct PutResult {
  enum class Kind {
    kOk,               // committed at a majority of every cluster
    kKeyExists,        // the key already holds `existing`: choose another key
    kConflict,         // a concurrent put held the key past the retry bound
    kUnavailable,      // too few nodes answered; nothing stored (see message)
    kInvalidArgument,  // bad key or value; see message
  };
  Kind kind = Kind::kUnavailable;
  std::string existing;
  std::string message;
};

struct GetResult {
  enum class Kind { kFound, kNotFound, kUnavailable, kInvalidArgument };
  Kind kind = Kind::kNotFound;
  std::string value;
  std::string message;
};

enum class Consistency { kLocal, kLinearizable };

struct PeerStatus {
  std::string id;
  std::string cluster;
  std::string address;
  std::string state;  // "voter", "catching up", "down"
};

// One configuration of a cluster: the voters its quorums count, at an
// epoch (1: the founding set; each later epoch adds or removes one voter).
struct Configuration {
  std::string cluster;
  uint64_t epoch = 0;
  std::vector<std::string> voters;
  // The cluster's place in the order the federation's clusters were
  // founded (1: the first; 0: unknown).
  uint64_t generation = 0;
  // The generation at which it was removed from the federation (0: not).
  uint64_t removed = 0;
};

struct MemberChangeResult {
  enum class Kind {
    kOk,               // chosen; `config` is the new configuration
    kInvalidArgument,  // not a change that may be made; see message
    kBusy,             // another change of the cluster is in progress: retry
    kUnavailable,      // no majority of the cluster's voters agreed in time
  };
  Kind kind = Kind::kUnavailable;
  std::string message;
  Configuration config;  // kOk: the new one; otherwise the newest known
};

struct NodeStatus {
  PeerStatus self;
  std::vector<PeerStatus> members;
  // The newest configuration of every cluster the node knows, its own first.
  std::vector<Configuration> configurations;
  uint64_t config_epoch = 0;  // of the node's cluster
  uint64_t config_changes = 0;
  uint64_t stale_epoch_refusals = 0;
  // Every cluster founded up to this generation is known to the node and
  // counted by its puts.
  uint64_t federation_generation = 0;
  // The node holds every key committed before its cluster counted (a
  // cluster founded after others catches up with the federation first) and
  // answers linearizable reads.
  bool federation_settled = false;
  uint64_t generation_refusals = 0;  // reserves refused: a cluster founded since
  uint64_t committed_keys = 0;
  uint64_t reservations = 0;
  uint64_t puts_ok = 0;
  uint64_t puts_key_exists = 0;
  uint64_t puts_conflict = 0;
  uint64_t puts_unavailable = 0;
  uint64_t puts_invalid = 0;
  uint64_t puts_outcome_unknown = 0;  // may still have committed
  uint64_t gets = 0;
  uint64_t uptime_ms = 0;
  uint64_t safety_violations = 0;
  uint64_t storage_writes = 0;   // write requests made durable
  uint64_t storage_batches = 0;  // group commits
  uint64_t storage_syncs = 0;    // fsyncs
  uint64_t put_retries = 0;      // attempts retried after losing a race
  uint64_t puts_joined = 0;      // puts that shared an identical put in flight
  uint64_t catchup_rounds = 0;
  uint64_t catchup_keys_pulled = 0;
  uint64_t storage_mutations = 0;
  uint64_t storage_write_errors = 0;    // failed group commits
  uint64_t storage_writes_refused = 0;  // would have changed a committed value
  // The node runs with --insecure: plaintext, no one authenticated.
  bool insecure = false;
  uint64_t batched_calls = 0;  // putMany and getMany calls served (coalesced)
  uint64_t batched_items = 0;  // the puts and gets they carried
  // Engines the node runs (--shards); the counts above are their sums.
  uint32_t shards = 1;
};

struct ClientOptions {
  std::chrono::milliseconds connect_timeout{5000};
  // Bound on one call; a put takes a reserve round to every cluster and a
  // decision round in the node's cluster, plus backoff under contention.
  std::chrono::milliseconds call_timeout{10000};
  // A put whose outcome is unknown (timed out, lost its connection, or the
  // node answered "outcome unknown") is sent again with the same request id,
  // up to this many attempts in all: if an earlier attempt was applied, the
  // retry answers kOk (never kKeyExists for its own value).
  int put_attempts = 3;
  // Called before each such retry (for logging).
  std::function<void(const absl::Status& failure, int next_attempt)> on_put_retry;
  // TLS 1.3 with this client's certificate (role read, write or admin) and
  // the federation's CA; null: plaintext, for a node run with --insecure.
  // A certificate refused by either side fails Connect with
  // Unauthenticated; a call the certificate's role may not make fails with
  // PermissionDenied naming the role needed.
  std::shared_ptr<const net::TlsContext> tls;
  // Coalescing: the puts that this client's coroutines make in one turn of
  // the reactor's event loop go to the node as one KeyValue.putMany message,
  // and the gets as one getMany per consistency (a call made alone in its
  // turn goes as a plain put or get). Each call keeps its own result, its
  // own request id, timeout and retries, exactly as uncoalesced; a message
  // carries at most 32 calls and about 256 KiB of keys and values. A node
  // that does not serve putMany/getMany (an older release) answers them
  // "not implemented" and applies nothing: its calls are then sent alone,
  // and this client sends it no batch again. false sends every call alone.
  bool coalesce = true;
};

class Client {
 public:
  // Connects to the node at "host:port". A call made after the connection
  // failed (the node restarted, say) connects again first; a get lost with
  // its connection is asked once more on the new one.
  static asio::awaitable<absl::StatusOr<std::unique_ptr<Client>>> Connect(
      net::Reactor& reactor, std::string address, ClientOptions options = {});
  ~Client();

  // Stores key -> value once. Retries as ClientOptions::put_attempts says,
  // with one request id for every attempt.
  asio::awaitable<absl::StatusOr<PutResult>> Put(std::string key, std::string value);
  // The same with a caller-chosen request id (non-zero), for callers that
  // retry across processes or clients.
  asio::awaitable<absl::StatusOr<PutResult>> Put(std::string key, std::string value,
                                                 uint64_t request_id);
  asio::awaitable<absl::StatusOr<GetResult>> Get(std::string key,
                                                 Consistency consistency = Consistency::kLocal);
  asio::awaitable<absl::StatusOr<NodeStatus>> Status();
  // Membership, as etcdctl member promote/remove: makes `peer` a voter of
  // its cluster, or removes it (below 3 voters only with `force`), by
  // consensus among the cluster's voters. Waits until the new configuration
  // is chosen (or why not); a change takes longer than a put, so the call
  // gets at least 15 s.
  asio::awaitable<absl::StatusOr<MemberChangeResult>> PromoteMember(std::string peer);
  asio::awaitable<absl::StatusOr<MemberChangeResult>> RemoveMember(std::string peer, bool force);
  // Removes a whole cluster from the federation, by consensus of the other
  // clusters: for a cluster that is gone for good (stop its nodes first).
  // Ask a node of another cluster; the federation's first cluster cannot be
  // removed. `config` of the result is the cluster's last configuration,
  // with `removed` set to the generation of its removal.
  asio::awaitable<absl::StatusOr<MemberChangeResult>> RemoveCluster(std::string cluster);
  // Node.echo: the node returns `payload` unchanged and does nothing else.
  // Over the same connection as every other call, so a benchmark can read
  // put figures as a fraction of what the transport allows.
  asio::awaitable<absl::StatusOr<std::string>> Echo(std::string payload);

  const std::string& address() const;

 private:
  class Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace replicator
