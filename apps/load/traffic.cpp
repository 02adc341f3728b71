#include "traffic.hpp"

#include <algorithm>
#include <condition_variable>
#include <functional>
#include <cstdio>
#include <mutex>
#include <random>

#include "keel/events/correlation.hpp"
#include "order_script.hpp"
#include "keel/events/error.hpp"
#include "keel/events/streams.hpp"

namespace keel::bench {

namespace {

using namespace keel::events;

std::string sku_name(std::uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "SKU-%04llu", static_cast<unsigned long long>(i));
  return buf;
}

std::string order_name(std::uint64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08llu", static_cast<unsigned long long>(n));
  return buf;
}

/// Gives each event of order `n` its id and time, and writes it out: a
/// service event comes tens of milliseconds after the step was issued (a
/// provider call) or a fraction of one (a stock change), an order event 1 ms
/// after what it answers.
struct emitter {
  std::vector<planned_append>& out;
  std::uint64_t seed;
  std::uint64_t n;
  std::int64_t now;
  event_id correlation;
  std::mt19937_64& rng;
  std::uint64_t counter = 0;

  std::int64_t delay_of(const event& ev) {
    if (std::holds_alternative<order_placed>(ev))
      return 0;
    if (std::holds_alternative<payment_authorized>(ev))
      return 30'000 + static_cast<std::int64_t>(rng() % 200'000);
    auto kind = kind_of_stream(stream_of(ev));
    if (kind == stream_kind::payment)
      return 25'000;
    if (kind == stream_kind::shipment)
      return 35'000;
    if (kind == stream_kind::stock)
      return 200;
    return 1000;
  }

  emitted operator()(const event& ev, const event_id& cause) {
    now += delay_of(ev);
    auto id = event_id::from_seed(seed, n * 64 + counter++);
    out.push_back({stream_of(ev), storage::new_event::from(ev, id, now, correlation, cause)});
    return {id, now};
  }
};

/// A random order of 1-3 lines (one per SKU, as inventory reserves per SKU).
order_placed random_order(std::mt19937_64& rng, const std::string& order_id) {
  order_placed placed;
  placed.order_id = order_id;
  placed.customer_id = "customer-" + std::to_string(rng() % 5000);
  auto lines = 1 + rng() % 3;
  for (std::uint64_t i = 0; i < lines; ++i) {
    auto sku = sku_name(rng() % traffic_skus);
    auto quantity = static_cast<std::uint32_t>(1 + rng() % 4);
    auto price = static_cast<std::int64_t>(199 + rng() % 20000);
    bool seen = false;
    for (const auto& l : placed.lines)
      seen = seen || l.sku == sku;
    if (!seen)
      placed.lines.push_back({sku, quantity, price});
  }
  placed.currency = "EUR";
  placed.shipping_address = {"Ada Lovelace", "12 Analytical Row", "London", "N1 9GU", "GB"};
  placed.premium = rng() % 10 == 0;
  placed.total_cents = total_cents(placed.lines);
  return placed;
}

} // namespace

void stock_history(std::uint64_t seed, std::int64_t start_us, std::vector<planned_append>& out) {
  std::int64_t now = start_us;
  auto correlation = event_id::from_seed(seed, 0);
  for (std::uint64_t i = 0; i < traffic_skus; ++i) {
    now += 10;
    auto id = event_id::from_seed(seed, (~std::uint64_t{0} >> 8) * 64 + i);
    event ev{stock_adjusted{sku_name(i), 1'000'000, "initial stock"}};
    out.push_back({stream_of(ev), storage::new_event::from(ev, id, now, correlation, {})});
  }
}

