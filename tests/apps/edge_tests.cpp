// The HTTP edge of a real keel-node against hostile and broken clients:
// bodies in every framing, header and Range floods, trickling and idle
// connections, connection caps, rate limits of every kind, and (torture) a
// soak of a million requests. Memory is read from /proc of the node. That
// answered calls leave nothing behind in a handler thread's mailbox is
// checked directly on the actor system in call_tests.cpp.

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "node_process.hpp"
#include "temp_dir.hpp"

using namespace keel::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

bool readable(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, timeout_ms) > 0;
}

/// The status code of the answer on `fd` ("closed" / "reset" / "none").
std::string read_status(int fd, std::chrono::milliseconds timeout) {
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  while (got.find("\r\n") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    if (!readable(fd, 50))
      continue;
    auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n == 0)
      return got.empty() ? "closed" : got.substr(9, 3);
    if (n < 0)
      return got.empty() ? "reset" : got.substr(9, 3);
    got.append(buf, static_cast<std::size_t>(n));
  }
  if (got.size() < 12)
    return "none";
  return got.substr(9, 3);
}

/// Whether the node closed `fd` (EOF or reset; answers before it are skipped).
bool closed_by_peer(int fd) {
  char buf[4096];
  for (;;) {
    auto n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0)
      return true;
    if (n < 0)
      return errno != EAGAIN && errno != EWOULDBLOCK;
  }
}

/// A field of /proc/PID/status in KiB (VmRSS, VmHWM).
long proc_kib(int pid, const std::string& field) {
  std::ifstream in{"/proc/" + std::to_string(pid) + "/status"};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0)
      return std::stol(line.substr(field.size() + 1));
  return -1;
}

/// Starts the peak (VmHWM) over from the current RSS.
void reset_peak(int pid) {
  std::ofstream{"/proc/" + std::to_string(pid) + "/clear_refs"} << "5";
}

struct attack {
  std::string name;
  std::string prelude;
  /// What is sent after the prelude, again and again, up to `max_bytes`.
  std::string repeat;
  std::size_t max_bytes = 0;
  std::string expect;
};

/// Runs `a` on `conns` connections at once; returns the statuses they read.
std::vector<std::string> run_attack(int port, const attack& a, int conns) {
  std::vector<std::string> statuses(static_cast<std::size_t>(conns));
  std::vector<std::thread> threads;
  for (int i = 0; i < conns; ++i)
    threads.emplace_back([&, i] {
      auto fd = connect_from("127.0.0.2", port);
      bool ok = ::send(fd, a.prelude.data(), a.prelude.size(), MSG_NOSIGNAL) >= 0;
      std::size_t sent = 0;
      // Stream until the node answers (or refuses more), as an attacker would.
      while (ok && sent < a.max_bytes && !readable(fd, 0)) {
        ok = ::send(fd, a.repeat.data(), a.repeat.size(), MSG_NOSIGNAL) >= 0;
        sent += a.repeat.size();
      }
      statuses[static_cast<std::size_t>(i)] = read_status(fd, 5s);
      ::close(fd);
    });
  for (auto& t : threads)
    t.join();
  return statuses;
}

std::string gzip_bomb() {
  // 60 MiB of zeros compress to about 60 KiB: under the body limit.
  auto* p = ::popen("head -c 62914560 /dev/zero | gzip -9", "r");
  REQUIRE(p);
  std::string out;
  char buf[65536];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0)
    out.append(buf, n);
  ::pclose(p);
  return out;
}

double percentile(std::vector<double> xs, double q) {
  if (xs.empty())
    return 0;
  std::sort(xs.begin(), xs.end());
  return xs[std::min(xs.size() - 1, static_cast<std::size_t>(q * static_cast<double>(xs.size())))];
}

} // namespace

