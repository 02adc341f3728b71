// The cache-first stock check: the stock read model's first-level cache turns
// obviously out-of-stock orders away before a saga starts; the inventory
// actor stays the authority, so a stale cache never oversells.

#include "keel/projections/read_models.hpp"
#include "keel/projections/runner.hpp"
#include "keel/projections/stock_cache.hpp"
#include "pipeline_fixture.hpp"

using namespace keel;
using namespace keel::test;

namespace {

struct admission_fixture : pipeline_fixture {
  std::shared_ptr<projections::stock_cache> cache
    = std::make_shared<projections::stock_cache>(*store);
  std::unique_ptr<projections::projection_runner> runner;

  void start_projections() {
    runner = std::make_unique<projections::projection_runner>(*store);
    runner->add_standard(cache);
    REQUIRE_FALSE(runner->start());
  }

  void catch_up() {
    REQUIRE(runner->wait_for(store->last_position(), std::chrono::seconds(10)));
  }

  void start_pipeline() {
    auto c = config();
    c.admission = [cache = cache](const events::place_order& cmd) {
      return cache->check(cmd.lines);
    };
    start(std::move(c));
  }
};

} // namespace

TEST_CASE_METHOD(admission_fixture, "an order the stock cache shows out of stock is refused before a saga starts", "[pipeline][admission]") {
  start_projections();
  start_pipeline();
  set_stock("SKU-1", 1);
  catch_up();
  auto before = store->last_position();
  auto refused = place(order("o-1", "SKU-1", 2));
  REQUIRE_FALSE(refused);
  CHECK(code_of(refused.error()) == errc::out_of_stock);
  CHECK(describe(refused.error()).find("SKU-1") != std::string::npos);
  // Nothing stored: no order stream, no reservation.
  CHECK(store->last_position() == before);
  CHECK(types("order-o-1").empty());
  CHECK(cache->refusals() == 1);
  // An order within the cached stock goes through.
  REQUIRE(place(order("o-2", "SKU-1", 1)));
  advance(200ms);
  CHECK(status("o-2") == "completed");
  // The order id refused earlier was never created: it may be placed later.
  set_stock("SKU-1", 5);
  catch_up();
  auto later = place(order("o-1", "SKU-1", 2));
  REQUIRE(later);
  CHECK(later->created);
  advance(200ms);
  CHECK(status("o-1") == "completed");
  CHECK(cache->hits() + cache->misses() >= 3);
  CHECK(audit().ok());
  // The read side of orders the real pipeline ran: the money is the payment
  // stream's (the saga records captures there).
  catch_up();
  auto summary = projections::find_order(*store, "o-2");
  REQUIRE(summary);
  CHECK(summary->status == "completed");
  CHECK(summary->captured_cents == summary->total_cents);
  CHECK_FALSE(summary->payment_id.empty());
  CHECK_FALSE(summary->tracking_id.empty());
  auto today = projections::figures_of_day(*store, projections::day_of(now_us()));
  REQUIRE(today);
  CHECK(today->placed == 2);
  CHECK(today->completed == 2);
  REQUIRE(today->revenue.size() == 1);
  CHECK(today->revenue[0].revenue_cents == summary->total_cents * 3); // o-2 (1 unit) + o-1 (2 units)
  CHECK(projections::find_stock(*store, "SKU-1")->on_hand == 3);
}

TEST_CASE_METHOD(admission_fixture, "a stale stock cache costs a rejected saga, never an oversell", "[pipeline][admission]") {
  start_projections();
  start_pipeline();
  set_stock("SKU-1", 3);
  catch_up();
  REQUIRE(cache->get("SKU-1")->available() == 3);
  // The read side stops following: the cache keeps showing 3 available.
  runner->stop();
  for (int i = 1; i <= 3; ++i)
    REQUIRE(place(order("o-" + std::to_string(i), "SKU-1", 1)));
  advance(300ms);
  for (int i = 1; i <= 3; ++i)
    CHECK(status("o-" + std::to_string(i)) == "completed");
  CHECK(cache->get("SKU-1")->available() == 3); // stale
  // The stale cache admits the order; the inventory actor refuses it.
  REQUIRE(place(order("o-4", "SKU-1", 1)));
  advance(200ms);
  CHECK(status("o-4") == "rejected");
  auto s = stock("SKU-1");
  CHECK(s.on_hand == 0);
  CHECK(s.reserved == 0);
  CHECK(audit().ok());
}
