#pragma once

#include <functional>
#include <memory>
#include <string>

#include <caf/fwd.hpp>

#include "keel/actors/adaptive_timeout.hpp"
#include "keel/actors/autoscaler.hpp"
#include "keel/actors/fwd.hpp"
#include "keel/actors/registry.hpp"
#include "keel/actors/provider.hpp"
#include "keel/storage/fwd.hpp"

namespace keel::actors {

/// Settings of one provider adapter.
struct adapter_config {
  std::string name;
  provider_ptr provider;
  /// Calls waiting for or in flight to the provider (the bulkhead).
  std::size_t capacity = 20;
  adaptive_timeout_config timeout;
  std::shared_ptr<class registry> metrics;
  /// The worker pool inside the bulkhead and its autoscaler.
  pool_config pool;
  /// Where resizes are recorded ("$system-pool-<name>"); nothing when null.
  std::shared_ptr<storage::event_store> store;
  append_mode mode = append_mode::asynchronous;
  /// Timestamps of those events; the wall clock when null.
  std::function<std::int64_t()> now_us;
};

/// Spawns the adapter of one external provider: answers `provider_request`
/// with `provider_answer`, or `provider_failure` / `timeout` errors. Never
/// blocks: the provider's reply comes back as a message (delayed by the
/// simulator's latency, or sent by an HTTP provider's I/O thread).
///
/// - Bulkhead: at most `capacity` calls waiting or in flight; more are
///   `overloaded` at enqueue time.
/// - Pool: `workers` x `calls_per_worker` calls in flight at once; the rest
///   wait in FIFO order. A call's timeout runs from its arrival, waiting
///   included, and adapts to the observed p99 latency and the bulkhead's load.
/// - Autoscaler: every `pool.interval` the rules of autoscaler.hpp resize
///   the pool; each resize is appended (asynchronously) as `pool_resized` to
///   `$system-pool-<name>` and counted in the registry's `pool(name)`.
/// - A restarted adapter starts at `initial_workers` again (recorded as a
///   resize when the previous one had another size).
caf::actor spawn_provider_adapter(caf::actor_system& sys, adapter_config cfg);

} // namespace keel::actors
