#pragma once

// The internals of an open store, shared by the store, its committer, its
// readers, subscriptions and verify. Private to the storage module.

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>
#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/write_buffer_manager.h>

#include "keel/storage/options.hpp"
#include "keel/storage/replication.hpp"

namespace keel::storage {

class committer;

/// Column families, in the order they are opened.
enum cf_id : std::size_t {
  cf_default = 0,
  cf_streams,
  cf_global,
  cf_event_index,
  cf_snapshots,
  cf_checkpoints,
  cf_read_models,
  cf_meta,
  cf_count,
};

/// Returns the name of a column family ("global", ...).
const char* cf_name(std::size_t id);

/// Converts a RocksDB status into Keel's error (corruption -> corrupt_record,
/// anything else -> storage_failure), with `what` as context.
caf::error to_error(const rocksdb::Status& st, const std::string& what);

struct store_state;

/// The error of a write refused while the store cannot write
/// (`storage_failure`, with the last write error).
caf::error unavailable(const store_state& s);

/// Returns the last version of `stream` (0 if it has none), seeking `it`, an
/// iterator over the `streams` column family.
caf::expected<std::uint64_t> seek_last_version(rocksdb::Iterator& it, std::string_view stream);

/// Reads the store's terms from `meta` (replication.cpp).
caf::expected<term_history> load_terms(const store_state& s);

struct store_state {
  options opts;
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  /// The block cache every column family shares.
  std::shared_ptr<rocksdb::Cache> cache;
  /// Charges the memtables to `cache` and flushes them at half of it (writer only).
  std::shared_ptr<rocksdb::WriteBufferManager> memtable_budget;
  /// Entries of the committer's stream-version cache (for `memory()`).
  std::atomic<std::uint64_t> version_cache_entries{0};
  rocksdb::WriteOptions write_opts;
  /// Set in secondary mode; removed on close.
  std::string secondary_dir;

  /// The position of the last durable event. Written under `commit_mtx`,
  /// read without it.
  std::atomic<std::uint64_t> last_position{0};
  mutable std::mutex commit_mtx;
  mutable std::condition_variable commit_cv;

  std::unique_ptr<committer> comm;

  /// Counters of the committer: write batches and events committed.
  std::atomic<std::uint64_t> batches{0};
  std::atomic<std::uint64_t> committed_events{0};
  /// Where the committer's time goes, in nanoseconds: preparing batches
  /// (id lookups, versions, encoding), writing them (WAL write, fsync,
  /// memtables), and acknowledging appends.
  std::atomic<std::uint64_t> prepare_ns{0};
  std::atomic<std::uint64_t> write_ns{0};
  std::atomic<std::uint64_t> acknowledge_ns{0};

  // Replication (replication.cpp).
  /// The highest fencing token of the store's terms (or seen in a batch).
  std::atomic<std::uint64_t> token{0};
  /// A commit gate failed: appends are refused until `truncate_after`.
  std::atomic<bool> fenced{false};
  /// A standby's store: appends are refused.
  std::atomic<bool> standby{false};
  std::atomic<std::uint64_t> batches_shipped{0};
  std::atomic<std::uint64_t> events_shipped{0};
  std::atomic<std::uint64_t> batches_received{0};
  std::atomic<std::uint64_t> events_received{0};
  std::atomic<std::uint64_t> gate_wait_ns{0};
  std::atomic<std::uint64_t> truncated_events{0};

  rocksdb::ColumnFamilyHandle* cf(cf_id id) const noexcept {
    return cfs[id];
  }

  /// Publishes a new last position and wakes waiters and subscriptions.
  void publish(std::uint64_t position);

  // -- write health (storage_health) ------------------------------------------

  /// Serializes every write to RocksDB. After a failed WAL write, RocksDB
  /// 7.8 (Debian's build keeps its assertions) aborts the process when
  /// another write reaches the failed WAL writer; so once a write failed no
  /// other is attempted, and none can be in flight beside the failing one.
  std::mutex write_mtx;
  /// Under `write_mtx`: free space is below `opts.min_free_bytes` (last
  /// checked at `space_checked_us`); a RocksDB write failed and was not
  /// resumed (at `last_resume_us` last tried).
  bool space_low = false;
  bool write_failed = false;
  std::int64_t space_checked_us = 0;
  std::int64_t last_resume_us = 0;
  /// `space_low || write_failed`, for readers without the lock.
  std::atomic<bool> failing{false};
  /// RocksDB refused to resume (a failed WAL write or sync).
  std::atomic<bool> needs_restart{false};
  std::atomic<std::uint64_t> write_failures{0};
  std::atomic<std::uint64_t> resumes{0};
  /// Why and since when the store is failing (empty and 0 while writable).
  mutable std::mutex health_mtx;
  std::string write_error;
  std::int64_t failing_since_us = 0;
  /// The file system that injects `opts.faults` (kept alive with the env).
  std::shared_ptr<rocksdb::FileSystem> fs;
  std::unique_ptr<rocksdb::Env> env;

  /// Writes `wb` if `may_write` allows (otherwise an Incomplete status,
  /// without touching RocksDB) and records the outcome.
  rocksdb::Status guarded_write(const rocksdb::WriteOptions& wo, rocksdb::WriteBatch* wb);

  /// Whether a write may go to RocksDB now (with `write_mtx` held): checks
  /// the free-space reserve (at most every 20 ms) and, after a failed
  /// write, asks RocksDB to resume (at most every 250 ms).
  bool may_write();

  /// `may_write` under the lock: the committer's idle recovery.
  void try_resume();

  /// Reads the last position from the global log (open, refresh).
  caf::expected<std::uint64_t> scan_last_position() const;

  ~store_state();
};

} // namespace keel::storage
