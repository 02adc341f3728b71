// keel-bench projections: how fast the read side rebuilds from the global log,
// and how far it lags behind live saga traffic.
//
//   1. store: N events of realistic order traffic (or a store given with
//      --data that already holds events, e.g. from `keel-bench sagas --data`);
//   2. build: the projection runner's first pass over the log (generation 1);
//   3. rebuild: `rebuild_all` (shadow generations filled from position 1 while
//      the serving ones keep serving, then swapped) --runs times, median;
//   4. live lag: the saga pipeline on the same store runs closed loop to find
//      its maximum rate (projections off), then open loop at half that rate
//      with the projections following; the runner's applied-lag samples
//      (event time -> commit of the read model) give p50/p99/max.

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <nlohmann/json.hpp>

#include "bench.hpp"
#include "keel/events/error.hpp"
#include "keel/projections/runner.hpp"
#include "saga_rig.hpp"
#include "traffic.hpp"

namespace keel::bench {

namespace {

struct projection_options {
  std::uint64_t events = 0;
  std::string data;
  std::uint64_t runs = 3;
  std::uint64_t seed = 11;
  std::uint64_t lag_orders = 0;
  std::uint64_t saga_rate = 0;
  bool no_lag = false;
  std::uint64_t batch = 0;
};

projection_options parse_projections(int argc, char** argv) {
  auto a = parse(argc, argv, 2,
                 {"--events", "--data", "--runs", "--seed", "--lag-orders", "--saga-rate", "--batch"},
                 {"--no-lag"});
  projection_options o;
  o.events = a.number("--events", 1'000'000);
  o.data = a.text("--data", "");
  o.runs = std::max<std::uint64_t>(1, a.number("--runs", 3));
  o.seed = a.number("--seed", 11);
  o.lag_orders = std::max<std::uint64_t>(1000, a.number("--lag-orders", 30'000));
  o.saga_rate = a.number("--saga-rate", 0);
  o.no_lag = a.flag("--no-lag");
  o.batch = a.number("--batch", projections::runner_options{}.max_batch_events);
  return o;
}

[[noreturn]] void die(const std::string& msg) {
  std::cerr << "keel-bench: " << msg << '\n';
  std::exit(2);
}

std::unique_ptr<storage::event_store> open_writer(const std::string& path,
                                                  storage::durability d) {
  storage::options opts;
  opts.path = path;
  opts.durable = d;
  auto store = storage::event_store::open(opts);
  if (!store)
    die(describe(store.error()));
  return std::move(*store);
}

/// Writes about `events` events of traffic (orders of 12 events on average).
void fill(storage::event_store& store, std::uint64_t events, std::uint64_t seed) {
  auto t0 = seconds_now();
  auto written = write_traffic(store, seed, std::max<std::uint64_t>(1, events / 12));
  if (!written)
    die("writing traffic: " + describe(written.error()));
  std::printf("  wrote %llu events of order traffic in %.1f s\n",
              static_cast<unsigned long long>(store.last_position()), seconds_now() - t0);
}

double wait_caught_up(projections::projection_runner& runner, storage::event_store& store) {
  auto t0 = seconds_now();
  if (!runner.wait_for(store.last_position(), std::chrono::hours(1)))
    die("the projections did not catch up within an hour");
  for (auto& s : runner.status())
    if (s.failure)
      die("projection " + s.name + " stopped: " + s.failure->reason);
  return seconds_now() - t0;
}

struct lag_result {
  double max_rate = 0;
  double rate = 0;
  std::uint64_t orders = 0;
  std::uint64_t events = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
  nlohmann::json per_projection = nlohmann::json::object();
};

lag_result measure_lag(const projection_options& o, const std::string& path) {
  lag_result r;
  rig_settings settings;
  settings.data = path;
  settings.seed = o.seed;
  saga_rig rig{settings};
  auto skus = std::uint64_t{1000};
  auto stock_each = static_cast<std::int64_t>(4 * (o.lag_orders * max_units_per_line / skus) + 100);
  if (auto err = rig.set_stock(1, skus, stock_each))
    rig.fail("set_stock: " + describe(err));
  auto run = [&](std::uint64_t orders, double rate, const std::string& label) {
    drive_plan plan;
    plan.orders = orders;
    plan.concurrency = 256;
    plan.rate = rate;
    plan.mix.prefix = rig.fresh_prefix("p");
    plan.mix.skus = skus;
    plan.mix.seed = o.seed;
    auto d = rig.launch(plan);
    d->start();
    rig.await(*d, saga_driver::until::all_terminal, 600, label);
    return d->figures();
  };
  if (o.saga_rate > 0) {
    r.max_rate = 2.0 * static_cast<double>(o.saga_rate);
  } else {
    std::printf("  live lag: the saga pipeline's maximum rate, closed loop, projections off\n");
    std::fflush(stdout);
    auto f = run(std::max<std::uint64_t>(5000, o.lag_orders / 2), 0, "max rate");
    r.max_rate = f.sagas_per_s();
    std::printf("    %.0f sagas/s\n", r.max_rate);
  }
  r.rate = std::max(1.0, std::floor(r.max_rate / 2));

  projections::runner_options ropts;
  ropts.lag_samples = 1u << 24;
  projections::projection_runner runner{rig.store(), ropts};
  runner.add_standard();
  if (auto err = runner.start())
    rig.fail("starting the projections: " + describe(err));
  wait_caught_up(runner, rig.store());
  runner.reset_lag_samples();
  std::printf("  live lag: %llu orders open loop at %.0f sagas/s (half the maximum) with the "
              "projections following\n",
              static_cast<unsigned long long>(o.lag_orders), r.rate);
  std::fflush(stdout);
  auto before = rig.store().last_position();
  auto f = run(o.lag_orders, r.rate, "lag");
  wait_caught_up(runner, rig.store());
  r.orders = f.terminal();
  r.events = rig.store().last_position() - before;
  for (auto& s : runner.status()) {
    r.per_projection[s.name] = {{"p50_ms", s.applied_lag_p50_ms},
                                {"p99_ms", s.applied_lag_p99_ms},
                                {"max_ms", s.applied_lag_max_ms},
                                {"commits", s.commits},
                                {"events", s.events_applied}};
    r.p50_ms = std::max(r.p50_ms, s.applied_lag_p50_ms);
    r.p99_ms = std::max(r.p99_ms, s.applied_lag_p99_ms);
    r.max_ms = std::max(r.max_ms, s.applied_lag_max_ms);
    std::printf("    %-8s event -> read model: p50 %.1f ms, p99 %.1f ms, max %.1f ms (%llu events, "
                "%llu commits)\n",
                s.name.c_str(), s.applied_lag_p50_ms, s.applied_lag_p99_ms,
                s.applied_lag_max_ms, static_cast<unsigned long long>(s.events_applied),
                static_cast<unsigned long long>(s.commits));
  }
  runner.stop();
  return r;
}

} // namespace

int run_projections(int argc, char** argv) {
  auto o = parse_projections(argc, argv);
  std::unique_ptr<temp_dir> tmp;
  auto path = o.data;
  if (path.empty()) {
    tmp = std::make_unique<temp_dir>("keel-bench-projections");
    path = tmp->path();
  }
  std::printf("projections: store %s\n", path.c_str());
  std::uint64_t events = 0;
  double build_s = 0;
  std::vector<double> rebuild_s;
  {
    auto store = open_writer(path, storage::durability::wal);
    if (store->last_position() == 0)
      fill(*store, o.events, o.seed);
    else
      std::printf("  reusing the %llu events in the store\n",
                  static_cast<unsigned long long>(store->last_position()));
    if (auto err = store->flush())
      die(describe(err));
    events = store->last_position();

    projections::runner_options ropts;
    ropts.max_batch_events = std::max<std::uint64_t>(1, o.batch);
    projections::projection_runner runner{*store, ropts};
    runner.add_standard();
    auto t0 = seconds_now();
    if (auto err = runner.start())
      die("starting the projections: " + describe(err));
    wait_caught_up(runner, *store);
    build_s = seconds_now() - t0;
    std::printf("  build (catch-up from the checkpoints): %.2f s\n", build_s);
    for (std::uint64_t i = 0; i < o.runs; ++i) {
      auto t1 = seconds_now();
      if (auto err = runner.rebuild_all())
        die("rebuild: " + describe(err));
      // Every generation swapped in: the rebuild is complete.
      rebuild_s.push_back(seconds_now() - t1);
      std::printf("  rebuild %llu: %.2f s, %.0f events/s\n", static_cast<unsigned long long>(i + 1),
                  rebuild_s.back(), static_cast<double>(events) / rebuild_s.back());
      std::fflush(stdout);
    }
    for (auto& s : runner.status())
      std::printf("    %-8s generation %u at position %llu\n", s.name.c_str(), s.generation,
                  static_cast<unsigned long long>(s.position));
    runner.stop();
  }
  auto rebuild_median = median(rebuild_s);
  auto rebuild_rate = static_cast<double>(events) / rebuild_median;
  std::printf("  rebuild of all read models (3 projections, %llu events): median %.2f s = %.0f "
              "events/s\n",
              static_cast<unsigned long long>(events), rebuild_median, rebuild_rate);
  lag_result lag;
  if (!o.no_lag)
    lag = measure_lag(o, path);
  nlohmann::json out{{"bench", "projections"},
                     {"events", events},
                     {"build_s", build_s},
                     {"rebuild_s", rebuild_s},
                     {"rebuild_events_per_s", rebuild_rate}};
  if (!o.no_lag) {
    out["saga_max_rate"] = lag.max_rate;
    out["saga_rate"] = lag.rate;
    out["lag_orders"] = lag.orders;
    out["lag_events"] = lag.events;
    out["lag_p50_ms"] = lag.p50_ms;
    out["lag_p99_ms"] = lag.p99_ms;
    out["lag_max_ms"] = lag.max_ms;
    out["lag_by_projection"] = lag.per_projection;
  }
  std::fflush(stdout);
  std::cout << out.dump() << std::endl;
  return 0;
}

} // namespace keel::bench
