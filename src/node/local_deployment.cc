#include "node/local_deployment.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "node/tls_files.h"

namespace replicator::node {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string Tail(const std::string& text, size_t bytes) {
  return text.size() <= bytes ? text : text.substr(text.size() - bytes);
}

// fork + exec with stdin from /dev/null and stdout/stderr appended to `log`.
absl::StatusOr<pid_t> Spawn(const std::vector<std::string>& argv, const std::string& log) {
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot open ", log, ": ", strerror(errno)));
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fd);
    return absl::InternalError(absl::StrCat("fork: ", strerror(errno)));
  }
  if (pid == 0) {
    // The launcher blocks SIGINT/SIGTERM to wait for them; a node must not
    // inherit that mask, or it could never be stopped gracefully.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // A node outlives no launcher, bench or test that died without stopping
    // it (a crash, a SIGKILL): it gets SIGTERM when its parent goes.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() == 1) _exit(1);  // the parent is already gone
    int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, 0);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::execv(args[0], args.data());
    dprintf(2, "exec %s: %s\n", args[0], strerror(errno));
    _exit(127);
  }
  ::close(fd);
  return pid;
}

// Reaps `pid` if it exited; true if it is gone.
bool Reaped(pid_t pid, int* status = nullptr) {
  int s = 0;
  pid_t r = ::waitpid(pid, &s, WNOHANG);
  if (r == pid && status) *status = s;
  return r == pid || (r < 0 && errno == ECHILD);
}

