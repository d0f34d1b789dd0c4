// LocalDeployment: a multi-cluster Replicator deployment of real replicatord
// processes on 127.0.0.1, for the replicator-local launcher and integration
// tests. Every process it starts is stopped by its PID when it is destroyed.
// Single-threaded; not for use from a reactor (it blocks while waiting).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace replicator::node {

// Where and how one node runs, for nodes not on 127.0.0.1 (e.g. each in its
// own network namespace).
struct NodePlacement {
  // Put before the replicatord command line, e.g. {"/usr/sbin/ip", "netns",
  // "exec", "NS"}. It must exec the node, so that the PID is the node's.
  std::vector<std::string> command_prefix;
  std::string listen = "127.0.0.1:0";  // --listen at first start
};

struct DeploymentOptions {
  int clusters = 3;
  int nodes_per_cluster = 3;
  std::string replicatord;  // path to the replicatord binary
  std::string root_dir;     // data dirs and logs go under it; created
  std::string storage = "memory";
  std::vector<std::string> extra_flags;  // passed to every node
  // Flags for single nodes, by index (e.g. a failpoint on one coordinator).
  std::map<size_t, std::vector<std::string>> node_flags;
  // Placements of single nodes, by index; the others run on 127.0.0.1.
  std::map<size_t, NodePlacement> node_placement;
  std::chrono::milliseconds start_timeout{15000};
  // Plaintext nodes (--insecure). Otherwise Start creates a throw-away CA
  // in certs_dir() with it a certificate per node (DATA_DIR/certs) and the
  // client certificate client.root (role admin) beside the CA.
  bool insecure = false;
  // With a CA of one's own: a directory holding ca.crt and ca.key. Node
  // certificates are issued from it, and client.root (admin) is created in
  // it unless there; certs_dir() is then this directory. Empty: a new CA.
  std::string ca_dir;
};

class LocalDeployment {
 public:
  struct NodeProcess {
    std::string cluster;
    std::string data_dir;
    std::string log_path;
    std::string address;  // "127.0.0.1:PORT" once started
    pid_t pid = -1;       // -1 when not running
  };

  // Starts every node: the first node of the first cluster starts the
  // federation; each other joins through the first three nodes
  // (--bootstrap, a list: any of them can introduce it).
  static absl::StatusOr<std::unique_ptr<LocalDeployment>> Start(DeploymentOptions options);
  ~LocalDeployment();  // stops every node

  const std::vector<NodeProcess>& nodes() const { return nodes_; }
  // ROOT_DIR/certs (or DeploymentOptions::ca_dir): ca.crt, ca.key and
  // client.root.crt/.key (role admin),
  // for `replicator --certs-dir=...` and for issuing more certificates.
  // Empty when insecure.
  std::string certs_dir() const;
  // The flags a client passes to reach these nodes: --certs-dir=certs_dir(),
  // or --insecure.
  std::vector<std::string> ClientFlags() const;
  const std::string& bootstrap_address() const { return nodes_[0].address; }
  std::vector<std::string> ClusterIds() const;

  // SIGKILL, then reap.
  void Kill(size_t index);
  // SIGSTOP / SIGCONT: the node freezes as in a long GC pause or a VM stall,
  // its sockets open but silent, and later goes on where it was.
  void Pause(size_t index);
  void Resume(size_t index);
  // Restarts a stopped node with its data dir (it keeps its peer id) and the
  // address it had.
  absl::Status Restart(size_t index);
  // Starts one more node in `cluster` (joining through the first three
  // nodes, whichever answers); returns its index.
  absl::StatusOr<size_t> AddNode(const std::string& cluster,
                                 std::vector<std::string> flags = {});
  // SIGTERM every node (continuing paused ones); SIGKILL what is left after
  // `grace`.
  void StopAll(std::chrono::milliseconds grace = std::chrono::milliseconds(3000));
  // Waits up to `bound` for node `index` to exit on its own; true if it did
  // (it is then reaped and marked stopped).
  bool WaitForExit(size_t index, std::chrono::milliseconds bound);
  // The first node (by index) that exited on its own, if any.
  std::optional<size_t> Exited();
  // AddNode, the new node placed as `placement` says.
  absl::StatusOr<size_t> AddNode(const std::string& cluster, std::vector<std::string> flags,
                                 NodePlacement placement);

 private:
  explicit LocalDeployment(DeploymentOptions options) : options_(std::move(options)) {}
  // `listen` unless the node is placed and starts for the first time.
  absl::Status Launch(size_t index, std::string listen);
  // DATA_DIR/certs with ca.crt, node.crt and node.key, unless it has them.
  absl::Status EnsureNodeCertificate(const NodeProcess& p);

  DeploymentOptions options_;
  std::vector<NodeProcess> nodes_;
};

// The directory of the running executable (where replicatord sits beside the
// launcher, the bench and the tests' binaries).
std::string ExecutableDir();

// Runs `argv` to completion with a time bound; captures stdout and stderr.
struct CommandResult {
  int exit_code = -1;  // -1: killed at the time bound or by a signal
  std::string out;
  std::string err;
};
CommandResult RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                         const std::string& stdin_data = "");

}  // namespace replicator::node
