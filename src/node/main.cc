// replicatord: one Replicator node. See README.md and docs/design.md.
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/signal_set.hpp>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "core/shard.h"
#include "fmt/format.h"
#include "net/address.h"
#include "net/reactor.h"
#include "net/tls.h"
#include "node/identity.h"
#include "node/node.h"
#include "node/tls_files.h"
#include "util/config_file.h"
#include "util/dashed_flags.h"
#include "util/duration_flag.h"
#include "util/help.h"
#include "util/log.h"

ABSL_FLAG(std::string, config, "",
          "File of 'flag = value' lines applied before the command line, which overrides it "
          "(README.md, Config files); empty: none.");
ABSL_FLAG(std::string, cluster, "", "Cluster id of this node (required), e.g. eu-1.");
ABSL_FLAG(std::string, listen, "127.0.0.1:0",
          "HOST:PORT to serve on; port 0 picks a free port (see --address-file). HOST is an IP "
          "literal, localhost or a host name, resolved at start (its first address is bound).");
ABSL_FLAG(std::string, advertise, "",
          "HOST:PORT other nodes and clients are told to reach this node at (a host name or "
          "IP literal); empty: the --listen address, which must then not be 0.0.0.0 or [::].");
ABSL_FLAG(std::string, bootstrap, "",
          "Comma-separated HOST:PORT of members to join through, tried in turn: needed only "
          "the first time a node starts (afterwards it knows its peers from its data dir). "
          "A new node without it starts a new federation.");
ABSL_FLAG(std::string, data_dir, "", "Directory for this node's identity and data (required).");
ABSL_FLAG(int64_t, shards, 1,
          "Engines this node runs, each over its share of the keys with storage of its own "
          "(--data-dir/db, db-shard-1, ...): 1 to 256, the same on every node of a federation. "
          "Fixed when the data dir is first used.");
ABSL_FLAG(std::string, storage, "rocksdb",
          "rocksdb (durable, in --data-dir/db) or memory (loses every key and reservation when "
          "the process exits; for tests only).");
ABSL_FLAG(std::string, storage_verify, "background",
          "When every stored record is read and checked against the bucket summaries that "
          "start-up reads instead: background (after start, at low priority; damage stops the "
          "node with exit 1), start (before serving; damage fails the start), or off.");
ABSL_FLAG(replicator::util::Millis, call_deadline_ms,
          replicator::util::Millis{std::chrono::milliseconds(1000)},
          "Deadline of each fan-out to peers; a peer that misses it is an unreachable vote "
          "(milliseconds, or 1s, 500ms...).");
ABSL_FLAG(replicator::util::Millis, lease_ms,
          replicator::util::Millis{std::chrono::milliseconds(2000)},
          "Age after which a reservation of unknown outcome is resolved by its holder "
          "(milliseconds, or 2s...).");
ABSL_FLAG(replicator::util::Millis, bootstrap_timeout_ms,
          replicator::util::Millis{std::chrono::milliseconds(5000)},
          "How long a new node tries reaching a bootstrap peer at start before exiting "
          "(milliseconds, or 5s...).");
ABSL_FLAG(int64_t, max_key_bytes, 1024, "Largest key accepted, in bytes (at most 65536).");
ABSL_FLAG(int64_t, max_value_bytes, 1 << 20,
          "Largest value accepted, in bytes (at most 33554432, 32 MiB).");
ABSL_FLAG(int64_t, max_connections, 1024,
          "Connections served at once; one more is accepted and closed at once (0: no limit).");
ABSL_FLAG(replicator::util::Millis, idle_timeout_ms,
          replicator::util::Millis{std::chrono::minutes(5)},
          "A connection that sent and received nothing for this long is closed (milliseconds, "
          "or 30s, 5m...; 0: never).");
ABSL_FLAG(replicator::util::Millis, tls_handshake_timeout_ms,
          replicator::util::Millis{std::chrono::seconds(10)},
          "A connection that has not completed its TLS handshake by then is closed "
          "(milliseconds, or 10s...).");
ABSL_FLAG(int64_t, max_inflight_bytes, int64_t{64} << 20,
          "Bytes of calls one connection may have unanswered; past it that connection is not "
          "read until answers go out, and no other waits (0: no limit).");
ABSL_FLAG(std::string, failpoint, "",
          "For tests only: crash-before-decide or crash-before-commit makes the node exit when "
          "it coordinates a put and reaches that point; slow-first-put-reply holds the answer "
          "to the first client put for 3 s.");
