#pragma once

#include "keel/events/types.hpp"

/// System events, stored in streams "$system-<component>", so timelines can
/// show what the resilience machinery did.
namespace keel::events {

/// The states of a circuit breaker. Stored as one byte; decoding rejects any
/// other value.
enum class breaker_state : std::uint8_t { closed = 0, open = 1, half_open = 2 };

/// Returns "closed", "open" or "half_open".
const char* to_string(breaker_state x);

/// A circuit breaker changed state.
struct breaker_transitioned {
  static constexpr const char* type_name = "breaker_transitioned";
  static constexpr std::uint16_t schema_version = 1;
  std::string breaker;
  breaker_state from = breaker_state::closed;
  breaker_state to = breaker_state::closed;
  std::uint32_t failures = 0;
  std::string reason;
  KEEL_FIELDS(breaker, from, to, failures, reason)
};

/// A worker pool or bulkhead capacity changed size.
struct pool_resized {
  static constexpr const char* type_name = "pool_resized";
  static constexpr std::uint16_t schema_version = 1;
  std::string pool;
  std::uint32_t from_size = 0;
  std::uint32_t to_size = 0;
  std::string reason;
  KEEL_FIELDS(pool, from_size, to_size, reason)
};

/// A supervisor restarted a child actor.
struct actor_restarted {
  static constexpr const char* type_name = "actor_restarted";
  static constexpr std::uint16_t schema_version = 1;
  std::string actor;
  std::string reason;
  std::uint32_t restarts = 0;
  KEEL_FIELDS(actor, reason, restarts)
};

/// A node started with these payment gateways (in order of preference) and
/// carriers; appended to "$system-providers" when they differ from the last
/// start's, so tools tell the breakers of gateways from those of carriers.
struct providers_configured {
  static constexpr const char* type_name = "providers_configured";
  static constexpr std::uint16_t schema_version = 1;
  std::vector<std::string> gateways;
  std::vector<std::string> carriers;
  KEEL_FIELDS(gateways, carriers)
};

} // namespace keel::events
