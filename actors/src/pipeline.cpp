#include "keel/actors/pipeline.hpp"

#include <stdexcept>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>

#include "keel/actors/messages.hpp"
#include "keel/events/error.hpp"
#include "keel/storage/event_store.hpp"
#include "orders.hpp"
#include "provider_adapter.hpp"
#include "retry_queue.hpp"
#include "supervisor.hpp"

namespace keel::actors {

namespace {

/// The order id a payment or shipping command is about (for sharding).
std::string order_of(const caf::message& msg) {
  std::string result;
  auto try_get = [&](auto tag) {
    using T = decltype(tag);
    if (result.empty() && msg.size() == 1 && msg.match_element<T>(0))
      result = msg.get_as<T>(0).order_id;
  };
  try_get(events::authorize_payment{});
  try_get(events::capture_payment{});
  try_get(events::void_payment{});
  try_get(events::refund_payment{});
  try_get(events::schedule_shipment{});
  try_get(events::cancel_shipment{});
  return result;
}

/// The SKU an inventory request is about (the saga sends one request per shard).
std::string sku_of(const caf::message& msg) {
  std::string result;
  auto try_lines = [&](auto tag) {
    using T = decltype(tag);
    if (result.empty() && msg.size() == 1 && msg.match_element<T>(0)
        && !msg.get_as<T>(0).lines.empty())
      result = msg.get_as<T>(0).lines.front().sku;
  };
  try_lines(events::reserve_stock{});
  try_lines(events::release_stock{});
  try_lines(events::commit_stock{});
  if (msg.size() == 1 && msg.match_element<events::set_stock>(0))
    result = msg.get_as<events::set_stock>(0).sku;
  if (msg.size() == 2 && msg.match_element<get_atom>(0) && msg.match_element<std::string>(1))
    result = msg.get_as<std::string>(1);
  return result;
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

} // namespace

caf::actor pipeline::provider_handle(const std::string& name) const {
  auto i = provider_handles_.find(name);
  return i == provider_handles_.end() ? caf::actor{} : i->second;
}

simulated_provider& pipeline::provider(const std::string& name) const {
  auto i = providers_.find(name);
  if (i == providers_.end())
    throw std::out_of_range("no provider named " + name);
  return *i->second;
}

caf::expected<std::unique_ptr<pipeline>> pipeline::start(caf::actor_system& sys,
                                                         pipeline_config cfg) {
  if (!cfg.store)
    return make_error(errc::invalid_argument, "pipeline: no event store");
  if (!cfg.now_us)
    cfg.now_us = storage::now_us;
  if (!cfg.metrics)
    cfg.metrics = std::make_shared<registry>();
  std::unique_ptr<pipeline> p{new pipeline};
  p->sys_ = &sys;
  p->metrics_ = cfg.metrics;
  std::uint64_t seed = 1;
  auto provider_routes = [&](const char* const(&names)[2], std::size_t capacity) {
    std::vector<provider_route> routes;
    for (auto* name : names) {
      // The simulated gateways remember the last 20,000 idempotency keys: enough
      // for every retry in flight, and memory stays flat under sustained load.
      auto prov = std::make_shared<simulated_provider>(name, cfg.seed * 7919 + seed++, 20000);
      p->providers_[name] = prov;
      auto sc = base_supervisor(cfg, name, seed);
      sc.breaker = cfg.provider_breaker;
      sc.children.push_back({std::string{name} + "-adapter", [prov, capacity, cfg, name](caf::actor_system& s) {
        return spawn_provider_adapter(s, adapter_config{name, prov, capacity, cfg.provider_timeout, cfg.metrics});
      }});
      auto hdl = spawn_supervisor<provider_answer>(sys, std::move(sc));
      p->provider_handles_[name] = hdl;
      routes.push_back({name, hdl});
    }
    return routes;
  };
  auto gateways = provider_routes(pipeline::gateways, cfg.gateway_capacity);
  auto carriers = provider_routes(pipeline::carriers, cfg.carrier_capacity);

  auto sup = base_supervisor(cfg, "payment", 101);
  sup.breaker = cfg.service_breaker;
  sup.call_timeout = cfg.service_timeout;
  sup.route = [n = cfg.payment_shards](const caf::message& m) { return shard_of(order_of(m), n); };
  for (std::size_t i = 0; i < cfg.payment_shards; ++i) {
    auto name = "payment-" + std::to_string(i);
    payment_config pc{name, cfg.payment_capacity, gateways,
                      std::max<std::size_t>(1, cfg.gateway_capacity / cfg.payment_shards),
                      cfg.provider_timeout.base, env_of(cfg)};
    sup.children.push_back({name, [pc](caf::actor_system& s) { return spawn_payment(s, pc); }});
  }
  p->payment_ = spawn_supervisor<payment_reply>(sys, std::move(sup));

  sup = base_supervisor(cfg, "shipping", 102);
  sup.breaker = cfg.service_breaker;
  sup.call_timeout = cfg.service_timeout;
  sup.route = [n = cfg.shipping_shards](const caf::message& m) { return shard_of(order_of(m), n); };
  for (std::size_t i = 0; i < cfg.shipping_shards; ++i) {
    auto name = "shipping-" + std::to_string(i);
    shipping_config sc{name, cfg.shipping_capacity, carriers,
                       std::max<std::size_t>(1, cfg.carrier_capacity / cfg.shipping_shards),
                       cfg.provider_timeout.base, env_of(cfg)};
    sup.children.push_back({name, [sc](caf::actor_system& s) { return spawn_shipping(s, sc); }});
  }
  p->shipping_ = spawn_supervisor<shipment_reply>(sys, std::move(sup));

  sup = base_supervisor(cfg, "inventory", 103);
  sup.breaker = cfg.service_breaker;
  sup.call_timeout = cfg.service_timeout;
  sup.route = [n = cfg.inventory_shards](const caf::message& m) { return shard_of(sku_of(m), n); };
  for (std::size_t i = 0; i < cfg.inventory_shards; ++i) {
    auto name = "inventory-" + std::to_string(i);
    inventory_config ic{name, cfg.inventory_capacity, 200, env_of(cfg)};
    sup.children.push_back({name, [ic](caf::actor_system& s) { return spawn_inventory(s, ic); }});
  }
  p->inventory_ = spawn_supervisor<stock_reply>(sys, std::move(sup));

  auto env = std::make_shared<saga_env>();
  env->inventory = p->inventory_;
  env->payment = p->payment_;
  env->shipping = p->shipping_;
  env->inventory_shards = cfg.inventory_shards;
  env->env = env_of(cfg);
  env->policy = cfg.saga;
  env->payment_retry = cfg.payment_retry;
  env->step_retry = cfg.step_retry;
  env->max_shipping_attempts = cfg.max_shipping_attempts;
  env->on_finished = cfg.on_finished;
  env->seed = cfg.seed;
  p->orders_ = spawn_orders(sys, orders_config{env, cfg.orders_capacity, cfg.max_sagas});

  retry_queue_config rq{p->orders_, {}, {}, cfg.retry_tick, cfg.redrives_per_tick, env_of(cfg)};
  for (auto* name : pipeline::gateways) {
    rq.gateways.push_back(cfg.metrics->breaker(name));
    rq.bulkheads.push_back(cfg.metrics->bulkhead(name));
  }
  p->retry_queue_ = spawn_retry_queue(sys, std::move(rq));
  env->retry_queue = p->retry_queue_; // before any saga exists

  if (auto err = p->recover(cfg))
    return err;
  return p;
}

caf::error pipeline::recover(const pipeline_config& cfg) {
  std::string after;
  for (;;) {
    auto page = cfg.store->list_streams("order-", 1000, after);
    if (!page)
      return std::move(page.error());
    if (page->empty())
      return caf::none;
    for (auto& info : *page) {
      auto id = info.stream.substr(6);
      auto st = load_order(*cfg.store, id, cfg.saga);
      if (!st)
        return std::move(st.error());
      recovered_.orders++;
      if (is_terminal(st->status) || st->status == order_status::none)
        continue;
      if (st->status == order_status::pending_payment) {
        caf::anon_send(retry_queue_, park_atom::value, id, st->retry_at_us, st->premium);
        recovered_.parked++;
      } else {
        caf::anon_send(orders_, redrive_atom::value, id);
        recovered_.redriven++;
      }
    }
    after = page->back().stream;
  }
}

void pipeline::stop() {
  for (auto* hdl : {&orders_, &retry_queue_, &inventory_, &payment_, &shipping_})
    if (*hdl)
      caf::anon_send_exit(*hdl, caf::exit_reason::user_shutdown);
  for (auto& kvp : provider_handles_)
    caf::anon_send_exit(kvp.second, caf::exit_reason::user_shutdown);
}

pipeline::~pipeline() {
  stop();
}

} // namespace keel::actors
