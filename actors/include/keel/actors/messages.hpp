#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>

#include <caf/atom.hpp>
#include <caf/fwd.hpp>
#include <caf/meta/type_name.hpp>

#include "keel/events/commands.hpp"
#include "keel/events/reasons.hpp"
#include "keel/events/types.hpp"

/// The messages between Keel's actors: atoms, the replies of each service,
/// and `inspect` overloads for every command, so every message can cross a
/// node boundary later (`add_message_types` registers them).
///
/// Every actor interface, one line per handler:
///
///   orders (the entry point)
///     place_order                 -> order_view   (after order_placed is durable)
///     cancel_order                -> order_view   | not_cancellable
///     (get_atom, order id)        -> order_view   | not_found
///     (in_flight_atom)            -> vector<string> (ids of the sagas in flight)
///   inventory (supervisor; routed to a shard by SKU)
///     reserve_stock               -> stock_reply  (reserved, or refused with the short line)
///     release_stock, commit_stock -> stock_reply
///     set_stock                   -> stock_reply
///     (get_atom, sku)             -> stock_reply  (levels)
///     (forget_atom, sku)          -> stock_reply  (drops the SKU's cached state; ok
///                                                  false while an append of it is in flight)
///   payment (supervisor; routed to a shard by order id)
///     authorize_payment           -> payment_reply (authorized | declined | unavailable)
///     capture_payment, void_payment, refund_payment -> payment_reply
///   shipping (supervisor; routed by order id)
///     schedule_shipment, cancel_shipment -> shipment_reply
///   provider adapters (one supervisor per gateway or carrier)
///     provider_request            -> provider_answer | provider_failure | timeout
///   any supervised child
///     (crash_atom)                -> never answers: the child throws (fault injection)
namespace keel::actors {

using get_atom = caf::atom_constant<caf::atom("get")>;
using crash_atom = caf::atom_constant<caf::atom("crash")>;
using persisted_atom = caf::atom_constant<caf::atom("persisted")>;
using restart_atom = caf::atom_constant<caf::atom("restart")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;
using answer_atom = caf::atom_constant<caf::atom("answer")>;
using timeout_atom = caf::atom_constant<caf::atom("timeout")>;
using redrive_atom = caf::atom_constant<caf::atom("redrive")>;
using park_atom = caf::atom_constant<caf::atom("park")>;
using done_atom = caf::atom_constant<caf::atom("done")>;
using forget_atom = caf::atom_constant<caf::atom("forget")>;
using in_flight_atom = caf::atom_constant<caf::atom("inflight")>;

/// The answer of inventory. For a refused reservation, `sku`, `requested`
/// and `available` name the first short line.
struct stock_reply {
  bool ok = true;
  std::string sku;
  std::uint32_t requested = 0;
  std::int64_t available = 0;
  /// Levels, for queries and set_stock.
  std::int64_t on_hand = 0;
  std::int64_t reserved = 0;
  /// The stock event this answer records (the first of several, the
  /// refusal); none when nothing was appended (a repeated command).
  events::event_id event{};
};

/// The answer of the payment service.
struct payment_reply {
  enum class outcome : std::uint8_t { done = 0, authorized, declined, unavailable };
  outcome result = outcome::done;
  std::string payment_id;
  std::string provider;
  std::string reason;
  /// The payment event recording this outcome; none when nothing was
  /// recorded (a repeated command, a failed settle).
  events::event_id event{};
};

/// The answer of the shipping service.
struct shipment_reply {
  enum class outcome : std::uint8_t { done = 0, scheduled, failed, unavailable };
  outcome result = outcome::done;
  std::string tracking_id;
  std::string carrier;
  std::int64_t estimated_delivery_us = 0;
  std::string reason;
  /// The shipment event recording this outcome; none when nothing was recorded.
  events::event_id event{};
};

/// A call to one external provider (through its adapter).
struct provider_request {
  std::string operation;
  std::string idempotency_key;
  std::int64_t amount_cents = 0;
};

/// A provider's business answer. Gateway faults are errors
/// (`provider_failure`, `timeout`), not answers.
struct provider_answer {
  bool declined = false;
  std::string reference;
  std::uint32_t delivery_days = 0;
  std::string reason;
};

/// What a client sees of an order.
struct order_view {
  std::string order_id;
  /// "placed", "stock_reserved", ..., "completed", "rejected", "cancelled".
  std::string status;
  std::string reason;
  std::int64_t total_cents = 0;
  std::string payment_id;
  std::string tracking_id;
  std::int64_t estimated_delivery_us = 0;
  /// True when this call created the order (false: it existed already).
  bool created = false;
  /// The code of `reason` when the order ends (or is ending) other than
  /// completed.
  events::end_reason reason_code = events::end_reason::unspecified;
};

// -- inspect -------------------------------------------------------------------

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stock_reply& x) {
  return f(caf::meta::type_name("stock_reply"), x.ok, x.sku, x.requested, x.available, x.on_hand,
           x.reserved, x.event);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, payment_reply& x) {
  return f(caf::meta::type_name("payment_reply"), x.result, x.payment_id, x.provider, x.reason,
           x.event);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, shipment_reply& x) {
  return f(caf::meta::type_name("shipment_reply"), x.result, x.tracking_id, x.carrier,
           x.estimated_delivery_us, x.reason, x.event);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, provider_request& x) {
  return f(caf::meta::type_name("provider_request"), x.operation, x.idempotency_key,
           x.amount_cents);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, provider_answer& x) {
  return f(caf::meta::type_name("provider_answer"), x.declined, x.reference, x.delivery_days,
           x.reason);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, order_view& x) {
  return f(caf::meta::type_name("order_view"), x.order_id, x.status, x.reason, x.total_cents,
           x.payment_id, x.tracking_id, x.estimated_delivery_us, x.created, x.reason_code);
}

