#include "net/address.h"

#include <fmt/format.h>

#include <asio/experimental/deferred.hpp>
#include <asio/experimental/parallel_group.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <charconv>

#include "absl/strings/ascii.h"
#include "net/rpc.h"

namespace replicator::net {
namespace {

absl::Status BadAddress(std::string_view host_port, std::string_view reason) {
  return absl::InvalidArgumentError(
      fmt::format("invalid address \"{}\": {} (expected HOST:PORT, e.g. 10.0.0.1:7000, "
                  "db-1.example:7000 or [::1]:7000)",
                  host_port, reason));
}

bool NameChar(char c) { return absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_'; }

}  // namespace

absl::StatusOr<HostPort> SplitHostPort(std::string_view host_port) {
  if (host_port.empty()) return BadAddress(host_port, "empty");
  std::string_view host;
  std::string_view port_text;
  bool bracketed = false;
  if (host_port.front() == '[') {
    size_t close = host_port.find(']');
    if (close == std::string_view::npos) return BadAddress(host_port, "missing ']'");
    host = host_port.substr(1, close - 1);
    std::string_view rest = host_port.substr(close + 1);
    if (rest.empty() || rest.front() != ':') return BadAddress(host_port, "missing :PORT");
    port_text = rest.substr(1);
    bracketed = true;
  } else {
    size_t colon = host_port.rfind(':');
    if (colon == std::string_view::npos) return BadAddress(host_port, "missing :PORT");
    host = host_port.substr(0, colon);
    port_text = host_port.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return BadAddress(host_port, "an IPv6 host must be in brackets");
    }
  }
  if (host.empty()) return BadAddress(host_port, "missing host");
  if (port_text.empty()) return BadAddress(host_port, "missing port");
  unsigned port = 0;
  auto [end, error] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (error != std::errc() || end != port_text.data() + port_text.size() || port > 65535) {
    return BadAddress(host_port, "port must be a number in 0..65535");
  }
  if (bracketed) {
    std::error_code parse_error;
    asio::ip::make_address_v6(std::string(host), parse_error);
    if (parse_error) return BadAddress(host_port, "host in brackets is not an IPv6 literal");
  } else {
    for (char c : host) {
      if (!NameChar(c)) return BadAddress(host_port, "host is not an IP literal or a host name");
    }
  }
  return HostPort{std::string(host), static_cast<uint16_t>(port)};
}

absl::StatusOr<std::string> AdvertisedAddress(std::string_view listen, std::string_view advertise) {
  auto listen_split = SplitHostPort(listen);
  if (!listen_split.ok()) return listen_split.status();
  // Only a literal can be unspecified; a name is resolved when the node starts.
  auto listen_literal = ParseEndpoint(listen);
  if (!advertise.empty()) {
    auto split = SplitHostPort(advertise);
    if (!split.ok()) return split.status();
    if (split->port == 0) {
      return absl::InvalidArgumentError(
          fmt::format("--advertise={} needs the port others dial, not 0", advertise));
    }
    if (auto literal = ParseEndpoint(advertise);
        literal.ok() && literal->address().is_unspecified()) {
      return absl::InvalidArgumentError(fmt::format(
          "--advertise={} is an unspecified address, which no other machine can dial", advertise));
    }
    return std::string(advertise);
  }
  if (listen_literal.ok() && listen_literal->address().is_unspecified()) {
    return absl::InvalidArgumentError(
        fmt::format("--listen={} serves on every interface but says none to dial: give "
                    "--advertise=HOST:PORT, the address other nodes and clients reach this node at",
                    listen));
  }
  return std::string(listen);
}

asio::awaitable<absl::StatusOr<std::vector<asio::ip::tcp::endpoint>>> ResolveEndpoints(
    asio::io_context& io, std::string host_port, std::chrono::milliseconds timeout) {
  auto split = SplitHostPort(host_port);
  if (!split.ok()) co_return split.status();
  std::error_code not_literal;
  asio::ip::address literal = asio::ip::make_address(split->host, not_literal);
  if (!not_literal) co_return std::vector<asio::ip::tcp::endpoint>{{literal, split->port}};
  asio::ip::tcp::resolver resolver(io);
  asio::steady_timer timer(io, timeout);
  auto [order, resolve_error, results, timer_error] =
      co_await asio::experimental::make_parallel_group(
          resolver.async_resolve(split->host, std::to_string(split->port),
                                 asio::ip::resolver_base::numeric_service,
                                 asio::experimental::deferred),
          timer.async_wait(asio::experimental::deferred))
          .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
  (void)timer_error;
  if (order[0] == 1) {
    co_return absl::UnavailableError(
        fmt::format("cannot resolve {}: no answer within {} ms", split->host, timeout.count()));
  }
  if (resolve_error) {
    co_return absl::UnavailableError(
        fmt::format("cannot resolve {}: {}", split->host, resolve_error.message()));
  }
  std::vector<asio::ip::tcp::endpoint> endpoints;
  for (const auto& entry : results) endpoints.push_back(entry.endpoint());
  if (endpoints.empty()) {
    co_return absl::UnavailableError(fmt::format("cannot resolve {}: no addresses", split->host));
  }
  co_return endpoints;
}

asio::awaitable<absl::StatusOr<asio::ip::tcp::endpoint>> ResolveListenEndpoint(
    asio::io_context& io, std::string host_port, std::chrono::milliseconds timeout) {
  if (auto literal = ParseEndpoint(host_port); literal.ok()) co_return *literal;
  auto endpoints = co_await ResolveEndpoints(io, host_port, timeout);
  if (!endpoints.ok()) co_return endpoints.status();
  co_return endpoints->front();  // ResolveEndpoints never answers an empty list
}

}  // namespace replicator::net
