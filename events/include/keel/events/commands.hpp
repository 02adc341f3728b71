#pragma once

#include <caf/error.hpp>

#include "keel/events/ids.hpp"
#include "keel/events/types.hpp"

/// Commands: requests to the services, named in the imperative. Commands are
/// not stored in the event log; they travel as messages (and, for the payment
/// retry queue, as encoded bytes).
namespace keel::events {

/// Limits of a place_order command (DESIGN section 2).
constexpr std::size_t max_order_lines = 100;
constexpr std::uint32_t max_line_quantity = 1000;
/// The highest price of a unit, in cents.
constexpr std::int64_t max_unit_price_cents = 10'000'000'000;
/// A place_order line's `unit_price_cents` when the client named no price:
/// the catalogue's is taken. A line that names a price must match it.
constexpr std::int64_t unpriced = -1;

/// Place an order. `order_id` is the client's idempotency key, scoped to
/// `customer_id`. Before its saga starts the pipeline prices the lines from
/// the catalogue: `unit_price_cents` (or `unpriced`) and `currency` (or
/// empty) are what the client expects, checked against it. `premium` comes
/// from the caller's credentials, never from the client's body.
struct place_order {
  std::string order_id;
  std::string customer_id;
  std::vector<order_line> lines;
  std::string currency;
  address shipping_address;
  bool premium = false;
  KEEL_FIELDS(order_id, customer_id, lines, currency, shipping_address, premium)
};

/// Cancel an order; allowed until its shipment is scheduled.
struct cancel_order {
  std::string order_id;
  std::string requested_by;
  KEEL_FIELDS(order_id, requested_by)
};

/// Set the units on hand of a SKU (operator).
struct set_stock {
  std::string sku;
  std::int64_t on_hand = 0;
  KEEL_FIELDS(sku, on_hand)
};

/// Reserve every line of an order, or none.
struct reserve_stock {
  std::string order_id;
  std::vector<order_line> lines;
  /// The order event whose decision issued it (set by the saga's shell, not
  /// by the decider); the service records it as its events' causation.
  event_id causation{};
  KEEL_FIELDS(order_id, lines, causation)
};

/// Give back the reservations of an order.
struct release_stock {
  std::string order_id;
  std::vector<order_line> lines;
  /// The order event whose decision issued it (set by the saga's shell, not
  /// by the decider); the service records it as its events' causation.
  event_id causation{};
  KEEL_FIELDS(order_id, lines, causation)
};

/// Turn the reservations of an order into a sale.
struct commit_stock {
  std::string order_id;
  std::vector<order_line> lines;
  /// The order event whose decision issued it (set by the saga's shell, not
  /// by the decider); the service records it as its events' causation.
  event_id causation{};
  KEEL_FIELDS(order_id, lines, causation)
};

/// Authorize an amount; the provider receives `idempotency_key`.
struct authorize_payment {
  std::string order_id;
  std::int64_t amount_cents = 0;
  std::string currency;
  std::string idempotency_key;
  bool premium = false;
  /// The order event whose decision issued it (set by the saga's shell, not
  /// by the decider); the service records it as its events' causation.
  event_id causation{};
  KEEL_FIELDS(order_id, amount_cents, currency, idempotency_key, premium, causation)
};

/// Capture an authorization.
struct capture_payment {
  std::string order_id;
  std::string payment_id;
  /// The order event whose decision issued it (set by the saga's shell, not
  /// by the decider); the service records it as its events' causation.
  event_id causation{};
  KEEL_FIELDS(order_id, payment_id, causation)
};

/// Void an authorization that was not captured.
struct void_payment {
  std::string order_id;
  std::string payment_id;
  /// The order event whose decision issued it (set by the saga's shell, not
  /// by the decider); the service records it as its events' causation.
  event_id causation{};
  KEEL_FIELDS(order_id, payment_id, causation)
};

/// Refund a captured payment.
struct refund_payment {
  std::string order_id;
  std::string payment_id;
  std::int64_t amount_cents = 0;
  /// The order event whose decision issued it (set by the saga's shell, not
  /// by the decider); the service records it as its events' causation.
  event_id causation{};
  KEEL_FIELDS(order_id, payment_id, amount_cents, causation)
};

/// Schedule the shipment of an order.
struct schedule_shipment {
  std::string order_id;
  address shipping_address;
  std::vector<order_line> lines;
  /// The order event whose decision issued it (set by the saga's shell, not
  /// by the decider); the service records it as its events' causation.
  event_id causation{};
  KEEL_FIELDS(order_id, shipping_address, lines, causation)
};

/// Cancel a scheduled shipment.
struct cancel_shipment {
  std::string order_id;
  std::string tracking_id;
  /// The order event whose decision issued it (set by the saga's shell, not
  /// by the decider); the service records it as its events' causation.
  event_id causation{};
  KEEL_FIELDS(order_id, tracking_id, causation)
};

/// Checks a place_order against the domain's rules: an order id and a
/// customer id that are valid keys (`valid_key`), 1..100 lines of a valid
/// SKU, quantity 1..1000 and a price 0..max_unit_price_cents or `unpriced`,
/// a three-letter upper-case currency or none. Returns an
/// `invalid_argument` error naming the first offending field
/// ("items[3].quantity"), or no error.
caf::error validate(const place_order& cmd);

} // namespace keel::events
