// Prints durations and time points in failed checks.
#define CATCH_CONFIG_ENABLE_CHRONO_STRINGMAKER
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <set>

#include "keel/actors/adaptive_timeout.hpp"
#include "keel/actors/backoff.hpp"
#include "keel/actors/breaker.hpp"
#include "keel/actors/simulated_provider.hpp"

namespace Catch {
template <>
struct StringMaker<keel::events::breaker_state> {
  static std::string convert(keel::events::breaker_state x) {
    return keel::events::to_string(x);
  }
};
} // namespace Catch

using namespace keel::actors;
using keel::events::breaker_state;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

using transitions = std::vector<breaker_transition>;
using outcome = provider_plan::outcome;

steady_time at(duration x) {
  return steady_time{} + x;
}

// Makes one call at `now` that succeeds or fails after `elapsed`; returns
// whether the breaker let it through.
bool call(breaker& b, steady_time now, bool success, transitions& out,
          duration elapsed = milliseconds(10)) {
  auto ticket = b.acquire(now, out);
  if (ticket.permitted)
    b.record(ticket, success, elapsed, out);
  return ticket.permitted;
}

// A default breaker that opened at `now` after ten failures.
breaker opened_breaker(steady_time now, transitions& out) {
  breaker b;
  for (int i = 0; i < 10; ++i)
    call(b, now, false, out);
  REQUIRE(b.state() == breaker_state::open);
  return b;
}

void check_transition(const breaker_transition& x, breaker_state from, breaker_state to,
                      std::uint32_t failures, const std::string& reason) {
  CHECK(x.from == from);
  CHECK(x.to == to);
  CHECK(x.failures == failures);
  CHECK(x.reason == reason);
}

provider_call authorize(std::string key) {
  return {"authorize", std::move(key), 1000};
}

} // namespace

// -- breaker ------------------------------------------------------------------

TEST_CASE("a default breaker opens after exactly ten consecutive failures", "[breaker]") {
  breaker b;
  transitions out;
  for (int i = 0; i < 9; ++i)
    REQUIRE(call(b, at(seconds(i)), false, out));
  CHECK(b.state() == breaker_state::closed);
  CHECK(b.failures_in_window() == 9);
  CHECK(out.empty());
  REQUIRE(call(b, at(seconds(9)), false, out));
  CHECK(b.state() == breaker_state::open);
  CHECK(b.open_until() == at(seconds(39)));
  CHECK(b.failures_in_window() == 0);
  REQUIRE(out.size() == 1);
  check_transition(out[0], breaker_state::closed, breaker_state::open, 10,
                   "10 failures in the last 10 calls");
}

TEST_CASE("a default breaker half-opens 30 s after it opened", "[breaker]") {
  transitions out;
  auto b = opened_breaker(at(seconds(100)), out);
  out.clear();
  CHECK_FALSE(b.acquire(at(seconds(129)), out).permitted);
  CHECK(b.state() == breaker_state::open);
  CHECK(b.acquire(at(seconds(130)), out).permitted);
  CHECK(b.state() == breaker_state::half_open);
  REQUIRE(out.size() == 1);
  check_transition(out[0], breaker_state::open, breaker_state::half_open, 0,
                   "wait of 30 s in open elapsed");
}

TEST_CASE("a breaker counts failures only while they are in the window", "[breaker]") {
  breaker_config cfg;
  cfg.window_size = 5;
  cfg.failure_threshold = 3;
  cfg.minimum_calls = 100;
  breaker b{cfg};
  transitions out;
  for (bool success : {false, false, true, true, true, false, false})
    call(b, at(seconds(1)), success, out);
  // The first two failures slid out of the window.
  CHECK(b.failures_in_window() == 2);
  CHECK(b.state() == breaker_state::closed);
  call(b, at(seconds(1)), false, out);
  CHECK(b.state() == breaker_state::open);
  REQUIRE(out.size() == 1);
  check_transition(out[0], breaker_state::closed, breaker_state::open, 3,
                   "3 failures in the last 5 calls");
}

