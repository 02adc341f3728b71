// keel-bench demo: a short Black Friday through the order pipeline, told in
// plain text: normal load, a spike that sells out the doorbusters, a payment
// outage on both gateways while orders keep coming, and the recovery.

#include <cstdio>
#include <iostream>

#include "bench.hpp"
#include "keel/projections/audit.hpp"
#include "keel/events/error.hpp"
#include "keel/events/event.hpp"
#include "keel/events/streams.hpp"
#include "keel/projections/read_models.hpp"
#include "keel/projections/runner.hpp"
#include "keel/projections/stock_cache.hpp"
#include "keel/storage/append.hpp"
#include "saga_rig.hpp"

namespace keel::bench {

namespace {

constexpr std::uint64_t demo_skus = 200;
constexpr std::uint64_t doorbusters = 5;
constexpr std::int64_t doorbuster_stock = 300;
constexpr double timeout_s = 300;

/// Where a phase began, to report what changed since.
struct phase_mark {
  std::uint64_t position = 0;
  std::int64_t wall_us = 0;
  std::int64_t redriven = 0;
};

phase_mark mark(const saga_rig& rig) {
  return {rig.store().last_position(), storage::now_us(), rig.value("retry_queue.redriven")};
}

void heading(const char* text) {
  std::printf("\n== %s\n", text);
  std::fflush(stdout);
}

drive_plan demo_plan(saga_rig& rig, const char* prefix, std::uint64_t orders,
                     std::uint64_t concurrency, double rate = 0) {
  drive_plan plan;
  plan.orders = orders;
  plan.concurrency = concurrency;
  plan.rate = rate;
  plan.mix.prefix = rig.fresh_prefix(prefix);
  plan.mix.skus = demo_skus;
  plan.mix.lines = 2;
  plan.mix.seed = 2024;
  plan.mix.hot_skus = doorbusters;
  plan.mix.hot_percent = 10;
  return plan;
}

void print_outcomes(const drive_counters& c) {
  std::printf("   outcomes: %llu completed, %llu rejected, %llu cancelled; %llu in flight "
              "(%llu of them parked in pending_payment); %llu orders parked at least once\n",
              static_cast<unsigned long long>(c.completed.load()),
              static_cast<unsigned long long>(c.rejected.load()),
              static_cast<unsigned long long>(c.cancelled.load()),
              static_cast<unsigned long long>(c.placed - c.terminal()),
              static_cast<unsigned long long>(c.parked_now.load()),
              static_cast<unsigned long long>(c.parked_orders.load()));
}

void print_latency(const drive_figures& f) {
  std::printf("   %llu sagas in %.2f s (%.0f/s); placed -> terminal: p50 %.1f ms, p99 %.1f ms\n",
              static_cast<unsigned long long>(f.terminal()), f.wall_s, f.sagas_per_s(),
              f.latency_ms(50), f.latency_ms(99));
}

/// Prints the breaker transitions recorded since `m` (from the store's
/// `$system-breaker-*` streams) and the retry queue's work.
void print_resilience(const saga_rig& rig, const phase_mark& m) {
  auto streams = rig.store().list_streams(keel::events::breaker_prefix);
  std::size_t shown = 0;
  for (auto& info : streams ? *streams : std::vector<storage::stream_info>{}) {
    auto reader = rig.store().read_stream(info.stream);
    while (reader.next()) {
      auto& rec = reader.current();
      if (rec.position <= m.position)
        continue;
      auto ev = rec.decode_payload();
      auto* t = ev ? std::get_if<events::breaker_transitioned>(&*ev) : nullptr;
      if (t == nullptr)
        continue;
      std::printf("   breaker %-13s %-9s -> %-9s at +%.2f s (%s)\n", t->breaker.c_str(),
                  events::to_string(t->from), events::to_string(t->to),
                  static_cast<double>(rec.timestamp_us - m.wall_us) / 1e6, t->reason.c_str());
      ++shown;
    }
  }
  if (shown == 0)
    std::printf("   breakers: no transitions (%s)\n", rig.breaker_summary().c_str());
  std::printf("   retry queue: %lld parked now, %lld re-driven in this phase\n",
              static_cast<long long>(rig.value("retry_queue.depth")),
              static_cast<long long>(rig.value("retry_queue.redriven") - m.redriven));
}

/// Runs a closed-loop phase to the end and reports it.
void closed_phase(saga_rig& rig, const char* title, const char* prefix, std::uint64_t orders,
                  std::uint64_t concurrency) {
  heading(title);
  auto m = mark(rig);
  auto d = rig.launch(demo_plan(rig, prefix, orders, concurrency));
  d->start();
  rig.await(*d, saga_driver::until::all_terminal, timeout_s, prefix);
  print_outcomes(d->counters());
  print_latency(d->figures());
  print_resilience(rig, m);
}

/// Phases 3 and 4: the outage while orders arrive at a steady rate, then
/// the recovery until every order is terminal.
void outage_phases(saga_rig& rig) {
  heading("Phase 3: payment outage. Both gateways fail every call for 3 s while 3,000 orders "
          "arrive at 1,000/s");
  auto m = mark(rig);
  rig.payment_outage(std::chrono::seconds(3));
  auto d = rig.launch(demo_plan(rig, "bf3", 3000, 4096, 1000));
  d->start();
  rig.await(*d, saga_driver::until::all_placed, timeout_s, "bf3");
  std::printf("   all 3,000 orders placed after %.2f s\n",
              static_cast<double>(storage::now_us() - m.wall_us) / 1e6);
  print_outcomes(d->counters());
  print_resilience(rig, m);

  heading("Phase 4: recovery. The breakers half-open, the retry queue re-drives the parked "
          "payments");
  auto m4 = mark(rig);
  rig.await(*d, saga_driver::until::all_terminal, timeout_s, "bf4");
  std::printf("   every order of phase 3 terminal %.2f s after the outage began\n",
              static_cast<double>(storage::now_us() - m.wall_us) / 1e6);
  print_outcomes(d->counters());
  print_latency(d->figures());
  print_resilience(rig, m4);
}

int final_audit(const saga_rig& rig) {
  heading("Audit of the whole store (the invariants of DESIGN section 2)");
  projections::audit_options audit_opts;
  audit_opts.require_terminal = true;
  auto rep = projections::audit(rig.store(), audit_opts);
  if (!rep) {
    std::printf("   audit failed: %s\n", describe(rep.error()).c_str());
    return 1;
  }
  std::printf("   %llu events, %llu orders:", static_cast<unsigned long long>(rep->events),
              static_cast<unsigned long long>(rep->orders));
  for (auto& [outcome, n] : rep->outcomes)
    std::printf(" %s %llu", outcome.c_str(), static_cast<unsigned long long>(n));
  std::printf("\n   invariants: %s\n",
              rep->ok() ? "ok (no oversell, no double charge, every authorization of a "
                          "cancelled order voided, every saga terminal, no gaps)"
                        : (std::to_string(rep->violation_count()) + " violations").c_str());
  for (std::size_t i = 0; i < std::min<std::size_t>(rep->violations.size(), 10); ++i)
    std::printf("   - %s\n", rep->violations[i].to_string().c_str());
  return rep->ok() ? 0 : 1;
}

/// What the read side shows after the run: the projections followed the
/// store live during the whole demo.
void read_side(saga_rig& rig, projections::projection_runner& runner,
               projections::stock_cache& cache) {
  heading("Read side (projections followed the log live during the run)");
  if (!runner.wait_for(rig.store().last_position(), std::chrono::seconds(30)))
    std::printf("   (the projections did not catch up within 30 s)\n");
  for (auto& s : runner.status())
    std::printf("   %-8s %s at position %llu, %llu behind; event -> read model p50 %.1f ms, "
                "p99 %.1f ms\n",
                s.name.c_str(), s.state.c_str(), static_cast<unsigned long long>(s.position),
                static_cast<unsigned long long>(s.lag_events), s.applied_lag_p50_ms,
                s.applied_lag_p99_ms);
  auto today = projections::day_of(storage::now_us());
  if (auto f = projections::figures_of_day(rig.store(), today)) {
    std::printf("   today (%s): placed %llu, completed %llu, rejected %llu, cancelled %llu, "
                "entered pending_payment %llu, conversion %.1f%%\n",
                today.c_str(), static_cast<unsigned long long>(f->placed),
                static_cast<unsigned long long>(f->completed),
                static_cast<unsigned long long>(f->rejected),
                static_cast<unsigned long long>(f->cancelled),
                static_cast<unsigned long long>(f->pending_payment), 100 * f->conversion());
    for (auto& r : f->revenue)
      std::printf("   revenue %s %.2f over %llu orders, average order %.2f\n", r.currency.c_str(),
                  static_cast<double>(r.revenue_cents) / 100,
                  static_cast<unsigned long long>(r.orders),
                  static_cast<double>(r.average_order_cents()) / 100);
  }
  if (auto stats = projections::saga_statistics(rig.store()))
    for (auto& p : *stats)
      std::printf("   saga path %-30s %6llu sagas, p50 %7.1f ms, p99 %7.1f ms, max %7.1f ms\n",
                  p.path.c_str(), static_cast<unsigned long long>(p.count), p.p50_ms, p.p99_ms,
                  p.max_ms);
  if (auto level = cache.get(sku_name(1)))
    std::printf("   stock of doorbuster %s: on hand %lld, reserved %lld, available %lld (cache: "
                "%llu hits, %llu misses)\n",
                level->sku.c_str(), static_cast<long long>(level->on_hand),
                static_cast<long long>(level->reserved),
                static_cast<long long>(level->available()),
                static_cast<unsigned long long>(cache.hits()),
                static_cast<unsigned long long>(cache.misses()));
  if (auto o = projections::find_order(rig.store(), "bf2-00000001")) {
    std::printf("   order %s of %s: %s%s%s, %lld cents, steps:", o->order_id.c_str(),
                o->customer_id.c_str(), o->status.c_str(), o->reason.empty() ? "" : " - ",
                o->reason.c_str(), static_cast<long long>(o->total_cents));
    for (auto& step : o->steps)
      std::printf(" %s +%.1f ms", step.name.c_str(),
                  static_cast<double>(step.at_us - o->placed_us) / 1000.0);
    std::printf("\n");
  }
}

void introduce(saga_rig& rig) {
  auto& c = rig.config();
  std::printf("demo: the order pipeline on a durable store in %s\n", rig.path().c_str());
  std::printf("   %llu SKUs; %llu doorbusters (SKU-00001..SKU-%05llu) with %lld units each get 10%% "
              "of all lines\n",
              static_cast<unsigned long long>(demo_skus),
              static_cast<unsigned long long>(doorbusters),
              static_cast<unsigned long long>(doorbusters),
              static_cast<long long>(doorbuster_stock));
  std::printf("   simulated gateways and carriers: latency median 2 ms, p99 10 ms; 1%% of "
              "payments declined\n");
  std::printf("   gateway bulkhead %zu calls; provider breakers open at %u failures, wait %.1f s "
              "in open; parked payments retried from %.1f s\n",
              c.gateway_capacity, c.provider_breaker.failure_threshold,
              std::chrono::duration<double>(c.provider_breaker.wait_in_open).count(),
              std::chrono::duration<double>(c.payment_retry.initial).count());
}

void prepare(saga_rig& rig) {
  auto err = rig.set_stock(1, doorbusters, doorbuster_stock);
  if (!err)
    err = rig.set_stock(doorbusters + 1, demo_skus - doorbusters, 1'000'000);
  if (err)
    rig.fail("set_stock: " + describe(err));
  for (const auto& name : rig.pipeline().gateways()) {
    auto& gw = rig.pipeline().simulator(name);
    auto f = gw.faults();
    f.decline_rate = 0.01;
    gw.faults(f);
  }
}

} // namespace

int run_demo(int argc, char** argv) {
  auto args = parse(argc, argv, 2, {"--data", "--seed"}, {});
  rig_settings settings;
  settings.data = args.text("--data", "");
  settings.seed = args.number("--seed", 42);
  saga_rig rig{settings};
  introduce(rig);
  auto cache = std::make_shared<projections::stock_cache>(rig.store());
  projections::projection_runner runner{rig.store()};
  runner.add_standard(cache);
  if (auto err = runner.start())
    rig.fail("starting the projections: " + describe(err));
  prepare(rig);
  closed_phase(rig, "Phase 1: normal load. 2,000 orders, 32 in flight", "bf1", 2000, 32);
  closed_phase(rig, "Phase 2: Black Friday spike. 10,000 orders, 256 in flight", "bf2", 10'000,
               256);
  outage_phases(rig);
  read_side(rig, runner, *cache);
  runner.stop();
  auto rc = final_audit(rig);
  std::fflush(stdout);
  return rc;
}

} // namespace keel::bench
