#pragma once

// A running order pipeline for `keel-bench sagas` and `keel-bench projections`:
// the runtime's engine (a durable store with fsync per batch, an actor system
// on the normal scheduler, the pipeline with asynchronous appends, the
// default wall clock and the simulated providers of the embedded default)
// and a hook that routes `on_finished` to the current saga_driver.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "engine.hpp"
#include "measure.hpp"
#include "keel/actors/pipeline.hpp"
#include "keel/storage/event_store.hpp"
#include "saga_driver.hpp"

namespace keel::bench {

/// What a rig is built from.
struct rig_settings {
  /// The store's directory; empty: a fresh temporary one, removed at the end.
  std::string data;
  std::uint64_t seed = 42;
  /// Scheduler threads (the machine has 2 cores).
  std::size_t threads = 2;
  /// Short fault settings, so a payment outage is over in seconds: how long
  /// a provider breaker stays open, and the first delay of a parked payment.
  actors::duration breaker_wait = std::chrono::seconds(2);
  actors::duration payment_retry_initial = std::chrono::milliseconds(500);
};

/// Lifecycle: the constructor opens everything (exits 2 when it cannot);
/// the destructor stops the pipeline, waits for every actor and closes the
/// store. Used from one thread; drivers report from actor threads.
class saga_rig {
public:
  explicit saga_rig(const rig_settings& settings);
  ~saga_rig();
  saga_rig(const saga_rig&) = delete;
  saga_rig& operator=(const saga_rig&) = delete;

  actors::pipeline& pipeline() const noexcept {
    return engine_->pipeline();
  }
  storage::event_store& store() const noexcept {
    return engine_->store();
  }
  const actors::pipeline_config& config() const noexcept {
    return engine_->config().pipeline;
  }
  const std::string& path() const noexcept {
    return path_;
  }
  /// A prefix for order ids not used in this store yet: `base` when no
  /// order "<base>-..." exists, else "<base>r<last position>".
  std::string fresh_prefix(const std::string& base) const;

  /// Sets the units on hand of SKUs first..first+count-1 to `each`; returns
  /// once durable. Errors: the first failed set_stock.
  caf::error set_stock(std::uint64_t first, std::uint64_t count, std::int64_t each);

  /// Every call to either payment gateway fails (gateway error after the
  /// usual latency) for `d` from now.
  void payment_outage(actors::duration d);

  /// Creates a driver for `plan` (call its `start`); `on_finished` goes to
  /// it until the next launch or its destruction.
  std::shared_ptr<saga_driver> launch(drive_plan plan);

  /// Waits for `d` (see saga_driver::wait), printing progress to stderr
  /// every 10 s; when it gives up, prints why with the pipeline's gauges and
  /// exits 1.
  void await(const saga_driver& d, saga_driver::until what, double timeout_s,
             const std::string& label);

  /// Sums over the registry's gauges.
  std::uint64_t breaker_transitions() const;
  std::uint64_t bulkhead_rejections() const;
  /// Rejections of every bulkhead that rejected anything, by name.
  std::map<std::string, std::uint64_t> bulkhead_rejections_by_name() const;
  std::int64_t value(const std::string& name) const;

  /// One line per breaker that is not closed, or "all breakers closed".
  std::string breaker_summary() const;

  /// Prints `why` and the pipeline's gauges to stderr, removes a temporary
  /// store and exits 1 without waiting for actors that may never end.
  [[noreturn]] void fail(const std::string& why) const;

private:
  std::unique_ptr<temp_dir> tmp_;
  std::string path_;
  struct sink;
  std::shared_ptr<sink> sink_;
  std::unique_ptr<runtime::engine> engine_;
};

/// Resident set size of this process, in MB (0 when /proc is unavailable).
double rss_mb();

} // namespace keel::bench