TEST_CASE("a default breaker reports failures among the last twenty calls", "[breaker]") {
  breaker b;
  transitions out;
  for (int i = 0; i < 10; ++i)
    call(b, at(seconds(1)), true, out);
  for (int i = 0; i < 10; ++i)
    call(b, at(seconds(1)), false, out);
  REQUIRE(out.size() == 1);
  check_transition(out[0], breaker_state::closed, breaker_state::open, 10,
                   "10 failures in the last 20 calls");
}

TEST_CASE("a breaker opens by failure rate once the window holds the minimum calls", "[breaker]") {
  breaker_config cfg;
  cfg.failure_threshold = 0; // no count rule
  cfg.minimum_calls = 20;
  breaker b{cfg};
  transitions out;
  for (int i = 0; i < 9; ++i)
    call(b, at(seconds(1)), true, out);
  for (int i = 0; i < 10; ++i)
    call(b, at(seconds(1)), false, out);
  // 10 of 19 failed, but 19 calls are below the minimum.
  CHECK(b.state() == breaker_state::closed);
  call(b, at(seconds(1)), false, out);
  CHECK(b.state() == breaker_state::open);
  REQUIRE(out.size() == 1);
  check_transition(out[0], breaker_state::closed, breaker_state::open, 11,
                   "failure rate 55% >= 50%");
}

TEST_CASE("a breaker opens as soon as the sliding failure rate reaches the threshold",
          "[breaker]") {
  breaker_config cfg;
  cfg.failure_threshold = 0;
  cfg.window_size = 10;
  cfg.minimum_calls = 10;
  breaker b{cfg};
  transitions out;
  for (int i = 0; i < 10; ++i)
    call(b, at(seconds(1)), i < 6, out);
  CHECK(b.state() == breaker_state::closed); // 40%
  // The oldest success slides out: 5 of 10.
  call(b, at(seconds(1)), false, out);
  CHECK(b.state() == breaker_state::open);
  REQUIRE(out.size() == 1);
  check_transition(out[0], breaker_state::closed, breaker_state::open, 5,
                   "failure rate 50% >= 50%");
}

TEST_CASE("a breaker opens when every call in a full window was slow", "[breaker]") {
  breaker_config cfg;
  cfg.window_size = 5;
  cfg.minimum_calls = 5;
  cfg.slow_call_duration = seconds(1);
  breaker b{cfg};
  transitions out;
  for (int i = 0; i < 4; ++i)
    call(b, at(seconds(1)), true, out, seconds(2));
  // Exactly the slow-call duration is not slow.
  call(b, at(seconds(1)), true, out, seconds(1));
  for (int i = 0; i < 4; ++i)
    call(b, at(seconds(1)), true, out, seconds(2));
  CHECK(b.state() == breaker_state::closed);
  call(b, at(seconds(1)), true, out, seconds(2));
  CHECK(b.state() == breaker_state::open);
  REQUIRE(out.size() == 1);
  check_transition(out[0], breaker_state::closed, breaker_state::open, 0,
                   "slow-call rate 100% >= 100%");
}

TEST_CASE("an open breaker fails fast until the wait elapses", "[breaker]") {
  transitions out;
  auto b = opened_breaker(at(seconds(100)), out);
  out.clear();
  for (auto t : {seconds(100), seconds(110), seconds(129)}) {
    auto ticket = b.acquire(at(t), out);
    CHECK_FALSE(ticket.permitted);
    // Recording a refused call changes nothing.
    b.record(ticket, false, milliseconds(1), out);
  }
  CHECK(b.state() == breaker_state::open);
  CHECK(b.open_until() == at(seconds(130)));
  CHECK(out.empty());
}

TEST_CASE("a timer tick half-opens a breaker once the wait has passed", "[breaker]") {
  transitions out;
  breaker closed;
  closed.tick(at(seconds(1000)), out);
  CHECK(closed.state() == breaker_state::closed);
  auto b = opened_breaker(at(seconds(100)), out);
  out.clear();
  b.tick(at(seconds(130) - milliseconds(1)), out);
  CHECK(b.state() == breaker_state::open);
  CHECK(out.empty());
  b.tick(at(seconds(130)), out);
  CHECK(b.state() == breaker_state::half_open);
  REQUIRE(out.size() == 1);
  check_transition(out[0], breaker_state::open, breaker_state::half_open, 0,
                   "wait of 30 s in open elapsed");
  b.tick(at(seconds(200)), out);
  CHECK(out.size() == 1);
}

