#pragma once

#include <memory>
#include <string>

#include <caf/error.hpp>

namespace keel::node {

class node;

/// The HTTP API of a node (cpp-httplib): routes, bearer-token checks,
/// per-customer rate limit, load shedding, bounded connections and bodies,
/// timeouts of slow and idle clients, one structured log line per request.
/// Lifecycle: `listen` binds and serves on a thread of its own; `stop`
/// refuses new connections, lets in-flight requests finish and joins.
class http_api {
public:
  explicit http_api(node& n);
  ~http_api();

  /// Binds `host:port` (port 0: any free port) and starts serving.
  caf::error listen(const std::string& host, int port);

  /// The bound port (after `listen`).
  int port() const noexcept;

  void stop();

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

} // namespace keel::node
