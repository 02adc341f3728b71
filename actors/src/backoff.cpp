#include "keel/actors/backoff.hpp"

#include <algorithm>
#include <cmath>

namespace keel::actors {

namespace {

// Uniform in [0, 1) from the top 53 bits: unlike std::uniform_real_distribution
// the same seed gives the same delays with every standard library.
double unit(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

} // namespace

duration backoff_delay(const backoff_policy& policy, std::uint32_t attempt, std::mt19937_64& rng) {
  auto cap = static_cast<double>(policy.max.count());
  auto exponent = static_cast<double>(std::max<std::uint32_t>(attempt, 1) - 1);
  auto base = static_cast<double>(policy.initial.count()) * std::pow(policy.multiplier, exponent);
  // pow overflows to inf (or NaN for odd inputs) long before attempts run out.
  if (!(base <= cap))
    base = cap;
  auto factor = 1.0 - policy.jitter + 2.0 * policy.jitter * unit(rng);
  auto ceiling = std::max(0.0, cap * (1.0 + std::max(policy.jitter, 0.0)));
  auto delay = std::clamp(base * factor, 0.0, ceiling);
  return duration{static_cast<duration::rep>(delay)};
}

restart_budget::restart_budget(std::uint32_t intensity, duration period)
  : intensity_(intensity), period_(period) {
}

bool restart_budget::allow(steady_time now) {
  // As OTP's supervisor: a restart exactly `period` ago still counts.
  while (!restarts_.empty() && restarts_.front() < now - period_)
    restarts_.pop_front();
  restarts_.push_back(now);
  return restarts_.size() <= intensity_;
}

} // namespace keel::actors
