// replicator: command-line client.
//   replicator --node=HOST:PORT put KEY VALUE
//   replicator --node=HOST:PORT put KEY --value-file=PATH   (or - for stdin)
//   replicator --node=HOST:PORT get KEY [--consistency=local|linearizable]
//   replicator --node=HOST:PORT status [--json]
//   replicator --node=HOST:PORT member list
//   replicator --node=HOST:PORT member promote PEER_ID
//   replicator --node=HOST:PORT member remove PEER_ID [--force]
//   replicator --node=HOST:PORT cluster remove CLUSTER_ID
//   replicator cert create-ca|create-node|create-client ... (certificates)
// Exit codes: 0 ok, 1 invalid input or no connection, 2 key exists,
// 3 reserved by a concurrent put (or, for member, a concurrent change),
// 4 key not found, 5 unavailable, 6 permission denied (certificate refused,
// or its role may not make the call).
#include <unistd.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "fmt/format.h"
#include "fmt/ranges.h"
#include "net/reactor.h"
#include "net/tls.h"
#include "node/tls_files.h"
#include "replicator/client.h"
#include "status_json.h"
#include "util/config_file.h"
#include "util/dashed_flags.h"
#include "util/duration_flag.h"
#include "util/help.h"

ABSL_FLAG(std::string, config, "",
          "File of 'flag = value' lines applied before the command line, which overrides it "
          "(README.md, Config files); empty: none.");
ABSL_FLAG(std::string, node, "", "HOST:PORT of any Replicator node (required).");
ABSL_FLAG(std::string, value_file, "",
          "put: read the value from this file (- for standard input) instead of the command "
          "line; for binary values.");
ABSL_FLAG(std::string, consistency, "local",
          "get: local (this node's committed value) or linearizable (a majority of its cluster).");
ABSL_FLAG(replicator::util::Millis, timeout_ms,
          replicator::util::Millis{std::chrono::milliseconds(10000)},
          "Give up on a call after this long (milliseconds, or 10s; a member change gets at "
          "least 15s).");
ABSL_FLAG(bool, json, false, "status: print the status as one JSON object, for scripts.");
ABSL_FLAG(std::string, certs_dir, "",
          "Directory with ca.crt and client.USER.crt/client.USER.key (see `replicator cert`); "
          "for cert commands, where certificates are created.");
ABSL_FLAG(std::string, user, "root",
          "Client name whose certificate --certs-dir holds (client.USER.crt).");
ABSL_FLAG(std::string, ca, "", "CA certificate file (overrides --certs-dir's ca.crt).");
ABSL_FLAG(std::string, cert, "", "Client certificate file (overrides --certs-dir's).");
ABSL_FLAG(std::string, key, "", "Client key file (overrides --certs-dir's).");
ABSL_FLAG(bool, insecure, false, "Connect without TLS, to a node run with --insecure.");
ABSL_FLAG(std::string, ca_key, "",
          "cert create-node/create-client: the CA key (default: --certs-dir's ca.key).");
ABSL_FLAG(std::string, data_dir, "",
          "cert create-node: the node's data dir; its identity.key is certified (created if "
          "the data dir has none).");
ABSL_FLAG(std::string, role, "",
          "cert create-client: read (get, status), write (also put) or admin (also member "
          "changes).");
ABSL_FLAG(bool, overwrite, false, "cert: replace existing certificate and key files.");
ABSL_FLAG(bool, force, false,
          "member remove: allow leaving fewer than 3 voters, a cluster that then survives no "
          "failure.");

