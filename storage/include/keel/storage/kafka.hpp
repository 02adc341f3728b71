#pragma once

// Kafka for Keel (DESIGN section 6, docs/operations.md): the cluster (an
// embedded librdkafka mock cluster or external brokers), the outbox relay
// from the global log to the domain topics, and the payment retry topic.
// librdkafka is an implementation detail of keel_storage: this header names
// none of its types.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace keel::storage {

class event_store;

/// librdkafka properties (name, value) for the connection to the brokers.
using kafka_settings = std::vector<std::pair<std::string, std::string>>;

/// Reads a librdkafka properties file for the connection to the brokers:
/// one `name=value` per line (spaces around both trimmed), `#` comments and
/// blank lines ignored. Only `security.protocol`, `sasl.*` and `ssl.*` are
/// accepted (every other property is Keel's own to set), each with a value
/// librdkafka accepts. Errors: `invalid_argument` naming the file, line and
/// property; `not_found` when the file cannot be read.
caf::expected<kafka_settings> load_kafka_settings(const std::string& path);

/// Where Kafka is and how its topics are laid out.
struct kafka_options {
  /// "host:port,..." of external brokers; empty: an embedded librdkafka mock
  /// cluster inside this process (in memory, new ports at every start).
  std::string brokers;
  /// Brokers of the embedded cluster (1..16).
  int mock_brokers = 1;
  /// Partitions per topic when Keel creates it (1..1024). The mock cluster
  /// keeps only ~5 MiB per partition and silently drops older messages.
  int partitions = 16;
  /// Kafka's `client.id` of every client Keel creates.
  std::string client_id = "keel";
  /// TLS and SASL for the brokers (see `load_kafka_settings`), applied to
  /// every client that connects to them; checked by `kafka_cluster::open`.
  kafka_settings security;
  /// External brokers: how long creating the topics, and then reading the
  /// metadata, may each take at `open`.
  std::chrono::milliseconds admin_timeout{10000};
};

/// A topic and its partition count.
struct kafka_topic_info {
  /// The topic's name.
  std::string name;
  /// Its partition count.
  int partitions = 0;
};

/// The topic of parked payments.
constexpr std::string_view retry_topic_name = "payment.retry.queue";

/// The topics Keel creates: the four outbox topics ("keel.orders",
/// "keel.inventory", "keel.payments", "keel.shipping") plus
/// "payment.retry.queue".
const std::vector<std::string>& keel_topics();

/// The outbox topic of a stream: "keel.orders" for "order-...",
/// "keel.inventory" for "stock-...", "keel.payments" for "payment-...",
/// "keel.shipping" for "shipment-..."; empty for every other stream (system
/// streams "$system-..." are not relayed).
std::string topic_of(std::string_view stream_id);

/// The Kafka cluster Keel talks to. Embedded: owns a librdkafka mock cluster
/// (and the client handle that hosts it) and creates `keel_topics()` on it.
/// External: creates missing topics with the Admin API ("already exists" is
/// fine) and reads their partition counts; if the brokers cannot create
/// topics (no controller, no rights, or another process's embedded mock
/// cluster, which has no CreateTopics) but every topic exists, that is fine
/// too. Const members are thread-safe. Lifecycle: relays and retry topics
/// started on a cluster must be destroyed before it (an embedded cluster's
/// brokers go away with it).
class kafka_cluster {
public:
  /// Starts the embedded cluster or connects to the external one. Errors:
  /// `invalid_argument` (bad options), `timeout` (external brokers did not
  /// answer within `admin_timeout`), `storage_failure` (librdkafka refused,
  /// or a topic is missing and could not be created).
  static caf::expected<std::unique_ptr<kafka_cluster>> open(const kafka_options& opts);

  /// Stops the embedded cluster (no-op for external brokers).
  ~kafka_cluster();

  kafka_cluster(const kafka_cluster&) = delete;
  kafka_cluster& operator=(const kafka_cluster&) = delete;

  /// The bootstrap list: "127.0.0.1:port,..." of the embedded brokers, or
  /// `options().brokers`.
  const std::string& bootstrap_servers() const noexcept;

  /// Whether this is the embedded mock cluster.
  bool embedded() const noexcept;

