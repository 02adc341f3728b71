#pragma once

#include <memory>
#include <string>

#include <caf/fwd.hpp>

#include "keel/actors/adaptive_timeout.hpp"
#include "keel/actors/registry.hpp"
#include "keel/actors/simulated_provider.hpp"

namespace keel::actors {

/// Settings of one provider adapter.
struct adapter_config {
  std::string name;
  std::shared_ptr<simulated_provider> provider;
  /// Calls waiting for or in flight to the provider (the bulkhead).
  std::size_t capacity = 20;
  adaptive_timeout_config timeout;
  std::shared_ptr<class registry> metrics;
};

/// Spawns the adapter of one external provider: answers `provider_request`
/// with `provider_answer`, or `provider_failure` / `timeout` errors. Each
/// call's timeout adapts to the observed p99 latency and the load of its
/// bulkhead. Never blocks: the simulated provider's answer arrives as a
/// delayed message (a real adapter would do its I/O in a detached actor).
caf::actor spawn_provider_adapter(caf::actor_system& sys, adapter_config cfg);

} // namespace keel::actors