TEST_CASE("a half-open breaker permits no more than the configured trial calls", "[breaker]") {
  transitions out;
  auto b = opened_breaker(at(seconds(0)), out);
  auto first = b.acquire(at(seconds(30)), out);
  auto second = b.acquire(at(seconds(30)), out);
  auto third = b.acquire(at(seconds(30)), out);
  CHECK((first.permitted && second.permitted && third.permitted));
  CHECK_FALSE(b.acquire(at(seconds(31)), out).permitted);
  // Answered trials do not free a slot: three trials per half-open period.
  b.record(first, true, milliseconds(1), out);
  b.record(second, true, milliseconds(1), out);
  CHECK_FALSE(b.acquire(at(seconds(32)), out).permitted);
  CHECK(b.state() == breaker_state::half_open);
}

TEST_CASE("a half-open breaker closes after the permitted trial calls succeed", "[breaker]") {
  transitions out;
  auto b = opened_breaker(at(seconds(0)), out);
  out.clear();
  std::vector<breaker_ticket> trials;
  for (int i = 0; i < 3; ++i)
    trials.push_back(b.acquire(at(seconds(30)), out));
  for (int i = 0; i < 2; ++i)
    b.record(trials[i], true, milliseconds(1), out);
  CHECK(b.state() == breaker_state::half_open);
  b.record(trials[2], true, milliseconds(1), out);
  CHECK(b.state() == breaker_state::closed);
  REQUIRE(out.size() == 2);
  check_transition(out[1], breaker_state::half_open, breaker_state::closed, 0,
                   "3 trial calls succeeded");
  // A fresh window: nine failures do not reopen.
  for (int i = 0; i < 9; ++i)
    REQUIRE(call(b, at(seconds(31)), false, out));
  CHECK(b.state() == breaker_state::closed);
}

TEST_CASE("a failed trial call reopens the breaker for another wait", "[breaker]") {
  transitions out;
  auto b = opened_breaker(at(seconds(0)), out);
  out.clear();
  auto ok = b.acquire(at(seconds(30)), out);
  auto bad = b.acquire(at(seconds(31)), out);
  b.record(ok, true, milliseconds(1), out);
  b.record(bad, false, milliseconds(1), out);
  CHECK(b.state() == breaker_state::open);
  CHECK(b.open_until() == at(seconds(61)));
  REQUIRE(out.size() == 2);
  check_transition(out[1], breaker_state::half_open, breaker_state::open, 1, "trial call failed");
  CHECK_FALSE(b.acquire(at(seconds(60)), out).permitted);
  CHECK(b.acquire(at(seconds(61)), out).permitted);
  CHECK(b.state() == breaker_state::half_open);
}

TEST_CASE("a breaker ignores outcomes of calls admitted before a transition", "[breaker]") {
  transitions out;
  breaker b;
  auto early = b.acquire(at(seconds(0)), out);
  for (int i = 0; i < 10; ++i)
    call(b, at(seconds(0)), false, out);
  REQUIRE(b.state() == breaker_state::open);
  auto t1 = b.acquire(at(seconds(30)), out);
  auto t2 = b.acquire(at(seconds(30)), out);
  auto t3 = b.acquire(at(seconds(30)), out);
  REQUIRE(b.state() == breaker_state::half_open);
  // A failure from the closed period does not fail the trial.
  b.record(early, false, milliseconds(1), out);
  CHECK(b.state() == breaker_state::half_open);
  b.record(t1, false, milliseconds(1), out);
  REQUIRE(b.state() == breaker_state::open);
  auto u1 = b.acquire(at(seconds(60)), out);
  REQUIRE(b.state() == breaker_state::half_open);
  // Successes of the previous trial neither count nor use up trial slots.
  b.record(t2, true, milliseconds(1), out);
  b.record(t3, true, milliseconds(1), out);
  auto u2 = b.acquire(at(seconds(60)), out);
  auto u3 = b.acquire(at(seconds(60)), out);
  REQUIRE((u1.permitted && u2.permitted && u3.permitted));
  b.record(u1, true, milliseconds(1), out);
  b.record(u2, true, milliseconds(1), out);
  CHECK(b.state() == breaker_state::half_open);
  b.record(u3, true, milliseconds(1), out);
  CHECK(b.state() == breaker_state::closed);
  // A late trial failure does not reach the new window.
  b.record(t1, false, milliseconds(1), out);
  b.record(u1, false, milliseconds(1), out);
  CHECK(b.failures_in_window() == 0);
  CHECK(out.size() == 5);
}

