#include "faults.hpp"

#include <algorithm>

namespace keel::runtime {

actors::provider_faults to_faults(const fault_request& f, actors::steady_time now) {
  using ms = std::chrono::milliseconds;
  actors::provider_faults out;
  out.error_rate = f.error_rate;
  out.decline_rate = f.decline_rate;
  out.hang_rate = f.hang_rate;
  out.latency_median = ms{f.latency_ms};
  out.latency_p99 = f.latency_p99_ms < 0 ? out.latency_median * 5
                                         : std::max<actors::duration>(ms{f.latency_p99_ms},
                                                                      out.latency_median);
  out.outage_from = now;
  out.outage_until = now + ms{static_cast<std::int64_t>(f.outage_seconds * 1000)};
  out.outage_hangs = f.outage_hangs;
  return out;
}

} // namespace keel::runtime
