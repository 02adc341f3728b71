#pragma once

// The name of every field of the event types and their parts, one list per
// type, in declaration order: `fields(x, f)` calls `f("name", x.member)` for
// each. The JSON form of events (json.cpp) and keel-replay's history files
// are written and read through these lists, so a field is named once.

#include "keel/events/event.hpp"

namespace keel::events {

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, order_line>> fields(T& x, F&& f) {
  f("sku", x.sku);
  f("quantity", x.quantity);
  f("unit_price_cents", x.unit_price_cents);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, address>> fields(T& x, F&& f) {
  f("name", x.name);
  f("street", x.street);
  f("city", x.city);
  f("postal_code", x.postal_code);
  f("country", x.country);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, order_placed>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
  f("customer_id", x.customer_id);
  f("lines", x.lines);
  f("currency", x.currency);
  f("shipping_address", x.shipping_address);
  f("premium", x.premium);
  f("total_cents", x.total_cents);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, order_rejected>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
  f("reason", x.reason);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, order_stock_reserved>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, order_payment_authorized>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
  f("payment_id", x.payment_id);
  f("provider", x.provider);
  f("amount_cents", x.amount_cents);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, order_payment_pending>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
  f("reason", x.reason);
  f("attempt", x.attempt);
  f("retry_at_us", x.retry_at_us);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, order_shipment_scheduled>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
  f("tracking_id", x.tracking_id);
  f("carrier", x.carrier);
  f("estimated_delivery_us", x.estimated_delivery_us);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, order_payment_captured>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
  f("payment_id", x.payment_id);
  f("amount_cents", x.amount_cents);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, order_completed>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, order_cancel_requested>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
  f("requested_by", x.requested_by);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, order_stock_released>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, order_payment_voided>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
  f("payment_id", x.payment_id);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, order_payment_refunded>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
  f("payment_id", x.payment_id);
  f("amount_cents", x.amount_cents);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, order_cancelled>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
  f("reason", x.reason);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, order_stock_refused>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
  f("sku", x.sku);
  f("requested", x.requested);
  f("available", x.available);
  f("partially_reserved", x.partially_reserved);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, order_payment_declined>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
  f("provider", x.provider);
  f("reason", x.reason);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, order_shipment_failed>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
  f("reason", x.reason);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, order_shipment_cancelled>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
  f("tracking_id", x.tracking_id);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, stock_adjusted>> fields(T& x, F&& f) {
  f("sku", x.sku);
  f("on_hand", x.on_hand);
  f("reason", x.reason);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, stock_reserved>> fields(T& x, F&& f) {
  f("sku", x.sku);
  f("order_id", x.order_id);
  f("quantity", x.quantity);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, stock_reservation_refused>> fields(T& x, F&& f) {
  f("sku", x.sku);
  f("order_id", x.order_id);
  f("requested", x.requested);
  f("available", x.available);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, stock_released>> fields(T& x, F&& f) {
  f("sku", x.sku);
  f("order_id", x.order_id);
  f("quantity", x.quantity);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, stock_committed>> fields(T& x, F&& f) {
  f("sku", x.sku);
  f("order_id", x.order_id);
  f("quantity", x.quantity);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, payment_authorized>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
  f("payment_id", x.payment_id);
  f("provider", x.provider);
  f("amount_cents", x.amount_cents);
  f("currency", x.currency);
  f("idempotency_key", x.idempotency_key);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, payment_declined>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
  f("provider", x.provider);
  f("reason", x.reason);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, payment_unavailable>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
  f("provider", x.provider);
  f("reason", x.reason);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, payment_captured>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
  f("payment_id", x.payment_id);
  f("provider", x.provider);
  f("amount_cents", x.amount_cents);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, payment_voided>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
  f("payment_id", x.payment_id);
  f("provider", x.provider);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, payment_refunded>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
  f("payment_id", x.payment_id);
  f("provider", x.provider);
  f("amount_cents", x.amount_cents);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, shipment_scheduled>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
  f("tracking_id", x.tracking_id);
  f("carrier", x.carrier);
  f("estimated_delivery_us", x.estimated_delivery_us);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, shipment_failed>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
  f("carrier", x.carrier);
  f("reason", x.reason);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, shipment_cancelled>> fields(T& x, F&& f) {
  f("order_id", x.order_id);
  f("tracking_id", x.tracking_id);
  f("carrier", x.carrier);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, breaker_transitioned>> fields(T& x, F&& f) {
  f("breaker", x.breaker);
  f("from", x.from);
  f("to", x.to);
  f("failures", x.failures);
  f("reason", x.reason);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, pool_resized>> fields(T& x, F&& f) {
  f("pool", x.pool);
  f("from_size", x.from_size);
  f("to_size", x.to_size);
  f("reason", x.reason);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, actor_restarted>> fields(T& x, F&& f) {
  f("actor", x.actor);
  f("reason", x.reason);
  f("restarts", x.restarts);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, providers_configured>> fields(T& x, F&& f) {
  f("gateways", x.gateways);
  f("carriers", x.carriers);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, catalog_price_set>> fields(T& x, F&& f) {
  f("sku", x.sku);
  f("price_cents", x.price_cents);
  f("currency", x.currency);
  f("set_by", x.set_by);
}

template <class T, class F>
std::enable_if_t<std::is_same_v<std::decay_t<T>, catalog_entry_withdrawn>> fields(T& x, F&& f) {
  f("sku", x.sku);
  f("withdrawn_by", x.withdrawn_by);
}

} // namespace keel::events
