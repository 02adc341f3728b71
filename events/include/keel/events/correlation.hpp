#pragma once

#include <cstdint>
#include <string_view>

#include "keel/events/ids.hpp"

namespace keel::events {

/// A 64-bit hash of `key` in FNV-1a's xor-multiply form, stable across runs,
/// builds and machines (shards, correlation ids and simulated references
/// must not change when the standard library does). Its offset basis,
/// 1469598103934665603, is one digit short of FNV's published one, so it is
/// not FNV-1a's value; it stays as it is, since stored correlation ids and
/// shard assignments depend on it.
std::uint64_t stable_hash(std::string_view key) noexcept;

/// The correlation id of every event of order `order_id`'s saga (its own
/// stream and the inventory, payment and shipping events it causes): derived
/// from the order id, so logs, Kafka headers and the tools join on it
/// without a lookup.
event_id correlation_of(std::string_view order_id);

} // namespace keel::events
