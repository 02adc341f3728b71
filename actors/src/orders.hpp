#pragma once

#include <functional>
#include <memory>

#include <caf/fwd.hpp>

#include "order_saga.hpp"

namespace keel::actors {

/// Settings of the orders actor (the pipeline's entry point).
struct orders_config {
  std::shared_ptr<saga_env> sagas;
  std::size_t capacity = 65536;
  std::size_t max_sagas = 100000;
  /// See pipeline_config::catalog.
  std::shared_ptr<const keel::actors::catalog> catalog;
  /// See pipeline_config::admission.
  std::function<caf::error(const events::place_order&)> admission;
  /// See pipeline_config::owns_order.
  std::function<bool(const std::string&)> owns_order;
};

/// Spawns the orders actor. It keeps the sagas in flight by order id and
///   place_order   validates, answers an existing order's view when the
///                 command repeats it (order_id_taken otherwise; never a
///                 second order), prices a new one from the catalogue,
///                 refuses it when pricing or the admission check refuses,
///                 or starts its saga, which answers once durable;
///   cancel_order  goes to the saga (woken when parked) or answers from the stream;
///   (get_atom, id) answers from the saga or the stream (not_found);
///   (redrive_atom, id) wakes a parked or orphaned saga;
///   (in_flight_atom) the ids of the sagas in flight.
/// With `owns_order`, no saga starts for an order it does not own: a new
/// or cancelled one is refused with `not_owner`, a re-drive is dropped.
///   (done_atom, id) forgets a saga that ended or parked.
/// A saga that crashes is re-driven from its stream after a short delay.
caf::actor spawn_orders(caf::actor_system& sys, orders_config cfg);

} // namespace keel::actors
