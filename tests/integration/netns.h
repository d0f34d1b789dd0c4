// NamespaceNet: hosts in network namespaces of their own, on one bridge in
// the root namespace, for integration tests that cut the network between
// real processes. Host i has the address 10.X.Y.(i+1) on a /24 that no route
// or address of this machine overlaps; the root namespace is 10.X.Y.254 on
// the bridge, so a CLI run from it reaches every host. Cut(a, b) adds
// blackhole routes both ways (a new connection fails at once, an open one
// goes silent); Heal removes them. iproute2 only (`ip netns`, veth, bridge,
// routes): no tc, no nft.
//
// Names carry the PID and a per-process serial (namespaces rpn<PID>x<N>,
// links rpv.../rpb...), so parallel test processes never collide; the
// destructor deletes every namespace and link it made, and Create first
// deletes the namespaces (and their bridges) of test processes that died
// without cleaning up, killing any node left running in them. Stop every process running in a
// namespace before destroying the NamespaceNet.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "node/local_deployment.h"

namespace replicator {

class NamespaceNet {
 public:
  // Unavailable (the caller should skip) if network namespaces cannot be
  // used here: not root, no `ip`, or `ip netns add` fails. Any other
  // failure is an error.
  static absl::StatusOr<std::unique_ptr<NamespaceNet>> Create(size_t hosts) {
    if (::geteuid() != 0) {
      return absl::UnavailableError("network namespaces need root (run the test as root)");
    }
    std::string ip;
    for (const char* candidate : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
      if (::access(candidate, X_OK) == 0) {
        ip = candidate;
        break;
      }
    }
    if (ip.empty()) return absl::UnavailableError("iproute2's `ip` is not installed");
    std::unique_ptr<NamespaceNet> net(new NamespaceNet(ip));
    net->SweepStale();
    // Probe first: without namespaces there is nothing to clean up.
    const std::string probe = net->NewName("rpn");
    if (absl::Status s = net->Ip({"netns", "add", probe}); !s.ok()) {
      return absl::UnavailableError(absl::StrCat("`ip netns add` fails here: ", s.message()));
    }
    net->namespaces_.push_back(probe);  // host 0's namespace
    if (absl::Status s = net->MakeBridge(); !s.ok()) return s;
    for (size_t i = 0; i < hosts; ++i) {
      if (absl::StatusOr<size_t> h = net->AddHost(); !h.ok()) return h.status();
    }
    return net;
  }

  ~NamespaceNet() {
    // Deleting a namespace would delete its veth pair too, but only once
    // the kernel gets round to destroying the namespace: delete the pairs
    // first, at once.
    for (const std::string& veth : veths_) Ip({"link", "del", veth}).IgnoreError();
    for (const std::string& ns : namespaces_) Ip({"netns", "del", ns}).IgnoreError();
    if (!bridge_.empty()) Ip({"link", "del", bridge_}).IgnoreError();
  }
  NamespaceNet(const NamespaceNet&) = delete;
  NamespaceNet& operator=(const NamespaceNet&) = delete;

  // One more host on the bridge; returns its index.
  absl::StatusOr<size_t> AddHost() {
    const size_t host = hosts_;
    if (host >= 253) return absl::ResourceExhaustedError("a /24 holds 253 hosts");
    if (namespaces_.size() == host) {
      std::string ns = NewName("rpn");
      if (absl::Status s = Ip({"netns", "add", ns}); !s.ok()) return s;
      namespaces_.push_back(ns);
    }
    const std::string& ns = namespaces_[host];
    const std::string veth = NewName("rpv");
    // The namespace's end is created in it as eth0; the root end joins the
    // bridge.
    if (absl::Status s =
            Ip({"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns});
        !s.ok()) {
      return s;
    }
    veths_.push_back(veth);
    for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
             {"link", "set", veth, "master", bridge_, "up"},
             {"-n", ns, "addr", "add", ip(host) + "/24", "dev", "eth0"},
             {"-n", ns, "link", "set", "eth0", "up"},
             {"-n", ns, "link", "set", "lo", "up"}}) {
      if (absl::Status s = Ip(args); !s.ok()) return s;
    }
    ++hosts_;
    return host;
  }

  size_t size() const { return hosts_; }
  const std::string& ns(size_t host) const { return namespaces_[host]; }
  std::string ip(size_t host) const { return absl::StrCat(subnet_, host + 1); }
  std::string root_ip() const { return absl::StrCat(subnet_, 254); }

