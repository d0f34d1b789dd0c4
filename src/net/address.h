// Addresses as operators write them: "host:port" where host is an IPv4 literal, a bracketed
// IPv6 literal ("[::1]:7000") or a host name ("db-1.example:7000"), resolved through Asio's
// resolver when a connection is made. A listen address may be a name too: it is resolved once,
// at start, and the server binds the first address (ResolveListenEndpoint). Pure functions,
// except ResolveEndpoints and ResolveListenEndpoint, which run on the caller's io_context.
//
//   auto hp = net::SplitHostPort("[::1]:7000");        // {"::1", 7000}
//   auto eps = co_await net::ResolveEndpoints(io, "localhost:7000", 1s);
#pragma once

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace replicator::net {

struct HostPort {
  std::string host;  // without brackets
  uint16_t port = 0;
};

// Splits "host:port" by its syntax alone: host is non-empty, an IPv6 literal is in brackets,
// a name has only letters, digits, '-', '.' and '_'; port is 0..65535. Fails with
// InvalidArgument naming the input.
absl::StatusOr<HostPort> SplitHostPort(std::string_view host_port);

// The address a node tells others (member map, directory entries): `advertise` if given (a
// host name or literal with a non-zero port), else the listen address (a node listening on a
// name, or on port 0, then advertises the address and port it bound). Fails with
// InvalidArgument for a malformed address, or if the listen host is unspecified (0.0.0.0, [::])
// and no advertise is given: no other machine could dial what the node would advertise.
absl::StatusOr<std::string> AdvertisedAddress(std::string_view listen, std::string_view advertise);

// The endpoints of `host_port`: an IP literal at once, a name (localhost too) through Asio's
// resolver (getaddrinfo), IPv4 and IPv6 answers in the resolver's order. InvalidArgument for
// a malformed address; Unavailable naming it if the name does not resolve within `timeout`.
asio::awaitable<absl::StatusOr<std::vector<asio::ip::tcp::endpoint>>> ResolveEndpoints(
    asio::io_context& io, std::string host_port, std::chrono::milliseconds timeout);

// The one endpoint a server asked to listen on `host_port` binds: an IP literal or
// "localhost" (127.0.0.1) as net/rpc.h ParseEndpoint reads them, without a lookup; any other
// name through ResolveEndpoints, and then its first address (getaddrinfo's order of
// preference, the order in which a client dialing the name tries them). InvalidArgument for a
// malformed address; Unavailable naming the host if the name does not resolve within
// `timeout`.
asio::awaitable<absl::StatusOr<asio::ip::tcp::endpoint>> ResolveListenEndpoint(
    asio::io_context& io, std::string host_port, std::chrono::milliseconds timeout);

}  // namespace replicator::net
