// The provider pools' scaling rules (a pure function) and the meter that
// feeds them.

#define CATCH_CONFIG_ENABLE_CHRONO_STRINGMAKER
#include <catch2/catch.hpp>

#include "keel/actors/autoscaler.hpp"
#include "keel/events/error.hpp"

using namespace keel::actors;
using keel::errc;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace Catch {
template <>
struct StringMaker<pool_rule> {
  static std::string convert(pool_rule x) {
    const char* names[] = {"hold", "grow", "shrink_slow", "shrink_idle"};
    return names[static_cast<int>(x)];
  }
};
} // namespace Catch

namespace {

/// A window of a gateway pool (2 calls per worker) at `utilization`, with
/// answered calls and a fast provider unless changed.
pool_window window(std::uint32_t workers, double utilization, std::uint64_t waited = 0,
                   duration p99 = milliseconds(12)) {
  pool_window w;
  w.workers = workers;
  w.calls_per_worker = 2;
  w.busy = utilization * workers * 2;
  w.waited = waited;
  w.calls = 100;
  w.p99 = p99;
  return w;
}

steady_time at(duration x) {
  return steady_time{} + x;
}

} // namespace

TEST_CASE("a busy pool grows by one worker per decision up to its maximum", "[pool]") {
  pool_config cfg;
  auto d = decide_pool_size(cfg, window(2, 0.93));
  CHECK(d.rule == pool_rule::grow);
  CHECK(d.workers == 3);
  CHECK(d.resized(window(2, 0.93)));
  CHECK(d.reason == "utilization 0.93 > 0.80, p99 12 ms");
  auto top = decide_pool_size(cfg, window(10, 0.99));
  CHECK(top.rule == pool_rule::hold);
  CHECK(top.workers == 10);
  CHECK(top.reason == "utilization 0.99 > 0.80, p99 12 ms, at the maximum of 10");
}

TEST_CASE("calls that waited grow a pool even at moderate utilization", "[pool]") {
  auto d = decide_pool_size(pool_config{}, window(4, 0.5, 3));
  CHECK(d.rule == pool_rule::grow);
  CHECK(d.workers == 5);
  CHECK(d.reason == "3 calls waited, utilization 0.50, p99 12 ms");
}

TEST_CASE("a busy pool whose provider answered nothing yet does not grow", "[pool]") {
  auto w = window(2, 1.0, 16, milliseconds(300)); // 300 ms: the oldest call in flight
  w.calls = 0;
  auto d = decide_pool_size(pool_config{}, w);
  CHECK(d.rule == pool_rule::hold);
  CHECK(d.workers == 2);
  CHECK(d.reason.find("latency unknown") != std::string::npos);
}

TEST_CASE("a slow provider never grows and gives a worker back while busy", "[pool]") {
  pool_config cfg;
  auto d = decide_pool_size(cfg, window(5, 0.95, 0, milliseconds(1500)));
  CHECK(d.rule == pool_rule::shrink_slow);
  CHECK(d.workers == 4);
  CHECK(d.reason == "p99 1500 ms > 1000 ms under load (utilization 0.95 > 0.80): a slow provider "
                    "gets no more workers, gives one back");
  auto waited = decide_pool_size(cfg, window(5, 0.4, 7, seconds(2)));
  CHECK(waited.rule == pool_rule::shrink_slow);
  CHECK(waited.workers == 4);
  auto at_min = decide_pool_size(cfg, window(1, 1.0, 9, seconds(3)));
  CHECK(at_min.rule == pool_rule::hold);
  CHECK(at_min.workers == 1);
  CHECK(at_min.reason.find("at the minimum of 1") != std::string::npos);
}

TEST_CASE("a slow provider at moderate load holds its size", "[pool]") {
  auto d = decide_pool_size(pool_config{}, window(5, 0.5, 0, seconds(2)));
  CHECK(d.rule == pool_rule::hold);
  CHECK(d.workers == 5);
}

TEST_CASE("a p99 at the slow threshold and a utilization at the thresholds do not count", "[pool]") {
  pool_config cfg;
  // 8 of 10 slots busy is not above 0.80; a p99 of exactly 1 s is not slow.
  auto w = window(5, 0, 0, seconds(1));
  w.busy = 8;
  CHECK(decide_pool_size(cfg, w).rule == pool_rule::hold);
  w.busy = 9;
  CHECK(decide_pool_size(cfg, w).rule == pool_rule::grow);
  // 3 of 10 slots busy is not below 0.30.
  w.busy = 3;
  auto d = decide_pool_size(cfg, w);
  CHECK(d.rule == pool_rule::hold);
  CHECK(d.idle_streak == 0);
}

TEST_CASE("an idle pool shrinks only after enough idle decisions, then by one per decision down to its minimum", "[pool]") {
  pool_config cfg;
  cfg.shrink_after = 3;
  std::uint32_t workers = 3;
  std::uint32_t streak = 0;
  std::vector<pool_rule> rules;
  for (int i = 0; i < 6; ++i) {
    auto w = window(workers, 0.1);
    w.idle_streak = streak;
    auto d = decide_pool_size(cfg, w);
    rules.push_back(d.rule);
    workers = d.workers;
    streak = d.idle_streak;
  }
  CHECK(rules
        == std::vector<pool_rule>{pool_rule::hold, pool_rule::hold, pool_rule::shrink_idle,
                                  pool_rule::shrink_idle, pool_rule::hold, pool_rule::hold});
  CHECK(workers == cfg.min_workers);
  CHECK(streak == 6);
  auto w = window(2, 0.1);
  w.idle_streak = 2;
  CHECK(decide_pool_size(cfg, w).reason
        == "utilization 0.10 < 0.30, at most 0 calls at once, for 3 intervals, p99 12 ms");
}

