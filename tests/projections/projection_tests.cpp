#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "damage.hpp"
#include "fold.hpp"
#include "history.hpp"
#include "keel/events/error.hpp"
#include "keel/projections/projection.hpp"
#include "keel/projections/read_models.hpp"
#include "keel/projections/runner.hpp"
#include "keel/projections/stock_cache.hpp"
#include "models.hpp"
#include "temp_dir.hpp"

using namespace keel;
using namespace keel::projections;
using namespace std::chrono_literals;

namespace {

/// A fresh store in a temporary directory (appends acknowledged once in the
/// WAL: the tests append thousands of events one by one).
struct rig {
  keel::temp_dir dir;
  std::unique_ptr<storage::event_store> store;

  rig() {
    storage::options opts;
    opts.path = dir.path();
    opts.durable = storage::durability::wal;
    auto s = storage::event_store::open(opts);
    INFO((s ? std::string{} : describe(s.error())));
    REQUIRE(s);
    store = std::move(*s);
  }

  void append(const std::vector<test::planned_event>& plan, std::size_t from = 0,
              std::size_t to = ~std::size_t{0}) {
    auto err = test::append_events(*store, plan, from, to);
    INFO(describe(err));
    REQUIRE_FALSE(err);
  }

  /// Appends one event; returns its position.
  std::uint64_t append(const events::event& ev, std::int64_t at_us, std::uint64_t id) {
    std::vector<storage::new_event> one{
      storage::new_event::from(ev, events::event_id::from_seed(0xbadc0de, id), at_us)};
    auto r = store->append(events::stream_of(ev), storage::expected_version::any(), std::move(one));
    INFO((r ? std::string{} : describe(r.error())));
    REQUIRE(r);
    return r->first_position;
  }

  std::int64_t last_time() const {
    auto rec = store->read_event(store->last_position());
    REQUIRE(rec);
    return rec->timestamp_us;
  }
};

/// `before` orders of `h`, an event the stock projection cannot apply
/// (units released of a SKU never stocked), `after` more orders; returns the
/// event's position.
std::uint64_t append_stock_poison(rig& r, test::history& h, std::size_t before,
                                  std::size_t after, std::uint32_t units = 1) {
  r.append(h.plan(before));
  auto poison = r.append(events::stock_released{"SKU-GHOST", "o-ghost", units}, r.last_time(), 1);
  r.append(h.plan(after));
  return poison;
}

void start(projection_runner& runner) {
  auto err = runner.start();
  INFO(describe(err));
  REQUIRE_FALSE(err);
}

void caught_up(const projection_runner& runner, const storage::event_store& store,
               std::string_view name = {}) {
  REQUIRE(runner.wait_for(store.last_position(), 60s, name));
}

/// Runs the standard projections to the end of the log, then stops them.
void project_to_end(storage::event_store& store) {
  projection_runner runner{store};
  runner.add_standard();
  start(runner);
  caught_up(runner, store);
}

/// The fold of a valid history (skipping `skipped`): it must have no anomalies.
test::expected_models valid_fold(const storage::event_store& store,
                                 const std::set<std::uint64_t>& skipped = {}) {
  auto want = test::fold(store, skipped);
  for (auto& a : want.anomalies)
    FAIL_CHECK("the reference fold cannot apply " << a);
  REQUIRE(want.anomalies.empty());
  REQUIRE(want.position == store.last_position());
  return want;
}

projection_status status_of(const projection_runner& runner, std::string_view name) {
  auto s = runner.status(name);
  REQUIRE(s);
  return *s;
}

std::uint32_t generation_of(const storage::event_store& store, std::string_view name) {
  auto gen = active_generation(store, name);
  REQUIRE(gen);
  return *gen;
}

/// Every projection is live at the end of the log, without a failure.
void all_live(const projection_runner& runner, const storage::event_store& store) {
  for (auto& s : runner.status()) {
    INFO("projection " << s.name);
    CHECK(s.state == "live");
    CHECK(s.position == store.last_position());
    CHECK(s.lag_events == 0);
    CHECK_FALSE(s.failure);
  }
}

/// Waits until generation `gen` of `name` and its checkpoint are gone (the
/// runner deletes a swapped-out generation after its grace period).
void generation_gone(const storage::event_store& store, const std::string& name,
                     std::uint32_t gen) {
  auto prefix = test::generation_prefix(name, gen);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  for (;;) {
    auto cp = store.load_checkpoint(test::checkpoint_name(name, gen));
    REQUIRE(cp);
    bool gone = test::count_models(store, prefix) == 0 && !*cp;
    if (gone || std::chrono::steady_clock::now() > deadline) {
      INFO("generation " << prefix << " still has " << test::count_models(store, prefix)
                         << " keys, checkpoint " << (*cp ? "present" : "gone"));
      CHECK(gone);
      return;
    }
    std::this_thread::sleep_for(5ms);
  }
}

/// Holds threads at a point until released.
struct gate {
  std::mutex mtx;
  std::condition_variable cv;
  bool reached = false;
  bool open = false;

  void pass() {
    std::unique_lock<std::mutex> guard{mtx};
    reached = true;
    cv.notify_all();
    cv.wait(guard, [&] { return open; });
  }
  void wait_reached() {
    std::unique_lock<std::mutex> guard{mtx};
    cv.wait(guard, [&] { return reached; });
  }
  void release() {
    std::lock_guard<std::mutex> guard{mtx};
    open = true;
    cv.notify_all();
  }
};

/// A projection of event counts by type ("n/<type>" -> decimal count) that
/// refuses events of type `refused` (a bug, fixed in a later build), and
/// waits at `hold` (if any) before each event.
class type_counts final : public projection {
public:
  explicit type_counts(std::string refused, gate* hold = nullptr)
    : refused_(std::move(refused)), hold_(hold) {
  }

  std::string_view name() const noexcept override {
    return "counts";
  }

  bool wants(std::string_view) const noexcept override {
    return true;
  }

  caf::error apply(const events::record_view& rec, const events::event&,
                   const keyspace& models) override {
    if (hold_)
      hold_->pass();
    if (rec.type == refused_)
      return make_error(errc::invalid_argument, "cannot count " + refused_);
    auto key = "n/" + std::string{rec.type};
    auto it = pending_.find(key);
    if (it == pending_.end()) {
      auto stored = models.get(key);
      if (!stored)
        return stored.error();
      it = pending_.emplace(key, *stored ? std::stoull(**stored) : 0).first;
    }
    ++it->second;
    return caf::error{};
  }

  void flush(storage::write_batch& batch, const keyspace& models) override {
    for (auto& [key, n] : pending_)
      models.put(batch, key, std::to_string(n));
    pending_.clear();
  }

  void discard() override {
    pending_.clear();
  }

private:
  std::string refused_;
  gate* hold_;
  std::map<std::string, std::uint64_t> pending_;
};

const std::vector<std::string> every_path{
  "completed",
  "completed_after_retry",
  "rejected",
  "cancelled_by_customer",
  "cancelled_payment_declined",
  "cancelled_payment_unavailable",
  "cancelled_shipment_failed",
  "cancelled_other",
};

} // namespace