  /// `keel_topics()` with their partition counts (as created, or as the
  /// external brokers reported them at `open`).
  std::vector<kafka_topic_info> topics() const;

  /// The options the cluster was opened with.
  const kafka_options& options() const noexcept;

  /// Fault injection for tests and drills, embedded cluster only: takes
  /// every mock broker down (connections closed, new ones not served) or
  /// back up. Errors: `invalid_argument` for external brokers. Thread-safe.
  caf::error set_brokers_down(bool down);

  /// Internal state (kafka.cpp).
  struct impl;

private:
  explicit kafka_cluster(std::unique_ptr<impl> ptr);
  std::unique_ptr<impl> impl_;
};

/// How the outbox relay runs.
struct outbox_options {
  /// The checkpoint name in the event store.
  std::string checkpoint = "outbox/kafka";
  /// How often the confirmed position is saved as the checkpoint.
  std::chrono::milliseconds commit_interval{100};
  /// Back-pressure: the most log positions read but not yet confirmed
  /// (produced and waiting for a delivery report, or waiting behind one).
  /// At the limit the relay stops reading until reports arrive.
  std::size_t max_in_flight = 50000;
  /// librdkafka's `message.timeout.ms`: how long one attempt to deliver a
  /// message (with librdkafka's own retries) may take before it is reported
  /// failed; the relay then produces the event again.
  std::chrono::milliseconds delivery_timeout{30000};
  /// How long `stop` waits for outstanding delivery reports.
  std::chrono::milliseconds stop_timeout{5000};
  /// Set by a member of a replicated group (its cluster and group): every
  /// message also carries the headers `origin` and `position` (its place in
  /// the group's log), the checkpoint is saved with the topics' offsets
  /// beyond which every later message lies (its "marks"), and at start the
  /// relay reads the topics from those marks and does not produce again an
  /// event of its origin that is there already (a primary that died
  /// published it after the checkpoint its standby was sent).
  std::string origin;
  /// When set, the relay produces only while it returns true (a replicated
  /// group's primary: while its lease holds); otherwise it waits.
  std::function<bool()> may_publish;
  /// How long the start may spend reading the topics from the marks; past
  /// it the relay starts without (an event may then be published twice).
  std::chrono::milliseconds reconcile_timeout{10000};
};

/// The read-model key the relay keeps checkpoint `checkpoint`'s marks in
/// (see `outbox_options::origin`).
std::string outbox_marks_key(std::string_view checkpoint);

/// Where a relay with an origin would resume: its saved checkpoint and the
/// marks saved with it ("" when none).
struct outbox_resume {
  std::uint64_t checkpoint = 0;
  std::string marks;
};

/// A snapshot of the outbox relay's progress (see `outbox_relay::status`).
struct outbox_status {
  /// The saved checkpoint: every event at or before it is delivered.
  std::uint64_t checkpoint = 0;
  /// Every event at or before it is delivered (the checkpoint catches up
  /// with it within `commit_interval`).
  std::uint64_t confirmed = 0;
  /// Messages confirmed by a delivery report, since start.
  std::uint64_t delivered = 0;
  /// Messages handed to librdkafka (first attempts and retries), since start.
  std::uint64_t produced = 0;
  /// Failed delivery attempts (each one is produced again), since start.
  std::uint64_t delivery_failures = 0;
  /// The head of the log minus `confirmed`.
  std::uint64_t lag_events = 0;
  /// Age of the oldest unconfirmed event (by its creation timestamp), in
  /// milliseconds; 0 when none.
  std::int64_t lag_ms = 0;
  /// Events of the relay's origin it found in the topics at start, past its
  /// checkpoint, and did not produce again.
  std::uint64_t found_published = 0;
  /// Whether the relay is reading the log.
  bool running = false;
  /// The last error seen (broker, delivery, read or checkpoint), if any.
  std::string error;
};

