// keel-bench cluster: what a cluster costs and gives on this machine. Starts
// a throwaway etcd and keel-node processes (Kafka off, fsync on) and measures
//   - forwarding overhead: GET /v1/orders/{id} on the order's owner vs on
//     another node (forwarded over CAF), p50/p99, idle and under load;
//   - orders/s through 3 nodes against 1 node alone (no etcd);
//   - from a SIGKILL to the first fast 503 for the lost node's orders;
//   - from a fourth node's start to a settled, balanced map.

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "bench.hpp"
#include "http_client.hpp"
#include "local_cluster.hpp"

namespace keel::bench {

namespace {

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "keel-bench cluster: %s\n", why.c_str());
  std::exit(1);
}

constexpr std::uint64_t skus = 64;

void seed(const std::string& url, token_cache& tokens) {
  if (auto why = seed_skus(url, tokens, skus, 100000000); !why.empty())
    fail(why);
}

std::string body_of(const std::string& id, std::uint64_t n) {
  std::vector<http_line> lines{{http_sku(1 + n % skus), 1, http_price(1 + n % skus)},
                               {http_sku(1 + (n * 7 + 3) % skus), 1,
                                http_price(1 + (n * 7 + 3) % skus)}};
  return order_body(id, "cust-" + std::to_string(n % 1000), lines);
}

/// `clients` closed-loop clients place orders for `seconds`, client i through
/// urls[i % n]; returns the orders acknowledged (202) per second, and their ids.
double place_for(const std::vector<std::string>& urls, std::uint64_t clients, double seconds,
                 token_cache& tokens, const std::string& prefix, std::vector<std::string>* ids) {
  std::atomic<std::uint64_t> ok{0};
  std::mutex mtx;
  auto t0 = seconds_now();
  std::vector<std::thread> threads;
  for (std::uint64_t i = 0; i < clients; ++i)
    threads.emplace_back([&, i] {
      auto c = connect_warm(*parse_url(urls[i % urls.size()]));
      retry_counts counts;
      for (std::uint64_t n = 0; seconds_now() - t0 < seconds; ++n) {
        auto id = prefix + "-" + std::to_string(i) + "-" + std::to_string(n);
        auto a = send_until_final(*c, "POST", "/v1/orders", body_of(id, i * 100003 + n),
                                  tokens.customer("cust-" + std::to_string((i * 100003 + n) % 1000)),
                                  counts, 30);
        if (a.status == 202) {
          ok++;
          if (ids != nullptr) {
            std::lock_guard<std::mutex> guard{mtx};
            ids->push_back(id);
          }
        }
      }
    });
  for (auto& t : threads)
    t.join();
  return static_cast<double>(ok.load()) / (seconds_now() - t0);
}

struct latencies {
  double p50 = 0;
  double p99 = 0;
};

/// GETs each of `ids` on `url` (as an admin) `rounds` times; milliseconds.
latencies probe(const std::string& url, const std::vector<std::string>& ids, int rounds,
                token_cache& tokens) {
  auto c = connect_warm(*parse_url(url));
  auto admin = tokens.admin("probe");
  std::vector<double> ms;
  for (int r = 0; r < rounds; ++r)
    for (auto& id : ids) {
      auto t = seconds_now();
      auto a = send(*c, "GET", "/v1/orders/" + id, {}, admin);
      if (a.status != 200)
        fail("GET " + url + "/v1/orders/" + id + ": " + std::to_string(a.status) + " " + a.body);
      ms.push_back((seconds_now() - t) * 1000);
    }
  return {percentile(ms, 50), percentile(ms, 99)};
}

/// Order ids of `ids` whose slot `node` holds.
std::vector<std::string> owned_by(const cluster::cluster_view& v, const std::string& node,
                                  const std::vector<std::string>& ids, std::size_t n) {
  std::vector<std::string> out;
  for (auto& id : ids)
    if (out.size() < n && v.holders[cluster::slot_of(id, v.slots)].node == node)
      out.push_back(id);
  return out;
}

struct figures {
  std::vector<double> one;
  std::vector<double> three;
  latencies local_idle, forwarded_idle, local_busy, forwarded_busy;
  double kill_to_503_ms = -1;
  double slowest_503_ms = 0;
  double lease_gone_ms = -1;
  double join_ready_ms = 0;
  double join_settled_ms = 0;
};

