#pragma once

// A node's link to the other nodes of its cluster: the agent (membership,
// slot claims, the etcd-fed view), the CAF endpoint other nodes call, the
// handles of theirs, and the routing of keys (order ids, SKUs) to the node
// that owns their slot. keel-node runs with one when started with --etcd.
// No CAF header here: the HTTP layer includes this.

#include <atomic>
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
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "keel/storage/kafka.hpp"
#include "keel/storage/replication.hpp"
#include "metrics.hpp"
#include "replication_types.hpp"

namespace keel::actors {
class catalog;
class pipeline;
struct catalog_entry;
} // namespace keel::actors

namespace keel::storage {
class event_store;
struct retry_entry;
} // namespace keel::storage

namespace keel::cluster {
struct cluster_view;
} // namespace keel::cluster

namespace keel::runtime {

struct cluster_config {
  /// etcd's client URL, http://HOST:PORT.
  std::string etcd;
  std::string cluster = "keel";
  std::string node_id;
  /// Where the CAF endpoint listens (HOST:PORT; port 0: any free one).
  std::string listen_host = "127.0.0.1";
  int listen_port = 0;
  /// How long a payment retry entry read here for another node's order is
  /// kept while its owner cannot be reached (the owner re-parks the order
  /// from its stream when it serves the slot again, so a dropped entry only
  /// delays it).
  std::chrono::milliseconds retry_pass_patience{30000};
  /// Slots of a new cluster.
  std::uint32_t slots = 64;
  std::int64_t ttl_seconds = 3;
  /// See cluster::agent::options::settle.
  std::chrono::milliseconds settle{2000};
  /// Time given to one call to another node.
  std::chrono::milliseconds call_timeout{2000};
  /// Threads that serve the HTTP requests other nodes forward.
  std::size_t forward_threads = 16;
  /// A graceful stop hands this node's slots over to the others first
  /// (keel-node --leave); otherwise they wait for it, answered with 503.
  bool leave_on_stop = false;
  /// `--group`: the node replicates its group's log (empty: it is a group of
  /// its own, without replication).
  std::string group;
  /// Replication within the group (`--sync strict`, `--sync-timeout`).
  bool strict_sync = false;
  std::chrono::milliseconds sync_timeout{500};
  /// See replication_config (`--seed-after-events`; the data directory is
  /// the node's).
  std::uint64_t seed_after_events = 100000;
  std::string data_dir;
  bool seeded = false;
  /// How long a starting node waits for etcd to answer (a node started, or
  /// started again as a standby, while etcd is down); negative: until
  /// `keep_waiting` says no more.
  std::chrono::milliseconds etcd_wait{60000};
  /// Asked while the node waits for etcd: false stops the start (SIGTERM).
  std::function<bool()> keep_waiting;
};

/// An HTTP request another node forwards to the owner of its key.
struct forwarded_call {
  std::string method;
  /// The raw path (for logs), its percent-decoded segments and the query.
  std::string path;
  std::vector<std::string> segments;
  std::vector<std::pair<std::string, std::string>> params;
  std::string body;
  std::string authorization;
  std::string remote_addr;
  std::uint32_t slot = 0;
  /// The fencing token the sender saw for the slot's owner.
  std::int64_t token = 0;
};

struct forwarded_answer {
  int status = 200;
  std::string content_type;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

/// Where a key goes.
struct slot_route {
  enum class kind { local, remote, unavailable };
  kind where = kind::unavailable;
  std::uint32_t slot = 0;
  /// The owner (remote) and its fencing token.
  std::string node;
  std::int64_t token = 0;
};

/// Figures of `/metrics` and `/health`.
struct cluster_figures {
  std::string node_id;
  bool live = false;
  std::size_t members = 0;
  std::size_t slots = 0;
  std::size_t slots_owned = 0;
  std::size_t slots_without_owner = 0;
  std::size_t peers_connected = 0;
  std::int64_t map_version = 0;
  bool controller = false;
  std::uint64_t forwarded = 0;
  std::uint64_t forward_failures = 0;
  std::uint64_t forwarded_in = 0;
  std::uint64_t not_owner = 0;
  std::uint64_t stock_calls_out = 0;
  std::uint64_t stock_calls_in = 0;
  std::uint64_t remote_stock_refusals = 0;
  std::uint64_t moves_out = 0;
  std::uint64_t moves_in = 0;
  std::uint64_t move_failures = 0;
  std::uint64_t events_moved = 0;
  std::size_t slots_moving = 0;
  /// Payment retry entries read here for another node's orders: passed on
  /// to their owner, dropped after trying for `retry_pass_patience`, and
  /// entries other nodes passed on to this one.
  std::uint64_t retry_passed = 0;
  std::uint64_t retry_pass_dropped = 0;
  std::uint64_t retry_received = 0;
};

class cluster_link {
public:
  /// Reads (or creates) the cluster's config; starts nothing else.
  static caf::expected<std::unique_ptr<cluster_link>> open(cluster_config cfg);
  ~cluster_link();
  cluster_link(const cluster_link&) = delete;
  cluster_link& operator=(const cluster_link&) = delete;

  const cluster_config& config() const noexcept;
  std::uint32_t slots() const noexcept;

  /// Loads CAF's middleman (with heartbeats) and registers the messages
  /// nodes exchange; call on the config before the actor system exists.
  static void configure(caf::actor_system_config& cfg);

  /// pipeline_config::inventory_front: the actor that sends each stock
  /// request to its SKU's owner (the local inventory for slots served here).
  std::function<caf::actor(caf::actor_system&, const caf::actor&)> inventory_front();

