#include <catch2/catch.hpp>

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "agent.hpp"
#include "etcd_fixture.hpp"

using namespace keel;
using namespace keel::cluster;
using namespace std::chrono_literals;

namespace {

agent::options agent_options(const bench::etcd_process& etcd, const std::string& id) {
  agent::options o;
  o.etcd_url = etcd.url();
  o.cluster = "t";
  o.self = {id, "127.0.0.1:1", "127.0.0.1:2"};
  o.slots = 16;
  o.ttl_seconds = 1;
  o.settle = 300ms;
  return o;
}

std::unique_ptr<agent> start_agent(agent::options o) {
  auto a = agent::start(std::move(o));
  INFO((a ? std::string{} : describe(a.error())));
  REQUIRE(a);
  return std::move(*a);
}

bool all_held(const cluster_view& v) {
  for (std::uint32_t s = 0; s < v.slots; ++s)
    if (v.owner(s) == nullptr)
      return false;
  return true;
}

} // namespace

TEST_CASE("agents started together share the first map and each serves only its slots",
          "[etcd]") {
  auto etcd = test::start_etcd();
  std::vector<std::unique_ptr<agent>> nodes;
  for (auto id : {"a", "b", "c"})
    nodes.push_back(start_agent(agent_options(*etcd, id)));
  for (auto& n : nodes)
    REQUIRE(n->wait_for(all_held, 10s));
  auto v = nodes[0]->view();
  CHECK(v->map.version == 1);
  std::set<std::string> owners(v->map.owners.begin(), v->map.owners.end());
  CHECK(owners == std::set<std::string>{"a", "b", "c"});
  for (std::uint32_t s = 0; s < v->slots; ++s) {
    std::size_t serving = 0;
    for (auto& n : nodes) {
      std::int64_t token = 0;
      if (n->serves(s, &token)) {
        ++serving;
        CHECK(n->node_id() == v->map.owners[s]);
        CHECK(token == v->holders[s].token);
        CHECK(token > 0);
      }
    }
    CHECK(serving == 1);
  }
  // One controller, named in every view.
  CHECK(!v->controller.empty());
  CHECK(nodes[2]->view()->controller == v->controller);
}

TEST_CASE("a revoked lease stops a node serving at once and it joins again with new tokens",
          "[etcd]") {
  auto etcd = test::start_etcd();
  auto a = start_agent(agent_options(*etcd, "a"));
  auto b = start_agent(agent_options(*etcd, "b"));
  REQUIRE(b->wait_for(all_held, 10s));
  auto before = b->view();
  std::uint32_t slot_of_a = 0;
  while (before->holders[slot_of_a].node != "a")
    ++slot_of_a;
  auto old_token = before->holders[slot_of_a].token;
  REQUIRE(a->serves(slot_of_a));

  auto client = test::client_of(*etcd);
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(!client->revoke(before->holders[slot_of_a].lease));
  // The other node sees the slot without a holder at once (the keys go
  // with the lease)...
  REQUIRE(b->wait_for([&](auto& v) { return v.owner(slot_of_a) == nullptr; }, 2s));
  // ...and `a` stops serving within one renewal interval (TTL/3).
  while (a->serves(slot_of_a) && std::chrono::steady_clock::now() - t0 < 2s)
    std::this_thread::sleep_for(5ms);
  auto stopped_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - t0)
                      .count();
  CHECK_FALSE(a->serves(slot_of_a));
  CHECK(stopped_ms < 500);
  // Then it joins on a new lease and claims its slots again, with larger tokens.
  REQUIRE(b->wait_for([&](auto& v) { return v.owner(slot_of_a) != nullptr; }, 5s));
  REQUIRE(a->wait_for([&](auto& v) { return v.holders[slot_of_a].token > old_token; }, 5s));
  CHECK(a->live());
  CHECK(a->serves(slot_of_a));
  CHECK(b->view()->holders[slot_of_a].node == "a");
}

TEST_CASE("a second process with a live node's id does not start", "[etcd]") {
  auto etcd = test::start_etcd();
  auto a = start_agent(agent_options(*etcd, "a"));
  auto twin = agent::start(agent_options(*etcd, "a"));
  REQUIRE_FALSE(twin);
  CHECK(code_of(twin.error()) == errc::invalid_argument);
  REQUIRE(a->wait_for(all_held, 10s));
  CHECK(a->view()->held_by("a") == 16);
}

TEST_CASE("a node that leaves drops its keys at once", "[etcd]") {
  auto etcd = test::start_etcd();
  auto a = start_agent(agent_options(*etcd, "a"));
  auto b = start_agent(agent_options(*etcd, "b"));
  REQUIRE(b->wait_for(all_held, 10s));
  a->leave();
  REQUIRE(b->wait_for([](auto& v) { return v.held_by("a") == 0 && v.member("a") == nullptr; },
                      2s));
  // A lost or departed node keeps its slots in the map (slot moves are the
  // controller's and come with data); nobody serves them meanwhile.
  CHECK(b->view()->map.owned_by("a") > 0);
}
