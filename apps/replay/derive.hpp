#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "model.hpp"

/// The causal structure of a recorded saga, read from the stored causation
/// ids: which order event issued each step (the step is named by today's
/// decider's commands at that event), which service events the step caused
/// (they name the issuing event) and which outcomes answer it (they name the
/// issuing event or one of the step's service events). Nothing here restates
/// the saga's rules: an event without the causation id it needs is reported,
/// not placed by inference.
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
  /// Order events whose stored causation id is missing or contradicts the
  /// steps: an outcome names the driver or one of the step's service events;
  /// order_placed and order_cancel_requested name nothing.
  std::vector<unexplained_event> miscaused;
};

/// Derives the structure of `o` (its order stream must not be empty) from
/// the stored causation ids, steps named by `policy`'s decider.
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
