// keel-crash-pipeline: the order pipeline as a child process for the crash
// tests (crash_pipeline_tests.cpp), which SIGKILL it at random moments.
//
//   keel-crash-pipeline --data DIR --seed S --load N
//     Starts the pipeline on the store at DIR with injected provider faults,
//     tops up ~20 SKUs with limited stock (so orders contend and some are
//     rejected), keeps N place_orders in flight, cancels some orders shortly
//     after they were placed, and prints `ack <order id>` for every
//     place_order answered successfully (order_placed is durable). Runs until
//     killed (or for at most `load_limit`, so a lost parent leaves no orphan).
//   keel-crash-pipeline --data DIR --seed S --recover
//     Starts the pipeline on the existing store (re-driving every
//     non-terminal saga), without faults, waits until every order stream is
//     terminal and prints `recovered <orders> redriven <r> parked <p>`.
//     Exit 1 when some order is still in flight after `recover_timeout`.
//
// Every random choice comes from the seed. stdout carries only the lines
// above, each written with one ::write (shorter than PIPE_BUF), so the parent
// sees every acknowledgement the moment it is given and lines never interleave.

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "engine.hpp"
#include "keel/actors/messages.hpp"
#include "keel/actors/pipeline.hpp"
#include "keel/events/error.hpp"
#include "keel/storage/event_store.hpp"

using namespace std::chrono_literals;
using namespace keel;

namespace {

constexpr int sku_count = 20;
constexpr auto load_limit = 120s;
constexpr auto recover_timeout = 60s;
constexpr auto poll_interval = 100ms;
/// Share of acknowledged orders the driver cancels, and the longest delay
/// between the acknowledgement and the cancel.
constexpr double cancel_rate = 0.1;
constexpr int cancel_delay_max_ms = 30;

using cancel_atom = caf::atom_constant<caf::atom("cancel")>;
using next_atom = caf::atom_constant<caf::atom("next")>;

struct args {
  std::string data;
  std::uint64_t seed = 0;
  std::size_t load = 0;
  bool recover = false;
};

[[noreturn]] void usage(const char* msg) {
  std::fprintf(stderr,
               "keel-crash-pipeline: %s\n"
               "usage: keel-crash-pipeline --data DIR --seed S (--load N | --recover)\n",
               msg);
  std::exit(2);
}

args parse(int argc, char** argv) {
  args a;
  for (int i = 1; i < argc; ++i) {
    std::string opt = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        usage((opt + " needs a value").c_str());
      return argv[++i];
    };
    if (opt == "--data")
      a.data = value();
    else if (opt == "--seed")
      a.seed = std::stoull(value());
    else if (opt == "--load")
      a.load = std::stoull(value());
    else if (opt == "--recover")
      a.recover = true;
    else
      usage(("unknown option " + opt).c_str());
  }
  if (a.data.empty() || a.recover == (a.load > 0))
    usage("need --data and exactly one of --load N (N > 0) or --recover");
  return a;
}

/// Writes `line` to stdout in one system call.
void emit(const std::string& line) {
  if (::write(STDOUT_FILENO, line.data(), line.size()) != static_cast<ssize_t>(line.size()))
    std::_Exit(4); // the parent is gone
}

std::string sku(int i) {
  return "SKU-" + std::to_string(i);
}

/// The same settings in both modes, so the saga policy that folds the streams
/// is the one that wrote them. Parked payments come back within half a second
/// (the production backoff starts at 1 s and would outlast a test run).
runtime::engine_config config(const args& a) {
  runtime::engine_config c;
  c.store.path = a.data;
  c.store.durable = storage::durability::sync;
  c.threads = 2;
  c.pipeline.mode = actors::append_mode::asynchronous;
  c.pipeline.seed = a.seed;
  c.pipeline.payment_retry = actors::backoff_policy{20ms, 500ms, 2.0, 0.2};
  c.pipeline.retry_tick = 20ms;
  return c;
}

