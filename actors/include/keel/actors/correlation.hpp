#pragma once

#include <string>

#include "keel/events/ids.hpp"

namespace keel::actors {

/// The correlation id of every event of order `order_id`'s saga (its own
/// stream and the inventory, payment and shipping events it causes): a
/// stable hash of the order id, so logs, Kafka headers and the tools join
/// on it without a lookup.
events::event_id correlation_of(const std::string& order_id);

} // namespace keel::actors
