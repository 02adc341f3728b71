#pragma once

#include <memory>
#include <string>

#include <caf/error.hpp>

#include "cluster_link.hpp"
#include "http_server.hpp"

namespace keel::runtime {

class node;

/// The HTTP API of a node on `http_server`: routes, bearer-token checks,
/// rate limits (per customer, per address for reads, failed authentications
/// and the operations endpoints), one structured log line per request
/// (warn lines for 5xx at most 20 per second).
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

  /// The server's connection counters.
  http_server_stats stats() const;

  void stop();

  /// Serves a request another node of the cluster forwarded here (no rate
  /// limits: the node it reached took them; the token is checked again).
  forwarded_answer serve_forwarded(const forwarded_call& call);

  struct impl;

private:
  std::unique_ptr<impl> impl_;
};

} // namespace keel::runtime
