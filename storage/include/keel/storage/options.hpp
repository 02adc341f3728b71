#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace keel::storage {

/// When an append is acknowledged.
enum class durability {
  /// After the batch that holds it is in the WAL and the WAL is fsynced:
  /// survives power loss. One fsync per batch, not per event. Default.
  sync,
  /// After the batch is in the WAL (written, not fsynced): survives a process
  /// crash, not a power loss.
  wal,
};

/// How a process opens a store.
enum class open_mode {
  /// The single writer (RocksDB's lock file keeps out a second one).
  writer,
  /// A read-only view as of opening time.
  read_only,
  /// A read-only view beside a running writer that catches up on `refresh()`.
  secondary,
};

/// Faults a writer injects into its own file system, for drills and tests
/// of the storage failure paths: while `fail_writes` is set, creating,
/// writing, flushing and syncing any file of the store fails with an I/O
/// error (EIO), as a failing disk does. Thread-safe.
struct io_faults {
  std::atomic<bool> fail_writes{false};
  /// Operations failed so far.
  std::atomic<std::uint64_t> injected{0};
};

/// Options of `event_store::open`.
struct options {
  /// The store's data directory.
  std::string path;
  open_mode mode = open_mode::writer;
  durability durable = durability::sync;
  /// Create the store when `path` holds none (writer only).
  bool create_if_missing = true;
  /// Decode every appended payload before it is stored, so an event no reader
  /// could decode is refused at the door (`malformed_payload`).
  bool validate_payloads = true;
  /// The most events the group committer puts into one write batch.
  std::size_t max_batch_events = 8192;
  /// Memory of the memtables and the block cache together, in bytes: the
  /// block cache has this capacity and every memtable is charged to it;
  /// memtables are flushed once they hold half of it. The store's other
  /// memory is small and bounded (table readers, the version cache below).
  std::size_t memory_budget_bytes = 128u << 20;
  /// Streams whose current version the committer keeps in memory (about
  /// 100 bytes each); beyond this the cache starts over (a miss costs one
  /// index seek). A stream is appended to in bursts (a saga's events come
  /// within seconds), so recent streams are the ones that matter.
  std::size_t stream_cache_entries = 1u << 16;
  /// Files the writer keeps open (table files; -1: all). Bounded so that the
  /// process's file-descriptor budget can be shared with network
  /// connections; secondaries always keep every file open (RocksDB requires it).
  int max_open_files = 1024;
  /// Writes are refused (`storage_failure`, the store reports not
  /// writable) while the file system holding the store has less free space
  /// than this, and accepted again by themselves once it has more: RocksDB
  /// never meets a full disk in the middle of a WAL write, from which it
  /// cannot resume without a restart. 0: no reserve.
  std::uint64_t min_free_bytes = 256u << 20;
  /// When set, the store's files go through a file system that fails on
  /// demand (see `io_faults`).
  std::shared_ptr<io_faults> faults;
};

/// Returns "sync" or "wal".
const char* to_string(durability x);

} // namespace keel::storage