  /// pipeline_config::owns_order: whether this node serves `order_id`'s slot now.
  bool owns_order(const std::string& order_id) const;

  /// Publishes the endpoint, joins the cluster, connects to its members and
  /// starts moving slots (and re-driving the orders of the slots it starts
  /// to serve). `serve`: runs a forwarded HTTP request here (on the link's
  /// threads). `http`: this node's HTTP address, published to the others.
  caf::error start(caf::actor_system& sys, actors::pipeline& pipeline,
                   storage::event_store& store, actors::catalog* catalog,
                   std::function<forwarded_answer(const forwarded_call&)> serve,
                   const std::string& http);

  /// The endpoint's bound port.
  int port() const noexcept;

  /// The slot of `key` (an order id, a SKU).
  std::uint32_t slot_of(std::string_view key) const noexcept;

  /// The slot of `key` and who serves it now.
  slot_route route_of(std::string_view key) const;
  /// The slots whose data this node holds (etcd's `data/<n>` names it):
  /// those it serves, and those it will serve again once its lease is back.
  /// A slot that moved away is not among them (its old streams stay here).
  std::vector<std::uint32_t> data_slots() const;

  /// Whether this node serves `slot` now (with fencing token `token`, when not 0).
  bool serves(std::uint32_t slot, std::int64_t token = 0) const;

  /// Sends `call` to the owner `r` names and waits (call_timeout) for its
  /// answer. Errors: `unavailable` (no connection to the owner, or it did
  /// not answer in time: the request may or may not have run there).
  caf::expected<forwarded_answer> forward(const slot_route& r, forwarded_call call);

  /// Tells every other member the price of a SKU this node owns changed.
  void publish_price(const actors::catalog_entry& e, bool withdrawn);

  /// The stock level of `sku` changed here (the stock projection): when this
  /// node serves the SKU, the level goes to the other members (batched).
  void stock_changed(const std::string& sku, std::int64_t available, std::int64_t updated_us);

  /// The cache-first check of the lines whose SKUs other nodes serve,
  /// against the levels those nodes sent: `out_of_stock` naming the first
  /// short line. A SKU without a level passes (its owner's inventory decides).
  caf::error check_remote_stock(const std::vector<std::pair<std::string, std::uint32_t>>& lines);

  /// Where payment retry entries other nodes pass on to this one go (the
  /// retry topic's `deliver`); set before `start`, called on the link's threads.
  void on_retry_entry(std::function<void(const storage::retry_entry&)> receiver);

  /// A payment retry entry this node read from the shared topic for an
  /// order it does not serve: sent on to the order's owner (asynchronously;
  /// held while no owner is reachable, for `retry_pass_patience`). Never blocks.
  void pass_retry(const storage::retry_entry& e);

  /// The node ids of the other live members.
  std::vector<std::string> other_members() const;
  /// Whom to ask for each group's part of a list gathered from every group
  /// (a customer's orders): per group, the nodes in order of preference -
  /// its primary first, then its standbys (their copy, stale by their lag)
  /// - with "" for this node's own store. This node's own group: its own
  /// store when it is the primary (or `own_ok`: a standby read), else its
  /// primary, then its own store.
  std::vector<std::vector<std::string>> gather_plan(bool own_ok) const;
  /// Whether this node's membership (its etcd lease) is live.
  bool live() const;
  /// Whether this node has a connection to member `node`.
  bool is_connected(const std::string& node) const;
  /// Whether every other member that holds slots is connected.
  bool connected() const;
  cluster_figures figures() const;
  /// Latency of the requests this node forwarded (answered ones).
  const histogram& forward_seconds() const;
  /// Duration of the slot moves this node made (freeze to release).
  const histogram& move_seconds() const;
  std::shared_ptr<const cluster::cluster_view> view() const;

  /// Asks the controller to move every slot of this node to the others and
  /// waits until none is left here or `timeout` passed; returns the slots
  /// still here.
  std::size_t hand_over_all(std::chrono::milliseconds timeout);

  /// Leaves etcd (member and slot keys go at once; the map keeps this
  /// node's slots) and closes the connections.
  void stop();

  // -- replication (a node started with --group) --------------------------------

  /// Whether the node replicates its group's log.
  bool replicated() const noexcept;
  /// Whether this node is its group's primary now (always true without
  /// replication: a group of one).
  bool primary() const;
  /// The replication's figures (nothing without replication).
  std::optional<replication_figures> replication() const;
  /// Whether this node is a standby of the group that holds `key`'s slot:
  /// its store has the key's streams, behind the primary by its lag.
  bool standby_of(std::string_view key) const;
  /// Called (on the agent's thread) once this node became its group's
  /// primary and its store began the term: the node starts what only a
  /// primary runs (the outbox relay). False: it cannot serve as primary.
  void on_promoted(std::function<bool()> f);
  /// Called with what a standby's store dropped when it rejoined.
  void on_truncated(std::function<void(const storage::truncation&)> f);
  /// Where the outbox relay is (shipped to the standbys).
  void relay_position(std::function<storage::outbox_resume(std::uint64_t known)> f);
  /// Called once when this node, a primary, lost its role (its lease
  /// lapsed): it must stop and start again as a standby.
  void on_demoted(std::function<void()> f);

  struct impl;

private:
  explicit cluster_link(std::unique_ptr<impl> x);
  std::unique_ptr<impl> impl_;
};

} // namespace keel::runtime
