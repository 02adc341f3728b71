#include "keel/actors/breaker.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

namespace keel::actors {

namespace {

using events::breaker_state;

constexpr std::uint8_t failed_bit = 1;
constexpr std::uint8_t slow_bit = 2;

std::string percent(double fraction) {
  return std::to_string(std::lround(fraction * 100.0)) + "%";
}

// Whole seconds print as "30 s", anything else in milliseconds.
std::string describe(duration x) {
  using namespace std::chrono;
  if (x % seconds(1) == duration::zero())
    return std::to_string(duration_cast<seconds>(x).count()) + " s";
  return std::to_string(duration_cast<milliseconds>(x).count()) + " ms";
}

std::uint32_t count_bit(const std::vector<std::uint8_t>& window, std::uint8_t bit) {
  // Unused slots are zero, so counting the whole ring is exact.
  return static_cast<std::uint32_t>(
    std::count_if(window.begin(), window.end(), [bit](std::uint8_t x) { return (x & bit) != 0; }));
}

// Why a closed breaker must open after its window changed, if it must.
std::optional<std::string> open_reason(const breaker_config& cfg,
                                       const std::vector<std::uint8_t>& window, std::size_t calls) {
  auto failures = count_bit(window, failed_bit);
  if (cfg.failure_threshold > 0 && failures >= cfg.failure_threshold)
    return std::to_string(failures) + " failures in the last " + std::to_string(calls) + " calls";
  if (calls == 0 || calls < cfg.minimum_calls)
    return std::nullopt;
  auto failure_rate = failures / static_cast<double>(calls);
  if (failure_rate >= cfg.failure_rate_threshold)
    return "failure rate " + percent(failure_rate) + " >= " + percent(cfg.failure_rate_threshold);
  auto slow_rate = count_bit(window, slow_bit) / static_cast<double>(calls);
  if (slow_rate >= cfg.slow_call_rate_threshold)
    return "slow-call rate " + percent(slow_rate) + " >= " + percent(cfg.slow_call_rate_threshold);
  return std::nullopt;
}

} // namespace

breaker::breaker(breaker_config cfg)
  : cfg_(std::move(cfg)), window_(std::max<std::uint32_t>(cfg_.window_size, 1), 0) {
}

breaker_ticket breaker::acquire(steady_time now, std::vector<breaker_transition>& out) {
  tick(now, out);
  switch (state_) {
    case breaker_state::closed:
      return {true, epoch_};
    case breaker_state::half_open:
      // Counts every trial permitted in this half-open epoch, answered or not.
      if (half_open_in_flight_ >= cfg_.permitted_half_open_calls)
        return {false, epoch_};
      ++half_open_in_flight_;
      return {true, epoch_};
    case breaker_state::open:
      break;
  }
  return {false, epoch_};
}

void breaker::tick(steady_time now, std::vector<breaker_transition>& out) {
  now_ = now;
  if (state_ == breaker_state::open && now_ >= open_until_)
    transition(breaker_state::half_open, "wait of " + describe(cfg_.wait_in_open) + " in open elapsed",
               out);
}

void breaker::record(const breaker_ticket& ticket, bool success, duration elapsed,
                     std::vector<breaker_transition>& out) {
  if (!ticket.permitted || ticket.epoch != epoch_ || state_ == breaker_state::open)
    return;
  std::uint8_t outcome = 0;
  if (!success)
    outcome |= failed_bit;
  if (elapsed > cfg_.slow_call_duration)
    outcome |= slow_bit;
  window_[next_] = outcome;
  next_ = (next_ + 1) % window_.size();
  filled_ = std::min(filled_ + 1, window_.size());
  if (state_ == breaker_state::closed) {
    if (auto reason = open_reason(cfg_, window_, filled_))
      transition(breaker_state::open, std::move(*reason), out);
  } else if (!success) {
    transition(breaker_state::open, "trial call failed", out);
  } else if (++half_open_successes_ >= cfg_.permitted_half_open_calls) {
    auto n = half_open_successes_;
    transition(breaker_state::closed,
               std::to_string(n) + (n == 1 ? " trial call succeeded" : " trial calls succeeded"),
               out);
  }
}

std::uint32_t breaker::failures_in_window() const noexcept {
  return count_bit(window_, failed_bit);
}

void breaker::transition(events::breaker_state to, std::string reason,
                         std::vector<breaker_transition>& out) {
  out.push_back({state_, to, failures_in_window(), std::move(reason)});
  state_ = to;
  // A new epoch makes outcomes of calls admitted before the change stale.
  ++epoch_;
  std::fill(window_.begin(), window_.end(), std::uint8_t{0});
  next_ = 0;
  filled_ = 0;
  half_open_in_flight_ = 0;
  half_open_successes_ = 0;
  if (to == breaker_state::open)
    open_until_ = now_ + cfg_.wait_in_open;
}

} // namespace keel::actors
