// Addresses: host:port syntax with names and bracketed IPv6, the advertised address and its
// refusal of an unspecified listen host, and resolution through Asio's resolver (of a listen
// address too: literals at once, a name to its first address).
#include "net/address.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <tuple>

#include "net/reactor.h"
#include "test_util.h"

namespace replicator::net {
namespace {

TEST(SplitHostPortTest, AcceptsLiteralsNamesAndBracketedIpv6) {
  const struct {
    const char* input;
    const char* host;
    uint16_t port;
  } cases[] = {{"127.0.0.1:7000", "127.0.0.1", 7000},         {"localhost:7001", "localhost", 7001},
               {"db-1.example.com:0", "db-1.example.com", 0}, {"[::1]:9", "::1", 9},
               {"[fe80::1]:65535", "fe80::1", 65535},         {"node_2:80", "node_2", 80}};
  for (const auto& c : cases) {
    auto split = SplitHostPort(c.input);
    ASSERT_TRUE(split.ok()) << c.input << ": " << split.status();
    EXPECT_EQ(split->host, c.host) << c.input;
    EXPECT_EQ(split->port, c.port) << c.input;
  }
}

TEST(SplitHostPortTest, RejectsMalformedAddressesNamingThem) {
  for (const std::string input :
       {"", "localhost", "host:", ":80", "host:65536", "host:http", "::1:80", "[::1]", "[::1:80",
        "[zz]:80", "[]:80", "ho st:80", "host/x:80", "[127.0.0.1]:80", "host:-1"}) {
    auto split = SplitHostPort(input);
    EXPECT_EQ(split.status().code(), absl::StatusCode::kInvalidArgument) << input;
    EXPECT_NE(split.status().message().find("\"" + input + "\""), std::string::npos)
        << split.status();
  }
}

TEST(AdvertisedAddressTest, DefaultsToListenAndTakesAdvertise) {
  const struct {
    const char* listen;
    const char* advertise;
    const char* want;
  } cases[] = {{"127.0.0.1:7000", "", "127.0.0.1:7000"},
               {"127.0.0.1:0", "", "127.0.0.1:0"},
               {"[::1]:7000", "", "[::1]:7000"},
               {"0.0.0.0:7000", "10.0.0.5:7000", "10.0.0.5:7000"},
               {"[::]:7000", "db-1.example:7000", "db-1.example:7000"},
               {"0.0.0.0:0", "[2001:db8::1]:7100", "[2001:db8::1]:7100"},
               {"db-1.example:7000", "", "db-1.example:7000"}};  // a listen name is resolved later
  for (const auto& c : cases) {
    auto address = AdvertisedAddress(c.listen, c.advertise);
    ASSERT_TRUE(address.ok()) << c.listen << " " << c.advertise << ": " << address.status();
    EXPECT_EQ(*address, c.want);
  }
}

TEST(AdvertisedAddressTest, RefusesWhatNoOtherMachineCouldDial) {
  const struct {
    const char* listen;
    const char* advertise;
    const char* want;
  } cases[] = {
      {"0.0.0.0:7000", "", "give --advertise=HOST:PORT"},
      {"[::]:7000", "", "give --advertise=HOST:PORT"},
      {"0.0.0.0:7000", "0.0.0.0:7000", "unspecified address"},
      {"0.0.0.0:7000", "10.0.0.5:0", "not 0"},
      {"0.0.0.0:7000", "10.0.0.5", "missing :PORT"},
      {"example.com", "", "invalid address \"example.com\""},
  };
  for (const auto& c : cases) {
    auto address = AdvertisedAddress(c.listen, c.advertise);
    ASSERT_FALSE(address.ok()) << c.listen << " " << c.advertise;
    EXPECT_EQ(address.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(address.status().message().find(c.want), std::string::npos) << address.status();
  }
}

asio::awaitable<void> ResolveSome(Reactor* reactor_ptr) {
  Reactor& reactor = *reactor_ptr;
  {
    auto v6 = co_await ResolveEndpoints(reactor.io(), "[::1]:7000", std::chrono::seconds(5));
    EXPECT_TRUE(v6.ok()) << v6.status();
    if (v6.ok()) {
      EXPECT_EQ(v6->size(), 1u);
      EXPECT_EQ(v6->front(), asio::ip::tcp::endpoint(asio::ip::address_v6::loopback(), 7000));
    }
    // localhost is a name: the resolver (/etc/hosts) says 127.0.0.1, perhaps ::1 too.
    auto local = co_await ResolveEndpoints(reactor.io(), "localhost:7001", std::chrono::seconds(5));
    EXPECT_TRUE(local.ok()) << local.status();
    if (local.ok()) {
      asio::ip::tcp::endpoint want(asio::ip::address_v4::loopback(), 7001);
      EXPECT_NE(std::find(local->begin(), local->end(), want), local->end());
    }
    auto malformed = co_await ResolveEndpoints(reactor.io(), "localhost", std::chrono::seconds(5));
    EXPECT_EQ(malformed.status().code(), absl::StatusCode::kInvalidArgument);
    auto unknown = co_await ResolveEndpoints(reactor.io(), "no-such-host.invalid:7000",
                                             std::chrono::seconds(5));
    EXPECT_EQ(unknown.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_NE(unknown.status().message().find("cannot resolve no-such-host.invalid"),
              std::string::npos)
        << unknown.status();
  }
}

TEST(ResolveEndpointsTest, LiteralsAtOnceNamesThroughTheResolver) {
  Reactor reactor;
  testing::RunToCompletion(reactor, ResolveSome(&reactor));
}

// The addresses /etc/hosts gives each name other than localhost.
std::map<std::string, std::vector<asio::ip::address>> HostsFileNames() {
  std::map<std::string, std::vector<asio::ip::address>> names;
  std::ifstream hosts("/etc/hosts");
  std::string line;
  while (std::getline(hosts, line)) {
    line = line.substr(0, line.find('#'));
    std::istringstream fields(line);
    std::string ip, name;
    if (!(fields >> ip)) continue;
    std::error_code not_ip;
    asio::ip::address address = asio::ip::make_address(ip, not_ip);
    if (not_ip) continue;
    while (fields >> name) {
      if (name != "localhost" && SplitHostPort(name + ":0").ok()) names[name].push_back(address);
    }
  }
  return names;
}

asio::awaitable<void> ResolveListenSome(Reactor* reactor_ptr, std::string name,
                                        std::vector<asio::ip::address> addresses) {
  Reactor& reactor = *reactor_ptr;
  const auto timeout = std::chrono::seconds(5);
  {
    // Literals and localhost without a lookup.
    auto v4 = co_await ResolveListenEndpoint(reactor.io(), "127.0.0.1:7000", timeout);
    EXPECT_TRUE(v4.ok() && *v4 == asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 7000))
        << v4.status();
    auto v6 = co_await ResolveListenEndpoint(reactor.io(), "[::1]:0", timeout);
    EXPECT_TRUE(v6.ok() && *v6 == asio::ip::tcp::endpoint(asio::ip::address_v6::loopback(), 0))
        << v6.status();
    auto local = co_await ResolveListenEndpoint(reactor.io(), "localhost:0", timeout);
    EXPECT_TRUE(local.ok() &&
                *local == asio::ip::tcp::endpoint(asio::ip::address_v4::loopback(), 0))
        << local.status();
    // A name through the resolver: one of the addresses /etc/hosts gives it.
    if (!name.empty()) {
      auto named = co_await ResolveListenEndpoint(reactor.io(), name + ":7002", timeout);
      EXPECT_TRUE(named.ok()) << name << ": " << named.status();
      if (named.ok()) {
        EXPECT_EQ(named->port(), 7002);
        EXPECT_NE(std::find(addresses.begin(), addresses.end(), named->address()), addresses.end())
            << name << " resolved to " << named->address().to_string();
      }
    }
    auto unknown =
        co_await ResolveListenEndpoint(reactor.io(), "no-such-host.invalid:7000", timeout);
    EXPECT_EQ(unknown.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_NE(unknown.status().message().find("cannot resolve no-such-host.invalid"),
              std::string::npos)
        << unknown.status();
    auto malformed = co_await ResolveListenEndpoint(reactor.io(), "db-1.example:", timeout);
    EXPECT_EQ(malformed.status().code(), absl::StatusCode::kInvalidArgument) << malformed.status();
  }
}

TEST(ResolveListenEndpointTest, LiteralsAtOnceANameToItsFirstAddress) {
  auto names = HostsFileNames();
  std::string name;
  std::vector<asio::ip::address> addresses;
  if (!names.empty()) std::tie(name, addresses) = *names.begin();
  if (name.empty()) {
    std::cerr << "no name but localhost in /etc/hosts: the resolver case is not run\n";
  }
  Reactor reactor;
  testing::RunToCompletion(reactor, ResolveListenSome(&reactor, name, addresses));
}

}  // namespace
}  // namespace replicator::net
