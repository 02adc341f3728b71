#pragma once

// The one assembly of an order pipeline: an event store, an actor system,
// the pipeline with its providers and catalogue. keel-node wraps it in its
// edges (HTTP API, Kafka, projections); keel-bench, the crash children and
// the tests run it bare. Nothing else starts a pipeline outside the actors
// library's own tests.

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "keel/actors/pipeline.hpp"
#include "keel/storage/options.hpp"
#include "providers.hpp"

namespace keel::actors {
class catalog;
} // namespace keel::actors

namespace keel::runtime {

/// What an engine is built from.
struct engine_config {
  /// The event store (its path, durability, memory, descriptors, disk floor).
  storage::options store;
  /// Currencies the catalogue prices orders in; empty: no catalogue (orders
  /// keep the prices their lines carry).
  std::vector<std::string> currencies;
  /// Scheduler threads of the actor system.
  std::size_t threads = 2;
  /// Payment gateways (in order of preference) and carriers.
  provider_specs providers = simulated_defaults();
  /// Everything else of the pipeline: seed, capacities, breakers, retries,
  /// saga policy and the hooks (on_finished, on_park, admission). Its store,
  /// providers, catalogue and metrics are the engine's and are overwritten.
  actors::pipeline_config pipeline;
  /// Called on the actor system's config before the system exists (a
  /// cluster loads CAF's middleman and registers its messages).
  std::function<void(caf::actor_system_config&)> configure;
};

/// Lifecycle: `open` opens the store and the catalogue (a node starts its
/// read side and Kafka between the two steps), `start` starts the actor
/// system and the pipeline (which recovers unfinished sagas), `stop` stops
/// the pipeline and waits for every actor; the store closes with the engine.
class engine {
public:
  static caf::expected<std::unique_ptr<engine>> open(engine_config cfg);
  ~engine();

  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  /// Starts the actor system and the pipeline; an error when a provider
  /// cannot be built or recovery fails. Once only.
  caf::error start();

  /// Stops the pipeline and waits for its actors (hooks are not called
  /// after this returns); the store stays open. Idempotent.
  void stop();

  bool started() const noexcept {
    return pipeline_ != nullptr;
  }

  const engine_config& config() const noexcept {
    return cfg_;
  }
  storage::event_store& store() const noexcept {
    return *store_;
  }
  const std::shared_ptr<storage::event_store>& store_ptr() const noexcept {
    return store_;
  }
  /// Null without currencies.
  const std::shared_ptr<actors::catalog>& catalog() const noexcept {
    return catalog_;
  }
  actors::registry& metrics() const noexcept {
    return *metrics_;
  }
  /// After `start` (and until `stop`).
  caf::actor_system& system() const noexcept {
    return *system_;
  }
  actors::pipeline& pipeline() const noexcept {
    return *pipeline_;
  }

private:
  explicit engine(engine_config cfg);

  engine_config cfg_;
  std::shared_ptr<storage::event_store> store_;
  std::shared_ptr<actors::catalog> catalog_;
  std::shared_ptr<actors::registry> metrics_;
  std::unique_ptr<caf::actor_system_config> caf_cfg_;
  std::unique_ptr<caf::actor_system> system_;
  std::unique_ptr<actors::pipeline> pipeline_;
};

} // namespace keel::runtime
