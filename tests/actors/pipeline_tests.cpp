// Saga paths and compensations end to end on the deterministic scheduler.

#include <future>
#include <thread>

#include "keel/events/streams.hpp"
#include "keel/storage/replication.hpp"
#include "providers.hpp"
#include "pipeline_fixture.hpp"

using namespace keel;
using namespace keel::test;
using actors::order_view;
using strings = std::vector<std::string>;

TEST_CASE_METHOD(pipeline_fixture, "an order completes through reserve, authorize, schedule, capture and commit", "[pipeline]") {
  start();
  set_stock("SKU-1", 5);
  auto v = place(order("o-1", "SKU-1", 2));
  REQUIRE(v);
  CHECK(v->created);
  CHECK(v->status == "placed");
  advance(200ms);
  CHECK(status("o-1") == "completed");
  CHECK(types("order-o-1")
        == strings{"order_placed", "order_stock_reserved", "order_payment_authorized",
                   "order_shipment_scheduled", "order_completed"});
  CHECK(types("payment-o-1") == strings{"payment_authorized", "payment_captured"});
  CHECK(types("shipment-o-1") == strings{"shipment_scheduled"});
  auto s = stock("SKU-1");
  CHECK(s.on_hand == 3);
  CHECK(s.reserved == 0);
  // 10 events per saga: 5 order, 2 stock, 2 payment, 1 shipment (+1 stock_adjusted,
  // +1 providers_configured at the start).
  CHECK(store->last_position() == 12);
  REQUIRE(finished.size() == 1);
  CHECK(finished[0].status == actors::order_status::completed);
  CHECK(audit().ok());
}

TEST_CASE_METHOD(pipeline_fixture, "placing the same order id twice never creates a second order", "[pipeline]") {
  start();
  set_stock("SKU-1", 5);
  auto first = ask<order_view>(p->orders(), order("o-1", "SKU-1"));
  auto second = ask<order_view>(p->orders(), order("o-1", "SKU-1"));
  run();
  REQUIRE(first->has_value());
  REQUIRE(second->has_value());
  CHECK((**first)->created);
  CHECK_FALSE((**second)->created);
  advance(200ms);
  auto third = place(order("o-1", "SKU-1"));
  REQUIRE(third);
  CHECK_FALSE(third->created);
  CHECK(third->status == "completed");
  CHECK(types("order-o-1").front() == "order_placed");
  CHECK(types("order-o-1").size() == 5);
  CHECK(stock("SKU-1").on_hand == 4);
}

TEST_CASE_METHOD(pipeline_fixture, "an invalid order is refused and nothing is stored", "[pipeline]") {
  start();
  auto at_start = store->last_position();
  auto cmd = order("o-1", "SKU-1");
  cmd.lines[0].quantity = 0;
  auto v = place(cmd);
  REQUIRE_FALSE(v);
  CHECK(code_of(v.error()) == errc::invalid_argument);
  CHECK(store->last_position() == at_start);
}

TEST_CASE_METHOD(pipeline_fixture, "an order beyond the stock is rejected and holds nothing", "[pipeline]") {
  start();
  set_stock("SKU-1", 1);
  REQUIRE(place(order("o-1", "SKU-1", 2)));
  advance(100ms);
  CHECK(status("o-1") == "rejected");
  CHECK(types("order-o-1")
        == strings{"order_placed", "order_stock_refused", "order_rejected"});
  auto s = stock("SKU-1");
  CHECK(s.on_hand == 1);
  CHECK(s.reserved == 0);
  CHECK(audit().ok());
}

TEST_CASE_METHOD(pipeline_fixture, "a partially reserved order releases what it holds before it is rejected", "[pipeline]") {
  start();
  set_stock("SKU-1", 5);
  set_stock("SKU-2", 0);
  auto cmd = order("o-1", "SKU-1");
  cmd.lines.push_back({"SKU-2", 1, 100});
  REQUIRE(place(cmd));
  advance(100ms);
  CHECK(status("o-1") == "rejected");
  CHECK(stock("SKU-1").reserved == 0);
  CHECK(stock("SKU-1").on_hand == 5);
  CHECK(audit().ok());
}

