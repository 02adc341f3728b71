// A full disk under a real keel-node (security review M2): the store on a
// tmpfs of limited size, mounted for the test, filled by another file.
// Below the free-space reserve writes are refused with 503
// storage_unavailable at once (never 500, never a wait for the call
// timeout), /ready and /health say so, the log says it once, nothing
// acknowledged is lost, and once space returns the node writes again by
// itself; after a restart the audit is clean.

#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "child_process.hpp"
#include "node_process.hpp"
#include "small_disk.hpp"
#include "temp_dir.hpp"

using namespace keel;
using namespace keel::test;
using nlohmann::json;
using namespace std::chrono_literals;

TEST_CASE("a full disk gets 503 storage_unavailable at once, /ready and /health say so, and "
          "nothing acknowledged is lost",
          "[node][storage]") {
  if (::geteuid() != 0) {
    WARN("not root: cannot mount a tmpfs; skipped");
    return;
  }
  small_disk disk{128};
  REQUIRE(disk.mounted);
  auto data = disk.path + "/store";
  std::set<std::string> acknowledged;
  std::string log;
  const std::vector<std::string> flags{"--kafka", "off", "--min-free-disk-mb", "32"};
  {
    node_process n{data, flags};
    auto c = n.client();
    REQUIRE(c.Put("/admin/stock/sku-1", auth("ops", true), R"({"quantity":1000000})",
                  "application/json")->status == 200);
    put_on_sale(c, "sku-1");
    int next = 0;
    auto place = [&] {
      auto id = "d-" + std::to_string(next++);
      auto t0 = std::chrono::steady_clock::now();
      auto res = post(c, "/v1/orders", order_json(id, "c-1", "sku-1"), auth("c-1"));
      auto took = std::chrono::steady_clock::now() - t0;
      if (!res) {
        auto l = n.log();
        FAIL("no answer to " << id << "; the node's log ends: "
                             << l.substr(l.size() > 3000 ? l.size() - 3000 : 0));
      }
      if (res->status == 202 || res->status == 200)
        acknowledged.insert(id);
      return std::make_tuple(res->status, json::parse(res->body), took);
    };
    for (int i = 0; i < 20; ++i)
      REQUIRE(std::get<0>(place()) == 202);
    auto all_ended = [&] {
      for (auto& id : acknowledged) {
        auto r = c.Get(("/v1/orders/" + id).c_str(), auth("ops", true));
        if (!r || r->status != 200 || json::parse(r->body)["status"] != "completed")
          return false;
      }
      return true;
    };
    auto until = std::chrono::steady_clock::now() + 20s;
    while (!all_ended() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(50ms);
    REQUIRE(all_ended());

    // The disk fills up (someone else's files): 16 MiB left, below the reserve.
    fill_disk(disk.path, disk.path + "/filler", 16u << 20);
    // Orders until the disk refuses one; every answer comes fast.
    int status = 202;
    json body;
    for (int i = 0; i < 2000 && (status == 202 || status == 200); ++i) {
      auto [st, b, took] = place();
      status = st;
      body = b;
      CHECK(took < 3s);
    }
    INFO(body.dump());
    REQUIRE(status == 503);
    CHECK(body["error"]["code"] == "storage_unavailable");
    CHECK(body.dump().find(disk.path) == std::string::npos); // no file names for clients
    // From now on: refused at once, never 500.
    for (int i = 0; i < 100; ++i) {
      auto [st, b, took] = place();
      CHECK(st == 503);
      CHECK(b["error"]["code"] == "storage_unavailable");
      CHECK(took < 1s);
    }
    auto ready = c.Get("/ready");
    REQUIRE(ready);
    CHECK(ready->status == 503);
    auto health = c.Get("/health");
    REQUIRE(health);
    CHECK(health->status == 503);
    auto h = json::parse(health->body);
    CHECK(h["status"] == "critical");
    CHECK(h["components"]["storage"]["score"] == 0.0);
    CHECK(metric(c, "keel_storage_writable") == 0);

    auto detail = h["components"]["storage"]["detail"].get<std::string>();
    CHECK(detail.find("disk almost full") != std::string::npos);
    CHECK(detail.find("resuming by itself") != std::string::npos);

    // Space returns: the node resumes by itself, no restart.
    std::filesystem::remove(disk.path + "/filler");
    auto deadline = std::chrono::steady_clock::now() + 5s;
    while (std::chrono::steady_clock::now() < deadline && c.Get("/ready")->status != 200)
      std::this_thread::sleep_for(100ms);
    CHECK(c.Get("/ready")->status == 200);
    CHECK(metric(c, "keel_storage_writable") == 1);
    REQUIRE(std::get<0>(place()) == 202);
    CHECK(n.signal_and_wait(SIGTERM, 40s) == 0);
    log = n.log();
  }
  // The state change is logged once, not per request.
  std::size_t lines = 0;
  for (auto at = log.find("the store cannot write"); at != std::string::npos;
       at = log.find("the store cannot write", at + 1))
    ++lines;
  CHECK(lines == 1);
  CHECK(log.find("writing again") != std::string::npos);

  // Restarted: every acknowledged order is there and ends.
  {
    node_process n{data, flags};
    auto c = n.client();
    for (auto& id : acknowledged) {
      auto deadline = std::chrono::steady_clock::now() + 30s;
      std::string status;
      while (std::chrono::steady_clock::now() < deadline) {
        auto res = c.Get(("/v1/orders/" + id).c_str(), auth("ops", true));
        REQUIRE(res);
        REQUIRE(res->status == 200);
        status = json::parse(res->body)["status"].get<std::string>();
        if (status == "completed")
          break;
        std::this_thread::sleep_for(50ms);
      }
      INFO(id);
      CHECK(status == "completed");
    }
    REQUIRE(post(c, "/v1/orders", order_json("after-1", "c-1", "sku-1"), auth("c-1"))->status
            == 202);
    CHECK(n.signal_and_wait(SIGTERM, 30s) == 0);
  }
  auto audit = run_child(KEEL_INSPECT, {"audit", "--data", data}, 60s);
  INFO(audit.out);
  CHECK(WEXITSTATUS(audit.status) == 0);
}
