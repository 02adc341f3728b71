#include <catch2/catch.hpp>

#include <chrono>
#include <random>

#include "child_process.hpp"
#include "fold.hpp"
#include "history.hpp"
#include "keel/events/error.hpp"
#include "keel/projections/runner.hpp"
#include "temp_dir.hpp"

using namespace keel;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<storage::event_store> open_store(const std::string& path) {
  storage::options opts;
  opts.path = path;
  opts.durable = storage::durability::wal;
  auto store = storage::event_store::open(opts);
  INFO((store ? std::string{} : describe(store.error())));
  REQUIRE(store);
  return std::move(*store);
}

/// The last lines a child printed (its progress before the kill).
std::string tail(const std::string& out, std::size_t lines = 8) {
  auto at = out.size();
  while (lines-- > 0 && at > 0)
    at = out.rfind('\n', at - 1);
  return at == std::string::npos ? out : out.substr(at);
}

/// Only the serving generation of each projection has models and a checkpoint.
void only_serving_generations(const storage::event_store& store) {
  auto checkpoints = store.list_checkpoints();
  REQUIRE(checkpoints);
  for (std::string name : {"orders", "stock", "figures"}) {
    INFO("projection " << name);
    auto gen = projections::active_generation(store, name);
    REQUIRE(gen);
    REQUIRE(*gen > 0);
    CHECK(test::count_models(store, "m/" + name + "/")
          == test::count_models(store, test::generation_prefix(name, *gen)));
    for (auto& [cp, at] : *checkpoints)
      if (cp.rfind("projection/" + name + "/", 0) == 0)
        CHECK(cp == test::checkpoint_name(name, *gen));
  }
}

/// Prepares a store with history, SIGKILLs keel-crash-projector on it `runs`
/// times (each run appends, projects and, on odd runs, rebuilds), checking
/// after each kill that every projection's committed models are the fold of
/// the log up to its checkpoint; then a runner catches up with the whole log.
void crash_runs(std::uint64_t seed, int runs) {
  INFO("seed " << seed);
  std::mt19937_64 rng{seed};
  keel::temp_dir dir;
  {
    auto store = open_store(dir.path());
    test::history h{{seed, "base"}};
    auto err = test::append_events(*store, h.plan(400, false));
    INFO(describe(err));
    REQUIRE_FALSE(err);
  }
  int projecting = 0;
  std::uint64_t last = 0;
  std::map<std::string, std::uint64_t> progress;
  for (int run = 0; run < runs; ++run) {
    // Three runs in four are killed while projecting (the time counts from
    // the child's "projecting"; its start-up takes 0.2 s in Release and 0.4 s
    // under ASan), the fourth anywhere from its start.
    auto while_projecting = run % 4 != 3;
    auto ms = while_projecting ? static_cast<int>(rng() % 351) : 50 + static_cast<int>(rng() % 351);
    INFO("run " << run << ", killed after " << ms << " ms"
                << (while_projecting ? " of projecting" : ""));
    auto res = test::run_child(KEEL_CRASH_PROJECTOR,
                               {dir.path(), std::to_string(seed), std::to_string(run)},
                               std::chrono::milliseconds{ms},
                               while_projecting ? "projecting\n" : "");
    INFO("the child's last words:" << tail(res.out));
    REQUIRE(res.killed());
    if (res.out.find("projecting\n") != std::string::npos)
      ++projecting;
    auto store = open_store(dir.path());
    CHECK(store->last_position() >= last); // acknowledged appends survive
    last = store->last_position();
    auto checkpoints = test::check_models_at_checkpoints(*store);
    for (auto& [name, at] : checkpoints)
      progress[name] = std::max(progress[name], at);
  }
  // The child was projecting when it was killed, most of the time.
  CHECK(projecting >= runs / 2);
  for (auto& [name, at] : progress) {
    INFO(name);
    CHECK(at > 0);
  }

  auto store = open_store(dir.path());
  projections::projection_runner runner{*store};
  runner.add_standard();
  auto err = runner.start();
  INFO(describe(err));
  REQUIRE_FALSE(err);
  REQUIRE(runner.wait_for(store->last_position(), 60s));
  for (auto& s : runner.status()) {
    INFO("projection " << s.name);
    CHECK(s.state == "live");
    CHECK(s.position == store->last_position());
    CHECK_FALSE(s.failure);
  }
  auto want = test::fold(*store);
  for (auto& a : want.anomalies)
    FAIL_CHECK("the reference fold cannot apply " << a);
  test::check_models(*store, want);
  only_serving_generations(*store);
}

} // namespace

TEST_CASE("projections killed at random moments resume without double counting or gaps",
          "[crash]") {
  crash_runs(GENERATE(take(1, random(1u, 1'000'000u))), 8);
}

TEST_CASE("torture: many SIGKILLs of a projecting, appending, rebuilding process", "[torture]") {
  for (std::uint64_t seed = 300; seed < 303; ++seed)
    crash_runs(seed, 30);
}
