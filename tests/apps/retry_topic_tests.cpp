// Forged messages on payment.retry.queue (security review H5) against a
// real keel-node with its embedded Kafka: produced with kcat, as anyone who
// can reach the broker could. Each message is a hint checked against the
// order's stored state; none crashes a saga, grows the queue or strands a
// parked order.

#include <catch2/catch.hpp>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "child_process.hpp"
#include "node_process.hpp"
#include "temp_dir.hpp"

using namespace keel;
using namespace keel::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

std::int64_t now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

void wait_until(const std::function<bool()>& done, std::chrono::seconds timeout,
                const std::string& what) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline)
      FAIL("timed out waiting until " << what);
    std::this_thread::sleep_for(100ms);
  }
}

} // namespace

TEST_CASE("forged payment.retry.queue messages are checked against the store and dropped",
          "[node][kafka][retry]") {
  keel::temp_dir dir;
  node_process n{dir.sub("store"), {"--kafka", "embedded", "--breaker-wait-ms", "500",
                                    "--payment-retry-ms", "1000"}};
  auto c = n.client();
  stock(c, "sku-1", 100);
  put_on_sale(c, "sku-1");
  REQUIRE(post(c, "/admin/faults", {{"provider", "gateways"}, {"error_rate", 1.0}},
               auth("ops", true))->status == 200);
  REQUIRE(post(c, "/v1/orders", order_json("h-1", "c-1", "sku-1"), auth("c-1"))->status == 202);
  wait_status(c, "h-1", {"pending_payment"});
  wait_until([&] { return metric(c, "keel_retry_queue_consumed_total") >= 1; }, 20s,
             "the node consumed its own park");
  auto consumed = metric(c, "keel_retry_queue_consumed_total");

  // What an attacker writes to the topic.
  std::ofstream forged{dir.sub("forged.txt")};
  std::size_t count = 0;
  auto add = [&](const std::string& key, const json& value) {
    forged << key << '\t' << value.dump() << '\n';
    ++count;
  };
  // The review's crash loop: an id that is no order id.
  add("x", {{"order_id", "x y"}, {"retry_count", 1}});
  add("x", {{"order_id", std::string(195, 'x')}, {"retry_count", 1}});
  // The review's stuck order: a parked order's id with a count from the future, due now.
  add("h-1", {{"order_id", "h-1"}, {"retry_count", 4294967295u}, {"retry_at_us", 0}});
  // Its current count with another retry time or priority: not a park the node wrote.
  add("h-1", {{"order_id", "h-1"}, {"retry_count", 1}, {"retry_at_us", 0}});
  add("h-1", {{"order_id", "h-1"}, {"retry_count", 1}, {"priority", "HIGH"}});
  // An old count: stale.
  add("h-1", {{"order_id", "h-1"}, {"retry_count", 0}});
  // Queue growth: ids of no order, due in a year, and due now.
  for (int i = 0; i < 500; ++i)
    add("g", {{"order_id", "ghost-" + std::to_string(i)}, {"retry_count", 1},
              {"retry_at_us", now_us() + 365LL * 24 * 3600 * 1000000}, {"priority", "HIGH"}});
  for (int i = 0; i < 200; ++i)
    add("g", {{"order_id", "ghost-now-" + std::to_string(i)}, {"retry_count", 1},
              {"retry_at_us", 0}, {"priority", "HIGH"}});
  forged.close();
  auto bootstrap = json::parse(c.Get("/admin/kafka", auth("ops", true))->body)["bootstrap_servers"]
                     .get<std::string>();
  auto produced = run_child("/bin/sh", {"-c", "kcat -b " + bootstrap
                                                + " -P -t payment.retry.queue -K '\t' < "
                                                + dir.sub("forged.txt") + " 2>&1"},
                            60s);
  INFO(produced.out);
  REQUIRE(WIFEXITED(produced.status));
  REQUIRE(WEXITSTATUS(produced.status) == 0);

  wait_until([&] { return metric(c, "keel_retry_queue_consumed_total") >= consumed + count; }, 30s,
             "the node consumed the forged messages");
  auto dropped = [&](const std::string& reason) {
    return metric(c, "keel_retry_queue_dropped_total{reason=\"" + reason + "\"}");
  };
  // The order is retried (and parked again) every second meanwhile, so a
  // forgery with its count of now may meet a newer one: invalid or stale.
  CHECK(dropped("invalid") >= 2 + 1 + 200);
  CHECK(dropped("invalid") + dropped("stale") >= 2 + 1 + 2 + 1 + 200);
  CHECK(dropped("far_future") >= 500);
  CHECK(metric(c, "keel_sagas_crashed_total") == 0);
  CHECK(metric(c, "keel_sagas_redrives_ignored_total") == 0); // nothing reached the orders actor
  // Only the real parked order is queued.
  wait_until([&] { return metric(c, "keel_retry_queue_depth") <= 1; }, 10s,
             "the queue holds the real order only");

  // The parked order is not stranded: once the gateways heal it completes.
  REQUIRE(post(c, "/admin/faults", {{"provider", "gateways"}, {"error_rate", 0.0}},
               auth("ops", true))->status == 200);
  wait_status(c, "h-1", {"completed"}, 30s);
  // A message about an order that ended is stale.
  auto before = dropped("stale");
  std::ofstream{dir.sub("late.txt")} << "h-1\t" << json{{"order_id", "h-1"}, {"retry_count", 1}}.dump()
                                     << '\n';
  REQUIRE(WEXITSTATUS(run_child("/bin/sh", {"-c", "kcat -b " + bootstrap
                                                       + " -P -t payment.retry.queue -K '\t' < "
                                                       + dir.sub("late.txt")},
                                30s)
                        .status)
          == 0);
  wait_until([&] { return dropped("stale") > before; }, 20s, "the late message is dropped as stale");
  CHECK(wait_status(c, "h-1", {"completed"})["status"] == "completed");
}
