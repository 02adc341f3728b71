#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "keel/actors/breaker.hpp"

namespace keel::actors {

/// One call to an external provider: a payment gateway ("authorize",
/// "capture", "void", "refund") or a carrier ("schedule", "cancel").
struct provider_call {
  std::string operation;
  /// Sent with every call, as real gateways require: the same key never
  /// charges (or ships) twice.
  std::string idempotency_key;
  std::int64_t amount_cents = 0;
};

/// What a provider answered.
struct provider_reply {
  /// ok: done (`reference` names the payment or shipment); declined: a
  /// business refusal (insufficient funds, address not served) that another
  /// try will not change; failed: the provider could not do it now (gateway
  /// error, refused connection, unreadable answer), worth another provider
  /// or a retry; timed_out: no answer in time (the provider may still do
  /// it: the idempotency key makes a retry safe).
  enum class outcome : std::uint8_t { ok, declined, failed, timed_out };
  outcome result = outcome::ok;
  std::string reference;
  /// For a carrier's "schedule": days until delivery.
  std::uint32_t delivery_days = 0;
  std::string reason;
};

/// The operations each kind of provider offers.
bool is_gateway_operation(const std::string& operation);
bool is_carrier_operation(const std::string& operation);

/// An external payment gateway or carrier, as its adapter actor calls it.
/// Implementations: `simulated_provider` (in process, for tests and
/// benchmarks) and `http_provider` (a provider's HTTP API, or keel-sim).
///
/// `call` must not block: it starts the call and returns. The answer goes
/// to `reply` at most once, from any thread, with the delay after which the
/// adapter should see it (zero when it arrived just now; a simulator answers
/// at once with its planned latency). A call that is never answered is
/// failed by the adapter's timeout; a late reply is then ignored.
class provider {
public:
  using reply_fn = std::function<void(provider_reply, duration after)>;

  virtual ~provider() = default;

  virtual const std::string& name() const noexcept = 0;

  virtual void call(const provider_call& call, steady_time now, reply_fn reply) = 0;
};

using provider_ptr = std::shared_ptr<provider>;

} // namespace keel::actors
