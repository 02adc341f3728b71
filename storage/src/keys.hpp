#pragma once

// Key and value layouts of the store; docs/storage-format.md is their twin.
// Integers in keys and index values are big-endian so that RocksDB's bytewise
// order is numeric order.

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

namespace keel::storage::keys {

inline void append_be64(std::string& out, std::uint64_t x) {
  char buf[8];
  for (int i = 7; i >= 0; --i) {
    buf[i] = static_cast<char>(x & 0xff);
    x >>= 8;
  }
  out.append(buf, 8);
}

inline std::uint64_t read_be64(const char* p) noexcept {
  std::uint64_t x = 0;
  for (int i = 0; i < 8; ++i)
    x = (x << 8) | static_cast<std::uint8_t>(p[i]);
  return x;
}

/// `global` column family: big-endian u64 position.
inline std::string global_key(std::uint64_t position) {
  std::string out;
  out.reserve(8);
  append_be64(out, position);
  return out;
}

/// `streams` column family: stream id bytes then big-endian u64 version,
/// written into `out` (reused by the committer: no allocation per event).
inline void put_stream_key(std::string& out, std::string_view stream, std::uint64_t version) {
  out.assign(stream);
  append_be64(out, version);
}

inline std::string stream_key(std::string_view stream, std::uint64_t version) {
  std::string out;
  out.reserve(stream.size() + 8);
  put_stream_key(out, stream, version);
  return out;
}

/// The highest stream version. Its first byte is zero, so every key of stream
/// S lies in [S + 00 00.., S + 00 ff..]: no other stream id (NUL-free) has a
/// key in that range, whatever ids extend S.
constexpr std::uint64_t max_version = (std::uint64_t{1} << 56) - 1;

/// The largest key stream S can have: seek before it to find S's last version.
inline std::string stream_last_key(std::string_view stream) {
  return stream_key(stream, max_version);
}

/// A big-endian u64 value (stream index and event index values).
inline std::string be64_value(std::uint64_t x) {
  return global_key(x);
}

/// The version in a `snapshots` value: u32 crc32c | u64 version (little-endian)
/// | ... (event_store.cpp writes and checks the rest); nothing when the value
/// is shorter than that.
inline std::optional<std::uint64_t> snapshot_version(std::string_view value) noexcept {
  if (value.size() < 12)
    return std::nullopt;
  std::uint64_t v;
  std::memcpy(&v, value.data() + 4, 8);
  return v;
}

/// `meta` column family: a term, "term/" then its big-endian u64 token;
/// the value is its first position (big-endian u64).
constexpr std::string_view term_prefix = "term/";

inline std::string term_key(std::uint64_t token) {
  std::string out{term_prefix};
  append_be64(out, token);
  return out;
}

} // namespace keel::storage::keys
