// keel-bench http: orders end to end through a keel-node's HTTP API. C
// client threads, one keep-alive connection each, place N orders; the run
// ends when the node's keel_orders_total shows every accepted order terminal.
// Without --url it runs its own keel-node (embedded Kafka, fsync on: the
// production defaults) in a temporary directory and stops it with SIGTERM.

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <iostream>
#include <random>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "auth.hpp"
#include "keel/events/error.hpp"
#include "bench.hpp"
#include "http_client.hpp"
#include "server_process.hpp"

namespace keel::bench {

namespace {

struct http_options {
  std::uint64_t orders = 0;
  std::uint64_t connections = 0;
  std::uint64_t skus = 1000;
  std::uint64_t seed = 42;
  std::string url;
  std::string secret;
  std::string data;
};

/// Units on hand of every SKU: no order of the run is refused for stock.
constexpr std::int64_t stock_each = 1'000'000;

/// What the client threads saw; each thread has its own, merged at the end.
struct post_stats {
  /// Latency of the attempt that got the final answer, and from the first
  /// attempt to the final answer (Retry-After waits included), in ms.
  std::vector<double> post_ms;
  std::vector<double> order_ms;
  std::uint64_t accepted = 0; // 202, or 200 when a retried POST found it placed
  std::uint64_t out_of_stock = 0;
  std::uint64_t failed = 0;
  std::string first_failure;
  retry_counts retries;
  double first_post = 1e300;
  double last_answer = 0;

  void merge(const post_stats& o);
};

void post_stats::merge(const post_stats& o) {
  post_ms.insert(post_ms.end(), o.post_ms.begin(), o.post_ms.end());
  order_ms.insert(order_ms.end(), o.order_ms.begin(), o.order_ms.end());
  accepted += o.accepted;
  out_of_stock += o.out_of_stock;
  failed += o.failed;
  if (first_failure.empty())
    first_failure = o.first_failure;
  retries.shed += o.retries.shed;
  retries.rate_limited += o.retries.rate_limited;
  retries.no_answer += o.retries.no_answer;
  if (retries.first_error.empty())
    retries.first_error = o.retries.first_error;
  first_post = std::min(first_post, o.first_post);
  last_answer = std::max(last_answer, o.last_answer);
}

/// Everything the client threads share.
struct bench_run {
  http_options o;
  http_endpoint ep;
  token_cache tokens;
  std::string prefix;
  std::atomic<std::uint64_t> next{0};
  /// Per order: 1 when the node accepted it (each index written by one thread).
  std::vector<char> accepted;

