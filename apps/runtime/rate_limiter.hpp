#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace keel::runtime {

/// A per-key sliding-window rate limit: at most `limit` requests per key in
/// any window of length `window`, estimated from the counts of the current
/// and the previous fixed window (the previous one weighted by how much of it
/// the sliding window still covers). Thread-safe (sharded locks); keys not
/// seen for two windows are forgotten, so memory follows the active keys.
class rate_limiter {
public:
  explicit rate_limiter(std::uint32_t limit, std::chrono::milliseconds window = std::chrono::seconds(1));

  /// Counts a request of `key` at `now_ms` (milliseconds, any monotonic
  /// origin) if allowed. Returns 0 when allowed, else how many milliseconds
  /// until a request of this key would be allowed (>= 1).
  std::int64_t acquire(std::string_view key, std::int64_t now_ms);

  /// Requests refused so far.
  std::uint64_t rejected() const;

  std::uint32_t limit() const noexcept {
    return limit_;
  }

private:
  struct entry {
    std::int64_t window_start = 0;
    std::uint32_t current = 0;
    std::uint32_t previous = 0;
  };
  struct shard {
    mutable std::mutex mtx;
    std::unordered_map<std::string, entry> keys;
    std::int64_t last_sweep = 0;
    std::uint64_t rejected = 0;
  };

  void sweep(shard& s, std::int64_t now_ms);

  std::uint32_t limit_;
  std::int64_t window_ms_;
  std::array<shard, 16> shards_;
};

} // namespace keel::runtime
