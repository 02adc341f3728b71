#include "history.hpp"

#include <algorithm>
#include <cstdio>

#include "keel/events/error.hpp"

namespace keel::test {

using namespace keel::events;

/// One order on its way through the saga, driven by the real decider.
struct history::order_run {
  std::uint64_t n = 0;
  planned_path path = planned_path::completed;
  unsigned variant = 0;
  std::string gateway;
  std::string carrier;
  event_id correlation;
  std::unique_ptr<bench::order_script> script;

  /// When a planned cancel comes (variant % 5): 0 at once, 1 while the
  /// payment is authorized, 2 while it is parked, 3 and 4 while the shipment
  /// is scheduled; -1 on paths without a cancel.
  int cancel_moment() const {
    bool cancels = path == planned_path::cancelled_by_customer
                   || path == planned_path::cancelled_other;
    return cancels ? static_cast<int>(variant % 5) : -1;
  }

  /// Records the planned cancel: the customer's, or an operator's on the
  /// cancelled_other path.
  void cancel() {
    script->cancel(path == planned_path::cancelled_other ? std::string{"operator"}
                                                         : script->state().customer_id);
  }
};

namespace {

std::string numbered(const char* prefix, std::uint64_t n, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s%0*llu", prefix, digits, static_cast<unsigned long long>(n));
  return buf;
}

/// Every seventh SKU is scarce: a few units, so orders run out of it.
bool scarce(std::size_t sku_index) {
  return sku_index % 7 == 0;
}

const char* const pending_reasons[] = {"payment provider timeout", "circuit open", "bulkhead full"};
const char* const decline_reasons[] = {"insufficient funds", "card expired", "suspected fraud"};
const char* const shipping_reasons[] = {"no carrier accepts the address", "carrier outage"};

} // namespace

history::history(history_options opts)
  : opts_(std::move(opts)), rng_(opts_.seed * 0x9e3779b97f4a7c15ULL + 12345), now_(opts_.start_us) {
  for (std::size_t i = 0; i < opts_.skus; ++i)
    catalogue_.push_back(numbered("SKU-", i, 3));
}

history::~history() = default;

std::vector<std::string> history::skus() const {
  return catalogue_;
}

caf::error history::adopt(const storage::event_store& store) {
  auto all = store.read_all();
  while (all.next()) {
    const auto& rec = all.current();
    now_ = std::max(now_, rec.timestamp_us);
    if (rec.type.compare(0, 6, "stock_") != 0)
      continue;
    auto ev = rec.decode_payload();
    if (!ev)
      return ev.error();
    if (auto* x = std::get_if<stock_adjusted>(&*ev))
      stock_[x->sku].on_hand = x->on_hand;
    else if (auto* x = std::get_if<stock_reserved>(&*ev))
      stock_[x->sku].reserved += x->quantity;
    else if (auto* x = std::get_if<stock_released>(&*ev))
      stock_[x->sku].reserved -= x->quantity;
    else if (auto* x = std::get_if<stock_committed>(&*ev)) {
      stock_[x->sku].reserved -= x->quantity;
      stock_[x->sku].on_hand -= x->quantity;
    }
  }
  return all.error();
}

std::int64_t history::gap() {
  auto r = rng_() % 1000;
  if (r < 20)
    return 0; // events at the same microsecond
  if (r < 995)
    return 1 + static_cast<std::int64_t>(rng_() % static_cast<std::uint64_t>(2 * opts_.mean_gap_us));
  return 1'800'000'000 + static_cast<std::int64_t>(rng_() % 10'800'000'000ULL); // 0.5 to 3.5 hours
}

bench::emitted history::emit(const event& ev, event_id correlation, event_id causation) {
  now_ += gap();
  auto id = event_id::from_seed(opts_.seed, next_id_++);
  out_->push_back({stream_of(ev), storage::new_event::from(ev, id, now_, correlation, causation)});
  // Stock effects of the services' events.
  if (auto* x = std::get_if<stock_adjusted>(&ev)) {
    stock_[x->sku].on_hand = x->on_hand;
  } else if (auto* x = std::get_if<stock_reserved>(&ev)) {
    stock_[x->sku].reserved += x->quantity;
  } else if (auto* x = std::get_if<stock_released>(&ev)) {
    stock_[x->sku].reserved -= x->quantity;
  } else if (auto* x = std::get_if<stock_committed>(&ev)) {
    stock_[x->sku].reserved -= x->quantity;
    stock_[x->sku].on_hand -= x->quantity;
  }
  return {id, now_};
}

