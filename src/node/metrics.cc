#include "node/metrics.h"

#include <sys/resource.h>

#include <map>

#include "absl/strings/str_cat.h"
#include "util/prometheus_text.h"

#ifndef REPLICATOR_VERSION
#define REPLICATOR_VERSION "unknown"
#endif

namespace replicator::node {

namespace {

const char* StateName(core::PeerState s) {
  switch (s) {
    case core::PeerState::kVoter:
      return "voter";
    case core::PeerState::kCatchingUp:
      return "catching_up";
    case core::PeerState::kDown:
      return "down";
  }
  return "unknown";
}

}  // namespace

std::string RenderMetrics(const StatusReport& s, const NodeMetrics& m,
                          const util::HistogramSnapshot* fsync) {
  util::PrometheusText out;
  const core::EngineStats& e = s.engine;
  auto one = [&](const char* name, const char* type, const char* help, double value) {
    out.Family(name, type, help);
    out.Sample(name, {}, value);
  };

  out.Family("replicator_build_info", "gauge", "Always 1; the labels name this build.");
  out.Sample("replicator_build_info", {{"version", REPLICATOR_VERSION}}, 1);
  out.Family("replicator_node_info", "gauge",
             "Always 1; the labels name this node, its cluster and its state in its own map.");
  out.Sample("replicator_node_info",
             {{"peer", s.self.id}, {"cluster", s.self.cluster}, {"state", StateName(s.self.state)}},
             1);
  one("replicator_uptime_seconds", "gauge", "Seconds since this process started the node.",
      static_cast<double>(s.uptime_ms) / 1000.0);
  one("replicator_shards", "gauge",
      "Engines this node runs (--shards); the counters below are their sums.",
      static_cast<double>(s.shards));
  rusage usage{};
  ::getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  one("process_cpu_seconds_total", "counter",
      "User and system CPU time of this process, every thread (reactor, storage, RocksDB).",
      seconds(usage.ru_utime) + seconds(usage.ru_stime));

  // Client calls.
  out.Family("replicator_puts_total", "counter",
             "Puts coordinated here, by outcome (a retry that joined an in-flight put with the "
             "same request id is counted in replicator_puts_joined_total instead).");
  const std::pair<const char*, uint64_t> puts[] = {{"ok", e.puts_ok},
                                                   {"key_exists", e.puts_key_exists},
                                                   {"conflict", e.puts_conflict},
                                                   {"unavailable", e.puts_unavailable},
                                                   {"outcome_unknown", e.puts_outcome_unknown},
                                                   {"invalid", e.puts_invalid}};
  for (const auto& [outcome, n] : puts) {
    out.Sample("replicator_puts_total", {{"outcome", outcome}}, static_cast<double>(n));
  }
  one("replicator_puts_joined_total", "counter",
      "Puts that shared the outcome of an in-flight put with the same key and request id.",
      static_cast<double>(e.puts_joined));
  one("replicator_put_retries_total", "counter",
      "Reservation rounds a coordinator retried after a conflict.",
      static_cast<double>(e.put_retries));
  one("replicator_slow_puts_total", "counter",
      "Puts answered later than --slow-put-threshold (each is logged).",
      static_cast<double>(m.slow_puts));
  out.Family("replicator_gets_total", "counter", "Gets answered here, by outcome.");
  const std::pair<const char*, uint64_t> gets[] = {{"found", m.gets_found},
                                                   {"not_found", m.gets_not_found},
                                                   {"unavailable", m.gets_unavailable},
                                                   {"invalid", m.gets_invalid}};
  for (const auto& [outcome, n] : gets) {
    out.Sample("replicator_gets_total", {{"outcome", outcome}}, static_cast<double>(n));
  }
  out.Family("replicator_put_duration_seconds", "histogram",
             "Time from a client put reaching this node to its answer.");
  out.Histogram("replicator_put_duration_seconds", {}, m.put_duration.Snapshot());
  out.Family("replicator_get_duration_seconds", "histogram",
             "Time from a client get reaching this node to its answer.");
  out.Histogram("replicator_get_duration_seconds", {}, m.get_duration.Snapshot());
  one("replicator_reads_not_ready_total", "counter",
      "Linearizable reads refused while this node's cluster had not settled.",
      static_cast<double>(e.reads_not_ready));

  // Replica state.
  one("replicator_reservations", "gauge", "Reservations this node holds now.",
      static_cast<double>(e.reservations));
  one("replicator_committed_keys", "gauge", "Distinct committed keys held by this node.",
      static_cast<double>(s.committed_keys));
  one("replicator_safety_violations_total", "counter",
      "Two values seen for one key (must stay 0; each is logged).",
      static_cast<double>(e.safety_violations));
  one("replicator_stale_epoch_refusals_total", "counter",
      "Peer requests refused for naming a configuration epoch other than this node's.",
      static_cast<double>(e.stale_epoch_refusals));
  one("replicator_generation_refusals_total", "counter",
      "Reserves refused for a federation generation lower than this node's.",
      static_cast<double>(e.generation_refusals));
  // Requests refused at the edge (core/admission.h, core/acceptor.h).
  one("replicator_sender_refusals_total", "counter",
      "Peer requests refused because their sender may not make them (core/admission.h).",
      static_cast<double>(e.sender_refusals));
  one("replicator_ballot_refusals_total", "counter",
      "Paxos prepares and accepts refused: an absurd ballot round, or a request without its key "
      "that only a record could answer.",
      static_cast<double>(e.ballot_refusals));
  one("replicator_acceptor_records_dropped_total", "counter",
      "Paxos acceptor records deleted because their key committed here by their proposal.",
      static_cast<double>(e.acceptor_records_dropped));
  one("replicator_unverified_violation_reports_total", "counter",
      "Safety violations shown by requests from senders not proven members (not counted as "
      "violations).",
      static_cast<double>(e.unverified_violation_reports));
  one("replicator_orphan_reservations_dropped_total", "counter",
      "Reservations dropped because their coordinator is in no membership view or configuration.",
      static_cast<double>(e.orphan_reservations_dropped));
  one("replicator_federation_generation", "gauge",
      "The federation generation this node counts (every cluster founded up to it is known).",
      static_cast<double>(e.federation_generation));
  one("replicator_federation_settled", "gauge",
      "1 when this node holds every key committed without its cluster and serves "
      "linearizable reads.",
      e.federation_settled ? 1 : 0);
  out.Family("replicator_config_epoch", "gauge",
             "The newest configuration epoch known here, per cluster.");
  for (const core::Configuration& c : s.configurations) {
    out.Sample("replicator_config_epoch", {{"cluster", c.cluster}}, static_cast<double>(c.epoch));
  }
  one("replicator_config_changes_total", "counter",
      "Configurations of this node's cluster chosen while this node ran.",
      static_cast<double>(e.config_changes));

  // Catch-up.
  one("replicator_catchup_rounds_total", "counter", "Catch-up rounds completed.",
      static_cast<double>(e.catchup_rounds));
  one("replicator_catchup_keys_pulled_total", "counter", "Committed entries applied from pulls.",
      static_cast<double>(e.catchup_keys_pulled));
  one("replicator_catchup_pulls_total", "counter",
      "Catch-up pull calls sent, one per page of committed entries asked for.",
      static_cast<double>(e.catchup_pulls));

  // Storage.
  one("replicator_storage_writes_total", "counter",
      "Storage write requests completed (one per engine write effect).",
      static_cast<double>(s.storage.writes));
  one("replicator_storage_group_commits_total", "counter",
      "Group writes applied: each is one atomic write holding every request that waited.",
      static_cast<double>(s.storage.batches_written));
  one("replicator_storage_fsyncs_total", "counter", "Synced writes to disk.",
      static_cast<double>(s.storage.syncs));
  one("replicator_storage_mutations_total", "counter", "Record mutations applied.",
      static_cast<double>(s.storage.mutations));
  one("replicator_storage_write_errors_total", "counter",
      "Group writes that failed (the node stops on one).",
      static_cast<double>(s.storage.write_errors));
  one("replicator_storage_writes_refused_total", "counter",
      "Writes refused by storage's write-once check.",
      static_cast<double>(s.storage.writes_refused));
  one("replicator_storage_log_acceptor_records", "gauge",
      "Paxos acceptor records held in the write log (those of the puts in flight).",
      static_cast<double>(s.storage.log_acceptor_records));
  one("replicator_storage_acceptor_records_moved_total", "counter",
      "Paxos acceptor records moved from the write log to RocksDB for outliving a log segment.",
      static_cast<double>(s.storage.acceptor_records_moved));
  one("replicator_storage_pages_ingested_total", "counter",
      "Catch-up pages written to RocksDB as table files it ingested, not through its memtable.",
      static_cast<double>(s.storage.pages_ingested));
  out.Family(
      "replicator_storage_fsync_duration_seconds", "histogram",
      "Duration of each synced write (a group commit, or the incarnation counter at start).");
  out.Histogram("replicator_storage_fsync_duration_seconds", {},
                fsync != nullptr ? *fsync : util::Histogram(util::kLatencyBuckets).Snapshot());

  // Peers.
  one("replicator_peer_call_batches_total", "counter",
      "Batches of calls sent to peers (one Peer.call, or one catch-up call).",
      static_cast<double>(m.peer_batches));
  out.Family("replicator_peer_call_batch_size", "histogram", "Calls per batch sent to a peer.");
  out.Histogram("replicator_peer_call_batch_size", {}, m.peer_batch_calls.Snapshot());
  std::map<core::PeerId, core::ClusterId> cluster_of;
  for (const core::Member& member : s.members) cluster_of[member.id] = member.cluster;
  auto peer_labels = [&](const core::PeerId& id) {
    auto it = cluster_of.find(id);
    return util::Labels{{"peer", id}, {"cluster", it == cluster_of.end() ? "" : it->second}};
  };
  out.Family("replicator_peer_reachable", "gauge",
             "1 when the last batch sent to the peer was answered, else 0.");
  for (const auto& [id, p] : m.peers) {
    out.Sample("replicator_peer_reachable", peer_labels(id), p.reachable ? 1 : 0);
  }
  out.Family("replicator_peer_call_failures_total", "counter",
             "Batches to the peer that got no answer within the call deadline.");
  for (const auto& [id, p] : m.peers) {
    out.Sample("replicator_peer_call_failures_total", peer_labels(id),
               static_cast<double>(p.batches_failed));
  }
  out.Family("replicator_peer_rtt_seconds", "histogram",
             "Round trip of each answered batch to the peer, connection set-up included.");
  for (const auto& [id, p] : m.peers) {
    out.Histogram("replicator_peer_rtt_seconds", peer_labels(id), p.rtt.Snapshot());
  }
  return out.Take();
}

std::optional<std::string> NotReady(const StatusReport& s) {
  if (s.engine.config_epoch == 0) {
    return absl::StrCat("cluster ", s.self.cluster, " is not founded yet");
  }
  switch (s.self.state) {
    case core::PeerState::kVoter:
      return std::nullopt;
    case core::PeerState::kCatchingUp:
      if (s.engine.catchup_rounds > 0 && s.engine.federation_settled) return std::nullopt;
      return std::string("catching up: a learner that has not completed a catch-up round");
    case core::PeerState::kDown:
      break;
  }
  return std::string("this node is marked down in its own member map");
}

}  // namespace replicator::node