TEST_CASE("projected read models equal a reference fold of random histories") {
  // Batch sizes from one event per commit to everything in one batch, so
  // models are re-read from committed state as well as kept pending.
  const std::pair<std::size_t, std::size_t> batching[] = {{32768, 1024}, {1, 1}, {7, 3},
                                                          {100, 64}, {1000, 10}};
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    INFO("seed " << seed);
    rig r;
    test::history h{{seed}};
    // Odd seeds leave ~50 orders in flight (every non-terminal status).
    r.append(h.plan(300, seed % 2 == 0));
    // An order another tool cancelled (no cancel request, no failed step):
    // the saga never ends one so, the projections still count it.
    events::order_placed placed{"o-by-operator", "cust-000", {{"SKU-001", 1, 500}}, "EUR",
                                {"Ada Lovelace", "12 Analytical Row", "London", "N1 9GU", "GB"},
                                false, 500};
    r.append(placed, h.now_us() + 1, 1);
    r.append(events::order_cancelled{"o-by-operator", "cancelled by an operator"}, h.now_us() + 2,
             2);
    auto want = valid_fold(*r.store);
    // The history covers what the projections must handle.
    for (auto& path : every_path) {
      INFO("saga path " << path);
      CHECK(want.durations_us.count(path) == 1);
    }
    std::set<std::string> steps;
    for (auto& [id, o] : want.orders)
      for (auto& step : o.steps)
        steps.insert(step.name);
    INFO("steps: " << [&] { std::string all; for (auto& x : steps) all += x + " "; return all; }());
    CHECK(steps.size() == 17); // every order_* event type
    CHECK(want.days.size() >= 3);
    CHECK(want.orders.size() == 301);
    CHECK(want.customers.size() > 20);
    CHECK((seed % 2 == 0) == (want.sagas_in_flight == 0));

    runner_options opts;
    opts.max_batch_events = batching[seed - 1].first;
    opts.delivery_batch = batching[seed - 1].second;
    projection_runner runner{*r.store, opts};
    runner.add_standard();
    start(runner);
    caught_up(runner, *r.store);
    all_live(runner, *r.store);
    for (auto& s : runner.status()) {
      CHECK(s.generation == 1);
      CHECK(s.events_applied == r.store->last_position()); // each event once
    }
    test::check_models(*r.store, want);
  }
}

TEST_CASE("a runner started on an empty store follows appends live") {
  rig r;
  projection_runner runner{*r.store};
  runner.add_standard();
  start(runner);
  test::history h{{11}};
  auto plan = h.plan(250);
  // Appends arrive in bursts while the runner follows.
  std::mt19937_64 rng{11};
  for (std::size_t at = 0; at < plan.size();) {
    auto n = 1 + rng() % 200;
    r.append(plan, at, at + n);
    at += n;
    if (rng() % 4 == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 5));
  }
  caught_up(runner, *r.store);
  all_live(runner, *r.store);
  for (auto& s : runner.status())
    CHECK(s.events_applied == r.store->last_position());
  test::check_models(*r.store, valid_fold(*r.store));
}

TEST_CASE("a runner restarted on the same store resumes at its checkpoints") {
  rig r;
  test::history h{{21}};
  auto plan = h.plan(300);
  auto part = plan.size() / 8;
  r.append(plan, 0, 3 * part);
  std::mt19937_64 rng{21};
  // Runners stopped at arbitrary moments, while catching up and while live,
  // with small batches: every stop leaves models that match the checkpoints.
  for (std::size_t run = 3; run < 8; ++run) {
    INFO("run " << run);
    runner_options opts;
    opts.max_batch_events = 1 + rng() % 50;
    opts.delivery_batch = 1 + rng() % 20;
    {
      projection_runner runner{*r.store, opts};
      runner.add_standard();
      start(runner);
      r.append(plan, run * part, (run + 1) * part);
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 20));
    } // stopped here
    test::check_models_at_checkpoints(*r.store);
  }
  r.append(plan, 8 * part);
  {
    projection_runner runner{*r.store};
    runner.add_standard();
    start(runner);
    caught_up(runner, *r.store);
    all_live(runner, *r.store);
    test::check_models(*r.store, valid_fold(*r.store));
  }
  // Started again with nothing new to apply, it is live at once.
  projection_runner runner{*r.store};
  runner.add_standard();
  start(runner);
  caught_up(runner, *r.store);
  all_live(runner, *r.store);
  for (auto& s : runner.status())
    CHECK(s.events_applied == 0);
  test::check_models(*r.store, valid_fold(*r.store));
}

TEST_CASE("a rebuild of projections over an empty log swaps at once") {
  rig r;
  projection_runner runner{*r.store};
  runner.add_standard();
  start(runner);
  auto rebuilt = std::async(std::launch::async, [&] { return runner.rebuild_all(); });
  bool returned = rebuilt.wait_for(10s) == std::future_status::ready;
  CHECK(returned);
  if (!returned) // an append wakes the shadows' subscriptions, so the test ends
    r.append(events::stock_adjusted{"SKU-WAKE", 1, "wake up"}, 1, 1);
  auto err = rebuilt.get();
  INFO(describe(err));
  REQUIRE_FALSE(err);
  for (auto& s : runner.status())
    CHECK(s.generation == 2);
  test::history h{{13}};
  r.append(h.plan(20));
  caught_up(runner, *r.store);
  all_live(runner, *r.store);
  test::check_models(*r.store, valid_fold(*r.store));
}

TEST_CASE("a cluster node's store counts its figures per slot too, and the slots add up") {
  rig r;
  test::history h{{41}};
  r.append(h.plan(300, true));
  runner_options opts;
  opts.retire_grace = 20ms;
  {
    // A node alone: no figures per slot.
    projection_runner runner{*r.store, opts};
    runner.add_standard();
    start(runner);
    caught_up(runner, *r.store);
    test::check_models(*r.store, valid_fold(*r.store));
    runner.stop();
  }
  // It joins a cluster of 7 slots: recorded once; another count is refused.
  auto set = projections::set_cluster_slots(*r.store, 7);
  REQUIRE(set);
  CHECK(*set);
  set = projections::set_cluster_slots(*r.store, 7);
  REQUIRE(set);
  CHECK_FALSE(*set);
  set = projections::set_cluster_slots(*r.store, 8);
  REQUIRE_FALSE(set);
  CHECK(code_of(set.error()) == errc::invalid_argument);
  CHECK(*projections::cluster_slots(*r.store) == 7);
  // A rebuild counts the orders projected before per slot; new ones are
  // counted per slot as they come.
  projection_runner runner{*r.store, opts};
  runner.add_standard();
  start(runner);
  REQUIRE_FALSE(runner.rebuild("figures"));
  test::check_models(*r.store, valid_fold(*r.store));
  r.append(h.plan(100));
  caught_up(runner, *r.store);
  test::check_models(*r.store, valid_fold(*r.store));
}

