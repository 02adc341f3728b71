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
#include <rocksdb/db.h>

#include "keel/storage/options.hpp"

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

/// Returns the last version of `stream` (0 if it has none), seeking `it`, an
/// iterator over the `streams` column family.
caf::expected<std::uint64_t> seek_last_version(rocksdb::Iterator& it, std::string_view stream);

struct store_state {
  options opts;
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
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

  rocksdb::ColumnFamilyHandle* cf(cf_id id) const noexcept {
    return cfs[id];
  }

  /// Publishes a new last position and wakes waiters and subscriptions.
  void publish(std::uint64_t position);

  /// Reads the last position from the global log (open, refresh).
  caf::expected<std::uint64_t> scan_last_position() const;

  ~store_state();
};

} // namespace keel::storage