namespace {

enum Exit {
  kOk = 0,
  kUsage = 1,
  kKeyExists = 2,
  kConflict = 3,
  kNotFound = 4,
  kUnavailable = 5,
  kPermissionDenied = 6,
};

constexpr char kUsageText[] =
    "Replicator client.\n"
    "  replicator --node=HOST:PORT put KEY VALUE\n"
    "  replicator --node=HOST:PORT put KEY --value-file=PATH|-\n"
    "  replicator --node=HOST:PORT get KEY [--consistency=local|linearizable]\n"
    "  replicator --node=HOST:PORT status [--json]\n"
    "  replicator --node=HOST:PORT member list\n"
    "  replicator --node=HOST:PORT member promote PEER_ID\n"
    "  replicator --node=HOST:PORT member remove PEER_ID [--force]\n"
    "  replicator --node=HOST:PORT cluster remove CLUSTER_ID\n"
    "  replicator cert create-ca --certs-dir=DIR\n"
    "  replicator cert create-node --certs-dir=DIR --data-dir=DATA_DIR [--ca-key=FILE]\n"
    "  replicator cert create-client NAME --certs-dir=DIR --role=read|write|admin\n"
    "Connecting takes --certs-dir=DIR (ca.crt, client.USER.crt/.key; --user=root) or\n"
    "--ca/--cert/--key, or --insecure for a node run with --insecure.\n"
    "Exit codes: 0 ok, 1 invalid input or no connection, 2 key exists, 3 reserved by a\n"
    "concurrent put (member: a concurrent change), 4 key not found, 5 unavailable,\n"
    "6 permission denied (the certificate was refused, or its role may not make the call).";

int Usage(const std::string& why) {
  fmt::print(stderr, "replicator: {}\n{}\n", why, kUsageText);
  return kUsage;
}

// Keys print as text when they are, else in C-style escapes.
std::string Printable(const std::string& bytes) {
  std::string out;
  for (unsigned char c : bytes) {
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("\\x{:02x}", c);
    }
  }
  return out;
}

struct Command {
  replicator::net::Reactor& reactor;
  std::string node;
  std::vector<std::string> args;  // verb and its operands
  std::string value;
  replicator::Consistency consistency = replicator::Consistency::kLocal;
  bool force = false;  // member remove
  replicator::ClientOptions options;
  int exit_code = kUsage;

  asio::awaitable<void> Run() {
    exit_code = co_await Execute();
    reactor.Stop();
  }

  asio::awaitable<int> Execute() {
    auto client = co_await replicator::Client::Connect(reactor, node, options);
    if (!client.ok()) {
      // The transport's errors name the address already.
      const std::string why(client.status().message());
      if (absl::StartsWith(why, "cannot connect to ")) {
        fmt::print(stderr, "replicator: {}\n", why);
      } else {
        fmt::print(stderr, "replicator: cannot connect to {}: {}\n", node, why);
      }
      co_return absl::IsUnauthenticated(client.status()) ? kPermissionDenied : kUsage;
    }
    const std::string& verb = args[0];
    if (verb == "put") co_return co_await Put(**client);
    if (verb == "get") co_return co_await Get(**client);
    if (verb == "member" && args[1] == "list") co_return co_await MemberList(**client);
    if (verb == "member" || verb == "cluster") co_return co_await MemberChange(**client);
    co_return co_await Status(**client);
  }

  // A call this client's certificate may not make.
  static int Denied(const std::string& verb, const absl::Status& s) {
    fmt::print(stderr, "replicator: {} refused: permission denied: {}\n", verb,
               std::string(s.message()));
    return kPermissionDenied;
  }

  // Answers put and get share: nothing stored or read, or a bad request.
  static int Unavailable(const std::string& message) {
    fmt::print(stderr, "unavailable: {}\n", message);
    return kUnavailable;
  }
  static int InvalidArgument(const std::string& message) {
    fmt::print(stderr, "invalid argument: {}\n", message);
    return kUsage;
  }

  asio::awaitable<int> Put(replicator::Client& client) {
    const std::string& key = args[1];
    auto r = co_await client.Put(key, value);
    if (absl::IsPermissionDenied(r.status())) co_return Denied("put", r.status());
    if (!r.ok()) {
      bool unknown = absl::IsDeadlineExceeded(r.status()) || absl::IsUnavailable(r.status());
      fmt::print(stderr, "replicator: put failed: {}{}\n", std::string(r.status().message()),
                 unknown ? "; the put may still have been applied: read the key before choosing "
                           "another"
                         : "");
      co_return unknown ? kUnavailable : kUsage;
    }
    using K = replicator::PutResult::Kind;
    switch (r->kind) {
      case K::kOk:
        fmt::print("ok\n");
        co_return kOk;
      case K::kKeyExists:
        fmt::print(stderr,
                   "key '{}' already exists (value: {} bytes); keys are write-once: choose "
                   "another key\n",
                   Printable(key), r->existing.size());
        co_return kKeyExists;
      case K::kConflict:
        fmt::print(stderr,
                   "key '{}' is reserved by a concurrent put ({}); retry later or choose another "
                   "key\n",
                   Printable(key), r->message);
        co_return kConflict;
      case K::kUnavailable:
        co_return Unavailable(r->message);
      case K::kInvalidArgument:
        co_return InvalidArgument(r->message);
    }
    co_return kUsage;
  }

