// Parked payments through pipeline_config::on_park (the node's Kafka retry
// queue) and back through pipeline::park, in virtual time.

#include <algorithm>

#include "providers.hpp"
#include "journal.hpp"
#include "pipeline_fixture.hpp"

using namespace keel;
using namespace keel::test;
using actors::parked_payment;
using strings = std::vector<std::string>;

namespace {

/// A pipeline whose parked payments go to `parked` instead of its queue.
struct hook_fixture : pipeline_fixture {
  std::vector<parked_payment> parked;

  void start_hooked() {
    auto c = config();
    c.on_park = [this](const parked_payment& x) { parked.push_back(x); };
    start(std::move(c));
  }

  void outage(bool on) {
    for (const auto& gw : keel::test::gateways) {
      auto f = p->simulator(gw).faults();
      f.error_rate = on ? 1.0 : 0.0;
      p->simulator(gw).faults(f);
    }
  }

  /// on_finished reports of `id` with `status`.
  std::size_t reports(const std::string& id, actors::order_status status) const {
    return static_cast<std::size_t>(std::count_if(finished.begin(), finished.end(), [&](auto& x) {
      return x.order_id == id && x.status == status;
    }));
  }

  std::size_t count(const std::string& stream, const std::string& type) {
    auto ts = types(stream);
    return static_cast<std::size_t>(std::count(ts.begin(), ts.end(), type));
  }

  std::int64_t value(const std::string& name) {
    return p->metrics().value(name)->load();
  }

  /// Places o-1, lets the outage park it on the hook and ends the outage.
  parked_payment park_one() {
    set_stock("SKU-1", 10);
    outage(true);
    REQUIRE(place(order("o-1", "SKU-1", 1, true)));
    advance(500ms);
    REQUIRE(status("o-1") == "pending_payment");
    REQUIRE(parked.size() == 1);
    outage(false);
    return parked[0];
  }
};

} // namespace

TEST_CASE_METHOD(hook_fixture, "a parked payment goes to the park hook instead of the in-process queue and completes once handed back", "[retry][hook]") {
  start_hooked();
  auto x = park_one();
  auto st = actors::load_order(*store, "o-1", policy);
  REQUIRE(st);
  CHECK(x.order_id == "o-1");
  CHECK(x.premium);
  CHECK(x.attempt == 1);
  CHECK(x.retry_at_us == st->retry_at_us);
  CHECK(x.retry_at_us > now_us());
  CHECK_FALSE(x.reason.empty());
  CHECK(x.reason == st->pending_reason);
  CHECK(x.correlation_id == events::to_string(events::correlation_of("o-1")));
  CHECK(x.correlation_id.size() == 32);
  CHECK(value("retry_queue.depth") == 0);
  CHECK(reports("o-1", actors::order_status::pending_payment) == 1);
  // Long after its retry time nothing has re-driven it: the hook owns it.
  advance(10s, 100ms);
  CHECK(status("o-1") == "pending_payment");
  CHECK(value("retry_queue.redriven") == 0);
  // Handed back twice (at-least-once delivery): re-driven once.
  p->park(x);
  p->park(x);
  advance(500ms);
  CHECK(status("o-1") == "completed");
  CHECK(value("retry_queue.redriven") == 1);
  CHECK(count("payment-o-1", "payment_authorized") == 1);
  CHECK(count("payment-o-1", "payment_captured") == 1);
  CHECK(parked.size() == 1);
  CHECK(audit().ok());
}

TEST_CASE_METHOD(hook_fixture, "a hand-back of an order that is no longer parked changes nothing and reports nothing", "[retry][hook]") {
  start_hooked();
  auto x = park_one();
  p->park(x);
  advance(2s, 100ms);
  REQUIRE(status("o-1") == "completed");
  auto order_events = types("order-o-1");
  auto payment_events = types("payment-o-1");
  auto gateway_calls = p->simulator("gw-primary").calls() + p->simulator("gw-secondary").calls();
  auto charges = p->simulator("gw-primary").distinct_successes();
  auto reported = finished.size();
  p->park(x); // late duplicate
  p->park(parked_payment{"o-404", now_us(), false, 1, "never placed", ""});
  advance(2s, 100ms);
  CHECK(status("o-1") == "completed");
  CHECK(types("order-o-1") == order_events);
  CHECK(types("payment-o-1") == payment_events);
  CHECK(p->simulator("gw-primary").calls() + p->simulator("gw-secondary").calls() == gateway_calls);
  CHECK(p->simulator("gw-primary").distinct_successes() == charges);
  CHECK(finished.size() == reported);
  CHECK(reports("o-1", actors::order_status::completed) == 1);
  CHECK(types("order-o-404").empty());
  CHECK(value("sagas.in_flight") == 0);
  CHECK(parked.size() == 1);
  CHECK(audit().ok());
}

