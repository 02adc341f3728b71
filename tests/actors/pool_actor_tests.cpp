// Provider adapter pools and their autoscaler in virtual time.

#include "pipeline_fixture.hpp"

using namespace keel;
using namespace keel::test;
using actors::provider_answer;
using actors::provider_request;

namespace {

void set_latency(actors::pipeline& p, const std::string& name, actors::duration x) {
  auto f = p.simulator(name).faults();
  f.latency_median = f.latency_p99 = x;
  p.simulator(name).faults(f);
}

/// What a load generator saw.
struct load_figures {
  bool stop = false;
  std::uint64_t next_key = 0;
  std::uint64_t ok = 0;
  std::uint64_t failed = 0;
  /// Timeouts of calls that never left the adapter's FIFO.
  std::uint64_t timed_out_waiting = 0;
};

using load = std::shared_ptr<load_figures>;

void send_one(caf::event_based_actor* self, const caf::actor& dest, const load& l) {
  if (l->stop)
    return;
  provider_request req{"authorize", "key-" + std::to_string(l->next_key++), 100};
  self->request(dest, caf::infinite, std::move(req))
    .then([self, dest, l](provider_answer&) {
            l->ok++;
            send_one(self, dest, l);
          },
          [self, l](caf::error& err) {
            l->failed++;
            if (describe(err).find("waited for") != std::string::npos)
              l->timed_out_waiting++;
            self->delayed_send(self, 10ms, actors::tick_atom::value); // no busy loop
          });
}

/// Keeps `n` calls outstanding at `dest` until `stop` is set.
load keep_busy(caf::actor_system& sys, const caf::actor& dest, std::size_t n) {
  auto l = std::make_shared<load_figures>();
  sys.spawn(
    [dest, n, l](caf::event_based_actor* self, int) -> caf::behavior {
      for (std::size_t i = 0; i < n; ++i)
        send_one(self, dest, l);
      return {[self, dest, l](actors::tick_atom) { send_one(self, dest, l); }};
    },
    0);
  return l;
}

/// The resizes recorded for provider `name`.
std::vector<events::pool_resized> resizes(storage::event_store& store, const std::string& name) {
  std::vector<events::pool_resized> result;
  auto reader = store.read_stream("$system-pool-" + name);
  while (reader.next()) {
    auto ev = reader.current().decode_payload();
    REQUIRE(ev);
    result.push_back(std::get<events::pool_resized>(*ev));
  }
  REQUIRE(!reader.error());
  return result;
}

/// Pools that start small, gateway breakers that never open (so the pool
/// is watched alone).
actors::pipeline_config small_pools(actors::pipeline_config c, std::uint32_t initial) {
  c.provider_pool.initial_workers = initial;
  c.provider_breaker.failure_threshold = 1000;
  c.provider_breaker.minimum_calls = 1000;
  return c;
}

} // namespace

TEST_CASE_METHOD(pipeline_fixture, "a provider pool under sustained load grows to its maximum, records each resize and shrinks again when idle", "[pool]") {
  start(small_pools(config(), 2));
  set_latency(*p, "gw-primary", 20ms);
  auto gauge = p->metrics().pool("gw-primary");
  auto bulkhead = p->metrics().bulkhead("gw-primary");
  CHECK(gauge->workers == 2);
  CHECK(gauge->calls_per_worker == 2);
  auto l = keep_busy(*sys, p->provider_handle("gw-primary"), 20);
  run();
  // 2 workers x 2 calls in flight; the other 16 wait inside the bulkhead.
  CHECK(gauge->busy == 4);
  CHECK(gauge->waiting == 16);
  CHECK(bulkhead->in_use == 20);
  advance(1500ms);
  CHECK(gauge->workers == 10);
  CHECK(gauge->scale_ups == 8);
  CHECK(gauge->busy > 4);
  CHECK(l->failed == 0);
  CHECK(bulkhead->rejected == 0);
  l->stop = true;
  advance(3s);
  CHECK(gauge->workers == 1);
  CHECK(gauge->scale_downs == 9);
  CHECK(gauge->busy == 0);
  auto rs = resizes(*store, "gw-primary");
  REQUIRE(rs.size() == 17);
  for (std::uint32_t i = 0; i < 8; ++i) {
    CHECK(rs[i].pool == "gw-primary");
    CHECK(rs[i].from_size == 2 + i);
    CHECK(rs[i].to_size == 3 + i);
    CHECK(rs[i].reason.find("p99 20 ms") != std::string::npos);
  }
  for (std::uint32_t i = 0; i < 9; ++i) {
    CHECK(rs[8 + i].from_size == 10 - i);
    CHECK(rs[8 + i].to_size == 9 - i);
    CHECK(rs[8 + i].reason.find("< 0.30") != std::string::npos);
  }
}