TEST_CASE("a pool whose bursts would not fit one worker less does not shrink", "[pool]") {
  pool_config cfg; // 2 calls per worker
  auto w = window(4, 0.1);
  w.idle_streak = 20;
  w.peak = 7; // 7 calls at once need 4 workers
  auto d = decide_pool_size(cfg, w);
  CHECK(d.rule == pool_rule::hold);
  CHECK(d.workers == 4);
  CHECK(d.idle_streak == 0);
  CHECK(d.reason == "utilization 0.10 < 0.30 but 7 calls at once need 4 workers, p99 12 ms");
  w.peak = 6; // fits 3 workers
  auto shrink = decide_pool_size(cfg, w);
  CHECK(shrink.rule == pool_rule::shrink_idle);
  CHECK(shrink.workers == 3);
  CHECK(shrink.reason.find("at most 6 calls at once") != std::string::npos);
}

TEST_CASE("a busy or moderate decision ends an idle streak", "[pool]") {
  pool_config cfg;
  auto idle = window(4, 0.1);
  idle.idle_streak = 9;
  auto moderate = window(4, 0.5);
  moderate.idle_streak = 9;
  CHECK(decide_pool_size(cfg, moderate).idle_streak == 0);
  auto waited = window(4, 0.1, 1);
  waited.idle_streak = 9;
  auto d = decide_pool_size(cfg, waited); // a call waited: not idle
  CHECK(d.rule == pool_rule::grow);
  CHECK(d.idle_streak == 0);
  CHECK(decide_pool_size(cfg, idle).rule == pool_rule::shrink_idle);
}

TEST_CASE("a pool size outside the bounds is brought back within them", "[pool]") {
  pool_config cfg;
  cfg.min_workers = 2;
  cfg.max_workers = 6;
  CHECK(decide_pool_size(cfg, window(9, 0.5)).workers == 6);
  CHECK(decide_pool_size(cfg, window(0, 0.5)).workers == 2);
  CHECK(decide_pool_size(cfg, window(9, 0.99)).workers == 6);
}

TEST_CASE("pool settings are checked", "[pool]") {
  CHECK_FALSE(validate(pool_config{}));
  auto bad = [](auto change) {
    pool_config cfg;
    change(cfg);
    auto err = validate(cfg);
    return err && keel::code_of(err) == errc::invalid_argument;
  };
  CHECK(bad([](pool_config& c) { c.min_workers = 0; }));
  CHECK(bad([](pool_config& c) { c.min_workers = 11; }));
  CHECK(bad([](pool_config& c) { c.initial_workers = 11; }));
  CHECK(bad([](pool_config& c) {
    c.min_workers = 3;
    c.initial_workers = 2;
  }));
  CHECK(bad([](pool_config& c) { c.interval = duration::zero(); }));
  CHECK(bad([](pool_config& c) { c.scale_down_utilization = 0.9; }));
  CHECK(bad([](pool_config& c) { c.scale_up_utilization = 1.5; }));
  CHECK(bad([](pool_config& c) { c.slow_p99 = duration::zero(); }));
}

TEST_CASE("calls per worker default to the bulkhead's share of the largest pool", "[pool]") {
  pool_config cfg;
  CHECK(calls_per_worker(cfg, 20) == 2);
  CHECK(calls_per_worker(cfg, 200) == 20);
  CHECK(calls_per_worker(cfg, 5) == 1);
  cfg.calls_per_worker = 3;
  CHECK(calls_per_worker(cfg, 20) == 3);
}

TEST_CASE("a pool meter averages busy slots over time and starts afresh each window", "[pool]") {
  pool_meter m{at(seconds(0))};
  m.update(at(milliseconds(50)), 4, 2); // 0 busy for 50 ms, then 4 for 50 ms
  m.waited();
  m.waited();
  m.update(at(milliseconds(60)), 4, 0);
  m.left(milliseconds(5));
  m.left(milliseconds(30));
  auto w = m.close(at(milliseconds(100)), 2, 2, milliseconds(10), 3);
  CHECK(w.busy == Approx(2.0));
  CHECK(w.utilization() == Approx(0.5));
  CHECK(w.waited == 2);
  CHECK(w.peak == 6);
  CHECK(w.calls == 2);
  CHECK(w.p99 == milliseconds(30));
  CHECK(w.idle_streak == 3);
  // Next window: still 4 busy, a call in flight for 2 s and nothing answered.
  auto next = m.close(at(milliseconds(200)), 2, 2, seconds(2), 0);
  CHECK(next.busy == Approx(4.0));
  CHECK(next.utilization() == Approx(1.0));
  CHECK(next.waited == 0);
  CHECK(next.peak == 4); // what the pool held when the window began
  CHECK(next.calls == 0);
  CHECK(next.p99 == seconds(2));
}
