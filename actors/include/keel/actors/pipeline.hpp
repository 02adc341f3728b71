#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <caf/actor.hpp>
#include <caf/expected.hpp>
#include <caf/fwd.hpp>

#include "keel/actors/adaptive_timeout.hpp"
#include "keel/actors/autoscaler.hpp"
#include "keel/actors/backoff.hpp"
#include "keel/actors/breaker.hpp"
#include "keel/actors/fwd.hpp"
#include "keel/actors/registry.hpp"
#include "keel/actors/saga.hpp"
#include "keel/actors/provider.hpp"
#include "keel/actors/simulated_provider.hpp"
#include "keel/storage/fwd.hpp"

namespace keel::actors {

/// An order whose saga ended (or was parked), reported to `on_finished`.
struct finished_order {
  std::string order_id;
  order_status status = order_status::none;
  std::string reason;
  /// Microseconds since the epoch (the pipeline's clock).
  std::int64_t placed_at_us = 0;
  std::int64_t finished_at_us = 0;
};

/// A parked payment (pending_payment), as the retry queue receives it.
struct parked_payment {
  std::string order_id;
  /// When the payment is due again (microseconds since the epoch).
  std::int64_t retry_at_us = 0;
  /// Premium customers are re-driven first.
  bool premium = false;
  /// Unavailable payment attempts so far (1 after the first).
  std::uint32_t attempt = 0;
  /// Why the last attempt was unavailable (open breaker, timeout, ...).
  std::string reason;
  /// The correlation id of the order's events (32 hex digits).
  std::string correlation_id;
};

/// Everything a pipeline is built from. Defaults are the production ones
/// (DESIGN section 4); tests shrink the times.
struct pipeline_config {
  std::shared_ptr<storage::event_store> store;
  append_mode mode = append_mode::asynchronous;
  /// Wall clock for event timestamps (microseconds since the epoch).
  std::function<std::int64_t()> now_us;
  std::uint64_t seed = 1;

  /// The payment gateways, in order of preference (a payment goes to the
  /// first whose breaker lets it through), and the carriers likewise. At
  /// least one of each, with distinct names. `simulate_providers` fills
  /// them with simulators.
  std::vector<provider_ptr> gateways;
  std::vector<provider_ptr> carriers;

  std::size_t inventory_shards = 2;
  std::size_t payment_shards = 2;
  std::size_t shipping_shards = 1;

  /// Bulkheads: pending requests per actor. They also bound the requests a
  /// supervisor has outstanding (CAF 0.17 keeps response handlers in a
  /// list): at most the sum of its children's capacities.
  std::size_t inventory_capacity = 2048;
  std::size_t payment_capacity = 1024;
  std::size_t shipping_capacity = 1024;
  /// The reference incident's bulkhead: calls waiting for or in flight to
  /// one payment gateway.
  std::size_t gateway_capacity = 20;
  std::size_t carrier_capacity = 200;
  std::size_t orders_capacity = 65536;
  /// Sagas in flight at once; more place_orders are `overloaded`.
  std::size_t max_sagas = 100000;

  /// Breaker of each provider (gateway or carrier) and of each service.
  breaker_config provider_breaker;
  breaker_config service_breaker;
  adaptive_timeout_config provider_timeout;
  /// Worker pool of each provider adapter (inside its bulkhead) and the
  /// autoscaler's rules; see autoscaler.hpp.
  pool_config provider_pool;
  /// Timeout of a call to a service through its supervisor.
  duration service_timeout = std::chrono::seconds(60);
  /// Restart budget of every supervisor.
  std::uint32_t restart_intensity = 50;
  duration restart_period = std::chrono::seconds(10);

  saga_policy saga;
  /// Delay before a parked payment is retried (by attempt).
  backoff_policy payment_retry{std::chrono::seconds(1), std::chrono::seconds(60), 2.0, 0.2};
  /// Delay before a failed internal step (reserve, capture, compensation) is retried.
  backoff_policy step_retry{std::chrono::milliseconds(20), std::chrono::seconds(1), 2.0, 0.2};
  /// Shipping attempts with every carrier unavailable before the order is
  /// compensated as "shipping failed".
  std::uint32_t max_shipping_attempts = 5;
  /// How often the retry queue looks for due orders, and how many it
  /// re-drives per look at most (never more than the closed gateways'
  /// free bulkhead slots).
  duration retry_tick = std::chrono::milliseconds(20);
  std::size_t redrives_per_tick = 100;
  /// Orders the in-process retry queue holds at once (see retry_queue.hpp).
  std::size_t retry_queue_capacity = 1'000'000;

