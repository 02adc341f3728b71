#pragma once

#include <memory>
#include <vector>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "keel/actors/breaker.hpp"
#include "keel/actors/registry.hpp"
#include "services.hpp"

namespace keel::actors {

/// Settings of the payment retry queue.
struct retry_queue_config {
  caf::actor orders;
  /// The breakers of the payment gateways: nothing is re-driven while all
  /// are open, a trickle while the best is half-open.
  std::vector<std::shared_ptr<breaker_gauge>> gateways;
  /// Their bulkheads: a tick re-drives no more orders than they have free slots.
  std::vector<std::shared_ptr<bulkhead_gauge>> bulkheads;
  duration tick = std::chrono::milliseconds(100);
  std::size_t per_tick = 500;
  /// Orders parked at once; a park of one more order is dropped and
  /// counted (`retry_queue.overflow`): it stays pending_payment in its
  /// stream, and the next start re-fills the queue from the streams.
  std::size_t capacity = 1'000'000;
  service_env env;
};

/// Spawns the in-process payment retry queue. `(park_atom, order id,
/// retry_at_us, premium)` parks an order (again; at most `capacity`
/// orders); every tick, due orders go
/// back to `orders` as `(redrive_atom, id)`, premium customers first. The
/// queue holds no state of its own worth persisting: the order streams are
/// the source of truth and `pipeline::start` re-fills it from them.
caf::actor spawn_retry_queue(caf::actor_system& sys, retry_queue_config cfg);

} // namespace keel::actors
