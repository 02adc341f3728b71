#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <random>
#include <string>
#include <unordered_map>

#include <vector>

#include "keel/actors/provider.hpp"

namespace keel::actors {

/// Faults of a simulated provider, changeable at run time.
struct provider_faults {
  /// Latency: log-normal with this median and this 99th percentile.
  duration latency_median = std::chrono::milliseconds(2);
  duration latency_p99 = std::chrono::milliseconds(10);
  /// Probability of a gateway error (provider_failure).
  double error_rate = 0.0;
  /// Probability of a business decline (payment declined / address not served).
  double decline_rate = 0.0;
  /// Probability that a call is never answered.
  double hang_rate = 0.0;
  /// During [outage_from, outage_until) every call fails: with a gateway
  /// error after the usual latency, or, if `outage_hangs`, never answered.
  steady_time outage_from{};
  steady_time outage_until{};
  bool outage_hangs = false;
};

/// What the provider will do with a call.
struct provider_plan {
  enum class outcome : std::uint8_t { ok, declined, failed, hang };
  outcome result = outcome::ok;
  /// When the answer arrives (meaningless for hang).
  duration latency{};
  /// The provider's reference: payment id or tracking id. The same key
  /// always gets the same reference once it succeeded.
  std::string reference;
  /// For carriers: days until delivery (1..5).
  std::uint32_t delivery_days = 0;
  std::string reason;
};

/// A simulated payment gateway or carrier. Answers by plan: `call` replies
/// at once with the plan's latency as the delay (the adapter actor delivers
/// it on its own clock, so tests on CAF's test coordinator stay
/// deterministic), or never for `hang`. Idempotent by key: a key that succeeded before gets
/// the same reference again and is not counted as a new charge; the memory
/// of keys is bounded (least recently used keys are forgotten beyond
/// `key_capacity`). Thread-safe: faults may be changed from any thread.
class simulated_provider : public provider {
public:
  simulated_provider(std::string name, std::uint64_t seed, std::size_t key_capacity = 200000);

  const std::string& name() const noexcept override {
    return name_;
  }

  void call(const provider_call& call, steady_time now, reply_fn reply) override;

  void faults(const provider_faults& x);
  provider_faults faults() const;

  /// Decides the answer to `call` made at `now`.
  provider_plan plan(const provider_call& call, steady_time now);

  /// Calls planned so far, and distinct keys that succeeded (charges for a
  /// gateway's "authorize", shipments for a carrier's "schedule").
  std::uint64_t calls() const;
  std::uint64_t distinct_successes() const;

private:
  std::string name_;
  mutable std::mutex mtx_;
  provider_faults faults_;
  std::mt19937_64 rng_;
  std::uint64_t calls_ = 0;
  std::uint64_t successes_ = 0;
  std::size_t key_capacity_;
  // key -> reference, with LRU order for the bound.
  std::list<std::string> lru_;
  std::unordered_map<std::string, std::pair<std::string, std::list<std::string>::iterator>> keys_;
};

/// The seed of the first simulated provider of a pipeline (or keel-sim) seeded
/// `seed`; the others follow as `+ 1`, `+ 2`, ... in configuration order.
inline std::uint64_t first_simulator_seed(std::uint64_t seed) noexcept {
  return seed * 7919 + 1;
}

/// Idempotency keys each simulator of a pipeline remembers (node, tests,
/// benchmarks): every retry in flight, in flat memory.
constexpr std::size_t pipeline_simulator_keys = 20000;

/// Simulated providers named `names`, seeded `first_seed`, `first_seed + 1`, ...
std::vector<provider_ptr> simulated_providers(const std::vector<std::string>& names,
                                              std::uint64_t first_seed,
                                              std::size_t key_capacity = 200000);

} // namespace keel::actors
