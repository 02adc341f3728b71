#include "rate_limiter.hpp"

#include <algorithm>
#include <cmath>
#include <functional>

namespace keel::runtime {

rate_limiter::rate_limiter(std::uint32_t limit, std::chrono::milliseconds window)
  : limit_(std::max<std::uint32_t>(1, limit)), window_ms_(std::max<std::int64_t>(1, window.count())) {
}

void rate_limiter::sweep(shard& s, std::int64_t now_ms) {
  if (now_ms - s.last_sweep < 2 * window_ms_ || s.keys.size() < 1024)
    return;
  s.last_sweep = now_ms;
  for (auto i = s.keys.begin(); i != s.keys.end();)
    i = now_ms - i->second.window_start >= 2 * window_ms_ ? s.keys.erase(i) : std::next(i);
}

std::int64_t rate_limiter::acquire(std::string_view key, std::int64_t now_ms) {
  auto& s = shards_[std::hash<std::string_view>{}(key) % shards_.size()];
  std::lock_guard<std::mutex> guard{s.mtx};
  sweep(s, now_ms);
  auto& e = s.keys[std::string{key}];
  auto start = now_ms - now_ms % window_ms_;
  if (start != e.window_start) {
    e.previous = start - e.window_start == window_ms_ ? e.current : 0;
    e.current = 0;
    e.window_start = start;
  }
  // The sliding window [now - window, now] covers this fraction of the previous one.
  auto covered = 1.0 - static_cast<double>(now_ms - start) / static_cast<double>(window_ms_);
  auto estimate = static_cast<double>(e.previous) * covered + static_cast<double>(e.current);
  if (estimate + 1.0 <= static_cast<double>(limit_)) {
    ++e.current;
    return 0;
  }
  ++s.rejected;
  if (e.previous == 0 || e.current + 1 > limit_)
    return std::max<std::int64_t>(1, start + window_ms_ - now_ms);
  // Wait until enough of the previous window has slid out.
  auto need = (estimate + 1.0 - limit_) / static_cast<double>(e.previous);
  return std::max<std::int64_t>(1, static_cast<std::int64_t>(std::ceil(need * window_ms_)));
}

std::uint64_t rate_limiter::rejected() const {
  std::uint64_t n = 0;
  for (auto& s : shards_) {
    std::lock_guard<std::mutex> guard{s.mtx};
    n += s.rejected;
  }
  return n;
}

} // namespace keel::runtime