TEST_CASE("a breaker's transitions read as a timeline", "[breaker]") {
  transitions out;
  auto b = opened_breaker(at(seconds(0)), out);
  call(b, at(seconds(30)), false, out);
  for (int i = 0; i < 3; ++i)
    call(b, at(seconds(60)), true, out);
  REQUIRE(out.size() == 5);
  check_transition(out[0], breaker_state::closed, breaker_state::open, 10,
                   "10 failures in the last 10 calls");
  check_transition(out[1], breaker_state::open, breaker_state::half_open, 0,
                   "wait of 30 s in open elapsed");
  check_transition(out[2], breaker_state::half_open, breaker_state::open, 1, "trial call failed");
  check_transition(out[3], breaker_state::open, breaker_state::half_open, 0,
                   "wait of 30 s in open elapsed");
  check_transition(out[4], breaker_state::half_open, breaker_state::closed, 0,
                   "3 trial calls succeeded");
}

// -- backoff and restart budget -------------------------------------------------

TEST_CASE("backoff delays grow exponentially up to the cap", "[backoff]") {
  backoff_policy policy;
  policy.jitter = 0.0;
  std::mt19937_64 rng{1};
  CHECK(backoff_delay(policy, 0, rng) == milliseconds(100));
  CHECK(backoff_delay(policy, 1, rng) == milliseconds(100));
  CHECK(backoff_delay(policy, 2, rng) == milliseconds(200));
  CHECK(backoff_delay(policy, 3, rng) == milliseconds(400));
  CHECK(backoff_delay(policy, 9, rng) == milliseconds(25600));
  CHECK(backoff_delay(policy, 10, rng) == seconds(30));
  CHECK(backoff_delay(policy, 5000, rng) == seconds(30));
  CHECK(backoff_delay(policy, UINT32_MAX, rng) == seconds(30));
}

TEST_CASE("backoff jitter stays within its bounds over many draws", "[backoff]") {
  backoff_policy policy; // jitter 0.2
  std::mt19937_64 rng{2024};
  for (std::uint32_t attempt : {3u, 20u}) {
    auto nominal = attempt == 3 ? duration{milliseconds(400)} : duration{seconds(30)};
    auto low = nominal * 8 / 10;
    auto high = nominal * 12 / 10;
    auto lowest = high;
    auto highest = low;
    for (int i = 0; i < 10000; ++i) {
      auto d = backoff_delay(policy, attempt, rng);
      REQUIRE(d >= low);
      REQUIRE(d <= high);
      lowest = std::min(lowest, d);
      highest = std::max(highest, d);
    }
    // The jitter is used, not just bounded.
    CHECK(lowest < nominal * 82 / 100);
    CHECK(highest > nominal * 118 / 100);
  }
}

TEST_CASE("backoff with jitter above one is never negative", "[backoff]") {
  backoff_policy policy;
  policy.jitter = 1.5;
  std::mt19937_64 rng{3};
  int zeros = 0;
  for (int i = 0; i < 1000; ++i) {
    auto d = backoff_delay(policy, 40, rng);
    REQUIRE(d >= duration::zero());
    REQUIRE(d <= seconds(75));
    zeros += d == duration::zero() ? 1 : 0;
  }
  CHECK(zeros > 0);
}

