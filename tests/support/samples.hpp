#pragma once

// One fixed sample of every event type: the golden corpus is made of these
// (tests/golden/, written by keel-golden, decoded by events_tests).

#include "keel/events/event.hpp"

namespace keel::test {

/// Returns the sample of the event type with index `i` in `events::event`.
events::event sample_event(std::size_t i);

} // namespace keel::test
