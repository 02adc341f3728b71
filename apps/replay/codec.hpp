#pragma once

#include <string>

#include <caf/expected.hpp>
#include <nlohmann/json.hpp>

#include "model.hpp"

/// JSON forms of commands and of history files.
///
/// History file, format 1 (one JSON document, see README.md):
///
///     {"format": "keel-replay-history", "format_version": 1,
///      "order_id": "o-1",
///      "policy": {"max_payment_attempts": 10, "payment_deadline_us": 1800000000},
///      "events": [
///        {"position": 2, "version": 1, "type": "order_placed",
///         "timestamp_us": 1800000000000000, "time": "2027-01-15T08:00:00.000000Z",
///         "data": {...the event's fields, as events::to_json...},
///         "commands": [{"command": "reserve_stock", "lines": [...]}]},
///        ...]}
///
/// `time` is informational (readers ignore it); unknown members are ignored,
/// so later versions may add members without breaking readers of version 1.
namespace keel::replay {

/// The name of the history format (member "format").
constexpr const char* history_format = "keel-replay-history";

/// The history format version this build writes and reads.
constexpr int history_format_version = 1;

/// Renders a decider command as `{"command": name, fields...}`. The order id
/// is left out (it is the history's); lines keep the decider's order.
nlohmann::json command_json(const actors::saga_command& cmd);

/// Whether recorded command `recorded` agrees with the decider's `cmd`
/// without rendering `cmd` (the fast path of `check`). exact: same name, the
/// same fields, equal values. evidence: same name; only the fields
/// `recorded` holds are compared; lines per SKU, and a `"partial": true`
/// command may hold fewer SKUs.
bool command_equals(const actors::saga_command& cmd, const nlohmann::json& recorded,
                    match_mode mode);

/// Whether two lists of lines hold the same quantity per SKU (`partial`:
/// every SKU of `recorded` with the quantity `expected` has for it).
bool lines_match(const nlohmann::json& expected, const nlohmann::json& recorded, bool partial);

/// Renders `h` as a history file document, members in the order shown
/// above (a command's name first). `extra` members (e.g. what the store
/// check found at export time) are added at the top level.
nlohmann::ordered_json history_json(const history& h, const nlohmann::json& extra = {});

/// Parses a history file. Errors (`invalid_argument`) name what is wrong:
/// the line and column of a JSON syntax error, or the member path of a
/// missing or mistyped field ("events[3].data.lines[0].quantity: expected an
/// unsigned integer"), an unknown event type, or versions out of order.
caf::expected<history> parse_history(const std::string& text);

} // namespace keel::replay