TEST_CASE("backoff is deterministic per seed", "[backoff]") {
  backoff_policy policy;
  auto draw = [&](std::uint64_t seed) {
    std::mt19937_64 rng{seed};
    std::vector<duration> xs;
    for (std::uint32_t attempt = 1; attempt <= 100; ++attempt)
      xs.push_back(backoff_delay(policy, attempt % 12 + 1, rng));
    return xs;
  };
  CHECK(draw(42) == draw(42));
  CHECK(draw(42) != draw(43));
}

TEST_CASE("a restart budget allows intensity restarts per period and refuses one more",
          "[backoff]") {
  restart_budget budget{3, seconds(10)};
  CHECK(budget.allow(at(seconds(0))));
  CHECK(budget.allow(at(seconds(1))));
  CHECK(budget.allow(at(seconds(2))));
  CHECK(budget.recent() == 3);
  CHECK_FALSE(budget.allow(at(seconds(3))));
  CHECK(budget.recent() == 4);
  // Once every counted restart is older than the period, restarts are allowed.
  CHECK(budget.allow(at(seconds(14))));
  CHECK(budget.recent() == 1);
}

TEST_CASE("a restart budget counts restarts in a sliding period", "[backoff]") {
  restart_budget budget{3, seconds(10)};
  CHECK(budget.allow(at(seconds(0))));
  CHECK(budget.allow(at(seconds(5))));
  CHECK(budget.allow(at(seconds(9))));
  // The restart at 0 s is out of the period ending at 11 s.
  CHECK(budget.allow(at(seconds(11))));
  CHECK(budget.recent() == 3);
  CHECK_FALSE(budget.allow(at(seconds(12))));
}

// -- latency window and adaptive timeout ----------------------------------------

TEST_CASE("latency quantiles are nearest-rank quantiles of the recorded samples", "[timeout]") {
  latency_window w;
  CHECK(w.quantile(0.99) == duration::zero());
  // 1..100 ms in a scrambled order (37 is coprime with 100).
  for (int i = 0; i < 100; ++i)
    w.record(milliseconds((i * 37) % 100 + 1));
  CHECK(w.size() == 100);
  CHECK(w.quantile(0.0) == milliseconds(1));
  CHECK(w.quantile(0.07) == milliseconds(7));
  CHECK(w.quantile(0.5) == milliseconds(50));
  CHECK(w.quantile(0.99) == milliseconds(99));
  CHECK(w.quantile(1.0) == milliseconds(100));
  CHECK(w.quantile(2.0) == milliseconds(100));
}

TEST_CASE("a full latency window overwrites its oldest samples", "[timeout]") {
  latency_window w{4};
  for (int i = 0; i < 4; ++i)
    w.record(seconds(100));
  for (int i = 1; i <= 3; ++i)
    w.record(milliseconds(i));
  CHECK(w.size() == 4);
  CHECK(w.quantile(1.0) == seconds(100));
  w.record(milliseconds(4));
  CHECK(w.size() == 4);
  CHECK(w.quantile(1.0) == milliseconds(4));
  CHECK(w.quantile(0.5) == milliseconds(2));
  CHECK(w.quantile(0.0) == milliseconds(1));
}

TEST_CASE("the adaptive timeout scales the base by the observed p99 and the load", "[timeout]") {
  adaptive_timeout_config cfg;
  CHECK(adaptive_timeout(cfg, latency_window{}.quantile(0.99), 0.0) == seconds(2));
  CHECK(adaptive_timeout(cfg, milliseconds(999), 0.0) == seconds(2));
  CHECK(adaptive_timeout(cfg, seconds(1), 0.0) == seconds(5));
  CHECK(adaptive_timeout(cfg, milliseconds(2999), 0.5) == seconds(5));
  CHECK(adaptive_timeout(cfg, seconds(3), 0.0) == seconds(10));
  CHECK(adaptive_timeout(cfg, seconds(60), 0.0) == seconds(10));
  // Load above 0.8 adds x1.5; exactly 0.8 does not.
  CHECK(adaptive_timeout(cfg, milliseconds(10), 0.8) == seconds(2));
  CHECK(adaptive_timeout(cfg, milliseconds(10), 0.81) == seconds(3));
  CHECK(adaptive_timeout(cfg, seconds(2), 0.9) == milliseconds(7500));
  CHECK(adaptive_timeout(cfg, seconds(3), 1.0) == seconds(15));
}

