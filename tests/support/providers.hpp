#pragma once

#include <string>
#include <vector>

namespace keel::test {

/// The simulated providers the test pipelines run with
/// (actors::simulate_providers' defaults).
inline const std::vector<std::string> gateways{"gw-primary", "gw-secondary"};
inline const std::vector<std::string> carriers{"carrier-a", "carrier-b"};

} // namespace keel::test
