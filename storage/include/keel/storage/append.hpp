#pragma once

#include <cstdint>
#include <string>

#include "keel/events/event.hpp"
#include "keel/events/ids.hpp"

namespace keel::storage {

/// The version an append expects its stream to be at (optimistic concurrency).
class expected_version {
public:
  /// Append whatever the stream's version.
  static expected_version any() noexcept {
    return expected_version{any_value};
  }
  /// Append only if the stream has no events yet.
  static expected_version no_stream() noexcept {
    return expected_version{0};
  }
  /// Append only if the stream's last version is `v` (0 = no stream).
  static expected_version exact(std::uint64_t v) noexcept {
    return expected_version{v};
  }

  bool is_any() const noexcept {
    return value_ == any_value;
  }

  /// The expected version; meaningless when `is_any()`.
  std::uint64_t value() const noexcept {
    return value_;
  }

private:
  static constexpr std::uint64_t any_value = ~std::uint64_t{0};
  explicit expected_version(std::uint64_t v) noexcept : value_(v) {
  }
  std::uint64_t value_;
};

/// An event to append: its payload is already encoded; the store assigns its
/// version and global position.
struct new_event {
  events::event_id id;
  std::string type;
  std::uint16_t schema_version = 0;
  /// Microseconds since the Unix epoch, UTC.
  std::int64_t timestamp_us = 0;
  events::event_id correlation_id;
  events::event_id causation_id;
  std::string payload;

  /// Encodes `ev` at its current schema version.
  static new_event from(const events::event& ev, events::event_id id, std::int64_t timestamp_us,
                        events::event_id correlation_id = {},
                        events::event_id causation_id = {});
};

/// What an acknowledged append got.
struct append_result {
  /// The stream versions of the first and last event appended.
  std::uint64_t first_version = 0;
  std::uint64_t last_version = 0;
  /// The global positions of the first and last event appended.
  std::uint64_t first_position = 0;
  std::uint64_t last_position = 0;
  /// True when every event id was already stored by an earlier identical
  /// append: nothing was written and the earlier append's result is returned.
  bool duplicate = false;
};

/// Returns the current wall clock as microseconds since the Unix epoch.
std::int64_t now_us();

} // namespace keel::storage
