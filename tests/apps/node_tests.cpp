// keel-node as a real process on a free port: the HTTP API, auth and rate
// limit, Kafka (read with kcat), /metrics (checked with promtool), SIGKILL
// and SIGTERM.

#include <catch2/catch.hpp>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "child_process.hpp"
#include "keel/events/event.hpp"
#include "keel/storage/event_store.hpp"
#include "node_process.hpp"
#include "temp_dir.hpp"

using namespace keel;
using namespace keel::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

/// Stocks `sku` and puts it on sale at the price `order_json` names.
void set_stock(httplib::Client& c, const std::string& sku, int quantity) {
  stock(c, sku, quantity);
  put_on_sale(c, sku);
}

/// GET `path` as an operator (admin token), expecting `expect`.
json get_json(httplib::Client& c, const std::string& path, int expect = 200,
              const httplib::Headers& h = auth("ops", true)) {
  auto res = c.Get(path.c_str(), h);
  REQUIRE(res);
  INFO(path << " -> " << res->status << " " << res->body);
  REQUIRE(res->status == expect);
  return json::parse(res->body);
}

/// Order `id` once its read model shows `steps` steps, or as it is after 10 s
/// (its status comes from its stream, its steps from the read model, which
/// follows within milliseconds, longer on a loaded machine).
json order_once(httplib::Client& c, const std::string& id, std::size_t steps) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  json order;
  for (;;) {
    order = get_json(c, "/v1/orders/" + id);
    if (order["steps"].size() >= steps || std::chrono::steady_clock::now() > deadline)
      return order;
    std::this_thread::sleep_for(20ms);
  }
}

/// The stock of `sku` once its `field` is `value` (the read model follows
/// within milliseconds), or as it is after 10 s.
json stock_once(httplib::Client& c, const std::string& sku, const char* field, int value) {
  auto deadline = std::chrono::steady_clock::now() + 10s;
  json stock;
  do {
    stock = get_json(c, "/v1/stock/" + sku);
  } while (stock[field] != value && std::chrono::steady_clock::now() < deadline);
  return stock;
}

} // namespace

TEST_CASE("orders are placed, read, listed and cancelled over HTTP", "[node][http]") {
  keel::temp_dir dir;
  node_process n{dir.sub("store"), {"--kafka", "off"}};
  auto c = n.client();
  set_stock(c, "sku-1", 100);

  auto res = post(c, "/v1/orders", order_json("o-1", "c-1", "sku-1", 2), auth("c-1"));
  REQUIRE(res);
  CHECK(res->status == 202);
  auto accepted = json::parse(res->body);
  CHECK(accepted["order_id"] == "o-1");
  CHECK_FALSE(accepted["status"].get<std::string>().empty());

  wait_status(c, "o-1", {"completed"});
  auto done = order_once(c, "o-1", 5);
  CHECK(done["total_cents"] == 2500);
  CHECK(done["customer_id"] == "c-1");
  CHECK(done["items"].size() == 1);
  CHECK(done["payment_id"].is_string());
  CHECK(done["tracking_id"].is_string());
  CHECK(done["estimated_delivery"].is_string());
  CHECK(done["steps"].size() >= 5);
  CHECK(done["reason"].is_null());
  CHECK(done["reason_code"].is_null());

  // The same order id again: its current state, never a second order.
  auto head = head_of(dir.sub("store"));
  res = post(c, "/v1/orders", order_json("o-1", "c-1", "sku-1", 2), auth("c-1"));
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(json::parse(res->body)["status"] == "completed");
  CHECK(head_of(dir.sub("store")) == head);

  CHECK(get_json(c, "/v1/orders/nope", 404)["error"]["code"] == "not_found");
  auto list = get_json(c, "/v1/customers/c-1/orders");
  REQUIRE(list["orders"].size() == 1);
  CHECK(list["orders"][0]["order_id"] == "o-1");
  CHECK(get_json(c, "/v1/customers/c-2/orders")["orders"].empty());

  auto stock = stock_once(c, "sku-1", "on_hand", 98);
  CHECK(stock["on_hand"] == 98);
  CHECK(stock["reserved"] == 0);

  // Cancelling a shipped order is refused.
  res = c.Post("/v1/orders/o-1/cancel", auth("c-1"), "", "application/json");
  REQUIRE(res);
  CHECK(res->status == 409);
  CHECK(json::parse(res->body)["error"]["code"] == "not_cancellable");

  // With slow gateways an order waits for payment and can be cancelled.
  res = post(c, "/admin/faults",
             {{"provider", "gateways"}, {"latency_ms", 1500}, {"latency_p99_ms", 1500}},
             auth("ops", true));
  REQUIRE(res);
  REQUIRE(res->status == 200);
  res = post(c, "/v1/orders", order_json("o-2", "c-1", "sku-1", 3), auth("c-1"));
  REQUIRE(res);
  REQUIRE(res->status == 202);
  res = c.Post("/v1/orders/o-2/cancel", auth("c-1"), "", "application/json");
  REQUIRE(res);
  INFO(res->body);
  CHECK(res->status == 202);
  auto cancelled = wait_status(c, "o-2", {"cancelled"});
  CHECK(cancelled["reason_code"] == "cancelled_by_customer");
  CHECK(cancelled["reason"] == "cancelled by customer");
  post(c, "/admin/faults", {{"provider", "gateways"}, {"latency_ms", 2}}, auth("ops", true));
  stock = stock_once(c, "sku-1", "reserved", 0);
  CHECK(stock["on_hand"] == 98);
  CHECK(stock["reserved"] == 0);

  // Out of stock: refused before a saga starts, nothing stored.
  put_on_sale(c, "sku-never-stocked");
  head = head_of(dir.sub("store"));
  res = post(c, "/v1/orders", order_json("o-3", "c-1", "sku-never-stocked"), auth("c-1"));
  REQUIRE(res);
  CHECK(res->status == 409);
  CHECK(json::parse(res->body)["error"]["code"] == "out_of_stock");
  CHECK(head_of(dir.sub("store")) == head);
  CHECK(n.signal_and_wait(SIGTERM, 30s) == 0);
}