void history::adjust_random_sku() {
  auto i = rng_() % catalogue_.size();
  auto& s = stock_[catalogue_[i]];
  auto extra = static_cast<std::int64_t>(scarce(i) ? rng_() % 10 : rng_() % 700);
  emit(stock_adjusted{catalogue_[i], s.reserved + extra, "recount"});
}

void history::place() {
  auto o = std::make_unique<order_run>();
  o->n = next_order_++;
  auto r = rng_() % 100;
  o->path = r < 38   ? planned_path::completed
            : r < 50 ? planned_path::completed_after_retry
            : r < 58 ? planned_path::rejected
            : r < 68 ? planned_path::declined
            : r < 80 ? planned_path::cancelled_by_customer
            : r < 88 ? planned_path::shipment_failed
            : r < 97 ? planned_path::gave_up
                     : planned_path::cancelled_other;
  o->variant = static_cast<unsigned>(rng_() % 1000);
  o->gateway = rng_() % 5 == 0 ? "gw-secondary" : "gw-primary";
  o->carrier = o->variant % 3 == 0 ? "carrier-b" : "carrier-a";
  o->correlation = event_id::from_seed(opts_.seed ^ 0xc0ffee, o->n);

  order_placed placed;
  placed.order_id = "o-" + opts_.tag + "-" + numbered("", o->n, 5);
  placed.customer_id = numbered("cust-", rng_() % opts_.customers, 3);
  auto c = rng_() % 20;
  placed.currency = c < 12 ? "EUR" : c < 19 ? "USD" : "GBP";
  auto count = 1 + rng_() % 3;
  std::vector<std::size_t> picked;
  while (picked.size() < count) {
    auto i = rng_() % catalogue_.size();
    if (std::find(picked.begin(), picked.end(), i) == picked.end())
      picked.push_back(i);
  }
  for (auto i : picked)
    placed.lines.push_back({catalogue_[i], static_cast<std::uint32_t>(1 + rng_() % 4),
                            static_cast<std::int64_t>(199 + rng_() % 20000)});
  if (o->path == planned_path::rejected)
    placed.lines[rng_() % placed.lines.size()].quantity = unobtainable_quantity;
  placed.shipping_address = {"Ada Lovelace", "12 Analytical Row", "London", "N1 9GU", "GB"};
  placed.premium = rng_() % 10 == 0;
  placed.total_cents = total_cents(placed.lines);
  auto correlation = o->correlation;
  o->script = std::make_unique<bench::order_script>(
    std::move(placed),
    [this, correlation](const event& ev, const event_id& cause) {
      return emit(ev, correlation, cause);
    },
    policy());
  // A customer who changes their mind at once (before the reservation).
  if (o->path == planned_path::cancelled_by_customer && o->variant % 5 == 0)
    o->script->cancel(o->script->state().customer_id);
  active_.push_back(std::move(o));
}

actors::saga_policy history::policy() {
  actors::saga_policy p;
  p.max_payment_attempts = gave_up_attempts;
  return p;
}

namespace {

/// The capture step as older shells recorded it too: captured in two parts
/// (1 in 16), with copies of the captures on the order stream (every other
/// group of 7), or with a goodwill refund before completion (1 in 12).
void decorate_capture(bench::step_events& ev, const actors::order_state& st, unsigned variant,
                      const std::string& gateway) {
  auto& pay = std::get<payment_captured>(ev.service.front());
  bool copies = (variant / 7) % 2 == 0;
  std::vector<event> outcomes;
  if (variant % 16 == 3) {
    auto first = st.total_cents / 3;
    pay.amount_cents = first;
    ev.service.insert(ev.service.begin() + 1,
                      payment_captured{st.order_id, pay.payment_id, gateway, st.total_cents - first});
    if (copies) {
      outcomes.emplace_back(order_payment_captured{st.order_id, st.payment_id, first});
      outcomes.emplace_back(
        order_payment_captured{st.order_id, st.payment_id, st.total_cents - first});
    }
  } else if (copies) {
    outcomes.emplace_back(order_payment_captured{st.order_id, st.payment_id, st.total_cents});
  }
  if (variant % 12 == 5) {
    auto refund = 1 + st.total_cents / 10;
    ev.service.emplace_back(payment_refunded{st.order_id, st.payment_id, gateway, refund});
    if (copies)
      outcomes.emplace_back(order_payment_refunded{st.order_id, st.payment_id, refund});
  }
  outcomes.insert(outcomes.end(), ev.outcomes.begin(), ev.outcomes.end());
  ev.outcomes = std::move(outcomes);
}

} // namespace

