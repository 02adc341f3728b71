#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/fwd.hpp>

#include "journal.hpp"
#include "keel/actors/backoff.hpp"
#include "keel/actors/breaker.hpp"
#include "keel/actors/registry.hpp"

namespace keel::actors {

/// Erlang/OTP restart strategies.
enum class restart_strategy : std::uint8_t {
  /// Restart only the child that failed.
  one_for_one,
  /// Restart every child when one fails (children that share state).
  one_for_all,
};

/// How to start one child. Called again for each restart.
struct child_spec {
  std::string name;
  std::function<caf::actor(caf::actor_system&)> start;
};

/// Settings of a supervisor.
struct supervisor_config {
  std::string name;
  restart_strategy strategy = restart_strategy::one_for_one;
  /// Restart budget: at most `intensity` restarts within `period`, else escalate.
  std::uint32_t intensity = 20;
  duration period = std::chrono::seconds(10);
  /// Delay before a restart, growing with the restarts in the period.
  backoff_policy restart_backoff{std::chrono::milliseconds(5), std::chrono::seconds(2), 2.0, 0.2};
  /// The breaker policy over calls to the children, if any.
  std::optional<breaker_config> breaker;
  /// Timeout of a call to a child; zero = none (the child times out itself).
  duration call_timeout{0};
  /// Picks the child of a request; null = child 0.
  std::function<std::size_t(const caf::message&)> route;
  std::vector<child_spec> children;
  /// Requests buffered for a child that is restarting; more are `overloaded`.
  std::size_t max_waiting = 10000;
  std::shared_ptr<storage::event_store> store;
  append_mode mode = append_mode::asynchronous;
  std::shared_ptr<class registry> metrics;
  std::function<std::int64_t()> now_us;
  std::uint64_t seed = 1;
};

/// Spawns a supervisor: the stable handle of a service. It starts and links
/// its children, forwards every request to the child `route` picks and
/// relays the child's `Reply` (or error) to the caller.
///
/// - A child's crash fails the request that caused it with `actor_crashed`
///   (the child answers it as it dies); every other request that child had
///   in flight or queued is re-sent to its successor, so callers see nothing.
/// - Restarts follow the strategy with jittered backoff; more than
///   `intensity` restarts within `period` escalate: every pending request
///   fails with `restart_budget_exhausted` and the supervisor exits with it.
/// - With a breaker: calls while open fail fast with `circuit_open`;
///   crashes, timeouts and failure errors (provider_failure, storage_failure)
///   count as failures, `overloaded` and business errors do not. Every
///   transition is appended to `$system-breaker-<name>`, restarts to
///   `$system-supervisor`.
template <class Reply>
caf::actor spawn_supervisor(caf::actor_system& sys, supervisor_config cfg);

} // namespace keel::actors