  // Runs a node in `host`: `ip netns exec NS replicatord ...` execs, so the
  // PID LocalDeployment keeps is the node's.
  node::NodePlacement Placement(size_t host, int port = 7000) const {
    node::NodePlacement p;
    p.command_prefix = {ip_, "netns", "exec", ns(host)};
    p.listen = absl::StrCat(ip(host), ":", port);
    return p;
  }

  // No packet between hosts a and b, either way, until healed.
  absl::Status Cut(size_t a, size_t b) {
    for (auto [from, to] : {std::pair{a, b}, std::pair{b, a}}) {
      if (cuts_.count({from, to})) continue;
      if (absl::Status s = Ip({"-n", ns(from), "route", "add", "blackhole", ip(to) + "/32"});
          !s.ok()) {
        return s;
      }
      cuts_.insert({from, to});
    }
    return absl::OkStatus();
  }
  // Cuts every host of `one` from every host of `other`.
  absl::Status Partition(const std::vector<size_t>& one, const std::vector<size_t>& other) {
    for (size_t a : one) {
      for (size_t b : other) {
        if (absl::Status s = Cut(a, b); !s.ok()) return s;
      }
    }
    return absl::OkStatus();
  }
  // Removes every cut.
  absl::Status HealAll() {
    absl::Status status;
    for (auto [from, to] : cuts_) {
      status.Update(Ip({"-n", ns(from), "route", "del", "blackhole", ip(to) + "/32"}));
    }
    cuts_.clear();
    return status;
  }

  // Every namespace's addresses and routes, for a failure message.
  std::string Describe() const {
    std::string out = absl::StrCat("bridge ", bridge_, ", root ", root_ip(), "\n");
    for (size_t h = 0; h < hosts_; ++h) {
      node::CommandResult r = node::RunCommand({ip_, "-n", ns(h), "-4", "route"}, kIpTimeout);
      absl::StrAppend(&out, "host ", h, " ", ns(h), " ", ip(h), ":\n", r.out, r.err);
    }
    return out;
  }

 private:
  static constexpr std::chrono::milliseconds kIpTimeout{10000};
  static constexpr const char* kLockPath = "/tmp/replicator-netns.lock";

  explicit NamespaceNet(std::string ip) : ip_(std::move(ip)) {}

  // "<prefix><PID>x<serial>": at most 3 + 7 + 1 + 4 characters, within
  // IFNAMSIZ for links.
  static std::string NewName(const std::string& prefix) {
    static std::atomic<int> serial{0};
    return absl::StrCat(prefix, ::getpid(), "x", serial++);
  }

  absl::Status Ip(std::vector<std::string> args) const {
    args.insert(args.begin(), ip_);
    node::CommandResult r = node::RunCommand(args, kIpTimeout);
    if (r.exit_code == 0) return absl::OkStatus();
    return absl::InternalError(
        absl::StrCat(absl::StrJoin(args, " "), " exited ", r.exit_code, ": ", r.err));
  }

  // The PID in a name this class made ("rpn1234x5" -> 1234), or 0.
  static pid_t PidIn(absl::string_view name, absl::string_view prefix) {
    if (!absl::ConsumePrefix(&name, prefix)) return 0;
    size_t x = name.find('x');
    int pid = 0;
    if (x == absl::string_view::npos || !absl::SimpleAtoi(name.substr(0, x), &pid)) return 0;
    return pid;
  }
  static bool Dead(pid_t pid) { return pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH; }

  // Deletes the namespaces of test processes that are gone, and the
  // bridges of those processes (only theirs: a bridge is deleted only if a
  // dead process's namespace proves the PID was one of ours).
  void SweepStale() const {
    node::CommandResult list = node::RunCommand({ip_, "netns", "list"}, kIpTimeout);
    std::set<pid_t> dead;
    for (absl::string_view line : absl::StrSplit(list.out, '\n', absl::SkipEmpty())) {
      std::string name(line.substr(0, line.find(' ')));
      pid_t pid = PidIn(name, "rpn");
      if (!Dead(pid)) continue;
      dead.insert(pid);
      // A node left in it (one paused when its test was killed ignores the
      // SIGTERM its parent's death sent) is killed first, by its PID.
      node::CommandResult pids = node::RunCommand({ip_, "netns", "pids", name}, kIpTimeout);
      for (absl::string_view p : absl::StrSplit(pids.out, '\n', absl::SkipEmpty())) {
        int left = 0;
        if (absl::SimpleAtoi(p, &left) && left > 1) ::kill(left, SIGKILL);
      }
      Ip({"netns", "del", name}).IgnoreError();
    }
    if (dead.empty()) return;
    node::CommandResult links =
        node::RunCommand({ip_, "-o", "link", "show", "type", "bridge"}, kIpTimeout);
    for (absl::string_view line : absl::StrSplit(links.out, '\n', absl::SkipEmpty())) {
      std::vector<std::string> cols = absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (cols.size() < 2) continue;
      std::string name(absl::StripSuffix(cols[1], ":"));
      if (dead.count(PidIn(name, "rpb"))) Ip({"link", "del", name}).IgnoreError();
    }
  }

