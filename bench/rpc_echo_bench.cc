// rpc-echo-bench: the cost of the transport alone, plaintext against TLS 1.3. One process, two
// reactor threads on loopback (server and client, as two nodes would use the two cores):
// `Node.echo` of a payload at each concurrency, calls/s and latency percentiles.
//
//   build/bin/rpc-echo-bench                       # plain and tls, concurrency 1 and 64, 5 s
//   build/bin/rpc-echo-bench --modes=tls --concurrency=64 --duration=10s --payload=100
//
// Certificates are made in memory at start (a throw-away CA, a node and a client certificate).
#include <sys/resource.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/time/time.h"
#include "fmt/format.h"
#include "net/bridge.h"
#include "net/certs.h"
#include "net/reactor.h"
#include "net/rpc.h"
#include "net/tls.h"
#include "schema/replicator.capnp.h"

ABSL_FLAG(std::vector<std::string>, modes, std::vector<std::string>({"plain", "tls"}),
          "Comma-separated: plain, tls.");
ABSL_FLAG(std::vector<std::string>, concurrency, std::vector<std::string>({"1", "64"}),
          "Comma-separated calls in flight, one run each.");
ABSL_FLAG(absl::Duration, duration, absl::Seconds(5), "Timed phase of each run.");
ABSL_FLAG(absl::Duration, warmup, absl::Seconds(1), "Untimed calls before each run.");
ABSL_FLAG(int, payload, 100, "Echo payload bytes.");
ABSL_FLAG(int, repeat, 1,
          "Rounds over all modes and concurrencies (interleaved, for noisy hosts).");

namespace replicator {
namespace {

using Clock = std::chrono::steady_clock;

class EchoNode final : public wire::Node::Server {
 public:
  kj::Promise<void> echo(EchoContext context) override {
    context.getResults().setPayload(context.getParams().getPayload());
    return kj::READY_NOW;
  }
};

struct Certificates {
  std::shared_ptr<const net::TlsContext> server;
  std::shared_ptr<const net::TlsContext> client;
};

Certificates MakeCertificates() {
  auto ca = net::CreateCa("rpc-echo-bench");
  auto issue = [&](std::string name, net::Role role) {
    auto key = net::CreateEd25519Key();
    net::CertificateRequest request;
    request.subject_public_key = key->private_key_pem;
    request.common_name = std::move(name);
    request.role = role;
    auto cert = net::CreateCertificate(ca->cert_pem, ca->key_pem, request);
    if (!cert.ok()) {
      std::fprintf(stderr, "%s\n", std::string(cert.status().message()).c_str());
      std::exit(1);
    }
    net::TlsConfig config;
    config.ca_cert_pem = ca->cert_pem;
    config.cert_chain_pem = *cert;
    config.key_pem = key->private_key_pem;
    auto context = net::TlsContext::Create(config);
    if (!context.ok()) {
      std::fprintf(stderr, "%s\n", std::string(context.status().message()).c_str());
      std::exit(1);
    }
    return *context;
  };
  return Certificates{issue("12D3KooWBenchNode", net::Role::kNode),
                      issue("bench", net::Role::kWrite)};
}

// The server: its own reactor thread until Stop().
class ServerThread {
 public:
  explicit ServerThread(std::shared_ptr<const net::TlsContext> tls) {
    std::promise<std::string> address;
    auto ready = address.get_future();
    thread_ = std::thread([this, tls, &address] {
      net::Reactor reactor;
      reactor_ = &reactor;
      auto server = net::RpcServer::Listen(
          reactor, "127.0.0.1:0",
          [](const net::PeerCertificate*) -> capnp::Capability::Client {
            return kj::heap<EchoNode>();
          },
          tls);
      if (!server.ok()) {
        std::fprintf(stderr, "%s\n", std::string(server.status().message()).c_str());
        std::exit(1);
      }
      address.set_value((*server)->address());
      reactor.Run();
      server->reset();
    });
    address_ = ready.get();
  }
  ~ServerThread() {
    reactor_.load()->Stop();
    thread_.join();
  }
  const std::string& address() const { return address_; }

