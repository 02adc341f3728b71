#pragma once

#include <cstdint>
#include <deque>
#include <random>

#include "keel/actors/breaker.hpp"

namespace keel::actors {

/// Exponential backoff with jitter.
struct backoff_policy {
  duration initial = std::chrono::milliseconds(100);
  duration max = std::chrono::seconds(30);
  double multiplier = 2.0;
  /// Each delay is scaled by a uniform factor in [1 - jitter, 1 + jitter].
  double jitter = 0.2;
};

/// Delay before attempt `attempt` (1 = the first retry): initial *
/// multiplier^(attempt-1), capped at max, then jittered (never above
/// max * (1 + jitter), never negative).
duration backoff_delay(const backoff_policy& policy, std::uint32_t attempt, std::mt19937_64& rng);

/// Restart intensity as in Erlang/OTP: at most `intensity` restarts within
/// any `period`; one more means the supervisor gives up and escalates.
class restart_budget {
public:
  restart_budget(std::uint32_t intensity, duration period);

  /// Records a restart at `now`. Returns false when it exceeds the budget
  /// (more than `intensity` restarts within the last `period`).
  bool allow(steady_time now);

  /// Restarts counted within the period ending at the last `allow`.
  std::size_t recent() const noexcept {
    return restarts_.size();
  }

private:
  std::uint32_t intensity_;
  duration period_;
  std::deque<steady_time> restarts_;
};

} // namespace keel::actors
