// Isolation on the real scheduler: a payment outage must not slow down
// inventory. Real threads, real time, a real store with fsync.

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <catch2/catch.hpp>

#include "providers.hpp"
#include "keel/projections/audit.hpp"
#include "keel/actors/messages.hpp"
#include "keel/actors/pipeline.hpp"
#include "keel/events/error.hpp"
#include "keel/storage/event_store.hpp"
#include "temp_dir.hpp"

using namespace keel;
using namespace std::chrono_literals;

namespace {

using clock_type = std::chrono::steady_clock;

/// Round-trip times of inventory queries, by phase (0 normal, 1 outage).
struct probe_log {
  std::mutex mtx;
  int phase = 0;
  std::vector<double> rtt_ms[2];
};

/// Queries one SKU's level every 2 ms and records the round trip.
caf::behavior probe(caf::event_based_actor* self, caf::actor inventory,
                    std::shared_ptr<probe_log> log) {
  self->send(self, actors::tick_atom::value);
  return {
    [=](actors::tick_atom) {
      auto t0 = clock_type::now();
      self->request(inventory, caf::infinite, actors::get_atom::value, std::string{"SKU-P"})
        .then(
          [=](actors::stock_reply&) {
            std::chrono::duration<double, std::milli> d = clock_type::now() - t0;
            std::lock_guard<std::mutex> guard{log->mtx};
            log->rtt_ms[log->phase].push_back(d.count());
          },
          [](caf::error&) {});
      self->delayed_send(self, 2ms, actors::tick_atom::value);
    },
  };
}

/// Places `per_tick` orders every 10 ms until told to stop.
caf::behavior driver(caf::event_based_actor* self, caf::actor orders,
                     std::shared_ptr<std::atomic<int>> placed, std::shared_ptr<std::atomic<bool>> stop) {
  self->send(self, actors::tick_atom::value);
  return {
    [=](actors::tick_atom) {
      if (*stop)
        return;
      for (int i = 0; i < 3; ++i) {
        auto n = (*placed)++;
        events::place_order cmd;
        cmd.order_id = "iso-" + std::to_string(n);
        cmd.customer_id = "c-" + std::to_string(n % 50);
        cmd.lines = {{"SKU-" + std::to_string(n % 20), 1, 999}};
        cmd.currency = "EUR";
        cmd.shipping_address = {"A", "B", "C", "12345", "DE"};
        self->request(orders, caf::infinite, cmd).then([](actors::order_view&) {}, [](caf::error&) {});
      }
      self->delayed_send(self, 10ms, actors::tick_atom::value);
    },
  };
}

double median(std::vector<double> xs) {
  REQUIRE_FALSE(xs.empty());
  std::nth_element(xs.begin(), xs.begin() + xs.size() / 2, xs.end());
  return xs[xs.size() / 2];
}

} // namespace

TEST_CASE("a payment outage parks orders without slowing inventory and every order ends after recovery", "[isolation]") {
  keel::temp_dir dir;
  storage::options opts;
  opts.path = dir.sub("store");
  auto opened = storage::event_store::open(opts);
  REQUIRE(opened);
  std::shared_ptr<storage::event_store> store{std::move(*opened)};
  caf::actor_system_config cfg;
  cfg.set("scheduler.max-threads", 2);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  actors::add_message_types(cfg);
  caf::actor_system sys{cfg};
  actors::pipeline_config pc;
  pc.store = store;
  pc.provider_breaker.wait_in_open = 1s;
  pc.payment_retry = {300ms, 2s, 2.0, 0.2};
  actors::simulate_providers(pc);
  auto p = actors::pipeline::start(sys, pc);
  REQUIRE(p);
  caf::scoped_actor self{sys};
  for (int i = 0; i < 20; ++i)
    self->request((*p)->inventory(), caf::infinite, events::set_stock{"SKU-" + std::to_string(i), 100000})
      .receive([](actors::stock_reply&) {}, [](caf::error& e) { FAIL(describe(e)); });
  auto log = std::make_shared<probe_log>();
  auto placed = std::make_shared<std::atomic<int>>(0);
  auto stop = std::make_shared<std::atomic<bool>>(false);
  auto prober = sys.spawn(probe, (*p)->inventory(), log);
  auto load = sys.spawn(driver, (*p)->orders(), placed, stop);
  std::this_thread::sleep_for(2s); // normal load
  {
    std::lock_guard<std::mutex> guard{log->mtx};
    log->phase = 1;
  }
  for (const auto& gw : keel::test::gateways) {
    auto f = (*p)->simulator(gw).faults();
    f.error_rate = 1.0;
    (*p)->simulator(gw).faults(f);
  }
  std::this_thread::sleep_for(2s); // the outage
  for (const auto& gw : keel::test::gateways)
    (*p)->simulator(gw).faults(actors::provider_faults{});
  *stop = true;
  caf::anon_send_exit(prober, caf::exit_reason::user_shutdown);
  // Breaker: opened within 10 failures (the first transition records them).
  auto reader = store->read_stream("$system-breaker-gw-primary");
  REQUIRE(reader.next());
  auto ev = reader.current().decode_payload();
  REQUIRE(ev);
  CHECK(std::get<events::breaker_transitioned>(*ev).to == events::breaker_state::open);
  CHECK(std::get<events::breaker_transitioned>(*ev).failures <= 10);
  // Inventory kept its latency (median; the floor of 1 ms absorbs scheduler
  // noise at sub-millisecond latencies on a loaded 2-core machine).
  double normal = 0;
  double outage = 0;
  {
    std::lock_guard<std::mutex> guard{log->mtx};
    normal = median(log->rtt_ms[0]);
    outage = median(log->rtt_ms[1]);
  }
  INFO("inventory median RTT normal " << normal << " ms, during outage " << outage << " ms");
  CHECK(outage <= std::max(2 * normal, 1.0));
  // Every order ends once the providers are back.
  auto deadline = clock_type::now() + 60s;
  projections::audit_report rep;
  projections::audit_options audit_opts;
  audit_opts.require_terminal = true;
  do {
    std::this_thread::sleep_for(200ms);
    auto r = projections::audit(*store, audit_opts);
    REQUIRE(r);
    rep = *r;
  } while (!rep.ok() && clock_type::now() < deadline);
  for (auto& v : rep.violations)
    UNSCOPED_INFO(v);
  CHECK(rep.ok());
  CHECK(rep.orders > 0);
  std::uint64_t parked = 0;
  auto streams = store->list_streams("order-iso-", 100000);
  REQUIRE(streams);
  for (auto& info : *streams) {
    auto r = store->read_stream(info.stream);
    while (r.next())
      parked += r.current().type == "order_payment_pending" ? 1 : 0;
  }
  CHECK(parked > 0);
  CHECK(rep.outcomes["completed"] > 0);
  caf::anon_send_exit(load, caf::exit_reason::user_shutdown);
  (*p)->stop();
}
