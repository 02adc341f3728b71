// Breakers, bulkheads, timeouts, retries and supervision in virtual time.

#include "providers.hpp"
#include "pipeline_fixture.hpp"
#include "provider_adapter.hpp"
#include "supervisor.hpp"

using namespace keel;
using namespace keel::test;
using actors::provider_answer;
using actors::provider_request;
using events::breaker_state;

namespace {

provider_request call(const std::string& key) {
  return provider_request{"authorize", key, 1000};
}

void set_faults(actors::pipeline& p, const std::string& name,
                const std::function<void(actors::provider_faults&)>& f) {
  auto x = p.simulator(name).faults();
  f(x);
  p.simulator(name).faults(x);
}

/// The `to` states of the breaker transitions recorded for `name`.
std::vector<breaker_state> transitions(storage::event_store& store, const std::string& name) {
  std::vector<breaker_state> result;
  auto reader = store.read_stream("$system-breaker-" + name);
  while (reader.next()) {
    auto ev = reader.current().decode_payload();
    REQUIRE(ev);
    result.push_back(std::get<events::breaker_transitioned>(*ev).to);
  }
  return result;
}

/// A pipeline whose gw-primary never answers and whose breakers never open
/// (so bulkheads and timeouts can be watched alone: the pools start at their
/// maximum, which fills the bulkhead).
struct hung_gateway_fixture : pipeline_fixture {
  void start_with_hung_primary() {
    auto c = config();
    c.provider_breaker.failure_threshold = 1000;
    c.provider_breaker.minimum_calls = 1000;
    c.provider_pool.initial_workers = c.provider_pool.max_workers;
    start(c);
    set_faults(*p, "gw-primary", [](auto& f) { f.hang_rate = 1.0; });
  }
};

} // namespace

TEST_CASE_METHOD(pipeline_fixture, "a provider breaker opens after ten failures, fails fast, half-opens after 30 s and closes on good trial calls", "[breaker]") {
  start();
  set_faults(*p, "gw-primary", [](auto& f) { f.error_rate = 1.0; });
  auto gw = p->provider_handle("gw-primary");
  auto gauge = p->metrics().breaker("gw-primary");
  for (int i = 0; i < 10; ++i) {
    CHECK(gauge->current() == breaker_state::closed);
    auto r = ask<provider_answer>(gw, call("k" + std::to_string(i)));
    advance(50ms);
    REQUIRE(r->has_value());
    CHECK(code_of((*r)->error()) == errc::provider_failure);
  }
  CHECK(gauge->current() == breaker_state::open);
  auto calls_before = p->simulator("gw-primary").calls();
  auto fast = ask_now<provider_answer>(gw, call("k-fast"));
  REQUIRE_FALSE(fast);
  CHECK(code_of(fast.error()) == errc::circuit_open);
  CHECK(p->simulator("gw-primary").calls() == calls_before); // never attempted
  advance(29s, 1s);
  CHECK(gauge->current() == breaker_state::open);
  advance(2s, 1s);
  CHECK(gauge->current() == breaker_state::half_open);
  set_faults(*p, "gw-primary", [](auto& f) { f.error_rate = 0.0; });
  for (int i = 0; i < 3; ++i) {
    auto r = ask<provider_answer>(gw, call("t" + std::to_string(i)));
    advance(50ms);
    REQUIRE(r->has_value());
    CHECK(**r);
  }
  CHECK(gauge->current() == breaker_state::closed);
  CHECK(transitions(*store, "gw-primary")
        == std::vector<breaker_state>{breaker_state::open, breaker_state::half_open,
                                      breaker_state::closed});
}

TEST_CASE_METHOD(pipeline_fixture, "a failed trial call in half-open opens the breaker again", "[breaker]") {
  start();
  set_faults(*p, "gw-primary", [](auto& f) { f.error_rate = 1.0; });
  auto gw = p->provider_handle("gw-primary");
  for (int i = 0; i < 10; ++i)
    ask<provider_answer>(gw, call("k" + std::to_string(i)));
  advance(100ms);
  advance(31s, 1s);
  auto r = ask<provider_answer>(gw, call("trial"));
  advance(100ms);
  REQUIRE(r->has_value());
  CHECK_FALSE(**r);
  CHECK(p->metrics().breaker("gw-primary")->current() == breaker_state::open);
  CHECK(transitions(*store, "gw-primary")
        == std::vector<breaker_state>{breaker_state::open, breaker_state::half_open,
                                      breaker_state::open});
}

