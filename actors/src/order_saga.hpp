#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "keel/actors/pipeline.hpp"
#include "services.hpp"

namespace keel::actors {

/// What every saga of a pipeline shares.
struct saga_env {
  caf::actor inventory;
  caf::actor payment;
  caf::actor shipping;
  caf::actor retry_queue;
  std::size_t inventory_shards = 1;
  /// See pipeline_config::stock_slots.
  std::uint32_t stock_slots = 0;
  service_env env;
  saga_policy policy;
  backoff_policy payment_retry;
  backoff_policy step_retry;
  std::uint32_t max_shipping_attempts = 5;
  std::function<void(const finished_order&)> on_finished;
  /// See pipeline_config::on_park; null = `retry_queue`.
  std::function<void(const parked_payment&)> on_park;
  std::uint64_t seed = 1;
};

/// Spawns the saga of `order_id`: it folds the order's stream (unless the
/// caller already did and passes the state as `known`), then handles
///   place_order            -> order_view (after order_placed is durable)
///   cancel_order           -> order_view | not_cancellable
///   (get_atom, id)         -> order_view
///   (redrive_atom)         re-issues the step the order waits for; a
///                          terminal (or unknown) order just passivates, a
///                          parked one whose retry time has not come is
///                          parked again until then (stale or duplicate parks)
/// and executes the decider's commands, recording one order event per
/// outcome. It tells `orders` `(done_atom, id)` and quits when the order
/// ends or parks on the retry queue (or `env->on_park`).
caf::actor spawn_saga(caf::actor_system& sys, std::shared_ptr<const saga_env> env,
                      caf::actor orders, std::string order_id,
                      std::optional<order_state> known = std::nullopt);

/// The retry queue's entry for a parked order `st` (pending_payment).
parked_payment parked_of(const order_state& st);

/// Whether `cmd` repeats the order `st` (an existing order): the same
/// customer, SKUs and quantities in the same order, address, and currency
/// when `cmd` names one (prices are not compared: a retry may come after a
/// price change). Otherwise order_id_taken: an order id is never answered
/// with another customer's order, nor with an order other than the one sent.
caf::error same_order(const order_state& st, const events::place_order& cmd);


} // namespace keel::actors
