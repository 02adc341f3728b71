#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "keel/events/system_events.hpp"

namespace keel::actors {

/// Clock type of every resilience primitive: the actor clock's time points,
/// so tests drive them in virtual time.
using steady_time = std::chrono::steady_clock::time_point;
using duration = std::chrono::nanoseconds;

/// Settings of a circuit breaker (DESIGN section 4).
struct breaker_config {
  /// Count-based sliding window: the outcomes of the last N calls.
  std::uint32_t window_size = 20;
  /// Open when this many failures are in the window (the reference
  /// incident's "open after 10 failures").
  std::uint32_t failure_threshold = 10;
  /// Open when at least `minimum_calls` are in the window and this fraction
  /// of them failed.
  double failure_rate_threshold = 0.5;
  /// Open when at least `minimum_calls` are in the window and this fraction
  /// of them were slow (took longer than `slow_call_duration`). 1.0 = only
  /// when every call was slow.
  double slow_call_rate_threshold = 1.0;
  duration slow_call_duration = std::chrono::seconds(5);
  std::uint32_t minimum_calls = 20;
  /// How long the breaker stays open before it lets trial calls through.
  duration wait_in_open = std::chrono::seconds(30);
  /// Trial calls permitted in half-open; all must succeed to close, one
  /// failure re-opens.
  std::uint32_t permitted_half_open_calls = 3;
};

/// A state change, to be recorded as `breaker_transitioned`.
struct breaker_transition {
  events::breaker_state from;
  events::breaker_state to;
  /// Failures in the window when the transition happened.
  std::uint32_t failures = 0;
  std::string reason;
};

/// Permission to make one call, returned by `breaker::acquire`.
struct breaker_ticket {
  /// False: fail fast with circuit_open.
  bool permitted = false;
  /// Identifies the breaker epoch the call belongs to; outcomes of calls
  /// from an earlier epoch (before the last transition) are ignored.
  std::uint64_t epoch = 0;
};

/// A circuit breaker: closed / open / half-open with a count-based window,
/// failure-rate and slow-call-rate thresholds, a wait in open and a number
/// of permitted half-open calls. Pure state machine: time is passed in, no
/// threads, no timers. Not thread-safe; owned by one actor.
class breaker {
public:
  explicit breaker(breaker_config cfg = {});

  /// Asks to make a call at `now`. In open state, moves to half-open once
  /// `wait_in_open` has passed (the transition is appended to `out`).
  breaker_ticket acquire(steady_time now, std::vector<breaker_transition>& out);

  /// Records the outcome of a permitted call that took `elapsed`. Failures
  /// are crashes, error replies and timeouts. Transitions go to `out`.
  void record(const breaker_ticket& ticket, bool success, duration elapsed,
              std::vector<breaker_transition>& out);

  /// Moves open -> half-open if the wait has passed at `now` (for timers).
  void tick(steady_time now, std::vector<breaker_transition>& out);

  events::breaker_state state() const noexcept {
    return state_;
  }

  /// When an open breaker lets trial calls through.
  steady_time open_until() const noexcept {
    return open_until_;
  }

  /// Failures among the outcomes in the current window.
  std::uint32_t failures_in_window() const noexcept;

  const breaker_config& config() const noexcept {
    return cfg_;
  }

private:
  void transition(events::breaker_state to, std::string reason,
                  std::vector<breaker_transition>& out);

  breaker_config cfg_;
  events::breaker_state state_ = events::breaker_state::closed;
  std::uint64_t epoch_ = 0;
  steady_time now_{};
  steady_time open_until_{};
  // Ring of the last window_size outcomes: bit 0 = failed, bit 1 = slow.
  std::vector<std::uint8_t> window_;
  std::size_t next_ = 0;
  std::size_t filled_ = 0;
  std::uint32_t half_open_in_flight_ = 0;
  std::uint32_t half_open_successes_ = 0;
};

} // namespace keel::actors
