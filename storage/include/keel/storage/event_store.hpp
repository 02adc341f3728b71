#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "keel/storage/append.hpp"
#include "keel/storage/options.hpp"
#include "keel/storage/readers.hpp"
#include "keel/storage/replication.hpp"
#include "keel/storage/subscription.hpp"

namespace keel::storage {

struct store_state;

/// A stream and its last version.
struct stream_info {
  std::string stream;
  std::uint64_t last_version = 0;
};

/// The state of an aggregate at a version, so recovery reads the snapshot and
/// the events after it instead of the whole stream.
struct snapshot {
  std::uint64_t version = 0;
  std::string type;
  std::uint16_t schema_version = 0;
  std::string payload;
};

/// A named position in the global log (projections, the outbox relay).
struct checkpoint {
  std::uint64_t position = 0;
  /// When it was written, microseconds since the Unix epoch.
  std::int64_t updated_us = 0;
};

/// Whether the store can write (a writer's view of its disk).
struct storage_health {
  /// False after a write failed (disk full, I/O error), until RocksDB
  /// resumed and a write succeeded again.
  bool writable = true;
  /// The last write error while not writable.
  std::string error;
  /// RocksDB refused to resume in this process (a failed WAL write or sync
  /// leaves it unable to): only reopening the store (restarting the
  /// process) brings writing back, once the cause is gone.
  bool needs_restart = false;
  /// When the current failure began (microseconds since the epoch; 0 while writable).
  std::int64_t failing_since_us = 0;
  /// Writes that failed, and recoveries, since the store was opened.
  std::uint64_t write_failures = 0;
  std::uint64_t resumes = 0;
};

/// What the group committer did since the store was opened.
struct commit_stats {
  /// Write batches committed (one WAL sync each with durability sync).
  std::uint64_t batches = 0;
  /// Events committed.
  std::uint64_t events = 0;
  /// Committer time spent preparing batches (id lookups, versions, sealing
  /// records), writing them (WAL write, fsync, memtable inserts) and
  /// acknowledging appends, in nanoseconds.
  std::uint64_t prepare_ns = 0;
  std::uint64_t write_ns = 0;
  std::uint64_t acknowledge_ns = 0;
};

/// Memory the store holds, in bytes (for operators and the soak tests).
struct store_memory {
  /// Memtables of every column family, mutable and immutable.
  std::uint64_t memtables = 0;
  /// Data, index and filter blocks in the block cache (without the
  /// reservations that charge memtables to the budget).
  std::uint64_t block_cache = 0;
  /// Index and filter blocks of open table files held outside the cache.
  std::uint64_t table_readers = 0;
  /// Streams whose version the committer keeps in memory.
  std::uint64_t version_cache_entries = 0;
  /// `options::memory_budget_bytes`: the cache's capacity, which memtables
  /// and cached blocks share.
  std::uint64_t budget = 0;
};

/// A data file of the store (for operators and corruption tests).
struct file_info {
  std::string column_family;
  std::string path;
  std::uint64_t size = 0;
};

/// Writes that commit atomically with named checkpoints: a projection puts
/// its read-model changes and its new position into one batch, so a crash
/// never applies an event twice or skips one. Keys live in the store's
/// `read_models` column family; callers prefix them with their model's name.
class write_batch {
public:
  write_batch();
  write_batch(write_batch&&) noexcept;
  write_batch& operator=(write_batch&&) noexcept;
  ~write_batch();

  /// Sets `key` to `value` in the read models.
  void put(std::string_view key, std::string_view value);

  /// Removes `key` from the read models.
  void erase(std::string_view key);

  /// Removes every read-model key in [begin, end).
  void erase_range(std::string_view begin, std::string_view end);

  /// Sets checkpoint `name` to `position`.
  void set_checkpoint(std::string_view name, std::uint64_t position);

  /// Removes checkpoint `name`.
  void erase_checkpoint(std::string_view name);

  /// The number of operations in the batch. They apply in the order they
  /// were added.
  std::size_t size() const noexcept;

private:
  friend class event_store;
  struct impl;
  std::unique_ptr<impl> impl_;
};

/// The event store: one RocksDB database per data directory, one writer
/// process. Appends from any thread go through one group committer that
/// batches concurrent appends into one atomic write, assigns gap-free global
/// positions in commit order and syncs the WAL once per batch. All member
/// functions are thread-safe; readers and subscriptions must not outlive the
/// store.
class event_store {
public:
  /// Opens (or, for a writer with `create_if_missing`, creates) the store at
  /// `opts.path`. Errors: `storage_failure` (I/O, lock held by another writer,
  /// not a Keel store), `invalid_argument` (bad options).
  static caf::expected<std::unique_ptr<event_store>> open(options opts);