TEST_CASE("hostile bodies, headers and ranges without a token are refused before they are buffered",
          "[node][edge]") {
  keel::temp_dir dir;
  node_process n{dir.sub("store"), {"--kafka", "off"}};
  auto c = n.client();
  for (int i = 0; i < 50; ++i) // warm up: the normal working set
    c.Get("/metrics");
  std::this_thread::sleep_for(300ms);
  auto idle_kib = proc_kib(n.pid(), "VmRSS");
  REQUIRE(idle_kib > 0);

  std::string mib(1 << 20, 'a');
  std::string chunk = "10000\r\n" + std::string(0x10000, 'a') + "\r\n";
  auto bomb = gzip_bomb();
  REQUIRE(bomb.size() < 64 * 1024);
  std::string ranges = "bytes=0-";
  for (int i = 0; i < 1500; ++i)
    ranges += ",0-";
  std::string many;
  for (int i = 0; i < 10000; ++i)
    many += "X-" + std::to_string(i) + ": v\r\n";
  std::vector<attack> attacks{
    {"chunked body", "POST /v1/orders HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
     chunk, 32u << 20, "413"},
    {"chunked body, unknown path",
     "POST /nope HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", chunk, 32u << 20,
     "413"},
    {"body without a length", "POST /v1/orders HTTP/1.1\r\nHost: x\r\n\r\n", mib, 32u << 20,
     "411"},
    {"Content-Length of 1 GiB", "PUT /admin/stock/x HTTP/1.1\r\nHost: x\r\nContent-Length: "
                                "1073741824\r\n\r\n",
     mib, 32u << 20, "413"},
    {"gzip bomb", "POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: "
                    + std::to_string(bomb.size()) + "\r\n\r\n" + bomb,
     "", 0, "415"},
    {"endless header line", "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Long: ", mib, 32u << 20, "431"},
    {"10,000 headers", "GET /metrics HTTP/1.1\r\nHost: x\r\n" + many, "", 0, "431"},
    {"1,500 ranges of /metrics", "GET /metrics HTTP/1.1\r\nHost: x\r\nRange: " + ranges + "\r\n\r\n",
     "", 0, "200"},
  };
  for (auto& a : attacks) {
    reset_peak(n.pid());
    auto statuses = run_attack(n.port(), a, 16);
    auto peak_kib = proc_kib(n.pid(), "VmHWM");
    auto grown_mib = static_cast<double>(peak_kib - idle_kib) / 1024.0;
    std::printf("edge: %-28s idle RSS %6.1f MiB, peak %6.1f MiB (+%5.1f MiB); answers %s x%zu\n",
                a.name.c_str(), static_cast<double>(idle_kib) / 1024.0,
                static_cast<double>(peak_kib) / 1024.0, grown_mib, statuses.front().c_str(),
                static_cast<std::size_t>(std::count(statuses.begin(), statuses.end(), statuses.front())));
    INFO(a.name);
    CHECK(grown_mib < 64);
    // Every connection got the refusal (the ranges: one whole body each);
    // the rate limit of /metrics may answer some with 429.
    for (auto& s : statuses)
      CHECK((s == a.expect || (a.expect == "200" && s == "429")));
  }
  // One Range request is answered with the whole body, once (after the
  // sliding window of the operations rate limit the attacks used up).
  std::this_thread::sleep_for(2s);
  httplib::Client one{"127.0.0.1", n.port()};
  auto res = one.Get("/ready", {{"Range", ranges}});
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body.size() < 100);
  // The node still serves.
  CHECK(one.Get("/ready")->status == 200);
}

TEST_CASE("500 trickling and idle connections do not stop a normal client, and are closed by the "
          "whole-request deadline",
          "[node][edge]") {
  keel::temp_dir dir;
  node_process n{dir.sub("store"), {"--kafka", "off", "--read-timeout", "3", "--idle-timeout", "3"}};
  auto c = n.client();
  auto admin = httplib::Headers{{"Authorization", bearer("ops", true)}};
  REQUIRE(c.Put("/admin/stock/sku-1", admin, R"({"quantity":100000})", "application/json")->status
          == 200);
  put_on_sale(c, "sku-1");
  std::vector<int> idle;
  std::vector<int> trickling;
  for (int i = 0; i < 250; ++i) {
    idle.push_back(connect_from("127.0.0.2", n.port()));
    trickling.push_back(connect_from("127.0.0.2", n.port()));
  }
  auto opened = std::chrono::steady_clock::now();
  // One byte every 200 ms on each trickling connection: never a whole request.
  std::atomic<bool> stop{false};
  std::thread trickler{[&] {
    std::string text = "GET /v1/stock/sku-1 HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    for (std::size_t i = 0; !stop; ++i) {
      char byte = i < text.size() ? text[i] : 'a';
      for (auto fd : trickling)
        ::send(fd, &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      std::this_thread::sleep_for(200ms);
    }
  }};
  // A normal client meanwhile, on a new connection for each request (as
  // new clients arrive): reads and orders, each answered.
  std::vector<double> ms;
  auto customer = httplib::Headers{{"Authorization", bearer("c-1")}};
  for (int i = 0; i < 300; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    httplib::Client fresh{"127.0.0.1", n.port()};
    fresh.set_read_timeout(10, 0);
    auto res = i % 3 == 0 ? fresh.Post("/v1/orders", customer, order_json("t-" + std::to_string(i), "c-1", "sku-1").dump(),
                                   "application/json")
                          : fresh.Get("/v1/stock/sku-1");
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    REQUIRE(res);
    CHECK((res->status == 200 || res->status == 202));
  }
  auto p50 = percentile(ms, 0.5);
  auto p99 = percentile(ms, 0.99);
  std::printf("edge: normal client beside 500 hostile connections: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
              p50, p99, percentile(ms, 1.0));
  CHECK(p99 < 500); // the figure above is what counts; this only catches a stalled node
  // Neither the idle nor the trickling connections outlive the deadline.
  std::this_thread::sleep_until(opened + 4500ms);
  stop = true;
  trickler.join();
  std::size_t open_idle = 0;
  std::size_t open_trickling = 0;
  for (auto fd : idle)
    open_idle += !closed_by_peer(fd);
  for (auto fd : trickling)
    open_trickling += !closed_by_peer(fd);
  for (auto fd : idle)
    ::close(fd);
  for (auto fd : trickling)
    ::close(fd);
  CHECK(open_idle == 0);
  CHECK(open_trickling == 0);

  // An idle keep-alive connection is closed after the idle limit.
  auto fd = connect_from("127.0.0.1", n.port());
  std::string get = "GET /ready HTTP/1.1\r\nHost: x\r\n\r\n";
  ::send(fd, get.data(), get.size(), MSG_NOSIGNAL);
  CHECK(read_status(fd, 2s) == "200");
  std::this_thread::sleep_for(2s);
  CHECK_FALSE(closed_by_peer(fd));
  std::this_thread::sleep_for(2s);
  CHECK(closed_by_peer(fd));
  ::close(fd);
}