/// Faults of the load phase: a flaky primary gateway (errors and a few
/// hung calls), a slightly flaky secondary (so some payments park), carriers
/// that decline now and then, and some latency everywhere.
void inject_faults(actors::pipeline& p) {
  for (auto* name : {"gw-primary", "gw-secondary", "carrier-a", "carrier-b"}) {
    auto f = p.simulator(name).faults();
    f.latency_median = 2ms;
    f.latency_p99 = 25ms;
    p.simulator(name).faults(f);
  }
  auto f = p.simulator("gw-primary").faults();
  f.error_rate = 0.2;
  f.hang_rate = 0.005;
  p.simulator("gw-primary").faults(f);
  f = p.simulator("gw-secondary").faults();
  f.error_rate = 0.1;
  f.decline_rate = 0.03;
  p.simulator("gw-secondary").faults(f);
  for (const auto& name : p.carriers()) {
    f = p.simulator(name).faults();
    f.decline_rate = 0.05;
    p.simulator(name).faults(f);
  }
}

/// Sets every SKU to what is reserved now plus 100..300 available units (SKU
/// 0: 0..3, a nearly sold-out item, so rejections happen at any speed), so a
/// store crashed many times keeps some stock without ever going below its
/// reservations (set_stock refuses that; a reservation racing in between
/// makes us ask again).
void top_up_stock(caf::actor_system& sys, actors::pipeline& p, std::mt19937_64& rng) {
  caf::scoped_actor self{sys};
  for (int i = 0; i < sku_count; ++i) {
    auto available = i == 0 ? static_cast<std::int64_t>(rng() % 4)
                            : 100 + static_cast<std::int64_t>(rng() % 201);
    for (int attempt = 0; attempt < 5; ++attempt) {
      std::int64_t reserved = -1;
      self->request(p.inventory(), 10s, actors::get_atom::value, sku(i))
        .receive([&](actors::stock_reply& r) { reserved = r.reserved; }, [](caf::error&) {});
      if (reserved < 0)
        continue;
      bool ok = false;
      self->request(p.inventory(), 10s, events::set_stock{sku(i), reserved + available})
        .receive([&](actors::stock_reply&) { ok = true; }, [](caf::error&) {});
      if (ok)
        break;
    }
  }
}

// -- the load driver -----------------------------------------------------------

struct driver_state {
  caf::actor orders;
  std::mt19937_64 rng;
  std::string prefix;
  std::uint64_t next = 0;
  std::uint64_t errors = 0;
  static inline const char* name = "keel.crash_driver";
};

using driver_actor = caf::stateful_actor<driver_state>;

events::place_order make_order(driver_state& s) {
  events::place_order cmd;
  cmd.order_id = s.prefix + std::to_string(s.next++);
  cmd.customer_id = "customer-" + std::to_string(s.rng() % 50);
  auto lines = 1 + s.rng() % 3;
  for (std::uint64_t i = 0; i < lines; ++i)
    cmd.lines.push_back({sku(static_cast<int>(s.rng() % sku_count)),
                         static_cast<std::uint32_t>(1 + s.rng() % 3),
                         static_cast<std::int64_t>(100 + s.rng() % 5000)});
  cmd.currency = "EUR";
  cmd.shipping_address = {"Ada Lovelace", "12 Analytical St", "London", "N1 9GU", "GB"};
  cmd.premium = s.rng() % 10 == 0;
  return cmd;
}

/// Places one order; its answer places the next, so the number in flight stays put.
void place_next(driver_actor* self) {
  auto cmd = make_order(self->state);
  auto id = cmd.order_id;
  self->request(self->state.orders, 30s, std::move(cmd))
    .then(
      [self, id](actors::order_view&) {
        emit("ack " + id + "\n");
        auto& s = self->state;
        if (std::uniform_real_distribution<double>{}(s.rng) < cancel_rate)
          self->delayed_send(self, std::chrono::milliseconds(s.rng() % (cancel_delay_max_ms + 1)),
                             cancel_atom::value, id);
        place_next(self);
      },
      [self, id](caf::error& err) {
        // Not acknowledged: the order may or may not exist; no claim is made.
        if (self->state.errors++ < 5)
          std::fprintf(stderr, "keel-crash-pipeline: place %s: %s\n", id.c_str(),
                       describe(err).c_str());
        self->delayed_send(self, 5ms, next_atom::value);
      });
}

