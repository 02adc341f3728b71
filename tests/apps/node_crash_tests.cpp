// keel-node killed under load: SIGKILL loses no acknowledged order, SIGTERM
// drains before it exits.

#include <catch2/catch.hpp>

#include <atomic>
#include <csignal>
#include <mutex>
#include <set>
#include <thread>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "keel/storage/event_store.hpp"

#include <nlohmann/json.hpp>

#include "child_process.hpp"
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
    put_on_sale(c, "sku-" + std::to_string(i), 990);
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
      auto res = c.Get(("/v1/orders/" + id).c_str(), {{"Authorization", bearer("ops", true)}});
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
  keel::temp_dir dir;
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
  keel::temp_dir dir;
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

namespace {

/// The last position of the store a node is writing (a secondary instance).
std::uint64_t head_of_store(const std::string& data) {
  auto store = keel::storage::event_store::open_beside(data);
  REQUIRE(store);
  return (*store)->last_position();
}

} // namespace

TEST_CASE("keel-inspect tail --follow beside a node under load sees every event once, in order",
          "[node][inspect]") {
  keel::temp_dir dir;
  auto data = dir.sub("store");
  node_process n{data, {"--kafka", "off"}};
  seed(n);

  // keel-inspect as an operator runs it, its stdout read line by line with
  // the time each line arrived.
  auto tail = start_child(KEEL_INSPECT, {"tail", "--follow", "--json", "--data", data});
  auto pid = tail.pid;
  struct seen {
    std::uint64_t position;
    std::int64_t event_us;
    std::int64_t arrived_us;
  };
  std::mutex mtx;
  std::vector<seen> lines;
  std::atomic<std::uint64_t> max_seen{0};
  std::string bad_line;
  std::thread reader{[&] {
    FILE* in = ::fdopen(tail.out, "r");
    char* buf = nullptr;
    std::size_t cap = 0;
    ssize_t len;
    while ((len = ::getline(&buf, &cap, in)) > 0) {
      auto arrived = keel::storage::now_us();
      try {
        auto j = json::parse(std::string(buf, static_cast<std::size_t>(len)));
        std::lock_guard<std::mutex> guard{mtx};
        lines.push_back({j["position"].get<std::uint64_t>(), j["timestamp_us"].get<std::int64_t>(),
                         arrived});
        max_seen = std::max<std::uint64_t>(max_seen, lines.back().position);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> guard{mtx};
        bad_line = std::string(buf, static_cast<std::size_t>(len)) + ": " + e.what();
      }
    }
    std::free(buf);
    std::fclose(in);
  }};

  // Load: 4 clients placing orders for 3 s.
  load l;
  auto load_from = head_of_store(data);
  l.start(n.port(), 4, "follow");
  std::this_thread::sleep_for(3s);
  l.join();
  // Let the sagas end, then wait for the follower to reach the head.
  all_complete(n, l.acked);
  auto head = head_of_store(data);
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (max_seen < head && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  REQUIRE(::kill(pid, SIGTERM) == 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  reader.join();
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  INFO(bad_line);
  CHECK(bad_line.empty());

  // Exactly once, in order: positions 1..head with no gap and no repeat.
  REQUIRE(lines.size() == head);
  for (std::size_t i = 0; i < lines.size(); ++i)
    if (lines[i].position != i + 1)
      FAIL("line " << i << " has position " << lines[i].position);
  INFO(l.acked.size() << " orders placed under load, " << head - load_from << " events");
  CHECK(l.acked.size() > 50);

  // How soon each event written under load was printed (its time is taken
  // when the saga creates it, before the group commit).
  std::vector<std::int64_t> delays;
  for (const auto& x : lines)
    if (x.position > load_from)
      delays.push_back(x.arrived_us - x.event_us);
  std::sort(delays.begin(), delays.end());
  auto at = [&](double q) {
    return delays[std::min(delays.size() - 1, static_cast<std::size_t>(q * static_cast<double>(delays.size())))];
  };
  // A figure, not a check (timing differs by build: a Release build prints
  // p50 ~14 ms, a Debug ASan build beside another test ~130 ms).
  std::printf("tail --follow: %zu events under load, seen after p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
              delays.size(), at(0.5) / 1e3, at(0.99) / 1e3, static_cast<double>(delays.back()) / 1e3);
}

TEST_CASE("SIGTERM while payments keep parking after the drain timed out exits cleanly and loses "
          "no acknowledged order (review L1)",
          "[node][crash]") {
  // Payments fail after 1.5 s, the drain gives up after 1 s: sagas park while
  // the node shuts down, after the retry queue stopped and while the actors
  // still run. Before the fix a park then reached the pipeline object through
  // a pointer to it that shutdown had already freed (a use-after-free the
  // sanitizer build reports; the release build may survive it by chance).
  for (const char* kafka : {"off", "embedded"}) {
    DYNAMIC_SECTION("kafka " << kafka) {
      keel::temp_dir dir;
      auto data = dir.sub("store");
      std::vector<std::string> flags{"--kafka", kafka, "--drain-timeout", "1", "--payment-retry-ms",
                                     "20", "--breaker-wait-ms", "100"};
      std::set<std::string> acked;
      {
        node_process n{data, flags};
        seed(n);
        auto c = n.client();
        auto res = post(c, "/admin/faults",
                        {{"provider", "gateways"}, {"error_rate", 1.0}, {"latency_ms", 1500}},
                        auth("ops", true));
        REQUIRE(res);
        REQUIRE(res->status == 200);
        load l;
        l.start(n.port(), 8, std::string{"l1-"} + kafka);
        std::this_thread::sleep_for(1500ms);
        auto status = n.signal_and_wait(SIGTERM, 60s);
        l.join();
        auto log = n.log();
        INFO(log);
        REQUIRE(status != -1);
        CHECK(WIFEXITED(status));
        CHECK(WEXITSTATUS(status) == 0);
        // The drain timed out with sagas still waiting for payments.
        CHECK(log.find("drained\" sagas_in_flight=0") == std::string::npos);
        CHECK(log.find("AddressSanitizer") == std::string::npos);
        CHECK(log.find("runtime error") == std::string::npos);
        acked = l.acked;
      }
      REQUIRE(acked.size() >= 20);
      // Healthy gateways again (faults are not kept): every acknowledged
      // order is re-driven from its stream and completes.
      node_process again{data, flags};
      all_complete(again, acked);
    }
  }
}
