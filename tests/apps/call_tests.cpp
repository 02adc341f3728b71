// Blocking calls from HTTP threads into the actor system (pipeline_call.hpp)
// on a real actor system: no stale message is left in the calling thread's
// mailbox, and a timeout replaces the calling actor.

#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include <caf/actor_system_config.hpp>
#include <caf/behavior.hpp>
#include <caf/delegated.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>

#include "pipeline_call.hpp"

using namespace std::chrono_literals;

namespace {

// Each actor takes an argument: CAF 0.17.6 dereferences a null argument
// tuple when a function actor is spawned without any (UBSan reports it).

/// Answers x with x + `offset`.
caf::behavior echo_actor(caf::event_based_actor*, int offset) {
  return {[offset](int x) { return x + offset; }};
}

/// Takes ints and never answers (the argument is unused).
caf::behavior mute_actor(caf::event_based_actor*, int) {
  return {[](int) -> caf::result<int> { return caf::delegated<int>{}; }};
}

} // namespace

TEST_CASE("answered calls leave no message behind in the calling thread's mailbox", "[node][call]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto echo = sys.spawn(echo_actor, 0);
  for (int i = 0; i < 500; ++i) {
    auto r = keel::runtime::call<int>(sys, echo, 250ms, i);
    REQUIRE(r);
    CHECK(*r == i);
  }
  // A CAF request timeout per call would have been delivered by now.
  std::this_thread::sleep_for(600ms);
  auto& mailbox = keel::runtime::caller(sys)->mailbox();
  mailbox.flush_cache(); // messages skipped by earlier receives count too
  CHECK(mailbox.size() == 0);
  keel::runtime::drop_caller();
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
}

TEST_CASE("a call that gets no answer times out and the next call gets a fresh caller",
          "[node][call]") {
  caf::actor_system_config cfg;
  caf::actor_system sys{cfg};
  auto mute = sys.spawn(mute_actor, 0);
  auto echo = sys.spawn(echo_actor, 0);
  auto before = keel::runtime::caller(sys)->address();
  auto t0 = std::chrono::steady_clock::now();
  auto r = keel::runtime::call<int>(sys, mute, 50ms, 1);
  auto waited = std::chrono::steady_clock::now() - t0;
  REQUIRE_FALSE(r);
  CHECK(r.error() == caf::sec::request_timeout);
  CHECK(waited >= 50ms);
  CHECK(keel::runtime::caller(sys)->address() != before);
  auto ok = keel::runtime::call<int>(sys, echo, 1000ms, 7);
  REQUIRE(ok);
  CHECK(*ok == 7);
  keel::runtime::drop_caller();
  caf::anon_send_exit(mute, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(echo, caf::exit_reason::user_shutdown);
}