TEST_CASE("connections are capped per client address and the cap leaves others served",
          "[node][edge]") {
  keel::temp_dir dir;
  node_process n{dir.sub("store"), {"--kafka", "off", "--max-connections-per-ip", "8"}};
  std::vector<int> socks;
  for (int i = 0; i < 8; ++i)
    socks.push_back(connect_from("127.0.0.2", n.port()));
  std::this_thread::sleep_for(200ms);
  for (auto fd : socks)
    CHECK_FALSE(closed_by_peer(fd));
  auto ninth = connect_from("127.0.0.2", n.port());
  CHECK(read_status(ninth, 2s) == "closed");
  ::close(ninth);
  auto c = n.client();
  auto res = c.Get("/ready");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(metric(c, "keel_http_connections_refused_total") == 1);
  for (auto fd : socks)
    ::close(fd);
}

TEST_CASE("rate limits cover failed authentications, reads, unknown paths and the operations endpoints",
          "[node][edge]") {
  keel::temp_dir dir;
  node_process n{dir.sub("store"), {"--kafka", "off", "--auth-failure-limit", "5",
                                    "--ops-rate-limit", "5", "--rate-limit", "10"}};
  std::this_thread::sleep_for(1100ms); // the start-up's /ready calls leave the window
  auto c = n.client();
  auto codes = [&](std::function<httplib::Result()> call, int times) {
    std::vector<int> out;
    for (int i = 0; i < times; ++i) {
      auto r = call();
      REQUIRE(r);
      out.push_back(r->status);
    }
    return out;
  };
  auto bad = httplib::Headers{{"Authorization", "Bearer forged"}};
  auto auth = codes([&] { return c.Post("/v1/orders", bad, "{}", "application/json"); }, 7);
  // (A sliding window: what came before may count a little.)
  CHECK(auth.front() == 401);
  CHECK(std::count(auth.begin(), auth.end(), 401) <= 5);
  CHECK(auth.back() == 429);
  auto ops = codes([&] { return c.Get("/metrics"); }, 7);
  CHECK(ops.front() == 200);
  CHECK(std::count(ops.begin(), ops.end(), 200) <= 5);
  CHECK(ops.back() == 429);
  auto unknown = codes([&] { return c.Get("/nope"); }, 12);
  CHECK(std::count(unknown.begin(), unknown.end(), 429) >= 2);
  // A customer hammering an admin endpoint is limited too (403s count).
  auto customer = httplib::Headers{{"Authorization", bearer("c-1")}};
  auto admin = codes([&] { return c.Get("/admin/kafka", customer); }, 12);
  CHECK(admin.front() == 403);
  CHECK(admin.back() == 429);
}

