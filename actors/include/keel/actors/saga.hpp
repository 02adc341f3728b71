#pragma once

#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "keel/events/commands.hpp"
#include "keel/events/event.hpp"
#include "keel/events/order_status.hpp"
#include "keel/events/reasons.hpp"

/// The order saga's pure decider: `(state, event) -> (state, commands)`.
///
/// No I/O, no clock, no randomness: time comes in with each event (`at_us`,
/// the record's timestamp) and the retry time of a parked payment is part of
/// the `order_payment_pending` event the shell recorded. Replaying a recorded
/// order stream through `decide` therefore yields the same state and the same
/// commands every time, which is what `keel-replay check` relies on.
///
/// State machine (DESIGN section 2), one outstanding step at a time:
///
///   placed --reserve--> stock_reserved --authorize--> payment_authorized
///     --schedule--> shipment_scheduled --capture+commit--> completed
///   refused (nothing held)        -> compensating -> rejected (record only)
///   refused (other lines held)    -> compensating -> release -> rejected
///   payment declined              -> compensating -> release -> cancelled
///   payment unavailable           -> pending_payment (parked), re-driven by
///                                    `resume`; after max attempts or the
///                                    deadline -> compensating -> cancelled
///   shipment failed               -> compensating -> void -> release -> cancelled
///   cancel requested              -> once the outstanding step's outcome is
///                                    known: compensate every step done
///                                    (cancel shipment, void, release) -> cancelled
namespace keel::actors {

/// Where an order's saga stands (`keel/events/order_status.hpp`).
using events::order_status;
using events::is_terminal;

/// Limits the decider applies to parked payments.
struct saga_policy {
  /// A payment that was unavailable this many times is given up (compensate).
  std::uint32_t max_payment_attempts = 10;
  /// A payment still unavailable this long after the order was placed is
  /// given up (compensate). Microseconds.
  std::int64_t payment_deadline_us = 30LL * 60 * 1000 * 1000;
};

/// Everything the decider knows about one order, folded from its stream.
struct order_state {
  order_status status = order_status::none;
  std::string order_id;
  std::string customer_id;
  std::vector<events::order_line> lines;
  std::string currency;
  events::address shipping_address;
  bool premium = false;
  std::int64_t total_cents = 0;
  /// Timestamp of order_placed (microseconds since the epoch).
  std::int64_t placed_at_us = 0;
  /// Reservations may be held for this order (reserved, or refused after
  /// other lines were reserved) and have not been released.
  bool stock_held = false;
  /// The authorization to capture or void; empty when none or voided.
  std::string payment_id;
  /// The scheduled shipment; empty when none or cancelled.
  std::string tracking_id;
  std::string carrier;
  std::int64_t estimated_delivery_us = 0;
  /// A customer cancel was recorded.
  bool cancel_requested = false;
  /// Unavailable payment attempts so far (order_payment_pending events).
  std::uint32_t payment_attempts = 0;
  /// When a parked payment is due again (microseconds since the epoch).
  std::int64_t retry_at_us = 0;
  /// Why the last payment attempt was unavailable (order_payment_pending).
  std::string pending_reason;
  /// While compensating: the terminal status to end in (rejected or
  /// cancelled) and the reason recorded with it, as code and detail (its
  /// text: `reason_of`).
  order_status ending = order_status::none;
  events::end_reason reason_code = events::end_reason::unspecified;
  std::string reason_detail;
  /// Number of events folded (the stream version the state reflects).
  std::uint64_t version = 0;
  /// The id of the last event folded. Like `version`, set by whoever folds
  /// the stream (the shell), not by `decide`: the commands decided after
  /// it carry it as their causation.
  events::event_id last_event;
};

/// Saga-internal command: record `order_rejected{reason}` (terminal).
struct record_rejected {
  /// The detail; `code` says why (events/reasons.hpp).
  std::string reason;
  events::end_reason code = events::end_reason::unspecified;
  KEEL_FIELD_LIST(reason, code)
};

/// Saga-internal command: record `order_cancelled{reason}` (terminal).
struct record_cancelled {
  std::string reason;
  events::end_reason code = events::end_reason::unspecified;
  KEEL_FIELD_LIST(reason, code)
};

/// Saga-internal command: park the order on the payment retry queue until
/// `retry_at_us`; the shell passivates the saga.
struct park_payment {
  std::int64_t retry_at_us = 0;
  std::uint32_t attempt = 0;
  bool premium = false;
  KEEL_FIELD_LIST(retry_at_us, attempt, premium)
};

/// A command the shell executes. Service commands go to the services; the
/// shell records one order event per outcome (see `decide`).
using saga_command
  = std::variant<events::reserve_stock, events::release_stock, events::commit_stock,
                 events::authorize_payment, events::capture_payment, events::void_payment,
                 events::schedule_shipment, events::cancel_shipment, record_rejected,
                 record_cancelled, park_payment>;

/// Returns the command's name ("reserve_stock", "park_payment", ...).
const char* command_name(const saga_command& x);

/// The decider's answer to one event.
struct decision {
  order_state state;
  std::vector<saga_command> commands;
  /// Non-empty when the event did not fit the state (e.g. a second
  /// order_placed, an outcome after the end); the state is then unchanged
  /// and no commands are issued (not even the version moves). The shell must
  /// treat an anomaly as a bug: it recorded an event the saga did not wait for.
  /// Replay tools report it.
  std::string anomaly;
};

/// Folds `ev` (recorded at `at_us`) into `state` and returns the commands to
/// issue next. Outcomes the shell records for each command:
/// - reserve_stock: order_stock_reserved | order_stock_refused
/// - authorize_payment: order_payment_authorized | order_payment_declined |
///   order_payment_pending (attempt = state.payment_attempts + 1)
/// - schedule_shipment: order_shipment_scheduled | order_shipment_failed
/// - capture_payment + commit_stock (issued together): order_completed
/// - void_payment: order_payment_voided; release_stock: order_stock_released;
///   cancel_shipment: order_shipment_cancelled
/// - record_rejected / record_cancelled: order_rejected / order_cancelled
/// - park_payment: nothing (the pending event is already recorded)
/// Customer cancels are recorded as order_cancel_requested (check `can_cancel`
/// first); deciding it returns the compensations at once when no step is
/// outstanding (pending_payment), otherwise they follow the outstanding outcome.
decision decide(const order_state& state, const events::event& ev, std::int64_t at_us,
                const saga_policy& policy = {});

/// The text of the order's end reason (events::reason_text of its code and
/// detail); empty while it has none.
std::string reason_of(const order_state& st);

/// Returns the commands that (re-)drive the step `state` waits for: used
/// after a restart, when a parked payment is due, and after a cancel was
/// recorded while nothing was outstanding. Empty for terminal states.
/// Commands are idempotent at the services, so issuing them again is safe.
std::vector<saga_command> resume(const order_state& state);

/// Whether a customer cancel may still be recorded: true before the
/// shipment is scheduled (and while already compensating), false once
/// shipped, completed, rejected or cancelled, or before the order exists.
bool can_cancel(const order_state& state);

/// The idempotency key a provider receives for the order's authorization
/// ("auth-<order id>"); the same for every attempt.
std::string authorization_key(const std::string& order_id);

} // namespace keel::actors