/// Registers every message type of Keel's actors with `cfg` (needed for
/// messages that cross a node boundary).
void add_message_types(caf::actor_system_config& cfg);

} // namespace keel::actors

namespace keel::events {

/// Adapts a `serialize(ar, version)` member (written for cereal) to CAF's
/// inspectors, so commands and events travel as messages without a second
/// field list.
template <class Inspector>
struct caf_field_adapter {
  using result_type = typename Inspector::result_type;
  Inspector& f;
  std::conditional_t<std::is_void_v<result_type>, int, result_type> result{};
  template <class... Ts>
  void operator()(Ts&... xs) {
    if constexpr (std::is_void_v<typename Inspector::result_type>)
      f(xs...);
    else if (!result)
      result = f(xs...);
  }
};

template <class Archive>
struct has_fields_probe {
  template <class... Ts>
  void operator()(Ts&...) {
  }
};

/// T has `serialize(ar, version)`.
template <class T, class = void>
struct has_versioned_fields : std::false_type {};

template <class T>
struct has_versioned_fields<T, std::void_t<decltype(std::declval<T&>().serialize(
                                 std::declval<has_fields_probe<int>&>(), std::uint32_t{0}))>>
  : std::true_type {};

/// T has `serialize(ar)` (nested value types: order_line, address).
template <class T, class = void>
struct has_plain_fields : std::false_type {};

template <class T>
struct has_plain_fields<
  T, std::void_t<decltype(std::declval<T&>().serialize(std::declval<has_fields_probe<int>&>()))>>
  : std::true_type {};

template <class T>
struct has_fields
  : std::integral_constant<bool, has_versioned_fields<T>::value || has_plain_fields<T>::value> {};

template <class T, class = void>
struct schema_of : std::integral_constant<std::uint32_t, 1> {};

template <class T>
struct schema_of<T, std::void_t<decltype(T::schema_version)>>
  : std::integral_constant<std::uint32_t, T::schema_version> {};

template <class Inspector, class T>
std::enable_if_t<has_fields<T>::value, typename Inspector::result_type> inspect(Inspector& f,
                                                                               T& x) {
  caf_field_adapter<Inspector> adapter{f};
  if constexpr (has_versioned_fields<T>::value)
    x.serialize(adapter, schema_of<T>::value);
  else
    x.serialize(adapter);
  if constexpr (!std::is_void_v<typename Inspector::result_type>)
    return std::move(adapter.result);
}

} // namespace keel::events
