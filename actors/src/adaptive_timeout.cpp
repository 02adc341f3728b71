#include "keel/actors/adaptive_timeout.hpp"

#include <algorithm>
#include <cmath>

namespace keel::actors {

latency_window::latency_window(std::size_t capacity)
  : samples_(std::max<std::size_t>(capacity, 1)) {
}

void latency_window::record(duration x) {
  samples_[next_] = x;
  next_ = (next_ + 1) % samples_.size();
  filled_ = std::min(filled_ + 1, samples_.size());
}

duration latency_window::quantile(double q) const {
  if (filled_ == 0)
    return duration::zero();
  // Until the ring wraps, the samples are the first `filled_` slots.
  std::vector<duration> sorted(samples_.begin(),
                               samples_.begin() + static_cast<std::ptrdiff_t>(filled_));
  // Nearest rank: the smallest sample with at least q of all samples at or
  // below it. The epsilon keeps q * n from rounding up past an exact rank.
  auto rank = std::ceil(std::clamp(q, 0.0, 1.0) * static_cast<double>(filled_) - 1e-9);
  auto index = static_cast<std::size_t>(std::max(rank, 1.0)) - 1;
  auto nth = sorted.begin() + static_cast<std::ptrdiff_t>(index);
  std::nth_element(sorted.begin(), nth, sorted.end());
  return *nth;
}

duration adaptive_timeout(const adaptive_timeout_config& cfg, duration observed_p99, double load) {
  auto factor = observed_p99 < cfg.fast ? 1.0 : observed_p99 < cfg.slow ? 2.5 : 5.0;
  if (load > cfg.high_load)
    factor *= cfg.high_load_factor;
  return duration{std::llround(static_cast<double>(cfg.base.count()) * factor)};
}

} // namespace keel::actors
