#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include <caf/expected.hpp>

#include "keel/events/event.hpp"
#include "keel/events/ids.hpp"

namespace keel::events {

/// The stored form of one event, as laid out in docs/storage-format.md:
/// a fixed 87-byte little-endian header (format, CRC32C over everything after
/// the CRC, position, version, timestamp, ids, schema, lengths), then the type
/// name, the stream id and the payload.
struct record {
  event_id id;
  std::string stream;
  /// The event's version within its stream, from 1, gap-free.
  std::uint64_t version = 0;
  /// The event's position in the global log, from 1, gap-free, in commit order.
  std::uint64_t position = 0;
  std::string type;
  std::uint16_t schema_version = 0;
  /// Microseconds since the Unix epoch, UTC, when the event was created.
  std::int64_t timestamp_us = 0;
  event_id correlation_id;
  event_id causation_id;
  std::string payload;

  /// Decodes the payload (upcasting older schema versions).
  caf::expected<event> decode_payload() const;
};

/// A record decoded in place: the string views point into the buffer it was
/// decoded from and are valid as long as that buffer is.
struct record_view {
  event_id id;
  std::string_view stream;
  std::uint64_t version = 0;
  std::uint64_t position = 0;
  std::string_view type;
  std::uint16_t schema_version = 0;
  std::int64_t timestamp_us = 0;
  event_id correlation_id;
  event_id causation_id;
  std::string_view payload;

  /// Copies the view into an owning record.
  record to_record() const;

  /// Decodes the payload (upcasting older schema versions).
  caf::expected<event> decode_payload() const;
};

/// The size of the fixed record header, in bytes.
constexpr std::size_t record_header_size = 87;

/// The record format this build writes (byte 0 of every record).
constexpr std::uint8_t record_format = 1;

/// The largest payload a record may carry, in bytes.
constexpr std::size_t max_payload_size = 4 * 1024 * 1024;

/// Encodes `rec` completely, checksum included.
std::string encode_record(const record& rec);

/// Sets the version and position of an encoded record and recomputes its
/// checksum (the event store assigns both at commit time).
void seal_record(std::string& bytes, std::uint64_t version, std::uint64_t position) noexcept;

/// Decodes `bytes` into a view. Verifies the checksum and the layout: any
/// mismatch is `corrupt_record` naming what failed; the view never points
/// outside `bytes`.
caf::expected<record_view> decode_record(std::string_view bytes);

} // namespace keel::events
