#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <map>
#include <thread>

#include "etcd_fixture.hpp"
#include "membership.hpp"

using namespace keel;
using namespace keel::cluster;
using namespace std::chrono_literals;

namespace {

/// Options of node `id` against `etcd`; `lost_at` records when it was lost.
membership::options member(const bench::etcd_process& etcd, const std::string& id,
                           std::atomic<std::int64_t>* lost_at = nullptr,
                           std::string* why = nullptr) {
  membership::options o;
  o.etcd_url = etcd.url();
  o.cluster = "t";
  o.self = {id, "127.0.0.1:80" + id.substr(id.size() - 1), "127.0.0.1:90" + id.substr(id.size() - 1),
            {}};
  o.ttl_seconds = 1;
  o.on_lost = [lost_at, why](const std::string& w) {
    if (why != nullptr)
      *why = w;
    if (lost_at != nullptr)
      *lost_at = std::chrono::duration_cast<std::chrono::milliseconds>(
                   std::chrono::steady_clock::now().time_since_epoch())
                   .count();
  };
  return o;
}

std::unique_ptr<membership> join(membership::options o) {
  auto m = membership::join(std::move(o));
  INFO((m ? std::string{} : describe(m.error())));
  REQUIRE(m);
  return std::move(*m);
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
           std::chrono::steady_clock::now().time_since_epoch())
    .count();
}

/// A member of a fresh etcd, with a TTL of 1 s, that records when and why it
/// was lost.
struct watched_member {
  std::unique_ptr<bench::etcd_process> etcd = test::start_etcd();
  std::atomic<std::int64_t> lost_at{0};
  std::string why;
  std::unique_ptr<membership> m = join(member(*etcd, "n1", &lost_at, &why));
};

/// Waits up to 10 s for `x` to be set.
void wait_set(const std::atomic<std::int64_t>& x) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (x == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  REQUIRE(x != 0);
}

} // namespace

TEST_CASE("slots split keys evenly and the same way in every build", "[cluster]") {
  // Slot maps in etcd and data on nodes depend on these: they must never
  // change (values from a separate implementation of the hash).
  CHECK(slot_of("order-00000001", 64) == 11);
  CHECK(slot_of("SKU-0001", 64) == 32);
  CHECK(slot_of("SKU-0001", 1024) == 736);
  CHECK(slot_of("bf-1", 64) == 53);
  std::map<std::uint32_t, int> count;
  for (int i = 0; i < 64000; ++i) {
    auto s = slot_of("order-" + std::to_string(i), 64);
    REQUIRE(s < 64);
    ++count[s];
  }
  REQUIRE(count.size() == 64);
  for (auto& [slot, n] : count) {
    INFO("slot " << slot);
    CHECK(n > 800);
    CHECK(n < 1200);
  }
}

TEST_CASE("a node id is held by one live member at a time", "[cluster][etcd]") {
  auto etcd = test::start_etcd();
  auto a = join(member(*etcd, "n1"));
  CHECK(a->live());
  CHECK(a->revision() > 0);
  auto b = join(member(*etcd, "n2"));
  auto c = test::client_of(*etcd);
  auto members = list_members(*c, "t");
  REQUIRE(members);
  REQUIRE(members->size() == 2);
  CHECK((*members)[0].node_id == "n1");
  CHECK((*members)[0].http == "127.0.0.1:801");
  CHECK((*members)[1].cluster_listen == "127.0.0.1:902");

  // A second process with the same id is refused while the first lives.
  auto again = membership::join(member(*etcd, "n1"));
  REQUIRE_FALSE(again);
  CHECK(code_of(again.error()) == errc::invalid_argument);
  CHECK_THAT(describe(again.error()), Catch::Contains("n1") && Catch::Contains("live member"));
  CHECK(a->live());
  // Once it left, the id is free at once.
  REQUIRE_FALSE(a->leave());
  CHECK_FALSE(a->live());
  auto replaced = join(member(*etcd, "n1"));
  CHECK(replaced->revision() > a->revision());
  members = list_members(*c, "t");
  REQUIRE(members);
  CHECK(members->size() == 2);

  for (auto bad : {"", "a/b", "x y"}) {
    auto o = member(*etcd, "n9");
    o.self.node_id = bad;
    auto m = membership::join(std::move(o));
    REQUIRE_FALSE(m);
    CHECK(code_of(m.error()) == errc::invalid_argument);
  }
}

TEST_CASE("a member whose lease is revoked in etcd counts itself lost within one renewal",
          "[cluster][etcd]") {
  watched_member w;
  std::this_thread::sleep_for(1500ms); // renewals keep it
  CHECK(w.m->live());
  CHECK(w.lost_at == 0);
  auto revoked_at = now_ms();
  REQUIRE_FALSE(test::client_of(*w.etcd)->revoke(w.m->lease()));
  wait_set(w.lost_at);
  CHECK_FALSE(w.m->live());
  CHECK_THAT(w.why, Catch::Contains("revoked or expired"));
  auto after = w.lost_at - revoked_at;
  WARN("lost " << after << " ms after the revoke (renewal every " << w.m->ttl().count() / 3
               << " ms)");
  CHECK(after <= w.m->ttl().count() / 3 + 300);
}

TEST_CASE("a member cut off from etcd counts itself lost before its lease can expire",
          "[cluster][etcd]") {
  watched_member w;
  std::this_thread::sleep_for(1s);
  REQUIRE(w.m->live());
  // The last renewal etcd could have confirmed was sent before the kill.
  auto killed_at = now_ms();
  w.etcd->process().signal_and_wait(SIGKILL, 10s);
  wait_set(w.lost_at);
  CHECK_FALSE(w.m->live());
  CHECK_THAT(w.why, Catch::Contains("two thirds"));
  auto after = w.lost_at - killed_at;
  WARN("lost " << after << " ms after etcd was killed (TTL " << w.m->ttl().count() << " ms)");
  // Before the TTL since the kill: the lease (renewed at most at the kill)
  // cannot have expired yet when the node stops serving.
  CHECK(after < w.m->ttl().count());
}
