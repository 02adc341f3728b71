#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "keel/actors/messages.hpp"
#include "keel/actors/fwd.hpp"
#include "keel/actors/simulated_provider.hpp"
#include "keel/actors/saga.hpp"
#include "cluster_link.hpp"
#include "http_server.hpp"
#include "providers.hpp"
#include "keel/events/commands.hpp"
#include "keel/projections/runner.hpp"
#include "keel/storage/kafka.hpp"

namespace keel::projections {
struct stock_level;
} // namespace keel::projections

namespace keel::storage {
class event_store;
} // namespace keel::storage

namespace keel::runtime {

/// Everything a node is started from (flags and config file of `keel-node run`).
struct node_config {
  /// The event store's directory (created when missing).
  std::string data = "keel-data";
  std::string http_host = "127.0.0.1";
  /// 0: any free port (see `node::port`).
  int http_port = 8080;
  /// "embedded" (librdkafka's mock cluster in this process), "off", or a
  /// broker list "host:port,...".
  std::string kafka = "embedded";
  int kafka_partitions = 16;
  /// A librdkafka properties file with TLS/SASL settings for the brokers
  /// (security.protocol, sasl.*, ssl.*); empty: plaintext.
  std::string kafka_config;
  /// HS256 secret of bearer tokens: at least 32 bytes, or the node does not start.
  std::string jwt_secret;
  /// The longest remaining lifetime a token may have; `iss` / `aud` that
  /// tokens must carry (empty: not checked).
  std::chrono::seconds max_token_ttl{24 * 3600};
  std::string token_issuer;
  std::string token_audience;
  /// The currencies catalogue prices (and so orders) may be in; revenue
  /// metrics have one series per currency.
  std::vector<std::string> currencies{"EUR", "USD", "GBP"};
  /// Requests per customer (writes) or per client address (reads) per
  /// second (sliding window).
  std::uint32_t rate_limit = 1000;
  /// Failed authentications per client address per second; beyond: 429.
  std::uint32_t auth_failure_limit = 20;
  /// Requests of `/metrics`, `/health` and `/ready` per client address per second.
  std::uint32_t ops_rate_limit = 50;
  /// The HTTP server's limits: handler threads and queue, connection caps
  /// (`max_connections` is lowered at start to fit the file-descriptor
  /// limit, with room kept for the store), deadlines. `max_body` is the
  /// API's (`max_body_bytes`) whatever is set here.
  http_limits http;
  /// Sagas in flight at once; more new orders are shed with 503 (the
  /// pipeline's throughput is best with a bounded number in flight, and a
  /// flood of sagas would overflow the gateways' bulkheads into the retry queue).
  std::size_t max_sagas = 1024;
  /// Scheduler threads of the actor system.
  std::size_t threads = 2;
  /// Writes are refused (503 storage_unavailable) while the store's file
  /// system has less free space than this, and resume by themselves above.
  std::uint64_t min_free_disk_mb = 256;
  /// Memory of the store's memtables and block cache together, in MiB.
  std::uint64_t store_memory_mb = 128;
  /// fsync every commit batch of the event store.
  bool fsync = true;
  /// SIGTERM: how long in-flight sagas may take to finish or park.
  std::chrono::seconds drain_timeout{30};
  /// How long a provider breaker stays open before it lets a trial through.
  std::chrono::milliseconds breaker_wait{30000};
  /// First delay of a parked payment's retry.
  std::chrono::milliseconds payment_retry_initial{1000};
  /// Time given to an order call through the pipeline.
  std::chrono::milliseconds request_timeout{10000};
  std::uint64_t seed = 1;
  /// Payment gateways (in order of preference) and carriers.
  provider_specs providers = simulated_defaults();
  /// Set: the node is a member of a cluster (keel-node run --etcd ...).
  std::optional<cluster_config> cluster;
};

/// What `GET /admin/projections` shows.
struct projections_report {
  std::vector<projections::projection_status> projections;
  std::uint64_t last_position = 0;
};

/// What `GET /admin/kafka` shows: `enabled` false when the node runs
/// without Kafka (`--kafka off`).
struct kafka_report {
  bool enabled = false;
  bool embedded = false;
  std::string bootstrap_servers;
  std::vector<storage::kafka_topic_info> topics;
  std::optional<storage::outbox_status> outbox;
};

/// One figure of `/health`.
struct health_component {
  std::string name;
  double weight = 0;
  double score = 1;
  std::string detail;
};

/// The weighted health score (DESIGN section 7): breakers 0.3, bulkheads 0.2,
/// cache 0.2, queue 0.2, business 0.1. "ok" at 0.7 and above, "warn" below,
/// "critical" below 0.4.
struct health_report {
  double score = 1;
  std::string status;
  std::vector<health_component> components;
};

/// A running node: event store, actor system with the order pipeline,
/// projections with the stock cache, Kafka (cluster, outbox relay, payment
/// retry topic) and the HTTP API. `start` recovers (re-drives non-terminal
/// sagas, re-fills the retry queue from the order streams) before it
/// serves. Thread-safe: the HTTP threads call the order functions
/// concurrently.
class node {
public:
  static caf::expected<std::unique_ptr<node>> start(node_config cfg);
  ~node();