ABSL_FLAG(std::string, metrics_listen, "",
          "HOST:PORT to serve Prometheus metrics (/metrics) and a readiness check (/healthz) "
          "on over HTTP; empty: off.");
ABSL_FLAG(std::string, log_level, "info", "Least severe log lines kept: debug, info, warn, error.");
ABSL_FLAG(replicator::util::Seconds, slow_put_threshold,
          replicator::util::Seconds{absl::Seconds(1)},
          "A put answered later than this is logged, with its outcome and where its time went "
          "(seconds, or 500ms...).");
ABSL_FLAG(std::string, address_file, "",
          "Once serving, write this node's HOST:PORT to this file (atomically).");
ABSL_FLAG(std::string, certs_dir, "",
          "Directory with ca.crt (the federation's CA; several concatenated while rotating), "
          "node.crt and node.key (see `replicator cert create-node`). TLS 1.3 with mutual "
          "authentication on every connection. Without node.key, DATA_DIR/identity.key.");
ABSL_FLAG(std::string, ca, "", "CA certificate file (overrides --certs-dir's ca.crt).");
ABSL_FLAG(std::string, cert, "",
          "This node's certificate file, for its identity key (overrides --certs-dir's node.crt).");
ABSL_FLAG(std::string, key, "",
          "This node's key file: its identity key (overrides --certs-dir's node.key).");
ABSL_FLAG(bool, insecure, false,
          "Run without TLS: plaintext, and anyone who can connect may join, vote and write. "
          "For tests only; logged at start and shown by `replicator status`.");