TEST_CASE("every bad input gets its status and stores nothing", "[node][http]") {
  keel::temp_dir dir;
  node_process n{dir.sub("store"), {"--kafka", "off", "--read-timeout", "1"}};
  auto c = n.client();
  set_stock(c, "sku-1", 10);
  auto head = head_of(dir.sub("store"));
  REQUIRE(head == 2); // stock and price: the count sees what the node stores
  auto good = order_json("b-1", "c-1", "sku-1");
  struct bad {
    std::string body;
    std::string field;
    int status = 400;
  };
  std::vector<bad> cases;
  cases.push_back({"{\"order_id\": \"b-1\",", "body"});
  cases.push_back({"[]", "body"});
  auto j = good;
  j.erase("customer_id");
  cases.push_back({j.dump(), "customer_id"});
  j = good;
  j["items"][0]["quantity"] = 0;
  cases.push_back({j.dump(), "items[0].quantity"});
  j = good;
  j["items"][0]["quantity"] = 5000;
  cases.push_back({j.dump(), "items[0].quantity"});
  j = good;
  j["items"][0]["quantity"] = "one";
  cases.push_back({j.dump(), "items[0].quantity"});
  j = good;
  for (int i = 0; i < 120; ++i)
    j["items"].push_back(good["items"][0]);
  cases.push_back({j.dump(), "items"});
  j = good;
  j["shipping_address"]["name"] = std::string(100 * 1024, 'x');
  cases.push_back({j.dump(), "body", 413}); // refused before it is read
  for (auto& x : cases) {
    auto res = c.Post("/v1/orders", auth("c-1"), x.body, "application/json");
    REQUIRE(res);
    INFO(x.body.substr(0, 200) << " -> " << res->body);
    CHECK(res->status == x.status);
    auto err = json::parse(res->body)["error"];
    CHECK(err["field"] == x.field);
    CHECK_FALSE(err["message"].get<std::string>().empty());
  }
  // Admin bodies too.
  auto res = c.Put("/admin/stock/sku-1", auth("ops", true), "{\"quantity\":-5}", "application/json");
  REQUIRE(res);
  CHECK(res->status == 400);
  res = post(c, "/admin/faults", {{"provider", "gw-primary"}, {"error_rate", 7}}, auth("ops", true));
  REQUIRE(res);
  CHECK(res->status == 400);
  CHECK(json::parse(res->body)["error"]["field"] == "error_rate");
  CHECK(head_of(dir.sub("store")) == head);
  CHECK(get_json(c, "/v1/orders/b-1", 404)["error"]["code"] == "not_found");

  // A client that sends half a request and stalls is cut off.
  auto sock = connect_from("127.0.0.1", n.port());
  std::string partial = "POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"or";
  REQUIRE(::send(sock, partial.data(), partial.size(), 0) > 0);
  timeval tv{10, 0};
  ::setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  char buf[4096];
  auto started = std::chrono::steady_clock::now();
  ssize_t got = 0;
  while ((got = ::recv(sock, buf, sizeof buf, 0)) > 0) {
  }
  auto took = std::chrono::steady_clock::now() - started;
  ::close(sock);
  CHECK(got == 0); // closed by the node, not our 10 s receive timeout
  CHECK(took < 8s);
  CHECK(head_of(dir.sub("store")) == head);
}

