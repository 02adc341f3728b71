#pragma once

// Where an order's saga stands: the status the saga folds from its stream,
// the read models store by name and the HTTP API returns.

#include <cstdint>
#include <optional>
#include <string_view>

namespace keel::events {

enum class order_status : std::uint8_t {
  none = 0,           ///< no order_placed seen yet
  placed,             ///< waiting for the stock reservation
  stock_reserved,     ///< waiting for the payment authorization
  payment_authorized, ///< waiting for the shipment to be scheduled
  pending_payment,    ///< parked on the payment retry queue
  shipment_scheduled, ///< waiting for capture and stock commit
  compensating,       ///< undoing steps before ending rejected or cancelled
  completed,          ///< terminal
  rejected,           ///< terminal
  cancelled,          ///< terminal
};

/// The status's name in APIs, read models and logs ("pending_payment").
const char* to_string(order_status x) noexcept;

/// The status named `name`, if any (the inverse of `to_string`).
std::optional<order_status> parse_order_status(std::string_view name) noexcept;

/// True for completed, rejected and cancelled.
bool is_terminal(order_status x) noexcept;

} // namespace keel::events
