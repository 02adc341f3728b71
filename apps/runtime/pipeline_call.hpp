#pragma once

// Blocking request/response calls from non-actor threads (the HTTP handler
// threads) into the actor system. Includes CAF: for node.cpp and its tests
// only.

#include <algorithm>
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

/// `call`, but it also gives up as soon as `still()` turns false (checked
/// every `poll`): a forwarded request whose peer's connection is lost then
/// fails at once instead of after its timeout (`sec::request_receiver_down`).
/// CAF 0.17 answers nothing for a request that was on the wire when the
/// connection broke.
template <class Reply, class Still, class... Ts>
caf::expected<Reply> call_while(caf::actor_system& sys, const caf::actor& dest,
                                std::chrono::milliseconds timeout, Still still,
                                std::chrono::milliseconds poll, Ts&&... xs) {
  caf::expected<Reply> result{caf::error{}};
  auto& self = caller(sys);
  auto id = self->request(dest, caf::infinite, std::forward<Ts>(xs)...).id();
  auto deadline = std::chrono::steady_clock::now() + timeout;
  caf::blocking_actor::accept_one_cond rc;
  for (;;) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      result = caf::make_error(caf::sec::request_timeout);
      break;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    bool waited = false;
    self->varargs_receive(rc, id, [&](Reply& r) { result = std::move(r); },
                          [&](caf::error& err) { result = std::move(err); },
                          caf::after(std::min(left + std::chrono::milliseconds{1}, poll))
                            >> [&] { waited = true; });
    if (!waited)
      return result;
    if (!still()) {
      result = caf::make_error(caf::sec::request_receiver_down);
      break;
    }
  }
  drop_caller(); // the answer may still come: not into a later call's mailbox
  return result;
}

} // namespace keel::runtime
