#include <atomic>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "keel/storage/verify.hpp"
#include "store_support.hpp"

using namespace keel;
using namespace keel::storage;
using keel::test::make_event;
using keel::test::one;

namespace {

/// Many threads append: half to a few shared streams with optimistic
/// concurrency (read version, append exact, retry on conflict), half to
/// streams of their own with `any`, mixing sync and async appends.
void hammer(std::uint64_t seed, int threads, int per_thread, durability d) {
  INFO("seed " << seed);
  keel::temp_dir dir;
  auto store = test::open_store(dir.path(), open_mode::writer, d);
  std::atomic<std::uint64_t> ok{0};
  std::atomic<std::uint64_t> conflicts{0};
  std::atomic<std::uint64_t> other_errors{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::mt19937_64 rng{seed * 1000 + static_cast<std::uint64_t>(t)};
      for (int i = 0; i < per_thread; ++i) {
        auto n = static_cast<std::uint64_t>(t) * 1'000'000 + static_cast<std::uint64_t>(i);
        if (rng() % 2 == 0) {
          auto stream = "shared-" + std::to_string(rng() % 4);
          for (;;) {
            auto v = store->stream_version(stream);
            REQUIRE(v);
            auto r = store->append(stream, expected_version::exact(*v), one(make_event(seed, n)));
            if (r) {
              ++ok;
              break;
            }
            if (code_of(r.error()) == errc::version_conflict) {
              ++conflicts;
              continue;
            }
            ++other_errors;
            break;
          }
        } else {
          auto stream = "own-" + std::to_string(t) + "-" + std::to_string(rng() % 8);
          std::vector<new_event> evs;
          evs.push_back(make_event(seed, n));
          auto r = store->append(stream, expected_version::any(), std::move(evs));
          r ? ++ok : ++other_errors;
        }
      }
    });
  }
  for (auto& th : pool)
    th.join();
  const auto total = static_cast<std::uint64_t>(threads) * static_cast<std::uint64_t>(per_thread);
  CHECK(other_errors == 0);
  CHECK(ok == total);
  CHECK(store->last_position() == total);
  // Optimistic concurrency was really exercised.
  CHECK(conflicts > 0);

  // Every position 1..total once, every stream gap-free, every id once.
  std::set<events::event_id> ids;
  std::map<std::string, std::uint64_t> versions;
  std::uint64_t expected = 1;
  auto all = store->read_all();
  while (all.next()) {
    const auto& r = all.current();
    REQUIRE(r.position == expected++);
    REQUIRE(ids.insert(r.id).second);
    auto& v = versions[std::string{r.stream}];
    REQUIRE(r.version == v + 1);
    v = r.version;
  }
  REQUIRE_FALSE(all.error());
  CHECK(expected == total + 1);
  for (const auto& [stream, last] : versions)
    CHECK(*store->stream_version(stream) == last);
  auto rep = verify(*store);
  REQUIRE(rep);
  CHECK(rep->findings.empty());
}

} // namespace

TEST_CASE("concurrent appenders lose and duplicate nothing, conflicts are version_conflict",
          "[store][concurrency]") {
  auto seed = GENERATE(take(2, random(1u, 1'000'000u)));
  hammer(seed, 16, 400, durability::wal);
}

TEST_CASE("concurrent durable appenders share fsyncs in batches", "[store][concurrency]") {
  keel::temp_dir dir;
  auto store = test::open_store(dir.path());
  std::vector<std::thread> pool;
  for (int t = 0; t < 16; ++t)
    pool.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i)
        REQUIRE(store->append("w-" + std::to_string(t), expected_version::any(),
                              one(make_event(77, static_cast<std::uint64_t>(t * 1000 + i)))));
    });
  for (auto& th : pool)
    th.join();
  auto stats = store->stats();
  CHECK(stats.events == 1600);
  // With 16 appenders waiting on each fsync, batches must hold several
  // appends; one batch per append would mean no group commit at all.
  CHECK(stats.batches < 1600 / 2);
}

TEST_CASE("torture: concurrent appenders over many seeds", "[torture]") {
  for (std::uint64_t seed = 1; seed <= 20; ++seed)
    hammer(seed, 32, 500, durability::wal);
}
