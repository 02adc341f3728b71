#pragma once

// Every saga path, recorded by the real pipeline on CAF's deterministic test
// coordinator (virtual clock, fixed seeds): the store the golden tests read
// and the source of the corpus under tests/replay/corpus/.

#include <string>
#include <vector>

#include "../actors/pipeline_fixture.hpp"

namespace keel::test {

/// The orders `record_scenarios` places, one per saga path, in order.
const std::vector<std::string>& scenario_orders();

/// Orders placed beside "pending-resumed" in the same payment outage, so
/// the gateways' breakers open (they complete too; not in the corpus).
const std::vector<std::string>& outage_orders();

/// The saga policy the scenarios run with (max 3 payment attempts, so one
/// order gives up); keel-replay needs `--max-payment-attempts 3` on the store.
constexpr unsigned scenario_max_payment_attempts = 3;

/// Starts `f`'s pipeline and records every scenario into its store, then
/// flushes the store. Same events, payloads, timestamps and positions in
/// every run; only event ids are random. Returns the store's directory.
std::string record_scenarios(pipeline_fixture& f);

} // namespace keel::test