namespace {

struct soak_figures {
  double first_p50_ms = 0;
  double last_p50_ms = 0;
  double first_p99_ms = 0;
  double last_p99_ms = 0;
  double first_rss_mib = 0;
  double last_rss_mib = 0;
};

/// `requests` calls from `clients` keep-alive connections at once: 85% order
/// reads (through the orders actor), the rest stock reads, and with `orders`
/// one placed order in 200. The first and last tenth are each client's first
/// and last tenth.
soak_figures soak(node_process& n, std::size_t requests, std::size_t clients, bool orders,
                  const std::string& run = "s") {
  auto per_client = requests / clients;
  std::vector<std::vector<double>> ms(clients);
  std::atomic<std::size_t> done{0};
  std::array<double, 10> rss_by_tenth{};
  soak_figures f;
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < clients; ++t)
    threads.emplace_back([&, t] {
      auto c = n.client();
      auto customer = httplib::Headers{{"Authorization", bearer("c-soak-" + std::to_string(t))}};
      auto& mine = ms[t];
      mine.reserve(per_client);
      for (std::size_t i = 0; i < per_client; ++i) {
        auto t0 = std::chrono::steady_clock::now();
        httplib::Result res{nullptr, httplib::Error::Unknown};
        auto kind = i % 200;
        if (kind == 0 && orders)
          res = c.Post("/v1/orders", customer,
                       order_json(run + "-" + std::to_string(t) + "-" + std::to_string(i),
                                  "c-soak-" + std::to_string(t), "sku-1")
                         .dump(),
                       "application/json");
        else if (kind <= 29)
          res = c.Get("/v1/stock/sku-1");
        else
          res = c.Get(("/v1/orders/none-" + std::to_string(i % 1000)).c_str(), customer);
        mine.push_back(
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
        if (!res || res->status >= 500)
          FAIL_CHECK("request " << i << " of client " << t << ": "
                                << (res ? std::to_string(res->status) : "no answer"));
        auto count = done.fetch_add(1) + 1;
        if (count % (requests / 10) == 0) {
          auto rss = static_cast<double>(proc_kib(n.pid(), "VmRSS")) / 1024.0;
          rss_by_tenth[count / (requests / 10) - 1] = rss;
          if (count == requests / 10)
            f.first_rss_mib = rss;
        }
      }
    });
  for (auto& t : threads)
    t.join();
  f.last_rss_mib = static_cast<double>(proc_kib(n.pid(), "VmRSS")) / 1024.0;
  std::vector<double> first;
  std::vector<double> last;
  for (auto& mine : ms) {
    auto tenth = static_cast<std::ptrdiff_t>(mine.size() / 10);
    first.insert(first.end(), mine.begin(), mine.begin() + tenth);
    last.insert(last.end(), mine.end() - tenth, mine.end());
  }
  std::printf("edge soak: RSS by tenth (MiB):");
  for (auto rss : rss_by_tenth)
    std::printf(" %.1f", rss);
  for (double q : {0.5, 0.99}) {
    std::printf("\nedge soak: p%.0f by tenth (ms):", q * 100);
    for (std::size_t k = 0; k < 10; ++k) {
      std::vector<double> part;
      for (auto& mine : ms) {
        auto tenth = mine.size() / 10;
        part.insert(part.end(), mine.begin() + static_cast<std::ptrdiff_t>(k * tenth),
                    mine.begin() + static_cast<std::ptrdiff_t>((k + 1) * tenth));
      }
      std::printf(" %.3f", percentile(part, q));
    }
  }
  std::printf("\n");
  f.first_p50_ms = percentile(first, 0.5);
  f.last_p50_ms = percentile(last, 0.5);
  f.first_p99_ms = percentile(first, 0.99);
  f.last_p99_ms = percentile(last, 0.99);
  std::printf("edge soak: %zu requests (%s) from %zu connections: p50 first 10%% %.3f ms, last 10%% "
              "%.3f ms (%.2fx); p99 first 10%% %.3f ms, last 10%% %.3f ms (%.2fx); "
              "RSS at 10%% %.1f MiB, at the end %.1f MiB (%.2fx)\n",
              requests, orders ? "0.5% orders" : "reads", clients, f.first_p50_ms, f.last_p50_ms, f.last_p50_ms / f.first_p50_ms,
              f.first_p99_ms, f.last_p99_ms, f.last_p99_ms / f.first_p99_ms,
              f.first_rss_mib, f.last_rss_mib, f.last_rss_mib / f.first_rss_mib);
  return f;
}

/// Places `orders` orders from `clients` connections and waits until no saga
/// is in flight: the store's memtables and block cache, the committer's
/// version cache and the simulated providers' key memory then hold what they
/// hold in a node that has been taking orders for a while.
void warm_up(node_process& n, std::size_t orders, std::size_t clients) {
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < clients; ++t)
    threads.emplace_back([&, t] {
      auto c = n.client();
      auto customer = httplib::Headers{{"Authorization", bearer("c-warm-" + std::to_string(t))}};
      for (std::size_t i = t; i < orders; i += clients) {
        auto res = c.Post("/v1/orders", customer,
                          order_json("w-" + std::to_string(i), "c-warm-" + std::to_string(t),
                                     "sku-1")
                            .dump(),
                          "application/json");
        if (!res || res->status != 202)
          FAIL_CHECK("warm-up order " << i << ": "
                                      << (res ? std::to_string(res->status) : "no answer"));
      }
    });
  for (auto& t : threads)
    t.join();
  auto c = n.client();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (metric(c, "keel_sagas_in_flight") > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  REQUIRE(metric(c, "keel_sagas_in_flight") == 0);
}

double store_memory_mib(httplib::Client& c) {
  return (metric(c, "keel_store_memory_bytes{part=\"memtables\"}")
          + metric(c, "keel_store_memory_bytes{part=\"block_cache\"}"))
         / 1048576.0;
}

} // namespace

