#pragma once

// The names of the streams the domain writes: one per aggregate, its key
// after a fixed prefix. Every module builds and recognizes stream names here,
// so a prefix is spelled once.

#include <string>
#include <string_view>

namespace keel::events {

inline constexpr std::string_view order_prefix = "order-";
inline constexpr std::string_view stock_prefix = "stock-";
inline constexpr std::string_view payment_prefix = "payment-";
inline constexpr std::string_view shipment_prefix = "shipment-";
inline constexpr std::string_view catalog_prefix = "catalog-";
/// Streams the node appends on its own: "$system-<component>".
inline constexpr std::string_view breaker_prefix = "$system-breaker-";
inline constexpr std::string_view pool_prefix = "$system-pool-";
inline constexpr std::string_view supervisor_stream = "$system-supervisor";
/// The providers each start of a node was configured with.
inline constexpr std::string_view providers_stream = "$system-providers";

/// "order-<order id>": the saga's events.
std::string order_stream(std::string_view order_id);
/// "stock-<sku>": inventory of one SKU.
std::string stock_stream(std::string_view sku);
/// "payment-<order id>": the payment service's events for one order.
std::string payment_stream(std::string_view order_id);
/// "shipment-<order id>": the shipping service's events for one order.
std::string shipment_stream(std::string_view order_id);
/// "catalog-<sku>": prices of one SKU.
std::string catalog_stream(std::string_view sku);
/// "$system-breaker-<name>": transitions of one circuit breaker.
std::string breaker_stream(std::string_view name);
/// "$system-pool-<name>": resizes of one provider pool.
std::string pool_stream(std::string_view name);

/// What a stream holds, by its prefix.
enum class stream_kind {
  order, stock, payment, shipment, catalog, breaker, pool, supervisor, providers, other };

/// The kind of `stream` (`other` for names outside the conventions above,
/// and for a prefix without a key).
stream_kind kind_of_stream(std::string_view stream) noexcept;

/// The key after the prefix ("o-1" of "order-o-1"); empty for `other`,
/// `supervisor` and `providers`.
std::string_view key_of_stream(std::string_view stream) noexcept;

} // namespace keel::events