  /// Opens the existing store at `path` read-only as a secondary instance
  /// (beside a running writer, e.g. a node) with a 32 MiB block cache and
  /// catches up with the writer: what the tools and tests that look into a
  /// live store use. Errors as `open` and `refresh`.
  static caf::expected<std::unique_ptr<event_store>> open_beside(std::string path);

  /// Stops the committer after it drained every queued append, and closes.
  ~event_store();

  event_store(const event_store&) = delete;
  event_store& operator=(const event_store&) = delete;

  // -- appends ----------------------------------------------------------------

  /// Appends `events` to `stream` atomically if the stream is at `expected`.
  /// Blocks until the batch holding the append is durable. Idempotent by event
  /// id: re-appending events already stored by an identical append returns
  /// that append's result with `duplicate` set. Errors: `version_conflict`
  /// (context: stream, expected, actual), `invalid_argument` (bad stream id,
  /// no events, a zero event id, oversized payload), `malformed_payload` or
  /// `unknown_event_type` (payload does not decode), `duplicate_event_id`
  /// (an id stored with other content, or in a concurrent append that is not
  /// acknowledged yet: retry after it), `storage_failure`, `not_writable`.
  caf::expected<append_result> append(std::string_view stream, expected_version expected,
                                      std::vector<new_event> events);

  /// Called once with the outcome of an asynchronous append, on the
  /// committer's thread: keep it short and never block in it.
  using append_callback = std::function<void(caf::expected<append_result>)>;

  /// Like `append`, but returns at once; `done` runs when the append is
  /// durable or failed. Validation errors are reported through `done` too.
  void append_async(std::string stream, expected_version expected,
                    std::vector<new_event> events, append_callback done);

  // -- reads ------------------------------------------------------------------

  /// The global position of the last durable event (0 for an empty store).
  std::uint64_t last_position() const noexcept;

  /// Blocks until `last_position() >= position` or `timeout` passed; returns
  /// whether the position was reached. Woken by commits, no polling.
  bool wait_for(std::uint64_t position, std::chrono::milliseconds timeout) const;

  /// The last version of `stream` (0 if it has no events).
  caf::expected<std::uint64_t> stream_version(std::string_view stream) const;

  /// Reads the global log from `from_position` (1 = the first event).
  global_reader read_all(std::uint64_t from_position = 1,
                         std::uint64_t max_count = ~std::uint64_t{0}) const;

  /// Reads `stream` from `from_version` (1 = its first event).
  stream_reader read_stream(std::string_view stream, std::uint64_t from_version = 1,
                            std::uint64_t max_count = ~std::uint64_t{0}) const;

  /// Reads the event at global `position`. Errors: `not_found`, `corrupt_record`.
  caf::expected<events::record> read_event(std::uint64_t position) const;

  /// Finds the global position of the event with `id`. Errors: `not_found`.
  caf::expected<std::uint64_t> find_event(const events::event_id& id) const;

  /// Lists streams whose id starts with `prefix`, in id order, starting after
  /// `after` (for paging), at most `limit` of them.
  caf::expected<std::vector<stream_info>> list_streams(std::string_view prefix = {},
                                                       std::size_t limit = 1000,
                                                       std::string_view after = {}) const;

  /// Delivers every event from `from_position` on to `handler`, in batches:
  /// first the stored ones (catch-up), then new ones as they are committed
  /// (live), on a thread of the subscription's own. See `subscription`.
  std::unique_ptr<subscription> subscribe(std::uint64_t from_position,
                                          subscription::handler handler,
                                          subscription::options opts = {}) const;

  // -- snapshots and checkpoints ----------------------------------------------

  /// Stores `snap` as the latest snapshot of `stream` (replacing an older one).
  caf::error save_snapshot(std::string_view stream, const snapshot& snap);

  /// Loads the latest snapshot of `stream`, if any. A snapshot that fails its
  /// checksum is `corrupt_record` (callers may recover from the events alone).
  caf::expected<std::optional<snapshot>> load_snapshot(std::string_view stream) const;

