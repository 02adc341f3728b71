#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>

#include "etcd_fixture.hpp"

using namespace keel;
using namespace keel::cluster;
using namespace std::chrono_literals;

namespace {

template <class T>
T ok(caf::expected<T> x) {
  INFO((x ? std::string{} : describe(x.error())));
  REQUIRE(x);
  return std::move(*x);
}

} // namespace

TEST_CASE("the etcd client writes, reads, compares and deletes through the JSON gateway",
          "[cluster][etcd]") {
  auto etcd = test::start_etcd();
  auto c = test::client_of(*etcd);

  // Keys and values are bytes: a NUL and 0xff survive base64 both ways.
  const std::string key{"/keel/t/a\0\xff", 11};
  auto r1 = ok(c->put(key, std::string{"v\0w", 3}));
  auto got = ok(c->get(key));
  REQUIRE(got);
  CHECK(got->key == key);
  CHECK(got->value == std::string{"v\0w", 3});
  CHECK(got->create_revision == r1);
  CHECK(got->mod_revision == r1);
  CHECK(got->version == 1);
  CHECK_FALSE(ok(c->get("/keel/t/none")));

  auto r2 = ok(c->put("/keel/t/b", "2"));
  auto r3 = ok(c->put("/keel/t/c", "3"));
  ok(c->put("/keel/u/d", "outside the prefix"));
  CHECK(r1 < r2);
  CHECK(r2 < r3);
  auto all = ok(c->range("/keel/t/"));
  REQUIRE(all.kvs.size() == 3);
  CHECK(all.kvs[0].key == key);
  CHECK(all.kvs[1].key == "/keel/t/b");
  CHECK(all.kvs[2].value == "3");
  CHECK(all.revision > r3);

  // Compare-and-swap: create only if absent; replace only at a known revision.
  auto absent = etcd_compare::absent("/keel/t/owner");
  auto first = ok(c->txn({absent}, {etcd_op::put("/keel/t/owner", "node-1")}));
  CHECK(first.succeeded);
  auto second = ok(c->txn({absent}, {etcd_op::put("/keel/t/owner", "node-2")}));
  CHECK_FALSE(second.succeeded);
  CHECK(ok(c->get("/keel/t/owner"))->value == "node-1");
  auto at = etcd_compare::modified_at("/keel/t/owner", first.revision);
  auto moved = ok(c->txn({at}, {etcd_op::put("/keel/t/owner", "node-2")}));
  CHECK(moved.succeeded);
  CHECK(moved.revision > first.revision);
  CHECK_FALSE(ok(c->txn({at}, {etcd_op::erase("/keel/t/owner")})).succeeded);
  auto holds = etcd_compare::holds("/keel/t/owner", "node-2");
  CHECK(ok(c->txn({holds}, {etcd_op::erase("/keel/t/owner")})).succeeded);
  CHECK_FALSE(ok(c->get("/keel/t/owner")));

  CHECK(ok(c->erase_prefix("/keel/t/")) == 3);
  CHECK(ok(c->range("/keel/t/")).kvs.empty());
  CHECK(ok(c->range("/keel/u/")).kvs.size() == 1);
}

TEST_CASE("a lease keeps its keys while renewed and a watch sees them go when it lapses",
          "[cluster][etcd]") {
  auto etcd = test::start_etcd();
  auto c = test::client_of(*etcd);
  auto lease = ok(c->grant(1));
  CHECK(lease.id != 0);
  CHECK(lease.ttl == 1);
  auto at = ok(c->put("/keel/m/n1", "member", lease.id));
  CHECK(ok(c->get("/keel/m/n1"))->lease == lease.id);

  // A watch on its own client, from the put on.
  auto w = test::client_of(*etcd);
  std::atomic<bool> created{false};
  std::atomic<bool> saw_put{false};
  std::atomic<std::int64_t> deleted_at_ms{0};
  auto t0 = std::chrono::steady_clock::now();
  caf::error watch_err;
  std::thread watcher{[&] {
    watch_err = w->watch("/keel/m/", at, [&](const etcd_watch_batch& b) {
      created = created || b.created;
      for (auto& ev : b.events) {
        if (!ev.deleted && ev.kv.key == "/keel/m/n1" && ev.kv.value == "member")
          saw_put = true;
        if (ev.deleted && ev.kv.key == "/keel/m/n1")
          deleted_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::steady_clock::now() - t0)
                            .count();
      }
      return deleted_at_ms == 0;
    });
  }};
  // Renewed every 300 ms for 2 s: the key stays.
  auto last_renewal = std::chrono::steady_clock::now();
  for (int i = 0; i < 7; ++i) {
    std::this_thread::sleep_for(300ms);
    CHECK(ok(c->keepalive(lease.id)) == std::optional<std::int64_t>{1});
    last_renewal = std::chrono::steady_clock::now();
  }
  CHECK(ok(c->get("/keel/m/n1")));
  CHECK(deleted_at_ms == 0);
  // Not renewed any more: gone after about the TTL.
  auto deadline = last_renewal + 10s;
  while (deleted_at_ms == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  watcher.join();
  INFO(describe(watch_err));
  CHECK_FALSE(watch_err);
  CHECK(created);
  CHECK(saw_put);
  REQUIRE(deleted_at_ms > 0);
  auto lapse_ms = deleted_at_ms - std::chrono::duration_cast<std::chrono::milliseconds>(
                                     last_renewal - t0)
                                     .count();
  WARN("key removed " << lapse_ms << " ms after the last renewal of a 1 s lease");
  CHECK(lapse_ms >= 900);
  CHECK_FALSE(ok(c->get("/keel/m/n1")));
  // A lapsed lease renews to nothing, and cannot be revoked.
  CHECK_FALSE(ok(c->keepalive(lease.id)));
  auto revoked = c->revoke(lease.id);
  INFO(describe(revoked));
  CHECK(code_of(revoked) == errc::not_found);

  // Revoking a live lease drops its keys at once.
  auto other = ok(c->grant(30));
  ok(c->put("/keel/m/n2", "member", other.id));
  CHECK_FALSE(c->revoke(other.id));
  CHECK_FALSE(ok(c->get("/keel/m/n2")));
}

TEST_CASE("an etcd that is not there is an error at once, not a hang", "[cluster][etcd]") {
  std::string port;
  {
    auto etcd = test::start_etcd();
    port = std::to_string(etcd->port());
  }
  auto c = etcd_client::connect("http://127.0.0.1:" + port, 500);
  REQUIRE(c);
  auto t0 = std::chrono::steady_clock::now();
  auto r = (*c)->put("/keel/x", "y");
  REQUIRE_FALSE(r);
  CHECK(code_of(r.error()) == errc::storage_failure);
  CHECK_THAT(describe(r.error()), Catch::Contains("127.0.0.1:" + port));
  CHECK(std::chrono::steady_clock::now() - t0 < 3s);
  for (auto bad : {"127.0.0.1:2379", "http://127.0.0.1", "http://:2379", "http://h:0",
                   "http://h:2379/v3", "https://h:2379"}) {
    INFO(bad);
    auto x = etcd_client::connect(bad);
    REQUIRE_FALSE(x);
    CHECK(code_of(x.error()) == errc::invalid_argument);
  }
}
