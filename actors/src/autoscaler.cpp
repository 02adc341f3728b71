#include "keel/actors/autoscaler.hpp"

#include <algorithm>
#include <cstdio>

#include "keel/events/error.hpp"

namespace keel::actors {

namespace {

std::string fixed2(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", x);
  return buf;
}

std::string millis(duration x) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(x).count()) + " ms";
}

/// "utilization 0.93 > 0.80" or "3 calls waited, utilization 0.62".
std::string why_busy(const pool_config& cfg, const pool_window& w) {
  auto util = "utilization " + fixed2(w.utilization());
  if (w.utilization() > cfg.scale_up_utilization)
    return util + " > " + fixed2(cfg.scale_up_utilization);
  return std::to_string(w.waited) + (w.waited == 1 ? " call" : " calls") + " waited, " + util;
}

pool_decision hold(const pool_window& w, std::string reason, std::uint32_t idle_streak = 0) {
  return {w.workers, pool_rule::hold, std::move(reason), idle_streak};
}

/// Rule 3, for a window below the low utilization mark without waits.
pool_decision idle_rule(const pool_config& cfg, const pool_window& w, const std::string& p99) {
  auto util = "utilization " + fixed2(w.utilization()) + " < "
              + fixed2(cfg.scale_down_utilization);
  auto smaller = static_cast<std::uint64_t>(w.workers - 1) * w.calls_per_worker;
  if (w.peak > smaller)
    return hold(w, util + " but " + std::to_string(w.peak) + " calls at once need "
                     + std::to_string(w.workers) + " workers" + p99);
  auto streak = w.idle_streak + 1;
  auto why = util + ", at most " + std::to_string(w.peak) + " calls at once, for "
             + std::to_string(streak) + (streak == 1 ? " interval" : " intervals") + p99;
  if (streak < cfg.shrink_after || w.workers <= cfg.min_workers)
    return hold(w, why, streak);
  return {w.workers - 1, pool_rule::shrink_idle, why, streak};
}

} // namespace

caf::error validate(const pool_config& cfg) {
  auto bad = [](const std::string& what) {
    return make_error(errc::invalid_argument, "provider pool: " + what);
  };
  if (cfg.min_workers < 1 || cfg.min_workers > cfg.max_workers)
    return bad("min_workers must be 1..max_workers");
  if (cfg.initial_workers < cfg.min_workers || cfg.initial_workers > cfg.max_workers)
    return bad("initial_workers must be min_workers..max_workers");
  if (cfg.interval <= duration::zero())
    return bad("interval must be positive");
  if (!(cfg.scale_down_utilization >= 0 && cfg.scale_down_utilization < cfg.scale_up_utilization
        && cfg.scale_up_utilization <= 1))
    return bad("need 0 <= scale_down_utilization < scale_up_utilization <= 1");
  if (cfg.slow_p99 <= duration::zero())
    return bad("slow_p99 must be positive");
  return caf::none;
}

std::uint32_t calls_per_worker(const pool_config& cfg, std::size_t capacity) {
  if (cfg.calls_per_worker > 0)
    return cfg.calls_per_worker;
  auto share = capacity / std::max<std::uint32_t>(cfg.max_workers, 1);
  return static_cast<std::uint32_t>(std::max<std::size_t>(share, 1));
}

double pool_window::utilization() const noexcept {
  auto slots = static_cast<double>(workers) * static_cast<double>(calls_per_worker);
  return slots > 0 ? std::clamp(busy / slots, 0.0, 1.0) : 0.0;
}

pool_decision decide_pool_size(const pool_config& cfg, const pool_window& in) {
  auto w = in;
  w.workers = std::clamp(w.workers, cfg.min_workers, cfg.max_workers);
  auto util = w.utilization();
  auto p99 = ", p99 " + millis(w.p99);
  auto slow = w.p99 > cfg.slow_p99;
  auto busy = util > cfg.scale_up_utilization || w.waited > 0;
  if (slow && busy) { // rule 1
    auto why = "p99 " + millis(w.p99) + " > " + millis(cfg.slow_p99) + " under load ("
               + why_busy(cfg, w) + "): a slow provider gets no more workers";
    if (w.workers <= cfg.min_workers)
      return hold(w, why + ", at the minimum of " + std::to_string(cfg.min_workers));
    return {w.workers - 1, pool_rule::shrink_slow, why + ", gives one back", 0};
  }
  if (busy) { // rule 2
    if (w.calls == 0)
      return hold(w, why_busy(cfg, w) + ", no call answered yet: latency unknown");
    if (w.workers >= cfg.max_workers)
      return hold(w, why_busy(cfg, w) + p99 + ", at the maximum of "
                       + std::to_string(cfg.max_workers));
    return {w.workers + 1, pool_rule::grow, why_busy(cfg, w) + p99, 0};
  }
  if (util < cfg.scale_down_utilization) // rule 3
    return idle_rule(cfg, w, p99);
  return hold(w, "utilization " + fixed2(util) + " within [" + fixed2(cfg.scale_down_utilization)
                   + ", " + fixed2(cfg.scale_up_utilization) + "]" + p99);
}

pool_meter::pool_meter(steady_time now) : start_(now), last_change_(now) {
}

void pool_meter::update(steady_time now, std::size_t busy, std::size_t waiting) {
  busy_ns_ += static_cast<double>(busy_) * static_cast<double>((now - last_change_).count());
  last_change_ = now;
  busy_ = busy;
  in_pool_ = busy + waiting;
  peak_ = std::max(peak_, in_pool_);
}

void pool_meter::left(duration latency) {
  ++calls_;
  latencies_.record(latency);
}

pool_window pool_meter::close(steady_time now, std::uint32_t workers,
                              std::uint32_t calls_per_worker, duration oldest_in_flight,
                              std::uint32_t idle_streak) {
  update(now, busy_, in_pool_ - busy_);
  pool_window w;
  w.workers = workers;
  w.calls_per_worker = calls_per_worker;
  auto length = static_cast<double>((now - start_).count());
  w.busy = length > 0 ? busy_ns_ / length : static_cast<double>(busy_);
  w.waited = waited_;
  w.peak = peak_;
  w.calls = calls_;
  w.p99 = std::max(latencies_.quantile(0.99), oldest_in_flight);
  w.idle_streak = idle_streak;
  start_ = now;
  busy_ns_ = 0;
  waited_ = 0;
  peak_ = in_pool_;
  calls_ = 0;
  latencies_.clear();
  return w;
}

} // namespace keel::actors