TEST_CASE_METHOD(hung_gateway_fixture, "a full bulkhead rejects the excess at enqueue time and never queues it", "[bulkhead]") {
  start_with_hung_primary();
  auto gw = p->provider_handle("gw-primary");
  std::vector<answer<provider_answer>> rs;
  for (int i = 0; i < 25; ++i)
    rs.push_back(ask<provider_answer>(gw, call("k" + std::to_string(i))));
  run(); // no time passes: only rejections can be answered
  auto bulkhead = p->metrics().bulkhead("gw-primary");
  std::size_t overloaded = 0;
  std::size_t open = 0;
  for (auto& r : rs) {
    if (!r->has_value())
      ++open;
    else if (code_of((*r)->error()) == errc::overloaded)
      ++overloaded;
  }
  CHECK(overloaded == 5);
  CHECK(open == 20);
  CHECK(bulkhead->rejected == 5);
  CHECK(bulkhead->in_use == 20);
  CHECK(p->simulator("gw-primary").calls() == 20);
  // The hung calls time out after the adaptive timeout: base 2 s, x1.5
  // because the bulkhead was over 80% full (all 20 were admitted at once).
  advance(2900ms, 100ms);
  CHECK(std::all_of(rs.begin(), rs.end(), [](auto& r) {
    return !r->has_value() || code_of((*r)->error()) == errc::overloaded;
  }));
  advance(200ms, 100ms);
  auto timed_out = std::count_if(rs.begin(), rs.end(), [](auto& r) {
    return r->has_value() && code_of((*r)->error()) == errc::timeout;
  });
  CHECK(timed_out == 20);
  for (auto& r : rs) {
    REQUIRE(r->has_value());
    auto code = code_of((*r)->error());
    CHECK((code == errc::overloaded || code == errc::timeout));
  }
  CHECK(bulkhead->in_use == 0);
}

TEST_CASE_METHOD(hung_gateway_fixture, "provider timeouts adapt to the observed p99", "[timeout]") {
  start_with_hung_primary();
  auto gw = p->provider_handle("gw-primary");
  auto first = ask<provider_answer>(gw, call("a"));
  advance(2100ms, 100ms);
  REQUIRE(first->has_value());
  CHECK(code_of((*first)->error()) == errc::timeout);
  // Observed p99 is now 2 s (>= 1 s, < 3 s): the next timeout is 2.5 x 2 s.
  auto second = ask<provider_answer>(gw, call("b"));
  advance(4900ms, 100ms);
  CHECK_FALSE(second->has_value());
  advance(200ms, 100ms);
  REQUIRE(second->has_value());
  CHECK(code_of((*second)->error()) == errc::timeout);
}

TEST_CASE_METHOD(pipeline_fixture, "a payment outage parks orders in pending_payment and they complete after recovery", "[retry]") {
  start();
  set_stock("SKU-1", 100);
  for (const auto& gw : keel::test::gateways)
    set_faults(*p, gw, [](auto& f) { f.error_rate = 1.0; });
  for (int i = 0; i < 12; ++i)
    REQUIRE(place(order("o-" + std::to_string(i), "SKU-1", 1, i % 3 == 0)));
  advance(500ms);
  for (int i = 0; i < 12; ++i)
    CHECK(status("o-" + std::to_string(i)) == "pending_payment");
  CHECK(p->metrics().breaker("gw-primary")->current() == breaker_state::open);
  {
    auto reader = store->read_stream("$system-breaker-gw-primary");
    REQUIRE(reader.next());
    auto ev = reader.current().decode_payload();
    REQUIRE(ev);
    CHECK(std::get<events::breaker_transitioned>(*ev).failures == 10); // opened at the 10th
  }
  CHECK(p->metrics().value("retry_queue.depth")->load() == 12);
  CHECK(p->metrics().value("sagas.in_flight")->load() == 0); // parked sagas passivate
  // Still failing while the breakers are open: nothing is re-driven.
  advance(5s, 100ms);
  CHECK(p->metrics().value("retry_queue.redriven")->load() == 0);
  for (const auto& gw : keel::test::gateways)
    set_faults(*p, gw, [](auto& f) { f.error_rate = 0.0; });
  advance(60s, 100ms);
  for (int i = 0; i < 12; ++i)
    CHECK(status("o-" + std::to_string(i)) == "completed");
  CHECK(p->metrics().breaker("gw-primary")->current() == breaker_state::closed);
  CHECK(p->metrics().value("retry_queue.depth")->load() == 0);
  CHECK(audit().ok());
}

