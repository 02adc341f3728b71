#pragma once

// The saga driver of `keel-bench sagas` and `keel-bench projections`: places orders
// into a running pipeline and keeps a number of them in flight, closed loop
// (a new order whenever one finishes) or open loop at a target rate.
//
// An order counts as in flight from its place_order until `on_finished`
// reports it terminal (completed, rejected, cancelled); an order reported
// parked (pending_payment) stays in flight until its re-driven saga ends.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "keel/actors/pipeline.hpp"
#include "keel/events/commands.hpp"

namespace keel::bench {

/// How the orders of a run look. Every random choice comes from `seed` and
/// the order's number, so a run's orders are the same for the same seed.
struct order_mix {
  /// Order ids are "<prefix>-<number, 8 digits, from 1>".
  std::string prefix = "o";
  /// SKUs "SKU-00001" .. sku_name(skus).
  std::uint64_t skus = 1000;
  /// Lines per order; each line is 1..max_units_per_line units of a random SKU.
  std::uint32_t lines = 1;
  std::uint64_t seed = 42;
  std::uint32_t premium_percent = 10;
  /// The first `hot_skus` SKUs get `hot_percent` of all lines (doorbusters).
  std::uint64_t hot_skus = 0;
  std::uint32_t hot_percent = 0;
};

/// The most units of one order line.
constexpr std::uint32_t max_units_per_line = 3;

/// "SKU-00001" for i = 1.
std::string sku_name(std::uint64_t i);

/// The `n`-th order (from 0) of `mix`.
events::place_order make_order(const order_mix& mix, std::uint64_t n);

/// What one run places and when.
struct drive_plan {
  using hook = std::function<void()>;
  std::uint64_t orders = 0;
  /// Orders in flight at most.
  std::uint64_t concurrency = 1;
  /// Orders per second (open loop, still at most `concurrency` in flight);
  /// 0 = closed loop.
  double rate = 0;
  order_mix mix;
  /// Run inside the driver once this many orders were placed / are terminal.
  std::vector<std::pair<std::uint64_t, hook>> at_placed;
  std::vector<std::pair<std::uint64_t, hook>> at_terminal;
};

/// Live counters of a run; written by the driver, read from any thread.
struct drive_counters {
  std::atomic<std::uint64_t> placed{0};
  std::atomic<std::uint64_t> completed{0};
  std::atomic<std::uint64_t> rejected{0};
  std::atomic<std::uint64_t> cancelled{0};
  /// Orders reported parked at least once, parked right now, and every
  /// parked report (an order parks again when a retry finds payment down).
  std::atomic<std::uint64_t> parked_orders{0};
  std::atomic<std::uint64_t> parked_now{0};
  std::atomic<std::uint64_t> parks{0};
  /// place_orders answered `overloaded` and sent again 20 ms later.
  std::atomic<std::uint64_t> place_retries{0};
  /// Terminal reports for an order already reported terminal.
  std::atomic<std::uint64_t> duplicate_reports{0};

  std::uint64_t terminal() const noexcept {
    return completed + rejected + cancelled;
  }
};

/// What a finished run measured.
struct drive_figures {
  std::uint64_t orders = 0;
  std::uint64_t completed = 0;
  std::uint64_t rejected = 0;
  std::uint64_t cancelled = 0;
  std::uint64_t parked_orders = 0;
  std::uint64_t parks = 0;
  std::uint64_t place_retries = 0;
  std::uint64_t duplicate_reports = 0;
  /// From the first place_order to the last terminal report, in seconds.
  double wall_s = 0;
  /// placed -> terminal of every order (finished_order timestamps), sorted.
  std::vector<double> latencies_ms;
  /// The order that took longest, for a look with keel-inspect.
  std::string slowest_order;

  std::uint64_t terminal() const noexcept {
    return completed + rejected + cancelled;
  }
  double sagas_per_s() const noexcept {
    return wall_s > 0 ? static_cast<double>(terminal()) / wall_s : 0.0;
  }
  /// The p-th percentile (0..100) of the latencies, in ms.
  double latency_ms(double p) const;
};

struct driver_shared;

/// One run: a driver actor that places the plan's orders into `orders`.
/// Lifecycle: `start` begins placing; `report` must receive the pipeline's
/// `on_finished` reports (thread-safe); `wait` blocks the calling thread.
/// The destructor stops the actor. Not copyable.
class saga_driver {
public:
  saga_driver(caf::actor_system& sys, caf::actor orders, drive_plan plan);
  ~saga_driver();
  saga_driver(const saga_driver&) = delete;
  saga_driver& operator=(const saga_driver&) = delete;

  void start();

  /// Forwards one on_finished report to the driver (any thread, never blocks).
  void report(const actors::finished_order& x) const;

  /// What to wait for.
  enum class until { all_placed, all_terminal };

  /// Waits until `what` happened. Gives up when a place_order failed for
  /// good, when `timeout_s` passed, or when no order was placed (all_placed)
  /// or became terminal (all_terminal) for `stall_s`. `tick` runs about once
  /// a second meanwhile. Returns an empty string, or why it gave up.
  std::string wait(until what, double timeout_s, double stall_s,
                   const std::function<void()>& tick) const;

  const drive_counters& counters() const noexcept;

  /// The figures; complete once `wait(all_terminal)` succeeded.
  drive_figures figures() const;

private:
  std::shared_ptr<driver_shared> shared_;
  caf::actor actor_;
};

} // namespace keel::bench
