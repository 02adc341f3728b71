#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "keel/actors/saga.hpp"
#include "keel/events/event.hpp"
#include "keel/events/ids.hpp"

/// The data keel-replay works on: events read from a store, and histories
/// (an order stream with the commands recorded for each event) read from a
/// store or a history file. Plain values; not thread-safe.
namespace keel::replay {

/// One stored event and the parts of its record the tools show.
struct stored_event {
  std::uint64_t position = 0;
  std::string stream;
  std::uint64_t version = 0;
  std::string type;
  std::int64_t timestamp_us = 0;
  events::event_id id;
  events::event_id correlation_id;
  events::event_id causation_id;
  events::event data;
};

/// Everything a store holds about one order.
struct order_records {
  std::string order_id;
  /// Stream `order-<id>`, in version order.
  std::vector<stored_event> order;
  /// The order's inventory (`stock-<sku>`, by the order id in the payload),
  /// payment (`payment-<id>`) and shipping (`shipment-<id>`) events, in
  /// position order.
  std::vector<stored_event> services;
  /// Transitions of the breakers the order's calls went through, during its
  /// lifetime (and the last one before it when that left a breaker open), in
  /// position order. Filled for `show` only.
  std::vector<stored_event> breakers;
};

/// One event of an order stream with the commands recorded for it: the
/// commands the saga issued after deciding it. A command is a JSON object
/// `{"command": "<name>", <fields>}` (see `command_json`).
struct history_event {
  std::uint64_t position = 0;
  std::uint64_t version = 0;
  std::string type;
  std::int64_t timestamp_us = 0;
  events::event data;
  std::vector<nlohmann::json> commands;
};

/// How recorded commands are compared with the decider's.
enum class match_mode {
  /// Field by field, every field (history files written by `export`).
  exact,
  /// Only the fields the store recorded evidence of (service events and
  /// outcome events; see derive.hpp). A command marked `"partial": true`
  /// may list fewer lines than the decider's.
  evidence,
};

/// A service event the saga's recorded steps do not account for.
struct unexplained_event {
  stored_event event;
  /// Why it is unexplained ("after the order ended", "stock_released while
  /// awaiting authorize_payment").
  std::string why;
};

/// An order's recorded history: what `check` replays.
struct history {
  std::string order_id;
  actors::saga_policy policy;
  match_mode mode = match_mode::exact;
  std::vector<history_event> events;
  /// Store checks only: service events no recorded step explains.
  std::vector<unexplained_event> unexplained;
  /// Store checks only: events whose stored causation id contradicts the
  /// saga's steps (`why` says what it names and what the step expects).
  std::vector<unexplained_event> miscaused;
};

} // namespace keel::replay