  /// Called from actor threads for every saga that ended or parked.
  std::function<void(const finished_order&)> on_finished;
  /// When set, parked payments go to this hook (e.g. a Kafka topic) instead
  /// of the in-process retry queue; whoever consumes them hands them back
  /// with `pipeline::park` (at any time: the queue holds them until due).
  /// Called from actor threads, and from `pipeline::start`'s thread for the
  /// parked orders it recovers (before `start` returns); must neither block
  /// nor throw.
  std::function<void(const parked_payment&)> on_park;
  /// The catalogue new orders are priced from (catalog::price), before the
  /// admission check; its refusals (not_for_sale, price_changed,
  /// currency_mismatch) store nothing. Null: commands carry their own prices
  /// and currency (tools and tests without a catalogue).
  std::shared_ptr<const keel::actors::catalog> catalog;
  /// Admission check of a new order id, before its saga starts (after
  /// validation and pricing; never for an id that exists). An error refuses the order
  /// with that error and stores nothing. The cache-first stock check:
  /// `[cache](auto& cmd) { return cache->check(cmd.lines); }` with a
  /// `projections::stock_cache` (errc::out_of_stock).
  std::function<caf::error(const events::place_order&)> admission;
  /// Created when null.
  std::shared_ptr<class registry> metrics;

  /// A cluster's slot count (0: the node runs alone). Sagas then split
  /// stock lines by slot (`stable_hash(sku) % stock_slots`) as well as by
  /// inventory shard, so that each stock request concerns one slot, and so
  /// one owner.
  std::uint32_t stock_slots = 0;
  /// When set, sagas send their stock requests (reserve, release, commit)
  /// to the actor this returns instead of to the local inventory, which it
  /// is given: a cluster's router to each SKU's owner. Called once, from
  /// `pipeline::start`.
  std::function<caf::actor(caf::actor_system&, const caf::actor& local_inventory)>
    inventory_front;
  /// When set, sagas run only for the orders it accepts (a cluster: the
  /// orders of the slots this node serves now): others are refused with
  /// `not_owner` and not re-driven, also by `start`'s recovery (see
  /// `redrive`). Called from actor threads; must not block.
  std::function<bool(const std::string& order_id)> owns_order;
};

/// What `pipeline::start` found in the store and re-drove.
struct recovery_report {
  std::size_t orders = 0;
  std::size_t redriven = 0;
  std::size_t parked = 0;
  /// Order streams that could not be folded (an event that does not decode,
  /// a corrupt record): left alone, never re-driven (a saga on them would
  /// crash again and again); the first 100 are named with their error.
  std::size_t quarantined = 0;
  std::vector<std::pair<std::string, std::string>> quarantine;
};

/// The order pipeline of one node: orders (sagas), inventory, payment and
/// shipping services under supervisors, provider adapters with breakers and
/// bulkheads, simulated providers and the payment retry queue.
///
/// Lifecycle: `start` spawns every actor, then recovers: every non-terminal
/// saga in the store is re-driven (parked payments go to the retry queue, or
/// to `on_park`, with their retry time). `stop` ends every actor; the store
/// stays open.
class pipeline {
public:
  static caf::expected<std::unique_ptr<pipeline>> start(caf::actor_system& sys,
                                                         pipeline_config cfg);

  ~pipeline();

  /// The entry point: place_order, cancel_order, (get_atom, id) -> order_view.
  const caf::actor& orders() const noexcept {
    return orders_;
  }

  /// Stable handles (supervisors) of the services.
  const caf::actor& inventory() const noexcept {
    return inventory_;
  }
  const caf::actor& payment() const noexcept {
    return payment_;
  }
  const caf::actor& shipping() const noexcept {
    return shipping_;
  }

  /// The supervisor of provider `name` (a gateway or a carrier).
  caf::actor provider_handle(const std::string& name) const;

