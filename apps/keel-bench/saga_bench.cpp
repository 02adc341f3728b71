// keel-bench sagas: order sagas end to end through the pipeline (orders,
// inventory, payment, shipping, simulated providers) on a durable store,
// with C orders in flight (closed loop) or at a target rate (open loop).

#include <cmath>
#include <cstdio>
#include <iostream>
#include <map>

#include <nlohmann/json.hpp>

#include "bench.hpp"
#include "keel/projections/audit.hpp"
#include "keel/events/error.hpp"
#include "saga_rig.hpp"

namespace keel::bench {

namespace {

struct saga_options {
  std::uint64_t orders = 0;
  std::uint64_t concurrency = 0;
  std::uint64_t skus = 0;
  std::uint32_t lines = 1;
  std::uint64_t seed = 0;
  double rate = 0;
  bool outage = false;
  std::string faults;
  std::string data;
  double timeout_s = 0;
  std::size_t threads = 2;
};

/// What the run measured besides the driver's figures.
struct saga_run {
  drive_figures figures;
  std::int64_t stock_each = 0;
  std::uint64_t setup_events = 0;
  std::uint64_t events = 0;
  double rss_end_mb = 0;
  std::vector<double> rss_by_quarter;
  double outage_at_s = -1;
  std::uint64_t breaker_transitions = 0;
  std::uint64_t bulkhead_rejections = 0;
  std::map<std::string, std::uint64_t> rejections_by_bulkhead;
  std::int64_t redriven = 0;
  std::uint64_t fsync_batches = 0;
  std::uint64_t committed_events = 0;
  double write_ms_per_batch = 0;
  std::string invariants;
  std::uint64_t violations = 0;
  double audit_s = 0;
};

saga_options parse_sagas(int argc, char** argv) {
  auto a = parse(argc, argv, 2,
                 {"--orders", "--concurrency", "--skus", "--faults", "--data", "--lines", "--seed",
                  "--rate", "--timeout", "--threads"},
                 {});
  saga_options o;
  o.orders = std::max<std::uint64_t>(1, a.number("--orders", 100'000));
  o.concurrency = std::max<std::uint64_t>(1, a.number("--concurrency", 256));
  o.skus = std::max<std::uint64_t>(1, a.number("--skus", 1000));
  auto lines = a.number("--lines", 1);
  if (lines < 1 || lines > events::max_order_lines) {
    std::cerr << "keel-bench: --lines must be 1..100\n";
    std::exit(2);
  }
  o.lines = static_cast<std::uint32_t>(lines);
  o.seed = a.number("--seed", 42);
  o.threads = std::max<std::uint64_t>(1, a.number("--threads", 2));
  o.rate = static_cast<double>(a.number("--rate", 0));
  o.faults = a.text("--faults", "none");
  if (o.faults != "none" && o.faults != "payment-outage") {
    std::cerr << "keel-bench: --faults must be none or payment-outage\n";
    std::exit(2);
  }
  o.outage = o.faults == "payment-outage";
  o.data = a.text("--data", "");
  o.timeout_s = static_cast<double>(a.number("--timeout", 120 + o.orders / 200));
  return o;
}

double ms(actors::duration d) {
  return std::chrono::duration<double, std::milli>(d).count();
}

void print_settings(const saga_options& o, const saga_rig& rig, const rig_settings& settings,
                    std::int64_t stock_each) {
  auto& c = rig.config();
  actors::provider_faults f;
  std::printf("sagas: %llu orders, %llu in flight at most, %s, %llu SKUs, %u line(s) per order, "
              "faults %s, seed %llu\n",
              static_cast<unsigned long long>(o.orders),
              static_cast<unsigned long long>(o.concurrency),
              o.rate > 0 ? ("open loop at " + std::to_string(static_cast<long>(o.rate))
                            + " orders/s").c_str()
                         : "closed loop",
              static_cast<unsigned long long>(o.skus), o.lines, o.faults.c_str(),
              static_cast<unsigned long long>(o.seed));
  std::printf("  store %s, durability sync (one fsync per group-commit batch); asynchronous "
              "appends; %zu scheduler threads\n",
              rig.path().c_str(), settings.threads);
  std::printf("  stock: %lld units per SKU (2 x an even spread of every line at %u units, + 100)\n",
              static_cast<long long>(stock_each), max_units_per_line);
  std::printf("  providers: latency log-normal, median %.1f ms, p99 %.1f ms, no errors; "
              "bulkheads: gateway %zu, carrier %zu\n",
              ms(f.latency_median), ms(f.latency_p99), c.gateway_capacity, c.carrier_capacity);
  std::printf("  provider breakers: open at %u failures in %u calls, wait in open %.1f s, %u trial "
              "calls; payment retry from %.0f ms x%.1f (jitter %.0f%%), at most %u attempts\n",
              c.provider_breaker.failure_threshold, c.provider_breaker.window_size,
              ms(c.provider_breaker.wait_in_open) / 1000, c.provider_breaker.permitted_half_open_calls,
              ms(c.payment_retry.initial), c.payment_retry.multiplier,
              c.payment_retry.jitter * 100, c.saga.max_payment_attempts);
  if (o.outage)
    std::printf("  fault: after %llu orders were placed, both gateways fail every call for 3 s\n",
                static_cast<unsigned long long>(std::max<std::uint64_t>(1, o.orders / 5)));
  std::fflush(stdout);
}

drive_plan make_plan(const saga_options& o, saga_rig& rig, saga_run& run, double& start_s) {
  drive_plan plan;
  plan.orders = o.orders;
  plan.concurrency = o.concurrency;
  plan.rate = o.rate;
  plan.mix.prefix = rig.fresh_prefix("o");
  plan.mix.skus = o.skus;
  plan.mix.lines = o.lines;
  plan.mix.seed = o.seed;
  for (std::uint64_t q = 1; q <= 4; ++q)
    plan.at_terminal.emplace_back((o.orders * q + 3) / 4,
                                  [&run] { run.rss_by_quarter.push_back(rss_mb()); });
  if (o.outage)
    plan.at_placed.emplace_back(std::max<std::uint64_t>(1, o.orders / 5), [&rig, &run, &start_s] {
      rig.payment_outage(std::chrono::seconds(3));
      run.outage_at_s = seconds_now() - start_s;
    });
  return plan;
}

void run_audit(saga_rig& rig, saga_run& run) {
  auto t0 = seconds_now();
  projections::audit_options audit_opts;
  audit_opts.require_terminal = true;
  auto rep = projections::audit(rig.store(), audit_opts);
  run.audit_s = seconds_now() - t0;
  if (!rep) {
    run.invariants = "audit failed: " + describe(rep.error());
    run.violations = 1;
    return;
  }
  run.violations = rep->violation_count();
  run.invariants = rep->ok() ? "ok"
                             : std::to_string(run.violations) + " violations, first: "
                                 + rep->violations.front().to_string();
}

void drive(const saga_options& o, saga_rig& rig, saga_run& run) {
  double start_s = 0;
  auto d = rig.launch(make_plan(o, rig, run, start_s));
  start_s = seconds_now();
  d->start();
  rig.await(*d, saga_driver::until::all_terminal, o.timeout_s, "sagas");
  run.figures = d->figures();
  run.rss_end_mb = rss_mb();
  run.events = rig.store().last_position() - run.setup_events;
  run.breaker_transitions = rig.breaker_transitions();
  run.bulkhead_rejections = rig.bulkhead_rejections();
  run.rejections_by_bulkhead = rig.bulkhead_rejections_by_name();
  run.redriven = rig.value("retry_queue.redriven");
  auto stats = rig.store().stats();
  run.fsync_batches = stats.batches;
  run.committed_events = stats.events;
  run.write_ms_per_batch = stats.batches ? static_cast<double>(stats.write_ns) / 1e6
                                             / static_cast<double>(stats.batches)
                                         : 0.0;
  if (run.figures.terminal() != o.orders)
    rig.fail("only " + std::to_string(run.figures.terminal()) + " of "
             + std::to_string(o.orders) + " orders terminal");
}

void print_resources(const saga_run& run) {
  std::printf("  rss %.0f MB at the end; after each 25%% of orders:", run.rss_end_mb);
  for (auto x : run.rss_by_quarter)
    std::printf(" %.0f", x);
  std::printf(" MB\n  breaker transitions %llu, bulkhead rejections %llu",
              static_cast<unsigned long long>(run.breaker_transitions),
              static_cast<unsigned long long>(run.bulkhead_rejections));
  for (auto& [name, n] : run.rejections_by_bulkhead)
    std::printf(" (%s %llu)", name.c_str(), static_cast<unsigned long long>(n));
  std::printf("\n");
}

void print_summary(const saga_options& o, const saga_run& run) {
  auto& f = run.figures;
  std::printf("  %llu sagas in %.2f s: %.0f sagas/s (completed %llu, rejected %llu, cancelled "
              "%llu)\n",
              static_cast<unsigned long long>(f.terminal()), f.wall_s, f.sagas_per_s(),
              static_cast<unsigned long long>(f.completed),
              static_cast<unsigned long long>(f.rejected),
              static_cast<unsigned long long>(f.cancelled));
  std::printf("  placed -> terminal: p50 %.1f ms, p99 %.1f ms, p99.9 %.1f ms, max %.1f ms "
              "(order %s)\n",
              f.latency_ms(50), f.latency_ms(99), f.latency_ms(99.9), f.latency_ms(100),
              f.slowest_order.c_str());
  if (run.outage_at_s >= 0)
    std::printf("  outage injected %.2f s into the run\n", run.outage_at_s);
  std::printf("  parked orders %llu (parks %llu), re-driven %lld, place_order retries after "
              "overloaded %llu\n",
              static_cast<unsigned long long>(f.parked_orders),
              static_cast<unsigned long long>(f.parks), static_cast<long long>(run.redriven),
              static_cast<unsigned long long>(f.place_retries));
  std::printf("  events per saga %.2f (%llu events after the %llu of the store and its stock; "
              "%llu fsync batches, %.1f events and %.2f ms of WAL write + fsync + memtable each)\n",
              static_cast<double>(run.events) / static_cast<double>(o.orders),
              static_cast<unsigned long long>(run.events),
              static_cast<unsigned long long>(run.setup_events),
              static_cast<unsigned long long>(run.fsync_batches),
              run.fsync_batches ? static_cast<double>(run.committed_events)
                                    / static_cast<double>(run.fsync_batches)
                                : 0.0,
              run.write_ms_per_batch);
  print_resources(run);
  if (f.duplicate_reports > 0)
    std::printf("  WARNING: %llu duplicate terminal reports from on_finished\n",
                static_cast<unsigned long long>(f.duplicate_reports));
  std::printf("  invariants: %s (audit in %.1f s)\n", run.invariants.c_str(), run.audit_s);
}

nlohmann::json to_json(const saga_options& o, const saga_run& run) {
  auto& f = run.figures;
  return {{"bench", "sagas"},
          {"orders", o.orders},
          {"concurrency", o.concurrency},
          {"rate", o.rate},
          {"skus", o.skus},
          {"lines", o.lines},
          {"seed", o.seed},
          {"faults", o.faults},
          {"sagas_per_s", f.sagas_per_s()},
          {"wall_s", f.wall_s},
          {"p50_ms", f.latency_ms(50)},
          {"p99_ms", f.latency_ms(99)},
          {"p999_ms", f.latency_ms(99.9)},
          {"max_ms", f.latency_ms(100)},
          {"completed", f.completed},
          {"rejected", f.rejected},
          {"cancelled", f.cancelled},
          {"parked_orders", f.parked_orders},
          {"redriven", run.redriven},
          {"place_retries", f.place_retries},
          {"events_per_saga", static_cast<double>(run.events) / static_cast<double>(o.orders)},
          {"fsync_batches", run.fsync_batches},
          {"write_ms_per_batch", run.write_ms_per_batch},
          {"rss_mb", run.rss_end_mb},
          {"rss_mb_by_quarter", run.rss_by_quarter},
          {"breaker_transitions", run.breaker_transitions},
          {"bulkhead_rejections", run.bulkhead_rejections},
          {"bulkhead_rejections_by_name", run.rejections_by_bulkhead},
          {"invariants", run.invariants},
          {"invariant_violations", run.violations}};
}

} // namespace

int run_sagas(int argc, char** argv) {
  auto o = parse_sagas(argc, argv);
  rig_settings settings;
  settings.data = o.data;
  settings.seed = o.seed;
  settings.threads = o.threads;
  saga_rig rig{settings};
  saga_run run;
  auto per_sku = (o.orders * o.lines * max_units_per_line + o.skus - 1) / o.skus;
  run.stock_each = static_cast<std::int64_t>(2 * per_sku + 100);
  print_settings(o, rig, settings, run.stock_each);
  if (auto err = rig.set_stock(1, o.skus, run.stock_each))
    rig.fail("set_stock: " + describe(err));
  run.setup_events = rig.store().last_position();
  drive(o, rig, run);
  run_audit(rig, run);
  print_summary(o, run);
  std::fflush(stdout);
  std::cout << to_json(o, run).dump() << std::endl;
  return run.violations == 0 ? 0 : 1;
}

} // namespace keel::bench