TEST_CASE_METHOD(pipeline_fixture, "an order whose payment stays unavailable is compensated after its last attempt", "[retry]") {
  auto c = config();
  c.saga.max_payment_attempts = 3;
  c.provider_breaker.wait_in_open = 1s;
  start(c);
  set_stock("SKU-1", 10);
  for (const auto& gw : keel::test::gateways)
    set_faults(*p, gw, [](auto& f) { f.error_rate = 1.0; });
  REQUIRE(place(order("o-1", "SKU-1", 2)));
  advance(120s, 100ms);
  CHECK(status("o-1") == "cancelled");
  auto st = actors::load_order(*store, "o-1", policy);
  REQUIRE(st);
  CHECK(st->payment_attempts == 3);
  CHECK(reason_of(*st).find("payment unavailable") != std::string::npos);
  CHECK(stock("SKU-1").available == 10);
  CHECK(audit().ok());
}

TEST_CASE_METHOD(pipeline_fixture, "a crashing child fails only the request that caused it", "[supervisor]") {
  start();
  auto gw = p->provider_handle("gw-primary");
  auto before = ask<provider_answer>(gw, call("a"));
  auto crash = ask<provider_answer>(gw, actors::crash_atom::value);
  auto after1 = ask<provider_answer>(gw, call("b"));
  auto after2 = ask<provider_answer>(gw, call("c"));
  advance(100ms);
  REQUIRE(crash->has_value());
  CHECK(code_of((*crash)->error()) == errc::actor_crashed);
  for (auto* r : {&before, &after1, &after2}) {
    REQUIRE((*r)->has_value());
    CHECK(**(*r));
  }
  auto sup = p->metrics().supervisor("gw-primary");
  CHECK(sup->restarts == 1);
  CHECK(sup->resent >= 2);
  CHECK(types("$system-supervisor") == std::vector<std::string>{"actor_restarted"});
}

TEST_CASE_METHOD(pipeline_fixture, "a supervisor escalates once its restart budget is spent", "[supervisor]") {
  auto c = config();
  c.restart_intensity = 3;
  start(c);
  auto gw = p->provider_handle("gw-primary");
  for (int i = 0; i < 3; ++i) {
    auto crash = ask<provider_answer>(gw, actors::crash_atom::value);
    advance(3s, 100ms);
    REQUIRE(crash->has_value());
    CHECK(code_of((*crash)->error()) == errc::actor_crashed);
  }
  auto pending = ask<provider_answer>(gw, actors::crash_atom::value);
  advance(100ms);
  auto sup = p->metrics().supervisor("gw-primary");
  CHECK(sup->escalated);
  auto late = ask_now<provider_answer>(gw, call("x"));
  REQUIRE_FALSE(late); // the supervisor is gone
}

