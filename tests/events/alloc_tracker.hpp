#pragma once

#include <cstddef>

namespace keel::test {

/// Starts (true: resetting the maximum) or stops tracking allocations made
/// through operator new, which this test binary replaces.
void track_allocations(bool on);

/// Whether this build can track allocations (not under AddressSanitizer).
bool tracking_allocations();

/// The largest single allocation seen while tracking, in bytes.
std::size_t largest_allocation();

} // namespace keel::test
