#include "saga_driver.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include "measure.hpp"
#include "keel/actors/messages.hpp"
#include "keel/events/error.hpp"

namespace keel::bench {

/// State shared by the driver actor and the threads that wait for it.
struct driver_shared {
  drive_counters counters;
  std::mutex mtx;
  std::condition_variable cv;
  // Guarded by mtx.
  bool all_placed = false;
  bool all_terminal = false;
  std::string failure;
  double first_place_s = 0;
  double last_terminal_s = 0;
  std::vector<double> latencies_ms;
  std::string slowest_order;
};

namespace {

using start_atom = caf::atom_constant<caf::atom("start")>;
using retry_atom = caf::atom_constant<caf::atom("retry")>;
using finished_atom = caf::atom_constant<caf::atom("finished")>;

/// SplitMix64: cheap, good enough for picking SKUs and customers.
struct splitmix {
  std::uint64_t x;
  std::uint64_t operator()() {
    std::uint64_t z = (x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
};

std::string order_id(const std::string& prefix, std::uint64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "-%08llu", static_cast<unsigned long long>(n + 1));
  return prefix + buf;
}

/// The order number of `id`, or ~0 when `id` is not an order of `prefix`.
std::uint64_t index_of(const std::string& prefix, const std::string& id) {
  constexpr auto none = ~std::uint64_t{0};
  if (id.size() <= prefix.size() + 1 || id.compare(0, prefix.size(), prefix) != 0
      || id[prefix.size()] != '-')
    return none;
  auto digits = id.c_str() + prefix.size() + 1;
  char* end = nullptr;
  auto n = std::strtoull(digits, &end, 10);
  return *end != '\0' || n == 0 ? none : n - 1;
}

enum class slot : std::uint8_t { unplaced, in_flight, parked, terminal };

struct driver_state {
  drive_plan plan;
  std::shared_ptr<driver_shared> out;
  caf::actor orders;
  std::vector<slot> slots;
  std::vector<double> latencies_ms;
  std::string slowest_order;
  double slowest_ms = -1;
  std::uint64_t next = 0;
  std::uint64_t in_flight = 0;
  std::uint64_t terminal = 0;
  double start_s = 0;
  std::size_t placed_hooks = 0;
  std::size_t terminal_hooks = 0;
  static inline const char* name = "keel.bench.driver";
};

using driver_actor = caf::stateful_actor<driver_state>;

void fail(driver_actor* self, std::string why) {
  auto& out = *self->state.out;
  {
    std::lock_guard<std::mutex> guard{out.mtx};
    if (out.failure.empty())
      out.failure = std::move(why);
  }
  out.cv.notify_all();
}

void run_hooks(std::vector<std::pair<std::uint64_t, drive_plan::hook>>& hooks, std::size_t& next,
               std::uint64_t count) {
  while (next < hooks.size() && hooks[next].first <= count)
    hooks[next++].second();
}

void place(driver_actor* self, std::uint64_t n) {
  auto& s = self->state;
  self->request(s.orders, caf::infinite, make_order(s.plan.mix, n))
    .then(
      [self](actors::order_view& v) {
        if (!v.created)
          fail(self, "order " + v.order_id + " existed already (" + v.status
                       + "): use a fresh store or another prefix");
      },
      [self, n](caf::error& err) {
        if (code_of(err) == errc::overloaded) {
          self->state.out->counters.place_retries++;
          self->delayed_send(self, std::chrono::milliseconds(20), retry_atom::value, n);
          return;
        }
        fail(self, "place_order " + order_id(self->state.plan.mix.prefix, n) + ": "
                     + describe(err));
      });
}

void top_up(driver_actor* self) {
  auto& s = self->state;
  auto limit = s.plan.orders;
  if (s.plan.rate > 0) {
    auto due = static_cast<std::uint64_t>((seconds_now() - s.start_s) * s.plan.rate) + 1;
    limit = std::min(limit, due);
  }
  if (s.next >= limit || s.in_flight >= s.plan.concurrency)
    return;
  while (s.next < limit && s.in_flight < s.plan.concurrency) {
    auto n = s.next++;
    s.slots[n] = slot::in_flight;
    ++s.in_flight;
    s.out->counters.placed++;
    place(self, n);
    run_hooks(s.plan.at_placed, s.placed_hooks, s.next);
  }
  if (s.next == s.plan.orders) {
    {
      std::lock_guard<std::mutex> guard{s.out->mtx};
      s.out->all_placed = true;
    }
    s.out->cv.notify_all();
  }
}

/// Counts a terminal report; false when the order was terminal already.
bool count_terminal(driver_actor* self, std::uint64_t n, actors::order_status status) {
  auto& s = self->state;
  auto& c = s.out->counters;
  if (s.slots[n] == slot::terminal) {
    c.duplicate_reports++;
    return false;
  }
  if (s.slots[n] == slot::parked)
    c.parked_now--;
  s.slots[n] = slot::terminal;
  --s.in_flight;
  ++s.terminal;
  if (status == actors::order_status::completed)
    c.completed++;
  else if (status == actors::order_status::rejected)
    c.rejected++;
  else
    c.cancelled++;
  return true;
}

void finish_run(driver_actor* self) {
  auto& s = self->state;
  auto& out = *s.out;
  std::sort(s.latencies_ms.begin(), s.latencies_ms.end());
  {
    std::lock_guard<std::mutex> guard{out.mtx};
    out.latencies_ms = std::move(s.latencies_ms);
    out.slowest_order = s.slowest_order;
    out.last_terminal_s = seconds_now();
    out.all_terminal = true;
  }
  out.cv.notify_all();
}

void on_finished(driver_actor* self, const std::string& id, std::uint8_t code,
                 std::int64_t placed_us, std::int64_t finished_us) {
  auto& s = self->state;
  auto n = index_of(s.plan.mix.prefix, id);
  if (n >= s.slots.size() || s.slots[n] == slot::unplaced)
    return; // not an order of this run
  auto status = static_cast<actors::order_status>(code);
  auto& c = s.out->counters;
  if (status == actors::order_status::pending_payment) {
    c.parks++;
    if (s.slots[n] == slot::in_flight) {
      c.parked_orders++;
      c.parked_now++;
      s.slots[n] = slot::parked;
    }
    return;
  }
  if (!actors::is_terminal(status) || !count_terminal(self, n, status))
    return;
  auto latency_ms = static_cast<double>(finished_us - placed_us) / 1000.0;
  s.latencies_ms.push_back(latency_ms);
  if (latency_ms > s.slowest_ms) {
    s.slowest_ms = latency_ms;
    s.slowest_order = id;
  }
  run_hooks(s.plan.at_terminal, s.terminal_hooks, s.terminal);
  if (s.terminal == s.plan.orders)
    finish_run(self);
  else
    top_up(self);
}

caf::behavior driver_fn(driver_actor* self, drive_plan plan, std::shared_ptr<driver_shared> out,
                        caf::actor orders) {
  auto& s = self->state;
  auto by_count = [](const auto& x, const auto& y) { return x.first < y.first; };
  std::stable_sort(plan.at_placed.begin(), plan.at_placed.end(), by_count);
  std::stable_sort(plan.at_terminal.begin(), plan.at_terminal.end(), by_count);
  s.plan = std::move(plan);
  s.out = std::move(out);
  s.orders = std::move(orders);
  s.slots.assign(s.plan.orders, slot::unplaced);
  s.latencies_ms.reserve(s.plan.orders);
  return {
    [self](start_atom) {
      auto& s = self->state;
      s.start_s = seconds_now();
      {
        std::lock_guard<std::mutex> guard{s.out->mtx};
        s.out->first_place_s = s.start_s;
      }
      if (s.plan.orders == 0)
        return finish_run(self);
      top_up(self);
      if (s.plan.rate > 0)
        self->send(self, actors::tick_atom::value);
    },
    [self](actors::tick_atom) {
      top_up(self);
      if (self->state.next < self->state.plan.orders)
        self->delayed_send(self, std::chrono::milliseconds(1), actors::tick_atom::value);
    },
    [self](retry_atom, std::uint64_t n) { place(self, n); },
    [self](finished_atom, const std::string& id, std::uint8_t status, std::int64_t placed_us,
           std::int64_t finished_us) { on_finished(self, id, status, placed_us, finished_us); },
  };
}

} // namespace

std::string sku_name(std::uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "SKU-%05llu", static_cast<unsigned long long>(i));
  return buf;
}

events::place_order make_order(const order_mix& mix, std::uint64_t n) {
  splitmix rng{mix.seed * 0x2545f4914f6cdd1dULL + n};
  events::place_order cmd;
  cmd.order_id = order_id(mix.prefix, n);
  cmd.customer_id = "customer-" + std::to_string(1 + rng() % 100'000);
  auto skus = std::max<std::uint64_t>(1, mix.skus);
  auto hot = std::min(mix.hot_skus, skus);
  for (std::uint32_t i = 0; i < std::max<std::uint32_t>(1, mix.lines); ++i) {
    auto pick_hot = hot > 0 && rng() % 100 < mix.hot_percent;
    auto sku = pick_hot ? 1 + rng() % hot : 1 + rng() % skus;
    auto units = static_cast<std::uint32_t>(1 + rng() % max_units_per_line);
    cmd.lines.push_back({sku_name(sku), units, static_cast<std::int64_t>(199 + rng() % 20'000)});
  }
  cmd.currency = "EUR";
  cmd.shipping_address = {"Ada Lovelace", "12 Analytical Row", "London", "N1 9GU", "GB"};
  cmd.premium = rng() % 100 < mix.premium_percent;
  return cmd;
}

double drive_figures::latency_ms(double p) const {
  return sorted_percentile(latencies_ms, p); // sorted by finish_run
}

saga_driver::saga_driver(caf::actor_system& sys, caf::actor orders, drive_plan plan)
  : shared_(std::make_shared<driver_shared>()) {
  actor_ = sys.spawn(driver_fn, std::move(plan), shared_, std::move(orders));
}

saga_driver::~saga_driver() {
  caf::anon_send_exit(actor_, caf::exit_reason::user_shutdown);
}

void saga_driver::start() {
  caf::anon_send(actor_, start_atom::value);
}

void saga_driver::report(const actors::finished_order& x) const {
  caf::anon_send(actor_, finished_atom::value, x.order_id, static_cast<std::uint8_t>(x.status),
                 x.placed_at_us, x.finished_at_us);
}

std::string saga_driver::wait(until what, double timeout_s, double stall_s,
                              const std::function<void()>& tick) const {
  auto& c = shared_->counters;
  auto progress = [&] { return what == until::all_placed ? c.placed.load() : c.terminal(); };
  auto start = seconds_now();
  auto last_change = start;
  auto last_seen = progress();
  std::unique_lock<std::mutex> guard{shared_->mtx};
  for (;;) {
    if (!shared_->failure.empty())
      return shared_->failure;
    if (what == until::all_placed ? shared_->all_placed : shared_->all_terminal)
      return {};
    auto now = seconds_now();
    if (now - start > timeout_s)
      return "timed out after " + std::to_string(static_cast<int>(timeout_s)) + " s";
    if (auto seen = progress(); seen != last_seen) {
      last_seen = seen;
      last_change = now;
    } else if (now - last_change > stall_s) {
      return "no progress for " + std::to_string(static_cast<int>(stall_s)) + " s";
    }
    shared_->cv.wait_for(guard, std::chrono::seconds(1));
    if (tick) {
      guard.unlock();
      tick();
      guard.lock();
    }
  }
}

const drive_counters& saga_driver::counters() const noexcept {
  return shared_->counters;
}

drive_figures saga_driver::figures() const {
  auto& c = shared_->counters;
  drive_figures f;
  std::lock_guard<std::mutex> guard{shared_->mtx};
  f.orders = c.placed;
  f.completed = c.completed;
  f.rejected = c.rejected;
  f.cancelled = c.cancelled;
  f.parked_orders = c.parked_orders;
  f.parks = c.parks;
  f.place_retries = c.place_retries;
  f.duplicate_reports = c.duplicate_reports;
  f.wall_s = shared_->all_terminal ? shared_->last_terminal_s - shared_->first_place_s : 0.0;
  f.latencies_ms = shared_->latencies_ms;
  f.slowest_order = shared_->slowest_order;
  return f;
}

} // namespace keel::bench
