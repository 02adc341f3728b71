#include "providers.hpp"
#include "scenarios.hpp"

#include <functional>

namespace keel::test {

namespace {

using actors::order_view;

void set_faults(pipeline_fixture& f, const std::vector<std::string>& names,
                const std::function<void(actors::provider_faults&)>& change) {
  for (const auto& name : names) {
    auto x = f.p->simulator(name).faults();
    change(x);
    f.p->simulator(name).faults(x);
  }
}

void reset_faults(pipeline_fixture& f) {
  auto clear = [](actors::provider_faults& x) { x = actors::provider_faults{}; };
  set_faults(f, keel::test::gateways, clear);
  set_faults(f, keel::test::carriers, clear);
}

void expect(pipeline_fixture& f, const std::string& id, const std::string& status) {
  INFO("scenario order " << id);
  REQUIRE(f.status(id) == status);
}

void cancel(pipeline_fixture& f, const std::string& id) {
  auto v = f.ask_now<order_view>(f.p->orders(), events::cancel_order{id, "customer-1"});
  REQUIRE(v);
}

} // namespace

const std::vector<std::string>& scenario_orders() {
  static const std::vector<std::string> ids = {
    "completed",          "rejected",         "partial-rejected",
    "declined",           "shipping-failed",  "cancel-in-flight",
    "pending-resumed",    "pending-cancelled", "pending-given-up",
  };
  return ids;
}

const std::vector<std::string>& outage_orders() {
  static const std::vector<std::string> ids = [] {
    std::vector<std::string> result;
    for (int i = 1; i <= 10; ++i)
      result.push_back("outage-" + std::to_string(i));
    return result;
  }();
  return ids;
}

/// The scenarios of a payment outage: parked and re-driven, parked and
/// cancelled, parked until given up.
void record_parks(pipeline_fixture& f) {
  using namespace std::chrono_literals;
  // payment unavailable: parked (pending_payment), re-driven -> completed.
  // Ten more orders in the same outage open the gateways' breakers, so the
  // timeline shows the breaker open, half-open and closed again.
  set_faults(f, keel::test::gateways, [](auto& x) { x.error_rate = 1.0; });
  REQUIRE(f.place(f.order("pending-resumed", "SKU-1", 1, true)));
  for (auto& id : outage_orders())
    REQUIRE(f.place(f.order(id, "SKU-1", 1)));
  f.advance(500ms);
  expect(f, "pending-resumed", "pending_payment");
  reset_faults(f);
  f.advance(10s, 100ms);
  expect(f, "pending-resumed", "completed");
  for (auto& id : outage_orders())
    expect(f, id, "completed");

  // parked, then cancelled by the customer: release -> cancelled
  set_faults(f, keel::test::gateways, [](auto& x) { x.error_rate = 1.0; });
  REQUIRE(f.place(f.order("pending-cancelled", "SKU-1", 1)));
  f.advance(500ms);
  expect(f, "pending-cancelled", "pending_payment");
  cancel(f, "pending-cancelled");
  f.advance(500ms);
  expect(f, "pending-cancelled", "cancelled");

  // still unavailable after the last attempt: release -> cancelled
  REQUIRE(f.place(f.order("pending-given-up", "SKU-1", 2)));
  f.advance(120s, 100ms);
  expect(f, "pending-given-up", "cancelled");
  reset_faults(f);
  f.advance(2s, 100ms);

}

std::string record_scenarios(pipeline_fixture& f) {
  auto c = f.config();
  c.saga.max_payment_attempts = scenario_max_payment_attempts;
  c.provider_breaker.wait_in_open = std::chrono::seconds(1);
  f.start(c);
  f.set_stock("SKU-1", 100);
  f.set_stock("SKU-2", 0);
  using namespace std::chrono_literals;

  // placed -> reserved -> authorized -> scheduled -> completed
  REQUIRE(f.place(f.order("completed", "SKU-1", 2)));
  f.advance(200ms);
  expect(f, "completed", "completed");

  // out of stock: nothing held -> rejected
  REQUIRE(f.place(f.order("rejected", "SKU-2", 1)));
  f.advance(100ms);
  expect(f, "rejected", "rejected");

  // one line reserved, the other refused: release -> rejected
  auto partial = f.order("partial-rejected", "SKU-1", 1);
  partial.lines.push_back({"SKU-2", 1, 100});
  REQUIRE(f.place(partial));
  f.advance(100ms);
  expect(f, "partial-rejected", "rejected");

  // payment declined: release -> cancelled
  set_faults(f, keel::test::gateways, [](auto& x) { x.decline_rate = 1.0; });
  REQUIRE(f.place(f.order("declined", "SKU-1", 3)));
  f.advance(200ms);
  expect(f, "declined", "cancelled");
  reset_faults(f);

  // shipping failed: void -> release -> cancelled
  set_faults(f, keel::test::carriers, [](auto& x) { x.decline_rate = 1.0; });
  REQUIRE(f.place(f.order("shipping-failed", "SKU-1", 1)));
  f.advance(300ms);
  expect(f, "shipping-failed", "cancelled");
  reset_faults(f);

  // a customer cancel while the authorization is in flight: void -> release
  set_faults(f, keel::test::gateways, [](auto& x) { x.latency_median = x.latency_p99 = 500ms; });
  REQUIRE(f.place(f.order("cancel-in-flight", "SKU-1", 1)));
  f.advance(50ms);
  cancel(f, "cancel-in-flight");
  f.advance(1s);
  expect(f, "cancel-in-flight", "cancelled");
  reset_faults(f);

  record_parks(f);
  REQUIRE_FALSE(f.store->flush());
  return f.dir.sub("store");
}

} // namespace keel::test