// -- simulated provider -----------------------------------------------------------

TEST_CASE("a provider answers a known idempotency key with the same reference", "[provider]") {
  simulated_provider gw{"gw", 1};
  CHECK(gw.name() == "gw");
  auto first = gw.plan(authorize("order-1"), at(seconds(1)));
  REQUIRE(first.result == outcome::ok);
  CHECK_THAT(first.reference, Catch::StartsWith("gw-"));
  auto again = gw.plan(authorize("order-1"), at(seconds(2)));
  REQUIRE(again.result == outcome::ok);
  CHECK(again.reference == first.reference);
  CHECK(gw.distinct_successes() == 1);
  auto other = gw.plan(authorize("order-2"), at(seconds(3))).reference;
  CHECK_THAT(other, Catch::StartsWith("gw-"));
  CHECK(other != first.reference);
  CHECK(gw.calls() == 3);
  CHECK(gw.distinct_successes() == 2);
}

TEST_CASE("a provider never declines a key that succeeded but still suffers faults",
          "[provider]") {
  simulated_provider gw{"gw", 2};
  auto first = gw.plan(authorize("order-1"), at(seconds(1)));
  REQUIRE(first.result == outcome::ok);
  provider_faults f;
  f.decline_rate = 1.0;
  gw.faults(f);
  CHECK(gw.faults().decline_rate == 1.0);
  auto known = gw.plan(authorize("order-1"), at(seconds(2)));
  CHECK(known.result == outcome::ok);
  CHECK(known.reference == first.reference);
  auto fresh = gw.plan(authorize("order-2"), at(seconds(2)));
  CHECK(fresh.result == outcome::declined);
  CHECK(fresh.reason == "insufficient funds");
  CHECK(fresh.reference.empty());
  f.outage_from = at(seconds(10));
  f.outage_until = at(seconds(20));
  gw.faults(f);
  CHECK(gw.plan(authorize("order-1"), at(seconds(10))).result == outcome::failed);
  f.hang_rate = 1.0;
  gw.faults(f);
  CHECK(gw.plan(authorize("order-1"), at(seconds(30))).result == outcome::hang);
  CHECK(gw.distinct_successes() == 1);
}

TEST_CASE("an outage fails or hangs calls only inside its window", "[provider]") {
  auto hangs = GENERATE(false, true);
  INFO("outage_hangs " << hangs);
  simulated_provider gw{"gw", 3};
  provider_faults f;
  f.outage_from = at(seconds(100));
  f.outage_until = at(seconds(200));
  f.outage_hangs = hangs;
  gw.faults(f);
  auto inside = hangs ? outcome::hang : outcome::failed;
  CHECK(gw.plan(authorize("a"), at(seconds(100) - milliseconds(1))).result == outcome::ok);
  auto first = gw.plan(authorize("b"), at(seconds(100)));
  CHECK(first.result == inside);
  CHECK(first.reason == "outage");
  CHECK(gw.plan(authorize("c"), at(seconds(200) - milliseconds(1))).result == inside);
  CHECK(gw.plan(authorize("d"), at(seconds(200))).result == outcome::ok);
  CHECK(gw.calls() == 4);
  CHECK(gw.distinct_successes() == 2);
}

TEST_CASE("provider hang error and decline rates are roughly as configured", "[provider]") {
  simulated_provider gw{"gw", 4};
  provider_faults f;
  f.hang_rate = 0.05;
  f.error_rate = 0.1;
  f.decline_rate = 0.2;
  gw.faults(f);
  std::map<outcome, int> seen;
  std::set<std::string> reasons;
  for (int i = 0; i < 10000; ++i) {
    auto p = gw.plan(authorize("k" + std::to_string(i)), at(seconds(1)));
    ++seen[p.result];
    if (p.result == outcome::failed || p.result == outcome::declined)
      reasons.insert(p.reason);
  }
  CHECK(seen[outcome::hang] > 350);
  CHECK(seen[outcome::hang] < 650);
  CHECK(seen[outcome::failed] > 800);
  CHECK(seen[outcome::failed] < 1200);
  CHECK(seen[outcome::declined] > 1700);
  CHECK(seen[outcome::declined] < 2300);
  CHECK(gw.distinct_successes() == static_cast<std::uint64_t>(seen[outcome::ok]));
  CHECK(reasons == std::set<std::string>{"gateway error", "insufficient funds"});
}

