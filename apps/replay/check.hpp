#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model.hpp"

/// `check`: replays a recorded history through today's decider and reports
/// every event where the two disagree.
namespace keel::replay {

/// One disagreement between today's decider and a recorded history.
struct divergence {
  /// "commands" (the decider would issue other commands after the event),
  /// "unexpected_event" (the event does not fit the decider's state: it
  /// records an outcome the decider did not wait for), or
  /// "unexplained_service_event" (a service event no recorded step caused),
  /// or "causation" (an event's stored causation id contradicts the steps).
  std::string kind;
  /// Where: the order event (or, for unexplained_service_event, the
  /// service event) by global position and stream@version.
  std::uint64_t position = 0;
  std::string stream;
  std::uint64_t version = 0;
  std::string type;
  std::int64_t timestamp_us = 0;
  /// One line saying what is wrong.
  std::string detail;
  /// Today's decider (for unexpected_event: the commands of the step it
  /// awaited) and the recorded side (for unexpected_event: the event).
  std::vector<nlohmann::json> expected;
  std::vector<nlohmann::json> recorded;
};

/// The outcome of checking one order.
struct check_report {
  std::string order_id;
  std::size_t events = 0;
  /// The decider's status after the last event.
  std::string status;
  /// When order_placed was recorded (relative times are from it).
  std::int64_t placed_us = 0;
  /// How the history's commands were compared.
  match_mode mode = match_mode::exact;
  std::vector<divergence> divergences;
};

/// Replays `h` and compares commands per `h.mode`.
check_report check(const history& h);

/// Whether recorded command `recorded` agrees with the decider's `expected`
/// under `mode` (evidence: only the fields `recorded` holds; lines per SKU;
/// a `"partial"` command may hold fewer lines).
bool command_matches(const nlohmann::json& expected, const nlohmann::json& recorded,
                     match_mode mode);

/// Renders one command on one line: `reserve_stock lines=[SKU-1 x2 @1250]`.
std::string command_line(const nlohmann::json& cmd);

/// Renders a report as text: nothing for a clean order unless `verbose`;
/// else a header line per order and, per divergence, its position and a
/// unified diff (`- expected` / `+ recorded`).
std::string render_text(const check_report& r, bool verbose);

/// Renders a report as one JSON object.
nlohmann::json render_json(const check_report& r);

} // namespace keel::replay
