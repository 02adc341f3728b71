// A keel-node whose gateways and carriers are HTTP providers served by a
// real keel-sim process: orders complete over HTTP; with keel-sim killed
// the gateway breakers open and payments park; with keel-sim back on the
// same port the retry queue drains.

#include <csignal>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <thread>

#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "child_process.hpp"
#include "node_process.hpp"
#include "temp_dir.hpp"

using namespace keel::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

const std::string sim_key = "sim-api-key-0123456789";

/// A providers file naming keel-sim's four providers, gw-b preferred.
std::string providers_file(keel::temp_dir& dir, int sim_port, const std::string& key_file) {
  auto entry = [&](const std::string& name) {
    return json{{"name", name},
                {"type", "http"},
                {"base_url", "http://127.0.0.1:" + std::to_string(sim_port) + "/providers/" + name},
                {"api_key_file", key_file},
                {"timeout_ms", 2000},
                {"connect_timeout_ms", 300},
                {"connections", 8}};
  };
  json doc{{"gateways", {entry("gw-b"), entry("gw-a")}},
           {"carriers", {entry("ship-1"), entry("ship-2")}}};
  auto path = dir.sub("providers.json");
  std::ofstream{path} << doc.dump(2);
  return path;
}

/// The value of `family{breaker="name"}` in the node's /metrics (-1: absent).
double breaker_state(httplib::Client& c, const std::string& name) {
  auto res = c.Get("/metrics", auth("ops", true));
  REQUIRE(res);
  std::smatch m;
  std::regex re{"keel_breaker_state\\{breaker=\"" + name + "\"\\} ([0-9.]+)"};
  return std::regex_search(res->body, m, re) ? std::stod(m[1]) : -1;
}

json sim_stats(sim_process& sim) {
  auto c = sim.client();
  auto res = c.Get("/stats");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  return json::parse(res->body);
}

std::uint64_t successes(const json& stats, const std::string& name) {
  for (auto& p : stats["providers"])
    if (p["name"] == name)
      return p["distinct_successes"].get<std::uint64_t>();
  FAIL("no provider " << name << " in " << stats.dump());
  return 0;
}

std::set<std::string> place(node_process& n, httplib::Client& c, const std::string& prefix,
                            int count) {
  std::set<std::string> ids;
  for (int i = 0; i < count; ++i) {
    auto id = prefix + std::to_string(i);
    auto res = post(c, "/v1/orders", order_json(id, "c-" + prefix, "SKU-P"), auth("c-" + prefix));
    if (!res)
      FAIL("POST /v1/orders " << id << ": " << httplib::to_string(res.error()) << "\nnode log:\n"
                              << n.log());
    INFO(res->body);
    REQUIRE((res->status == 201 || res->status == 202));
    ids.insert(id);
  }
  return ids;
}

} // namespace

TEST_CASE("HTTP providers against keel-sim: orders complete, killing keel-sim opens the gateway "
          "breakers and parks payments, restarting it drains them",
          "[providers]") {
  keel::temp_dir dir;
  auto key_file = dir.sub("sim.key");
  std::ofstream{key_file} << sim_key << '\n';
  sim_process sim{dir.sub("sim"), {"--gateways", "gw-a,gw-b", "--carriers", "ship-1,ship-2",
                                   "--api-key-file", key_file}};
  auto providers = providers_file(dir, sim.port(), key_file);
  node_process n{dir.sub("store"), {"--kafka", "off", "--providers", providers,
                                    "--breaker-wait-ms", "500", "--payment-retry-ms", "200"}};
  auto c = n.client();
  put_on_sale(c, "SKU-P");
  stock(c, "SKU-P", 1000);

  // Over HTTP: the preferred gateway charges, a carrier ships.
  auto first = place(n, c, "http-", 10);
  for (auto& id : first) {
    auto o = wait_status(c, id, {"completed"});
    CHECK(o["payment_id"].get<std::string>().rfind("gw-b-", 0) == 0);
  }
  auto before = sim_stats(sim);
  CHECK(successes(before, "gw-b") >= 10);
  CHECK(successes(before, "ship-1") + successes(before, "ship-2") >= 10);

  // keel-sim gone: every call is refused, the gateway breakers open and the
  // payments park (pending_payment), nothing is charged or lost.
  REQUIRE(sim.signal_and_wait(SIGKILL, 10s) != -1);
  auto parked = place(n, c, "down-", 25);
  for (auto& id : parked)
    wait_status(c, id, {"pending_payment"});
  // Open, between half-open trials that fail (the breaker waits 500 ms).
  auto opened = [&](const std::string& gw) {
    for (int i = 0; i < 200; ++i) {
      if (breaker_state(c, gw) == 1)
        return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  };
  CHECK(opened("gw-a"));
  CHECK(opened("gw-b"));

  // keel-sim back on its port: the retry queue re-drives every parked payment.
  sim.restart_same_port();
  for (auto& id : parked)
    wait_status(c, id, {"completed"}, 30s);
  auto after = sim_stats(sim);
  CHECK(successes(after, "gw-a") + successes(after, "gw-b") >= parked.size());
  CHECK(breaker_state(c, "gw-b") == 0);
  INFO(n.log());
  CHECK(n.signal_and_wait(SIGTERM, 30s) == 0);
}

TEST_CASE("a node refuses a providers file with an unknown field, naming it", "[providers]") {
  keel::temp_dir dir;
  auto path = dir.sub("providers.json");
  std::ofstream{path} << R"({"gateways": [{"name": "g", "type": "simulated", "colour": "red"}],
                             "carriers": [{"name": "c", "type": "simulated"}]})";
  auto secret = dir.sub("secret");
  std::ofstream{secret} << test_secret << '\n';
  auto res = run_child(KEEL_NODE, {"run", "--data", dir.sub("store"), "--http", "127.0.0.1:0",
                                   "--jwt-secret-file", secret, "--providers", path},
                       std::chrono::seconds(30));
  CHECK(WIFEXITED(res.status));
  CHECK(WEXITSTATUS(res.status) == 2);
}