  asio::awaitable<int> Get(replicator::Client& client) {
    const std::string& key = args[1];
    auto r = co_await client.Get(key, consistency);
    if (absl::IsPermissionDenied(r.status())) co_return Denied("get", r.status());
    if (!r.ok()) {
      fmt::print(stderr, "replicator: get failed: {}\n", std::string(r.status().message()));
      co_return r.status().code() == absl::StatusCode::kDeadlineExceeded ? kUnavailable : kUsage;
    }
    using K = replicator::GetResult::Kind;
    switch (r->kind) {
      case K::kFound:
        std::fwrite(r->value.data(), 1, r->value.size(), stdout);
        if (isatty(fileno(stdout))) std::fputc('\n', stdout);
        std::fflush(stdout);
        co_return kOk;
      case K::kNotFound:
        fmt::print(stderr, "key '{}' not found\n", Printable(key));
        co_return kNotFound;
      case K::kUnavailable:
        co_return Unavailable(r->message);
      case K::kInvalidArgument:
        co_return InvalidArgument(r->message);
    }
    co_return kUsage;
  }

  // Every member the node knows, one a line, as etcdctl member list does:
  // cluster, the epoch of the cluster's newest configuration the node
  // knows, role (voter if that configuration counts it, else learner),
  // liveness (down while the directory's pings go unanswered; a down voter
  // still votes), peer id, address.
  asio::awaitable<int> MemberList(replicator::Client& client) {
    auto r = co_await client.Status();
    if (absl::IsPermissionDenied(r.status())) co_return Denied("member list", r.status());
    if (!r.ok()) {
      fmt::print(stderr, "replicator: member list failed: {}\n",
                 std::string(r.status().message()));
      co_return kUsage;
    }
    auto config_of = [&](const std::string& cluster) -> const replicator::Configuration* {
      for (const auto& c : r->configurations) {
        if (c.cluster == cluster) return &c;
      }
      return nullptr;
    };
    size_t cluster_width = 7;
    for (const auto& m : r->members) cluster_width = std::max(cluster_width, m.cluster.size());
    fmt::print("{:<{}}  {:<5}  {:<7}  {:<8}  {:<52}  {}\n", "CLUSTER", cluster_width, "EPOCH",
               "ROLE", "LIVENESS", "PEER ID", "ADDRESS");
    for (const auto& m : r->members) {
      const replicator::Configuration* c = config_of(m.cluster);
      const bool voter =
          c != nullptr && std::find(c->voters.begin(), c->voters.end(), m.id) != c->voters.end();
      const std::string epoch = c != nullptr ? std::to_string(c->epoch) : "-";
      const char* liveness = m.state == "down" ? "down" : "up";
      const char* role = c != nullptr && c->removed != 0 ? "removed" : voter ? "voter" : "learner";
      fmt::print("{:<{}}  {:<5}  {:<7}  {:<8}  {:<52}  {}\n", m.cluster, cluster_width, epoch, role,
                 liveness, m.id, m.address);
    }
    co_return kOk;
  }

  // member promote|remove PEER_ID: waits for the new configuration.
  asio::awaitable<int> MemberChange(replicator::Client& client) {
    const std::string sub = args[1];
    const std::string peer = args[2];
    // Named locals and one co_await per statement (see docs/design.md,
    // "Implementation notes": g++ 12 and temporaries across co_await).
    absl::StatusOr<replicator::MemberChangeResult> r =
        absl::UnknownError("no membership change was asked");
    if (args[0] == "cluster") {
      std::string target = peer;
      r = co_await client.RemoveCluster(std::move(target));
    } else if (sub == "promote") {
      std::string target = peer;
      r = co_await client.PromoteMember(std::move(target));
    } else {
      std::string target = peer;
      r = co_await client.RemoveMember(std::move(target), force);
    }
    if (absl::IsPermissionDenied(r.status())) co_return Denied(args[0] + " " + sub, r.status());
    if (!r.ok()) {
      fmt::print(stderr,
                 "replicator: {} {} failed: {}; list the members to see whether it "
                 "was applied\n",
                 args[0], sub, std::string(r.status().message()));
      co_return kUnavailable;
    }
    using K = replicator::MemberChangeResult::Kind;
    switch (r->kind) {
      case K::kOk:
        if (args[0] == "cluster") {
          fmt::print(
              "Cluster {} removed from the federation at generation {} (last epoch {}, "
              "voters {})\n",
              peer, r->config.removed, r->config.epoch, fmt::join(r->config.voters, ","));
          co_return kOk;
        }
        fmt::print("Member {} {} cluster {}: epoch {}, voters {}\n", peer,
                   sub == "promote" ? "promoted in" : "removed from", r->config.cluster,
                   r->config.epoch, fmt::join(r->config.voters, ","));
        co_return kOk;
      case K::kInvalidArgument:
        co_return InvalidArgument(r->message);
      case K::kBusy:
        fmt::print(stderr, "busy: {}\n", r->message);
        co_return kConflict;
      case K::kUnavailable:
        co_return Unavailable(r->message);
    }
    co_return kUsage;
  }

