#include "history.hpp"

#include <algorithm>
#include <cstdio>

#include "keel/events/error.hpp"

namespace keel::test {

using namespace keel::events;

/// One order on its way through the saga: the events still to emit, each
/// made when it is emitted (some fields depend on the clock then).
struct history::order_run {
  std::uint64_t n = 0;
  std::string id;
  std::string customer;
  std::string currency;
  std::string provider;
  std::vector<order_line> lines;
  std::int64_t total = 0;
  planned_path path = planned_path::completed;
  unsigned variant = 0;
  event_id correlation;
  event_id previous;
  /// The reservation was decided and the rest of the saga queued.
  bool decided = false;
  std::deque<std::function<event()>> queue;

  std::string payment_id() const {
    return "pay-" + id;
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

void history::emit(const event& ev, std::vector<planned_event>& out, event_id correlation,
                   event_id causation) {
  now_ += gap();
  auto id = event_id::from_seed(opts_.seed, next_id_++);
  out.push_back({stream_of(ev), storage::new_event::from(ev, id, now_, correlation, causation)});
  // Stock effects of emitted events (reservations counted when decided).
  if (auto* x = std::get_if<stock_adjusted>(&ev)) {
    stock_[x->sku].on_hand = x->on_hand;
  } else if (auto* x = std::get_if<stock_released>(&ev)) {
    stock_[x->sku].reserved -= x->quantity;
  } else if (auto* x = std::get_if<stock_committed>(&ev)) {
    stock_[x->sku].reserved -= x->quantity;
    stock_[x->sku].on_hand -= x->quantity;
  }
}

void history::adjust_random_sku(std::vector<planned_event>& out) {
  auto i = rng_() % catalogue_.size();
  auto& s = stock_[catalogue_[i]];
  auto extra = static_cast<std::int64_t>(scarce(i) ? rng_() % 10 : rng_() % 700);
  emit(stock_adjusted{catalogue_[i], s.reserved + extra, "recount"}, out);
}

void history::place(std::vector<planned_event>& out) {
  auto o = std::make_unique<order_run>();
  o->n = next_order_++;
  o->id = "o-" + opts_.tag + "-" + numbered("", o->n, 5);
  o->customer = numbered("cust-", rng_() % opts_.customers, 3);
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
  auto c = rng_() % 20;
  o->currency = c < 12 ? "EUR" : c < 19 ? "USD" : "GBP";
  o->provider = rng_() % 5 == 0 ? "secondary" : "primary";
  auto count = 1 + rng_() % 3;
  std::vector<std::size_t> picked;
  while (picked.size() < count) {
    auto i = rng_() % catalogue_.size();
    if (std::find(picked.begin(), picked.end(), i) == picked.end())
      picked.push_back(i);
  }
  for (auto i : picked)
    o->lines.push_back({catalogue_[i], static_cast<std::uint32_t>(1 + rng_() % 4),
                        static_cast<std::int64_t>(199 + rng_() % 20000)});
  if (o->path == planned_path::rejected)
    o->lines[rng_() % o->lines.size()].quantity = unobtainable_quantity;
  o->total = total_cents(o->lines);
  o->correlation = event_id::from_seed(opts_.seed ^ 0xc0ffee, o->n);

  order_placed placed;
  placed.order_id = o->id;
  placed.customer_id = o->customer;
  placed.lines = o->lines;
  placed.currency = o->currency;
  placed.shipping_address = {"Ada Lovelace", "12 Analytical Row", "London", "N1 9GU", "GB"};
  placed.premium = rng_() % 10 == 0;
  placed.total_cents = o->total;
  emit(placed, out, o->correlation);
  o->previous = out.back().event.id;
  // A customer who changes their mind at once (before the reservation).
  if (o->path == planned_path::cancelled_by_customer && o->variant % 5 == 0)
    o->queue.push_back([id = o->id, who = o->customer] { return event{order_cancel_requested{id, who}}; });
  active_.push_back(std::move(o));
}

void history::plan_rest(order_run& o) {
  o.decided = true;
  auto& q = o.queue;
  const auto id = o.id;
  // Reserve line by line while units are available.
  std::size_t refused = o.lines.size();
  std::int64_t available = 0;
  for (std::size_t i = 0; i < o.lines.size(); ++i) {
    auto& s = stock_[o.lines[i].sku];
    available = s.on_hand - s.reserved;
    if (available < static_cast<std::int64_t>(o.lines[i].quantity)) {
      refused = i;
      break;
    }
    s.reserved += o.lines[i].quantity;
    q.push_back([id, line = o.lines[i]] { return event{stock_reserved{line.sku, id, line.quantity}}; });
  }
  auto release = [&](std::size_t lines) {
    for (std::size_t i = 0; i < lines; ++i)
      q.push_back(
        [id, line = o.lines[i]] { return event{stock_released{line.sku, id, line.quantity}}; });
    q.push_back([id] { return event{order_stock_released{id}}; });
  };
  // 1 in 20 terminal events carries no reason (the summary keeps the last one).
  auto maybe = [&](std::string reason) { return o.variant % 20 == 7 ? std::string{} : reason; };
  auto cancelled = [&](std::string reason) {
    q.push_back([id, reason = maybe(std::move(reason))] { return event{order_cancelled{id, reason}}; });
  };
  if (refused < o.lines.size()) {
    auto line = o.lines[refused];
    q.push_back([id, line, available] {
      return event{stock_reservation_refused{line.sku, id, line.quantity, available}};
    });
    q.push_back([id, line, available, partial = refused > 0] {
      return event{order_stock_refused{id, line.sku, line.quantity, available, partial}};
    });
    if (refused > 0)
      release(refused);
    auto reason = maybe("out of stock: " + line.sku + " (requested " + std::to_string(line.quantity)
                        + ", available " + std::to_string(available) + ")");
    q.push_back([id, reason] { return event{order_rejected{id, reason}}; });
    return;
  }
  q.push_back([id] { return event{order_stock_reserved{id}}; });

  const auto pay = o.payment_id();
  const auto provider = o.provider;
  const auto total = o.total;
  const auto currency = o.currency;
  const auto carrier = o.variant % 3 == 0 ? std::string{"carrier-b"} : std::string{"carrier-a"};
  const auto tracking = carrier + "-" + id;
  auto* self = this; // for the clock when an event is made
  auto authorize = [&] {
    q.push_back([=] {
      return event{payment_authorized{id, pay, provider, total, currency, "auth-" + id}};
    });
    q.push_back([=] { return event{order_payment_authorized{id, pay, provider, total}}; });
  };
  auto pending = [&](std::uint32_t attempts) {
    for (std::uint32_t k = 1; k <= attempts; ++k) {
      const std::string reason = pending_reasons[(o.variant + k) % 3];
      q.push_back([=] { return event{payment_unavailable{id, provider, reason}}; });
      q.push_back([=] {
        return event{order_payment_pending{id, reason, k, self->now_ + 1'000'000LL * (1 << k)}};
      });
    }
  };
  auto schedule = [&] {
    q.push_back([=] {
      return event{shipment_scheduled{id, tracking, carrier, self->now_ + 2 * 86'400'000'000LL}};
    });
    q.push_back([=] {
      return event{order_shipment_scheduled{id, tracking, carrier, self->now_ + 2 * 86'400'000'000LL}};
    });
  };
  auto void_payment = [&] {
    q.push_back([=] { return event{payment_voided{id, pay, provider}}; });
    q.push_back([=] { return event{order_payment_voided{id, pay}}; });
  };
  auto cancel_requested = [&] {
    q.push_back([id, who = o.customer] { return event{order_cancel_requested{id, who}}; });
  };
  auto complete = [&] {
    // The live saga records captures and refunds on the payment stream only;
    // some histories also carry the order stream's copies, which must not
    // count twice.
    bool copies = (o.variant / 7) % 2 == 0;
    if (o.variant % 16 == 3) { // captured in two parts
      auto first = total / 3;
      q.push_back([=] { return event{payment_captured{id, pay, provider, first}}; });
      if (copies)
        q.push_back([=] { return event{order_payment_captured{id, pay, first}}; });
      q.push_back([=] { return event{payment_captured{id, pay, provider, total - first}}; });
      if (copies)
        q.push_back([=] { return event{order_payment_captured{id, pay, total - first}}; });
    } else {
      q.push_back([=] { return event{payment_captured{id, pay, provider, total}}; });
      if (copies)
        q.push_back([=] { return event{order_payment_captured{id, pay, total}}; });
    }
    if (o.variant % 12 == 5) { // a goodwill refund before the order completed
      auto refund = 1 + total / 10;
      q.push_back([=] { return event{payment_refunded{id, pay, provider, refund}}; });
      if (copies)
        q.push_back([=] { return event{order_payment_refunded{id, pay, refund}}; });
    }
    for (const auto& line : o.lines)
      q.push_back([id, line] { return event{stock_committed{line.sku, id, line.quantity}}; });
    q.push_back([id] { return event{order_completed{id}}; });
  };
  auto attempts = static_cast<std::uint32_t>(1 + o.variant % 3);
  bool cancel_early = o.path == planned_path::cancelled_by_customer && o.variant % 5 == 0;
  auto path = o.path == planned_path::rejected ? planned_path::completed : o.path; // got its units
  switch (cancel_early ? planned_path::cancelled_by_customer : path) {
    case planned_path::completed:
    case planned_path::rejected:
      authorize();
      schedule();
      complete();
      break;
    case planned_path::completed_after_retry:
      pending(attempts);
      authorize();
      schedule();
      complete();
      break;
    case planned_path::declined: {
      if (o.variant % 4 == 1)
        pending(1);
      const std::string reason = decline_reasons[o.variant % 3];
      auto last = provider;
      q.push_back([=] { return event{payment_declined{id, provider, reason}}; });
      if (o.variant % 3 == 2) { // the fallback gateway declines too
        last = provider == "primary" ? "secondary" : "primary";
        q.push_back([=] { return event{payment_declined{id, last, reason}}; });
      }
      q.push_back([=] { return event{order_payment_declined{id, last, reason}}; });
      release(o.lines.size());
      cancelled("payment declined: " + reason);
      break;
    }
    case planned_path::cancelled_by_customer:
      switch (o.variant % 5) {
        case 0: // requested before the reservation
          break;
        case 1: // after the reservation
          cancel_requested();
          break;
        case 2: // after the authorization
          authorize();
          cancel_requested();
          void_payment();
          break;
        case 3: // while the payment is pending
          pending(1 + o.variant % 2);
          cancel_requested();
          break;
        default: // the shipment was scheduled meanwhile: cancelled too
          authorize();
          cancel_requested();
          schedule();
          q.push_back([=] { return event{shipment_cancelled{id, tracking, carrier}}; });
          q.push_back([=] { return event{order_shipment_cancelled{id, tracking}}; });
          void_payment();
          break;
      }
      release(o.lines.size());
      cancelled("cancelled by customer");
      break;
    case planned_path::shipment_failed: {
      authorize();
      const std::string reason = shipping_reasons[o.variant % 2];
      q.push_back([=] { return event{shipment_failed{id, carrier, reason}}; });
      q.push_back([=] { return event{order_shipment_failed{id, reason}}; });
      void_payment();
      release(o.lines.size());
      cancelled("shipping failed: " + reason);
      break;
    }
    case planned_path::gave_up:
      pending(attempts);
      release(o.lines.size());
      cancelled("payment unavailable after " + std::to_string(attempts) + " attempts");
      break;
    case planned_path::cancelled_other:
      release(o.lines.size());
      cancelled("cancelled by an operator");
      break;
  }
}

void history::advance(order_run& o, std::vector<planned_event>& out) {
  if (o.queue.empty() && !o.decided)
    plan_rest(o);
  auto make = std::move(o.queue.front());
  o.queue.pop_front();
  auto ev = make();
  emit(ev, out, o.correlation, o.previous);
  o.previous = out.back().event.id;
}

std::vector<planned_event> history::plan(std::size_t orders, bool finish) {
  std::vector<planned_event> out;
  for (std::size_t i = 0; i < catalogue_.size(); ++i) {
    if (stock_.count(catalogue_[i]) != 0)
      continue;
    auto units = static_cast<std::int64_t>(scarce(i) ? rng_() % 13 : 150 + rng_() % 750);
    emit(stock_adjusted{catalogue_[i], units, "initial stock"}, out);
  }
  std::size_t placed = 0;
  for (;;) {
    bool can_place = placed < orders;
    if (!can_place && (!finish || active_.empty()))
      break;
    if (rng_() % 1000 < 15) {
      adjust_random_sku(out);
      continue;
    }
    if (can_place && active_.size() < opts_.in_flight && (active_.empty() || rng_() % 4 == 0)) {
      place(out);
      ++placed;
      continue;
    }
    auto i = rng_() % active_.size();
    advance(*active_[i], out);
    if (active_[i]->decided && active_[i]->queue.empty()) {
      std::swap(active_[i], active_.back());
      active_.pop_back();
    }
  }
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
