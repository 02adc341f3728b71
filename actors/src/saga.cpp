#include "keel/actors/saga.hpp"

#include <iterator>
#include <type_traits>
#include <utility>

namespace keel::actors {

namespace {

template <class T, class... Ts>
constexpr bool is_one_of = (std::is_same_v<T, Ts> || ...);

template <class T>
constexpr bool is_order_event
  = is_one_of<T, events::order_placed, events::order_rejected, events::order_stock_reserved,
              events::order_payment_authorized, events::order_payment_pending,
              events::order_shipment_scheduled, events::order_payment_captured,
              events::order_completed, events::order_cancel_requested, events::order_stock_released,
              events::order_payment_voided, events::order_payment_refunded, events::order_cancelled,
              events::order_stock_refused, events::order_payment_declined,
              events::order_shipment_failed, events::order_shipment_cancelled>;

/// The step a saga waits for; its commands are what `resume` issues.
enum class step : std::uint8_t {
  none,
  reserve,
  authorize,
  schedule,
  capture_and_commit,
  cancel_shipment,
  void_payment,
  release_stock,
  record_rejected,
  record_cancelled,
};

const char* step_name(step x) {
  switch (x) {
    case step::none: return "nothing";
    case step::reserve: return "reserve_stock";
    case step::authorize: return "authorize_payment";
    case step::schedule: return "schedule_shipment";
    case step::capture_and_commit: return "capture_payment and commit_stock";
    case step::cancel_shipment: return "cancel_shipment";
    case step::void_payment: return "void_payment";
    case step::release_stock: return "release_stock";
    case step::record_rejected: return "record_rejected";
    case step::record_cancelled: return "record_cancelled";
  }
  return "invalid";
}

/// Undo the latest step still in effect: shipment, then payment, then stock.
step next_compensation(const order_state& st) {
  if (!st.tracking_id.empty())
    return step::cancel_shipment;
  if (!st.payment_id.empty())
    return step::void_payment;
  if (st.stock_held)
    return step::release_stock;
  return st.ending == order_status::rejected ? step::record_rejected : step::record_cancelled;
}

/// A parked payment (pending_payment) waits for authorize as well: `resume`
/// re-drives it when it is due.
step outstanding(const order_state& st) {
  switch (st.status) {
    case order_status::placed: return step::reserve;
    case order_status::stock_reserved:
    case order_status::pending_payment: return step::authorize;
    case order_status::payment_authorized: return step::schedule;
    case order_status::shipment_scheduled: return step::capture_and_commit;
    case order_status::compensating: return next_compensation(st);
    default: return step::none;
  }
}

std::vector<saga_command> commands_of(step s, const order_state& st) {
  const auto& id = st.order_id;
  switch (s) {
    case step::none: return {};
    case step::reserve: return {events::reserve_stock{id, st.lines}};
    case step::authorize:
      return {events::authorize_payment{id, st.total_cents, st.currency, authorization_key(id),
                                        st.premium}};
    case step::schedule: return {events::schedule_shipment{id, st.shipping_address, st.lines}};
    case step::capture_and_commit:
      return {events::capture_payment{id, st.payment_id}, events::commit_stock{id, st.lines}};
    case step::cancel_shipment: return {events::cancel_shipment{id, st.tracking_id}};
    case step::void_payment: return {events::void_payment{id, st.payment_id}};
    case step::release_stock: return {events::release_stock{id, st.lines}};
    case step::record_rejected: return {record_rejected{st.reason_detail, st.reason_code}};
    case step::record_cancelled: return {record_cancelled{st.reason_detail, st.reason_code}};
  }
  return {};
}

std::vector<saga_command> drive(const order_state& st) {
  return commands_of(outstanding(st), st);
}

/// The step whose command this outcome answers; none for events that answer
/// no command (order_placed, order_cancel_requested, order_payment_refunded).
template <class T>
constexpr step answered_step() {
  using namespace events;
  if constexpr (is_one_of<T, order_stock_reserved, order_stock_refused>)
    return step::reserve;
  else if constexpr (is_one_of<T, order_payment_authorized, order_payment_declined,
                               order_payment_pending>)
    return step::authorize;
  else if constexpr (is_one_of<T, order_shipment_scheduled, order_shipment_failed>)
    return step::schedule;
  else if constexpr (is_one_of<T, order_payment_captured, order_completed>)
    return step::capture_and_commit;
  else if constexpr (std::is_same_v<T, order_shipment_cancelled>)
    return step::cancel_shipment;
  else if constexpr (std::is_same_v<T, order_payment_voided>)
    return step::void_payment;
  else if constexpr (std::is_same_v<T, order_stock_released>)
    return step::release_stock;
  else if constexpr (std::is_same_v<T, order_rejected>)
    return step::record_rejected;
  else if constexpr (std::is_same_v<T, order_cancelled>)
    return step::record_cancelled;
  else
    return step::none;
}

template <class T>
bool fits(const order_state& st, const T&) {
  if constexpr (std::is_same_v<T, events::order_placed>)
    return st.status == order_status::none;
  else if constexpr (std::is_same_v<T, events::order_cancel_requested>)
    return can_cancel(st);
  else if constexpr (std::is_same_v<T, events::order_payment_refunded>)
    return st.status != order_status::none && !is_terminal(st.status) && !st.payment_id.empty();
  else
    return outstanding(st) == answered_step<T>();
}

/// Returns why `x` does not fit `st`, or an empty string.
template <class T>
std::string misfit(const order_state& st, [[maybe_unused]] const T& x) {
  if constexpr (!is_order_event<T>) {
    return std::string{T::type_name} + " is not an order event";
  } else {
    if (st.status != order_status::none && x.order_id != st.order_id)
      return std::string{T::type_name} + " of order " + x.order_id + " in the saga of order "
             + st.order_id;
    if (fits(st, x))
      return {};
    auto why = std::string{T::type_name} + " in status " + to_string(st.status);
    if (st.status == order_status::compensating)
      why += std::string{" (awaiting "} + step_name(outstanding(st)) + ")";
    return why;
  }
}

std::vector<saga_command> compensate(order_state& st, order_status ending,
                                     events::end_reason code, std::string detail) {
  st.status = order_status::compensating;
  st.ending = ending;
  st.reason_code = code;
  st.reason_detail = std::move(detail);
  return drive(st);
}

/// Records the terminal reason of `x` (order_rejected / order_cancelled).
template <class T>
void take_reason(order_state& st, const T& x) {
  st.reason_code = x.code;
  st.reason_detail = x.reason;
}

std::vector<saga_command> cancel_or_advance(order_state& st, order_status next) {
  if (st.cancel_requested)
    return compensate(st, order_status::cancelled, events::end_reason::cancelled_by_customer, {});
  st.status = next;
  return drive(st);
}

// -- folds: `st` is a copy; the event is known to fit it ----------------------

struct context {
  std::int64_t at_us;
  const saga_policy& policy;
};

std::vector<saga_command> apply(order_state& st, const events::order_placed& x, context c) {
  st.status = order_status::placed;
  st.order_id = x.order_id;
  st.customer_id = x.customer_id;
  st.lines = x.lines;
  st.currency = x.currency;
  st.shipping_address = x.shipping_address;
  st.premium = x.premium;
  st.total_cents = x.total_cents;
  st.placed_at_us = c.at_us;
  return drive(st);
}

std::vector<saga_command> apply(order_state& st, const events::order_stock_reserved&, context) {
  st.stock_held = true;
  return cancel_or_advance(st, order_status::stock_reserved);
}

std::vector<saga_command> apply(order_state& st, const events::order_stock_refused& x, context) {
  if (x.partially_reserved)
    st.stock_held = true;
  return compensate(st, order_status::rejected, events::end_reason::out_of_stock,
                    events::out_of_stock_detail(x.sku, x.requested, x.available));
}

std::vector<saga_command> apply(order_state& st, const events::order_payment_authorized& x,
                                context) {
  st.payment_id = x.payment_id;
  return cancel_or_advance(st, order_status::payment_authorized);
}

std::vector<saga_command> apply(order_state& st, const events::order_payment_declined& x, context) {
  return compensate(st, order_status::cancelled, events::end_reason::payment_declined, x.reason);
}

std::vector<saga_command> apply(order_state& st, const events::order_payment_pending& x,
                                context c) {
  st.payment_attempts = x.attempt;
  st.retry_at_us = x.retry_at_us;
  st.pending_reason = x.reason;
  if (st.cancel_requested)
    return compensate(st, order_status::cancelled, events::end_reason::cancelled_by_customer, {});
  auto attempts = std::to_string(x.attempt) + " attempts";
  auto unavailable = events::end_reason::payment_unavailable;
  if (x.attempt >= c.policy.max_payment_attempts)
    return compensate(st, order_status::cancelled, unavailable, attempts);
  if (c.at_us - st.placed_at_us >= c.policy.payment_deadline_us)
    return compensate(st, order_status::cancelled, unavailable, attempts + ", deadline passed");
  st.status = order_status::pending_payment;
  return {park_payment{x.retry_at_us, x.attempt, st.premium}};
}

std::vector<saga_command> apply(order_state& st, const events::order_shipment_scheduled& x,
                                context) {
  st.tracking_id = x.tracking_id;
  st.carrier = x.carrier;
  st.estimated_delivery_us = x.estimated_delivery_us;
  return cancel_or_advance(st, order_status::shipment_scheduled);
}

std::vector<saga_command> apply(order_state& st, const events::order_shipment_failed& x, context) {
  return compensate(st, order_status::cancelled, events::end_reason::shipping_failed, x.reason);
}

std::vector<saga_command> apply(order_state&, const events::order_payment_captured&, context) {
  return {};
}

std::vector<saga_command> apply(order_state& st, const events::order_completed&, context) {
  st.status = order_status::completed;
  st.stock_held = false;
  return {};
}

std::vector<saga_command> apply(order_state& st, const events::order_cancel_requested&, context) {
  st.cancel_requested = true;
  if (st.status == order_status::pending_payment)
    return compensate(st, order_status::cancelled, events::end_reason::cancelled_by_customer, {});
  return {};
}

std::vector<saga_command> apply(order_state& st, const events::order_shipment_cancelled&, context) {
  st.tracking_id.clear();
  return drive(st);
}

std::vector<saga_command> apply(order_state& st, const events::order_payment_voided&, context) {
  st.payment_id.clear();
  return drive(st);
}

std::vector<saga_command> apply(order_state& st, const events::order_payment_refunded&, context) {
  st.payment_id.clear();
  return {};
}

std::vector<saga_command> apply(order_state& st, const events::order_stock_released&, context) {
  st.stock_held = false;
  return drive(st);
}

std::vector<saga_command> apply(order_state& st, const events::order_rejected& x, context) {
  st.status = order_status::rejected;
  take_reason(st, x);
  return {};
}

std::vector<saga_command> apply(order_state& st, const events::order_cancelled& x, context) {
  st.status = order_status::cancelled;
  take_reason(st, x);
  return {};
}

} // namespace

std::string reason_of(const order_state& st) {
  return events::reason_text(st.reason_code, st.reason_detail);
}

const char* command_name(const saga_command& x) {
  static constexpr const char* names[] = {
    "reserve_stock",   "release_stock",    "commit_stock",      "authorize_payment",
    "capture_payment", "void_payment",     "schedule_shipment", "cancel_shipment",
    "record_rejected", "record_cancelled", "park_payment",
  };
  static_assert(std::size(names) == std::variant_size_v<saga_command>);
  return names[x.index()];
}

decision decide(const order_state& state, const events::event& ev, std::int64_t at_us,
                const saga_policy& policy) {
  decision result{state, {}, {}};
  std::visit(
    [&](const auto& x) {
      using T = std::decay_t<decltype(x)>;
      result.anomaly = misfit(state, x);
      if constexpr (is_order_event<T>) {
        if (result.anomaly.empty()) {
          result.commands = apply(result.state, x, context{at_us, policy});
          ++result.state.version;
        }
      }
    },
    ev);
  return result;
}

std::vector<saga_command> resume(const order_state& state) {
  return drive(state);
}

bool can_cancel(const order_state& state) {
  switch (state.status) {
    case order_status::placed:
    case order_status::stock_reserved:
    case order_status::payment_authorized:
    case order_status::pending_payment:
    case order_status::compensating: return true;
    default: return false;
  }
}

std::string authorization_key(const std::string& order_id) {
  return "auth-" + order_id;
}

} // namespace keel::actors