 private:
  std::thread thread_;
  std::atomic<net::Reactor*> reactor_{nullptr};
  std::string address_;
};

struct Run {
  uint64_t calls = 0;      // answered within the timed phase
  uint64_t all_calls = 0;  // warm-up included
  uint64_t errors = 0;
  double seconds = 0;
  std::vector<uint32_t> latencies_ns;
};

asio::awaitable<void> Worker(wire::Node::Client node, std::string payload, Clock::time_point start,
                             Clock::time_point end, Run* run, int* running) {
  for (;;) {
    Clock::time_point sent = Clock::now();
    if (sent >= end) break;
    auto request = node.echoRequest();
    request.setPayload(
        kj::arrayPtr(reinterpret_cast<const kj::byte*>(payload.data()), payload.size()));
    auto reply = co_await net::AwaitWithin(request.send(), std::chrono::milliseconds(10000));
    Clock::time_point answered = Clock::now();
    if (!reply.ok() || reply->getPayload().size() != payload.size()) {
      ++run->errors;
      continue;
    }
    ++run->all_calls;
    if (sent >= start && answered <= end) {
      ++run->calls;
      run->latencies_ns.push_back(static_cast<uint32_t>(
          std::min<int64_t>(UINT32_MAX, std::chrono::nanoseconds(answered - sent).count())));
    }
  }
  --*running;
}

asio::awaitable<void> Measure(net::Reactor* reactor, std::string address,
                              std::shared_ptr<const net::TlsContext> tls, int concurrency,
                              Run* run) {
  auto connection =
      co_await net::RpcConnection::Connect(*reactor, address, std::chrono::seconds(10), tls);
  if (!connection.ok()) {
    std::fprintf(stderr, "%s\n", std::string(connection.status().message()).c_str());
    std::exit(1);
  }
  auto node = (*connection)->Bootstrap<wire::Node>();
  std::string payload(absl::GetFlag(FLAGS_payload), 'p');
  auto warmup = absl::ToChronoNanoseconds(absl::GetFlag(FLAGS_warmup));
  auto duration = absl::ToChronoNanoseconds(absl::GetFlag(FLAGS_duration));
  Clock::time_point start = Clock::now() + warmup;
  Clock::time_point end = start + duration;
  run->seconds = std::chrono::duration<double>(duration).count();
  int running = concurrency;
  for (int i = 0; i < concurrency; ++i) {
    asio::co_spawn(reactor->io(), Worker(node, payload, start, end, run, &running), asio::detached);
  }
  // Keep the connection until every worker is done.
  while (running > 0) {
    asio::steady_timer timer(reactor->io(), std::chrono::milliseconds(20));
    co_await timer.async_wait(asio::use_awaitable);
  }
  connection->reset();
  reactor->Stop();
}

// CPU seconds this process used so far (both reactor threads, user and system).
double CpuSeconds() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double Percentile(std::vector<uint32_t>& values, double p) {
  if (values.empty()) return 0;
  size_t index = std::min(values.size() - 1, static_cast<size_t>(p * values.size()));
  std::nth_element(values.begin(), values.begin() + static_cast<ptrdiff_t>(index), values.end());
  return values[index] / 1000.0;
}

}  // namespace
}  // namespace replicator

int main(int argc, char** argv) {
  using namespace replicator;
  absl::SetProgramUsageMessage("Echo round trips, plaintext against TLS 1.3, on loopback.");
  absl::ParseCommandLine(argc, argv);
  Certificates certificates = MakeCertificates();
  std::printf("%-6s %12s %12s %10s %10s %10s %12s %8s\n", "mode", "concurrency", "calls/s",
              "p50 us", "p99 us", "p99.9 us", "cpu us/call", "errors");
  for (int round = 0; round < absl::GetFlag(FLAGS_repeat); ++round) {
    for (const std::string& mode : absl::GetFlag(FLAGS_modes)) {
      if (mode != "plain" && mode != "tls") {
        std::fprintf(stderr, "--modes: unknown mode %s (plain, tls)\n", mode.c_str());
        return 1;
      }
      for (const std::string& c : absl::GetFlag(FLAGS_concurrency)) {
        int concurrency = std::atoi(c.c_str());
        if (concurrency <= 0) {
          std::fprintf(stderr, "--concurrency: %s is not a positive number\n", c.c_str());
          return 1;
        }
        ServerThread server(mode == "tls" ? certificates.server : nullptr);
        Run run;
        double cpu_before = CpuSeconds();
        {
          net::Reactor reactor;
          asio::co_spawn(reactor.io(),
                         Measure(&reactor, server.address(),
                                 mode == "tls" ? certificates.client : nullptr, concurrency, &run),
                         asio::detached);
          reactor.Run();
        }
        // Server and client threads, for every call, warm-up included.
        double cpu = CpuSeconds() - cpu_before;
        double all_calls = static_cast<double>(run.all_calls);
        std::printf("%-6s %12d %12.0f %10.1f %10.1f %10.1f %12.2f %8llu\n", mode.c_str(),
                    concurrency, run.calls / run.seconds, Percentile(run.latencies_ns, 0.5),
                    Percentile(run.latencies_ns, 0.99), Percentile(run.latencies_ns, 0.999),
                    all_calls > 0 ? cpu / all_calls * 1e6 : 0.0,
                    static_cast<unsigned long long>(run.errors));
        std::fflush(stdout);
      }
    }
  }
  return 0;
}