TEST_CASE("a rebuild fills a new generation equal to the incremental one and retires the old") {
  rig r;
  test::history h{{31}};
  r.append(h.plan(300));
  runner_options opts;
  opts.retire_grace = 20ms;
  projection_runner runner{*r.store, opts};
  runner.add_standard();
  start(runner);
  caught_up(runner, *r.store);
  auto want = valid_fold(*r.store);
  test::check_models(*r.store, want);

  SECTION("one projection, then all") {
    REQUIRE_FALSE(runner.rebuild("orders"));
    CHECK(generation_of(*r.store, "orders") == 2);
    CHECK(generation_of(*r.store, "stock") == 1);
    CHECK(generation_of(*r.store, "figures") == 1);
    CHECK(status_of(runner, "orders").generation == 2);
    generation_gone(*r.store, "orders", 1);
    CHECK(test::count_models(*r.store, "m/orders/g00000001/") == 0);
    test::check_models(*r.store, want);

    REQUIRE_FALSE(runner.rebuild_all());
    CHECK(generation_of(*r.store, "orders") == 3);
    CHECK(generation_of(*r.store, "stock") == 2);
    CHECK(generation_of(*r.store, "figures") == 2);
    generation_gone(*r.store, "orders", 2);
    generation_gone(*r.store, "stock", 1);
    generation_gone(*r.store, "figures", 1);
    test::check_models(*r.store, want);
    // Only the serving generations are left.
    CHECK(test::count_models(*r.store, "m/") == test::count_models(*r.store, "m/orders/g00000003/")
                                                  + test::count_models(*r.store, "m/stock/g00000002/")
                                                  + test::count_models(*r.store, "m/figures/g00000002/"));

    // The swapped-in generations go on live.
    r.append(h.plan(100));
    caught_up(runner, *r.store);
    all_live(runner, *r.store);
    test::check_models(*r.store, valid_fold(*r.store));
  }
  SECTION("a new runner serves the rebuilt generation") {
    REQUIRE_FALSE(runner.rebuild_all());
    runner.stop();
    projection_runner next{*r.store};
    next.add_standard();
    start(next);
    r.append(h.plan(50));
    caught_up(next, *r.store);
    for (auto& s : next.status())
      CHECK(s.generation == 2);
    test::check_models(*r.store, valid_fold(*r.store));
  }
  SECTION("unknown projections") {
    auto err = runner.rebuild("no-such-projection");
    CHECK(code_of(err) == errc::not_found);
    CHECK(code_of(runner.status("no-such-projection").error()) == errc::not_found);
  }
}

TEST_CASE("a rebuild under concurrent appends catches up with them before it swaps") {
  rig r;
  test::history h{{41}};
  r.append(h.plan(200));
  runner_options opts;
  opts.retire_grace = 10ms;
  projection_runner runner{*r.store, opts};
  runner.add_standard();
  start(runner);
  caught_up(runner, *r.store);

  // The writer appends until the rebuild has returned (and some more).
  auto more = h.plan(600);
  std::atomic<std::size_t> written{0};
  std::atomic<bool> rebuilt{false};
  caf::error write_error;
  std::thread writer{[&] {
    for (std::size_t i = 0; i < more.size(); ++i) {
      if (rebuilt && i % 64 == 0)
        return;
      if (auto err = test::append_events(*r.store, more, i, i + 1)) {
        write_error = std::move(err);
        written = more.size();
        return;
      }
      written = i + 1;
      if (i % 16 == 0)
        std::this_thread::sleep_for(200us);
    }
  }};
  while (written < 10)
    std::this_thread::yield();
  auto before = r.store->last_position();
  auto err = runner.rebuild_all();
  auto after = r.store->last_position();
  rebuilt = true;
  writer.join();
  INFO(describe(write_error));
  REQUIRE_FALSE(write_error);
  INFO(describe(err));
  REQUIRE_FALSE(err);
  // The appends really ran during the rebuild (the writer had events left).
  REQUIRE(written < more.size());
  CHECK(after > before);
  // The rest of the history, then everything is projected once.
  r.append(more, written);
  caught_up(runner, *r.store);
  all_live(runner, *r.store);
  for (auto& s : runner.status())
    CHECK(s.generation == 2);
  test::check_models(*r.store, valid_fold(*r.store));
}

