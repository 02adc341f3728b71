#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace keel::events {

/// A 128-bit identifier: event ids, correlation ids and causation ids. Stored
/// as 16 raw bytes; rendered as 32 lowercase hex digits. The all-zero id means
/// "none" (e.g. the causation id of an event no other event caused).
struct event_id {
  std::array<std::uint8_t, 16> bytes{};

  /// Returns true unless this is the all-zero id.
  bool valid() const noexcept;

  /// Returns a new time-ordered id (UUIDv7 layout: Unix milliseconds, then
  /// random bits from a per-thread generator).
  static event_id random();

  /// Returns an id derived from `seed` and `n` (deterministic; for tests,
  /// replays and benchmarks that must be reproducible).
  static event_id from_seed(std::uint64_t seed, std::uint64_t n);

  /// Parses 32 hex digits (dashes allowed); no value on anything else.
  static std::optional<event_id> parse(std::string_view text);

  template <class Archive>
  void serialize(Archive& ar) {
    ar(bytes);
  }

  friend bool operator==(const event_id& x, const event_id& y) noexcept {
    return x.bytes == y.bytes;
  }
  friend bool operator!=(const event_id& x, const event_id& y) noexcept {
    return !(x == y);
  }
  friend bool operator<(const event_id& x, const event_id& y) noexcept {
    return x.bytes < y.bytes;
  }
};

/// Renders `x` as 32 lowercase hex digits.
std::string to_string(const event_id& x);

/// Stream ids name aggregates: "order-<order id>", "stock-<sku>",
/// "payment-<order id>", "shipment-<order id>", "$system-<name>".
/// Valid stream ids are 1..200 printable ASCII characters other than space;
/// this keeps every stream's keys contiguous in the store (see docs/storage-format.md).
bool valid_stream_id(std::string_view id) noexcept;

/// The longest stream id, in bytes.
constexpr std::size_t max_stream_id_size = 200;

/// The longest business key (order id, customer id, SKU): room is left for
/// the stream prefix ("order-", "catalog-", ...).
constexpr std::size_t max_key_size = max_stream_id_size - 16;

/// Business keys (order ids, customer ids, SKUs) are 1..max_key_size
/// characters of A-Z a-z 0-9 '.' '_' ':' '-': they become URL path segments,
/// stream ids and token subjects as they are, so nothing in them needs
/// escaping anywhere (no '/', '?', '#', '%', space or non-ASCII byte).
bool valid_key(std::string_view key) noexcept;

} // namespace keel::events

template <>
struct std::hash<keel::events::event_id> {
  std::size_t operator()(const keel::events::event_id& x) const noexcept {
    std::uint64_t a;
    std::uint64_t b;
    std::memcpy(&a, x.bytes.data(), 8);
    std::memcpy(&b, x.bytes.data() + 8, 8);
    return static_cast<std::size_t>(a * 0x9e3779b97f4a7c15ULL ^ b);
  }
};
