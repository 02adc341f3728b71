#pragma once

// Blocking request/response calls from non-actor threads (the HTTP handler
// threads) into the actor system. Includes CAF: for node.cpp and its tests
// only.

#include <chrono>
#include <utility>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/after.hpp>
#include <caf/expected.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/sec.hpp>

namespace keel::runtime {

/// The calling thread's blocking actor in `sys`, made on first use (one per
/// thread; the threads end before the actor system does).
caf::scoped_actor& caller(caf::actor_system& sys);

/// Drops the calling thread's blocking actor; the next `caller` makes a new one.
void drop_caller();

/// One request/response with `dest`, waiting at most `timeout`
/// (`sec::request_timeout` then). Thread-safe: each thread uses its own
/// `caller`.
///
/// CAF's own request timeout is not used: CAF 0.17 sends its timeout
/// message after every call, answered or not; the long-lived blocking actor
/// skips it into its mailbox's cache, and every later receive scans them all,
/// so memory and latency would grow with uptime. The wait is bounded by the
/// receive instead, and after a timeout the actor, which may still get the
/// late answer, is dropped.
template <class Reply, class... Ts>
caf::expected<Reply> call(caf::actor_system& sys, const caf::actor& dest,
                          std::chrono::milliseconds timeout, Ts&&... xs) {
  caf::expected<Reply> result{caf::error{}};
  auto& self = caller(sys);
  auto id = self->request(dest, caf::infinite, std::forward<Ts>(xs)...).id();
  bool timed_out = false;
  caf::blocking_actor::accept_one_cond rc;
  self->varargs_receive(rc, id, [&](Reply& r) { result = std::move(r); },
                        [&](caf::error& err) { result = std::move(err); },
                        caf::after(timeout) >> [&] { timed_out = true; });
  if (timed_out) {
    result = caf::make_error(caf::sec::request_timeout);
    drop_caller();
  }
  return result;
}

} // namespace keel::runtime
