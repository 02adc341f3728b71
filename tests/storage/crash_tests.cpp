#include <chrono>
#include <random>
#include <sstream>

#include "child_process.hpp"
#include "keel/storage/verify.hpp"
#include "store_support.hpp"

using namespace keel;
using namespace keel::storage;

namespace {

struct ack {
  std::string stream;
  std::uint64_t version;
  std::uint64_t position;
  std::uint64_t count;
  std::uint64_t base;
};

/// Runs keel-crash-writer on `dir`, SIGKILLs it after `ms` milliseconds and
/// returns every append it acknowledged before dying.
std::vector<ack> run_and_kill(const std::string& dir, std::uint64_t seed, std::uint64_t run,
                              int ms) {
  auto res = test::run_child(KEEL_CRASH_WRITER,
                             {dir, std::to_string(seed), std::to_string(run)},
                             std::chrono::milliseconds{ms});
  INFO("writer status " << res.status);
  REQUIRE(res.killed());
  std::vector<ack> acks;
  std::istringstream lines{res.out};
  std::string word;
  while (lines >> word) {
    REQUIRE(word == "ack");
    ack a;
    lines >> a.stream >> a.version >> a.position >> a.count >> a.base;
    acks.push_back(a);
  }
  return acks;
}

/// Everything acknowledged is there, exactly as acknowledged, and the store is consistent.
void check_store(const std::string& dir, std::uint64_t seed, const std::vector<ack>& acks) {
  auto store = test::open_store(dir);
  for (const auto& a : acks) {
    for (std::uint64_t k = 0; k < a.count; ++k) {
      auto rec = store->read_event(a.position + k);
      INFO("acknowledged " << a.stream << "@" << a.version + k << " at " << a.position + k);
      REQUIRE(rec);
      CHECK(rec->stream == a.stream);
      CHECK(rec->version == a.version + k);
      CHECK(rec->id == events::event_id::from_seed(seed, a.base + k));
    }
  }
  // Positions and versions gap-free, indexes in agreement with the log.
  auto rep = verify(*store);
  REQUIRE(rep);
  for (const auto& f : rep->findings)
    FAIL_CHECK(f.kind << " at " << f.position << ": " << f.detail);
  CHECK(rep->events == store->last_position());
  // Nothing half-written, acknowledged or not: keel-crash-writer appends
  // groups of count = 1 + i % 3 events whose order ids are base + k (base a
  // multiple of 4, i = (base % 1e8) / 4), so every group must be in the log
  // whole, in order, at consecutive positions.
  auto all = store->read_all();
  std::uint64_t i = 0;
  std::uint64_t group_next = 0;  // the order id the open group expects next
  std::uint64_t group_left = 0;  // events the open group still needs
  while (all.next()) {
    ++i;
    if (all.current().stream.substr(0, 6) != "crash-") {
      REQUIRE(group_left == 0); // the appends after each recovery, between groups
      continue;
    }
    auto ev = all.current().decode_payload();
    REQUIRE(ev);
    auto n = std::stoull(std::get<events::order_rejected>(*ev).order_id);
    INFO("position " << all.current().position << ", order id " << n);
    if (group_left > 0) {
      REQUIRE(n == group_next); // a torn append would leave its group short
    } else {
      REQUIRE(n % 4 == 0); // a group starts with its first event
      group_left = 1 + ((n % 100'000'000) / 4) % 3;
    }
    group_next = n + 1;
    --group_left;
  }
  CHECK(group_left == 0);
  REQUIRE_FALSE(all.error());
  CHECK(i == store->last_position());
  // The store takes new appends after recovery.
  auto r = store->append("after-crash", expected_version::any(),
                         test::one(test::make_event(seed ^ 0xabc, i + 1)));
  REQUIRE(r);
  CHECK(r->first_position == i + 1);
}

void crash_runs(std::uint64_t seed, int runs) {
  INFO("seed " << seed);
  std::mt19937_64 rng{seed};
  // Half the runs start from an empty store, half crash the same store again
  // and again (recovery after recovery).
  keel::temp_dir shared;
  std::uint64_t total_acks = 0;
  for (int run = 0; run < runs; ++run) {
    keel::temp_dir fresh;
    bool reuse = run % 2 == 1;
    const auto& dir = reuse ? shared.path() : fresh.path();
    auto ms = 30 + static_cast<int>(rng() % 400);
    INFO("run " << run << ", killed after " << ms << " ms, " << (reuse ? "reused" : "fresh"));
    auto acks = run_and_kill(dir, seed, static_cast<std::uint64_t>(run), ms);
    total_acks += acks.size();
    check_store(dir, seed, acks);
  }
  // The runs really acknowledged work before being killed.
  CHECK(total_acks > static_cast<std::uint64_t>(runs));
}

} // namespace

TEST_CASE("appends acknowledged before a SIGKILL survive it, nothing half-written is visible",
          "[crash]") {
  crash_runs(GENERATE(take(1, random(1u, 1'000'000u))), 20);
}

TEST_CASE("torture: many SIGKILLs of a durable writer", "[torture]") {
  for (std::uint64_t seed = 100; seed < 105; ++seed)
    crash_runs(seed, 40);
}