TEST_CASE("a poison event stops its projection only, until an operator skips it") {
  rig r;
  test::history h{{51}};
  r.append(h.plan(150));
  runner_options opts;
  opts.retire_grace = 10ms;
  projection_runner runner{*r.store, opts};
  runner.add_standard();
  start(runner);
  caught_up(runner, *r.store);

  // Releasing units of a SKU that was never stocked: it decodes, but the
  // stock projection cannot apply it. Orders and figures do not read it.
  auto poison = r.append(events::stock_released{"SKU-GHOST", "o-ghost", 3}, r.last_time(), 1);
  r.append(h.plan(60));
  caught_up(runner, *r.store);
  auto stopped = status_of(runner, "stock");
  CHECK(stopped.state == "stopped");
  CHECK(stopped.position == poison - 1);
  CHECK(stopped.lag_events == r.store->last_position() - (poison - 1));
  REQUIRE(stopped.failure);
  CHECK(stopped.failure->position == poison);
  CHECK(stopped.failure->event_type == "stock_released");
  CHECK(stopped.failure->stream == "stock-SKU-GHOST");
  CHECK_THAT(stopped.failure->reason, Catch::Contains("SKU-GHOST"));
  auto recorded = recorded_failure(*r.store, "stock");
  REQUIRE(recorded);
  REQUIRE(*recorded);
  CHECK((*recorded)->position == poison);
  CHECK((*recorded)->event_type == "stock_released");
  CHECK((*recorded)->stream == "stock-SKU-GHOST");
  CHECK((*recorded)->reason == stopped.failure->reason);
  for (auto name : {"orders", "figures"}) {
    INFO(name);
    auto s = status_of(runner, name);
    CHECK(s.state == "live");
    CHECK(s.position == r.store->last_position());
    auto none = recorded_failure(*r.store, name);
    REQUIRE(none);
    CHECK_FALSE(*none);
  }

  // The others go on; the stopped one stays before the poison.
  r.append(h.plan(60));
  caught_up(runner, *r.store);
  CHECK(status_of(runner, "orders").position == r.store->last_position());
  CHECK(status_of(runner, "figures").position == r.store->last_position());
  CHECK(status_of(runner, "stock").position == poison - 1);
  CHECK(status_of(runner, "stock").state == "stopped");
  test::check_models(*r.store, valid_fold(*r.store, {poison}), {true, false, true});
  auto frozen = test::fold(*r.store, {}, poison - 1);
  test::check_models(*r.store, frozen, {false, true, false});

  // Skips that do not match the failure are refused.
  CHECK(code_of(runner.skip("stock", poison + 1, "ops", "wrong")) == errc::invalid_argument);
  CHECK(code_of(runner.skip("stock", poison - 1, "ops", "wrong")) == errc::invalid_argument);
  CHECK(code_of(runner.skip("orders", poison, "ops", "not stopped")) == errc::invalid_argument);
  CHECK(code_of(runner.skip("no-such-projection", poison, "ops", "x")) == errc::not_found);
  CHECK(status_of(runner, "stock").state == "stopped");

  auto skip = runner.skip("stock", poison, "ops", "SKU-GHOST was never stocked");
  INFO(describe(skip));
  REQUIRE_FALSE(skip);
  caught_up(runner, *r.store);
  all_live(runner, *r.store);
  auto cleared = recorded_failure(*r.store, "stock");
  REQUIRE(cleared);
  CHECK_FALSE(*cleared);
  auto skips = list_skips(*r.store, "stock");
  REQUIRE(skips);
  REQUIRE(skips->size() == 1);
  CHECK((*skips)[0].position == poison);
  CHECK((*skips)[0].event_type == "stock_released");
  CHECK((*skips)[0].stream == "stock-SKU-GHOST");
  CHECK((*skips)[0].reason == stopped.failure->reason);
  CHECK((*skips)[0].skipped_by == "ops");
  CHECK((*skips)[0].note == "SKU-GHOST was never stocked");
  CHECK((*skips)[0].at_us > 0);
  auto no_skips = list_skips(*r.store, "orders");
  REQUIRE(no_skips);
  CHECK(no_skips->empty());
  auto want = valid_fold(*r.store, {poison});
  test::check_models(*r.store, want);

  // A rebuild honours the recorded skip.
  REQUIRE_FALSE(runner.rebuild("stock"));
  CHECK(generation_of(*r.store, "stock") == 2);
  test::check_models(*r.store, want);

  // A second poison: committing more units than are reserved.
  auto second = r.append(events::stock_committed{"SKU-001", "o-ghost", 100000}, r.last_time(), 2);
  r.append(h.plan(40));
  caught_up(runner, *r.store);
  REQUIRE(status_of(runner, "stock").failure);
  CHECK(status_of(runner, "stock").failure->position == second);
  CHECK_THAT(status_of(runner, "stock").failure->reason, Catch::Contains("SKU-001"));

  // A rebuild meets it too: it fails and the serving generation stays.
  auto err = runner.rebuild("stock");
  CHECK(code_of(err) == errc::projection_stopped);
  CHECK_THAT(describe(err), Catch::Contains(std::to_string(second)));
  CHECK(generation_of(*r.store, "stock") == 2);
  CHECK(status_of(runner, "stock").generation == 2);
  CHECK(status_of(runner, "stock").state == "stopped");
  CHECK(status_of(runner, "stock").position == second - 1);
  CHECK(test::count_models(*r.store, "m/stock/g00000003/") == 0);
  auto shadow_cp = r.store->load_checkpoint(test::checkpoint_name("stock", 3));
  REQUIRE(shadow_cp);
  CHECK_FALSE(*shadow_cp);
  test::check_models(*r.store, test::fold(*r.store, {poison}, second - 1), {false, true, false});

  REQUIRE_FALSE(runner.skip("stock", second, "ops", "bad commit"));
  caught_up(runner, *r.store);
  all_live(runner, *r.store);
  skips = list_skips(*r.store, "stock");
  REQUIRE(skips);
  REQUIRE(skips->size() == 2);
  CHECK((*skips)[1].position == second);
  test::check_models(*r.store, valid_fold(*r.store, {poison, second}));
}

TEST_CASE("an order event for an unknown order stops orders and figures, not stock") {
  rig r;
  test::history h{{61}};
  r.append(h.plan(120));
  projection_runner runner{*r.store};
  runner.add_standard();
  start(runner);
  auto poison = r.append(events::order_completed{"o-ghost"}, r.last_time(), 1);
  r.append(h.plan(80));
  caught_up(runner, *r.store);
  for (auto name : {"orders", "figures"}) {
    INFO(name);
    auto s = status_of(runner, name);
    CHECK(s.state == "stopped");
    CHECK(s.position == poison - 1);
    REQUIRE(s.failure);
    CHECK(s.failure->position == poison);
    CHECK(s.failure->event_type == "order_completed");
    CHECK(s.failure->stream == "order-o-ghost");
    CHECK_THAT(s.failure->reason, Catch::Contains("o-ghost"));
  }
  CHECK(status_of(runner, "stock").state == "live");
  CHECK(status_of(runner, "stock").position == r.store->last_position());
  REQUIRE_FALSE(runner.skip("orders", poison, "ops", "ghost"));
  REQUIRE_FALSE(runner.skip("figures", poison, "ops", "ghost"));
  caught_up(runner, *r.store);
  all_live(runner, *r.store);
  test::check_models(*r.store, valid_fold(*r.store, {poison}));
}

TEST_CASE("a second order_placed of an order in flight stops orders and figures alike") {
  rig r;
  test::history h{{63}};
  auto plan = h.plan(100, false); // orders left in flight
  r.append(plan);
  projection_runner runner{*r.store};
  runner.add_standard();
  start(runner);
  caught_up(runner, *r.store); // everything committed: the duplicate comes in a later batch
  auto before = valid_fold(*r.store);
  REQUIRE(before.sagas_in_flight > 0);
  // The last order placed is in flight; place it again.
  std::string id;
  for (auto it = plan.rbegin(); it != plan.rend() && id.empty(); ++it)
    if (it->event.type == "order_placed")
      id = it->stream.substr(6); // "order-<id>"
  REQUIRE(before.orders.count(id) == 1);
  REQUIRE(before.orders[id].status == "placed");
  events::order_placed again;
  again.order_id = id;
  again.customer_id = "cust-999";
  again.lines = {{"SKU-001", 1, 100}};
  again.total_cents = 100;
  auto poison = r.append(again, r.last_time(), 1);
  r.append(h.plan(30));
  caught_up(runner, *r.store);
  for (auto name : {"orders", "figures"}) {
    INFO(name);
    auto s = status_of(runner, name);
    CHECK(s.state == "stopped");
    CHECK(s.position == poison - 1);
    REQUIRE(s.failure);
    CHECK(s.failure->position == poison);
    CHECK_THAT(s.failure->reason, Catch::Contains(id));
  }
  REQUIRE_FALSE(runner.skip("orders", poison, "ops", "duplicate"));
  REQUIRE_FALSE(runner.skip("figures", poison, "ops", "duplicate"));
  caught_up(runner, *r.store);
  all_live(runner, *r.store);
  test::check_models(*r.store, valid_fold(*r.store, {poison}));
}