  // Every IPv4 network (address or prefix) any route or address of the root
  // namespace names, as (first, last) addresses.
  std::vector<std::pair<uint32_t, uint32_t>> UsedNetworks() const {
    std::vector<std::pair<uint32_t, uint32_t>> used;
    for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
             {ip_, "-4", "route", "show", "table", "all"}, {ip_, "-4", "-o", "addr", "show"}}) {
      node::CommandResult r = node::RunCommand(args, kIpTimeout);
      for (absl::string_view token : absl::StrSplit(r.out, absl::ByAnyChar(" \n\t"))) {
        std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(token, '/');
        std::vector<std::string> octets = absl::StrSplit(parts.first, '.');
        if (octets.size() != 4) continue;
        uint32_t address = 0;
        bool ok = true;
        for (const std::string& o : octets) {
          int v = -1;
          ok = ok && absl::SimpleAtoi(o, &v) && v >= 0 && v <= 255;
          address = (address << 8) | static_cast<uint32_t>(v & 0xff);
        }
        int len = 32;
        if (!parts.second.empty()) ok = ok && absl::SimpleAtoi(parts.second, &len);
        // Broad routes (a default route spelled 0.0.0.0/0, say) overlap
        // everything; a /24 inside them hijacks nothing that matters.
        if (!ok || len < 8 || len > 32) continue;
        uint32_t mask = len == 32 ? 0xffffffffu : ~(0xffffffffu >> len);
        used.emplace_back(address & mask, (address & mask) | ~mask);
      }
    }
    return used;
  }

  // Picks a free 10.X.Y.0/24 (X in 200..249) and gives it to a new bridge,
  // under a lock so that two test processes never pick the same one.
  absl::Status MakeBridge() {
    int lock = ::open(kLockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (lock < 0) return absl::InternalError(absl::StrCat("cannot open ", kLockPath));
    ::flock(lock, LOCK_EX);
    absl::Status status = [&]() -> absl::Status {
      std::vector<std::pair<uint32_t, uint32_t>> used = UsedNetworks();
      constexpr uint32_t kSubnets = 50 * 256;
      const uint32_t start = static_cast<uint32_t>(::getpid()) % kSubnets;
      for (uint32_t i = 0; i < kSubnets; ++i) {
        uint32_t n = (start + i) % kSubnets;
        uint32_t first = (10u << 24) | ((200 + n / 256) << 16) | ((n % 256) << 8);
        uint32_t last = first | 0xff;
        bool overlaps = std::any_of(used.begin(), used.end(), [&](const auto& u) {
          return u.first <= last && first <= u.second;
        });
        if (overlaps) continue;
        subnet_ = absl::StrCat("10.", 200 + n / 256, ".", n % 256, ".");
        break;
      }
      if (subnet_.empty()) return absl::UnavailableError("no free 10.x.y.0/24 on this machine");
      bridge_ = NewName("rpb");
      if (absl::Status s = Ip({"link", "add", bridge_, "type", "bridge"}); !s.ok()) {
        bridge_.clear();
        return s;
      }
      if (absl::Status s = Ip({"addr", "add", root_ip() + "/24", "dev", bridge_}); !s.ok()) {
        return s;
      }
      return Ip({"link", "set", bridge_, "up"});
    }();
    ::flock(lock, LOCK_UN);
    ::close(lock);
    return status;
  }

  std::string ip_;                       // the `ip` binary
  std::string subnet_;                   // "10.X.Y."
  std::string bridge_;                   // in the root namespace
  std::vector<std::string> namespaces_;  // by host (one more once probed)
  std::vector<std::string> veths_;       // root ends, by host
  size_t hosts_ = 0;
  std::set<std::pair<size_t, size_t>> cuts_;  // (from, to): a blackhole route in `from`
};

}  // namespace replicator
