#include "keel/actors/simulated_provider.hpp"

#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <utility>

#include "journal.hpp"

namespace keel::actors {

namespace {

using outcome = provider_plan::outcome;

// The 99th percentile of the standard normal distribution.
constexpr double z99 = 2.326;
constexpr double pi = 3.14159265358979323846;

// Hand-rolled draws instead of <random> distributions, whose algorithms the
// standard leaves open: the same seed plans the same calls everywhere.
double unit(std::mt19937_64& rng) {
  return static_cast<double>(rng() >> 11) * 0x1.0p-53;
}

// Box-Muller; 1 - unit is in (0, 1], so the logarithm is finite.
double standard_normal(std::mt19937_64& rng) {
  auto u1 = 1.0 - unit(rng);
  auto u2 = unit(rng);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * pi * u2);
}

duration log_normal(const provider_faults& f, double z) {
  auto median = static_cast<double>(f.latency_median.count());
  if (f.latency_p99 <= f.latency_median || median <= 0.0)
    return f.latency_median;
  auto sigma = std::log(static_cast<double>(f.latency_p99.count()) / median) / z99;
  return duration{std::llround(median * std::exp(sigma * z))};
}

// The business refusal of an operation, or nullptr if it cannot be refused.
const char* decline_reason(const std::string& operation) {
  if (operation == "authorize")
    return "insufficient funds";
  if (operation == "schedule")
    return "address not served";
  return nullptr;
}

struct verdict {
  outcome result = outcome::ok;
  const char* reason = "";
};

// What happens to a call at `now` given the draw `u` in [0, 1): outages
// first, then hang, gateway error and decline by cumulative rates, so each
// rate is the fraction of calls it affects. A key that succeeded before is
// never declined: the gateway answers with the recorded result.
verdict decide(const provider_faults& f, steady_time now, double u, const char* refusal,
               bool known) {
  if (now >= f.outage_from && now < f.outage_until)
    return {f.outage_hangs ? outcome::hang : outcome::failed, "outage"};
  if (u < f.hang_rate)
    return {outcome::hang, "no answer"};
  if (u < f.hang_rate + f.error_rate)
    return {outcome::failed, "gateway error"};
  if (u < f.hang_rate + f.error_rate + f.decline_rate && refusal && !known)
    return {outcome::declined, refusal};
  return {};
}

} // namespace

simulated_provider::simulated_provider(std::string name, std::uint64_t seed,
                                       std::size_t key_capacity)
  : name_(std::move(name)), rng_(seed), key_capacity_(key_capacity) {
}

void simulated_provider::faults(const provider_faults& x) {
  std::lock_guard<std::mutex> guard{mtx_};
  faults_ = x;
}

provider_faults simulated_provider::faults() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return faults_;
}

provider_plan simulated_provider::plan(const provider_call& call, steady_time now) {
  std::lock_guard<std::mutex> guard{mtx_};
  ++calls_;
  // Every call consumes the same draws, so changing one fault setting does
  // not reshuffle the others.
  auto z = standard_normal(rng_);
  auto u = unit(rng_);
  auto days = static_cast<std::uint32_t>(1 + rng_() % 5);
  provider_plan result;
  result.latency = log_normal(faults_, z);
  auto known = keys_.find(call.idempotency_key);
  auto v = decide(faults_, now, u, decline_reason(call.operation), known != keys_.end());
  result.result = v.result;
  if (v.result != outcome::ok) {
    result.reason = v.reason;
    return result;
  }
  if (known != keys_.end()) {
    lru_.splice(lru_.begin(), lru_, known->second.second);
    result.reference = known->second.first;
  } else {
    // Unique for good, as a real gateway's ids are: a provider created again
    // (a restarted test pipeline) must not hand another order an id it gave
    // before, so the key's hash is part of it; a forgotten key is charged
    // again and gets a new id.
    char ref[48];
    std::snprintf(ref, sizeof ref, "-%08" PRIx64 "-%" PRIu64,
                  static_cast<std::uint64_t>(stable_hash(call.idempotency_key) & 0xffffffffULL),
                  static_cast<std::uint64_t>(successes_ + 1));
    result.reference = name_ + ref;
    lru_.push_front(call.idempotency_key);
    keys_.emplace(call.idempotency_key, std::make_pair(result.reference, lru_.begin()));
    if (keys_.size() > key_capacity_) {
      keys_.erase(lru_.back());
      lru_.pop_back();
    }
    ++successes_;
  }
  if (call.operation == "schedule")
    result.delivery_days = days;
  return result;
}

void simulated_provider::call(const provider_call& call, steady_time now, reply_fn reply) {
  auto p = plan(call, now);
  if (p.result == outcome::hang)
    return;
  auto result = p.result == outcome::ok         ? provider_reply::outcome::ok
                : p.result == outcome::declined ? provider_reply::outcome::declined
                                                : provider_reply::outcome::failed;
  reply(provider_reply{result, std::move(p.reference), p.delivery_days, std::move(p.reason)},
        p.latency);
}

std::vector<provider_ptr> simulated_providers(const std::vector<std::string>& names,
                                              std::uint64_t first_seed,
                                              std::size_t key_capacity) {
  std::vector<provider_ptr> out;
  for (const auto& name : names)
    out.push_back(std::make_shared<simulated_provider>(name, first_seed++, key_capacity));
  return out;
}

bool is_gateway_operation(const std::string& operation) {
  return operation == "authorize" || operation == "capture" || operation == "void"
         || operation == "refund";
}

bool is_carrier_operation(const std::string& operation) {
  return operation == "schedule" || operation == "cancel";
}

std::uint64_t simulated_provider::calls() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return calls_;
}

std::uint64_t simulated_provider::distinct_successes() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return successes_;
}

} // namespace keel::actors
