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

/// One payment shard: authorize / capture / void / refund, idempotent by
/// order id (stream "payment-<order id>"), through `gateways` in order.
struct payment_config {
  std::string name;
  std::size_t capacity = 1024;
  std::vector<provider_route> gateways;
  /// Calls in flight from this shard to one gateway (see provider_pool).
  std::size_t gateway_window = 10;
  duration max_wait = std::chrono::seconds(2);
  service_env env;
};
caf::actor spawn_payment(caf::actor_system& sys, payment_config cfg);

/// One shipping shard: schedule / cancel, idempotent by order id (stream
/// "shipment-<order id>"), through `carriers` in order.
struct shipping_config {
  std::string name;
  std::size_t capacity = 1024;
  std::vector<provider_route> carriers;
  std::size_t carrier_window = 100;
  duration max_wait = std::chrono::seconds(2);
  service_env env;
};
caf::actor spawn_shipping(caf::actor_system& sys, shipping_config cfg);

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
std::size_t shard_of(const std::string& key, std::size_t shards);

} // namespace keel::actors
