#pragma once

#include <memory>
#include <string>

#include <caf/event_based_actor.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/response_promise.hpp>

#include "keel/actors/registry.hpp"

namespace keel::actors {

/// Base of every supervised service actor: a bulkhead and a crash contract.
///
/// Bulkhead: at most `capacity` requests are pending (in the mailbox or
/// admitted and not yet answered). A request beyond that is answered with
/// `overloaded` from the sender's thread inside `enqueue`, never queued and
/// never dropped silently, and counted. Subclasses answer admitted requests
/// through `answer()` (or call `release()` when they answer by returning a
/// value or delegate).
///
/// Crash: an exception escaping a handler answers the request being handled
/// with `actor_crashed` and terminates the actor with that error; its
/// supervisor restarts it and re-sends the other requests it had in flight.
class service_actor : public caf::event_based_actor {
public:
  service_actor(caf::actor_config& cfg, std::string name, std::size_t capacity,
                std::shared_ptr<bulkhead_gauge> gauge);

  using caf::event_based_actor::enqueue;

  void enqueue(caf::mailbox_element_ptr ptr, caf::execution_unit* eu) override;

  const char* name() const override {
    return name_.c_str();
  }

protected:
  /// Answers an admitted request: frees its bulkhead slot first, so a caller
  /// that reacts at once to the answer never finds the slot still taken.
  template <class T>
  void answer(caf::response_promise& rp, T&& x) {
    release();
    rp.deliver(std::forward<T>(x));
  }

  /// Marks one admitted request as answered (for handlers that answer by
  /// returning a value, or delegate).
  void release() noexcept;

  /// Pending requests now.
  std::int64_t in_use() const noexcept {
    return gauge_->in_use.load(std::memory_order_relaxed);
  }

  std::int64_t capacity() const noexcept {
    return gauge_->capacity.load(std::memory_order_relaxed);
  }

private:
  std::string name_;
  std::shared_ptr<bulkhead_gauge> gauge_;
};

} // namespace keel::actors
