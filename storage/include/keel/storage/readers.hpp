#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>

#include "keel/events/record.hpp"

namespace keel::storage {

struct store_state;

/// Iterates the global log in position order from a start position.
/// Memory is bounded (one RocksDB iterator with readahead), whatever the store
/// size. Not thread-safe; the store must outlive the reader.
///
///     auto r = store.read_all(1);
///     while (r.next()) use(r.current());
///     if (r.error()) ...
class global_reader {
public:
  global_reader(global_reader&&) noexcept;
  global_reader& operator=(global_reader&&) noexcept;
  ~global_reader();

  /// Advances to the next record. Returns false at the end of the log (as of
  /// the reader's creation), after `max_count` records, or on an error. A
  /// record that fails its checksum or layout check, or a gap in positions,
  /// is an error (`corrupt_record` naming the position); never skipped.
  bool next();

  /// The current record; valid until the next call of `next()`.
  const events::record_view& current() const noexcept;

  /// The current record's stored bytes (what a primary ships to a standby);
  /// valid until the next call of `next()`.
  std::string_view raw() const noexcept;

  /// The error that ended the iteration, if any.
  const caf::error& error() const noexcept;

private:
  friend class event_store;
  struct impl;
  explicit global_reader(std::unique_ptr<impl> ptr);
  std::unique_ptr<impl> impl_;
};

/// Iterates the events of one stream in version order. Same contract as
/// `global_reader`; additionally checks that each index entry leads to a
/// record of that stream and version.
class stream_reader {
public:
  stream_reader(stream_reader&&) noexcept;
  stream_reader& operator=(stream_reader&&) noexcept;
  ~stream_reader();

  /// Advances to the next event of the stream; false at its end or on error.
  bool next();

  /// The current record; valid until the next call of `next()`.
  const events::record_view& current() const noexcept;

  /// The error that ended the iteration, if any.
  const caf::error& error() const noexcept;

private:
  friend class event_store;
  struct impl;
  explicit stream_reader(std::unique_ptr<impl> ptr);
  std::unique_ptr<impl> impl_;
};

/// Records copied out of a reader into one buffer, so their views outlive the
/// reader's position (subscription deliveries, batches handed to other
/// threads). One allocation per batch rather than one per record.
class record_batch {
public:
  /// Copies `rec`'s type, stream and payload into the batch.
  void add(const events::record_view& rec);

  /// The records added so far, pointing into the batch; valid until the next
  /// `add` or `clear`.
  const std::vector<events::record_view>& views() const noexcept {
    return views_;
  }

  std::size_t size() const noexcept {
    return views_.size();
  }

  bool empty() const noexcept {
    return views_.empty();
  }

  void clear() noexcept;

private:
  std::string arena_;
  std::vector<events::record_view> views_;
  std::vector<std::size_t> offsets_;
};

} // namespace keel::storage
