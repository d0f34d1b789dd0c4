#include "node/http_server.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read_until.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <utility>
#include <vector>

#include "fmt/format.h"
#include "net/rpc.h"

namespace replicator::node {

using asio::ip::tcp;

struct HttpServer::State {
  State(asio::io_context& io, HttpHandler h) : acceptor(io), handler(std::move(h)) {}
  tcp::acceptor acceptor;
  HttpHandler handler;
  bool open = true;
  size_t connections = 0;
};

namespace {

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Error";
  }
}

HttpResponse Plain(int status, std::string body) {
  return HttpResponse{status, "text/plain; charset=utf-8", std::move(body) + "\n"};
}

// Parses the request head and answers it. `head` ends at (excludes) the
// blank line. `head_only` is set for HEAD.
HttpResponse Answer(const HttpServer::State& state, std::string_view head, bool* head_only) {
  std::string_view line = head.substr(0, head.find("\r\n"));
  std::vector<std::string_view> parts;
  for (size_t start = 0;;) {
    size_t space = line.find(' ', start);
    parts.push_back(line.substr(start, space - start));
    if (space == std::string_view::npos) break;
    start = space + 1;
  }
  if (parts.size() != 3 || parts[1].empty() || parts[1].front() != '/') {
    return Plain(400, "malformed request line");
  }
  if (parts[2] != "HTTP/1.1" && parts[2] != "HTTP/1.0") {
    return Plain(505, "only HTTP/1.0 and HTTP/1.1");
  }
  *head_only = parts[0] == "HEAD";
  if (parts[0] != "GET" && parts[0] != "HEAD") {
    HttpResponse r = Plain(405, "only GET and HEAD");
    return r;
  }
  std::string_view path = parts[1].substr(0, parts[1].find('?'));
  return state.handler(path);
}

std::string Render(const HttpResponse& r, bool head_only) {
  std::string out = fmt::format(
      "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n", r.status,
      Reason(r.status), r.content_type, r.body.size());
  if (r.status == 405) out += "Allow: GET, HEAD\r\n";
  out += "\r\n";
  if (!head_only) out += r.body;
  return out;
}

asio::awaitable<void> ServeConnection(std::shared_ptr<HttpServer::State> state,
                                      tcp::socket accepted) {
  // Shared with the deadline's handler, which may run after this frame ends.
  auto owned = std::make_shared<tcp::socket>(std::move(accepted));
  tcp::socket& socket = *owned;
  asio::steady_timer deadline(socket.get_executor(), HttpServer::kRequestTimeout);
  // A client that sends its request too slowly loses the connection.
  deadline.async_wait([owned](asio::error_code ec) {
    if (!ec) {
      asio::error_code ignored;
      owned->close(ignored);
    }
  });
  std::string buffer;
  asio::error_code ec;
  size_t n = co_await asio::async_read_until(
      socket, asio::dynamic_buffer(buffer, HttpServer::kMaxRequestBytes), "\r\n\r\n",
      asio::redirect_error(asio::use_awaitable, ec));
  HttpResponse response;
  bool head_only = false;
  if (ec == asio::error::not_found) {
    response = Plain(431, "request head over 8192 bytes");
  } else if (ec) {
    deadline.cancel();
    --state->connections;
    co_return;  // closed, timed out or reset: nobody to answer
  } else if (!state->open) {
    response = Plain(503, "shutting down");
  } else {
    response = Answer(*state, std::string_view(buffer).substr(0, n - 4), &head_only);
  }
  std::string out = Render(response, head_only);
  co_await asio::async_write(socket, asio::buffer(out),
                             asio::redirect_error(asio::use_awaitable, ec));
  deadline.cancel();
  asio::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
  --state->connections;
}

asio::awaitable<void> AcceptLoop(std::shared_ptr<HttpServer::State> state) {
  for (;;) {
    asio::error_code ec;
    tcp::socket socket =
        co_await state->acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (!state->open) co_return;
    if (ec) {
      if (ec == asio::error::operation_aborted) co_return;
      continue;  // e.g. EMFILE: the next accept may succeed
    }
    if (state->connections >= HttpServer::kMaxConnections) {
      asio::error_code ignored;
      socket.close(ignored);
      continue;
    }
    ++state->connections;
    asio::co_spawn(state->acceptor.get_executor(), ServeConnection(state, std::move(socket)),
                   asio::detached);
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Listen(asio::io_context& io,
                                                               std::string_view host_port,
                                                               HttpHandler handler) {
  auto endpoint = net::ParseEndpoint(host_port);
  if (!endpoint.ok()) return endpoint.status();
  auto state = std::make_shared<State>(io, std::move(handler));
  asio::error_code ec;
  state->acceptor.open(endpoint->protocol(), ec);
  if (!ec) state->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) state->acceptor.bind(*endpoint, ec);
  if (!ec) state->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        fmt::format("cannot serve metrics on {}: {}", host_port, ec.message()));
  }
  std::string address = net::FormatEndpoint(state->acceptor.local_endpoint(ec));
  asio::co_spawn(io, AcceptLoop(state), asio::detached);
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(state), std::move(address)));
}

HttpServer::HttpServer(std::shared_ptr<State> state, std::string address)
    : state_(std::move(state)), address_(std::move(address)) {}

HttpServer::~HttpServer() {
  state_->open = false;
  state_->handler = nullptr;
  asio::error_code ignored;
  state_->acceptor.close(ignored);
}

}  // namespace replicator::node