TEST_CASE("a rebuild with fixed projection code swaps in over a stopped generation") {
  rig r;
  test::history h{{65}};
  r.append(h.plan(80));
  // The first instance (the serving generation) cannot count cancel
  // requests; the rebuilt one can.
  std::atomic<int> made{0};
  projection_runner runner{*r.store};
  runner.add("counts", [&made] {
    return std::make_unique<type_counts>(made++ == 0 ? "order_cancel_requested" : "");
  });
  start(runner);
  caught_up(runner, *r.store);
  auto stopped = status_of(runner, "counts");
  CHECK(stopped.state == "stopped");
  REQUIRE(stopped.failure);
  CHECK(stopped.failure->event_type == "order_cancel_requested");
  auto first_cancel = stopped.failure->position;
  auto rec = r.store->read_event(first_cancel);
  REQUIRE(rec);
  CHECK(rec->type == "order_cancel_requested");

  auto err = runner.rebuild("counts");
  INFO(describe(err));
  REQUIRE_FALSE(err);
  r.append(h.plan(20));
  caught_up(runner, *r.store);
  auto s = status_of(runner, "counts");
  CHECK(s.state == "live");
  CHECK(s.generation == 2);
  CHECK(s.position == r.store->last_position());
  CHECK_FALSE(s.failure);
  auto recorded = recorded_failure(*r.store, "counts");
  REQUIRE(recorded);
  CHECK_FALSE(*recorded);
  // Every event counted once.
  std::map<std::string, std::string> want;
  {
    std::map<std::string, std::uint64_t> counts;
    auto all = r.store->read_all();
    while (all.next())
      ++counts[std::string{all.current().type}];
    for (auto& [type, n] : counts)
      want["m/counts/g00000002/n/" + type] = std::to_string(n);
  }
  auto got = r.store->scan_models("m/counts/g00000002/", {}, 1000);
  REQUIRE(got);
  CHECK(std::map<std::string, std::string>(got->begin(), got->end()) == want);
  CHECK(made == 2);
}

TEST_CASE("a rebuild of a projection being rebuilt is refused, the first goes on") {
  rig r;
  test::history h{{67}};
  r.append(h.plan(40));
  gate hold;
  std::atomic<int> made{0};
  projection_runner runner{*r.store};
  runner.add_standard();
  runner.add("counts", [&] {
    return std::make_unique<type_counts>("", made++ == 0 ? nullptr : &hold);
  });
  // Not running yet.
  CHECK(code_of(runner.rebuild("counts")) == errc::invalid_argument);
  start(runner);
  CHECK(code_of(runner.start()) == errc::invalid_argument);
  caught_up(runner, *r.store);

  // The shadow of "counts" waits at its first event.
  auto first = std::async(std::launch::async, [&] { return runner.rebuild("counts"); });
  hold.wait_reached();
  CHECK(code_of(runner.rebuild("counts")) == errc::invalid_argument);
  // rebuild_all refuses as a whole: the shadows it set up before meeting
  // "counts" are dropped again.
  CHECK(code_of(runner.rebuild_all()) == errc::invalid_argument);
  CHECK_FALSE(status_of(runner, "orders").rebuild_position);
  auto s = status_of(runner, "counts");
  CHECK(s.rebuild_position);
  CHECK(s.generation == 1);
  CHECK(s.state == "live");
  hold.release();
  auto err = first.get();
  INFO(describe(err));
  REQUIRE_FALSE(err);
  CHECK(status_of(runner, "counts").generation == 2);
  CHECK_FALSE(status_of(runner, "counts").rebuild_position);
  CHECK(generation_of(*r.store, "orders") == 1);
  REQUIRE_FALSE(runner.rebuild("orders"));
  CHECK(generation_of(*r.store, "orders") == 2);
  r.append(h.plan(20));
  caught_up(runner, *r.store);
  all_live(runner, *r.store);
  test::check_models(*r.store, valid_fold(*r.store));
}

TEST_CASE("a record that cannot be read stops every projection at its position, until skipped") {
  rig r;
  test::history h{{71}};
  r.append(h.plan(60));
  // Nothing depends on the damaged record but itself: a SKU stocked once.
  auto damaged = r.append(events::stock_adjusted{"SKU-SPARE", 5, "spare"}, r.last_time(), 1);
  auto after = r.append(events::stock_adjusted{"SKU-OTHER", 7, "other"}, r.last_time(), 2);
  REQUIRE_FALSE(r.store->flush());
  auto path = r.dir.path();
  r.store.reset();
  test::damage_record(path, damaged);
  storage::options sopts;
  sopts.path = path;
  sopts.durable = storage::durability::wal;
  auto reopened = storage::event_store::open(sopts);
  REQUIRE(reopened);
  r.store = std::move(*reopened);

  runner_options opts;
  opts.retire_grace = 10ms;
  projection_runner runner{*r.store, opts};
  runner.add_standard();
  start(runner);
  REQUIRE(runner.wait_for(after, 60s));
  for (auto& s : runner.status()) {
    INFO("projection " << s.name);
    CHECK(s.state == "stopped");
    CHECK(s.position == damaged - 1);
    REQUIRE(s.failure);
    CHECK(s.failure->position == damaged);
    CHECK_THAT(s.failure->reason, Catch::Contains("reading the log"));
    CHECK_THAT(s.failure->reason, Catch::Contains("position " + std::to_string(damaged)));
    auto recorded = recorded_failure(*r.store, s.name);
    REQUIRE(recorded);
    REQUIRE(*recorded);
    CHECK((*recorded)->position == damaged);
  }
  // A rebuild meets the same record and leaves the serving generation.
  auto rebuilt = runner.rebuild("stock");
  REQUIRE(rebuilt);
  CHECK(code_of(rebuilt) == errc::projection_stopped);
  CHECK(active_generation(*r.store, "stock") == 1u);
  // The operator skips it in each projection; they go on after it.
  for (auto& name : standard_projection_names())
    REQUIRE_FALSE(runner.skip(name, damaged, "ops", "damaged record"));
  caught_up(runner, *r.store);
  all_live(runner, *r.store);
  CHECK(find_stock(*r.store, "SKU-OTHER")->on_hand == 7);
  CHECK(code_of(find_stock(*r.store, "SKU-SPARE").error()) == errc::not_found);
  auto skips = list_skips(*r.store, "stock");
  REQUIRE(skips);
  REQUIRE(skips->size() == 1);
  CHECK(skips->front().position == damaged);
  CHECK_THAT(skips->front().reason, Catch::Contains("reading the log"));
}

