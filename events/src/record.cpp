#include "keel/events/record.hpp"

#include <cstring>

#include "keel/events/codec.hpp"
#include "keel/events/crc32c.hpp"
#include "keel/events/error.hpp"

namespace keel::events {

namespace {

// Offsets of the fixed header; docs/storage-format.md is their twin.
constexpr std::size_t off_format = 0;
constexpr std::size_t off_crc = 1;
constexpr std::size_t off_position = 5;
constexpr std::size_t off_version = 13;
constexpr std::size_t off_timestamp = 21;
constexpr std::size_t off_id = 29;
constexpr std::size_t off_correlation = 45;
constexpr std::size_t off_causation = 61;
constexpr std::size_t off_schema = 77;
constexpr std::size_t off_type_len = 79;
constexpr std::size_t off_stream_len = 81;
constexpr std::size_t off_payload_len = 83;
static_assert(off_payload_len + 4 == record_header_size);

template <class T>
void put(char* p, T x) noexcept {
  std::memcpy(p, &x, sizeof x);
}

template <class T>
T get(const char* p) noexcept {
  T x;
  std::memcpy(&x, p, sizeof x);
  return x;
}

std::uint32_t checksum(const char* data, std::size_t size) noexcept {
  return crc32c(data + off_position, size - off_position);
}

caf::error corrupt(const std::string& what) {
  return make_error(errc::corrupt_record, what);
}

} // namespace

std::string encode_record(const record& rec) {
  std::string out(record_header_size + rec.type.size() + rec.stream.size() + rec.payload.size(),
                  '\0');
  char* p = out.data();
  put<std::uint8_t>(p + off_format, record_format);
  put<std::uint64_t>(p + off_position, rec.position);
  put<std::uint64_t>(p + off_version, rec.version);
  put<std::int64_t>(p + off_timestamp, rec.timestamp_us);
  std::memcpy(p + off_id, rec.id.bytes.data(), 16);
  std::memcpy(p + off_correlation, rec.correlation_id.bytes.data(), 16);
  std::memcpy(p + off_causation, rec.causation_id.bytes.data(), 16);
  put<std::uint16_t>(p + off_schema, rec.schema_version);
  put<std::uint16_t>(p + off_type_len, static_cast<std::uint16_t>(rec.type.size()));
  put<std::uint16_t>(p + off_stream_len, static_cast<std::uint16_t>(rec.stream.size()));
  put<std::uint32_t>(p + off_payload_len, static_cast<std::uint32_t>(rec.payload.size()));
  char* q = p + record_header_size;
  std::memcpy(q, rec.type.data(), rec.type.size());
  q += rec.type.size();
  std::memcpy(q, rec.stream.data(), rec.stream.size());
  q += rec.stream.size();
  std::memcpy(q, rec.payload.data(), rec.payload.size());
  put<std::uint32_t>(p + off_crc, checksum(p, out.size()));
  return out;
}

void seal_record(std::string& bytes, std::uint64_t version, std::uint64_t position) noexcept {
  char* p = bytes.data();
  put<std::uint64_t>(p + off_position, position);
  put<std::uint64_t>(p + off_version, version);
  put<std::uint32_t>(p + off_crc, checksum(p, bytes.size()));
}

caf::expected<record_view> decode_record(std::string_view bytes) {
  if (bytes.size() < record_header_size)
    return corrupt("record of " + std::to_string(bytes.size()) + " bytes is shorter than its "
                   + std::to_string(record_header_size) + "-byte header");
  const char* p = bytes.data();
  auto format = get<std::uint8_t>(p + off_format);
  if (format != record_format)
    return corrupt("unknown record format " + std::to_string(format));
  auto stored_crc = get<std::uint32_t>(p + off_crc);
  auto actual_crc = checksum(p, bytes.size());
  if (stored_crc != actual_crc)
    return corrupt("checksum mismatch (stored " + std::to_string(stored_crc) + ", computed "
                   + std::to_string(actual_crc) + ")");
  auto type_len = get<std::uint16_t>(p + off_type_len);
  auto stream_len = get<std::uint16_t>(p + off_stream_len);
  auto payload_len = get<std::uint32_t>(p + off_payload_len);
  if (record_header_size + type_len + stream_len + std::size_t{payload_len} != bytes.size())
    return corrupt("lengths (type " + std::to_string(type_len) + ", stream "
                   + std::to_string(stream_len) + ", payload " + std::to_string(payload_len)
                   + ") do not add up to the record size " + std::to_string(bytes.size()));
  record_view v;
  v.position = get<std::uint64_t>(p + off_position);
  v.version = get<std::uint64_t>(p + off_version);
  v.timestamp_us = get<std::int64_t>(p + off_timestamp);
  std::memcpy(v.id.bytes.data(), p + off_id, 16);
  std::memcpy(v.correlation_id.bytes.data(), p + off_correlation, 16);
  std::memcpy(v.causation_id.bytes.data(), p + off_causation, 16);
  v.schema_version = get<std::uint16_t>(p + off_schema);
  const char* q = p + record_header_size;
  v.type = std::string_view{q, type_len};
  v.stream = std::string_view{q + type_len, stream_len};
  v.payload = std::string_view{q + type_len + stream_len, payload_len};
  return v;
}

record record_view::to_record() const {
  record r;
  r.id = id;
  r.stream = std::string{stream};
  r.version = version;
  r.position = position;
  r.type = std::string{type};
  r.schema_version = schema_version;
  r.timestamp_us = timestamp_us;
  r.correlation_id = correlation_id;
  r.causation_id = causation_id;
  r.payload = std::string{payload};
  return r;
}

caf::expected<event> record_view::decode_payload() const {
  return decode(type, schema_version, payload);
}

caf::expected<event> record::decode_payload() const {
  return decode(type, schema_version, payload);
}

} // namespace keel::events
