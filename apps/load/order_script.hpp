#pragma once

// One order driven through the saga's real decider (actors::decide) without
// actors: the generators of sample traffic, benchmark stores and test
// histories say how the world answers each step (stock there or not, the
// payment declined, a carrier failing, a customer cancelling), and the
// decider says what comes next, in which order compensations run and which
// reason ends the order. The events come out with the causation ids the
// pipeline gives them.

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "keel/actors/saga.hpp"
#include "keel/events/event.hpp"

namespace keel::bench {

/// What the generator assigned to an event it was handed: its id and time.
struct emitted {
  events::event_id id;
  std::int64_t at_us = 0;
};

/// Gives `ev`, caused by `cause` (none for events from outside the saga),
/// an id and a time, and writes it out.
using emit_fn = std::function<emitted(const events::event& ev, const events::event_id& cause)>;

/// The events of one answered step: what the services recorded, then what
/// the saga records (one outcome; a capture step may also carry copies of
/// the capture and refund before order_completed, as older shells recorded).
struct step_events {
  std::vector<events::event> service;
  std::vector<events::event> outcomes;
};

/// How the world answers a step: `ok`, or `refused` (stock refused, payment
/// declined, shipment failed), or `unavailable` (the payment is parked).
struct step_answer {
  enum class kind : std::uint8_t { ok, refused, unavailable };
  kind result = kind::ok;
  /// The gateway or carrier that answered.
  std::string provider = "gw-primary";
  /// Why it declined, failed or was unavailable.
  std::string reason;
  /// unavailable: when the parked payment is due again.
  std::int64_t retry_at_us = 0;
  /// The shipment's estimated delivery (0: three days after the order).
  std::int64_t estimated_delivery_us = 0;
  /// The reserve step: units available of a SKU (lines are reserved in
  /// order until one lacks units).
  std::function<std::int64_t(const std::string& sku)> available;
};

class order_script {
public:
  /// Emits `placed` and folds it: the first step (reserve_stock) is due.
  order_script(events::order_placed placed, emit_fn emit, actors::saga_policy policy = {});

  const actors::order_state& state() const noexcept {
    return st_;
  }
  /// The commands of the step the order waits for (empty when terminal or parked).
  const std::vector<actors::saga_command>& step() const noexcept {
    return step_;
  }
  bool finished() const noexcept {
    return actors::is_terminal(st_.status);
  }
  /// Parked on the retry queue (pending_payment, no step outstanding).
  bool parked() const noexcept {
    return step_.empty() && !finished();
  }

  /// The events the services and the saga would record for the outstanding
  /// step answered as `a` (see `answer`); generators may change them (split
  /// a capture, add copies) before answering with them.
  step_events standard(const step_answer& a) const;

  /// Answers the outstanding step: emits `ev.service` (caused by the order
  /// event that issued the step) and `ev.outcomes` (caused by the first
  /// service event, or by the issuing event when there is none), folds the
  /// outcomes and runs what the decider issues next (recording rejections
  /// and cancellations itself). Throws std::logic_error when the decider
  /// finds the outcome does not fit (the generator is wrong).
  void answer(const step_events& ev);
  /// answer(standard(a)).
  void answer(const step_answer& a) {
    answer(standard(a));
  }

  /// A customer (or operator) cancel, recorded when `can_cancel` allows it;
  /// false otherwise. With no step outstanding (parked) the compensations
  /// start at once, else after the outstanding step's outcome.
  bool cancel(const std::string& requested_by);

  /// A parked payment is due: the decider's `resume` re-issues it.
  void resume();

private:
  void fold(const events::event& ev, const emitted& at);
  void run(std::vector<actors::saga_command> cmds);

  emit_fn emit_;
  actors::saga_policy policy_;
  actors::order_state st_;
  std::vector<actors::saga_command> step_;
  /// The order event whose decision issued the outstanding step.
  events::event_id issued_by_;
  /// Units the inventory holds for this order, by SKU (what a release
  /// releases: the service knows its reservations, the saga does not).
  std::map<std::string, std::uint32_t> held_;
};

} // namespace keel::bench