TEST_CASE("queries answer with typed errors") {
  rig r;
  SECTION("before any runner ran") {
    CHECK(code_of(find_order(*r.store, "o-1").error()) == errc::not_found);
    CHECK(code_of(orders_of_customer(*r.store, "cust-001").error()) == errc::not_found);
    CHECK(code_of(find_stock(*r.store, "SKU-001").error()) == errc::not_found);
    CHECK(code_of(figures_of_day(*r.store, "2026-03-01").error()) == errc::not_found);
    CHECK(code_of(figures_between(*r.store, "2026-03-01", "2026-03-09").error())
          == errc::not_found);
    CHECK(code_of(saga_statistics(*r.store).error()) == errc::not_found);
    CHECK(generation_of(*r.store, "orders") == 0);
    auto failure = recorded_failure(*r.store, "orders");
    REQUIRE(failure);
    CHECK_FALSE(*failure);
    auto skips = list_skips(*r.store, "orders");
    REQUIRE(skips);
    CHECK(skips->empty());
    // Arguments are checked first.
    CHECK(code_of(figures_of_day(*r.store, "2026-13-01").error()) == errc::invalid_argument);
    CHECK(code_of(orders_of_customer(*r.store, "cust-001", 0).error()) == errc::invalid_argument);
  }
  SECTION("with built models") {
    test::history h{{71}};
    r.append(h.plan(60));
    // Orders of one customer placed at the same microsecond list by order id.
    auto t = r.last_time() + 1'000'000;
    std::uint64_t n = 10;
    for (auto [id, at] : std::vector<std::pair<std::string, std::int64_t>>{
           {"o-tie-b", t}, {"o-tie-z", t - 1}, {"o-tie-c", t}, {"o-tie-0", t + 1}, {"o-tie-a", t}}) {
      events::order_placed placed;
      placed.order_id = id;
      placed.customer_id = "cust-tie";
      placed.lines = {{"SKU-001", 1, 500}};
      placed.total_cents = 500;
      r.append(placed, at, n++);
    }
    projection_runner runner{*r.store};
    runner.add_standard();
    start(runner);
    caught_up(runner, *r.store);
    test::check_models(*r.store, valid_fold(*r.store));

    std::vector<std::string> ids;
    std::string cursor;
    for (int pages = 0; pages < 3; ++pages) {
      auto page = orders_of_customer(*r.store, "cust-tie", 2, cursor);
      REQUIRE(page);
      for (auto& o : page->orders)
        ids.push_back(o.order_id);
      cursor = page->next_cursor;
    }
    CHECK(cursor.empty());
    CHECK(ids == std::vector<std::string>{"o-tie-0", "o-tie-a", "o-tie-b", "o-tie-c", "o-tie-z"});

    CHECK(code_of(find_order(*r.store, "o-unknown").error()) == errc::not_found);
    CHECK(code_of(find_order(*r.store, "").error()) == errc::not_found);
    CHECK(code_of(find_stock(*r.store, "SKU-UNKNOWN").error()) == errc::not_found);
    CHECK(code_of(orders_of_customer(*r.store, "cust-tie", 0).error()) == errc::invalid_argument);
    CHECK(code_of(orders_of_customer(*r.store, "cust-tie", max_page_size + 1).error())
          == errc::invalid_argument);
    auto full = orders_of_customer(*r.store, "cust-tie", max_page_size);
    REQUIRE(full);
    CHECK(full->orders.size() == 5);
    CHECK(full->next_cursor.empty());
    for (std::string bad : {"garbage", "zzzzzzzzzzzzzzzzzz-o-1", "0123456789abcdef",
                            "0123456789ABCDEFo-tie-a"}) {
      INFO("cursor " << bad);
      CHECK(code_of(orders_of_customer(*r.store, "cust-tie", 2, bad).error())
            == errc::invalid_argument);
    }
    auto nobody = orders_of_customer(*r.store, "cust-nobody");
    REQUIRE(nobody);
    CHECK(nobody->orders.empty());
    CHECK(nobody->next_cursor.empty());
    for (std::string bad : {"2026-13-01", "2026-00-10", "2026-03-32", "2026-3-01", "20260301",
                            "2026-03-01x", "", "yyyy-mm-dd"}) {
      INFO("day " << bad);
      CHECK(code_of(figures_of_day(*r.store, bad).error()) == errc::invalid_argument);
      CHECK(code_of(figures_between(*r.store, bad, "2026-03-05").error()) == errc::invalid_argument);
      CHECK(code_of(figures_between(*r.store, "2026-03-01", bad).error()) == errc::invalid_argument);
    }
    auto empty = figures_between(*r.store, "2026-03-05", "2026-03-01");
    REQUIRE(empty);
    CHECK(empty->empty());
  }
}

TEST_CASE("the stock cache serves from memory and follows the stock projection") {
  rig r;
  test::history h{{81}};
  r.append(h.plan(80));
  auto cache = std::make_shared<stock_cache>(*r.store);
  runner_options opts;
  opts.retire_grace = 10ms;
  projection_runner runner{*r.store, opts};
  runner.add_standard(cache);
  start(runner);
  caught_up(runner, *r.store);
  auto want = valid_fold(*r.store);
  const std::string sku = "SKU-001"; // not a scarce one
  REQUIRE(want.stock.count(sku) == 1);

  // A miss reads the read model, then it is a hit.
  stock_cache probe{*r.store};
  auto level = probe.get(sku);
  REQUIRE(level);
  CHECK(*level == want.stock[sku]);
  CHECK(probe.misses() == 1);
  CHECK(probe.hits() == 0);
  level = probe.get(sku);
  REQUIRE(level);
  CHECK(*level == want.stock[sku]);
  CHECK(probe.misses() == 1);
  CHECK(probe.hits() == 1);
  // A cache smaller than the catalogue starts shards over and reads again.
  stock_cache small{*r.store, 16};
  for (int round = 0; round < 2; ++round)
    for (auto& [name, want_level] : want.stock) {
      auto got = small.get(name);
      REQUIRE(got);
      CHECK(*got == want_level);
    }
  CHECK(small.misses() > want.stock.size());
  CHECK(small.hits() + small.misses() == 2 * want.stock.size());
  // The runner's cache holds what the projection committed.
  level = cache->get(sku);
  REQUIRE(level);
  CHECK(*level == want.stock[sku]);
  CHECK(cache->misses() == 0);
  CHECK(cache->hits() == 1);

  // check() refuses a line above the available units and admits the rest.
  auto available = level->available();
  REQUIRE(available > 0);
  auto refused = cache->check({{sku, static_cast<std::uint32_t>(available + 1), 100}});
  CHECK(code_of(refused) == errc::out_of_stock);
  CHECK_THAT(describe(refused), Catch::Contains(sku));
  CHECK(cache->refusals() == 1);
  CHECK_FALSE(cache->check({{sku, static_cast<std::uint32_t>(available), 100}}));
  auto second_line = cache->check({{sku, 1, 100}, {"SKU-002", 1'000'000, 100}});
  CHECK(code_of(second_line) == errc::out_of_stock);
  CHECK_THAT(describe(second_line), Catch::Contains("SKU-002"));
  // A SKU never stocked has nothing available.
  CHECK(code_of(cache->check({{"SKU-NEW", 1, 100}})) == errc::out_of_stock);
  CHECK(cache->refusals() == 3);

  // New stock events reach the cached entries once projected.
  auto t = r.last_time();
  r.append(events::stock_adjusted{sku, level->reserved + 1000, "delivery"}, t + 1, 1);
  r.append(events::stock_reserved{sku, "o-cache", 5}, t + 2, 2);
  r.append(events::stock_adjusted{"SKU-NEW", 7, "new product"}, t + 3, 3);
  caught_up(runner, *r.store);
  auto hits = cache->hits();
  auto misses = cache->misses();
  level = cache->get(sku);
  REQUIRE(level);
  auto stored = find_stock(*r.store, sku);
  REQUIRE(stored);
  CHECK(*level == *stored);
  CHECK(level->available() == 995);
  CHECK(level->updated_us == t + 2);
  auto fresh = cache->get("SKU-NEW");
  REQUIRE(fresh);
  CHECK(fresh->on_hand == 7);
  CHECK(cache->hits() == hits + 2);
  CHECK(cache->misses() == misses);
  CHECK_FALSE(cache->check({{sku, 995, 100}, {"SKU-NEW", 7, 100}}));
  CHECK(code_of(cache->check({{sku, 996, 100}})) == errc::out_of_stock);

  // A rebuild swaps in a new generation and starts the cache over; the
  // rebuilt projection keeps it current too.
  REQUIRE_FALSE(runner.rebuild("stock"));
  misses = cache->misses();
  level = cache->get(sku);
  REQUIRE(level);
  CHECK(*level == *stored);
  CHECK(cache->misses() == misses + 1);
  r.append(events::stock_released{sku, "o-cache", 5}, t + 4, 4);
  caught_up(runner, *r.store);
  hits = cache->hits();
  level = cache->get(sku);
  REQUIRE(level);
  CHECK(cache->hits() == hits + 1);
  CHECK(level->available() == 1000);
  CHECK(level->updated_us == t + 4);
  test::check_models(*r.store, valid_fold(*r.store));
}

