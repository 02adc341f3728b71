#pragma once

// A pipeline on CAF's deterministic test coordinator: one thread, virtual
// time, synchronous appends to a real RocksDB store in a temporary directory.

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <catch2/catch.hpp>

#include "keel/projections/audit.hpp"
#include "keel/actors/messages.hpp"
#include "keel/actors/pipeline.hpp"
#include "keel/events/error.hpp"
#include "keel/storage/event_store.hpp"
#include "temp_dir.hpp"

namespace keel::test {

using namespace std::chrono_literals;

/// The answer of an `ask`, once it arrived.
template <class Reply>
using answer = std::shared_ptr<std::optional<caf::expected<Reply>>>;

struct pipeline_fixture {
  temp_dir dir;
  std::shared_ptr<storage::event_store> store;
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  caf::scheduler::test_coordinator* sched = nullptr;
  std::unique_ptr<actors::pipeline> p;
  std::vector<actors::finished_order> finished;
  /// The saga policy of the running pipeline (folding needs the same one).
  actors::saga_policy policy;
  static constexpr std::int64_t epoch_us = 1'800'000'000'000'000;

  pipeline_fixture() {
    storage::options opts;
    opts.path = dir.sub("store");
    // The process never crashes here (the crash tests use real processes
    // and sync), so skip the fsyncs.
    opts.durable = storage::durability::wal;
    auto s = storage::event_store::open(opts);
    REQUIRE(s);
    store = std::shared_ptr<storage::event_store>(std::move(*s));
    cfg.set("scheduler.policy", caf::atom("testing"));
    cfg.set("logger.verbosity", caf::atom("quiet"));
    actors::add_message_types(cfg);
    sys = std::make_unique<caf::actor_system>(cfg);
    sched = &dynamic_cast<caf::scheduler::test_coordinator&>(sys->scheduler());
  }

  ~pipeline_fixture() {
    p.reset();
    run();
  }

  /// Virtual wall clock: a fixed epoch plus the coordinator's time.
  std::int64_t now_us() const {
    auto t = sched->clock().now().time_since_epoch();
    return epoch_us + std::chrono::duration_cast<std::chrono::microseconds>(t).count();
  }

  /// Defaults for tests: production values, synchronous appends, test clock.
  actors::pipeline_config config() {
    actors::pipeline_config c;
    c.store = store;
    c.mode = actors::append_mode::synchronous;
    c.now_us = [this] { return now_us(); };
    c.on_finished = [this](const actors::finished_order& x) { finished.push_back(x); };
    return c;
  }

  void start(actors::pipeline_config c) {
    policy = c.saga;
    if (c.gateways.empty())
      actors::simulate_providers(c);
    auto res = actors::pipeline::start(*sys, std::move(c));
    REQUIRE(res);
    p = std::move(*res);
    run();
  }

  void start() {
    start(config());
  }

  /// Runs every ready job (no time passes).
  void run() {
    sched->run();
  }

  /// Lets `d` of virtual time pass in steps of `step`, running jobs in between.
  void advance(caf::timespan d, caf::timespan step = 10ms) {
    for (caf::timespan t{0}; t < d; t += step) {
      sched->advance_time(step);
      run();
    }
  }

  /// Sends `xs` as a request to `dest` from a fresh actor; the answer shows
  /// up once the coordinator ran far enough.
  template <class Reply, class... Ts>
  answer<Reply> ask(const caf::actor& dest, Ts... xs) {
    auto res = std::make_shared<std::optional<caf::expected<Reply>>>();
    // The unused argument: CAF 0.17 dereferences a null pointer to an
    // empty argument tuple when a function-based actor takes none (UBSan).
    sys->spawn(
      [=](caf::event_based_actor* self, int) {
        self->request(dest, caf::infinite, xs...)
          .then([=](Reply& r) { *res = std::move(r); },
                [=](caf::error& e) { *res = caf::expected<Reply>{std::move(e)}; });
      },
      0);
    return res;
  }

  template <class Reply, class... Ts>
  caf::expected<Reply> ask_now(const caf::actor& dest, Ts... xs) {
    auto res = ask<Reply>(dest, std::move(xs)...);
    run();
    REQUIRE(res->has_value());
    return std::move(**res);
  }

  actors::order_view set_stock(const std::string& sku, std::int64_t n) {
    auto r = ask_now<actors::stock_reply>(p->inventory(), events::set_stock{sku, n});
    REQUIRE(r);
    return {};
  }

  actors::stock_reply stock(const std::string& sku) {
    auto r = ask_now<actors::stock_reply>(p->inventory(), actors::get_atom::value, sku);
    REQUIRE(r);
    return *r;
  }

  static events::place_order order(const std::string& id, const std::string& sku,
                                   std::uint32_t qty = 1, bool premium = false) {
    events::place_order cmd;
    cmd.order_id = id;
    cmd.customer_id = "customer-1";
    cmd.lines = {{sku, qty, 1250}};
    cmd.currency = "EUR";
    cmd.shipping_address = {"Ada Lovelace", "12 Analytical St", "London", "N1 9GU", "GB"};
    cmd.premium = premium;
    return cmd;
  }

  caf::expected<actors::order_view> place(const events::place_order& cmd) {
    return ask_now<actors::order_view>(p->orders(), cmd);
  }

  std::string status(const std::string& id) {
    auto st = actors::load_order(*store, id, policy);
    REQUIRE(st);
    return events::to_string(st->status);
  }

  /// The type names of a stream's events, in order.
  std::vector<std::string> types(const std::string& stream) {
    std::vector<std::string> result;
    auto reader = store->read_stream(stream);
    while (reader.next())
      result.emplace_back(reader.current().type);
    REQUIRE(!reader.error());
    return result;
  }

  projections::audit_report audit(bool require_terminal = true) {
    projections::audit_options o;
    o.require_terminal = require_terminal;
    auto rep = projections::audit(*store, o);
    REQUIRE(rep);
    for (auto& v : rep->violations)
      UNSCOPED_INFO(v);
    return *rep;
  }
};

} // namespace keel::test
