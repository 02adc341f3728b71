#include "keel/actors/pipeline.hpp"

#include <optional>
#include <set>
#include <stdexcept>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>

#include "keel/actors/messages.hpp"
#include "keel/events/error.hpp"
#include "keel/events/ids.hpp"
#include "keel/events/streams.hpp"
#include "keel/storage/event_store.hpp"
#include "orders.hpp"
#include "provider_adapter.hpp"
#include "retry_queue.hpp"
#include "supervisor.hpp"

namespace keel::actors {

namespace {

/// The single element of `msg` if it is a `T`, else null.
template <class T>
const T* only_element(const caf::message& msg) {
  return msg.size() == 1 && msg.match_element<T>(0) ? &msg.get_as<T>(0) : nullptr;
}

/// The order id of the first of `Ts` that `msg` holds (a view into `msg`).
template <class T, class... Ts>
std::string_view order_id_in(const caf::message& msg) {
  if (auto* x = only_element<T>(msg))
    return x->order_id;
  if constexpr (sizeof...(Ts) > 0)
    return order_id_in<Ts...>(msg);
  else
    return {};
}

/// The first SKU of the first of `Ts` that `msg` holds (the saga sends one
/// request per inventory shard, so any of its SKUs picks the shard).
template <class T, class... Ts>
std::string_view first_sku_in(const caf::message& msg) {
  if (auto* x = only_element<T>(msg))
    return x->lines.empty() ? std::string_view{} : std::string_view{x->lines.front().sku};
  if constexpr (sizeof...(Ts) > 0)
    return first_sku_in<Ts...>(msg);
  else
    return {};
}

/// The shard key of a payment or shipping command: its order id.
std::string_view order_key(const caf::message& msg) {
  return order_id_in<events::authorize_payment, events::capture_payment, events::void_payment,
                     events::refund_payment, events::schedule_shipment,
                     events::cancel_shipment>(msg);
}

/// The shard key of an inventory request: its SKU.
std::string_view sku_key(const caf::message& msg) {
  if (auto* x = only_element<events::set_stock>(msg))
    return x->sku;
  if (msg.size() == 2 && (msg.match_element<get_atom>(0) || msg.match_element<forget_atom>(0))
      && msg.match_element<std::string>(1))
    return msg.get_as<std::string>(1);
  return first_sku_in<events::reserve_stock, events::release_stock, events::commit_stock>(msg);
}

supervisor_config base_supervisor(const pipeline_config& cfg, const std::string& name,
                                  std::uint64_t seed) {
  supervisor_config sc;
  sc.name = name;
  sc.intensity = cfg.restart_intensity;
  sc.period = cfg.restart_period;
  sc.store = cfg.store;
  sc.mode = cfg.mode;
  sc.metrics = cfg.metrics;
  sc.now_us = cfg.now_us;
  sc.seed = cfg.seed ^ seed;
  return sc;
}

service_env env_of(const pipeline_config& cfg) {
  return service_env{cfg.store, cfg.mode, cfg.now_us, cfg.metrics};
}

/// A service supervisor over `shards` children "<name>-<i>", routed by the
/// shard of `key_of(request)`; `spawn(sys, child name)` starts a child.
template <class Spawn>
supervisor_config sharded(const pipeline_config& cfg, const std::string& name,
                          std::uint64_t seed, std::size_t shards,
                          std::string_view (*key_of)(const caf::message&), Spawn spawn) {
  auto sc = base_supervisor(cfg, name, seed);
  sc.breaker = cfg.service_breaker;
  sc.call_timeout = cfg.service_timeout;
  sc.route = [shards, key_of](const caf::message& m) { return shard_of(key_of(m), shards); };
  for (std::size_t i = 0; i < shards; ++i) {
    auto child = name + "-" + std::to_string(i);
    sc.children.push_back({child, [spawn, child](caf::actor_system& s) { return spawn(s, child); }});
  }
  return sc;
}

/// A service whose latency is its providers' (payment, shipping): its
/// breaker judges failures, not slowness. The providers' own breakers and
/// adaptive timeouts judge a slow gateway; counting the same slowness here
/// opened the payment service's breaker after a long payment slowdown, and
/// for its whole wait every order parked without a call, so the gateways'
/// half-open breakers got no trial calls (recovery took 22 s instead of 3).
/// Calls slower than the service timeout fail as timeouts anyway.
supervisor_config provider_backed(supervisor_config sc, const pipeline_config& cfg) {
  if (sc.breaker)
    sc.breaker->slow_call_duration = std::max(sc.breaker->slow_call_duration, cfg.service_timeout);
  return sc;
}

/// A payment or shipping shard's settings; each shard gets its share of
/// every provider's bulkhead.
provider_service_config provider_service(const pipeline_config& cfg, std::size_t capacity,
                                         std::vector<provider_route> providers,
                                         std::size_t provider_capacity, std::size_t shards) {
  return provider_service_config{{},
                                 capacity,
                                 std::move(providers),
                                 std::max<std::size_t>(1, provider_capacity / shards),
                                 cfg.provider_timeout.base,
                                 env_of(cfg)};
}

/// Spawns the supervised adapter of each of `providers`; their handles go
/// to `handles`.
std::vector<provider_route> spawn_providers(caf::actor_system& sys, const pipeline_config& cfg,
                                            const std::vector<provider_ptr>& providers,
                                            std::size_t capacity, std::uint64_t& seed,
                                            std::map<std::string, caf::actor>& handles) {
  std::vector<provider_route> routes;
  for (const auto& prov : providers) {
    const auto& name = prov->name();
    auto sc = base_supervisor(cfg, name, ++seed);
    sc.breaker = cfg.provider_breaker;
    adapter_config ac{name,        prov,         capacity, cfg.provider_timeout,
                      cfg.metrics, cfg.provider_pool, cfg.store, cfg.mode,
                      cfg.now_us};
    sc.children.push_back({name + "-adapter", [ac](caf::actor_system& s) {
                             return spawn_provider_adapter(s, ac);
                           }});
    auto hdl = spawn_supervisor<provider_answer>(sys, std::move(sc));
    handles[name] = hdl;
    routes.push_back({name, hdl});
  }
  return routes;
}

/// Starts a payment or shipping shard named `name` from shared settings.
using spawn_fn = caf::actor (*)(caf::actor_system&, provider_service_config);

auto shard(provider_service_config base, spawn_fn spawn) {
  return [base, spawn](caf::actor_system& s, const std::string& name) {
    auto c = base;
    c.name = name;
    return spawn(s, std::move(c));
  };
}

/// What every saga of the pipeline shares (the retry queue is added once it runs).
std::shared_ptr<saga_env> saga_env_of(const pipeline_config& cfg, caf::actor inventory,
                                      caf::actor payment, caf::actor shipping) {
  auto env = std::make_shared<saga_env>();
  env->inventory = std::move(inventory);
  env->payment = std::move(payment);
  env->shipping = std::move(shipping);
  env->inventory_shards = cfg.inventory_shards;
  env->stock_slots = cfg.stock_slots;
  env->env = env_of(cfg);
  env->policy = cfg.saga;
  env->payment_retry = cfg.payment_retry;
  env->step_retry = cfg.step_retry;
  env->max_shipping_attempts = cfg.max_shipping_attempts;
  env->on_finished = cfg.on_finished;
  env->on_park = cfg.on_park;
  env->seed = cfg.seed;
  return env;
}

/// Appends `providers_configured` to "$system-providers" unless the last
/// start recorded the same lists.
caf::error record_providers(const pipeline_config& cfg, const std::vector<std::string>& gateways,
                            const std::vector<std::string>& carriers) {
  events::providers_configured now{gateways, carriers};
  std::optional<events::providers_configured> last;
  auto err = fold_stream(*cfg.store, events::providers_stream, 1,
                         [&](const events::event& ev, const events::record_view&) {
                           if (auto* x = std::get_if<events::providers_configured>(&ev))
                             last = *x;
                         });
  if (err)
    return err;
  if (last && last->gateways == gateways && last->carriers == carriers)
    return caf::error{};
  auto version = cfg.store->stream_version(events::providers_stream);
  if (!version)
    return version.error();
  std::vector<storage::new_event> evs{make_new_event(events::event{std::move(now)}, cfg.now_us())};
  auto res = cfg.store->append(events::providers_stream, storage::expected_version::exact(*version),
                               std::move(evs));
  return res ? caf::error{} : res.error();
}

} // namespace

caf::actor pipeline::provider_handle(const std::string& name) const {
  auto i = provider_handles_.find(name);
  return i == provider_handles_.end() ? caf::actor{} : i->second;
}

provider_ptr pipeline::provider(const std::string& name) const {
  auto i = providers_.find(name);
  return i == providers_.end() ? nullptr : i->second;
}

simulated_provider& pipeline::simulator(const std::string& name) const {
  auto* sim = dynamic_cast<simulated_provider*>(provider(name).get());
  if (!sim)
    throw std::out_of_range("no simulated provider named " + name);
  return *sim;
}

void simulate_providers(pipeline_config& cfg, const std::vector<std::string>& gateways,
                        const std::vector<std::string>& carriers, std::size_t key_capacity) {
  auto first = first_simulator_seed(cfg.seed);
  cfg.gateways = simulated_providers(gateways, first, key_capacity);
  cfg.carriers = simulated_providers(carriers, first + gateways.size(), key_capacity);
}

namespace {

/// At least one gateway and one carrier, every name set and distinct.
caf::error check_providers(const pipeline_config& cfg) {
  if (cfg.gateways.empty() || cfg.carriers.empty())
    return make_error(errc::invalid_argument,
                      "pipeline: at least one payment gateway and one carrier are needed");
  std::set<std::string> names;
  for (const auto* list : {&cfg.gateways, &cfg.carriers})
    for (const auto& p : *list) {
      if (!p || p->name().empty())
        return make_error(errc::invalid_argument, "pipeline: a provider without a name");
      if (!names.insert(p->name()).second)
        return make_error(errc::invalid_argument,
                          "pipeline: two providers are named " + p->name());
    }
  return caf::error{};
}

} // namespace

caf::expected<std::unique_ptr<pipeline>> pipeline::start(caf::actor_system& sys,
                                                         pipeline_config cfg) {
  if (!cfg.store)
    return make_error(errc::invalid_argument, "pipeline: no event store");
  if (auto err = validate(cfg.provider_pool))
    return err;
  if (auto err = check_providers(cfg))
    return err;
  if (!cfg.now_us)
    cfg.now_us = storage::now_us;
  if (!cfg.metrics)
    cfg.metrics = std::make_shared<registry>();
  std::unique_ptr<pipeline> p{new pipeline};
  p->sys_ = &sys;
  p->store_ = cfg.store;
  p->policy_ = cfg.saga;
  p->on_park_ = cfg.on_park;
  p->metrics_ = cfg.metrics;
  std::uint64_t seed = 1;
  auto gateways = spawn_providers(sys, cfg, cfg.gateways, cfg.gateway_capacity, seed,
                                  p->provider_handles_);
  auto carriers = spawn_providers(sys, cfg, cfg.carriers, cfg.carrier_capacity, seed,
                                  p->provider_handles_);
  for (const auto* list : {&cfg.gateways, &cfg.carriers})
    for (const auto& prov : *list) {
      p->providers_[prov->name()] = prov;
      (list == &cfg.gateways ? p->gateway_names_ : p->carrier_names_).push_back(prov->name());
    }
  // A standby's store takes its primary's log only (not_writable): the
  // providers are recorded when it serves as primary and starts again.
  if (auto err = record_providers(cfg, p->gateway_names_, p->carrier_names_);
      err && code_of(err) != errc::not_writable)
    return err;
  p->payment_ = spawn_supervisor<payment_reply>(
    sys, provider_backed(sharded(cfg, "payment", 101, cfg.payment_shards, order_key,
                                 shard(provider_service(cfg, cfg.payment_capacity, gateways,
                                                        cfg.gateway_capacity, cfg.payment_shards),
                                       spawn_payment)),
                         cfg));
  p->shipping_ = spawn_supervisor<shipment_reply>(
    sys, provider_backed(sharded(cfg, "shipping", 102, cfg.shipping_shards, order_key,
                                 shard(provider_service(cfg, cfg.shipping_capacity, carriers,
                                                        cfg.carrier_capacity, cfg.shipping_shards),
                                       spawn_shipping)),
                         cfg));
  p->inventory_ = spawn_supervisor<stock_reply>(
    sys, sharded(cfg, "inventory", 103, cfg.inventory_shards, sku_key,
                 [cap = cfg.inventory_capacity, env = env_of(cfg)](caf::actor_system& s,
                                                                   const std::string& name) {
                   return spawn_inventory(s, inventory_config{name, cap, 200, env});
                 }));
  if (cfg.inventory_front)
    p->stock_front_ = cfg.inventory_front(sys, p->inventory_);
  auto env = saga_env_of(cfg, p->stock_front_ ? p->stock_front_ : p->inventory_, p->payment_,
                         p->shipping_);
  p->orders_ = spawn_orders(sys, orders_config{env, cfg.orders_capacity, cfg.max_sagas, cfg.catalog, cfg.admission,
                                                cfg.owns_order});

  retry_queue_config rq{p->orders_,     {}, {}, cfg.retry_tick, cfg.redrives_per_tick,
                        cfg.retry_queue_capacity, env_of(cfg)};
  for (const auto& name : p->gateway_names_) {
    rq.gateways.push_back(cfg.metrics->breaker(name));
    rq.bulkheads.push_back(cfg.metrics->bulkhead(name));
  }
  p->retry_queue_ = spawn_retry_queue(sys, std::move(rq));
  env->retry_queue = p->retry_queue_; // before any saga exists

  auto all = [owns = cfg.owns_order](const std::string& id) { return !owns || owns(id); };
  if (auto err = p->recover(all, p->recovered_))
    return err;
  return p;
}

caf::expected<recovery_report>
pipeline::redrive(const std::function<bool(const std::string&)>& which) {
  recovery_report r;
  if (auto err = recover(which, r))
    return err;
  return r;
}

caf::error pipeline::recover(const std::function<bool(const std::string&)>& which,
                             recovery_report& into) {
  std::string after;
  for (;;) {
    auto page = store_->list_streams(events::order_prefix, 1000, after);
    if (!page)
      return std::move(page.error());
    if (page->empty())
      return caf::none;
    for (auto& info : *page) {
      auto id = info.stream.substr(6);
      if (!which(id))
        continue;
      auto st = load_order(*store_, id, policy_);
      if (!st) {
        // A stream that does not fold must not keep the node from starting
        // (review M6): reported, and left for an operator (keel-inspect).
        auto code = code_of(st.error());
        if (code != errc::malformed_payload && code != errc::unknown_event_type
            && code != errc::corrupt_record)
          return std::move(st.error()); // the store itself fails: do not start
        if (into.quarantine.size() < 100)
          into.quarantine.emplace_back(info.stream, describe(st.error()));
        into.quarantined++;
        continue;
      }
      into.orders++;
      if (is_terminal(st->status) || st->status == order_status::none)
        continue;
      if (st->status == order_status::pending_payment) {
        auto parked = parked_of(*st);
        if (on_park_)
          on_park_(parked);
        else
          park(parked);
        into.parked++;
      } else {
        caf::anon_send(orders_, redrive_atom::value, id);
        into.redriven++;
      }
    }
    after = page->back().stream;
  }
}

const char* to_string(park_check x) {
  switch (x) {
    case park_check::valid: return "valid";
    case park_check::stale: return "stale";
    case park_check::invalid: return "invalid";
    case park_check::far_future: return "far_future";
  }
  return "invalid";
}

park_check check_parked(const storage::event_store& store, const parked_payment& p,
                        std::int64_t now_us, std::int64_t max_ahead_us) {
  if (!events::valid_key(p.order_id))
    return park_check::invalid;
  if (p.retry_at_us > now_us && p.retry_at_us - now_us > max_ahead_us)
    return park_check::far_future;
  auto st = load_order(store, p.order_id);
  if (!st || st->status == order_status::none)
    return park_check::invalid;
  if (p.attempt > st->payment_attempts)
    return park_check::invalid;
  if (st->status != order_status::pending_payment || p.attempt < st->payment_attempts)
    return park_check::stale;
  if (p.retry_at_us != st->retry_at_us || p.premium != st->premium)
    return park_check::invalid;
  return park_check::valid;
}

void pipeline::park(const parked_payment& x) {
  caf::anon_send(retry_queue_, park_atom::value, x.order_id, x.retry_at_us, x.premium);
}

void pipeline::stop() {
  for (auto* hdl : {&orders_, &retry_queue_, &stock_front_, &inventory_, &payment_, &shipping_})
    if (*hdl)
      caf::anon_send_exit(*hdl, caf::exit_reason::user_shutdown);
  for (auto& kvp : provider_handles_)
    caf::anon_send_exit(kvp.second, caf::exit_reason::user_shutdown);
}

pipeline::~pipeline() {
  stop();
}

} // namespace keel::actors
