#include "order_script.hpp"

#include <limits>
#include <stdexcept>
#include <utility>

namespace keel::bench {

using namespace keel::events;

namespace {

/// Lines are reserved in order until one lacks units.
step_events reserve(const actors::order_state& st, const reserve_stock& x, const step_answer& a) {
  step_events out;
  bool held = false;
  for (const auto& line : x.lines) {
    auto available = a.available ? a.available(line.sku)
                     : a.result == step_answer::kind::refused
                       ? 0
                       : std::numeric_limits<std::int64_t>::max();
    auto requested = static_cast<std::int64_t>(line.quantity);
    if (available < requested) {
      out.service.emplace_back(stock_reservation_refused{line.sku, st.order_id, line.quantity,
                                                         available});
      out.outcomes.emplace_back(
        order_stock_refused{st.order_id, line.sku, line.quantity, available, held});
      return out;
    }
    out.service.emplace_back(stock_reserved{line.sku, st.order_id, line.quantity});
    held = true;
  }
  out.outcomes.emplace_back(order_stock_reserved{st.order_id});
  return out;
}

step_events authorize(const actors::order_state& st, const authorize_payment& x,
                      const step_answer& a) {
  step_events out;
  switch (a.result) {
    case step_answer::kind::ok: {
      auto payment_id = "pay-" + st.order_id;
      out.service.emplace_back(payment_authorized{st.order_id, payment_id, a.provider,
                                                  x.amount_cents, x.currency, x.idempotency_key});
      out.outcomes.emplace_back(
        order_payment_authorized{st.order_id, payment_id, a.provider, x.amount_cents});
      break;
    }
    case step_answer::kind::refused:
      out.service.emplace_back(payment_declined{st.order_id, a.provider, a.reason});
      out.outcomes.emplace_back(order_payment_declined{st.order_id, a.provider, a.reason});
      break;
    case step_answer::kind::unavailable:
      out.service.emplace_back(payment_unavailable{st.order_id, a.provider, a.reason});
      out.outcomes.emplace_back(order_payment_pending{st.order_id, a.reason,
                                                      st.payment_attempts + 1, a.retry_at_us});
      break;
  }
  return out;
}

step_events schedule(const actors::order_state& st, const step_answer& a) {
  step_events out;
  if (a.result == step_answer::kind::ok) {
    auto tracking = a.provider + "-" + st.order_id;
    auto eta = a.estimated_delivery_us != 0 ? a.estimated_delivery_us
                                            : st.placed_at_us + 3 * 86'400'000'000LL;
    out.service.emplace_back(shipment_scheduled{st.order_id, tracking, a.provider, eta});
    out.outcomes.emplace_back(order_shipment_scheduled{st.order_id, tracking, a.provider, eta});
  } else {
    out.service.emplace_back(shipment_failed{st.order_id, a.provider, a.reason});
    out.outcomes.emplace_back(order_shipment_failed{st.order_id, a.reason});
  }
  return out;
}

/// Capture and commit run together; the order completes when both are done.
step_events finish(const actors::order_state& st, const capture_payment& cap,
                   const commit_stock& com, const step_answer& a) {
  step_events out;
  out.service.emplace_back(payment_captured{st.order_id, cap.payment_id, a.provider,
                                            st.total_cents});
  for (const auto& line : com.lines)
    out.service.emplace_back(stock_committed{line.sku, st.order_id, line.quantity});
  out.outcomes.emplace_back(order_completed{st.order_id});
  return out;
}

step_events compensate(const actors::order_state& st, const actors::saga_command& cmd,
                       const step_answer& a, const std::map<std::string, std::uint32_t>& held) {
  step_events out;
  if (auto* x = std::get_if<void_payment>(&cmd)) {
    out.service.emplace_back(payment_voided{st.order_id, x->payment_id, a.provider});
    out.outcomes.emplace_back(order_payment_voided{st.order_id, x->payment_id});
  } else if (auto* x = std::get_if<cancel_shipment>(&cmd)) {
    out.service.emplace_back(shipment_cancelled{st.order_id, x->tracking_id, st.carrier});
    out.outcomes.emplace_back(order_shipment_cancelled{st.order_id, x->tracking_id});
  } else if (auto* x = std::get_if<release_stock>(&cmd)) {
    for (const auto& line : x->lines)
      if (auto i = held.find(line.sku); i != held.end())
        out.service.emplace_back(stock_released{line.sku, st.order_id, i->second});
    out.outcomes.emplace_back(order_stock_released{st.order_id});
  } else {
    throw std::logic_error(std::string{"order_script: no answer for "}
                           + actors::command_name(cmd));
  }
  return out;
}

} // namespace

order_script::order_script(order_placed placed, emit_fn emit, actors::saga_policy policy)
  : emit_(std::move(emit)), policy_(policy) {
  event ev{std::move(placed)};
  auto at = emit_(ev, {});
  fold(ev, at);
}

step_events order_script::standard(const step_answer& a) const {
  if (step_.empty())
    throw std::logic_error("order_script: order " + st_.order_id + " waits for no step");
  const auto& first = step_.front();
  if (auto* x = std::get_if<reserve_stock>(&first))
    return reserve(st_, *x, a);
  if (auto* x = std::get_if<authorize_payment>(&first))
    return authorize(st_, *x, a);
  if (std::holds_alternative<schedule_shipment>(first))
    return schedule(st_, a);
  if (auto* x = std::get_if<capture_payment>(&first))
    return finish(st_, *x, std::get<commit_stock>(step_.at(1)), a);
  return compensate(st_, first, a, held_);
}

void order_script::answer(const step_events& ev) {
  if (step_.empty())
    throw std::logic_error("order_script: order " + st_.order_id + " waits for no step");
  event_id first;
  for (const auto& s : ev.service) {
    if (auto* x = std::get_if<stock_reserved>(&s))
      held_[x->sku] += x->quantity;
    else if (auto* x = std::get_if<stock_released>(&s))
      held_.erase(x->sku);
    else if (auto* x = std::get_if<stock_committed>(&s))
      held_.erase(x->sku);
    auto at = emit_(s, issued_by_);
    if (!first.valid())
      first = at.id;
  }
  if (ev.outcomes.empty())
    throw std::logic_error("order_script: a step answered without an outcome");
  step_.clear();
  for (const auto& x : ev.outcomes)
    fold(x, emit_(x, first.valid() ? first : issued_by_));
}

bool order_script::cancel(const std::string& requested_by) {
  if (!actors::can_cancel(st_))
    return false;
  event ev{order_cancel_requested{st_.order_id, requested_by}};
  auto at = emit_(ev, {});
  fold(ev, at);
  return true;
}

void order_script::resume() {
  if (!parked())
    throw std::logic_error("order_script: order " + st_.order_id + " is not parked");
  run(actors::resume(st_));
}

void order_script::fold(const event& ev, const emitted& at) {
  auto d = actors::decide(st_, ev, at.at_us, policy_);
  if (!d.anomaly.empty())
    throw std::logic_error("order_script: " + d.anomaly);
  // The shell's part: the stream version and the last event folded.
  st_ = std::move(d.state);
  st_.version++;
  st_.last_event = at.id;
  run(std::move(d.commands));
}

void order_script::run(std::vector<actors::saga_command> cmds) {
  if (cmds.empty())
    return; // terminal, or the outstanding step is still outstanding
  const auto& first = cmds.front();
  if (auto* x = std::get_if<actors::record_rejected>(&first)) {
    event ev{order_rejected{st_.order_id, x->reason, x->code}};
    auto at = emit_(ev, st_.last_event);
    fold(ev, at);
  } else if (auto* x = std::get_if<actors::record_cancelled>(&first)) {
    event ev{order_cancelled{st_.order_id, x->reason, x->code}};
    auto at = emit_(ev, st_.last_event);
    fold(ev, at);
  } else if (std::holds_alternative<actors::park_payment>(first)) {
    step_.clear(); // parked until `resume`
  } else {
    step_ = std::move(cmds);
    issued_by_ = st_.last_event;
  }
}

} // namespace keel::bench
