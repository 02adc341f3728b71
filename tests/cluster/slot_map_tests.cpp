#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "etcd_fixture.hpp"
#include "membership.hpp"
#include "slot_map.hpp"

using namespace keel;
using namespace keel::cluster;

namespace {

slot_map unassigned(std::size_t slots) {
  slot_map m;
  m.owners.resize(slots);
  return m;
}

/// Most and fewest slots of any of `members` in `m`.
std::pair<std::size_t, std::size_t> spread(const slot_map& m,
                                           const std::vector<std::string>& members) {
  std::size_t most = 0;
  std::size_t fewest = m.owners.size();
  for (auto& x : members) {
    most = std::max(most, m.owned_by(x));
    fewest = std::min(fewest, m.owned_by(x));
  }
  return {most, fewest};
}

} // namespace

TEST_CASE("a new cluster's slots are spread evenly over its members", "[cluster]") {
  auto m = plan_map(unassigned(64), {"n3", "n1", "n2"}, {}, 6);
  CHECK(m.owned_by("n1") == 22);
  CHECK(m.owned_by("n2") == 21);
  CHECK(m.owned_by("n3") == 21);
  CHECK(std::count(m.owners.begin(), m.owners.end(), "") == 0);
  // The same inputs give the same map on every controller.
  CHECK(plan_map(unassigned(64), {"n1", "n2", "n3"}, {}, 6).owners == m.owners);
  // Nobody to give slots to: nothing changes.
  CHECK(plan_map(unassigned(8), {}, {}, 6).owners == unassigned(8).owners);
}

TEST_CASE("a joining node gets slots at most max_moves at a time until the spread is even",
          "[cluster]") {
  auto m = plan_map(unassigned(64), {"n1", "n2", "n3"}, {}, 6);
  std::vector<std::string> four{"n1", "n2", "n3", "n4"};
  std::size_t rounds = 0;
  std::size_t moved = 0;
  for (;;) {
    auto next = plan_map(m, four, {}, 6);
    auto moves = moved_slots(m, next);
    if (moves.empty())
      break;
    CHECK(moves.size() <= 6);
    for (auto s : moves)
      CHECK(next.owners[s] == "n4");
    moved += moves.size();
    m = next;
    REQUIRE(++rounds < 10);
  }
  CHECK(rounds == 3);
  CHECK(moved == 16);
  CHECK(spread(m, four) == std::pair<std::size_t, std::size_t>{16, 16});
}

TEST_CASE("a leaving node's slots move away and a lost node keeps its slots", "[cluster]") {
  auto m = plan_map(unassigned(64), {"n1", "n2", "n3", "n4"}, {}, 64);
  // n4 is lost (not a member any more, not leaving): its slots stay with it.
  auto lost = plan_map(m, {"n1", "n2", "n3"}, {}, 6);
  CHECK(moved_slots(m, lost).empty());
  CHECK(lost.owned_by("n4") == 16);
  // n3 leaves: its 16 slots go to the others, 6 per round.
  std::vector<std::string> members{"n1", "n2", "n3", "n4"};
  auto a = plan_map(m, members, {"n3"}, 6);
  CHECK(moved_slots(m, a).size() == 6);
  CHECK(a.owned_by("n3") == 10);
  auto b = plan_map(a, members, {"n3"}, 6);
  auto c = plan_map(b, members, {"n3"}, 6);
  CHECK(c.owned_by("n3") == 0);
  auto [most, fewest] = spread(c, {"n1", "n2", "n4"});
  CHECK(most - fewest <= 1);
  CHECK(plan_map(c, members, {"n3"}, 6).owners == c.owners);
}

TEST_CASE("the slot map's stored form is checked", "[cluster]") {
  auto m = plan_map(unassigned(4), {"n1", "n2"}, {}, 4);
  m.version = 7;
  auto back = decode_map(encode_map(m));
  REQUIRE(back);
  CHECK(back->version == 7);
  CHECK(back->owners == m.owners);
  for (auto bad : {"", "[]", "{\"version\":1}", "{\"version\":0,\"owners\":[\"a\"]}",
                   "{\"version\":1,\"owners\":[]}", "{\"version\":1,\"owners\":[1]}"}) {
    INFO(bad);
    auto x = decode_map(bad);
    REQUIRE_FALSE(x);
    CHECK(code_of(x.error()) == errc::corrupt_record);
  }
}

TEST_CASE("config, map and controller in etcd: first writer wins, stale writers lose",
          "[cluster][etcd]") {
  auto etcd = test::start_etcd();
  auto c = test::client_of(*etcd);
  CHECK(code_of(ensure_config(*c, "t", 0).error()) == errc::invalid_argument);
  auto slots = ensure_config(*c, "t", 16);
  REQUIRE(slots);
  CHECK(*slots == 16);
  // A later node asking for another count gets the cluster's.
  CHECK(*ensure_config(*c, "t", 64) == 16);

  auto empty = read_map(*c, "t", 16);
  REQUIRE(empty);
  CHECK(empty->version == 0);
  CHECK(empty->owners.size() == 16);
  auto mine = plan_map(*empty, {"n1", "n2"}, {}, 16);
  auto theirs = mine;
  REQUIRE(*write_map(*c, "t", mine));
  CHECK(mine.version == 1);
  // A second controller that read the map before this write cannot write.
  CHECK_FALSE(*write_map(*c, "t", theirs));
  auto stored = read_map(*c, "t", 16);
  REQUIRE(stored);
  CHECK(stored->version == 1);
  CHECK(stored->owners == mine.owners);
  CHECK(stored->revision == mine.revision);
  auto next = plan_map(*stored, {"n1", "n2", "n3"}, {}, 2);
  REQUIRE(*write_map(*c, "t", next));
  CHECK(read_map(*c, "t", 16)->version == 2);
  CHECK(code_of(read_map(*c, "t", 8).error()) == errc::corrupt_record);

  // One controller at a time, for as long as its lease lives.
  auto l1 = c->grant(30);
  auto l2 = c->grant(30);
  REQUIRE((l1 && l2));
  CHECK(*campaign(*c, "t", "n1", l1->id));
  CHECK_FALSE(*campaign(*c, "t", "n2", l2->id));
  CHECK(*campaign(*c, "t", "n1", l1->id));
  CHECK(**controller_of(*c, "t") == "n1");
  REQUIRE_FALSE(c->revoke(l1->id));
  CHECK_FALSE(*controller_of(*c, "t"));
  CHECK(*campaign(*c, "t", "n2", l2->id));
}
