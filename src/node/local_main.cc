// replicator-local: starts a local multi-cluster deployment on loopback
// (default 3 clusters x 3 nodes), prints each node's address and a ready to
// paste example, and stops every node on Ctrl-C or SIGTERM.
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "fmt/format.h"
#include "node/local_deployment.h"
#include "util/dashed_flags.h"
#include "util/help.h"

ABSL_FLAG(int, clusters, 3, "Number of clusters.");
ABSL_FLAG(int, nodes, 3, "Nodes per cluster (3 or more for puts to succeed).");
ABSL_FLAG(std::string, dir, "",
          "Directory for data dirs and logs (default: a new directory under /tmp).");
ABSL_FLAG(std::string, storage, "rocksdb", "rocksdb or memory.");
ABSL_FLAG(bool, insecure, false,
          "Start the nodes with --insecure (plaintext, nobody authenticated). By default the "
          "launcher creates a throw-away CA in DIR/certs, a certificate per node and an admin "
          "client certificate (client.root), and every connection is TLS 1.3.");
ABSL_FLAG(std::string, certs_dir, "",
          "Use the CA in this directory (ca.crt, ca.key; see `replicator cert create-ca`) "
          "instead of a throw-away one: node certificates are issued from it, and the admin "
          "client certificate client.root is created in it unless there.");

int main(int argc, char** argv) {
  constexpr char kUsage[] =
      "replicator-local: starts a local Replicator deployment, prints its addresses and runs "
      "until Ctrl-C.\n  replicator-local [--clusters=3] [--nodes=3] [--dir=DIR] [--insecure]";
  absl::SetProgramUsageMessage(kUsage);
  replicator::util::PrintHelpIfAsked(argc, argv, kUsage, __FILE__,
                                     {{"Deployment", {"clusters", "nodes", "dir", "storage"}},
                                      {"Security", {"certs_dir", "insecure"}}});
  replicator::util::DashedFlags dashed(argc, argv);
  absl::ParseCommandLine(dashed.argc(), dashed.argv());
  replicator::node::DeploymentOptions options;
  options.clusters = absl::GetFlag(FLAGS_clusters);
  options.nodes_per_cluster = absl::GetFlag(FLAGS_nodes);
  options.storage = absl::GetFlag(FLAGS_storage);
  options.replicatord = replicator::node::ExecutableDir() + "/replicatord";
  options.root_dir = absl::GetFlag(FLAGS_dir);
  options.insecure = absl::GetFlag(FLAGS_insecure);
  options.ca_dir = absl::GetFlag(FLAGS_certs_dir);
  if (options.insecure && !options.ca_dir.empty()) {
    fmt::print(stderr, "replicator-local: --insecure cannot be combined with --certs-dir\n");
    return 1;
  }
  if (options.clusters < 1 || options.clusters > 26 || options.nodes_per_cluster < 1 ||
      options.nodes_per_cluster > 50) {
    fmt::print(stderr, "replicator-local: --clusters must be 1..26 and --nodes 1..50\n");
    return 1;
  }
  if (options.root_dir.empty()) {
    char tmpl[] = "/tmp/replicator-local-XXXXXX";
    if (!::mkdtemp(tmpl)) {
      fmt::print(stderr, "replicator-local: mkdtemp: {}\n", strerror(errno));
      return 1;
    }
    options.root_dir = tmpl;
  }

  // Block the stop signals before any child exists; wait for them below.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  sigprocmask(SIG_BLOCK, &stop, nullptr);

  auto deployment = replicator::node::LocalDeployment::Start(options);
  if (!deployment.ok()) {
    fmt::print(stderr, "replicator-local: {}\n", std::string(deployment.status().message()));
    return 1;
  }
  const auto& nodes = (*deployment)->nodes();
  fmt::print("Replicator: {} clusters x {} nodes, data and logs in {}\n", options.clusters,
             options.nodes_per_cluster, options.root_dir);
  for (const auto& n : nodes) {
    fmt::print("  cluster {}  {}{}\n", n.cluster, n.address,
               &n == &nodes[0] ? "  (started the federation)" : "");
  }
  std::string bin = replicator::node::ExecutableDir();
  const std::string client_flag =
      options.insecure ? std::string("--insecure") : "--certs-dir=" + (*deployment)->certs_dir();
  if (options.insecure) {
    fmt::print("\nWARNING: --insecure: plaintext, no node or client is authenticated.\n");
  } else {
    fmt::print("\nTLS: CA and the admin client certificate (client.root) in {}\n",
               (*deployment)->certs_dir());
  }
  fmt::print("\nTry:\n");
  fmt::print("  {}/replicator {} --node={} put greeting hello\n", bin, client_flag,
             nodes.front().address);
  fmt::print("  {}/replicator {} --node={} get greeting\n", bin, client_flag, nodes.back().address);
  fmt::print("  {}/replicator {} --node={} put greeting again   # key exists: exit 2\n", bin,
             client_flag, nodes.back().address);
  fmt::print("  {}/replicator {} --node={} status\n", bin, client_flag, nodes.front().address);
  fmt::print("\nCtrl-C stops every node.\n");
  std::fflush(stdout);

  int exit_code = 0;
  while (true) {
    timespec tick{0, 200'000'000};
    int sig = sigtimedwait(&stop, nullptr, &tick);
    if (sig == SIGINT || sig == SIGTERM) break;
    if (auto exited = (*deployment)->Exited()) {
      fmt::print(stderr, "replicator-local: node {} exited; see {}\n", *exited,
                 nodes[*exited].log_path);
      exit_code = 1;
      break;
    }
  }
  fmt::print("stopping {} nodes\n", nodes.size());
  std::fflush(stdout);
  (*deployment)->StopAll();
  return exit_code;
}
