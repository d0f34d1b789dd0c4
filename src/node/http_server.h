// HttpServer: a minimal, strict HTTP/1.1 server for GET (and HEAD) on the
// node's reactor, for /metrics and /healthz. One request per connection
// (answered with `Connection: close`); a request head over kMaxRequestBytes
// gets 431, one not complete within kRequestTimeout is dropped, another
// method 405, a malformed one 400, at most kMaxConnections at once. The
// handler runs on the reactor thread, so it may read reactor-only state.
// Lives on the reactor thread; destroy it before the reactor.
//
//   auto server = HttpServer::Listen(io, "127.0.0.1:9100",
//                                    [](std::string_view path) { return HttpResponse{...}; });
#pragma once

#include <asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace replicator::node {

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

// `path` is the request target without its query string. Not called once
// the server is destroyed.
using HttpHandler = std::function<HttpResponse(std::string_view path)>;

class HttpServer {
 public:
  static constexpr size_t kMaxRequestBytes = 8192;
  static constexpr std::chrono::seconds kRequestTimeout{5};
  static constexpr size_t kMaxConnections = 64;

  // Listens on `host_port` (port 0 picks a free one). Errors name the address.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Listen(asio::io_context& io,
                                                            std::string_view host_port,
                                                            HttpHandler handler);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // "host:port" as bound.
  const std::string& address() const { return address_; }

  struct State;

 private:
  HttpServer(std::shared_ptr<State> state, std::string address);
  std::shared_ptr<State> state_;
  std::string address_;
};

}  // namespace replicator::node