TEST_CASE("writes need a valid token, the right customer or admin, and a rate", "[node][auth]") {
  keel::temp_dir dir;
  node_process n{dir.sub("store"), {"--kafka", "off", "--rate-limit", "20"}};
  auto c = n.client();
  auto order = order_json("a-1", "c-1", "sku-1");
  auto status = [&](const httplib::Headers& h) {
    auto res = post(c, "/v1/orders", order, h);
    REQUIRE(res);
    return res->status;
  };
  CHECK(status({}) == 401);
  CHECK(status({{"Authorization", "Bearer nonsense"}}) == 401);
  CHECK(status({{"Authorization", "Basic YTpi"}}) == 401);
  CHECK(status(auth("c-2")) == 403); // a customer for another customer
  auto res = c.Put("/admin/stock/sku-1", auth("c-1"), "{\"quantity\":5}", "application/json");
  REQUIRE(res);
  CHECK(res->status == 403);
  res = c.Get("/admin/kafka", auth("c-1"));
  REQUIRE(res);
  CHECK(res->status == 403);
  res = c.Put("/admin/stock/sku-1", "{\"quantity\":5}", "application/json");
  REQUIRE(res);
  CHECK(res->status == 401);
  CHECK(get_json(c, "/v1/orders/a-1", 404)["error"]["code"] == "not_found");

  // The rate limit: 20 per second per customer; the 21st within the second is 429.
  int limited = 0;
  std::string retry_after;
  for (int i = 0; i < 40 && limited == 0; ++i) {
    auto r = c.Post("/v1/orders/none/cancel", auth("c-9"), "", "application/json");
    REQUIRE(r);
    if (r->status == 429) {
      ++limited;
      retry_after = r->get_header_value("Retry-After");
    }
  }
  CHECK(limited == 1);
  CHECK_FALSE(retry_after.empty());
  CHECK(std::stoi(retry_after) >= 1);
  // Another customer is not affected.
  auto r = c.Post("/v1/orders/none/cancel", auth("c-8"), "", "application/json");
  REQUIRE(r);
  CHECK(r->status != 429);
  auto metrics = c.Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find("keel_rate_limit_rejections_total 1") != std::string::npos);
}

