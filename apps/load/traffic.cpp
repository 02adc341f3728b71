#include "traffic.hpp"

#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>

#include "keel/events/correlation.hpp"
#include "keel/actors/saga.hpp"
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

/// Emits events with ids, times and causation ids as the pipeline records
/// them: a service event is caused by the order event that issued its step
/// (the driver), an order event by the first service event of the step it
/// answers (or by the driver when the step recorded none); order_placed and
/// order_cancel_requested come from outside.
struct emitter {
  std::vector<planned_append>& out;
  std::uint64_t seed;
  std::uint64_t n;
  std::int64_t now;
  event_id correlation;
  /// The order event whose step runs, and the step's first service event.
  event_id driver;
  event_id first_answer;
  std::uint64_t counter = 0;

  void operator()(const event& ev, std::int64_t delay_us = 1000) {
    now += delay_us;
    auto id = event_id::from_seed(seed, n * 64 + counter++);
    auto stream = stream_of(ev);
    bool order = kind_of_stream(stream) == stream_kind::order;
    bool external = std::holds_alternative<order_placed>(ev)
                    || std::holds_alternative<order_cancel_requested>(ev);
    event_id cause;
    if (!order) {
      cause = driver;
      if (!first_answer.valid())
        first_answer = id;
    } else if (!external) {
      cause = first_answer.valid() ? first_answer : driver;
    }
    out.push_back({stream, storage::new_event::from(ev, id, now, correlation, cause)});
    // A new step starts after every outcome but the capture's (half of its step).
    if (order && !std::holds_alternative<order_cancel_requested>(ev)
        && !std::holds_alternative<order_payment_captured>(ev)) {
      driver = id;
      first_answer = {};
    }
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
  emitter emit{out, seed, ~std::uint64_t{0} >> 8, start_us, event_id::from_seed(seed, 0), {}, {}};
  for (std::uint64_t i = 0; i < traffic_skus; ++i)
    emit(stock_adjusted{sku_name(i), 1'000'000, "initial stock"}, 10);
}

void order_history(std::uint64_t seed, std::uint64_t n, std::int64_t start_us,
                   std::vector<planned_append>& out) {
  std::mt19937_64 rng{seed * 0x9e3779b97f4a7c15ULL + n};
  auto order_id = order_name(n);
  // The correlation id the saga gives every event of the order.
  emitter emit{out, seed, n, start_us, events::correlation_of(order_id), {}, {}};

  auto placed = random_order(rng, order_id);
  emit(placed, 0);

  auto outcome = rng() % 100;
  if (outcome < 8) { // out of stock
    const auto& line = placed.lines.front();
    emit(stock_reservation_refused{line.sku, order_id, line.quantity, 0});
    emit(order_stock_refused{order_id, line.sku, line.quantity, 0, false});
    // The reasons the saga records (keel-replay check compares them).
    emit(order_rejected{order_id, "out of stock: " + line.sku + " (requested "
                                    + std::to_string(line.quantity) + ", available 0)"});
    return;
  }
  for (const auto& line : placed.lines)
    emit(stock_reserved{line.sku, order_id, line.quantity}, 200);
  emit(order_stock_reserved{order_id});
  auto provider = rng() % 10 == 0 ? "secondary" : "primary";
  if (outcome < 15) { // declined
    emit(payment_declined{order_id, provider, "insufficient funds"}, 30'000);
    emit(order_payment_declined{order_id, provider, "insufficient funds"});
    for (const auto& line : placed.lines)
      emit(stock_released{line.sku, order_id, line.quantity}, 200);
    emit(order_stock_released{order_id});
    emit(order_cancelled{order_id, "payment declined: insufficient funds"});
    return;
  }
  auto payment_id = "pay-" + order_id;
  emit(payment_authorized{order_id, payment_id, provider, placed.total_cents, "EUR",
                          actors::authorization_key(order_id)},
       30'000 + static_cast<std::int64_t>(rng() % 200'000));
  emit(order_payment_authorized{order_id, payment_id, provider, placed.total_cents});
  auto carrier = rng() % 4 == 0 ? "carrier-b" : "carrier-a";
  auto tracking = std::string{carrier} + "-" + order_id;
  if (outcome < 20) {
    // The customer cancels while the shipment is being scheduled: the saga
    // waits for that step's outcome, then compensates every step.
    emit(order_cancel_requested{order_id, placed.customer_id}, 5'000);
    auto eta = emit.now + 2 * 86'400'000'000LL;
    emit(shipment_scheduled{order_id, tracking, carrier, eta}, 35'000);
    emit(order_shipment_scheduled{order_id, tracking, carrier, eta});
    emit(shipment_cancelled{order_id, tracking, carrier}, 10'000);
    emit(order_shipment_cancelled{order_id, tracking});
    emit(payment_voided{order_id, payment_id, provider}, 20'000);
    emit(order_payment_voided{order_id, payment_id});
    for (const auto& line : placed.lines)
      emit(stock_released{line.sku, order_id, line.quantity}, 200);
    emit(order_stock_released{order_id});
    emit(order_cancelled{order_id, "cancelled by customer"});
    return;
  }
  auto eta = emit.now + 2 * 86'400'000'000LL;
  emit(shipment_scheduled{order_id, tracking, carrier, eta}, 40'000);
  emit(order_shipment_scheduled{order_id, tracking, carrier, eta});
  emit(payment_captured{order_id, payment_id, provider, placed.total_cents}, 25'000);
  emit(order_payment_captured{order_id, payment_id, placed.total_cents});
  for (const auto& line : placed.lines)
    emit(stock_committed{line.sku, order_id, line.quantity}, 200);
  emit(order_completed{order_id});
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