// Waits up to `grace` for `pid` to exit, then SIGKILLs and reaps it.
void StopProcess(pid_t pid, int signal, std::chrono::milliseconds grace) {
  if (pid <= 0) return;
  ::kill(pid, signal);
  auto deadline = Clock::now() + grace;
  while (Clock::now() < deadline) {
    if (Reaped(pid)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

}  // namespace

absl::StatusOr<std::unique_ptr<LocalDeployment>> LocalDeployment::Start(
    DeploymentOptions options) {
  if (options.clusters < 1 || options.nodes_per_cluster < 1) {
    return absl::InvalidArgumentError("a deployment needs at least one cluster of one node");
  }
  std::error_code ec;
  fs::create_directories(options.root_dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", options.root_dir));
  std::unique_ptr<LocalDeployment> d(new LocalDeployment(std::move(options)));
  const DeploymentOptions& o = d->options_;
  if (!o.insecure && o.ca_dir.empty()) {
    if (absl::Status s =
            CreateCaFiles(d->certs_dir(), /*overwrite=*/false, "Replicator local deployment CA");
        !s.ok()) {
      return s;
    }
  }
  if (!o.insecure && !fs::exists(d->certs_dir() + "/" + ClientCertFile("root"), ec)) {
    if (absl::Status s = CreateClientFiles(d->certs_dir(), "", "root", net::Role::kAdmin,
                                           /*overwrite=*/false);
        !s.ok()) {
      return s;
    }
  }
  for (int c = 0; c < o.clusters; ++c) {
    for (int n = 0; n < o.nodes_per_cluster; ++n) {
      NodeProcess p;
      p.cluster = absl::StrCat("c", c + 1);
      std::string name = absl::StrCat(p.cluster, "-n", n + 1);
      p.data_dir = absl::StrCat(o.root_dir, "/", name);
      p.log_path = absl::StrCat(o.root_dir, "/", name, ".log");
      d->nodes_.push_back(std::move(p));
    }
  }
  for (size_t i = 0; i < d->nodes_.size(); ++i) {
    if (absl::Status s = d->Launch(i, "127.0.0.1:0"); !s.ok()) return s;
  }
  return d;
}

LocalDeployment::~LocalDeployment() { StopAll(); }

std::string LocalDeployment::certs_dir() const {
  if (options_.insecure) return std::string();
  return options_.ca_dir.empty() ? options_.root_dir + "/certs" : options_.ca_dir;
}

std::vector<std::string> LocalDeployment::ClientFlags() const {
  if (options_.insecure) return {"--insecure"};
  return {"--certs-dir=" + certs_dir()};
}

absl::Status LocalDeployment::EnsureNodeCertificate(const NodeProcess& p) {
  // Each node has its own certs dir, as on separate machines: the CA
  // certificate and its node.crt/node.key (no CA key).
  const std::string dir = p.data_dir + "/certs";
  std::error_code ec;
  if (fs::exists(dir + "/node.crt", ec)) return absl::OkStatus();
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir));
  fs::copy_file(certs_dir() + "/ca.crt", dir + "/ca.crt", fs::copy_options::overwrite_existing, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot copy ca.crt to ", dir));
  auto peer = CreateNodeFiles(dir, certs_dir() + "/ca.key", p.data_dir, /*overwrite=*/false);
  return peer.ok() ? absl::OkStatus() : peer.status();
}

std::vector<std::string> LocalDeployment::ClusterIds() const {
  std::vector<std::string> out;
  for (const NodeProcess& n : nodes_) {
    if (out.empty() || out.back() != n.cluster) out.push_back(n.cluster);
  }
  return out;
}

absl::Status LocalDeployment::Launch(size_t index, std::string listen) {
  NodeProcess& p = nodes_[index];
  auto placed = options_.node_placement.find(index);
  if (placed != options_.node_placement.end() && p.address.empty()) listen = placed->second.listen;
  std::string address_file = p.data_dir + "/address";
  std::error_code ec;
  fs::create_directories(p.data_dir, ec);
  fs::remove(address_file, ec);
  if (!options_.insecure) {
    if (absl::Status s = EnsureNodeCertificate(p); !s.ok()) return s;
  }
  std::vector<std::string> argv = {
      options_.replicatord,
      "--cluster=" + p.cluster,
      "--listen=" + listen,
      "--data-dir=" + p.data_dir,
      "--storage=" + options_.storage,
      "--address-file=" + address_file,
      options_.insecure ? std::string("--insecure") : "--certs-dir=" + p.data_dir + "/certs"};
  // Any member can introduce a new node: give it the first three that have
  // started (the very first node starts the federation with none).
  std::vector<std::string> bootstrap;
  for (size_t j = 0; j < nodes_.size() && j < 3; ++j) {
    if (j != index && !nodes_[j].address.empty()) bootstrap.push_back(nodes_[j].address);
  }
  if (!bootstrap.empty()) argv.push_back("--bootstrap=" + absl::StrJoin(bootstrap, ","));
  for (const std::string& f : options_.extra_flags) argv.push_back(f);
  if (auto it = options_.node_flags.find(index); it != options_.node_flags.end()) {
    for (const std::string& f : it->second) argv.push_back(f);
  }
  if (placed != options_.node_placement.end()) {
    const std::vector<std::string>& prefix = placed->second.command_prefix;
    argv.insert(argv.begin(), prefix.begin(), prefix.end());
  }
  auto pid = Spawn(argv, p.log_path);
  if (!pid.ok()) return pid.status();
  p.pid = *pid;
  auto deadline = Clock::now() + options_.start_timeout;
  while (Clock::now() < deadline) {
    std::string address = ReadFile(address_file);
    if (!address.empty() && address.back() == '\n') {
      p.address = address.substr(0, address.size() - 1);
      return absl::OkStatus();
    }
    int status = 0;
    if (Reaped(p.pid, &status)) {
      p.pid = -1;
      return absl::InternalError(absl::StrCat("node ", index, " (", absl::StrJoin(argv, " "),
                                              ") exited at start:\n",
                                              Tail(ReadFile(p.log_path), 2000)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  StopProcess(p.pid, SIGKILL, std::chrono::milliseconds(0));
  p.pid = -1;
  return absl::DeadlineExceededError(absl::StrCat("node ", index, " did not start serving:\n",
                                                  Tail(ReadFile(p.log_path), 2000)));
}

absl::StatusOr<size_t> LocalDeployment::AddNode(const std::string& cluster,
                                                std::vector<std::string> flags) {
  size_t index = nodes_.size();
  size_t in_cluster = 0;
  for (const NodeProcess& n : nodes_) in_cluster += n.cluster == cluster;
  NodeProcess p;
  p.cluster = cluster;
  std::string name = absl::StrCat(cluster, "-n", in_cluster + 1);
  p.data_dir = absl::StrCat(options_.root_dir, "/", name);
  p.log_path = absl::StrCat(options_.root_dir, "/", name, ".log");
  nodes_.push_back(std::move(p));
  if (!flags.empty()) options_.node_flags[index] = std::move(flags);
  if (absl::Status s = Launch(index, "127.0.0.1:0"); !s.ok()) return s;
  return index;
}

absl::StatusOr<size_t> LocalDeployment::AddNode(const std::string& cluster,
                                                std::vector<std::string> flags,
                                                NodePlacement placement) {
  options_.node_placement[nodes_.size()] = std::move(placement);
  return AddNode(cluster, std::move(flags));
}

void LocalDeployment::Kill(size_t index) {
  NodeProcess& p = nodes_[index];
  StopProcess(p.pid, SIGKILL, std::chrono::milliseconds(0));
  p.pid = -1;
}

void LocalDeployment::Pause(size_t index) {
  if (nodes_[index].pid > 0) ::kill(nodes_[index].pid, SIGSTOP);
}

void LocalDeployment::Resume(size_t index) {
  if (nodes_[index].pid > 0) ::kill(nodes_[index].pid, SIGCONT);
}

absl::Status LocalDeployment::Restart(size_t index) {
  if (nodes_[index].pid > 0) return absl::FailedPreconditionError("node is running");
  return Launch(index, nodes_[index].address);
}

void LocalDeployment::StopAll(std::chrono::milliseconds grace) {
  for (NodeProcess& p : nodes_) {
    if (p.pid > 0) {
      ::kill(p.pid, SIGTERM);
      ::kill(p.pid, SIGCONT);  // a paused node handles SIGTERM once it runs
    }
  }
  for (NodeProcess& p : nodes_) {
    StopProcess(p.pid, SIGTERM, grace);
    p.pid = -1;
  }
}

bool LocalDeployment::WaitForExit(size_t index, std::chrono::milliseconds bound) {
  NodeProcess& p = nodes_[index];
  if (p.pid <= 0) return true;
  auto deadline = Clock::now() + bound;
  while (Clock::now() < deadline) {
    if (Reaped(p.pid)) {
      p.pid = -1;
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

std::optional<size_t> LocalDeployment::Exited() {
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].pid > 0 && Reaped(nodes_[i].pid)) {
      nodes_[i].pid = -1;
      return i;
    }
  }
  return std::nullopt;
}

std::string ExecutableDir() {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : self.parent_path().string();
}

CommandResult RunCommand(const std::vector<std::string>& argv, std::chrono::milliseconds timeout,
                         const std::string& stdin_data) {
  CommandResult result;
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC)) {
    result.err = "pipe failed";
    return result;
  }
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    ::execv(args[0], args.data());
    dprintf(2, "exec %s: %s\n", args[0], strerror(errno));
    _exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  // Small inputs only: write all of stdin up front, then close it.
  size_t written = 0;
  while (written < stdin_data.size()) {
    ssize_t n = ::write(in[1], stdin_data.data() + written, stdin_data.size() - written);
    if (n <= 0) break;
    written += n;
  }
  ::close(in[1]);
  auto deadline = Clock::now() + timeout;
  pollfd fds[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  bool timed_out = false;
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    if (::poll(fds, 2, static_cast<int>(left.count())) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[65536];
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, n);
      } else {
        ::close(fds[i].fd);
        fds[i].fd = -1;
        --open_fds;
      }
    }
  }
  for (pollfd& f : fds) {
    if (f.fd >= 0) ::close(f.fd);
  }
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exit_code = (!timed_out && WIFEXITED(status)) ? WEXITSTATUS(status) : -1;
  return result;
}

}  // namespace replicator::node
