#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/error.hpp>

namespace keel::runtime {

/// One request as the API's handlers see it: method, path split into
/// percent-decoded segments, query parameters, headers and the whole body
/// (at most `http_limits::max_body` bytes; it was read before the handler
/// ran).
struct http_request {
  std::string method;
  /// The raw path ("/v1/orders/a%2Fb"), for logs and metrics.
  std::string path;
  /// The path's segments, percent-decoded: {"v1", "orders", "a/b"}.
  std::vector<std::string> segments;
  std::vector<std::pair<std::string, std::string>> params;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string remote_addr;
  /// Set by the handler for metrics and the access log: the route's name,
  /// the order and the token's subject.
  std::string route;
  std::string order_id;
  std::string subject;
  /// A cluster: the request came from another node, which routed it to
  /// this one as the owner of `slot` with fencing token `token`.
  bool forwarded = false;
  std::uint32_t slot = 0;
  std::int64_t token = 0;

  /// The value of header `name` (case-insensitive), or "".
  std::string header(std::string_view name) const;
  /// The value of query parameter `name`, or nothing.
  std::optional<std::string> param(std::string_view name) const;
};

/// A handler's answer.
struct http_response {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  /// Close the connection after this answer.
  bool close = false;

  void set_header(std::string name, std::string value) {
    headers.emplace_back(std::move(name), std::move(value));
  }
};

/// What one client may cost the server. Every limit is enforced while the
/// request is read, before any byte of it is buffered beyond the limit and
/// before the handler (and so authentication) runs.
struct http_limits {
  /// Largest body, whatever its framing (Content-Length or chunked); a
  /// request without either has no body. Larger: 413, connection closed.
  std::size_t max_body = 64 * 1024;
  /// Longest request target and longest header line (name + value): 414 / 431.
  std::size_t max_line = 8 * 1024;
  /// Largest request line plus header block: 431.
  std::size_t max_header_block = 16 * 1024;
  /// Most header fields in one request: 431.
  std::size_t max_headers = 100;
  /// The whole request (headers and body) must arrive within this time of
  /// its first byte (first request: of the connection's accept); else the
  /// connection is closed.
  std::chrono::milliseconds request_deadline{5000};
  /// A keep-alive connection idle this long between requests is closed.
  std::chrono::milliseconds idle_timeout{5000};
  /// Time to write one answer.
  std::chrono::milliseconds write_timeout{5000};
  /// Requests on one connection before the server closes it.
  std::size_t max_requests_per_connection = 10000;
  /// Open connections; beyond, new ones are closed at once (counted).
  std::size_t max_connections = 4096;
  /// Open connections from one client address; 0: no limit.
  std::size_t max_connections_per_address = 1024;
  /// Handler threads (requests served at once) and complete requests that
  /// may wait for one; beyond, 503 `overloaded` at once.
  std::size_t workers = 64;
  std::size_t queue = 256;
  /// Threads that accept, read and write (reading is asynchronous: an idle or
  /// trickling connection holds no thread).
  std::size_t io_threads = 1;
};

/// Counters of the server (monotonic, except `open_connections`).
struct http_server_stats {
  std::uint64_t open_connections = 0;
  /// Connections closed at accept: over `max_connections` or the per-address cap.
  std::uint64_t refused_connections = 0;
  /// Requests closed for missing the request deadline or the idle limit.
  std::uint64_t timed_out = 0;
  /// Requests refused while read: 400, 413, 414, 415, 431.
  std::uint64_t rejected = 0;
  /// Complete requests answered 503 because workers and queue were full.
  std::uint64_t shed = 0;
};

/// A small HTTP/1.1 server (Boost.Beast) with the limits of `http_limits`:
/// asynchronous reads and writes on `io_threads`, handlers on a bounded pool
/// of worker threads (they may block). Thread-safe; handlers run
/// concurrently. Lifecycle: `listen` binds and serves; `stop` closes the
/// listener and idle connections, lets requests in handlers finish and
/// answer, then joins every thread.
class http_server {
public:
  /// Serves one request; runs on a worker thread.
  using handler = std::function<void(http_request&, http_response&)>;
  /// Called once per answered request with its duration (seconds): after
  /// the handler on its worker, or on an I/O thread for requests the server
  /// refused itself (`req.method` may then be empty).
  using completion = std::function<void(const http_request&, const http_response&, double)>;
  /// Builds the body of an answer the server gives itself (status, code, message).
  using error_renderer = std::function<std::string(int, const std::string&, const std::string&)>;

  http_server(http_limits limits, handler h, completion done, error_renderer render);
  ~http_server();

  http_server(const http_server&) = delete;
  http_server& operator=(const http_server&) = delete;

  /// Binds `host:port` (0: any free port) and starts serving.
  caf::error listen(const std::string& host, int port);

  /// The bound port (after `listen`).
  int port() const noexcept;

  http_server_stats stats() const;

  /// See the class comment; idempotent.
  void stop();

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

/// Percent-decodes `text` ("+" stays "+"); nothing when an escape is not two hex digits.
std::optional<std::string> percent_decode(std::string_view text);

} // namespace keel::runtime