  /// Names of the gateways (in order of preference) and of the carriers.
  const std::vector<std::string>& gateways() const noexcept {
    return gateway_names_;
  }
  const std::vector<std::string>& carriers() const noexcept {
    return carrier_names_;
  }

  /// Provider `name`; null when there is none of that name.
  provider_ptr provider(const std::string& name) const;

  /// The simulated provider `name` (its faults can change at any time);
  /// throws std::out_of_range when `name` is not an in-process simulator.
  simulated_provider& simulator(const std::string& name) const;

  class registry& metrics() const noexcept {
    return *metrics_;
  }

  const recovery_report& recovered() const noexcept {
    return recovered_;
  }

  /// Re-drives the non-terminal sagas of the store whose order ids `which`
  /// accepts, as `start` does for all (parked ones through the retry queue
  /// or `on_park`): a cluster node calls it for the slots it starts to
  /// serve. Reads the store on the calling thread.
  caf::expected<recovery_report> redrive(const std::function<bool(const std::string&)>& which);

  /// Puts a parked payment on the in-process retry queue, which re-drives it
  /// once due and a gateway can take it (within the closed gateways' free
  /// bulkhead slots). Thread-safe, never blocks. Safe with duplicates and
  /// stale entries: a second park of an order replaces the first; an order
  /// that is no longer parked is left alone when re-driven; one re-driven
  /// before the retry time its stream records is parked again until then.
  void park(const parked_payment& x);

  /// Ends every actor of the pipeline.
  void stop();

private:
  pipeline() = default;

  /// Re-drives every non-terminal saga of the store whose order `which`
  /// accepts (parked ones via the queue), adding to `into`.
  caf::error recover(const std::function<bool(const std::string&)>& which,
                     recovery_report& into);

  caf::actor_system* sys_ = nullptr;
  std::shared_ptr<storage::event_store> store_;
  saga_policy policy_;
  std::function<void(const parked_payment&)> on_park_;
  std::shared_ptr<class registry> metrics_;
  caf::actor orders_;
  caf::actor inventory_;
  caf::actor payment_;
  caf::actor shipping_;
  caf::actor retry_queue_;
  /// pipeline_config::inventory_front's actor (ended with the pipeline).
  caf::actor stock_front_;
  std::map<std::string, caf::actor> provider_handles_;
  std::map<std::string, provider_ptr> providers_;
  std::vector<std::string> gateway_names_;
  std::vector<std::string> carrier_names_;
  recovery_report recovered_;
};

/// The simulated providers of tests and benchmarks: gateways and carriers
/// named `gateways` and `carriers`, seeded from `cfg.seed`, remembering
/// `key_capacity` idempotency keys each.
void simulate_providers(pipeline_config& cfg,
                        const std::vector<std::string>& gateways = {"gw-primary", "gw-secondary"},
                        const std::vector<std::string>& carriers = {"carrier-a", "carrier-b"},
                        std::size_t key_capacity = pipeline_simulator_keys);

/// Folds the stream "order-<id>" through the decider with `policy` (use the
/// pipeline's). Errors: storage and decoding errors; an order that does not
/// exist yields status none.
caf::expected<order_state> load_order(const storage::event_store& store,
                                      const std::string& order_id,
                                      const saga_policy& policy = {});

/// How a parked payment received from outside the pipeline (the retry
/// topic) compares with the order's stored state: the message is a hint,
/// the store decides.
enum class park_check {
  /// The order is pending_payment with exactly this attempt count, retry
  /// time and priority: park it.
  valid,
  /// The order moved on (another attempt recorded, or not pending any more).
  stale,
  /// Not an order id, no such order, or fields that no park of the order
  /// ever had (a higher count, another retry time or priority): forged or corrupt.
  invalid,
  /// Due further ahead than any backoff parks an order (checked before the store is read).
  far_future,
};

const char* to_string(park_check x);

/// Checks `p` against the store (reads the order's stream on the calling
/// thread). `max_ahead`: how far past `now_us` a retry time may lie.
park_check check_parked(const storage::event_store& store, const parked_payment& p,
                        std::int64_t now_us, std::int64_t max_ahead_us);

/// The client's view of `st`; `created`: this call created the order.
order_view view_of(const order_state& st, bool created);

} // namespace keel::actors