/// Relays domain events from the global log to their Kafka topics
/// (`topic_of`): key = stream id, value = the record as JSON
/// (`events::to_json_value`), headers `type`, `event_id`, `correlation_id`.
/// Reads from its checkpoint on a subscription; produces with an idempotent
/// producer; a thread of its own serves delivery reports, produces failed
/// events again (never skips one), and saves the checkpoint, which moves only
/// over positions whose every event is delivered (system streams count as
/// delivered). At-least-once: after a crash or a failed attempt, events may
/// be produced twice; consumers de-duplicate by `event_id` (with an `origin`,
/// the relay finds and skips what it published past its checkpoint). All members are
/// thread-safe. Must be destroyed before its `kafka_cluster`.
class outbox_relay {
public:
  /// Starts relaying from the checkpoint `opts.checkpoint` of `store`.
  /// Errors: `invalid_argument` (bad options), `storage_failure` (the
  /// checkpoint cannot be read, librdkafka refused its configuration).
  static caf::expected<std::unique_ptr<outbox_relay>>
  start(std::shared_ptr<event_store> store, const kafka_cluster& cluster, outbox_options opts = {});

  /// Calls `stop`.
  ~outbox_relay();

  outbox_relay(const outbox_relay&) = delete;
  outbox_relay& operator=(const outbox_relay&) = delete;

  /// The relay's progress now.
  outbox_status status() const;

  /// The saved checkpoint, and its marks when it is not `known` (a caller
  /// that has them already gets ""). Without a lock while the checkpoint is
  /// `known`: the replication's commit gate asks for every batch.
  outbox_resume resume(std::uint64_t known) const;

  /// Stops reading, waits up to `stop_timeout` for outstanding delivery
  /// reports, saves the checkpoint and closes the producer. Idempotent.
  void stop();

  /// Internal state (outbox.cpp).
  struct impl;

private:
  explicit outbox_relay(std::unique_ptr<impl> ptr);
  std::unique_ptr<impl> impl_;
};

/// A parked payment on `payment.retry.queue` (the reference incident's
/// message, DESIGN section 6).
struct retry_entry {
  /// The order whose payment waits (also the message key).
  std::string order_id;
  /// When the payment was parked, microseconds since the Unix epoch.
  std::int64_t timestamp_us = 0;
  /// Payment attempts so far; grows with every park of the same order.
  std::uint32_t retry_count = 0;
  /// Premium customer: priority "HIGH", else "NORMAL".
  bool premium = false;
  /// The order's correlation id, for tracing.
  std::string correlation_id;
  /// Why the payment was parked ("circuit_open", "timeout", ...).
  std::string fallback_reason;
  /// When to retry, microseconds since the Unix epoch.
  std::int64_t retry_at_us = 0;
};

/// Renders `e` as the topic's JSON value: {"order_id", "timestamp" (ISO-8601),
/// "timestamp_us", "retry_count", "priority" ("HIGH"|"NORMAL"),
/// "correlation_id", "retry_at" (ISO-8601), "retry_at_us", "fallback_reason"}.
std::string to_json(const retry_entry& e);

/// Parses a message value of the topic. Needs "order_id" (a non-empty
/// string) and "retry_count" (an unsigned 32-bit number); times may be
/// "*_us" numbers or ISO-8601 strings; other fields are optional but must
/// have the right type. Errors: `malformed_payload` naming what is wrong.
caf::expected<retry_entry> parse_retry_entry(std::string_view json);

/// How the retry topic's clients run.
struct retry_topic_options {
  /// The consumer group (Kafka's `group.id`).
  std::string group_id = "keel-payment-retry";
  /// The `origin` header of published messages.
  std::string origin = "keel-node";
  /// Orders whose last handed-out retry count is remembered for
  /// de-duplication; beyond it the least recently seen order is forgotten.
  std::size_t dedup_capacity = 100000;
};

