#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "api_error.hpp"
#include "keel/events/commands.hpp"

namespace keel::projections {
struct order_summary;
struct customer_orders_page;
struct stock_level;
} // namespace keel::projections

namespace keel::actors {
struct catalog_entry;
struct order_state;
struct order_view;
} // namespace keel::actors

/// The JSON forms of the HTTP API's requests and answers.
namespace keel::runtime {

/// The largest request body the API reads (bytes); larger bodies get 400.
constexpr std::size_t max_body_bytes = 64 * 1024;

/// Parses and validates the body of `POST /v1/orders`: a JSON object with
/// `order_id`, `customer_id`, `items` (1..100 objects of `sku`, `quantity`
/// 1..1000 and optional `unit_price_cents`, the price the client expects;
/// absent: `events::unpriced`), optional `currency`, `shipping_address` (an
/// object of strings `name`, `street`, `city`, `postal_code`, `country`) and
/// optional `premium` (boolean; returned in `premium`, the caller checks it
/// against the token). Unknown fields, wrong types, missing fields and
/// values out of range are a 400 `api_error` naming the field.
std::variant<events::place_order, api_error> parse_place_order(std::string_view body,
                                                               std::optional<bool>& premium);

/// The body of `PUT /admin/catalog/{sku}`.
struct price_request {
  std::int64_t price_cents = 0;
  std::string currency;
};

/// Parses `{"price_cents": N (1..10^10), "currency": "EUR"}`; the currency
/// list is the catalogue's to check.
std::variant<price_request, api_error> parse_price(std::string_view body);

/// Parses `{"quantity": N}` (0..1,000,000,000) of `PUT /admin/stock/{sku}`.
std::variant<std::int64_t, api_error> parse_stock_quantity(std::string_view body);

/// The body of `POST /admin/projections/{name}/skip`.
struct skip_request {
  std::uint64_t position = 0;
  std::string note;
};

/// Parses `{"position": P (1..), "note": "..." (optional, up to 500 characters)}`.
std::variant<skip_request, api_error> parse_skip(std::string_view body);

/// The body of `POST /admin/faults`: which providers and their whole fault state.
struct fault_request {
  /// A provider name, "gateways", "carriers" or "all".
  std::string provider;
  double error_rate = 0;
  double decline_rate = 0;
  /// Calls never answered.
  double hang_rate = 0;
  std::int64_t latency_ms = 2;
  /// Absent: five times the median.
  std::int64_t latency_p99_ms = -1;
  double outage_seconds = 0;
  bool outage_hangs = false;
};

/// Parses `{"provider", "error_rate" 0..1, "decline_rate" 0..1, "hang_rate" 0..1, "latency_ms",
/// "latency_p99_ms" 0..600000, "outage_seconds" 0..86400, "outage_hangs"}`;
/// only `provider` is required. Errors as `parse_place_order`.
std::variant<fault_request, api_error> parse_faults(std::string_view body);


/// The answer of `GET /v1/orders/{id}`: the read model's summary with the
/// authoritative `status`, `reason` and references of `view` (the orders
/// actor) when given. Times in ISO-8601 UTC.
std::string order_body(const projections::order_summary& summary, const actors::order_view* view);

/// The answer of `GET /v1/orders/{id}` when the read model has not seen the
/// order yet: its state folded from its stream (no steps).
std::string order_body(const actors::order_state& state);
/// The answer of `GET /v1/catalog/{sku}` and `PUT /admin/catalog/{sku}`.
std::string catalog_body(const actors::catalog_entry& entry);

/// The answer of `GET /v1/customers/{id}/orders`.
std::string customer_orders_body(std::string_view customer_id,
                                 const projections::customer_orders_page& page,
                                 bool with_cursors = false);

/// The answer of `GET /v1/stock/{sku}`.
std::string stock_body(const projections::stock_level& level);

} // namespace keel::runtime
