// order_script (apps/load): orders driven through the saga's real decider,
// the world's answers chosen by the caller, with the pipeline's causation.

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "order_script.hpp"
#include "traffic.hpp"

using namespace keel;
using bench::order_script;
using bench::step_answer;

namespace {

/// Everything a script emitted, in order.
struct recorder {
  struct entry {
    events::event ev;
    events::event_id id;
    events::event_id cause;
  };
  std::vector<entry> log;
  std::int64_t now = 1'800'000'000'000'000;

  bench::emit_fn fn() {
    return [this](const events::event& ev, const events::event_id& cause) {
      now += 1000;
      auto id = events::event_id::from_seed(5, log.size());
      log.push_back({ev, id, cause});
      return bench::emitted{id, now};
    };
  }

  std::vector<std::string> types() const {
    std::vector<std::string> out;
    for (auto& e : log)
      out.emplace_back(events::type_name(e.ev));
    return out;
  }

  const entry& of(const events::event_id& id) const {
    for (auto& e : log)
      if (e.id == id)
        return e;
    throw std::out_of_range("no such event");
  }
};

events::order_placed placed(std::size_t lines = 1) {
  events::order_placed p;
  p.order_id = "s-1";
  p.customer_id = "customer-1";
  for (std::size_t i = 0; i < lines; ++i)
    p.lines.push_back({"SKU-" + std::to_string(i), 2, 500});
  p.total_cents = events::total_cents(p.lines);
  return p;
}

const char* first_command(const order_script& o) {
  return o.step().empty() ? "none" : actors::command_name(o.step().front());
}

} // namespace

TEST_CASE("an order answered ok at every step completes with the pipeline's causation",
          "[load][script]") {
  recorder r;
  order_script o{placed(2), r.fn()};
  CHECK(std::string{first_command(o)} == "reserve_stock");
  while (!o.finished())
    o.answer(step_answer{});
  CHECK(o.state().status == actors::order_status::completed);
  CHECK(r.types()
        == std::vector<std::string>{
          "order_placed", "stock_reserved", "stock_reserved", "order_stock_reserved",
          "payment_authorized", "order_payment_authorized", "shipment_scheduled",
          "order_shipment_scheduled", "payment_captured", "stock_committed", "stock_committed",
          "order_completed"});
  // A service event names the order event that issued its step; an outcome
  // the step's first service event.
  CHECK_FALSE(r.log[0].cause.valid());
  CHECK(r.log[1].cause == r.log[0].id);
  CHECK(r.log[2].cause == r.log[0].id);
  CHECK(r.log[3].cause == r.log[1].id);
  CHECK(r.log[4].cause == r.log[3].id);
  CHECK(r.log[11].cause == r.log[8].id);
}

TEST_CASE("a reservation refused after a held line releases that line and is rejected",
          "[load][script]") {
  recorder r;
  order_script o{placed(2), r.fn()};
  step_answer a;
  a.available = [](const std::string& sku) { return sku == "SKU-0" ? 10 : 1; };
  o.answer(a);
  // The decider releases what may be held, then records the rejection.
  CHECK(std::string{first_command(o)} == "release_stock");
  o.answer(step_answer{});
  REQUIRE(o.finished());
  CHECK(o.state().status == actors::order_status::rejected);
  CHECK(r.types()
        == std::vector<std::string>{"order_placed", "stock_reserved",
                                    "stock_reservation_refused", "order_stock_refused",
                                    "stock_released", "order_stock_released", "order_rejected"});
  auto& released = std::get<events::stock_released>(r.log[4].ev);
  CHECK(released.sku == "SKU-0"); // only the line that was held
  auto& rejected = std::get<events::order_rejected>(r.log.back().ev);
  CHECK(rejected.code == events::end_reason::out_of_stock);
  CHECK(rejected.reason == "SKU-1 (requested 2, available 1)");
  CHECK(r.log.back().cause == r.log[5].id); // recorded after the last outcome
}

TEST_CASE("an unavailable payment parks the order until it is resumed", "[load][script]") {
  recorder r;
  order_script o{placed(), r.fn()};
  o.answer(step_answer{});
  step_answer down;
  down.result = step_answer::kind::unavailable;
  down.reason = "gateway timeout";
  down.retry_at_us = r.now + 5'000'000;
  o.answer(down);
  CHECK(o.parked());
  CHECK(o.state().status == actors::order_status::pending_payment);
  CHECK_THROWS_AS(o.answer(step_answer{}), std::logic_error); // no step outstanding
  o.resume();
  CHECK(std::string{first_command(o)} == "authorize_payment");
  while (!o.finished())
    o.answer(step_answer{});
  CHECK(o.state().status == actors::order_status::completed);
  // The re-driven authorization names the pending event as its cause.
  auto pending = std::find_if(r.log.begin(), r.log.end(), [](auto& e) {
    return std::holds_alternative<events::order_payment_pending>(e.ev);
  });
  REQUIRE(pending != r.log.end());
  auto& next = *(pending + 1);
  CHECK(std::holds_alternative<events::payment_authorized>(next.ev));
  CHECK(next.cause == pending->id);
}

TEST_CASE("a cancel while the shipment is scheduled compensates every step in the decider's order",
          "[load][script]") {
  recorder r;
  order_script o{placed(), r.fn()};
  o.answer(step_answer{});
  o.answer(step_answer{});
  REQUIRE(std::string{first_command(o)} == "schedule_shipment");
  REQUIRE(o.cancel("customer-1"));
  CHECK(std::string{first_command(o)} == "schedule_shipment"); // still outstanding
  step_answer carrier;
  carrier.provider = "carrier-a";
  while (!o.finished())
    o.answer(carrier);
  CHECK(o.state().status == actors::order_status::cancelled);
  auto types = r.types();
  std::vector<std::string> tail(types.end() - 7, types.end());
  CHECK(tail
        == std::vector<std::string>{"shipment_cancelled", "order_shipment_cancelled",
                                    "payment_voided", "order_payment_voided", "stock_released",
                                    "order_stock_released", "order_cancelled"});
  CHECK_FALSE(o.cancel("customer-1")); // ended: nothing more to cancel
}

TEST_CASE("an outcome the decider did not wait for is refused", "[load][script]") {
  recorder r;
  order_script o{placed(), r.fn()};
  bench::step_events wrong;
  wrong.outcomes.emplace_back(events::order_completed{"s-1"});
  CHECK_THROWS_AS(o.answer(wrong), std::logic_error);
}

TEST_CASE("generated traffic takes every planned path and ends every order", "[load][script]") {
  std::map<std::string, int> ends;
  int parked = 0;
  for (std::uint64_t n = 0; n < 400; ++n) {
    std::vector<bench::planned_append> out;
    bench::order_history(3, n, 1'800'000'000'000'000, out);
    ends[out.back().event.type]++;
    for (auto& a : out)
      parked += a.event.type == "order_payment_pending";
  }
  CHECK(ends.size() == 3);
  CHECK(ends["order_completed"] > 250);
  CHECK(ends["order_rejected"] > 10);
  CHECK(ends["order_cancelled"] > 30);
  CHECK(parked > 5);
}
