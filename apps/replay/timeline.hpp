#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "derive.hpp"
#include "model.hpp"

/// `show`: the causal timeline of one order, as text, JSON or an HTML page.
namespace keel::replay {

/// One event on the timeline.
struct timeline_row {
  std::uint64_t position = 0;
  std::string stream;
  std::uint64_t version = 0;
  std::int64_t timestamp_us = 0;
  /// "saga", "inventory", "payment", "shipping", "breaker" or "retry-queue".
  std::string lane;
  std::string type;
  /// The event's key fields on one line.
  std::string details;
  /// The command this event answers and the order event that issued it
  /// ("reserve_stock by @1 order_placed"); empty for events no command caused.
  std::string caused_by;
  std::optional<std::uint64_t> cause_version;
  std::string event_id;
  /// The record's causation id when one is stored (zero ids are left out).
  std::string causation_id;
  nlohmann::json data;
};

/// A step of the saga: from the event that issued it to its last outcome.
struct timeline_step {
  std::string name;
  std::string lane;
  std::uint64_t driver_version = 0;
  std::string driver_type;
  std::int64_t start_us = 0;
  std::int64_t end_us = 0;
  /// Still waiting for its outcome (end_us is the last service event).
  bool open = false;
  std::string outcome;
  std::optional<std::uint64_t> outcome_version;
  /// Times of the service events the step caused (ticks on its bar).
  std::vector<std::pair<std::int64_t, std::string>> ticks;
};

/// A period a breaker spent open or half-open.
struct breaker_span {
  std::string breaker;
  std::string state;
  std::int64_t from_us = 0;
  std::int64_t until_us = 0;
};

/// The timeline of one order.
struct timeline {
  std::string order_id;
  std::string correlation_id;
  std::string status;
  std::string reason;
  std::int64_t placed_us = 0;
  /// The last event's time.
  std::int64_t end_us = 0;
  std::size_t order_events = 0;
  std::size_t service_events = 0;
  std::size_t breaker_events = 0;
  std::vector<timeline_row> rows;
  std::vector<timeline_step> steps;
  std::vector<breaker_span> breakers;
};

/// Builds the timeline of `o` (read with breakers) from its derivation.
timeline build_timeline(const order_records& o, const derivation& d,
                        const actors::saga_policy& policy);

/// Renders `us` as a signed time: "+0.000 ms", "+12.345 ms", "+31.500 s".
std::string relative_time(std::int64_t us);

/// An aligned table of rows and a list of steps, for a terminal.
std::string render_text(const timeline& t);

/// One JSON document.
nlohmann::json render_json(const timeline& t);

/// A self-contained HTML page (inline CSS, no scripts, no external assets)
/// with a waterfall of the steps, parked periods and breaker states, and the
/// table of events. Every string from the store is escaped.
std::string render_html(const timeline& t);

/// Escapes `&<>"'` for HTML text and attribute values.
std::string html_escape(const std::string& s);

} // namespace keel::replay