  node(const node&) = delete;
  node& operator=(const node&) = delete;

  /// The HTTP port bound.
  int port() const noexcept;

  /// Blocks until `request_stop` (e.g. from a signal handler thread).
  void wait_for_stop();
  /// Asks the node to stop; safe from any thread.
  void request_stop();
  /// The node stopped because it lost its group's primary role: start it
  /// again (it rejoins as a standby).
  bool restart_requested() const noexcept;

  /// Graceful stop: stop accepting, drain in-flight requests and sagas (up
  /// to the drain timeout), stop projections and the outbox (after its
  /// deliveries), flush the store. Returns the sagas still in flight.
  std::int64_t shutdown();

  // -- operations for the HTTP API --------------------------------------------

  /// Places an order through the orders actor; answers once order_placed is durable.
  caf::expected<actors::order_view> place(const events::place_order& cmd);
  caf::expected<actors::order_view> cancel(const std::string& order_id, const std::string& who);
  /// The order's durable state, folded from its stream on the caller's
  /// thread: reads never wait for (nor load) the actor that places orders.
  /// Status none when the order does not exist.
  caf::expected<actors::order_state> order(const std::string& order_id) const;
  /// The prices orders are placed at (thread-safe).
  actors::catalog& catalog() const noexcept;
  /// Sets the units on hand of `sku` (admin); returns the new level.
  caf::expected<actors::stock_reply> set_stock(const std::string& sku, std::int64_t on_hand);
  /// Changes the faults of simulated provider `name` (not_found for another
  /// name, invalid_argument for an HTTP provider); the JSON is validated by the caller.
  caf::error set_faults(const std::string& provider, const actors::provider_faults& f);
  /// Names of the gateways (in order of preference) and of the carriers.
  const std::vector<std::string>& gateways() const;
  const std::vector<std::string>& carriers() const;
  /// Whether provider `name` is simulated in this process.
  bool simulated(const std::string& name) const;

  const storage::event_store& store() const;
  const node_config& config() const noexcept;

  /// The projections' status, and the store's last position.
  projections_report projections() const;
  /// Skips the event projection `name` stopped at (see projection_runner::skip).
  caf::error skip_projection(const std::string& name, std::uint64_t position,
                             const std::string& by, const std::string& note);
  /// Rebuilds projection `name` ("all": every one) while the node serves;
  /// blocks until swapped in.
  caf::error rebuild_projection(const std::string& name);

  /// The Kafka bridge: cluster, topics, outbox progress.
  kafka_report kafka() const;

  /// The node's metrics in Prometheus text format.
  std::string metrics_text() const;

  health_report health() const;

  /// Ready: recovered, serving, not draining, the store can write and no
  /// supervisor gave up.
  bool ready() const;

  /// Started and not stopping (forwarded requests are served only then).
  bool serving() const;

  /// Supervisors that spent their restart budget and gave up (their
  /// service is gone until the node restarts).
  std::vector<std::string> escalated_supervisors() const;

  /// Whether the store can write (a failed write, ENOSPC or EIO, makes it
  /// false until RocksDB resumed or the node restarted); logs each change once.
  bool store_writable() const;

  /// The node's link to its cluster; null when it runs alone.
  cluster_link* cluster() const noexcept;

  /// HTTP counters the API layer feeds.
  void count_request(const std::string& route, int status, double seconds);
  void count_rate_limited();
  void count_shed();
  /// A read a standby served from its own store (`Keel-Read: standby`).
  void count_standby_read();

  struct impl;

private:
  explicit node(std::unique_ptr<impl> ptr);
  std::unique_ptr<impl> impl_;
};

} // namespace keel::runtime