caf::behavior driver(driver_actor* self, caf::actor orders, std::uint64_t seed,
                     std::size_t in_flight) {
  auto& s = self->state;
  s.orders = std::move(orders);
  s.rng.seed(seed ^ 0x9e3779b97f4a7c15ULL);
  s.prefix = "s" + std::to_string(seed) + "-";
  for (std::size_t i = 0; i < in_flight; ++i)
    place_next(self);
  return {
    [self](next_atom) { place_next(self); },
    [self](cancel_atom, const std::string& id) {
      // not_cancellable (shipped or finished already) is a normal answer.
      self->request(self->state.orders, 30s, events::cancel_order{id, "customer"})
        .then([](actors::order_view&) {}, [](caf::error&) {});
    },
  };
}

// -- modes -------------------------------------------------------------------

int run_load(runtime::engine& e, const args& a) {
  auto& p = e.pipeline();
  inject_faults(p);
  std::mt19937_64 rng{a.seed};
  top_up_stock(e.system(), p, rng);
  emit("loading\n"); // the parent counts its kill moment from here
  e.system().spawn(driver, p.orders(), a.seed, a.load);
  std::this_thread::sleep_for(load_limit);
  std::fprintf(stderr, "keel-crash-pipeline: not killed within %lld s\n",
               static_cast<long long>(load_limit.count()));
  std::_Exit(3);
}

/// The orders not terminal yet, with their status. Terminal is final, so
/// after the first scan of the store (`pending` null) only `pending` is read.
using unfinished_orders = std::map<std::string, actors::order_status>;

caf::expected<unfinished_orders> non_terminal(const storage::event_store& store,
                                              const unfinished_orders* pending) {
  std::vector<std::string> ids;
  if (pending) {
    for (auto& kvp : *pending)
      ids.push_back(kvp.first);
  } else {
    std::string after;
    for (;;) {
      auto page = store.list_streams("order-", 1000, after);
      if (!page)
        return std::move(page.error());
      if (page->empty())
        break;
      for (auto& info : *page)
        ids.push_back(info.stream.substr(6));
      after = page->back().stream;
    }
  }
  unfinished_orders result;
  for (auto& id : ids) {
    auto st = actors::load_order(store, id);
    if (!st)
      return std::move(st.error());
    if (!actors::is_terminal(st->status))
      result.emplace(id, st->status);
  }
  return result;
}

int run_recover(runtime::engine& e) {
  auto& p = e.pipeline();
  for (auto* name : {"gw-primary", "gw-secondary", "carrier-a", "carrier-b"})
    p.simulator(name).faults(actors::provider_faults{});
  auto deadline = std::chrono::steady_clock::now() + recover_timeout;
  auto left = non_terminal(e.store(), nullptr);
  while (left && !left->empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(poll_interval);
    left = non_terminal(e.store(), &*left);
  }
  if (!left) {
    std::fprintf(stderr, "keel-crash-pipeline: %s\n", describe(left.error()).c_str());
    return 2;
  }
  auto rep = p.recovered();
  e.stop();
  if (!left->empty()) {
    std::string line = "timeout: " + std::to_string(left->size()) + " orders not terminal:";
    int shown = 0;
    for (auto i = left->begin(); i != left->end() && shown < 10; ++i, ++shown)
      line += " " + i->first + "=" + events::to_string(i->second);
    emit(line + "\n");
    return 1;
  }
  emit("recovered " + std::to_string(rep.orders) + " redriven " + std::to_string(rep.redriven)
       + " parked " + std::to_string(rep.parked) + "\n");
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  auto a = parse(argc, argv);
  auto opened = runtime::engine::open(config(a));
  caf::error err = opened ? (*opened)->start() : opened.error();
  if (err) {
    std::fprintf(stderr, "keel-crash-pipeline: start: %s\n", describe(err).c_str());
    return 2;
  }
  return a.recover ? run_recover(**opened) : run_load(**opened, a);
}