TEST_CASE_METHOD(pipeline_fixture, "one-for-all restarts every child and re-sends their requests", "[supervisor]") {
  start();
  auto prov = std::make_shared<actors::simulated_provider>("solo", 7);
  auto f = prov->faults();
  f.latency_median = f.latency_p99 = 300ms;
  prov->faults(f);
  actors::supervisor_config sc;
  sc.name = "pair";
  sc.strategy = actors::restart_strategy::one_for_all;
  sc.metrics = std::make_shared<actors::registry>();
  sc.now_us = [this] { return now_us(); };
  sc.route = [](const caf::message& m) -> std::size_t {
    return m.match_elements<provider_request>() ? 1 : 0;
  };
  for (int i = 0; i < 2; ++i)
    sc.children.push_back({"child-" + std::to_string(i), [prov, m = sc.metrics](caf::actor_system& s) {
      actors::adapter_config ac;
      ac.name = "solo";
      ac.provider = prov;
      ac.metrics = m;
      return actors::spawn_provider_adapter(s, std::move(ac));
    }});
  auto sup = actors::spawn_supervisor<provider_answer>(*sys, sc);
  run();
  auto slow = ask<provider_answer>(sup, call("slow")); // in flight at child 1
  run();
  auto crash = ask<provider_answer>(sup, actors::crash_atom::value); // child 0
  advance(1s);
  REQUIRE(crash->has_value());
  CHECK(code_of((*crash)->error()) == errc::actor_crashed);
  REQUIRE(slow->has_value());
  CHECK(**slow);
  auto g = sc.metrics->supervisor("pair");
  CHECK(g->restarts == 2);
  CHECK(g->crashes == 1);
  CHECK(g->resent >= 1);
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  run();
}

TEST_CASE_METHOD(pipeline_fixture, "a new pipeline re-drives every saga the old one left in flight", "[recovery]") {
  start();
  set_stock("SKU-1", 100);
  for (int i = 0; i < 20; ++i)
    ask<actors::order_view>(p->orders(), order("o-" + std::to_string(i), "SKU-1"));
  run();
  advance(3ms, 1ms); // some sagas mid-way
  p->stop();
  p.reset();
  run();
  std::size_t open = 0;
  for (int i = 0; i < 20; ++i) {
    auto s = status("o-" + std::to_string(i));
    open += s != "completed" ? 1 : 0;
  }
  REQUIRE(open > 0);
  start();
  CHECK(p->recovered().orders == 20);
  CHECK(p->recovered().redriven == open);
  advance(500ms);
  for (int i = 0; i < 20; ++i)
    CHECK(status("o-" + std::to_string(i)) == "completed");
  CHECK(stock("SKU-1").on_hand == 80);
  CHECK(audit().ok());
}

TEST_CASE_METHOD(pipeline_fixture, "orders keep flowing through two payment slowdowns and the breakers close soon after each", "[breaker][slow]") {
  // Regression: in the second slowdown the payment service's own breaker
  // opened on its slow-call rate (the gateways' slowness, counted a second
  // time) and for its 30 s wait parked every order without a call, so the
  // gateways' half-open breakers got no trial calls: they closed 21.8 s
  // after the gateways healed, with 1,610 orders still parked.
  auto c = config();
  c.provider_breaker.wait_in_open = 3s;
  c.payment_retry.initial = 500ms;
  start(c);
  set_stock("SKU-1", 1'000'000);
  auto slow = [&](bool on) {
    for (const auto& gw : keel::test::gateways)
      set_faults(*p, gw, [on](auto& f) {
        f.latency_median = on ? 5s : 2ms;
        f.latency_p99 = on ? 6s : 10ms;
      });
  };
  int n = 0;
  auto traffic = [&](caf::timespan d) { // 50 orders/s
    for (caf::timespan t{0}; t < d; t += 100ms) {
      for (int i = 0; i < 5; ++i)
        REQUIRE(place(order("o-" + std::to_string(n++), "SKU-1")));
      advance(100ms, 10ms);
    }
  };
  auto closed = [&] {
    for (const auto& gw : keel::test::gateways)
      if (p->metrics().breaker(gw)->current() != breaker_state::closed)
        return false;
    return true;
  };
  for (int round = 1; round <= 2; ++round) {
    traffic(5s);
    slow(true);
    traffic(15s);
    slow(false);
    auto healed = sched->clock().now();
    while (!closed() && sched->clock().now() - healed < 120s)
      traffic(100ms);
    auto took = sched->clock().now() - healed;
    INFO("round " << round << ": breakers closed "
                  << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                  << " ms after the gateways healed");
    CHECK(closed());
    // Virtual time: two waits in open and a trial cycle, not the service
    // breaker's 30 s.
    CHECK(took < 10s);
  }
  CHECK(transitions(*store, "payment").empty());
  advance(60s, 100ms);
  CHECK(p->metrics().value("retry_queue.depth")->load() == 0);
  CHECK(audit().ok());
}