TEST_CASE("kcat reads the events from the embedded Kafka and promtool accepts /metrics",
          "[node][kafka]") {
  keel::temp_dir dir;
  node_process n{dir.sub("store"), {"--kafka", "embedded"}};
  auto c = n.client();
  set_stock(c, "sku-1", 50);
  for (int i = 0; i < 5; ++i)
    REQUIRE(post(c, "/v1/orders", order_json("k-" + std::to_string(i), "c-1", "sku-1"), auth("c-1"))
              ->status
            == 202);
  for (int i = 0; i < 5; ++i)
    wait_status(c, "k-" + std::to_string(i), {"completed"});
  auto res = c.Get("/admin/kafka", auth("ops", true));
  REQUIRE(res);
  REQUIRE(res->status == 200);
  auto kafka = json::parse(res->body);
  auto bootstrap = kafka["bootstrap_servers"].get<std::string>();
  CHECK(kafka["topics"].size() == 5);

  // Every order's events reach keel.orders, keyed by stream, with headers.
  std::set<std::string> keys;
  std::set<std::string> types;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (keys.size() < 5 && std::chrono::steady_clock::now() < deadline) {
    auto out = run_child("/usr/bin/kcat", {"-b", bootstrap, "-C", "-t", "keel.orders", "-o",
                                           "beginning", "-e", "-J", "-q"},
                         20s);
    std::istringstream lines{out.out};
    for (std::string line; std::getline(lines, line);) {
      auto m = json::parse(line, nullptr, false);
      if (m.is_discarded() || !m.contains("key"))
        continue;
      keys.insert(m["key"].get<std::string>());
      auto value = json::parse(m["payload"].get<std::string>());
      types.insert(value["type"].get<std::string>());
      CHECK(m["headers"].is_array());
    }
  }
  CHECK(keys == std::set<std::string>{"order-k-0", "order-k-1", "order-k-2", "order-k-3", "order-k-4"});
  CHECK(types.count("order_placed") == 1);
  CHECK(types.count("order_completed") == 1);
  auto payments = run_child("/usr/bin/kcat", {"-b", bootstrap, "-C", "-t", "keel.payments", "-o",
                                              "beginning", "-e", "-q", "-f", "%k\\n"},
                            20s);
  CHECK(payments.out.find("payment-k-3") != std::string::npos);

  // keel-inspect beside the node lists the outbox checkpoint with the
  // projections', and the audit of the live store finds nothing.
  bool outbox = false;
  for (int attempt = 0; attempt < 200 && !outbox; ++attempt) {
    auto cps = run_child(KEEL_INSPECT, {"checkpoints", "--json", "--data", dir.sub("store")}, 20s);
    REQUIRE(WEXITSTATUS(cps.status) == 0);
    std::istringstream lines{cps.out};
    for (std::string line; std::getline(lines, line);) {
      auto cp = json::parse(line);
      if (cp["checkpoint"] == "outbox/kafka" && cp["kind"] == "outbox" && cp["lag_events"] == 0)
        outbox = true;
    }
    if (!outbox)
      std::this_thread::sleep_for(50ms);
  }
  CHECK(outbox);
  auto audit = run_child(KEEL_INSPECT, {"audit", "--data", dir.sub("store")}, 20s);
  INFO(audit.out);
  CHECK(WEXITSTATUS(audit.status) == 0);
  CHECK_THAT(audit.out, Catch::Contains("5 orders (completed 5)"));

  // /metrics passes promtool and carries the figures.
  auto metrics = c.Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->status == 200);
  std::ofstream{dir.sub("metrics.txt")} << metrics->body;
  auto check = run_child("/bin/sh", {"-c", "promtool check metrics < " + dir.sub("metrics.txt") + " 2>&1"},
                         30s);
  INFO(check.out);
  CHECK(WIFEXITED(check.status));
  CHECK(WEXITSTATUS(check.status) == 0);
  for (auto* name : {"keel_orders_total{outcome=\"completed\"} 5", "keel_breaker_state{",
                     "keel_bulkhead_in_use{", "keel_stock_cache_hit_ratio", "keel_retry_queue_depth",
                     "keel_outbox_lag_events", "keel_projection_lag_events{",
                     "keel_orders_today{status=\"completed\"} 5", "keel_revenue_today_cents{currency=\"EUR\"} 6250",
                     "keel_provider_pool_workers{", "keel_saga_duration_seconds_bucket{",
                     "keel_store_memory_bytes{part=\"memtables\"}", "keel_store_version_cache_entries"})
    CHECK(metrics->body.find(name) != std::string::npos);
  auto health = get_json(c, "/health");
  CHECK(health["status"] == "ok");
  CHECK(health["score"].get<double>() >= 0.7);
  CHECK(health["components"].size() == 8); // five weighted; storage, supervisors and recovery
  CHECK(health["components"]["storage"]["detail"] == "writable");
}