double baseline_run(std::uint64_t clients, double seconds, int run) {
  temp_dir dir{"keel-cluster-bench"};
  server_process::options po;
  po.program = executable_dir() + "/keel-node";
  po.args = {"run", "--data", dir.path() + "/alone", "--http", "127.0.0.1:0", "--kafka", "off"};
  po.base = dir.path() + "/alone";
  po.ready_path = "/ready";
  auto secret = random_secret();
  po.env = {{"KEEL_JWT_SECRET", secret}};
  std::string why;
  auto p = server_process::start(po, why);
  if (!p)
    fail("cannot start a node: " + why);
  token_cache tokens{secret};
  auto url = "http://127.0.0.1:" + std::to_string(p->port());
  seed(url, tokens);
  auto rate = place_for({url}, clients, seconds, tokens, "one" + std::to_string(run), nullptr);
  p->stop(std::chrono::seconds(60));
  return rate;
}

void kill_and_join(local_cluster& lc, const std::vector<std::string>& ids, token_cache& tokens,
                   figures& f) {
  auto v = lc.view();
  auto victims = owned_by(v, "n3", ids, 20);
  if (victims.empty())
    fail("no order of n3 to probe");
  auto c = connect_warm(*parse_url(lc.url("n1")));
  auto admin = tokens.admin("probe");
  auto t0 = seconds_now();
  lc.kill("n3");
  // Probes for 3 s at least, and until the lease is gone (a restart before
  // would be refused: its node id is still a live member's).
  for (std::size_t i = 0; seconds_now() - t0 < 3 || (f.lease_gone_ms < 0 && seconds_now() - t0 < 15);
       ++i) {
    auto t = seconds_now();
    auto a = send(*c, "GET", "/v1/orders/" + victims[i % victims.size()], {}, admin);
    auto ms = (seconds_now() - t) * 1000;
    if (a.status == 503) {
      if (f.kill_to_503_ms < 0)
        f.kill_to_503_ms = (t - t0) * 1000;
      f.slowest_503_ms = std::max(f.slowest_503_ms, ms);
    }
    if (f.lease_gone_ms < 0 && i % 10 == 0) {
      auto now = lc.view();
      if (now.member("n3") == nullptr)
        f.lease_gone_ms = (seconds_now() - t0) * 1000;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::string why;
  if (!lc.restart("n3", why) || !lc.wait_balanced(std::chrono::seconds(60)))
    fail("n3 did not come back: " + why);
  auto j0 = seconds_now();
  if (!lc.add("n4", why))
    fail("cannot add n4: " + why);
  auto j1 = seconds_now();
  if (!lc.wait_balanced(std::chrono::seconds(120)))
    fail("the map did not settle after n4 joined");
  f.join_ready_ms = (j1 - j0) * 1000;
  f.join_settled_ms = (seconds_now() - j1) * 1000;
}

void print(const figures& f, std::uint64_t clients, std::uint64_t nodes) {
  auto one = f.one, three = f.three;
  auto m1 = median(one), m3 = median(three);
  std::printf("\norders/s (closed loop, %llu clients, 2 lines each, fsync on, Kafka off; median "
              "of %zu runs):\n  1 node alone:  %.0f\n  %llu nodes:      %.0f  (%.2fx)\n",
              u(clients), f.one.size(), m1, u(nodes), m3, m1 > 0 ? m3 / m1 : 0);
  std::printf("forwarding overhead, GET /v1/orders/{id} (ms):\n"
              "  idle:       owner p50 %.2f p99 %.2f | forwarded p50 %.2f p99 %.2f\n"
              "  under load: owner p50 %.2f p99 %.2f | forwarded p50 %.2f p99 %.2f\n",
              f.local_idle.p50, f.local_idle.p99, f.forwarded_idle.p50, f.forwarded_idle.p99,
              f.local_busy.p50, f.local_busy.p99, f.forwarded_busy.p50, f.forwarded_busy.p99);
  std::printf("SIGKILL of n3: first 503 for its orders %.1f ms after the kill (slowest 503 "
              "answer %.1f ms); its lease gone from etcd after %.0f ms\n",
              f.kill_to_503_ms, f.slowest_503_ms, f.lease_gone_ms);
  std::printf("a fourth node: ready %.0f ms after its start, the map settled and balanced "
              "%.0f ms later\n",
              f.join_ready_ms, f.join_settled_ms);
  nlohmann::json j{{"orders_per_s_one", m1},
                   {"orders_per_s_cluster", m3},
                   {"nodes", nodes},
                   {"ratio", m1 > 0 ? m3 / m1 : 0},
                   {"forward_idle_p50_ms", f.forwarded_idle.p50},
                   {"forward_idle_p99_ms", f.forwarded_idle.p99},
                   {"local_idle_p50_ms", f.local_idle.p50},
                   {"local_idle_p99_ms", f.local_idle.p99},
                   {"forward_busy_p50_ms", f.forwarded_busy.p50},
                   {"forward_busy_p99_ms", f.forwarded_busy.p99},
                   {"local_busy_p50_ms", f.local_busy.p50},
                   {"local_busy_p99_ms", f.local_busy.p99},
                   {"kill_to_503_ms", f.kill_to_503_ms},
                   {"slowest_503_ms", f.slowest_503_ms},
                   {"lease_gone_ms", f.lease_gone_ms},
                   {"join_ready_ms", f.join_ready_ms},
                   {"join_settled_ms", f.join_settled_ms}};
  std::printf("%s\n", j.dump().c_str());
}

} // namespace

int run_cluster(int argc, char** argv) {
  auto a = parse(argc, argv, 2, {"--seconds", "--clients", "--runs", "--slots"}, {});
  auto seconds = static_cast<double>(a.number("--seconds", 10));
  auto clients = a.number("--clients", 24);
  auto runs = a.number("--runs", 3);
  local_cluster::options o;
  o.slots = static_cast<std::uint32_t>(a.number("--slots", 64));
  o.node_args = {"--kafka", "off"};
  std::string why;
  auto lc = local_cluster::start(o, why);
  if (!lc)
    fail("cannot start etcd: " + why);
  const std::vector<std::string> three{"n1", "n2", "n3"};
  if (!lc->add_all(three, why))
    fail("the cluster did not form: " + why);
  if (!lc->wait_balanced(std::chrono::seconds(60))) {
    auto v = lc->view();
    fail("the cluster did not settle: map version " + std::to_string(v.map.version) + ", "
         + std::to_string(v.members.size()) + " members, n1 holds "
         + std::to_string(v.held_by("n1")) + ", log of n1:\n"
         + lc->process("n1").log_tail(10));
  }
  token_cache tokens{lc->secret()};
  seed(lc->url("n1"), tokens);
  std::vector<std::string> urls;
  for (auto& id : three) {
    urls.push_back(lc->url(id));
    if (!wait_priced(lc->url(id), skus))
      fail(lc->url(id) + " does not price the SKUs");
  }
  std::printf("etcd %s; nodes %s %s %s; %u slots\n", lc->etcd_url().c_str(), urls[0].c_str(),
              urls[1].c_str(), urls[2].c_str(), o.slots);
  figures f;
  std::vector<std::string> ids;
  for (std::uint64_t r = 0; r < runs; ++r) {
    // Alternating, so that both see the same machine state.
    f.one.push_back(baseline_run(clients, seconds, static_cast<int>(r)));
    f.three.push_back(place_for(urls, clients, seconds, tokens, "c" + std::to_string(r), &ids));
    std::printf("run %llu: 1 node %.0f orders/s, 3 nodes %.0f orders/s\n", u(r + 1), f.one.back(),
                f.three.back());
  }
  auto v = lc->view();
  auto probes = owned_by(v, "n2", ids, 100);
  f.local_idle = probe(lc->url("n2"), probes, 5, tokens);
  f.forwarded_idle = probe(lc->url("n1"), probes, 5, tokens);
  {
    std::thread load{[&] { place_for(urls, clients, seconds, tokens, "busy", nullptr); }};
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    f.local_busy = probe(lc->url("n2"), probes, 2, tokens);
    f.forwarded_busy = probe(lc->url("n1"), probes, 2, tokens);
    load.join();
  }
  kill_and_join(*lc, ids, tokens, f);
  print(f, clients, three.size());
  return 0;
}

} // namespace keel::bench