TEST_CASE("only authorize and schedule are ever declined", "[provider]") {
  simulated_provider carrier{"carrier", 5};
  provider_faults f;
  f.decline_rate = 0.5;
  carrier.faults(f);
  std::set<std::uint32_t> days;
  int declined = 0;
  for (int i = 0; i < 1000; ++i) {
    auto p = carrier.plan({"schedule", "s" + std::to_string(i), 0}, at(seconds(1)));
    if (p.result == outcome::declined) {
      ++declined;
      CHECK(p.reason == "address not served");
    } else {
      days.insert(p.delivery_days);
    }
    CHECK(carrier.plan({"cancel", "c" + std::to_string(i), 0}, at(seconds(1))).result
          == outcome::ok);
  }
  CHECK(declined > 400);
  CHECK(declined < 600);
  CHECK(days == std::set<std::uint32_t>{1, 2, 3, 4, 5});
}

TEST_CASE("provider latency has roughly the configured median and p99", "[provider]") {
  simulated_provider gw{"gw", 6};
  provider_faults f;
  f.latency_median = milliseconds(20);
  f.latency_p99 = milliseconds(200);
  gw.faults(f);
  latency_window w{10000};
  for (int i = 0; i < 10000; ++i)
    w.record(gw.plan(authorize("k" + std::to_string(i)), at(seconds(1))).latency);
  CHECK(w.quantile(0.5) > milliseconds(18));
  CHECK(w.quantile(0.5) < milliseconds(22));
  CHECK(w.quantile(0.99) > milliseconds(160));
  CHECK(w.quantile(0.99) < milliseconds(250));
  f.latency_p99 = f.latency_median;
  gw.faults(f);
  CHECK(gw.plan(authorize("x"), at(seconds(1))).latency == milliseconds(20));
}

TEST_CASE("a provider forgets the least recently used keys beyond its capacity", "[provider]") {
  simulated_provider gw{"gw", 7, 2};
  auto k1 = gw.plan(authorize("k1"), at(seconds(1))).reference;
  auto k2 = gw.plan(authorize("k2"), at(seconds(1))).reference;
  CHECK_THAT(k1, Catch::StartsWith("gw-"));
  CHECK(k1 != k2);
  // Refreshes k1, so k2 is the least recently used.
  CHECK(gw.plan(authorize("k1"), at(seconds(1))).reference == k1);
  auto k3 = gw.plan(authorize("k3"), at(seconds(1))).reference;
  CHECK(k3 != k1);
  CHECK(k3 != k2);
  CHECK(gw.plan(authorize("k1"), at(seconds(1))).reference == k1);
  // k2 was forgotten: charged again, under a new id.
  auto again = gw.plan(authorize("k2"), at(seconds(1))).reference;
  CHECK(again != k2);
  CHECK(gw.distinct_successes() == 4);
}

TEST_CASE("a provider plans the same answers for the same seed", "[provider]") {
  auto run = [](std::uint64_t seed) {
    simulated_provider gw{"gw", seed, 50};
    provider_faults f;
    f.hang_rate = 0.1;
    f.error_rate = 0.1;
    f.decline_rate = 0.1;
    f.outage_from = at(seconds(300));
    f.outage_until = at(seconds(400));
    gw.faults(f);
    std::vector<std::string> answers;
    for (int i = 0; i < 1000; ++i) {
      provider_call c{i % 2 ? "authorize" : "schedule", "k" + std::to_string(i % 97), 100};
      auto p = gw.plan(c, at(seconds(i)));
      answers.push_back(std::to_string(static_cast<int>(p.result)) + " "
                        + std::to_string(p.latency.count()) + " " + p.reference + " "
                        + std::to_string(p.delivery_days) + " " + p.reason);
    }
    return answers;
  };
  CHECK(run(11) == run(11));
  CHECK(run(11) != run(12));
}
