#pragma once

#include "keel/actors/simulated_provider.hpp"
#include "order_json.hpp"

namespace keel::runtime {

/// The whole fault state `f` asks for (absent fields at their defaults), its
/// outage starting at `now`.
actors::provider_faults to_faults(const fault_request& f, actors::steady_time now);

} // namespace keel::runtime
