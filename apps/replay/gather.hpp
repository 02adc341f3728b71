#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "keel/storage/event_store.hpp"
#include "model.hpp"

/// Reading orders out of an event store (read-only; works on a secondary
/// instance beside a running node).
namespace keel::replay {

/// Reads order `order_id`: its stream, its payment and shipment streams, the
/// stock streams of its SKUs (events whose payload names the order) and,
/// with `with_breakers`, the breaker transitions around its lifetime.
/// Errors: `not_found` ("no such order: X") when the order stream is empty,
/// storage errors, records that do not decode.
caf::expected<order_records> read_order(const storage::event_store& store,
                                        const std::string& order_id, bool with_breakers);

/// What one pass over the global log read.
struct scan_stats {
  std::uint64_t events = 0;
  std::uint64_t orders = 0;
};

/// Reads the global log once and hands every order to `visit`, as soon as
/// its terminal event is read (or at the end, for orders still in flight).
/// Service events of an order read after its terminal event are handed over
/// in an `order_records` of their own with an empty `order` (the caller
/// reports them). Memory: the orders in flight at a time, plus one id per
/// ended order.
caf::expected<scan_stats> scan_orders(const storage::event_store& store,
                                      const std::function<void(order_records&)>& visit);

/// The order id a service event is about; empty for other events
/// (stock_adjusted, system events, order events).
std::string service_order_id(const events::event& ev);

/// Whether `ev` ends a saga (order_completed, order_rejected, order_cancelled).
bool is_terminal_event(const events::event& ev);

} // namespace keel::replay