TEST_CASE("an operator skips a poison event offline and the next runner continues after it") {
  rig r;
  test::history h{{91}};
  auto poison = append_stock_poison(r, h, 100, 50);
  {
    projection_runner runner{*r.store};
    runner.add_standard();
    start(runner);
    caught_up(runner, *r.store);
    CHECK(status_of(runner, "stock").state == "stopped");
  }
  // Stopped in the middle of a catch-up batch: what came before is committed.
  test::check_models(*r.store, test::fold(*r.store, {}, poison - 1), {false, true, false});
  test::check_models(*r.store, valid_fold(*r.store, {poison}), {true, false, true});
  // A runner started again without a skip stops at the same event.
  {
    projection_runner runner{*r.store};
    runner.add_standard();
    start(runner);
    caught_up(runner, *r.store);
    auto s = status_of(runner, "stock");
    CHECK(s.state == "stopped");
    CHECK(s.position == poison - 1);
    REQUIRE(s.failure);
    CHECK(s.failure->position == poison);
  }
  auto failure = recorded_failure(*r.store, "stock");
  REQUIRE(failure);
  REQUIRE(*failure);
  CHECK((*failure)->position == poison);
  CHECK(code_of(skip_event(*r.store, "stock", poison + 1, "ops", "x")) == errc::invalid_argument);
  CHECK(code_of(skip_event(*r.store, "orders", poison, "ops", "x")) == errc::invalid_argument);
  auto err = skip_event(*r.store, "stock", poison, "ops", "offline");
  INFO(describe(err));
  REQUIRE_FALSE(err);
  failure = recorded_failure(*r.store, "stock");
  REQUIRE(failure);
  CHECK_FALSE(*failure);
  auto skips = list_skips(*r.store, "stock");
  REQUIRE(skips);
  REQUIRE(skips->size() == 1);
  CHECK((*skips)[0].position == poison);
  CHECK((*skips)[0].note == "offline");
  auto cp = r.store->load_checkpoint(test::checkpoint_name("stock", 1));
  REQUIRE(cp);
  REQUIRE(*cp);
  CHECK((*cp)->position == poison); // the next runner starts after it
  // Skipping twice is refused: it is not stopped there any more.
  CHECK(code_of(skip_event(*r.store, "stock", poison, "ops", "again")) == errc::invalid_argument);

  projection_runner runner{*r.store};
  runner.add_standard();
  start(runner);
  r.append(h.plan(30));
  caught_up(runner, *r.store);
  all_live(runner, *r.store);
  test::check_models(*r.store, valid_fold(*r.store, {poison}));
}

TEST_CASE("concurrent skips of one stopped projection: one wins, one live lane follows") {
  for (int round = 0; round < 20; ++round) {
    INFO("round " << round);
    rig r;
    test::history h{{static_cast<std::uint64_t>(70 + round)}};
    r.append(h.plan(40));
    runner_options opts;
    opts.retire_grace = 10ms;
    projection_runner runner{*r.store, opts};
    runner.add_standard();
    start(runner);
    caught_up(runner, *r.store);
    auto poison = r.append(events::stock_released{"SKU-GHOST", "o-ghost", 3}, r.last_time(), 1);
    caught_up(runner, *r.store);
    REQUIRE(status_of(runner, "stock").state == "stopped");
    // Two operators (or a retried keel-inspect --node) skip at once.
    caf::error results[2];
    std::thread a{[&] { results[0] = runner.skip("stock", poison, "ops-a", "a"); }};
    std::thread b{[&] { results[1] = runner.skip("stock", poison, "ops-b", "b"); }};
    a.join();
    b.join();
    CHECK((!results[0] + !results[1]) == 1);
    auto skips = list_skips(*r.store, "stock");
    REQUIRE(skips);
    CHECK(skips->size() == 1);
    // One lane applies what follows, once: the stock model equals the fold.
    r.append(h.plan(40));
    caught_up(runner, *r.store);
    CHECK(status_of(runner, "stock").state == "live");
    test::check_models(*r.store, valid_fold(*r.store, {poison}), {true, true, true});
  }
}

// -- stored values carry their format version -----------------------------------

namespace {

template <class T>
std::string as_version_1(const std::string& key, const std::string& value) {
  T x;
  auto err = detail::decode(key, value, x);
  INFO(describe(err));
  REQUIRE_FALSE(err);
  return projections::codec::encode_fields(x);
}

/// The value at `key` as a build before values carried their format version
/// stored it: the fields of version 1, without the version.
std::string unversioned(const std::string& key, const std::string& value) {
  auto kind = [&](const char* what) { return key.find(what) != std::string::npos; };
  if (kind("/skip/"))
    return as_version_1<skip_record>(key, value);
  if (kind("/o/"))
    return as_version_1<order_summary>(key, value);
  if (kind("/c/"))
    return as_version_1<detail::customer_entry>(key, value);
  if (kind("/s/"))
    return as_version_1<stock_level>(key, value);
  if (kind("/d/"))
    return as_version_1<day_figures>(key, value);
  if (kind("/f/"))
    return as_version_1<detail::saga_in_flight>(key, value);
  REQUIRE(kind("/x/"));
  return as_version_1<detail::duration_histogram>(key, value);
}

/// Every read-model entry under `prefix`.
std::vector<std::pair<std::string, std::string>> models_under(const storage::event_store& store,
                                                             const std::string& prefix) {
  std::vector<std::pair<std::string, std::string>> all;
  for (;;) {
    auto page = store.scan_models(prefix, all.empty() ? std::string{} : all.back().first, 1000);
    REQUIRE(page);
    all.insert(all.end(), page->begin(), page->end());
    if (page->size() < 1000)
      return all;
  }
}

/// Rewrites the standard projections' values (models and skips) as a build
/// before values carried their format version left them.
void make_unversioned(storage::event_store& store) {
  storage::write_batch wb;
  for (std::string name : {"orders", "stock", "figures"}) {
    auto prefix = test::generation_prefix(name, generation_of(store, name));
    for (auto& [key, value] : models_under(store, prefix))
      wb.put(key, unversioned(key, value));
    for (auto& [key, value] : models_under(store, detail::meta_key(name, "skip/")))
      wb.put(key, unversioned(key, value));
    wb.erase(detail::meta_key(name, "format"));
  }
  REQUIRE_FALSE(store.commit(std::move(wb), true));
}

/// The runner moved every standard projection from its generation in
/// `before` to the next one, each value now of format version 1; `skips`
/// skip records of the stock projection were upgraded with them.
void check_upgrades(const projection_runner& runner, const storage::event_store& store,
                    std::map<std::string, std::uint32_t>& before, std::size_t skips) {
  auto ups = runner.upgrades();
  REQUIRE(ups.size() == 3);
  for (auto& u : ups) {
    INFO(u.projection);
    CHECK(u.from_generation == before[u.projection]);
    CHECK(u.to_generation == before[u.projection] + 1);
    CHECK(generation_of(store, u.projection) == u.to_generation);
    generation_gone(store, u.projection, u.from_generation);
    auto models = models_under(store, test::generation_prefix(u.projection, u.to_generation));
    CHECK(u.values == models.size() + (u.projection == "stock" ? skips : 0));
    for (auto& [key, value] : models) {
      INFO(key);
      REQUIRE(!value.empty());
      CHECK(value[0] == 1);
    }
  }
}

} // namespace

