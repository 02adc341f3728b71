#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "model.hpp"

/// The causal structure of a recorded saga: which order event issued the
/// step whose outcome a later event records, and which service events that
/// step caused. From the stored causation ids when the order's events carry
/// them (see `derive`); for older stores, from the order stream alone by
/// these rules.
///
/// Rules (they follow the outcome table in keel/actors/saga.hpp, not
/// today's decider, so a changed decider cannot hide its own divergence):
/// - Each outcome event answers one step: order_stock_reserved/_refused ->
///   reserve_stock; order_payment_authorized/_declined/_pending ->
///   authorize_payment; order_shipment_scheduled/_failed -> schedule_shipment;
///   order_payment_captured, order_completed -> capture_payment+commit_stock;
///   order_shipment_cancelled, order_payment_voided, order_stock_released,
///   order_rejected, order_cancelled -> their compensation / record step.
/// - The step was issued by the latest *driver* before it: order_placed, a
///   previous outcome (not order_payment_captured, which is half of its step),
///   or an order_cancel_requested recorded while the order was parked.
/// - An order_payment_pending parked the order (park_payment) when the saga
///   went on with a re-driven authorization, a cancel, or nothing yet; the
///   re-driven authorization is a command of the pending event.
/// - A step's service events lie between its driver's position and its last
///   outcome's position. Service events outside every step, or of a kind the
///   step does not cause, are unexplained.
/// - Stored causation ids are then checked against these steps (`miscaused`).
namespace keel::replay {

/// One executed step of the saga.
struct step_instance {
  /// "reserve_stock", "authorize_payment", "capture_payment+commit_stock", ...
  std::string name;
  /// Index (in the order stream) of the event that issued it.
  std::size_t driver = 0;
  /// Indexes of the first and last outcome events; none while in flight.
  std::optional<std::size_t> first_outcome;
  std::optional<std::size_t> last_outcome;
  /// Indexes (in `order_records::services`) of the service events it caused.
  std::vector<std::size_t> services;
};

/// A parked period: order_payment_pending until the saga went on.
struct park_period {
  std::size_t pending = 0;
  /// Index of the next order event, if any.
  std::optional<std::size_t> until;
};

/// The derived structure of one order.
struct derivation {
  std::vector<step_instance> steps;
  std::vector<park_period> parks;
  /// Per order event: the step instance it answers (index into `steps`).
  std::vector<std::optional<std::size_t>> answers;
  /// Per service event: the step instance that caused it.
  std::vector<std::optional<std::size_t>> caused_by;
  /// Per order event: the recorded commands (evidence form; see match_mode).
  std::vector<std::vector<nlohmann::json>> recorded;
  std::vector<unexplained_event> unexplained;
  /// Events whose stored causation id contradicts the derived steps: a
  /// service event must name its step's driver; an outcome the driver or one
  /// of the step's service events; order_placed and order_cancel_requested
  /// nothing. Events without a causation id (stores written before the
  /// pipeline stored them) are not checked.
  std::vector<unexplained_event> miscaused;
  /// Built from the stored causation ids (else by the rules above).
  bool by_causation = false;
};

/// Derives the structure of `o` (its order stream must not be empty): from
/// the stored causation ids when every event that has a cause names one
/// (steps named by `policy`'s decider at their driver), else from the order
/// stream by the rules above (stores written before causation ids).
derivation derive(const order_records& o, const actors::saga_policy& policy = {});

/// The store's recorded history of `o`: its order events with the commands
/// the evidence shows (match_mode::evidence).
history recorded_history(const order_records& o, const derivation& d,
                         const actors::saga_policy& policy);

/// What today's decider says about one recorded event.
struct decided {
  /// The commands it issues: `decide`'s, followed by `resume`'s when the
  /// event parks the order and the history goes on with the re-driven
  /// authorization (the retry queue re-drives the step; no event records it).
  std::vector<actors::saga_command> commands;
  /// Non-empty when the event does not fit the saga's state (see `decide`).
  std::string anomaly;
  /// With an anomaly: the commands of the step the saga awaited instead.
  std::vector<actors::saga_command> awaiting;
  /// The saga's status after the event.
  actors::order_status status = actors::order_status::none;
};

/// Runs today's decider over `evs` from an empty state.
std::vector<decided> replay_decisions(const std::vector<history_event>& evs,
                                      const actors::saga_policy& policy);

/// The history with today's decider's commands (what `export` writes): every
/// command in full (match_mode::exact).
history decided_history(const order_records& o, const actors::saga_policy& policy);

} // namespace keel::replay