TEST_CASE_METHOD(pipeline_fixture, "a slow provider's pool never grows under load, gives workers back and grows once it is fast again", "[pool]") {
  start(small_pools(config(), 3));
  set_latency(*p, "gw-primary", 1500ms);
  auto gauge = p->metrics().pool("gw-primary");
  auto l = keep_busy(*sys, p->provider_handle("gw-primary"), 20);
  std::int64_t most = 0;
  for (int i = 0; i < 60; ++i) {
    advance(100ms);
    most = std::max<std::int64_t>(most, gauge->workers);
  }
  CHECK(most == 3);
  CHECK(gauge->scale_ups == 0);
  CHECK(gauge->workers == 1);
  // Calls queued behind the slow provider time out in the FIFO: they never
  // reach it, so it never holds more than the pool's calls.
  CHECK(l->timed_out_waiting > 0);
  CHECK(p->simulator("gw-primary").calls() < l->ok + l->failed);
  auto rs = resizes(*store, "gw-primary");
  REQUIRE(rs.size() == 2);
  for (auto& r : rs) {
    CHECK(r.to_size + 1 == r.from_size);
    CHECK(r.reason.find("a slow provider gets no more workers") != std::string::npos);
  }
  set_latency(*p, "gw-primary", 2ms);
  advance(4s);
  CHECK(gauge->workers == 10);
  l->stop = true;
  advance(2s);
}

TEST_CASE_METHOD(pipeline_fixture, "a call waiting for a worker is timed from its arrival", "[pool]") {
  start(small_pools(config(), 2));
  auto f = p->simulator("gw-primary").faults();
  f.hang_rate = 1.0;
  p->simulator("gw-primary").faults(f);
  auto gw = p->provider_handle("gw-primary");
  std::vector<answer<provider_answer>> first;
  for (int i = 0; i < 4; ++i)
    first.push_back(
      ask<provider_answer>(gw, provider_request{"authorize", "k" + std::to_string(i), 1}));
  advance(500ms, 100ms);
  auto late = ask<provider_answer>(gw, provider_request{"authorize", "late", 1});
  run();
  auto gauge = p->metrics().pool("gw-primary");
  CHECK(gauge->waiting == 1);
  CHECK(p->simulator("gw-primary").calls() == 4);
  // The hung calls time out at 2 s; the late call takes a freed worker then
  // and times out 2 s after it arrived (2.5 s), not 2 s after it started.
  advance(1600ms, 100ms);
  CHECK(std::all_of(first.begin(), first.end(), [](auto& r) { return r->has_value(); }));
  CHECK(p->simulator("gw-primary").calls() == 5);
  CHECK_FALSE(late->has_value());
  advance(400ms, 100ms);
  REQUIRE(late->has_value());
  CHECK(code_of((*late)->error()) == errc::timeout);
  // Nothing was answered: the pool never grew on calls it knows nothing about.
  CHECK(gauge->scale_ups == 0);
  CHECK(p->metrics().bulkhead("gw-primary")->in_use == 0);
}

TEST_CASE_METHOD(pipeline_fixture, "a restarted adapter starts again at its initial size and records it", "[pool]") {
  start(small_pools(config(), 2));
  set_latency(*p, "gw-primary", 20ms);
  auto gauge = p->metrics().pool("gw-primary");
  auto l = keep_busy(*sys, p->provider_handle("gw-primary"), 20);
  advance(600ms);
  l->stop = true;
  advance(100ms);
  auto grown = gauge->workers.load();
  REQUIRE(grown > 2);
  auto crash = ask<provider_answer>(p->provider_handle("gw-primary"), actors::crash_atom::value);
  advance(100ms);
  REQUIRE(crash->has_value());
  CHECK(gauge->workers == 2);
  auto rs = resizes(*store, "gw-primary");
  REQUIRE_FALSE(rs.empty());
  CHECK(rs.back().from_size == grown);
  CHECK(rs.back().to_size == 2);
  CHECK(rs.back().reason == "adapter restarted at its initial size");
}

TEST_CASE_METHOD(pipeline_fixture, "a pipeline refuses invalid pool settings", "[pool]") {
  auto c = config();
  c.provider_pool.initial_workers = 0;
  auto res = actors::pipeline::start(*sys, c);
  REQUIRE_FALSE(res);
  CHECK(code_of(res.error()) == errc::invalid_argument);
}

TEST_CASE_METHOD(pipeline_fixture, "a pipeline refuses missing, unnamed and twice-named providers",
                 "[pool]") {
  auto start = [&](actors::pipeline_config c) {
    auto res = actors::pipeline::start(*sys, std::move(c));
    REQUIRE_FALSE(res);
    CHECK(code_of(res.error()) == errc::invalid_argument);
    return describe(res.error());
  };
  auto c = config();
  actors::simulate_providers(c);
  c.gateways.clear();
  CHECK_THAT(start(c), Catch::Contains("at least one payment gateway and one carrier"));
  c = config();
  actors::simulate_providers(c, {"gw", "same"}, {"same", "carrier"});
  CHECK_THAT(start(c), Catch::Contains("two providers are named same"));
  c = config();
  actors::simulate_providers(c, {""}, {"carrier"});
  CHECK_THAT(start(c), Catch::Contains("a provider without a name"));
}