TEST_CASE_METHOD(hook_fixture, "a hand-back before the order's retry time parks it again until then", "[retry][hook]") {
  start_hooked();
  auto x = park_one();
  auto early = x;
  early.retry_at_us = now_us(); // stale or tampered
  auto gateway_calls = p->simulator("gw-primary").calls() + p->simulator("gw-secondary").calls();
  auto order_events = types("order-o-1");
  p->park(early);
  advance(100ms);
  REQUIRE(parked.size() == 2);
  CHECK(parked[1].retry_at_us == x.retry_at_us);
  CHECK(parked[1].attempt == x.attempt);
  CHECK(parked[1].reason == x.reason);
  CHECK(p->simulator("gw-primary").calls() + p->simulator("gw-secondary").calls() == gateway_calls);
  CHECK(types("order-o-1") == order_events);
  CHECK(status("o-1") == "pending_payment");
  CHECK(reports("o-1", actors::order_status::pending_payment) == 1);
  p->park(parked[1]);
  advance(2s, 100ms);
  CHECK(status("o-1") == "completed");
  CHECK(audit().ok());
}

TEST_CASE_METHOD(hook_fixture, "a new pipeline hands the parked orders it recovers to the park hook", "[retry][hook][recovery]") {
  start_hooked();
  set_stock("SKU-1", 10);
  outage(true);
  for (auto* id : {"o-1", "o-2", "o-3"})
    REQUIRE(place(order(id, "SKU-1")));
  advance(500ms);
  REQUIRE(parked.size() == 3);
  p->stop();
  p.reset();
  run();
  auto before = parked;
  parked.clear();
  start_hooked();
  CHECK(p->recovered().parked == 3);
  REQUIRE(parked.size() == 3);
  auto by_id = [](auto& a, auto& b) { return a.order_id < b.order_id; };
  std::sort(before.begin(), before.end(), by_id);
  std::sort(parked.begin(), parked.end(), by_id);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(parked[i].order_id == before[i].order_id);
    CHECK(parked[i].retry_at_us == before[i].retry_at_us);
    CHECK(parked[i].attempt == before[i].attempt);
    CHECK(parked[i].premium == before[i].premium);
    CHECK(parked[i].reason == before[i].reason);
    CHECK(parked[i].correlation_id == before[i].correlation_id);
  }
  CHECK(value("retry_queue.depth") == 0);
}

TEST_CASE_METHOD(hook_fixture, "a parked payment from outside is checked against the order's stream", "[retry][hook]") {
  start_hooked();
  auto x = park_one();
  const auto now = now_us();
  const std::int64_t horizon = 600'000'000;
  using actors::park_check;
  auto check = [&](const parked_payment& p) { return actors::check_parked(*store, p, now, horizon); };
  CHECK(check(x) == park_check::valid);
  auto forged = x;
  forged.attempt = 4294967295u; // the review's stuck order
  forged.retry_at_us = 0;
  CHECK(check(forged) == park_check::invalid);
  forged = x;
  forged.attempt = 2;
  CHECK(check(forged) == park_check::invalid);
  forged = x;
  forged.attempt = 0;
  CHECK(check(forged) == park_check::stale);
  forged = x;
  forged.retry_at_us = now;
  CHECK(check(forged) == park_check::invalid);
  forged = x;
  forged.premium = !x.premium;
  CHECK(check(forged) == park_check::invalid);
  forged = x;
  forged.retry_at_us = now + horizon + 1;
  CHECK(check(forged) == park_check::far_future);
  for (const auto& id : std::vector<std::string>{"x y", "", "a/b", std::string(195, 'x'), "no-such-order"}) {
    forged = x;
    forged.order_id = id;
    CHECK(check(forged) == park_check::invalid);
  }
  // Once the order has moved on, its last park is stale.
  p->park(x);
  advance(2s);
  REQUIRE(status("o-1") == "completed");
  CHECK(check(x) == park_check::stale);
}

TEST_CASE_METHOD(hook_fixture, "the retry queue is bounded and ids that are no order ids are never re-driven", "[retry]") {
  auto c = config();
  c.retry_queue_capacity = 2;
  start(std::move(c));
  for (auto* id : {"a-1", "a-2", "a-3"})
    p->park({id, now_us() + 60'000'000, false, 1, "test", ""});
  run();
  CHECK(value("retry_queue.depth") == 2);
  CHECK(value("retry_queue.overflow") == 1);
  // A re-park of a queued order replaces it (no overflow).
  p->park({"a-1", now_us() + 30'000'000, false, 1, "test", ""});
  run();
  CHECK(value("retry_queue.overflow") == 1);
  // Due ids that are not order ids: ignored by the orders actor, no saga crashes.
  for (auto* id : {"x y", "a/b"})
    caf::anon_send(p->orders(), actors::redrive_atom::value, std::string{id});
  run();
  CHECK(value("sagas.redrives_ignored") == 2);
  CHECK(value("sagas.crashed") == 0);
}