TEST_CASE_METHOD(pipeline_fixture, "a declined payment releases the stock and cancels the order", "[pipeline]") {
  start();
  for (const auto& gw : keel::test::gateways) {
    auto f = p->simulator(gw).faults();
    f.decline_rate = 1.0;
    p->simulator(gw).faults(f);
  }
  set_stock("SKU-1", 5);
  REQUIRE(place(order("o-1", "SKU-1", 2)));
  advance(200ms);
  CHECK(status("o-1") == "cancelled");
  CHECK(types("order-o-1")
        == strings{"order_placed", "order_stock_reserved", "order_payment_declined",
                   "order_stock_released", "order_cancelled"});
  CHECK(stock("SKU-1").available == 5);
  CHECK(audit().ok());
}

TEST_CASE_METHOD(pipeline_fixture, "a failed shipment voids the payment and releases the stock", "[pipeline]") {
  start();
  for (const auto& c : keel::test::carriers) {
    auto f = p->simulator(c).faults();
    f.decline_rate = 1.0;
    p->simulator(c).faults(f);
  }
  set_stock("SKU-1", 5);
  REQUIRE(place(order("o-1", "SKU-1")));
  advance(300ms);
  CHECK(status("o-1") == "cancelled");
  CHECK(types("order-o-1")
        == strings{"order_placed", "order_stock_reserved", "order_payment_authorized",
                   "order_shipment_failed", "order_payment_voided", "order_stock_released",
                   "order_cancelled"});
  CHECK(types("payment-o-1") == strings{"payment_authorized", "payment_voided"});
  CHECK(stock("SKU-1").available == 5);
  CHECK(audit().ok());
}

TEST_CASE_METHOD(pipeline_fixture, "a cancel while the payment is in flight voids it once it arrives", "[pipeline]") {
  start();
  auto f = p->simulator("gw-primary").faults();
  f.latency_median = f.latency_p99 = 500ms;
  p->simulator("gw-primary").faults(f);
  set_stock("SKU-1", 5);
  REQUIRE(place(order("o-1", "SKU-1")));
  advance(50ms);
  CHECK(status("o-1") == "stock_reserved");
  auto v = ask_now<order_view>(p->orders(), events::cancel_order{"o-1", "customer-1"});
  REQUIRE(v);
  advance(1s);
  CHECK(status("o-1") == "cancelled");
  CHECK(types("order-o-1")
        == strings{"order_placed", "order_stock_reserved", "order_cancel_requested",
                   "order_payment_authorized", "order_payment_voided", "order_stock_released",
                   "order_cancelled"});
  CHECK(audit().ok());
}

TEST_CASE_METHOD(pipeline_fixture, "a cancel after the shipment is scheduled is refused", "[pipeline]") {
  start();
  set_stock("SKU-1", 5);
  REQUIRE(place(order("o-1", "SKU-1")));
  advance(200ms);
  auto v = ask_now<order_view>(p->orders(), events::cancel_order{"o-1", "customer-1"});
  REQUIRE_FALSE(v);
  CHECK(code_of(v.error()) == errc::not_cancellable);
  CHECK(status("o-1") == "completed");
  auto missing = ask_now<order_view>(p->orders(), events::cancel_order{"o-404", "customer-1"});
  REQUIRE_FALSE(missing);
  CHECK(code_of(missing.error()) == errc::not_found);
}

TEST_CASE_METHOD(pipeline_fixture, "an order is queried by id from its saga or its stream", "[pipeline]") {
  start();
  set_stock("SKU-1", 5);
  REQUIRE(place(order("o-1", "SKU-1")));
  auto during = ask_now<order_view>(p->orders(), actors::get_atom::value, std::string{"o-1"});
  REQUIRE(during);
  CHECK(during->status != "completed");
  advance(200ms);
  auto after = ask_now<order_view>(p->orders(), actors::get_atom::value, std::string{"o-1"});
  REQUIRE(after);
  CHECK(after->status == "completed");
  CHECK(after->total_cents == 1250);
  CHECK_FALSE(after->payment_id.empty());
  CHECK_FALSE(after->tracking_id.empty());
  auto missing = ask_now<order_view>(p->orders(), actors::get_atom::value, std::string{"o-2"});
  REQUIRE_FALSE(missing);
  CHECK(code_of(missing.error()) == errc::not_found);
}