namespace {

/// The paths of generated orders, out of 100.
struct traffic_path {
  std::uint64_t roll;
  bool out_of_stock() const {
    return roll < 8;
  }
  bool declined() const {
    return roll >= 8 && roll < 15;
  }
  /// The customer cancels while the shipment is being scheduled.
  bool cancelled() const {
    return roll >= 15 && roll < 20;
  }
  /// The gateway times out once; the retry queue re-drives the payment.
  bool parked_once() const {
    return roll >= 20 && roll < 24;
  }
};

/// How the world answers the step `o` waits for on path `p`.
step_answer answer_of(order_script& o, const traffic_path& p, const std::string& gateway,
                      const std::string& carrier, const emitter& clock) {
  step_answer a;
  a.provider = gateway;
  const auto& first = o.step().front();
  if (std::holds_alternative<reserve_stock>(first)) {
    if (p.out_of_stock())
      a.result = step_answer::kind::refused; // the first line: none left
  } else if (std::holds_alternative<authorize_payment>(first)) {
    if (p.declined()) {
      a.result = step_answer::kind::refused;
      a.reason = "insufficient funds";
    } else if (p.parked_once() && o.state().payment_attempts == 0) {
      a.result = step_answer::kind::unavailable;
      a.reason = "gateway timeout";
      a.retry_at_us = clock.now + 1'000'000;
    }
  } else if (std::holds_alternative<schedule_shipment>(first)) {
    a.provider = carrier;
    a.estimated_delivery_us = clock.now + 2 * 86'400'000'000LL;
    if (p.cancelled() && !o.state().cancel_requested)
      o.cancel(o.state().customer_id);
  } else if (std::holds_alternative<cancel_shipment>(first)) {
    a.provider = carrier;
  }
  return a;
}

} // namespace

void order_history(std::uint64_t seed, std::uint64_t n, std::int64_t start_us,
                   std::vector<planned_append>& out) {
  std::mt19937_64 rng{seed * 0x9e3779b97f4a7c15ULL + n};
  auto order_id = order_name(n);
  // The correlation id the saga gives every event of the order.
  emitter emit{out, seed, n, start_us, events::correlation_of(order_id), rng};
  auto placed = random_order(rng, order_id);
  traffic_path path{rng() % 100};
  std::string gateway = rng() % 10 == 0 ? "gw-secondary" : "gw-primary";
  std::string carrier = rng() % 4 == 0 ? "carrier-b" : "carrier-a";
  // The decider says what follows each answer, and with which reason.
  order_script o{std::move(placed), std::ref(emit)};
  while (!o.finished()) {
    if (o.parked()) {
      emit.now = std::max(emit.now, o.state().retry_at_us);
      o.resume();
      continue;
    }
    o.answer(answer_of(o, path, gateway, carrier, emit));
  }
}

caf::expected<std::uint64_t> write_traffic(storage::event_store& store, std::uint64_t seed,
                                           std::uint64_t orders, std::size_t in_flight,
                                           std::int64_t start_us) {
  std::mutex mtx;
  std::condition_variable cv;
  std::size_t outstanding = 0;
  caf::error first_error;
  std::uint64_t written = 0;
  auto submit = [&](planned_append& a) {
    {
      std::unique_lock<std::mutex> guard{mtx};
      cv.wait(guard, [&] { return outstanding < in_flight; });
      ++outstanding;
    }
    std::vector<storage::new_event> events;
    events.push_back(std::move(a.event));
    store.append_async(std::move(a.stream), storage::expected_version::any(), std::move(events),
                       [&](caf::expected<storage::append_result> res) {
                         std::lock_guard<std::mutex> guard{mtx};
                         --outstanding;
                         if (res)
                           ++written;
                         else if (!first_error)
                           first_error = res.error();
                         cv.notify_one();
                       });
  };
  // Each order's events are appended in order: the committer serves the queue
  // first-in first-out, so causal order within an order holds.
  std::int64_t start = start_us != 0 ? start_us
                                     : storage::now_us() - static_cast<std::int64_t>(orders) * 2000;
  std::vector<planned_append> plan;
  stock_history(seed, start - 1'000'000, plan);
  for (auto& a : plan)
    submit(a);
  for (std::uint64_t n = 0; n < orders; ++n) {
    plan.clear();
    order_history(seed, n, start + static_cast<std::int64_t>(n) * 2000, plan);
    for (auto& a : plan)
      submit(a);
  }
  std::unique_lock<std::mutex> guard{mtx};
  cv.wait(guard, [&] { return outstanding == 0; });
  if (first_error)
    return first_error;
  return written;
}

} // namespace keel::bench