  asio::awaitable<int> Status(replicator::Client& client) {
    auto r = co_await client.Status();
    if (absl::IsPermissionDenied(r.status())) co_return Denied("status", r.status());
    if (!r.ok()) {
      fmt::print(stderr, "replicator: status failed: {}\n", std::string(r.status().message()));
      co_return kUsage;
    }
    const replicator::NodeStatus& s = *r;
    if (absl::GetFlag(FLAGS_json)) {
      fmt::print("{}\n", replicator::StatusJson(s));
      co_return kOk;
    }
    fmt::print("node      {} (cluster {}, {}, {})\n", s.self.id, s.self.cluster, s.self.address,
               s.self.state);
    fmt::print("keys      {} committed, {} reserved{}\n", s.committed_keys, s.reservations,
               s.shards > 1 ? fmt::format(", in {} shards", s.shards) : "");
    fmt::print(
        "puts      {} ok, {} key exists, {} conflict, {} unavailable, {} invalid, {} outcome "
        "unknown\n",
        s.puts_ok, s.puts_key_exists, s.puts_conflict, s.puts_unavailable, s.puts_invalid,
        s.puts_outcome_unknown);
    fmt::print("          {} attempts retried after a race, {} joined an identical put\n",
               s.put_retries, s.puts_joined);
    fmt::print("gets      {}\n", s.gets);
    fmt::print("batched   {} putMany/getMany calls carried {} puts and gets\n", s.batched_calls,
               s.batched_items);
    fmt::print("catch-up  {} rounds, {} keys pulled\n", s.catchup_rounds, s.catchup_keys_pulled);
    fmt::print("storage   {} writes ({} mutations) in {} group commits, {} fsyncs\n",
               s.storage_writes, s.storage_mutations, s.storage_batches, s.storage_syncs);
    if (s.storage_write_errors || s.storage_writes_refused) {
      fmt::print("STORAGE ERRORS {} failed group commits, {} writes refused\n",
                 s.storage_write_errors, s.storage_writes_refused);
    }
    if (!s.configurations.empty() && s.configurations.front().cluster == s.self.cluster) {
      const replicator::Configuration& c = s.configurations.front();
      fmt::print(
          "config    epoch {} of cluster {}: {} voters; {} changes made here, {} requests "
          "refused for another epoch\n",
          c.epoch, c.cluster, c.voters.size(), s.config_changes, s.stale_epoch_refusals);
      if (c.removed != 0) {
        fmt::print(
            "REMOVED   cluster {} was removed from the federation at generation {}: this "
            "node serves nothing; stop it\n",
            c.cluster, c.removed);
      }
    } else {
      fmt::print("config    cluster {} is not founded yet\n", s.self.cluster);
    }
    if (s.federation_generation > 0) {
      const uint64_t own = !s.configurations.empty() ? s.configurations.front().generation : 0;
      fmt::print(
          "federation generation {} (cluster {} founded {}); {}; {} reserves refused for "
          "a lower generation\n",
          s.federation_generation, s.self.cluster,
          own == 0 ? std::string("at an unknown generation") : fmt::format("at generation {}", own),
          s.federation_settled ? "settled"
                               : "still catching up with the federation (linearizable "
                                 "gets are refused)",
          s.generation_refusals);
    }
    fmt::print("uptime    {:.1f} s\n", s.uptime_ms / 1000.0);
    fmt::print("security  {}\n", s.insecure
                                     ? "INSECURE (--insecure: plaintext, nobody authenticated)"
                                     : "TLS 1.3, peers and clients authenticated");
    if (s.safety_violations) fmt::print("SAFETY VIOLATIONS {}\n", s.safety_violations);
    std::string cluster;
    for (const auto& m : s.members) {
      if (m.cluster != cluster) {
        cluster = m.cluster;
        fmt::print("cluster {}\n", cluster);
      }
      fmt::print("  {}  {:<21}  {}{}\n", m.id, m.address, m.state,
                 m.id == s.self.id ? "  (this node)" : "");
    }
    co_return kOk;
  }
};