TEST_CASE("parked payments go through payment.retry.queue and complete once the gateways heal, "
          "also after a SIGKILL",
          "[node][kafka]") {
  keel::temp_dir dir;
  auto data = dir.sub("store");
  std::vector<std::string> flags{"--kafka", "embedded", "--breaker-wait-ms", "500",
                                 "--payment-retry-ms", "300"};
  {
    node_process n{data, flags};
    auto c = n.client();
    set_stock(c, "sku-1", 100);
    auto res = post(c, "/admin/faults", {{"provider", "gateways"}, {"error_rate", 1.0}},
                    auth("ops", true));
    REQUIRE(res);
    REQUIRE(res->status == 200);
    for (int i = 0; i < 6; ++i)
      REQUIRE(post(c, "/v1/orders", order_json("p-" + std::to_string(i), "c-1", "sku-1"), auth("c-1"))
                ->status
              == 202);
    for (int i = 0; i < 6; ++i)
      wait_status(c, "p-" + std::to_string(i), {"pending_payment"});
    // Each parking is a message on the topic, consumed back by the node.
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (metric(c, "keel_retry_queue_consumed_total") < 6 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(100ms);
    CHECK(metric(c, "keel_retry_queue_published_total") >= 6);
    CHECK(metric(c, "keel_retry_queue_consumed_total") >= 6);
    auto bootstrap = json::parse(c.Get("/admin/kafka", auth("ops", true))->body)["bootstrap_servers"]
                       .get<std::string>();
    auto out = run_child("/usr/bin/kcat", {"-b", bootstrap, "-C", "-t", "payment.retry.queue", "-o",
                                           "beginning", "-e", "-J", "-q"},
                         20s);
    std::set<std::string> parked;
    std::istringstream lines{out.out};
    for (std::string line; std::getline(lines, line);) {
      auto m = json::parse(line, nullptr, false);
      if (m.is_discarded() || !m.contains("payload"))
        continue;
      auto v = json::parse(m["payload"].get<std::string>());
      parked.insert(v["order_id"].get<std::string>());
      CHECK(v["priority"] == "NORMAL");
      CHECK(v["retry_count"].get<int>() >= 1);
      CHECK_FALSE(v["correlation_id"].get<std::string>().empty());
      CHECK(m["headers"].dump().find("fallback-reason") != std::string::npos);
    }
    CHECK(parked.size() == 6);
    // The node dies with every order parked.
    CHECK(WIFSIGNALED(n.signal_and_wait(SIGKILL, 10s)));
  }
  // A new process (healthy gateways again): the queue is re-filled from the
  // order streams and drains once the breakers let payments through.
  node_process again{data, flags};
  CHECK(again.log().find("parked=6") != std::string::npos);
  auto c = again.client();
  for (int i = 0; i < 6; ++i) {
    auto done = wait_status(c, "p-" + std::to_string(i), {"completed"}, 30s);
    CHECK(done["payment_attempts"].get<int>() >= 1);
  }
  CHECK(metric(c, "keel_retry_queue_published_total") >= 6);
  // The depth counts messages the consumer has not read yet (refreshed every ~100 ms).
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (metric(c, "keel_retry_queue_depth") != 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(100ms);
  CHECK(metric(c, "keel_retry_queue_depth") == 0);
}

TEST_CASE("requests beyond the HTTP threads and their queue are shed with 503, idle connections are not",
          "[node][http]") {
  keel::temp_dir dir;
  node_process n{dir.sub("store"), {"--kafka", "off", "--http-threads", "1", "--http-queue", "0",
                                    "--rate-limit", "1000000"}};
  // Idle connections hold no handler thread: with more of them open than
  // threads and queue, a request is still served.
  std::vector<int> socks;
  for (int i = 0; i < 20; ++i)
    socks.push_back(connect_from("127.0.0.1", n.port()));
  httplib::Client c{"127.0.0.1", n.port()};
  auto res = c.Get("/v1/stock/sku-1");
  REQUIRE(res);
  CHECK(res->status == 404);
  for (auto s : socks)
    ::close(s);
  // Complete requests beyond one thread and no queue are refused at once.
  std::atomic<int> shed{0};
  std::atomic<int> served{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < 16; ++t)
    clients.emplace_back([&] {
      httplib::Client k{"127.0.0.1", n.port()};
      for (int i = 0; i < 50; ++i) {
        auto r = k.Get("/v1/stock/sku-1");
        if (!r)
          continue;
        if (r->status == 503) {
          CHECK(json::parse(r->body)["error"]["code"] == "overloaded");
          CHECK(r->get_header_value("Retry-After") == "1");
          ++shed;
        } else {
          ++served;
        }
      }
    });
  for (auto& t : clients)
    t.join();
  INFO("served " << served << ", shed " << shed);
  CHECK(shed > 0);
  CHECK(served > 0);
  CHECK(metric(c, "keel_load_shed_total") >= shed);
  // Afterwards the node serves normally.
  res = c.Get("/v1/stock/sku-1");
  REQUIRE(res);
  CHECK(res->status == 404);
}

TEST_CASE("a config file sets options and the command line wins over it", "[node][config]") {
  keel::temp_dir dir;
  std::ofstream{dir.sub("node.toml")} << "[run]\nkafka = \"off\"\nrate-limit = 3\nstore-memory-mb = 32\n"
                                      << "data = \"" << dir.sub("not-this-store") << "\"\n";
  node_process n{dir.sub("store"), {"--config", dir.sub("node.toml")}};
  auto c = n.client();
  std::vector<int> codes;
  for (int i = 0; i < 4; ++i) {
    auto res = c.Get("/v1/stock/x");
    REQUIRE(res);
    codes.push_back(res->status);
  }
  CHECK(codes == std::vector<int>{404, 404, 404, 429}); // rate-limit = 3 from the file
  CHECK(json::parse(c.Get("/admin/kafka", auth("ops", true))->body)["enabled"] == false);
  CHECK(metric(c, "keel_store_memory_budget_bytes") == 32 << 20);
  CHECK(std::filesystem::exists(dir.sub("store")));          // --data on the command line
  CHECK_FALSE(std::filesystem::exists(dir.sub("not-this-store")));
}

TEST_CASE("a stopped projection is skipped and rebuilt through keel-inspect --node while the node serves",
          "[node][inspect]") {
  keel::temp_dir dir;
  auto data = dir.sub("store");
  std::uint64_t poison = 0;
  {
    // A poison event before the node starts: the stock projection cannot
    // release units of a SKU it never saw.
    storage::options opts;
    opts.path = data;
    auto store = storage::event_store::open(opts);
    REQUIRE(store);
    std::vector<storage::new_event> evs;
    evs.push_back(storage::new_event::from(events::stock_released{"SKU-GHOST", "o-ghost", 3},
                                           events::event_id::random(), 1'788'220'800'000'000));
    REQUIRE((*store)->append("stock-SKU-GHOST", storage::expected_version::no_stream(),
                             std::move(evs)));
    poison = (*store)->last_position();
  }
  node_process n{data, {"--kafka", "off"}};
  auto c = n.client();
  auto admin = bearer("ops", true);
  auto token = admin.substr(std::string{"Bearer "}.size());
  auto stock_state = [&] {
    auto res = c.Get("/admin/projections", {{"Authorization", admin}});
    REQUIRE(res);
    REQUIRE(res->status == 200);
    auto body = json::parse(res->body);
    for (auto& p : body["projections"])
      if (p["name"] == "stock")
        return p;
    FAIL("no stock projection");
    return json{};
  };
  auto stopped = stock_state();
  CHECK(stopped["state"] == "stopped");
  CHECK(stopped["failure"]["position"] == poison);

  auto url = "http://127.0.0.1:" + std::to_string(n.port());
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.end(), {"--node", url, "--token", token});
    return run_child(KEEL_INSPECT, args, 60s);
  };
  // Wrong position: refused with 409, nothing changes.
  auto wrong = run({"projection", "skip", "stock", "--position", std::to_string(poison + 1)});
  CHECK(WEXITSTATUS(wrong.status) == 2);
  CHECK(stock_state()["state"] == "stopped");
  // A reader's token is not enough.
  auto reader = run_child(KEEL_INSPECT, {"projection", "skip", "stock", "--position", std::to_string(poison),
                                         "--node", url, "--token", bearer("c1").substr(7)}, 60s);
  CHECK(WEXITSTATUS(reader.status) == 2);

  auto skip = run({"projection", "skip", "stock", "--position", std::to_string(poison), "--note",
                   "ghost SKU"});
  INFO(skip.out);
  CHECK(WIFEXITED(skip.status));
  CHECK(WEXITSTATUS(skip.status) == 0);
  CHECK_THAT(skip.out, Catch::Contains("skipped by the node"));
  std::printf("%s", skip.out.c_str());
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (stock_state()["state"] != "live" && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  auto resumed = stock_state();
  CHECK(resumed["state"] == "live");
  // Past the poison; the node's own `$system-` events (pool resizes, breaker
  // transitions, more of them on a slow ASan build) may follow it.
  CHECK(resumed["position"].get<std::uint64_t>() >= poison);
  CHECK_FALSE(resumed.contains("failure"));

  // The skip is recorded in the store (readable beside the node) with the
  // token's subject.
  auto skips = run_child(KEEL_INSPECT, {"projection", "skips", "stock", "--json", "--data", data}, 60s);
  INFO(skips.out);
  auto rec = json::parse(skips.out.substr(0, skips.out.find('\n')));
  CHECK(rec["position"] == poison);
  CHECK(rec["by"] == "ops");
  CHECK(rec["note"] == "ghost SKU");

  // A rebuild while the node serves: the next generation, honouring the skip.
  auto gen = stock_state()["generation"].get<int>();
  auto rebuilt = run({"projection", "rebuild", "stock"});
  INFO(rebuilt.out);
  CHECK(WEXITSTATUS(rebuilt.status) == 0);
  CHECK(stock_state()["generation"] == gen + 1);
  CHECK(stock_state()["state"] == "live");
}

TEST_CASE("the node refuses to start without a JWT secret of at least 32 bytes, and never takes it on "
          "the command line",
          "[node][auth]") {
  keel::temp_dir dir;
  auto start = [&](std::vector<std::string> args) {
    std::vector<std::string> all{"run", "--data", dir.sub("store"), "--http", "127.0.0.1:0",
                                 "--kafka", "off"};
    all.insert(all.end(), args.begin(), args.end());
    std::string cmd = "unset KEEL_JWT_SECRET; exec '" + std::string{KEEL_NODE} + "'";
    for (auto& a : all)
      cmd += " '" + a + "'";
    return run_child("/bin/sh", {"-c", cmd + " 2>&1"}, 20s);
  };
  auto none = start({});
  CHECK(WEXITSTATUS(none.status) == 2);
  CHECK(none.out.find("no JWT secret") != std::string::npos);
  std::ofstream{dir.sub("short")} << "keel-demo-secret\n";
  auto short_one = start({"--jwt-secret-file", dir.sub("short")});
  CHECK(WEXITSTATUS(short_one.status) == 2);
  CHECK(short_one.out.find("at least 32") != std::string::npos);
  auto argv_secret = start({"--jwt-secret", test_secret});
  CHECK(WEXITSTATUS(argv_secret.status) == 2);
  CHECK_FALSE(std::filesystem::exists(dir.sub("store")));
}

TEST_CASE("Kafka TLS/SASL settings come from --kafka-config and anything else keeps the node from "
          "starting",
          "[node][kafka]") {
  keel::temp_dir dir;
  auto start = [&](const std::string& properties) {
    std::ofstream{dir.sub("kafka.properties")} << properties;
    std::string cmd = "KEEL_JWT_SECRET='" + test_secret + "' exec '" + std::string{KEEL_NODE}
                      + "' run --data '" + dir.sub("store") + "' --http 127.0.0.1:0 --kafka "
                      + "embedded --kafka-config '" + dir.sub("kafka.properties") + "'";
    return run_child("/bin/sh", {"-c", cmd + " 2>&1"}, 20s);
  };
  auto keel_own = start("acks=0\n");
  CHECK(WEXITSTATUS(keel_own.status) == 1);
  CHECK(keel_own.out.find("acks: only security.protocol") != std::string::npos);
  auto no_ca = start("security.protocol=ssl\nssl.ca.location=" + dir.sub("no-ca.pem") + "\n");
  CHECK(WEXITSTATUS(no_ca.status) == 1);
  CHECK(no_ca.out.find("ssl.ca.location") != std::string::npos);
  // Plaintext spelled out: the node starts and relays as usual.
  std::ofstream{dir.sub("kafka.properties")} << "security.protocol=plaintext\n";
  node_process n{dir.sub("store2"), {"--kafka", "embedded", "--kafka-config",
                                     dir.sub("kafka.properties")}};
  CHECK(n.log().find("settings=1") != std::string::npos);
}
