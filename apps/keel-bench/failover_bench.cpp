// keel-bench failover and keel-bench replication: what a replicated group
// (--group, a primary and a synchronous standby) gives and costs on this
// machine, with a throwaway etcd and keel-node processes (Kafka off, fsync on).
//   failover:    SIGKILL of the primary under load, N times (the killed node
//                comes back as the standby in between): from the kill to the
//                first order acknowledged after it, p50/p99/max, and every
//                acknowledged order looked up at the end (lost ones counted).
//   replication: the same node with and without a synchronous standby: the
//                latency of an order's 202 (its first event appended and, with
//                a standby, on both machines) from one client, p50/p99; and
//                sagas completed per second under closed-loop load.

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "bench.hpp"
#include "http_client.hpp"
#include "local_cluster.hpp"

namespace keel::bench {

namespace {

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "keel-bench: %s\n", why.c_str());
  std::exit(1);
}

constexpr std::uint64_t bench_skus = 16;

/// Prices and stocks the SKUs through `url` and waits until it prices them.
void seed(const std::string& url, token_cache& tokens) {
  if (auto why = seed_skus(url, tokens, bench_skus, 100000000); !why.empty())
    fail(why);
  if (!wait_priced(url, bench_skus))
    fail(url + " does not price the SKUs");
}

std::string order_of(const std::string& id, std::uint64_t n) {
  std::vector<http_line> lines{{http_sku(1 + n % bench_skus), 1, http_price(1 + n % bench_skus)}};
  return order_body(id, "cust-" + std::to_string(n % 1000), lines);
}

double metric_of(const std::string& url, const std::string& name, const std::string& label = {},
                 const std::string& value = {}) {
  auto ep = parse_url(url);
  if (!ep)
    return -1;
  auto c = connect(*ep);
  c->set_connection_timeout(1, 0);
  auto m = fetch_metrics(*c);
  if (!m)
    return -1;
  return label.empty() ? m->value(name) : m->value(name, label, value);
}

bool wait_for(const std::function<bool()>& pred, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

/// Group "ga" of a1 (primary) and a2 (its synchronous standby).
void start_group(local_cluster& lc) {
  std::string why;
  if (!lc.add("a1", why, {"--group", "ga"}))
    fail("cannot start a1: " + why);
  if (!wait_for(
        [&] {
          return metric_of(lc.url("a1"), "keel_replication_primary") == 1
                 && metric_of(lc.url("a1"), "keel_cluster_slots_without_owner") == 0;
        },
        std::chrono::seconds(30)))
    fail("a1 did not become primary:\n" + lc.process("a1").log_tail(20));
  if (!lc.add("a2", why, {"--group", "ga"}))
    fail("cannot start a2: " + why);
  if (!wait_for(
        [&] {
          return metric_of(lc.url("a1"), "keel_replication_standby_sync", "standby", "a2") == 1;
        },
        std::chrono::seconds(30)))
    fail("a2 did not become the synchronous standby:\n" + lc.process("a2").log_tail(20));
}

/// One order attempt of the failover load.
struct attempt {
  std::string id;
  double sent = 0;
  double answered = 0;
  int status = 0;
};

} // namespace