TEST_CASE("soak: 1,000,000 reads keep RSS and p99 of the last 10% within 1.2x of the first",
          "[node][edge][torture]") {
  keel::temp_dir dir;
  node_process n{dir.sub("store"), {"--kafka", "off", "--rate-limit", "10000000"}};
  auto f = soak(n, 1000000, 8, false);
  CHECK(f.last_p99_ms <= 1.2 * f.first_p99_ms);
  CHECK(f.last_rss_mib <= 1.2 * f.first_rss_mib);
}

TEST_CASE("soak: 3 x 1,000,000 requests with 5,000 orders each keep RSS and p99 of the last 10% within "
          "1.2x of the first",
          "[node][edge][torture]") {
  // A node that stores orders holds more memory as it fills what is bounded:
  // memtables and cached blocks up to the store's budget, the committer's
  // version cache, the simulated providers' idempotency keys, the allocator's
  // arenas. The store's budget is small here (16 MiB) so that 20,000 orders
  // fill it before the soak; the soak then shows that taking orders and
  // serving requests adds nothing beyond those bounds. (With the default
  // 128 MiB budget the plateau comes later; the figures are in
  // docs/operations.md.)
  keel::temp_dir dir;
  node_process n{dir.sub("store"), {"--kafka", "off", "--rate-limit", "10000000", "--max-sagas",
                                    "100000", "--store-memory-mb", "16"}};
  auto c = n.client();
  auto admin = httplib::Headers{{"Authorization", bearer("ops", true)}};
  REQUIRE(c.Put("/admin/stock/sku-1", admin, R"({"quantity":1000000000})", "application/json")->status
          == 200);
  put_on_sale(c, "sku-1");
  warm_up(n, 20000, 32);
  std::printf("edge soak: after 20,000 warm-up orders: RSS %.1f MiB, store memory %.1f MiB\n",
              static_cast<double>(proc_kib(n.pid(), "VmRSS")) / 1024.0, store_memory_mib(c));
  double first_rss = 0;
  // On two cores shared by the clients and the node, the p99 of one tenth
  // swings by up to +-25% between tenths without any trend (a 3,000,000-
  // request run: 1.8 to 2.5 ms, RSS 1.05x), so one soak's ratio is a coin
  // toss around 1.2. Three soaks on the same node, and their median ratio.
  std::vector<double> p99_ratios;
  for (int run = 1; run <= 3; ++run) {
    auto f = soak(n, 1000000, 8, true, "s" + std::to_string(run));
    p99_ratios.push_back(f.last_p99_ms / f.first_p99_ms);
    CHECK(f.last_rss_mib <= 1.2 * f.first_rss_mib);
    if (run == 1)
      first_rss = f.first_rss_mib;
  }
  auto store_mib = store_memory_mib(c);
  auto end_rss = static_cast<double>(proc_kib(n.pid(), "VmRSS")) / 1024.0;
  std::sort(p99_ratios.begin(), p99_ratios.end());
  std::printf("edge soak: p99 ratios %.2f %.2f %.2f (median %.2f); RSS after 3,000,000 requests "
              "and 15,000 orders %.1f MiB, %.2fx the first tenth of the first soak; store memory "
              "%.1f MiB of a 16 MiB budget\n",
              p99_ratios[0], p99_ratios[1], p99_ratios[2], p99_ratios[1], end_rss,
              end_rss / first_rss, store_mib);
  CHECK(p99_ratios[1] <= 1.2);
  CHECK(end_rss <= 1.2 * first_rss);
  // LRU caches may run a little over their capacity while entries are pinned.
  CHECK(store_mib <= 16 * 1.1);
}