bench::step_answer history::answer_of(order_run& o) {
  auto& script = *o.script;
  const auto& st = script.state();
  bench::step_answer a;
  a.provider = o.gateway;
  a.available = [this](const std::string& sku) {
    auto& s = stock_[sku];
    return s.on_hand - s.reserved;
  };
  const auto& first = script.step().front();
  auto moment = o.cancel_moment();
  if (std::holds_alternative<authorize_payment>(first)) {
    std::uint32_t unavailable = o.path == planned_path::completed_after_retry ? 1 + o.variant % 2
                                : o.path == planned_path::gave_up             ? gave_up_attempts
                                : o.path == planned_path::declined && o.variant % 4 == 1 ? 1
                                : moment == 2                                            ? 1
                                                                                         : 0;
    if (st.payment_attempts < unavailable) {
      a.result = bench::step_answer::kind::unavailable;
      a.reason = pending_reasons[(o.variant + st.payment_attempts) % 3];
      a.retry_at_us = now_ + 1'000'000LL * (2 << st.payment_attempts);
    } else if (o.path == planned_path::declined) {
      a.result = bench::step_answer::kind::refused;
      a.reason = decline_reasons[o.variant % 3];
    } else if (moment == 1) {
      o.cancel(); // while the payment is authorized
    }
  } else if (std::holds_alternative<schedule_shipment>(first)) {
    a.provider = o.carrier;
    a.estimated_delivery_us = now_ + 2 * 86'400'000'000LL;
    if (o.path == planned_path::shipment_failed) {
      a.result = bench::step_answer::kind::refused;
      a.reason = shipping_reasons[o.variant % 2];
    } else if (moment >= 3) {
      o.cancel(); // the shipment is scheduled meanwhile: cancelled too
    }
  } else if (std::holds_alternative<cancel_shipment>(first)) {
    a.provider = o.carrier;
  }
  return a;
}

void history::advance(order_run& o) {
  auto& script = *o.script;
  if (script.parked()) {
    if (o.cancel_moment() == 2) { // while the payment is pending
      o.cancel();
      return;
    }
    now_ = std::max(now_, script.state().retry_at_us);
    script.resume();
    return;
  }
  auto a = answer_of(o);
  auto ev = script.standard(a);
  if (std::holds_alternative<capture_payment>(script.step().front()))
    decorate_capture(ev, script.state(), o.variant, o.gateway);
  else if (o.path == planned_path::declined && o.variant % 3 == 2
           && std::holds_alternative<payment_declined>(ev.service.front())) {
    // The fallback gateway was asked too and declined as well.
    auto other = o.gateway == "gw-primary" ? "gw-secondary" : "gw-primary";
    ev.service.emplace_back(payment_declined{script.state().order_id, other, a.reason});
    std::get<order_payment_declined>(ev.outcomes.front()).provider = other;
  }
  script.answer(ev);
}

std::vector<planned_event> history::plan(std::size_t orders, bool finish) {
  std::vector<planned_event> out;
  out_ = &out;
  for (std::size_t i = 0; i < catalogue_.size(); ++i) {
    if (stock_.count(catalogue_[i]) != 0)
      continue;
    auto units = static_cast<std::int64_t>(scarce(i) ? rng_() % 13 : 150 + rng_() % 750);
    emit(stock_adjusted{catalogue_[i], units, "initial stock"});
  }
  std::size_t placed = 0;
  for (;;) {
    bool can_place = placed < orders;
    if (!can_place && (!finish || active_.empty()))
      break;
    if (rng_() % 1000 < 15) {
      adjust_random_sku();
      continue;
    }
    if (can_place && active_.size() < opts_.in_flight && (active_.empty() || rng_() % 4 == 0)) {
      place();
      ++placed;
      continue;
    }
    auto i = rng_() % active_.size();
    advance(*active_[i]);
    if (active_[i]->script->finished()) {
      std::swap(active_[i], active_.back());
      active_.pop_back();
    }
  }
  out_ = nullptr;
  return out;
}

caf::error append_events(storage::event_store& store, const std::vector<planned_event>& events,
                         std::size_t from, std::size_t to) {
  to = std::min(to, events.size());
  for (std::size_t i = from; i < to; ++i) {
    std::vector<storage::new_event> one{events[i].event};
    auto r = store.append(events[i].stream, storage::expected_version::any(), std::move(one));
    if (!r)
      return r.error();
  }
  return caf::error{};
}

} // namespace keel::test