namespace {

namespace node = replicator::node;

int Fail(const std::string& message) {
  fmt::print(stderr, "replicatord: {}\n", message);
  return 1;
}

bool WriteAtomically(const std::string& path, const std::string& text) {
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << text << "\n";
    if (!out.good()) return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

// Starts the node on the reactor; stops the reactor if it cannot start.
struct Daemon {
  replicator::net::Reactor& reactor;
  node::NodeOptions options;
  std::string address_file;
  asio::signal_set* signals = nullptr;
  std::unique_ptr<node::Node> node;
  int exit_code = 0;

  asio::awaitable<void> Start() {
    auto started = co_await node::Node::Start(reactor, options);
    if (!started.ok()) {
      replicator::util::Log(replicator::util::LogLevel::kError, "node", "{}",
                            std::string(started.status().message()));
      exit_code = 1;
      signals->cancel();
      reactor.Stop();
      co_return;
    }
    node = std::move(*started);
    fmt::print("replicatord: peer {} cluster {} serving {}\n", node->identity().peer_id,
               options.cluster, node->address());
    std::fflush(stdout);
    replicator::util::Log(replicator::util::LogLevel::kInfo, "node", "cluster {} serving {}",
                          options.cluster, node->address());
    if (!address_file.empty() && !WriteAtomically(address_file, node->address())) {
      replicator::util::Log(replicator::util::LogLevel::kError, "node", "cannot write {}",
                            address_file);
    }
  }
};

}  // namespace

int main(int argc, char** argv) {
  constexpr char kUsage[] =
      "replicatord: a Replicator node.\n"
      "  replicatord --cluster=ID --data-dir=DIR --certs-dir=DIR|--insecure [--listen=HOST:PORT] "
      "[--bootstrap=HOST:PORT[,HOST:PORT...]]\n"
      "Exit codes: 0 stopped, 1 failed to start, 2 usage: a bad config file, neither "
      "certificates nor --insecure, or nothing dialable to advertise.";
  absl::SetProgramUsageMessage(kUsage);
  replicator::util::PrintHelpIfAsked(
      argc, argv, kUsage, __FILE__,
      {{"Node",
        {"config", "cluster", "data_dir", "listen", "advertise", "address_file", "storage",
         "storage_verify", "shards"}},
       {"Security", {"certs_dir", "ca", "cert", "key", "insecure"}},
       {"Membership", {"bootstrap", "bootstrap_timeout_ms"}},
       {"Protocol", {"call_deadline_ms", "lease_ms"}},
       {"Limits",
        {"max_key_bytes", "max_value_bytes", "max_connections", "idle_timeout_ms",
         "tls_handshake_timeout_ms", "max_inflight_bytes"}},
       {"Monitoring", {"metrics_listen", "log_level", "slow_put_threshold"}},
       {"Testing", {"failpoint"}}});
  replicator::util::ConfigFileArgs with_config(argc, argv);
  if (!with_config.ok()) {
    fmt::print(stderr, "replicatord: {}\n", std::string(with_config.status().message()));
    return 2;
  }
  replicator::util::DashedFlags dashed(with_config.argc(), with_config.argv());
  std::vector<char*> rest = absl::ParseCommandLine(dashed.argc(), dashed.argv());
  if (rest.size() > 1) return Fail(fmt::format("unexpected argument '{}'", rest[1]));

  node::NodeOptions options;
  options.cluster = absl::GetFlag(FLAGS_cluster);
  options.listen = absl::GetFlag(FLAGS_listen);
  if (auto advertised =
          replicator::net::AdvertisedAddress(options.listen, absl::GetFlag(FLAGS_advertise));
      !advertised.ok()) {
    fmt::print(stderr, "replicatord: {}\n", std::string(advertised.status().message()));
    return 2;
  }
  options.advertise = absl::GetFlag(FLAGS_advertise);
  for (absl::string_view a :
       absl::StrSplit(absl::GetFlag(FLAGS_bootstrap), ',', absl::SkipEmpty())) {
    options.bootstrap.emplace_back(absl::StripAsciiWhitespace(a));
  }
  options.data_dir = absl::GetFlag(FLAGS_data_dir);
  std::string storage = absl::GetFlag(FLAGS_storage);
  if (options.cluster.empty()) return Fail("--cluster is required");
  if (options.data_dir.empty()) return Fail("--data-dir is required");
  if (storage != "rocksdb" && storage != "memory") {
    return Fail(fmt::format("--storage must be rocksdb or memory, not '{}'", storage));
  }
  options.memory_storage = storage == "memory";
  if (const int64_t shards = absl::GetFlag(FLAGS_shards);
      shards < 1 || shards > int64_t{replicator::core::kMaxShards}) {
    return Fail(
        fmt::format("--shards must be 1 to {}, not {}", replicator::core::kMaxShards, shards));
  } else {
    options.shards = static_cast<uint32_t>(shards);
  }
  if (const std::string verify = absl::GetFlag(FLAGS_storage_verify); verify == "background") {
    options.storage_verify = replicator::storage::Verify::kBackground;
  } else if (verify == "start") {
    options.storage_verify = replicator::storage::Verify::kAtOpen;
  } else if (verify == "off") {
    options.storage_verify = replicator::storage::Verify::kOff;
  } else {
    return Fail(fmt::format("--storage-verify must be background, start or off, not '{}'", verify));
  }
  auto positive = [](int64_t v) { return v > 0; };
  auto positive_ms = [](replicator::util::Millis m) { return m.value.count() > 0; };
  if (!positive_ms(absl::GetFlag(FLAGS_call_deadline_ms)) ||
      !positive_ms(absl::GetFlag(FLAGS_lease_ms)) ||
      !positive_ms(absl::GetFlag(FLAGS_bootstrap_timeout_ms)) ||
      !positive(absl::GetFlag(FLAGS_max_key_bytes)) || absl::GetFlag(FLAGS_max_value_bytes) < 0) {
    return Fail("durations and key limits must be positive");
  }
  // One Cap'n Proto message must stay under its 64 MiB traversal limit, and
  // a peer batch may hold a full-size value beside ~8 MiB of others.
  constexpr int64_t kMaxKeyLimit = 64 << 10;
  constexpr int64_t kMaxValueLimit = 32 << 20;
  if (absl::GetFlag(FLAGS_max_key_bytes) > kMaxKeyLimit ||
      absl::GetFlag(FLAGS_max_value_bytes) > kMaxValueLimit) {
    return Fail(fmt::format(
        "--max-key-bytes is at most {} and --max-value-bytes at most {} (32 MiB): one "
        "message must stay under Cap'n Proto's 64 MiB limit",
        kMaxKeyLimit, kMaxValueLimit));
  }
  options.call_deadline = absl::GetFlag(FLAGS_call_deadline_ms).value;
  options.lease = absl::GetFlag(FLAGS_lease_ms).value;
  options.bootstrap_timeout = absl::GetFlag(FLAGS_bootstrap_timeout_ms).value;
  options.limits.max_key_bytes = absl::GetFlag(FLAGS_max_key_bytes);
  options.limits.max_value_bytes = absl::GetFlag(FLAGS_max_value_bytes);
  if (absl::GetFlag(FLAGS_max_connections) < 0 || absl::GetFlag(FLAGS_max_inflight_bytes) < 0 ||
      absl::GetFlag(FLAGS_idle_timeout_ms).value.count() < 0) {
    return Fail(
        "--max-connections, --idle-timeout-ms and --max-inflight-bytes must not be negative");
  }
  options.server_limits.max_connections = absl::GetFlag(FLAGS_max_connections);
  options.server_limits.idle_timeout = absl::GetFlag(FLAGS_idle_timeout_ms).value;
  options.server_limits.max_inflight_bytes = absl::GetFlag(FLAGS_max_inflight_bytes);
  std::string address_file = absl::GetFlag(FLAGS_address_file);
  options.metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
  options.slow_put_threshold = std::chrono::duration_cast<std::chrono::milliseconds>(
      absl::ToChronoNanoseconds(absl::GetFlag(FLAGS_slow_put_threshold).value));
  std::optional<replicator::util::LogLevel> log_level =
      replicator::util::ParseLogLevel(absl::GetFlag(FLAGS_log_level));
  if (!log_level) {
    return Fail(fmt::format("--log-level must be debug, info, warn or error, not '{}'",
                            absl::GetFlag(FLAGS_log_level)));
  }
  replicator::util::SetLogLevel(*log_level);
  options.failpoint = absl::GetFlag(FLAGS_failpoint);
  if (!options.failpoint.empty() && options.failpoint != "crash-before-decide" &&
      options.failpoint != "crash-before-commit" && options.failpoint != "slow-first-put-reply") {
    return Fail(fmt::format("unknown --failpoint '{}'", options.failpoint));
  }

  // Exit 2 when the transport is not configured at all: a node never
  // falls back to plaintext silently.
  node::TlsFlags tls_flags{absl::GetFlag(FLAGS_ca), absl::GetFlag(FLAGS_cert),
                           absl::GetFlag(FLAGS_key), absl::GetFlag(FLAGS_certs_dir),
                           absl::GetFlag(FLAGS_insecure)};
  std::string identity_key =
      (std::filesystem::path(options.data_dir) / std::string(node::kIdentityKeyFile)).string();
  auto tls_paths = node::ResolveTlsPaths(tls_flags, node::TlsHolder::Node(), identity_key);
  if (!tls_paths.ok()) {
    fmt::print(stderr, "replicatord: {}\n", std::string(tls_paths.status().message()));
    return absl::IsFailedPrecondition(tls_paths.status()) ? 2 : 1;
  }
  if (tls_paths->has_value()) {
    auto pem = node::ReadTlsFiles(**tls_paths);
    if (!pem.ok()) return Fail(std::string(pem.status().message()));
    if (absl::GetFlag(FLAGS_tls_handshake_timeout_ms).value.count() <= 0) {
      return Fail("--tls-handshake-timeout-ms must be positive");
    }
    auto tls = replicator::net::TlsContext::Create(
        {pem->ca, pem->cert, pem->key, absl::GetFlag(FLAGS_tls_handshake_timeout_ms).value});
    if (!tls.ok()) {
      return Fail(fmt::format("TLS: {} (ca {}, cert {}, key {})",
                              std::string(tls.status().message()), (*tls_paths)->ca,
                              (*tls_paths)->cert, (*tls_paths)->key));
    }
    options.tls = *std::move(tls);
  } else {
    replicator::util::Log(replicator::util::LogLevel::kWarn, "security",
                          "--insecure: plaintext, no peer or client is authenticated; anyone "
                          "who can connect may join, vote, read and write");
  }

  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) return Fail(fmt::format("cannot create data dir {}: {}", options.data_dir, ec.message()));

  replicator::net::Reactor reactor;
  Daemon daemon{reactor, options, address_file, nullptr, nullptr, 0};
  asio::signal_set signals(reactor.io(), SIGINT, SIGTERM);
  signals.async_wait([&](asio::error_code error, int) {
    if (error) return;
    replicator::util::Log(replicator::util::LogLevel::kInfo, "node", "stopping");
    if (daemon.node) daemon.node->Shutdown();
    reactor.Stop();
  });
  daemon.signals = &signals;
  asio::co_spawn(reactor.io(), daemon.Start(), asio::detached);
  reactor.Run();
  daemon.node.reset();
  return daemon.exit_code;
}
