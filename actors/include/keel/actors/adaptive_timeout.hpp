#pragma once

#include <cstdint>
#include <vector>

#include "keel/actors/breaker.hpp"

namespace keel::actors {

/// Latencies of the last N calls, for percentiles. Not thread-safe.
class latency_window {
public:
  explicit latency_window(std::size_t capacity = 1024);

  void record(duration x);

  /// The q-quantile (0..1) of the recorded latencies; zero when empty.
  duration quantile(double q) const;

  std::size_t size() const noexcept {
    return filled_;
  }

  /// Forgets every sample.
  void clear() noexcept {
    next_ = 0;
    filled_ = 0;
  }

private:
  std::vector<duration> samples_;
  std::size_t next_ = 0;
  std::size_t filled_ = 0;
};

/// Settings of the adaptive timeout of provider calls (DESIGN section 4).
struct adaptive_timeout_config {
  duration base = std::chrono::seconds(2);
  /// p99 thresholds and factors: x1 below `fast`, x2.5 below `slow`, x5 above.
  duration fast = std::chrono::seconds(1);
  duration slow = std::chrono::seconds(3);
  /// Extra factor when load (in use / capacity) exceeds `high_load`.
  double high_load = 0.8;
  double high_load_factor = 1.5;
};

/// The timeout for the next call given the observed p99 and the current
/// load (0..1): base x1 / x2.5 / x5 by p99, x1.5 more above high load.
duration adaptive_timeout(const adaptive_timeout_config& cfg, duration observed_p99, double load);

} // namespace keel::actors
