#pragma once

// A seeded generator of valid event histories for the projection tests: a
// stock catalogue (some SKUs adjusted again later) and orders interleaved
// along every saga path, with their inventory, payment and shipment events.
// Each order is driven through the saga's real decider (bench::order_script):
// this generator only chooses the world's answers. Deterministic for a seed.
// No test framework here: the crash child links it.

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <caf/error.hpp>

#include "keel/events/event.hpp"
#include "keel/storage/event_store.hpp"
#include "order_script.hpp"
#include "traffic.hpp"

namespace keel::test {

/// One append of a planned history.
using planned_event = bench::planned_append;

struct history_options {
  std::uint64_t seed = 1;
  /// Part of every order id: generators writing into one store use distinct tags.
  std::string tag = "a";
  std::size_t skus = 40;
  std::size_t customers = 60;
  /// Orders kept in flight at once (each step advances a random one).
  std::size_t in_flight = 50;
  /// The time of the first event: 2026-03-01T18:00:00Z.
  std::int64_t start_us = 1'772'388'000'000'000;
  /// The mean gap between two events (a few are 0, a few are hours).
  std::int64_t mean_gap_us = 60'000'000;
};

/// The paths a planned order takes (the stock decides whether it gets far).
enum class planned_path {
  completed,
  completed_after_retry,
  rejected,
  declined,
  cancelled_by_customer,
  shipment_failed,
  gave_up,
  cancelled_other,
};

/// Units no order line of a planned rejection can get (more than any SKU holds).
constexpr std::uint32_t unobtainable_quantity = 5000;

/// Unavailable payment attempts after which the histories' saga policy
/// gives up (the production policy's 10 would make long histories).
constexpr std::uint32_t gave_up_attempts = 3;

class history {
public:
  explicit history(history_options opts);
  ~history();

  history(const history&) = delete;
  history& operator=(const history&) = delete;

  /// Continues the history already in `store`: adopts the stock levels of
  /// its SKUs (reservations of orders that never ended stay held) and starts
  /// the clock after its last event.
  caf::error adopt(const storage::event_store& store);

  /// Plans `orders` more orders (stock adjustments included) interleaved with
  /// the orders still in flight. With `finish`, every order in flight ends
  /// within the plan; without, up to `in_flight` orders stay open (the next
  /// plan goes on with them).
  std::vector<planned_event> plan(std::size_t orders, bool finish = true);

  /// Orders planned so far.
  std::uint64_t orders_planned() const noexcept {
    return next_order_;
  }

  /// The SKUs of the catalogue.
  std::vector<std::string> skus() const;

  /// The time of the last planned event.
  std::int64_t now_us() const noexcept {
    return now_;
  }

private:
  struct order_run;
  struct sku_state {
    std::int64_t on_hand = 0;
    /// Reserved units as the planned log has them (a reserve step's events
    /// are emitted together, so a reservation never takes units the log lacks).
    std::int64_t reserved = 0;
  };

  bench::emitted emit(const events::event& ev, events::event_id correlation = {},
                      events::event_id causation = {});
  std::int64_t gap();
  void place();
  void advance(order_run& o);
  bench::step_answer answer_of(order_run& o);
  void adjust_random_sku();
  static actors::saga_policy policy();

  history_options opts_;
  std::mt19937_64 rng_;
  std::int64_t now_;
  std::uint64_t next_id_ = 1;
  std::uint64_t next_order_ = 0;
  std::map<std::string, sku_state> stock_;
  std::vector<std::string> catalogue_;
  std::vector<std::unique_ptr<order_run>> active_;
  /// Where `plan` writes (set while it runs).
  std::vector<planned_event>* out_ = nullptr;
};

/// Appends `events[from, to)` in order, one event per append.
caf::error append_events(storage::event_store& store, const std::vector<planned_event>& events,
                         std::size_t from = 0,
                         std::size_t to = std::numeric_limits<std::size_t>::max());

} // namespace keel::test
