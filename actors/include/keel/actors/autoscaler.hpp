#pragma once

#include <cstdint>
#include <string>

#include <caf/error.hpp>

#include "keel/actors/adaptive_timeout.hpp"
#include "keel/actors/breaker.hpp"

/// The worker pool of a provider adapter and the autoscaler that sizes it.
///
/// A provider adapter (one per payment gateway and carrier) runs its calls
/// on `workers` workers of `calls_per_worker` concurrent calls each; calls
/// beyond that wait in the adapter's FIFO (still inside its bulkhead, still
/// subject to their timeout). A worker stands for a connection to the
/// provider; the simulated providers have none, so there a worker is its
/// share of the adapter's concurrency limit.
///
/// Every `interval` the autoscaler folds what it saw since its last decision
/// into a `pool_window` and `decide_pool_size` applies the node's scaling
/// rules, first match wins:
///
///   1. slow under load: p99 > slow_p99 and (utilization > scale_up_utilization
///      or calls waited) -> shrink by 1 (down to min). A slow provider must not
///      absorb more capacity (the reference incident); fewer calls in flight
///      spare it, and the calls that queue here time out and trip its breaker
///      instead of piling up at the provider.
///   2. busy: utilization > scale_up_utilization or calls waited -> grow by 1
///      (up to max), but only when calls were answered in the window (proof
///      that the provider is fast: a provider that has not answered yet may be
///      slow or hung, and a slow one never gets here, see rule 1).
///   3. idle: utilization < scale_down_utilization, no call waited and the
///      most calls at once would have fitted one worker less, for
///      `shrink_after` windows in a row -> shrink by 1 (down to min). A pool
///      with bursty traffic keeps what its bursts need instead of shrinking
///      on a low average and growing back on the next burst.
///   4. otherwise hold (a slow provider at moderate load included).
///
/// Growth is fast (one worker per interval while busy), shrinking is slow
/// (only after a sustained idle spell), so a burst is not throttled by a
/// pool that shrank during a short lull. Pools start at their maximum (what
/// the adapter had before it had a pool): a node under load from its first
/// second is not throttled while the pool grows, and idle pools shrink
/// within about two seconds.
namespace keel::actors {

/// Settings of a provider adapter's worker pool and its autoscaler.
struct pool_config {
  /// Bounds and starting size of the pool, in workers.
  std::uint32_t min_workers = 1;
  std::uint32_t max_workers = 10;
  std::uint32_t initial_workers = 10;
  /// Concurrent calls per worker; 0 = the adapter's bulkhead capacity /
  /// max_workers (at least 1): 2 for a 20-call gateway, 20 for a 200-call
  /// carrier, so a pool at its maximum fills exactly its bulkhead.
  std::uint32_t calls_per_worker = 0;
  /// How often the autoscaler decides (from the window since the last
  /// decision). Short, so a pool grows from 1 to 10 workers within a second
  /// (one worker per decision).
  duration interval = std::chrono::milliseconds(100);
  /// Grow above this utilization (average busy slots / slots).
  double scale_up_utilization = 0.8;
  /// Below this utilization a window is idle (rule 3).
  double scale_down_utilization = 0.3;
  /// Idle windows in a row before the pool shrinks by one worker (then one
  /// more per idle window).
  std::uint32_t shrink_after = 10;
  /// A provider whose p99 latency in the window is above this is slow: its
  /// pool never grows.
  duration slow_p99 = std::chrono::seconds(1);
};

/// Checks `cfg`: 1 <= min <= initial <= max, interval > 0, 0 <= scale_down
/// < scale_up <= 1, slow_p99 > 0. Returns `invalid_argument` naming the
/// offending setting, or none.
caf::error validate(const pool_config& cfg);

/// The calls per worker of a pool over a bulkhead of `capacity` calls (see
/// pool_config::calls_per_worker).
std::uint32_t calls_per_worker(const pool_config& cfg, std::size_t capacity);

/// What the autoscaler saw in one window (since its last decision).
struct pool_window {
  /// The pool's size during the window.
  std::uint32_t workers = 0;
  std::uint32_t calls_per_worker = 1;
  /// Busy slots (calls in flight to the provider), averaged over the
  /// window's time.
  double busy = 0;
  /// Calls that found every slot taken and waited in the FIFO.
  std::uint64_t waited = 0;
  /// The most calls in the pool at once (at workers or waiting).
  std::uint64_t peak = 0;
  /// Calls that left the pool (answered or timed out in flight).
  std::uint64_t calls = 0;
  /// p99 latency of the provider (from a call's start at a worker to its
  /// answer or timeout) in the window; at least the age of the oldest call
  /// still in flight (a hung provider answers nothing).
  duration p99{0};
  /// Idle windows in a row before this one (see pool_decision::idle_streak).
  std::uint32_t idle_streak = 0;

  /// Average busy slots / slots, 0..1.
  double utilization() const noexcept;
};

/// The scaling rule that decided (see the rules above).
enum class pool_rule : std::uint8_t { hold, grow, shrink_slow, shrink_idle };

/// The autoscaler's answer to one window.
struct pool_decision {
  /// The new size (equal to the window's when the pool holds).
  std::uint32_t workers = 0;
  pool_rule rule = pool_rule::hold;
  /// Why, for the `pool_resized` event and logs: "utilization 0.93 > 0.80,
  /// p99 12 ms".
  std::string reason;
  /// Idle windows in a row including this one: pass it back as the next
  /// window's `idle_streak`.
  std::uint32_t idle_streak = 0;

  /// True when the size changes.
  bool resized(const pool_window& w) const noexcept {
    return workers != w.workers;
  }
};

/// Applies the scaling rules to `w` (`cfg` passes `validate`). Pure: no
/// clock, no state. The result is always within [min_workers, max_workers].
pool_decision decide_pool_size(const pool_config& cfg, const pool_window& w);

/// Collects one window's figures from a pool's events. Time is passed in
/// (the owning actor's clock). Not thread-safe; owned by one actor.
class pool_meter {
public:
  explicit pool_meter(steady_time now);

  /// From `now` on, `busy` calls are at workers and `waiting` wait (the
  /// average of busy slots is time-weighted; the peak counts both).
  void update(steady_time now, std::size_t busy, std::size_t waiting);

  /// A call found every slot taken and waits.
  void waited() noexcept {
    ++waited_;
  }

  /// A call left the pool after `latency` at its worker.
  void left(duration latency);

  /// Ends the window at `now` and starts the next one. `oldest_in_flight`
  /// is the age of the oldest call at a worker (zero when none).
  pool_window close(steady_time now, std::uint32_t workers, std::uint32_t calls_per_worker,
                    duration oldest_in_flight, std::uint32_t idle_streak);

private:
  steady_time start_;
  steady_time last_change_;
  std::size_t busy_ = 0;
  std::size_t in_pool_ = 0;
  std::size_t peak_ = 0;
  /// Sum of busy slots x nanoseconds since `start_`.
  double busy_ns_ = 0;
  std::uint64_t waited_ = 0;
  std::uint64_t calls_ = 0;
  latency_window latencies_{2048};
};

} // namespace keel::actors
