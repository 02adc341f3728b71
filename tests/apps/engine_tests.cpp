// The runtime's engine (engine.hpp): the one assembly of a store, an actor
// system and the order pipeline, on a real store and a real actor system.

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include <caf/actor_system.hpp>

#include "engine.hpp"
#include "keel/actors/messages.hpp"
#include "keel/events/error.hpp"
#include "keel/events/streams.hpp"
#include "keel/storage/event_store.hpp"
#include "pipeline_call.hpp"
#include "temp_dir.hpp"

using namespace std::chrono_literals;
using namespace keel;

namespace {

/// Counts finished orders and waits for a number of them.
struct finish_counter {
  std::mutex mtx;
  std::condition_variable cv;
  std::map<actors::order_status, int> by_status;
  int total = 0;

  void operator()(const actors::finished_order& x) {
    std::lock_guard<std::mutex> guard{mtx};
    by_status[x.status]++;
    total++;
    cv.notify_all();
  }

  bool wait_for(int n, std::chrono::seconds limit) {
    std::unique_lock<std::mutex> guard{mtx};
    return cv.wait_for(guard, limit, [&] { return total >= n; });
  }
};

runtime::engine_config settings(const std::string& dir, finish_counter& done) {
  runtime::engine_config ec;
  ec.store.path = dir;
  ec.store.durable = storage::durability::wal;
  ec.store.min_free_bytes = 0;
  ec.pipeline.seed = 7;
  ec.pipeline.on_finished = [&done](const actors::finished_order& x) { done(x); };
  return ec;
}

events::place_order order(int n) {
  events::place_order cmd;
  cmd.order_id = "e-" + std::to_string(n);
  cmd.customer_id = "customer-" + std::to_string(n % 7);
  cmd.lines = {{"SKU-1", 1, 1250}};
  cmd.currency = "EUR";
  cmd.shipping_address = {"Ada Lovelace", "12 Analytical St", "London", "N1 9GU", "GB"};
  return cmd;
}

/// Drops this thread's calling actor when the test leaves its scope, also
/// on a failed REQUIRE (the actor system waits for it otherwise).
struct caller_guard {
  ~caller_guard() {
    runtime::drop_caller();
  }
};

} // namespace

TEST_CASE("an engine runs orders to their end and a reopened one finds them all ended",
          "[node][engine]") {
  keel::temp_dir dir;
  finish_counter done;
  {
    auto e = runtime::engine::open(settings(dir.path(), done));
    REQUIRE(e);
    CHECK_FALSE((*e)->started());
    REQUIRE_FALSE((*e)->start());
    caller_guard guard;
    auto& p = (*e)->pipeline();
    CHECK(p.gateways() == std::vector<std::string>{"gw-primary", "gw-secondary"});
    CHECK(p.carriers() == std::vector<std::string>{"carrier-a", "carrier-b"});
    CHECK_FALSE((*e)->catalog()); // no currencies: orders keep their own prices
    auto stock = runtime::call<actors::stock_reply>((*e)->system(), p.inventory(), 10s,
                                                 events::set_stock{"SKU-1", 100});
    REQUIRE(stock);
    for (int n = 0; n < 20; ++n) {
      auto v = runtime::call<actors::order_view>((*e)->system(), p.orders(), 10s, order(n));
      INFO(n << ": " << (v ? std::string{} : describe(v.error())));
      REQUIRE(v);
    }
    REQUIRE(done.wait_for(20, 60s));
    CHECK(done.by_status[actors::order_status::completed] == 20);
    // Starting twice is refused; the running pipeline goes on.
    CHECK(describe((*e)->start()).find("started twice") != std::string::npos);
    // The gauge drops just after the hook ran.
    auto in_flight = (*e)->metrics().value("sagas.in_flight");
    for (int i = 0; i < 500 && in_flight->load() != 0; ++i)
      std::this_thread::sleep_for(10ms);
    CHECK(in_flight->load() == 0);
    runtime::drop_caller();
    (*e)->stop();
    (*e)->stop(); // idempotent
  }
  finish_counter again;
  auto e = runtime::engine::open(settings(dir.path(), again));
  REQUIRE(e);
  REQUIRE_FALSE((*e)->start());
  CHECK((*e)->pipeline().recovered().orders == 20);
  CHECK((*e)->pipeline().recovered().redriven == 0);
  auto st = actors::load_order((*e)->store(), "e-19");
  REQUIRE(st);
  CHECK(st->status == actors::order_status::completed);
}

TEST_CASE("an engine that cannot open its store or build a provider says why",
          "[node][engine]") {
  keel::temp_dir dir;
  finish_counter done;
  auto blocked = dir.sub("a-file");
  { std::ofstream{blocked} << "not a directory"; }
  auto bad_store = runtime::engine::open(settings(blocked + "/store", done));
  REQUIRE_FALSE(bad_store);

  auto cfg = settings(dir.sub("store"), done);
  runtime::provider_spec http;
  http.kind = runtime::provider_spec::kind_t::http;
  http.http.name = "gw-real";
  http.http.base_url = "ftp://gateway.example";
  cfg.providers.gateways.insert(cfg.providers.gateways.begin(), http);
  auto e = runtime::engine::open(cfg);
  REQUIRE(e);
  auto err = (*e)->start();
  REQUIRE(err);
  CHECK_THAT(describe(err), Catch::Contains("gw-real"));
  CHECK_FALSE((*e)->started());
}