// replicator cert create-ca|create-node|create-client: files in --certs-dir.
int CertCommand(const std::vector<std::string>& args) {
  namespace node = replicator::node;
  const std::string sub = args.size() >= 2 ? args[1] : "";
  const std::string dir = absl::GetFlag(FLAGS_certs_dir);
  const bool overwrite = absl::GetFlag(FLAGS_overwrite);
  const std::string ca_key = absl::GetFlag(FLAGS_ca_key);
  if (sub != "create-ca" && sub != "create-node" && sub != "create-client") {
    return Usage("cert takes a subcommand: create-ca, create-node or create-client NAME");
  }
  if (dir.empty()) return Usage(fmt::format("cert {} needs --certs-dir=DIR", sub));
  auto failed = [&](const absl::Status& s) {
    fmt::print(stderr, "replicator: cert {}: {}\n", sub, std::string(s.message()));
    return kUsage;
  };
  if (sub == "create-ca") {
    if (args.size() != 2) return Usage("cert create-ca takes no operands");
    if (absl::Status s = node::CreateCaFiles(dir, overwrite); !s.ok()) return failed(s);
    fmt::print("created {}/ca.crt and {}/ca.key (keep ca.key off the nodes)\n", dir, dir);
    return kOk;
  }
  if (sub == "create-node") {
    if (args.size() != 2) return Usage("cert create-node takes no operands");
    const std::string data_dir = absl::GetFlag(FLAGS_data_dir);
    if (data_dir.empty()) {
      return Usage(
          "cert create-node needs --data-dir=DATA_DIR: the certificate is for the node's "
          "identity key, DATA_DIR/identity.key (created if the data dir has none)");
    }
    auto peer = node::CreateNodeFiles(dir, ca_key, data_dir, overwrite);
    if (!peer.ok()) return failed(peer.status());
    fmt::print("created {}/node.crt and {}/node.key for peer {} (identity of {})\n", dir, dir,
               *peer, data_dir);
    return kOk;
  }
  if (args.size() != 3) return Usage("cert create-client takes NAME");
  const std::string role_name = absl::GetFlag(FLAGS_role);
  if (role_name != "read" && role_name != "write" && role_name != "admin") {
    return Usage(
        fmt::format("cert create-client needs --role=read|write|admin, not '{}'", role_name));
  }
  auto role = replicator::net::ParseRole(role_name);
  if (!role.ok()) return failed(role.status());
  if (absl::Status s = node::CreateClientFiles(dir, ca_key, args[2], *role, overwrite); !s.ok()) {
    return failed(s);
  }
  fmt::print("created {}/{} and {}/{} (role {})\n", dir, node::ClientCertFile(args[2]), dir,
             node::ClientKeyFile(args[2]), role_name);
  return kOk;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsageText);
  replicator::util::PrintHelpIfAsked(
      argc, argv, kUsageText, __FILE__,
      {{"Connection", {"config", "node", "timeout_ms"}},
       {"Security", {"certs_dir", "user", "ca", "cert", "key", "insecure"}},
       {"cert", {"ca_key", "data_dir", "role", "overwrite"}},
       {"put and get", {"value_file", "consistency"}},
       {"status", {"json"}},
       {"member", {"force"}}});
  replicator::util::ConfigFileArgs with_config(argc, argv);
  if (!with_config.ok()) return Usage(std::string(with_config.status().message()));
  replicator::util::DashedFlags dashed(with_config.argc(), with_config.argv());
  std::vector<char*> positional = absl::ParseCommandLine(dashed.argc(), dashed.argv());
  std::vector<std::string> args(positional.begin() + 1, positional.end());
  if (!args.empty() && args[0] == "cert") return CertCommand(args);
  std::string node = absl::GetFlag(FLAGS_node);
  if (node.empty()) return Usage("--node=HOST:PORT is required");
  if (args.empty()) return Usage("missing command: put, get, status, member, cluster or cert");
  const std::string& verb = args[0];
  std::string value_file = absl::GetFlag(FLAGS_value_file);
  std::string value;
  if (verb == "put") {
    if (!value_file.empty()) {
      if (args.size() != 2) return Usage("put with --value-file takes only KEY");
      std::stringstream buffer;
      if (value_file == "-") {
        buffer << std::cin.rdbuf();
      } else {
        std::ifstream in(value_file, std::ios::binary);
        if (!in) return Usage(fmt::format("cannot read --value-file {}", value_file));
        buffer << in.rdbuf();
      }
      value = buffer.str();
    } else {
      if (args.size() != 3) return Usage("put takes KEY VALUE (or KEY --value-file=PATH)");
      value = args[2];
    }
  } else if (verb == "get") {
    if (args.size() != 2) return Usage("get takes KEY");
  } else if (verb == "status") {
    if (args.size() != 1) return Usage("status takes no operands");
  } else if (verb == "member") {
    const std::string sub = args.size() >= 2 ? args[1] : "";
    if (sub == "list") {
      if (args.size() != 2) return Usage("member list takes no operands");
    } else if (sub == "promote" || sub == "remove") {
      if (args.size() != 3) return Usage(fmt::format("member {} takes PEER_ID", sub));
    } else {
      return Usage("member takes a subcommand: list, promote PEER_ID or remove PEER_ID");
    }
    if (absl::GetFlag(FLAGS_force) && sub != "remove") {
      return Usage("--force applies to member remove only");
    }
  } else if (verb == "cluster") {
    if (args.size() != 3 || args[1] != "remove") return Usage("cluster takes: remove CLUSTER_ID");
    if (absl::GetFlag(FLAGS_force)) return Usage("--force applies to member remove only");
  } else {
    return Usage(fmt::format("unknown command '{}'", verb));
  }
  if (absl::GetFlag(FLAGS_json) && verb != "status") return Usage("--json applies to status only");
  replicator::Consistency consistency = replicator::Consistency::kLocal;
  std::string c = absl::GetFlag(FLAGS_consistency);
  if (c == "linearizable") {
    consistency = replicator::Consistency::kLinearizable;
  } else if (c != "local") {
    return Usage(fmt::format("--consistency must be local or linearizable, not '{}'", c));
  }
  int64_t timeout = absl::GetFlag(FLAGS_timeout_ms).value.count();
  if (timeout <= 0) return Usage("--timeout-ms must be positive");

  std::string user = absl::GetFlag(FLAGS_user);
  if (absl::Status s = replicator::node::ValidateClientName(user); !s.ok()) {
    return Usage(fmt::format("--user: {}", std::string(s.message())));
  }
  replicator::node::TlsFlags tls_flags{absl::GetFlag(FLAGS_ca), absl::GetFlag(FLAGS_cert),
                                       absl::GetFlag(FLAGS_key), absl::GetFlag(FLAGS_certs_dir),
                                       absl::GetFlag(FLAGS_insecure)};
  auto tls_paths =
      replicator::node::ResolveTlsPaths(tls_flags, replicator::node::TlsHolder::Client(user));
  if (!tls_paths.ok()) return Usage(std::string(tls_paths.status().message()));
  std::shared_ptr<const replicator::net::TlsContext> tls;
  if (tls_paths->has_value()) {
    auto pem = replicator::node::ReadTlsFiles(**tls_paths);
    if (!pem.ok()) return Usage(std::string(pem.status().message()));
    auto context = replicator::net::TlsContext::Create({pem->ca, pem->cert, pem->key});
    if (!context.ok()) {
      fmt::print(stderr, "replicator: TLS: {} (ca {}, cert {}, key {})\n",
                 std::string(context.status().message()), (*tls_paths)->ca, (*tls_paths)->cert,
                 (*tls_paths)->key);
      return kUsage;
    }
    tls = *std::move(context);
  }

  replicator::net::Reactor reactor;
  Command command{reactor, node, args, value, consistency, absl::GetFlag(FLAGS_force), {}, kUsage};
  command.options.connect_timeout = std::chrono::milliseconds(std::min<int64_t>(timeout, 5000));
  command.options.call_timeout = std::chrono::milliseconds(timeout);
  command.options.tls = std::move(tls);
  command.options.on_put_retry = [](const absl::Status& failure, int attempt) {
    fmt::print(stderr, "replicator: put attempt {} failed ({}); retrying with the same request id\n",
               attempt - 1, std::string(failure.message()));
  };
  asio::co_spawn(reactor.io(), command.Run(), asio::detached);
  reactor.Run();
  return command.exit_code;
}
