#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "journal.hpp"
#include "keel/actors/registry.hpp"
#include "provider_chain.hpp"

namespace keel::actors {

/// What every event-sourced service actor needs.
struct service_env {
  std::shared_ptr<storage::event_store> store;
  append_mode mode = append_mode::asynchronous;
  std::function<std::int64_t()> now_us;
  std::shared_ptr<class registry> metrics;
};

/// One shard of a service that keeps a stream per order and calls external
/// providers: payment ("payment-<order id>", gateways) and shipping
/// ("shipment-<order id>", carriers). Both are idempotent by order id.
struct provider_service_config {
  std::string name;
  std::size_t capacity = 1024;
  /// The providers, primary first.
  std::vector<provider_route> providers;
  /// Calls in flight from this shard to one provider (see provider_pool).
  std::size_t window = 10;
  duration max_wait = std::chrono::seconds(2);
  service_env env;
};

/// authorize / capture / void / refund through the gateways in order.
caf::actor spawn_payment(caf::actor_system& sys, provider_service_config cfg);

/// schedule / cancel through the carriers in order.
caf::actor spawn_shipping(caf::actor_system& sys, provider_service_config cfg);

/// One inventory shard: stock per SKU (streams "stock-<sku>") for the SKUs
/// routed to it; reserve / release / commit / set / get. Never reserves
/// beyond stock; idempotent by (order, SKU).
struct inventory_config {
  std::string name;
  std::size_t capacity = 2048;
  /// Snapshot a SKU after this many events since its last snapshot.
  std::uint64_t snapshot_every = 200;
  service_env env;
};
caf::actor spawn_inventory(caf::actor_system& sys, inventory_config cfg);

/// The shard of `key` among `shards` (stable across runs and builds).
std::size_t shard_of(std::string_view key, std::size_t shards);

} // namespace keel::actors