  bench_run(http_options opts, http_endpoint e)
    : o(std::move(opts)), ep(std::move(e)), tokens(o.secret), accepted(o.orders, 0) {
  }
};

/// The node this benchmark runs when no --url is given.
struct own_node {
  std::unique_ptr<temp_dir> tmp;
  std::unique_ptr<server_process> process;
  std::string data;
};

/// Set while this benchmark runs its own node, so `fail` stops it.
own_node* running_node = nullptr;

/// Prints `msg` and exits with `rc`; an own node is stopped first (its
/// log's tail printed) and its temporary directory removed.
[[noreturn]] void fail(const std::string& msg, int rc = 1) {
  std::cerr << "keel-bench http: " << msg << '\n';
  if (running_node != nullptr && running_node->process) {
    std::cerr << "keel-node log ends:\n" << running_node->process->log_tail(20);
    running_node->process->stop(std::chrono::seconds(30));
    running_node->process.reset();
  }
  if (running_node != nullptr)
    running_node->tmp.reset();
  std::exit(rc);
}

http_options parse_http(int argc, char** argv) {
  auto a = parse(argc, argv, 2,
                 {"--orders", "--connections", "--url", "--jwt-secret-file", "--skus", "--data",
                  "--seed"},
                 {});
  http_options o;
  o.orders = a.number("--orders", 0);
  o.connections = a.number("--connections", 0);
  o.skus = a.number("--skus", 1000);
  o.seed = a.number("--seed", 42);
  o.url = a.text("--url", "");
  if (auto file = a.text("--jwt-secret-file", ""); !file.empty()) {
    auto secret = runtime::load_secret(file);
    if (!secret)
      fail(describe(secret.error()), 2);
    o.secret = *secret;
  }
  o.data = a.text("--data", "");
  if (o.orders == 0 || o.connections == 0 || o.skus == 0)
    fail("--orders, --connections (and --skus) must be at least 1", 2);
  if (!o.url.empty() && o.secret.empty())
    fail("--url needs --jwt-secret-file (the node's HS256 secret)", 2);
  if (!o.url.empty() && !o.data.empty())
    fail("--data is for the node this benchmark starts; not with --url", 2);
  return o;
}

/// The `n`-th order of the run: 1-3 lines of random SKUs, one of 10,000
/// customers; the same for the same seed.
struct http_order {
  std::string customer;
  bool premium = false;
  std::string body;
};

/// The `n`-th order of the run: 1-3 lines of random SKUs at their catalogue
/// prices, one of 10,000 customers (one in ten premium); the same for the
/// same seed.
http_order make_http_order(const bench_run& run, std::uint64_t n) {
  std::mt19937_64 rng{run.o.seed * 0x9e3779b97f4a7c15ULL + n};
  auto number = 1 + rng() % 10'000;
  auto customer = "cust-" + std::to_string(number);
  std::vector<http_line> lines(1 + rng() % 3);
  for (auto& l : lines) {
    auto sku = 1 + rng() % run.o.skus;
    l.sku = http_sku(sku);
    l.quantity = static_cast<std::uint32_t>(1 + rng() % 3);
    l.unit_price_cents = http_price(sku);
  }
  auto id = run.prefix + "-" + std::to_string(n);
  return {customer, premium_customer(number), order_body(id, customer, lines)};
}

/// One client thread: takes order numbers until none are left.
void place_orders(bench_run& run, httplib::Client& c, post_stats& st) {
  for (auto n = run.next.fetch_add(1); n < run.o.orders; n = run.next.fetch_add(1)) {
    auto [customer, premium, body] = make_http_order(run, n);
    auto auth = run.tokens.customer(customer, premium);
    auto first = seconds_now();
    st.first_post = std::min(st.first_post, first);
    double sent = first;
    auto a = send_until_final(c, "POST", "/v1/orders", body, auth, st.retries, 120, &sent);
    auto now = seconds_now();
    st.last_answer = std::max(st.last_answer, now);
    st.post_ms.push_back((now - sent) * 1000);
    st.order_ms.push_back((now - first) * 1000);
    if (a.status == 202 || a.status == 200) {
      ++st.accepted;
      run.accepted[n] = 1;
    } else if (a.status == 409) {
      ++st.out_of_stock;
    } else if (st.failed++ == 0) {
      st.first_failure = "order " + std::to_string(n) + ": " + std::to_string(a.status) + " "
                         + (a.status == 0 ? a.error : a.body);
    }
  }
}

/// PUT /admin/stock and /admin/catalog for every SKU, spread over the connections.
void seed_stock(bench_run& run) {
  std::atomic<std::uint64_t> next{1};
  std::atomic<std::uint64_t> failures{0};
  std::string first_failure;
  std::mutex mtx;
  auto body = nlohmann::json{{"quantity", stock_each}}.dump();
  auto threads = std::min<std::uint64_t>(run.o.connections, 32);
  on_connections(run.ep, threads, [&](httplib::Client& c, std::uint64_t t) {
    auto auth = run.tokens.admin("bench-admin-" + std::to_string(t));
    retry_counts retries;
    for (auto i = next.fetch_add(1); i <= run.o.skus; i = next.fetch_add(1)) {
      auto a = send_until_final(c, "PUT", "/admin/stock/" + http_sku(i), body, auth, retries);
      if (a.status == 200)
        a = send_until_final(c, "PUT", "/admin/catalog/" + http_sku(i),
                             nlohmann::json{{"price_cents", http_price(i)}, {"currency", "EUR"}}.dump(),
                             auth, retries);
      if (a.status != 200 && failures.fetch_add(1) == 0) {
        std::lock_guard<std::mutex> guard{mtx};
        first_failure = http_sku(i) + ": " + std::to_string(a.status) + " " + a.body + a.error;
      }
    }
  });
  if (failures > 0)
    fail("seeding stock failed for " + std::to_string(failures.load()) + " SKUs; first: "
         + first_failure);
}

/// Polls /metrics every 50 ms until `target` sagas ended; returns the time
/// they were seen, or exits 1 after `timeout_s`.
double await_terminal(const bench_run& run, std::uint64_t target, double timeout_s) {
  auto c = connect(run.ep);
  auto start = seconds_now();
  auto last_report = start;
  std::uint64_t seen = 0;
  for (;;) {
    if (auto m = fetch_metrics(*c)) {
      seen = m->terminal();
      if (seen >= target)
        return seconds_now();
    }
    auto now = seconds_now();
    if (now - start > timeout_s)
      fail("only " + std::to_string(seen) + " of " + std::to_string(target)
           + " sagas ended (keel_orders_total completed+rejected+cancelled) "
           + std::to_string(static_cast<int>(timeout_s)) + " s after the last POST");
    if (now - last_report >= 2) {
      std::printf("  waiting: %llu of %llu sagas ended\n", u(seen), u(target));
      std::fflush(stdout);
      last_report = now;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

/// GETs every accepted order and counts those not terminal (or not found).
std::uint64_t verify_orders(bench_run& run) {
  auto start = seconds_now();
  std::string example;
  std::atomic<std::uint64_t> next{0};
  std::atomic<std::uint64_t> bad{0};
  std::mutex mtx;
  on_connections(run.ep, run.o.connections, [&](httplib::Client& c, std::uint64_t t) {
    retry_counts retries;
    // Reads need a token; an operator's per connection (one rate bucket each).
    auto auth = run.tokens.admin("bench-reader-" + std::to_string(t));
    for (auto n = next.fetch_add(1); n < run.o.orders; n = next.fetch_add(1)) {
      if (!run.accepted[n])
        continue;
      auto id = run.prefix + "-" + std::to_string(n);
      auto a = send_until_final(c, "GET", "/v1/orders/" + id, {}, auth, retries);
      auto j = nlohmann::json::parse(a.body, nullptr, false);
      auto status = a.status == 200 && j.is_object() ? j.value("status", "") : "";
      if (status == "completed" || status == "rejected" || status == "cancelled")
        continue;
      if (bad.fetch_add(1) == 0) {
        std::lock_guard<std::mutex> guard{mtx};
        example = id + ": " + std::to_string(a.status) + " " + a.body.substr(0, 300);
      }
    }
  });
  std::printf("  GET of every accepted order in %.2f s: %llu not terminal%s%s\n",
              seconds_now() - start, u(bad), example.empty() ? "" : ", e.g. ", example.c_str());
  return bad;
}

/// Starts the node into `n` (the `running_node` from then on).
void start_own_node(http_options& o, own_node& n) {
  running_node = &n;
  n.tmp = std::make_unique<temp_dir>("keel-http-bench");
  n.data = o.data.empty() ? n.tmp->path() + "/store" : o.data;
  if (o.secret.empty())
    o.secret = random_secret();
  server_process::options po;
  po.program = executable_dir() + "/keel-node";
  po.args = {"run",     "--data",   n.data,        "--http", "127.0.0.1:0",
             "--kafka", "embedded", "--log-level", "info"};
  po.base = n.tmp->path() + "/node";
  po.env = {{"KEEL_JWT_SECRET", o.secret}};
  std::string why;
  n.process = server_process::start(po, why);
  if (!n.process)
    fail("cannot start " + po.program + ": " + why);
  o.url = "http://127.0.0.1:" + std::to_string(n.process->port());
  std::printf("keel-node started: %s (store %s, fsync on, Kafka embedded, log %s)\n",
              o.url.c_str(), n.data.c_str(), n.process->log_path().c_str());
}

/// SIGTERM; 0 when the node drained and exited 0, else 1 (its log's tail printed).
int stop_own_node(own_node& n) {
  auto code = n.process->stop(std::chrono::seconds(90));
  std::printf("  keel-node stopped by SIGTERM: exit %d\n", code);
  if (code != 0)
    std::printf("  its log ends:\n%s", n.process->log_tail(20).c_str());
  running_node = nullptr;
  return code == 0 ? 0 : 1;
}

/// The figures of a finished run.
struct http_figures {
  post_stats posts;
  double all_terminal = 0;
  std::uint64_t completed = 0;
  std::uint64_t rejected = 0;
  std::uint64_t cancelled = 0;
  std::uint64_t parks = 0;
  std::uint64_t not_terminal = 0;

  double post_wall_s() const {
    return posts.last_answer - posts.first_post;
  }
  double terminal_wall_s() const {
    return all_terminal - posts.first_post;
  }
  double accepted_per_s() const {
    return post_wall_s() > 0 ? static_cast<double>(posts.accepted) / post_wall_s() : 0;
  }
  double orders_per_s() const {
    return terminal_wall_s() > 0 ? static_cast<double>(posts.accepted) / terminal_wall_s() : 0;
  }
};

void print_summary(const http_options& o, http_figures& f) {
  auto& p = f.posts;
  std::printf("\nhttp: %llu orders from %llu connections (one keep-alive connection per thread), "
              "%llu SKUs, seed %llu\n",
              u(o.orders), u(o.connections), u(o.skus), u(o.seed));
  std::printf("  accepted %llu (202/200), refused out of stock %llu, failed %llu\n", u(p.accepted),
              u(p.out_of_stock), u(p.failed));
  std::printf("  accepted/s  %8.0f  (%llu POSTs answered in %.2f s)\n", f.accepted_per_s(),
              u(p.post_ms.size()), f.post_wall_s());
  std::printf("  completed/s %8.0f  (first POST -> every saga ended: %.2f s)\n", f.orders_per_s(),
              f.terminal_wall_s());
  std::printf("  POST latency (final attempt): p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, "
              "max %.2f ms\n",
              percentile(p.post_ms, 50), percentile(p.post_ms, 90), percentile(p.post_ms, 99),
              percentile(p.post_ms, 100));
  std::printf("  retries: %llu after 503, %llu after 429, %llu after no answer", u(p.retries.shed),
              u(p.retries.rate_limited), u(p.retries.no_answer));
  if (p.retries.no_answer > 0)
    std::printf(" (%s)", p.retries.first_error.c_str());
  if (p.retries.shed + p.retries.rate_limited + p.retries.no_answer > 0)
    std::printf("; order latency with retries: p99 %.1f ms, max %.1f ms",
                percentile(p.order_ms, 99), percentile(p.order_ms, 100));
  std::printf("\n  outcomes (keel_orders_total during the run): %llu completed, %llu rejected, "
              "%llu cancelled; %llu parks in pending_payment\n",
              u(f.completed), u(f.rejected), u(f.cancelled), u(f.parks));
}

nlohmann::json to_json(const http_options& o, http_figures& f) {
  auto& p = f.posts;
  return {{"bench", "http"},
          {"orders", o.orders},
          {"connections", o.connections},
          {"skus", o.skus},
          {"accepted", p.accepted},
          {"orders_per_s", f.orders_per_s()},
          {"accepted_per_s", f.accepted_per_s()},
          {"p50_ms", percentile(p.post_ms, 50)},
          {"p90_ms", percentile(p.post_ms, 90)},
          {"p99_ms", percentile(p.post_ms, 99)},
          {"max_ms", percentile(p.post_ms, 100)},
          {"wall_s", f.terminal_wall_s()},
          {"retries_503", p.retries.shed},
          {"retries_429", p.retries.rate_limited},
          {"retries_no_answer", p.retries.no_answer},
          {"out_of_stock", p.out_of_stock},
          {"failed", p.failed},
          {"completed", f.completed},
          {"rejected", f.rejected},
          {"cancelled", f.cancelled},
          {"parks", f.parks},
          {"not_terminal", f.not_terminal}};
}

/// Places the orders and waits until their sagas ended.
http_figures measure(bench_run& run) {
  auto admins = run.tokens.size(); // the seeding's
  auto c = connect(run.ep);
  auto before = fetch_metrics(*c);
  if (!before)
    fail("GET /metrics failed at " + run.o.url);
  std::vector<post_stats> per_thread(run.o.connections);
  on_connections(run.ep, run.o.connections,
                 [&](httplib::Client& c, std::uint64_t t) { place_orders(run, c, per_thread[t]); });
  http_figures f;
  for (auto& s : per_thread)
    f.posts.merge(s);
  std::printf("  %llu POSTs answered in %.2f s (%zu customer tokens, minted once each); waiting "
              "for the sagas to end\n",
              u(f.posts.post_ms.size()), f.post_wall_s(), run.tokens.size() - admins);
  std::fflush(stdout);
  auto target = before->terminal() + f.posts.accepted;
  f.all_terminal = await_terminal(run, target, 120 + static_cast<double>(run.o.orders) / 100);
  auto after = fetch_metrics(*c).value_or(*before);
  f.completed = after.orders("completed") - before->orders("completed");
  f.rejected = after.orders("rejected") - before->orders("rejected");
  f.cancelled = after.orders("cancelled") - before->orders("cancelled");
  f.parks = after.orders("pending_payment") - before->orders("pending_payment");
  return f;
}

} // namespace

int run_http(int argc, char** argv) {
  auto o = parse_http(argc, argv);
  own_node own;
  if (o.url.empty())
    start_own_node(o, own);
  auto ep = parse_url(o.url);
  if (!ep)
    fail("--url must be http://HOST:PORT, not \"" + o.url + "\"", 2);
  if (auto probe = connect(*ep); !fetch_metrics(*probe))
    fail("no answer to GET " + o.url + "/metrics");
  bench_run run{o, *ep};
  run.prefix = run_prefix("hb");
  auto t0 = seconds_now();
  seed_stock(run);
  std::printf("seeded %llu SKUs with %lld units each in %.2f s; order ids %s-<n>\n", u(o.skus),
              static_cast<long long>(stock_each), seconds_now() - t0, run.prefix.c_str());
  std::fflush(stdout);
  auto f = measure(run);
  f.not_terminal = verify_orders(run);
  int rc = own.process ? stop_own_node(own) : 0;
  print_summary(o, f);
  auto lost = o.orders - f.posts.accepted - f.posts.out_of_stock;
  if (lost > 0 || f.not_terminal > 0) {
    std::printf("  FAILED: %llu orders not accepted (%s), %llu accepted but not terminal\n",
                u(lost), f.posts.first_failure.c_str(), u(f.not_terminal));
    rc = 1;
  }
  std::fflush(stdout);
  std::cout << to_json(o, f).dump() << std::endl;
  return rc;
}

} // namespace keel::bench