  /// Loads checkpoint `name`, if it was ever written.
  caf::expected<std::optional<checkpoint>> load_checkpoint(std::string_view name) const;

  /// Lists every checkpoint with its name.
  caf::expected<std::vector<std::pair<std::string, checkpoint>>> list_checkpoints() const;

  /// Commits `batch` atomically. With `fsync` (and the store's durability
  /// sync) it is durable on return; without, it is in the WAL (survives a
  /// process crash) and a power loss may drop it, always as a whole, so a
  /// projection's changes and checkpoint stay consistent either way.
  caf::error commit(write_batch batch, bool fsync = true);

  /// Reads a read-model value written through `commit`, if any.
  caf::expected<std::optional<std::string>> get_model(std::string_view key) const;

  /// Lists read-model entries whose key starts with `prefix`, in key order,
  /// starting after `after` (empty: from the first), at most `limit` of them.
  caf::expected<std::vector<std::pair<std::string, std::string>>>
  scan_models(std::string_view prefix, std::string_view after = {},
              std::size_t limit = 1000) const;

  // -- replication (the stores of a group: one primary, its standbys) ---------

  /// Primary: installs `gate` (empty removes it), which every committed batch
  /// passes before its appends are acknowledged (see `commit_gate`).
  void set_commit_gate(commit_gate gate);

  /// A standby's store: while set, appends (and snapshots) are refused with
  /// `not_writable`; `replicate` and `truncate_after` still write.
  void set_standby(bool standby);

  /// Primary: begins a term with fencing token `token` at the next position;
  /// durable on return. Errors: `stale_token` when the store has seen a
  /// token as large, `not_writable` when fenced or read-only.
  caf::error begin_term(std::uint64_t token);

  /// Standby: stores `batch` at its positions, with its records' versions
  /// and ids, durable on return (one atomic write), and records the terms it
  /// carries. Positions already stored must hold the same bytes (a resent
  /// batch is accepted). Returns the store's last position. Errors:
  /// `stale_token` (the store has seen a larger token), `log_gap` (the batch
  /// starts after the store's end, or differs from what is stored; the
  /// context names the last position), `corrupt_record`, `storage_failure`.
  caf::expected<std::uint64_t> replicate(replicated_batch batch);

  /// Removes every event after `position` (the tail a rejoining primary
  /// wrote but its group never acknowledged) with its index entries, the
  /// snapshots taken at removed versions and the terms that begin after it,
  /// in one durable write; clears `fenced`. Refused while a commit gate is
  /// installed.
  caf::expected<truncation> truncate_after(std::uint64_t position);

  /// The store's terms, oldest first.
  caf::expected<term_history> terms() const;

  /// Replication figures (token, batches shipped or received, fenced).
  replication_stats replication() const;

  /// Writes a consistent copy of the whole store into the new directory
  /// `dir` (a RocksDB checkpoint: hard links where it can; memtables are
  /// flushed first). Returns the last position the copy holds.
  caf::expected<std::uint64_t> export_checkpoint(const std::string& dir) const;

  // -- operations ---------------------------------------------------------------

  /// Secondary mode: catches up with the writer's latest commits. Other
  /// modes: no-op.
  caf::error refresh();

  /// Flushes memtables to SST files (tests, tools).
  caf::error flush();

  /// Lists the live SST files of each column family.
  std::vector<file_info> live_files() const;

  /// Counters of the group committer.
  commit_stats stats() const noexcept;

  /// What the store holds in memory now.
  store_memory memory() const;

  /// Whether the store can write now. After a failed write (ENOSPC, EIO)
  /// every append fails fast with `storage_failure` while the committer asks
  /// RocksDB to resume (every 250 ms, also when nobody writes); where RocksDB
  /// can (failed flushes and compactions) writing resumes by itself once the
  /// cause is gone, otherwise `needs_restart` says so. Nothing is
  /// acknowledged that did not become durable.
  storage_health health() const;

  /// `health().writable`, without copying the rest (one atomic load).
  bool writable() const noexcept;

  /// The options the store was opened with.
  const options& opts() const noexcept;

  /// Internal state, for the readers and verify in this module.
  store_state& state() const noexcept {
    return *state_;
  }

private:
  explicit event_store(std::unique_ptr<store_state> state);
  std::unique_ptr<store_state> state_;
};

} // namespace keel::storage