TEST_CASE("an order summary of format version 1 reads without a reason code and newer ones are refused") {
  order_summary s;
  s.order_id = "o-1";
  s.status = "cancelled";
  s.reason = "payment declined: insufficient funds";
  s.reason_code = events::end_reason::payment_declined;
  s.items = {{"SKU-1", 2, 150}};
  s.steps = {{"placed", 10, 1}, {"cancelled", 20, 9}};
  const std::string key = "m/orders/g00000001/o/o-1";

  order_summary v2;
  REQUIRE_FALSE(detail::decode(key, detail::encode(s), v2));
  CHECK(v2 == s);
  auto bytes = projections::codec::encode_value(s, 1);
  CHECK(bytes.size() < detail::encode(s).size());
  order_summary v1;
  REQUIRE_FALSE(detail::decode(key, bytes, v1));
  CHECK(v1.reason_code == events::end_reason::unspecified);
  v1.reason_code = s.reason_code;
  CHECK(v1 == s);
  // Format 1 without the version: the values of stores of earlier builds.
  order_summary legacy;
  REQUIRE_FALSE(detail::decode(key, bytes.substr(1), legacy, detail::value_framing::unversioned));
  CHECK(legacy.order_id == "o-1");
  CHECK(legacy.reason_code == events::end_reason::unspecified);

  auto newer = detail::encode(s);
  newer[0] = 3;
  order_summary x;
  auto err = detail::decode(key, newer, x);
  CHECK(code_of(err) == errc::unknown_event_type);
  CHECK_THAT(describe(err), Catch::Contains(key) && Catch::Contains("format version 3")
                              && Catch::Contains("reads versions up to 2"));
  auto zero = detail::encode(s);
  zero[0] = 0;
  CHECK(code_of(detail::decode(key, zero, x)) == errc::corrupt_record);
  CHECK(code_of(detail::decode(key, detail::encode(s) + "x", x)) == errc::corrupt_record);
  // Unversioned bytes are not mistaken for a value (the framing of the
  // projection says which they are).
  CHECK(detail::decode(key, bytes.substr(1), x));
}

TEST_CASE("a store whose values carry no format version is read, then upgraded at start") {
  rig r;
  test::history h{{73}};
  auto poison = append_stock_poison(r, h, 200, 40, 2);
  {
    projection_runner runner{*r.store};
    runner.add_standard();
    start(runner);
    caught_up(runner, *r.store);
    auto err = runner.skip("stock", poison, "ops", "a ghost");
    INFO(describe(err));
    REQUIRE_FALSE(err);
    caught_up(runner, *r.store);
    all_live(runner, *r.store);
  }
  auto want = valid_fold(*r.store, {poison});
  test::check_models(*r.store, want);
  std::map<std::string, std::uint32_t> before;
  for (std::string name : {"orders", "stock", "figures"})
    before[name] = generation_of(*r.store, name);

  make_unversioned(*r.store);
  // Summaries of format 1 know no reason code.
  auto legacy = want;
  std::size_t with_code = 0;
  for (auto& [id, s] : legacy.orders) {
    with_code += s.reason_code != events::end_reason::unspecified;
    s.reason_code = events::end_reason::unspecified;
  }
  REQUIRE(with_code > 0);
  // Queries read the store as it is (a tool beside a node of the earlier build).
  test::check_models(*r.store, legacy);
  auto skips = list_skips(*r.store, "stock");
  REQUIRE(skips);
  REQUIRE(skips->size() == 1);
  CHECK((*skips)[0].note == "a ghost");
  // An upgrade that crashed half-way left part of a copy in the next generation.
  storage::write_batch partial;
  partial.put(test::generation_prefix("orders", before["orders"] + 1) + "o/o-partial", "\x01?");
  REQUIRE_FALSE(r.store->commit(std::move(partial), true));

  {
    projection_runner runner{*r.store};
    runner.add_standard();
    start(runner);
    check_upgrades(runner, *r.store, before, 1);
    caught_up(runner, *r.store);
    all_live(runner, *r.store);
    test::check_models(*r.store, legacy);
    skips = list_skips(*r.store, "stock");
    REQUIRE(skips);
    REQUIRE(skips->size() == 1);
    CHECK((*skips)[0].position == poison);
    CHECK((*skips)[0].note == "a ghost");
    // New events go on in the upgraded generation; a rebuild of the orders
    // gives every summary its code.
    r.append(h.plan(30));
    caught_up(runner, *r.store);
    auto err = runner.rebuild("orders");
    INFO(describe(err));
    REQUIRE_FALSE(err);
    test::check_models(*r.store, valid_fold(*r.store, {poison}));
  }
  projection_runner again{*r.store};
  again.add_standard();
  start(again);
  CHECK(again.upgrades().empty());
}

TEST_CASE("stored values of a newer framing are refused by queries and the runner") {
  rig r;
  test::history h{{74}};
  r.append(h.plan(20));
  project_to_end(*r.store);
  storage::write_batch wb;
  wb.put(detail::meta_key("orders", "format"), "3");
  REQUIRE_FALSE(r.store->commit(std::move(wb), true));
  auto found = find_order(*r.store, "o-a-00001");
  REQUIRE_FALSE(found);
  CHECK(code_of(found.error()) == errc::unknown_event_type);
  CHECK_THAT(describe(found.error()), Catch::Contains("format 3"));
  projection_runner runner{*r.store};
  runner.add_standard();
  CHECK(code_of(runner.start()) == errc::unknown_event_type);
}
