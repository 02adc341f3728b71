// keel-node killed under load: SIGKILL loses no acknowledged order, SIGTERM
// drains before it exits.

#include <catch2/catch.hpp>

#include <atomic>
#include <csignal>
#include <mutex>
#include <set>
#include <thread>

#include <sys/wait.h>

#include <nlohmann/json.hpp>

#include "node_process.hpp"
#include "temp_dir.hpp"

using namespace keel::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

constexpr int skus = 20;

json order(const std::string& id) {
  auto sku = "sku-" + std::to_string(std::hash<std::string>{}(id) % skus);
  return {{"order_id", id},
          {"customer_id", "c-load"},
          {"items", {{{"sku", sku}, {"quantity", 1}, {"unit_price_cents", 990}}}},
          {"currency", "EUR"},
          {"shipping_address",
           {{"name", "B"}, {"street", "S"}, {"city", "C"}, {"postal_code", "1"}, {"country", "FR"}}}};
}

/// Clients placing orders until stopped; remembers every acknowledged id.
struct load {
  std::atomic<bool> stop{false};
  std::mutex mtx;
  std::set<std::string> acked;
  std::atomic<int> errors{0};
  std::vector<std::thread> threads;

  void start(int port, int clients, const std::string& prefix) {
    for (int t = 0; t < clients; ++t)
      threads.emplace_back([this, port, t, prefix] {
        httplib::Client c{"127.0.0.1", port};
        c.set_keep_alive(true);
        c.set_read_timeout(10, 0);
        httplib::Headers h{{"Authorization", bearer("c-load")}};
        for (int i = 0; !stop; ++i) {
          auto id = prefix + "-" + std::to_string(t) + "-" + std::to_string(i);
          auto res = c.Post("/v1/orders", h, order(id).dump(), "application/json");
          if (res && (res->status == 202 || res->status == 200)) {
            std::lock_guard<std::mutex> guard{mtx};
            acked.insert(id);
          } else {
            ++errors;
            if (!res)
              std::this_thread::sleep_for(5ms); // the node is gone
          }
        }
      });
  }

  void join() {
    stop = true;
    for (auto& t : threads)
      t.join();
  }
};

void seed(node_process& n) {
  auto c = n.client();
  for (int i = 0; i < skus; ++i) {
    auto res = c.Put(("/admin/stock/sku-" + std::to_string(i)).c_str(),
                     {{"Authorization", bearer("ops", true)}}, "{\"quantity\":1000000}",
                     "application/json");
    REQUIRE(res);
    REQUIRE(res->status == 200);
  }
}

/// Every id in `ids` reaches "completed" on node `n`.
void all_complete(node_process& n, const std::set<std::string>& ids) {
  auto c = n.client();
  auto deadline = std::chrono::steady_clock::now() + 60s;
  std::size_t done = 0;
  std::string last;
  for (auto& id : ids) {
    for (;;) {
      auto res = c.Get(("/v1/orders/" + id).c_str());
      if (res && res->status == 200) {
        auto status = json::parse(res->body)["status"].get<std::string>();
        if (status == "completed") {
          ++done;
          break;
        }
        last = id + ": " + status;
      } else {
        last = id + ": " + (res ? std::to_string(res->status) + " " + res->body : "no answer");
      }
      if (std::chrono::steady_clock::now() > deadline)
        FAIL("acknowledged orders not completed after restart: " << done << " of " << ids.size()
                                                                 << " done; last " << last);
      std::this_thread::sleep_for(20ms);
    }
  }
  CHECK(done == ids.size());
}

} // namespace

TEST_CASE("SIGKILL under load then a restart keeps and completes every acknowledged order",
          "[node][crash]") {
  temp_dir dir;
  auto data = dir.sub("store");
  std::set<std::string> acked;
  {
    node_process n{data};
    seed(n);
    load l;
    l.start(n.port(), 8, "k");
    std::this_thread::sleep_for(1500ms);
    auto status = n.signal_and_wait(SIGKILL, 10s);
    CHECK(WIFSIGNALED(status));
    l.join();
    acked = l.acked;
  }
  INFO("acknowledged before the kill: " << acked.size());
  REQUIRE(acked.size() >= 50);
  node_process again{data};
  all_complete(again, acked);
  CHECK(again.log().find("recovered") != std::string::npos);
}

TEST_CASE("SIGTERM stops accepting, drains in-flight sagas and exits 0", "[node][crash]") {
  temp_dir dir;
  auto data = dir.sub("store");
  std::set<std::string> acked;
  std::string log;
  {
    node_process n{data};
    seed(n);
    load l;
    l.start(n.port(), 8, "t");
    std::this_thread::sleep_for(1500ms);
    auto status = n.signal_and_wait(SIGTERM, 60s);
    l.join();
    log = n.log();
    INFO(log);
    REQUIRE(status != -1);
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(log.find("drained\" sagas_in_flight=0") != std::string::npos);
    acked = l.acked;
  }
  REQUIRE(acked.size() >= 50);
  node_process again{data};
  // Drained: nothing was left to re-drive, and everything acknowledged is complete.
  CHECK(again.log().find("redriven=0") != std::string::npos);
  all_complete(again, acked);
}