/// Counters of the retry topic since start.
struct retry_topic_stats {
  /// Messages handed to librdkafka by `publish`.
  std::uint64_t produced = 0;
  /// Messages read from the topic (handed out, duplicates and malformed).
  std::uint64_t consumed = 0;
  /// Messages dropped because their retry count was not newer than the
  /// last one handed out for the order (after the check).
  std::uint64_t duplicates = 0;
  /// Messages skipped because they did not parse.
  std::uint64_t malformed = 0;
  /// Messages the check refused: forged or corrupt (`invalid`), about an
  /// order that moved on (`stale`), due implausibly far ahead (`far_future`).
  std::uint64_t invalid = 0;
  std::uint64_t stale = 0;
  std::uint64_t far_future = 0;
  /// Messages whose order another consumer checks (a node of a cluster that
  /// does not own the order), given to the pass-on handler...
  std::uint64_t passed_on = 0;
  /// ...entries other consumers passed on to this one (`deliver`)...
  std::uint64_t passed_in = 0;
  /// ...and entries dropped because nobody here could take them: another
  /// consumer's with no pass-on handler, or passed on here for an order that
  /// moved on again (its new owner re-drives it when it takes it over).
  std::uint64_t misrouted = 0;
  /// Published messages whose delivery failed (not retried: the order
  /// stream is the source of truth and re-fills the queue after a restart).
  std::uint64_t delivery_failures = 0;
  /// Messages not consumed yet: over the partitions assigned to this
  /// consumer, the high watermark minus the consumer's position, as last
  /// seen by the consumer thread (it refreshes every ~100 ms). Before the
  /// first assignment: `produced` minus `consumed` (at least 0).
  std::int64_t lag = 0;
  /// The last error seen (broker, delivery, malformed message), if any.
  std::string error;
};

/// The producer and the consumer-group member of `payment.retry.queue`:
/// key = order id, value = `to_json(retry_entry)`, headers `content-type`
/// (application/json), `origin`, `fallback-reason`. The consumer runs on a
/// thread of its own (`auto.offset.reset=earliest`; offsets are stored after
/// the handler returned and committed periodically and at `stop`). Anyone
/// who can write to the topic can forge messages, so each one is a hint:
/// it must parse, pass the check (the order's stored state; counted and
/// dropped otherwise), and carry a retry count newer than the last one
/// handed out for its order, before it reaches the handler on that thread.
/// The check runs first, so a forged count can never make a real one look
/// like a duplicate. All members are thread-safe; the
/// handler must not call `stop`. Must be destroyed before its
/// `kafka_cluster`. The first group join takes ~3 s on the mock cluster.
class retry_topic {
public:
  /// Receives a message, on the consumer thread.
  using handler = std::function<void(const retry_entry&)>;

  /// What the check makes of a message. `elsewhere`: another consumer owns
  /// the order and checks it (a cluster node that does not serve it);
  /// `duplicate` is no check's answer, only `deliver`'s.
  enum class verdict { accept, invalid, stale, far_future, elsewhere, duplicate };
  /// Checks a parsed message against the source of truth, on the consumer
  /// thread. None: every parsed message is accepted.
  using checker = std::function<verdict(const retry_entry&)>;

  /// Starts the producer and subscribes the consumer (the group join then
  /// completes in the background; messages published meanwhile are read
  /// once it has). Errors:
  /// `invalid_argument` (bad options, no handler), `storage_failure`
  /// (librdkafka refused the configuration or the subscription).
  /// `pass_on` receives, on the consumer thread and without
  /// de-duplication, the messages the check calls `elsewhere`; it must not
  /// block (none: they are dropped and counted as misrouted).
  static caf::expected<std::unique_ptr<retry_topic>>
  start(const kafka_cluster& cluster, retry_topic_options opts, handler on_entry,
        checker check = {}, handler pass_on = {});

  /// Calls `stop`.
  ~retry_topic();

  retry_topic(const retry_topic&) = delete;
  retry_topic& operator=(const retry_topic&) = delete;

  /// Queues `e` for delivery; never blocks. Errors: `overloaded`
  /// (librdkafka's queue is full: retry later), `not_writable` (stopped),
  /// `storage_failure` (librdkafka refused the message).
  caf::error publish(const retry_entry& e);

  /// The counters now.
  retry_topic_stats stats() const;

  /// An entry another consumer read and passed on (it does not own the
  /// order): checked, de-duplicated and handed to the handler on the
  /// caller's thread, exactly as a message read here. `elsewhere` again
  /// (the order moved on meanwhile) drops it. Returns what became of it.
  verdict deliver(const retry_entry& e);

  /// Drops the de-duplication memory of `order_id` (its order ended).
  void forget(const std::string& order_id);

  /// Stops the consumer (leaving the group, committing offsets), waits up to
  /// 2 s for outstanding deliveries and closes both clients. Idempotent.
  void stop();

  /// Internal state (retry_topic.cpp).
  struct impl;

private:
  explicit retry_topic(std::unique_ptr<impl> ptr);
  std::unique_ptr<impl> impl_;
};

} // namespace keel::storage
