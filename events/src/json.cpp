#include "keel/events/json.hpp"

#include <ctime>

#include <nlohmann/json.hpp>

#include "keel/events/error.hpp"
#include "keel/events/record.hpp"

namespace keel::events {

void to_json(nlohmann::json& j, const event_id& x) {
  j = to_string(x);
}

NLOHMANN_JSON_SERIALIZE_ENUM(breaker_state, {{breaker_state::closed, "closed"},
                                             {breaker_state::open, "open"},
                                             {breaker_state::half_open, "half_open"}})

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order_line, sku, quantity, unit_price_cents)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(address, name, street, city, postal_code, country)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order_placed, order_id, customer_id, lines, currency,
                                   shipping_address, premium, total_cents)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order_rejected, order_id, reason)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order_stock_reserved, order_id)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order_payment_authorized, order_id, payment_id, provider,
                                   amount_cents)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order_payment_pending, order_id, reason, attempt, retry_at_us)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order_shipment_scheduled, order_id, tracking_id, carrier,
                                   estimated_delivery_us)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order_payment_captured, order_id, payment_id, amount_cents)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order_completed, order_id)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order_cancel_requested, order_id, requested_by)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order_stock_released, order_id)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order_payment_voided, order_id, payment_id)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order_payment_refunded, order_id, payment_id, amount_cents)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order_cancelled, order_id, reason)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order_stock_refused, order_id, sku, requested, available,
                                   partially_reserved)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order_payment_declined, order_id, provider, reason)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order_shipment_failed, order_id, reason)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(order_shipment_cancelled, order_id, tracking_id)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(stock_adjusted, sku, on_hand, reason)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(stock_reserved, sku, order_id, quantity)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(stock_reservation_refused, sku, order_id, requested, available)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(stock_released, sku, order_id, quantity)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(stock_committed, sku, order_id, quantity)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(payment_authorized, order_id, payment_id, provider,
                                   amount_cents, currency, idempotency_key)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(payment_declined, order_id, provider, reason)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(payment_unavailable, order_id, provider, reason)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(payment_captured, order_id, payment_id, provider,
                                   amount_cents)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(payment_voided, order_id, payment_id, provider)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(payment_refunded, order_id, payment_id, provider,
                                   amount_cents)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(shipment_scheduled, order_id, tracking_id, carrier,
                                   estimated_delivery_us)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(shipment_failed, order_id, carrier, reason)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(shipment_cancelled, order_id, tracking_id, carrier)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(breaker_transitioned, breaker, from, to, failures, reason)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(pool_resized, pool, from_size, to_size, reason)
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(actor_restarted, actor, reason, restarts)

nlohmann::json to_json_value(const event& ev) {
  return std::visit([](const auto& x) { return nlohmann::json(x); }, ev);
}

std::string dump_json(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string to_json(const event& ev) {
  return dump_json(to_json_value(ev));
}

std::string format_timestamp(std::int64_t us) {
  auto secs = static_cast<std::time_t>(us / 1'000'000);
  auto frac = us % 1'000'000;
  if (frac < 0) {
    frac += 1'000'000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof out, "%s.%06lldZ", buf, static_cast<long long>(frac));
  return out;
}

nlohmann::json to_json_value(const record& rec) {
  nlohmann::json j;
  j["position"] = rec.position;
  j["stream"] = rec.stream;
  j["version"] = rec.version;
  j["type"] = rec.type;
  j["schema_version"] = rec.schema_version;
  j["event_id"] = to_string(rec.id);
  j["correlation_id"] = to_string(rec.correlation_id);
  j["causation_id"] = to_string(rec.causation_id);
  j["timestamp_us"] = rec.timestamp_us;
  j["time"] = format_timestamp(rec.timestamp_us);
  if (auto ev = rec.decode_payload())
    j["data"] = to_json_value(*ev);
  else
    j["error"] = describe(ev.error());
  return j;
}

} // namespace keel::events