int run_failover(int argc, char** argv) {
  auto a = parse(argc, argv, 2, {"--kills", "--lease-ttl", "--clients"}, {});
  auto kills = a.number("--kills", 20);
  auto ttl = a.number("--lease-ttl", 3);
  auto clients = a.number("--clients", 4);
  local_cluster::options o;
  o.slots = 16;
  o.node_args = {"--kafka", "off", "--lease-ttl", std::to_string(ttl)};
  std::string why;
  auto lc = local_cluster::start(o, why);
  if (!lc)
    fail("cannot start etcd: " + why);
  start_group(*lc);
  token_cache tokens{lc->secret()};
  seed(lc->url("a1"), tokens);
  std::printf("etcd %s; group ga of a1 (primary) and a2 (synchronous standby); lease %llu s; "
              "%llu clients\n",
              lc->etcd_url().c_str(), u(ttl), u(clients));

  // Clients place orders through either node (a standby forwards to the
  // primary), turning to the other one when a request gets no answer or 5xx.
  std::mutex mtx;
  std::vector<attempt> history;
  std::atomic<bool> stop{false};
  std::mutex urls_mtx;
  std::map<std::string, std::string> urls{{"a1", lc->url("a1")}, {"a2", lc->url("a2")}};
  std::vector<std::thread> threads;
  for (std::uint64_t i = 0; i < clients; ++i)
    threads.emplace_back([&, i] {
      std::size_t entry = i;
      std::unique_ptr<httplib::Client> c;
      for (std::uint64_t n = 0; !stop; ++n) {
        if (!c) {
          std::string url;
          {
            std::lock_guard<std::mutex> guard{urls_mtx};
            url = urls[entry % 2 == 0 ? "a1" : "a2"];
          }
          c = connect(*parse_url(url));
          c->set_connection_timeout(1, 0);
          c->set_read_timeout(5, 0);
        }
        attempt at;
        at.id = "f" + std::to_string(i) + "-" + std::to_string(n);
        at.sent = seconds_now();
        auto r = send(*c, "POST", "/v1/orders", order_of(at.id, i * 7919 + n),
                      tokens.customer("cust-" + std::to_string((i * 7919 + n) % 1000)));
        at.answered = seconds_now();
        at.status = r.status;
        {
          std::lock_guard<std::mutex> guard{mtx};
          history.push_back(at);
        }
        if (r.status == 0 || r.status >= 500) {
          ++entry;
          c.reset();
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
      }
    });
  auto accepted_since = [&](double t) {
    std::lock_guard<std::mutex> guard{mtx};
    std::size_t n = 0;
    for (auto it = history.rbegin(); it != history.rend() && it->sent >= t; ++it)
      n += it->status == 202;
    return n;
  };
  auto first_accept_after = [&](double t) {
    std::lock_guard<std::mutex> guard{mtx};
    double first = -1;
    for (auto& h : history)
      if (h.status == 202 && h.sent >= t && (first < 0 || h.answered < first))
        first = h.answered;
    return first;
  };

  std::vector<double> failover_ms;
  for (std::uint64_t k = 0; k < kills; ++k) {
    auto v = lc->view();
    auto g = v.groups.find("ga");
    if (g == v.groups.end() || g->second.leader.node.empty())
      fail("group ga has no primary before kill " + std::to_string(k + 1));
    auto primary = g->second.leader.node;
    auto standby = primary == "a1" ? std::string{"a2"} : std::string{"a1"};
    // Under load, with the standby synchronous.
    auto steady = seconds_now();
    if (!wait_for([&] { return accepted_since(steady) >= 20; }, std::chrono::seconds(30)))
      fail("no load before kill " + std::to_string(k + 1));
    auto t0 = seconds_now();
    lc->kill(primary);
    if (!wait_for([&] { return first_accept_after(t0) > 0; }, std::chrono::seconds(30)))
      fail("no order accepted within 30 s of kill " + std::to_string(k + 1) + "; log of "
           + standby + ":\n" + lc->process(standby).log_tail(30));
    failover_ms.push_back((first_accept_after(t0) - t0) * 1000);
    std::printf("kill %llu of %llu (%s): first order acknowledged %.0f ms after the SIGKILL\n",
                u(k + 1), u(kills), primary.c_str(), failover_ms.back());
    std::fflush(stdout);
    // The killed node comes back as the standby once its lease is gone.
    if (!wait_for([&] { return lc->view().member(primary) == nullptr; }, std::chrono::seconds(30)))
      fail(primary + "'s member record did not lapse");
    if (!lc->restart(primary, why))
      fail(primary + " did not start again: " + why);
    {
      std::lock_guard<std::mutex> guard{urls_mtx};
      urls[primary] = lc->url(primary);
    }
    if (!wait_for(
          [&] {
            return metric_of(lc->url(standby), "keel_replication_standby_sync", "standby",
                             primary)
                   == 1;
          },
          std::chrono::seconds(60)))
      fail(primary + " did not become the synchronous standby again:\n"
           + lc->process(primary).log_tail(20));
  }
  stop = true;
  for (auto& t : threads)
    t.join();

  // Every acknowledged order is there, on the last primary.
  auto v = lc->view();
  auto last = v.groups.at("ga").leader.node;
  auto c = connect(*parse_url(lc->url(last)));
  auto admin = tokens.admin("check");
  std::size_t acked = 0, lost = 0;
  retry_counts counts;
  std::map<int, std::size_t> answers;
  for (auto& h : history)
    if (h.status == 202) {
      ++acked;
      // Until an answer that is not 429/503 (the operator rate limit).
      auto r = send_until_final(*c, "GET", "/v1/orders/" + h.id, {}, admin, counts, 30);
      ++answers[r.status];
      if (r.status != 200 && lost < 5)
        std::printf("acknowledged order %s: GET answered %d %s\n", h.id.c_str(), r.status,
                    r.body.c_str());
      lost += r.status != 200;
    }
  auto sorted = failover_ms;
  auto p50 = percentile(sorted, 50);
  auto p99 = percentile(sorted, 99);
  std::printf("\nfailover over %zu SIGKILLs of the primary (lease %llu s): p50 %.0f ms, p99 %.0f "
              "ms, min %.0f ms, max %.0f ms\n",
              failover_ms.size(), u(ttl), p50, p99, sorted.front(), sorted.back());
  std::printf("orders acknowledged: %zu; missing afterwards: %zu\n", acked, lost);
  nlohmann::json j{{"kills", failover_ms.size()}, {"lease_ttl_s", ttl},
                   {"failover_p50_ms", p50},      {"failover_p99_ms", p99},
                   {"failover_max_ms", sorted.back()}, {"acknowledged", acked},
                   {"lost", lost},                {"failover_ms", failover_ms}};
  std::printf("%s\n", j.dump().c_str());
  return lost == 0 ? 0 : 1;
}

namespace {

struct cost_figures {
  double p50_ms = 0;
  double p99_ms = 0;
  double sagas_per_s = 0;
};

/// One node alone (`group` false) or a group of a primary and a synchronous
/// standby: 202 latency from one client, then sagas/s from `clients`.
cost_figures cost_run(bool group, std::uint64_t probes, std::uint64_t clients, double seconds,
                      int run) {
  local_cluster::options o;
  o.slots = 16;
  o.cluster = "cost" + std::to_string(run);
  o.node_args = {"--kafka", "off"};
  std::string why;
  auto lc = local_cluster::start(o, why);
  if (!lc)
    fail("cannot start etcd: " + why);
  if (group) {
    start_group(*lc);
  } else {
    if (!lc->add("a1", why))
      fail("cannot start a1: " + why);
    if (!lc->wait_balanced(std::chrono::seconds(30)))
      fail("a1 did not take the slots");
  }
  token_cache tokens{lc->secret()};
  auto url = lc->url("a1");
  seed(url, tokens);
  cost_figures f;
  {
    auto c = connect_warm(*parse_url(url));
    std::vector<double> ms;
    for (std::uint64_t n = 0; n < probes; ++n) {
      auto id = "p-" + std::to_string(n);
      auto t = seconds_now();
      auto r = send(*c, "POST", "/v1/orders", order_of(id, n),
                    tokens.customer("cust-" + std::to_string(n % 1000)));
      if (r.status != 202)
        fail("POST /v1/orders: " + std::to_string(r.status) + " " + r.body);
      ms.push_back((seconds_now() - t) * 1000);
    }
    f.p50_ms = percentile(ms, 50);
    f.p99_ms = percentile(ms, 99);
  }
  auto ended = [&] {
    auto c = connect(*parse_url(url));
    auto m = fetch_metrics(*c);
    return m ? m->terminal() : 0;
  };
  // Let the probes' sagas end first.
  auto before = ended();
  for (int i = 0; i < 200 && before < probes; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    before = ended();
  }
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  auto t0 = seconds_now();
  for (std::uint64_t i = 0; i < clients; ++i)
    threads.emplace_back([&, i] {
      auto c = connect_warm(*parse_url(url));
      retry_counts counts;
      for (std::uint64_t n = 0; !stop; ++n) {
        auto id = "t-" + std::to_string(i) + "-" + std::to_string(n);
        send_until_final(*c, "POST", "/v1/orders", order_of(id, i * 7919 + n),
                         tokens.customer("cust-" + std::to_string((i * 7919 + n) % 1000)), counts,
                         30);
      }
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(static_cast<long>(seconds * 1000)));
  auto done = ended();
  auto t1 = seconds_now();
  stop = true;
  for (auto& t : threads)
    t.join();
  f.sagas_per_s = static_cast<double>(done - before) / (t1 - t0);
  return f;
}

} // namespace

int run_replication(int argc, char** argv) {
  auto a = parse(argc, argv, 2, {"--probes", "--clients", "--seconds", "--runs"}, {});
  auto probes = a.number("--probes", 1000);
  auto clients = a.number("--clients", 32);
  auto seconds = static_cast<double>(a.number("--seconds", 10));
  auto runs = a.number("--runs", 3);
  std::vector<double> p50[2], p99[2], rate[2];
  for (std::uint64_t r = 0; r < runs; ++r)
    for (int g = 0; g < 2; ++g) { // alternating, so that both see the same machine state
      auto f = cost_run(g == 1, probes, clients, seconds, static_cast<int>(r * 2 + g));
      p50[g].push_back(f.p50_ms);
      p99[g].push_back(f.p99_ms);
      rate[g].push_back(f.sagas_per_s);
      std::printf("run %llu, %s: 202 p50 %.2f ms p99 %.2f ms; %.0f sagas/s\n", u(r + 1),
                  g == 1 ? "with a synchronous standby" : "alone", f.p50_ms, f.p99_ms,
                  f.sagas_per_s);
      std::fflush(stdout);
    }
  double m50[2], m99[2], mr[2];
  for (int g = 0; g < 2; ++g) {
    m50[g] = median(p50[g]);
    m99[g] = median(p99[g]);
    mr[g] = median(rate[g]);
  }
  std::printf("\nmedians of %llu runs (fsync on, Kafka off, %llu probes from one client, then "
              "%llu closed-loop clients for %.0f s):\n",
              u(runs), u(probes), u(clients), seconds);
  std::printf("  order 202 latency  alone: p50 %.2f ms p99 %.2f ms | with standby: p50 %.2f ms "
              "p99 %.2f ms (+%.2f / +%.2f ms)\n",
              m50[0], m99[0], m50[1], m99[1], m50[1] - m50[0], m99[1] - m99[0]);
  std::printf("  sagas/s            alone: %.0f | with standby: %.0f (%.2fx)\n", mr[0], mr[1],
              mr[0] > 0 ? mr[1] / mr[0] : 0);
  nlohmann::json j{{"alone_p50_ms", m50[0]},   {"alone_p99_ms", m99[0]},
                   {"standby_p50_ms", m50[1]}, {"standby_p99_ms", m99[1]},
                   {"alone_sagas_per_s", mr[0]}, {"standby_sagas_per_s", mr[1]},
                   {"ratio", mr[0] > 0 ? mr[1] / mr[0] : 0}};
  std::printf("%s\n", j.dump().c_str());
  return 0;
}

} // namespace keel::bench