TEST_CASE_METHOD(pipeline_fixture, "a start records its providers once, and again when they change", "[pipeline]") {
  auto recorded = [&] {
    std::vector<events::providers_configured> out;
    auto r = store->read_stream("$system-providers");
    while (r.next())
      out.push_back(std::get<events::providers_configured>(*r.current().decode_payload()));
    return out;
  };
  start();
  p.reset();
  run();
  start();
  REQUIRE(recorded().size() == 1);
  CHECK(recorded()[0].gateways == strings{"gw-primary", "gw-secondary"});
  CHECK(recorded()[0].carriers == strings{"carrier-a", "carrier-b"});
  p.reset();
  run();
  auto c = config();
  actors::simulate_providers(c, {"gw-new"}, {"carrier-a"});
  start(c);
  REQUIRE(recorded().size() == 2);
  CHECK(recorded()[1].gateways == strings{"gw-new"});
  CHECK(recorded()[1].carriers == strings{"carrier-a"});
}

TEST_CASE_METHOD(pipeline_fixture, "a retried stock request is not answered from a change that is not durable yet", "[pipeline][inventory]") {
  // A replicated group's primary holds each batch until its standby has it
  // (the commit gate); meanwhile the inventory's state already shows the
  // change. A saga that timed out and asks again must not be told "done"
  // from that state: the change may still be lost. (Appends complete
  // asynchronously here, as in a node.)
  auto c = config();
  c.mode = actors::append_mode::asynchronous;
  start(std::move(c));
  const std::vector<events::order_line> line{{"SKU-1", 1, 1250}};
  // Asks and runs until the answer came (the committer answers from its thread).
  auto settled = [&](auto& res) {
    for (int i = 0; i < 400 && !res->has_value(); ++i) {
      std::this_thread::sleep_for(5ms);
      run();
    }
    REQUIRE(res->has_value());
    return std::move(**res);
  };
  {
    auto stocked = ask<actors::stock_reply>(p->inventory(), events::set_stock{"SKU-1", 10});
    run();
    REQUIRE(settled(stocked));
    auto first = ask<actors::stock_reply>(p->inventory(), events::reserve_stock{"o-2", line, {}});
    run();
    REQUIRE(settled(first));
  }
  std::promise<void> go;
  auto released = go.get_future().share();
  // A failing check must not leave the committer waiting in the gate.
  struct opener {
    std::promise<void>& p;
    bool done = false;
    void open() {
      if (!done)
        p.set_value();
      done = true;
    }
    ~opener() {
      open();
    }
  } gate{go};
  store->set_commit_gate([released](storage::replicated_batch&) {
    released.wait();
    return caf::error{};
  });
  auto reserve = ask<actors::stock_reply>(p->inventory(), events::reserve_stock{"o-1", line, {}});
  auto commit = ask<actors::stock_reply>(p->inventory(), events::commit_stock{"o-2", line, {}});
  run();
  std::this_thread::sleep_for(50ms); // the committer waits in the gate
  run();
  CHECK_FALSE(reserve->has_value());
  CHECK_FALSE(commit->has_value());
  // The retries are refused for now (the sagas ask again later)...
  auto again_res = ask<actors::stock_reply>(p->inventory(), events::reserve_stock{"o-1", line, {}});
  run();
  auto again = settled(again_res);
  CHECK_FALSE(again);
  CHECK((again ? errc{} : code_of(again.error())) == errc::unavailable);
  auto commit_again_res = ask<actors::stock_reply>(p->inventory(), events::commit_stock{"o-2", line, {}});
  run();
  auto commit_again = settled(commit_again_res);
  CHECK_FALSE(commit_again);
  CHECK((commit_again ? errc{} : code_of(commit_again.error())) == errc::unavailable);
  // ...and answered once the changes are durable.
  gate.open();
  for (int i = 0; i < 200 && !(reserve->has_value() && commit->has_value()); ++i) {
    std::this_thread::sleep_for(5ms);
    run();
  }
  REQUIRE(reserve->has_value());
  REQUIRE(commit->has_value());
  REQUIRE(**reserve);
  REQUIRE(**commit);
  CHECK((**reserve)->ok);
  CHECK((**commit)->ok);
  store->set_commit_gate({});
  auto r1 = ask<actors::stock_reply>(p->inventory(), events::reserve_stock{"o-1", line, {}});
  auto r2 = ask<actors::stock_reply>(p->inventory(), events::commit_stock{"o-2", line, {}});
  run();
  CHECK(settled(r1));
  CHECK(settled(r2));
  auto level = stock("SKU-1");
  CHECK(level.on_hand == 9);
  CHECK(level.reserved == 1);
  // Adjusted, reserved for o-2, reserved for o-1, committed for o-2: each once.
  CHECK(types(events::stock_stream("SKU-1"))
        == strings{"stock_adjusted", "stock_reserved", "stock_reserved", "stock_committed"});
}
