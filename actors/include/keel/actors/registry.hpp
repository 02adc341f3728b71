#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "keel/events/system_events.hpp"

namespace keel::actors {

/// Live figures of one bulkhead (a service actor's capacity of pending
/// requests). Written by the actor, read from any thread.
struct bulkhead_gauge {
  std::string name;
  std::atomic<std::int64_t> capacity{0};
  std::atomic<std::int64_t> in_use{0};
  std::atomic<std::uint64_t> admitted{0};
  std::atomic<std::uint64_t> rejected{0};
};

/// Live figures of one circuit breaker. Written by its supervisor.
struct breaker_gauge {
  std::string name;
  std::atomic<std::uint8_t> state{0}; ///< events::breaker_state
  std::atomic<std::uint64_t> calls{0};
  std::atomic<std::uint64_t> failures{0};
  std::atomic<std::uint64_t> timeouts{0};
  std::atomic<std::uint64_t> fast_failed{0};
  std::atomic<std::uint64_t> transitions{0};

  events::breaker_state current() const noexcept {
    return static_cast<events::breaker_state>(state.load(std::memory_order_relaxed));
  }
};

/// Live figures of one supervisor.
struct supervisor_gauge {
  std::string name;
  std::atomic<std::uint64_t> restarts{0};
  std::atomic<std::uint64_t> crashes{0};
  std::atomic<std::uint64_t> resent{0};
  std::atomic<bool> escalated{false};
};

/// Live figures of one provider adapter's worker pool (see autoscaler.hpp).
/// Written by the adapter, read from any thread. A restarted adapter starts
/// again at its initial size.
struct pool_gauge {
  std::string name;
  /// Current size and its bounds, in workers.
  std::atomic<std::int64_t> workers{0};
  std::atomic<std::int64_t> min{0};
  std::atomic<std::int64_t> max{0};
  std::atomic<std::int64_t> calls_per_worker{0};
  /// Calls in flight at the workers, and calls waiting for a free slot.
  std::atomic<std::int64_t> busy{0};
  std::atomic<std::int64_t> waiting{0};
  /// Autoscaler decisions that grew or shrank the pool.
  std::atomic<std::uint64_t> scale_ups{0};
  std::atomic<std::uint64_t> scale_downs{0};
};

/// Every gauge of a pipeline by name, for metrics, health and tests.
/// Thread-safe; gauges live as long as the registry.
class registry {
public:
  std::shared_ptr<bulkhead_gauge> bulkhead(const std::string& name);
  std::shared_ptr<breaker_gauge> breaker(const std::string& name);
  std::shared_ptr<supervisor_gauge> supervisor(const std::string& name);
  /// The pool of provider `name` ("gw-primary", "carrier-a", ...).
  std::shared_ptr<pool_gauge> pool(const std::string& name);

  std::vector<std::shared_ptr<bulkhead_gauge>> bulkheads() const;
  std::vector<std::shared_ptr<breaker_gauge>> breakers() const;
  std::vector<std::shared_ptr<supervisor_gauge>> supervisors() const;
  /// Every pool gauge, ordered by name.
  std::vector<std::shared_ptr<pool_gauge>> pools() const;

  /// A named value (counter or gauge): "sagas.in_flight", "retry_queue.depth",
  /// "orders.completed", ...
  std::shared_ptr<std::atomic<std::int64_t>> value(const std::string& name);

  /// Every named value, by name.
  std::map<std::string, std::int64_t> values() const;

private:
  mutable std::mutex mtx_;
  std::map<std::string, std::shared_ptr<bulkhead_gauge>> bulkheads_;
  std::map<std::string, std::shared_ptr<breaker_gauge>> breakers_;
  std::map<std::string, std::shared_ptr<supervisor_gauge>> supervisors_;
  std::map<std::string, std::shared_ptr<pool_gauge>> pools_;
  std::map<std::string, std::shared_ptr<std::atomic<std::int64_t>>> values_;
};

} // namespace keel::actors
