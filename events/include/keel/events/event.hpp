#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <variant>

#include "keel/events/catalog_events.hpp"
#include "keel/events/inventory_events.hpp"
#include "keel/events/order_events.hpp"
#include "keel/events/payment_events.hpp"
#include "keel/events/shipping_events.hpp"
#include "keel/events/system_events.hpp"

namespace keel::events {

/// Any domain or system event. The order of alternatives is NOT part of the
/// stored format (records store the type name), so new types may go anywhere.
using event = std::variant<
  // orders
  order_placed, order_rejected, order_stock_reserved, order_payment_authorized,
  order_payment_pending, order_shipment_scheduled, order_payment_captured,
  order_completed, order_cancel_requested, order_stock_released,
  order_payment_voided, order_payment_refunded, order_cancelled,
  order_stock_refused, order_payment_declined, order_shipment_failed,
  order_shipment_cancelled,
  // inventory
  stock_adjusted, stock_reserved, stock_reservation_refused, stock_released,
  stock_committed,
  // payments
  payment_authorized, payment_declined, payment_unavailable, payment_captured,
  payment_voided, payment_refunded,
  // shipping
  shipment_scheduled, shipment_failed, shipment_cancelled,
  // system
  breaker_transitioned, pool_resized, actor_restarted,
  // catalogue
  catalog_price_set, catalog_entry_withdrawn,
  // system (later additions)
  providers_configured>;

/// Describes one stored event type.
struct event_type_info {
  /// The stable name stored in every record ("order_placed"). Never renamed or reused.
  std::string_view name;
  /// The schema version this build writes; it reads every version 1..current.
  std::uint16_t current_version;
  /// The index of the type in `event`.
  std::size_t index;
};

/// Returns every event type this build knows, in `event` order.
const std::vector<event_type_info>& event_types();

/// Looks up a type by its stored name.
const event_type_info* find_event_type(std::string_view name) noexcept;

/// Returns the stored name of the type held by `ev`.
std::string_view type_name(const event& ev) noexcept;

/// Returns the schema version this build writes for the type held by `ev`.
std::uint16_t schema_version(const event& ev) noexcept;

/// Returns the id of the stream an event belongs to by convention
/// ("order-<id>", "stock-<sku>", "payment-<id>", "shipment-<id>", "catalog-<sku>",
/// "$system-<name>").
std::string stream_of(const event& ev);

} // namespace keel::events
