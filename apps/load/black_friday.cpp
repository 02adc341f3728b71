// The Black Friday of `./keel demo` (keel-demo), told through a running
// keel-node's HTTP API, its providers' faults set at keel-sim: seed the catalogue, normal load, a 50x spike,
// slow payment gateways that open both breakers while orders keep coming,
// the recovery until every order ended, and an outcome report. Every figure
// comes from the node (/metrics, /health, GET /v1/...), not from this process.

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <map>
#include <random>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "auth.hpp"
#include "black_friday.hpp"
#include "keel/events/error.hpp"
#include "http_client.hpp"
#include "measure.hpp"

namespace keel::bench {

namespace {

using nlohmann::json;

constexpr std::uint64_t demo_skus = 200;
/// SKUs 1..doorbusters: scarce stock that 10% of all lines ask for.
constexpr std::uint64_t doorbusters = 5;
constexpr std::int64_t doorbuster_stock = 50;
constexpr std::int64_t regular_stock = 1'000'000;
/// Normal gateways: the simulator's default latency, 1% of payments declined.
constexpr const char* normal_gateways =
  R"({"provider":"gateways","latency_ms":2,"latency_p99_ms":10,)"
  R"("error_rate":0,"decline_rate":0.01})";
/// The slowdown: every call takes 1-1.5 s and fails; both breakers open and
/// payments park in pending_payment. (Calls slower than the adaptive
/// timeout, 4-6 s, open them too, but a second run against the same node
/// then stalls in half-open for about 25 s: a node issue, not the demo's.)
constexpr const char* slow_gateways =
  R"({"provider":"gateways","latency_ms":1000,"latency_p99_ms":1500,)"
  R"("error_rate":1.0,"decline_rate":0.01})";
constexpr double recovery_timeout_s = 120;

/// What the clients saw (answers to POST /v1/orders).
struct client_counts {
  std::atomic<std::uint64_t> sent{0};
  std::atomic<std::uint64_t> accepted{0};
  std::atomic<std::uint64_t> out_of_stock{0};
  std::atomic<std::uint64_t> shed{0};
  std::atomic<std::uint64_t> rate_limited{0};
  std::atomic<std::uint64_t> no_answer{0};
  std::atomic<std::uint64_t> failed{0};
};

const char* breaker_name(double state) {
  auto s = static_cast<int>(state);
  return s == 0 ? "closed" : s == 1 ? "open" : s == 2 ? "half-open" : "?";
}

/// One demo run against one node. Lifecycle: construct, `run` once. The
/// load threads and the monitor thread share the counters (atomics) and the
/// monitor's figures (under `mtx_`).
class http_demo {
public:
  explicit http_demo(black_friday_options o)
    : ep_(o.node), o_(std::move(o)), tokens_(o_.jwt_secret), prefix_(run_prefix("bf")) {
  }

  /// Runs every phase and the report; returns the exit code.
  int run();

private:
  // -- load -------------------------------------------------------------------
  void place_one(httplib::Client& c, std::mt19937_64& rng);
  void load(double rate, std::uint64_t connections, double seconds,
            const std::atomic<bool>* stop = nullptr);
  void load_phase(double rate, std::uint64_t connections, double seconds);
  // -- the node's figures -----------------------------------------------------
  void monitor();
  void observe(const metrics_sample& m);
  void progress_line(const metrics_sample& m, httplib::Client& c);
  metrics_sample metrics(httplib::Client& c);
  bool all_ended(const metrics_sample& m) const;
  // -- phases -----------------------------------------------------------------
  void seed(httplib::Client& c);
  void admin(httplib::Client& c, const std::string& method, const std::string& path,
             const std::string& body);
  void settle_after_spike();
  bool recover();
  // -- report -----------------------------------------------------------------
  int report();
  void report_figures(const metrics_sample& m);
  void report_pending();
  void phase(const char* name, const std::string& title);
  [[noreturn]] void fail(const std::string& why);

  /// Sets the gateways' faults where they run: keel-sim, or the node.
  void faults(httplib::Client& node, const std::string& body);

  http_endpoint ep_;
  black_friday_options o_;
  token_cache tokens_;
  std::string prefix_;
  double t0_ = seconds_now();
  client_counts counts_;
  std::atomic<std::uint64_t> next_order_{1};
  /// Seeds of the load threads' random orders, one per thread started.
  std::atomic<std::uint64_t> streams_{0};
  std::atomic<const char*> phase_{"seed"};
  std::atomic<bool> stop_monitor_{false};
  /// Accepted orders are remembered from the slowdown on (`watch_`).
  std::atomic<bool> watch_{false};
  std::mutex mtx_;
  std::vector<std::string> watched_;
  std::string first_failure_;
  metrics_sample base_;
  std::map<std::string, double> breaker_state_;
  std::vector<std::string> transitions_;
  double peak_depth_ = 0;
};

[[noreturn]] void http_demo::fail(const std::string& why) {
  std::printf("\nkeel-demo FAILED: %s\n", why.c_str());
  std::fflush(stdout);
  std::_Exit(1); // load and monitor threads may still be running
}

void http_demo::phase(const char* name, const std::string& title) {
  phase_ = name;
  std::printf("\n== %s (+%.1f s)\n", title.c_str(), seconds_now() - t0_);
  std::fflush(stdout);
}

// -- load ---------------------------------------------------------------------

namespace {

/// Doorbusters sell at 49.99 EUR, the rest at the benchmarks' prices.
std::int64_t demo_price(std::uint64_t sku) {
  return sku <= doorbusters ? 4999 : http_price(sku);
}

} // namespace

void http_demo::place_one(httplib::Client& c, std::mt19937_64& rng) {
  auto id = prefix_ + "-" + std::to_string(next_order_.fetch_add(1));
  auto number = 1 + rng() % 50'000;
  auto customer = "shopper-" + std::to_string(number);
  std::vector<http_line> lines(1 + rng() % 2);
  for (auto& l : lines) {
    auto hot = rng() % 100 < 10;
    auto sku = hot ? 1 + rng() % doorbusters : doorbusters + 1 + rng() % (demo_skus - doorbusters);
    l.sku = http_sku(sku);
    l.quantity = static_cast<std::uint32_t>(1 + rng() % (hot ? 2 : 3));
    l.unit_price_cents = demo_price(sku);
  }
  ++counts_.sent;
  auto a = send(c, "POST", "/v1/orders", order_body(id, customer, lines),
                tokens_.customer(customer, premium_customer(number)));
  if (a.status == 202 || a.status == 200) {
    ++counts_.accepted;
    if (watch_) {
      std::lock_guard<std::mutex> guard{mtx_};
      watched_.push_back(id);
    }
  } else if (a.status == 409) {
    ++counts_.out_of_stock;
  } else if (a.status == 503) {
    ++counts_.shed;
  } else if (a.status == 429) {
    ++counts_.rate_limited;
  } else if (a.status == 0) {
    ++counts_.no_answer;
  } else if (counts_.failed++ == 0) {
    std::lock_guard<std::mutex> guard{mtx_};
    first_failure_ = "POST /v1/orders " + id + ": " + std::to_string(a.status) + " " + a.body;
  }
}

/// `rate` orders/s attempted from `connections` threads (open loop: a thread
/// that falls behind sends at once, never more than 1 s of backlog) for
/// `seconds` or until `*stop`.
void http_demo::load(double rate, std::uint64_t connections, double seconds,
                     const std::atomic<bool>* stop) {
  auto start = seconds_now();
  auto interval = static_cast<double>(connections) / rate;
  on_connections(ep_, connections, [&](httplib::Client& c, std::uint64_t t) {
    std::mt19937_64 rng{2024 + streams_.fetch_add(1)};
    auto next = start + interval * static_cast<double>(t) / static_cast<double>(connections);
    while (seconds_now() < start + seconds && !(stop != nullptr && *stop)) {
      auto now = seconds_now();
      if (now < next)
        std::this_thread::sleep_for(std::chrono::duration<double>(next - now));
      next = std::max(next + interval, seconds_now() - 1.0);
      place_one(c, rng);
    }
  });
}

/// A load phase in the foreground, then what it achieved.
void http_demo::load_phase(double rate, std::uint64_t connections, double seconds) {
  auto sent = counts_.sent.load();
  auto accepted = counts_.accepted.load();
  auto start = seconds_now();
  load(rate, connections, seconds);
  auto elapsed = seconds_now() - start;
  auto n = static_cast<double>(counts_.sent - sent);
  std::printf("   sent %.0f orders in %.1f s (%.0f/s), %llu accepted\n", n, elapsed, n / elapsed,
              u(counts_.accepted - accepted));
  if (n < 0.9 * rate * seconds)
    std::printf("   (fewer than the %.0f/s attempted: each connection waits for its answer, "
                "%.1f ms per request on average)\n",
                rate, n > 0 ? 1000 * elapsed * static_cast<double>(connections) / n : 0.0);
  std::fflush(stdout);
}

// -- the node's figures -------------------------------------------------------

metrics_sample http_demo::metrics(httplib::Client& c) {
  for (int i = 0; i < 20; ++i) {
    if (auto m = fetch_metrics(c))
      return *m;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  fail("GET /metrics failed 20 times in a row");
}

/// Every order the clients placed ended, and nothing is parked or running.
bool http_demo::all_ended(const metrics_sample& m) const {
  return m.terminal() - base_.terminal() >= counts_.accepted
         && m.value("keel_retry_queue_depth") == 0 && m.value("keel_sagas_in_flight") == 0;
}

/// Records breaker changes of the gateways (printed at once) and the
/// deepest retry queue.
void http_demo::observe(const metrics_sample& m) {
  std::lock_guard<std::mutex> guard{mtx_};
  peak_depth_ = std::max(peak_depth_, m.value("keel_retry_queue_depth"));
  for (const auto& gw : o_.gateways) {
    auto now = m.value("keel_breaker_state", "breaker", gw);
    auto i = breaker_state_.find(gw);
    if (i != breaker_state_.end() && i->second != now) {
      char at[32];
      std::snprintf(at, sizeof at, "+%.1f s", seconds_now() - t0_);
      auto line = std::string{at} + " breaker " + gw + ": " + breaker_name(i->second) + " -> "
                  + breaker_name(now);
      std::printf("   >> %s (retry queue %.0f)\n", line.c_str(),
                  m.value("keel_retry_queue_depth"));
      std::fflush(stdout);
      transitions_.push_back(line);
    }
    breaker_state_[gw] = now;
  }
}

void http_demo::progress_line(const metrics_sample& m, httplib::Client& c) {
  auto h = send(c, "GET", "/health");
  auto health = json::parse(h.body, nullptr, false);
  auto score = health.is_object() ? health.value("score", 0.0) : 0.0;
  auto d = [&](const char* outcome) {
    return u(m.orders(outcome) - base_.orders(outcome));
  };
  std::string breakers;
  for (const auto& gw : o_.gateways)
    breakers += " " + gw + " " + breaker_name(m.value("keel_breaker_state", "breaker", gw));
  std::printf("  %5.1fs %-9s sent %6llu  202 %6llu  409 %4llu  503 %5llu  429 %3llu | completed "
              "%6llu cancelled %4llu parked %4llu | retry queue %4.0f |%s | health %.2f\n",
              seconds_now() - t0_, phase_.load(), u(counts_.sent), u(counts_.accepted),
              u(counts_.out_of_stock), u(counts_.shed), u(counts_.rate_limited), d("completed"),
              d("cancelled"), d("pending_payment"), m.value("keel_retry_queue_depth"),
              breakers.c_str(), score);
  std::fflush(stdout);
}

/// Samples /metrics every 200 ms and prints a progress line every second.
void http_demo::monitor() {
  auto c = connect(ep_);
  auto next_line = seconds_now() + 1;
  while (!stop_monitor_) {
    if (auto m = fetch_metrics(*c)) {
      observe(*m);
      if (seconds_now() >= next_line) {
        progress_line(*m, *c);
        next_line += 1;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

// -- phases -------------------------------------------------------------------

/// An admin request that must succeed (retried after 503/429).
void http_demo::admin(httplib::Client& c, const std::string& method, const std::string& path,
                      const std::string& body) {
  retry_counts retries;
  auto a = send_until_final(c, method, path, body, tokens_.admin("demo-ops"), retries, 30);
  if (a.status != 200)
    fail(method + " " + path + " " + body + ": " + std::to_string(a.status) + " " + a.body
         + a.error);
}

void http_demo::faults(httplib::Client& node, const std::string& body) {
  if (!o_.sim)
    return admin(node, "POST", "/admin/faults", body);
  auto sim = connect(*o_.sim);
  httplib::Headers h;
  if (!o_.sim_key.empty())
    h.emplace("Authorization", "Bearer " + o_.sim_key);
  auto res = sim->Post("/admin/faults", h, body, "application/json");
  if (!res || res->status != 200)
    fail("POST /admin/faults at keel-sim " + body + ": "
         + (res ? std::to_string(res->status) + " " + res->body : httplib::to_string(res.error())));
}

void http_demo::seed(httplib::Client& c) {
  phase("seed", "Phase 1: seed the catalogue. " + std::to_string(demo_skus) + " SKUs; "
                  + std::to_string(doorbusters) + " doorbusters (" + http_sku(1) + ".."
                  + http_sku(doorbusters) + ") with " + std::to_string(doorbuster_stock)
                  + " units each get 10% of all lines; 1% of payments declined");
  on_connections(ep_, 8, [this](httplib::Client& sc, std::uint64_t t) {
    for (auto i = 1 + t; i <= demo_skus; i += 8) {
      admin(sc, "PUT", "/admin/stock/" + http_sku(i),
            json{{"quantity", i <= doorbusters ? doorbuster_stock : regular_stock}}.dump());
      admin(sc, "PUT", "/admin/catalog/" + http_sku(i),
            json{{"price_cents", demo_price(i)}, {"currency", "EUR"}}.dump());
    }
  });
  faults(c, normal_gateways);
}

/// Waits (up to 15 s) until the spike's orders ended, so that only orders
/// of the slowdown meet the slow gateways.
void http_demo::settle_after_spike() {
  auto c = connect(ep_);
  auto start = seconds_now();
  bool ended = false;
  while (!(ended = all_ended(metrics(*c))) && seconds_now() - start < 15)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::printf("   the spike's orders %s %.1f s after it\n",
              ended ? "all ended" : "had not all ended", seconds_now() - start);
}

/// Light load until the retry queue is empty, then every order must end;
/// false after `recovery_timeout_s`.
bool http_demo::recover() {
  std::atomic<bool> stop_light{false};
  std::thread light{[&] { load(10, 2, recovery_timeout_s, &stop_light); }};
  auto c = connect(ep_);
  auto start = seconds_now();
  bool ok = false;
  while (seconds_now() - start < recovery_timeout_s) {
    auto m = metrics(*c);
    if (m.value("keel_retry_queue_depth") == 0 && !stop_light && seconds_now() - start > 3) {
      stop_light = true; // the parked payments went through: stop, let the rest end
      light.join();
      std::printf("   retry queue drained %.1f s into the recovery; waiting for every order to "
                  "end\n", seconds_now() - start);
      continue;
    }
    if (stop_light && all_ended(m)) {
      ok = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  stop_light = true;
  if (light.joinable())
    light.join();
  return ok;
}

// -- report -------------------------------------------------------------------

/// GETs the orders accepted from the slowdown on (16 connections): which
/// went through pending_payment (payment_attempts > 0), and how they ended.
void http_demo::report_pending() {
  std::map<std::string, std::uint64_t> ended;
  std::uint64_t parked = 0;
  std::atomic<std::size_t> next{0};
  std::mutex mtx;
  on_connections(ep_, 16, [&](httplib::Client& c, std::uint64_t t) {
    retry_counts retries;
    auto auth = tokens_.admin("demo-reader-" + std::to_string(t));
    for (auto i = next.fetch_add(1); i < watched_.size(); i = next.fetch_add(1)) {
      auto a = send_until_final(c, "GET", "/v1/orders/" + watched_[i], {}, auth, retries, 30);
      auto j = json::parse(a.body, nullptr, false);
      std::lock_guard<std::mutex> guard{mtx};
      if (a.status != 200 || !j.is_object()) {
        ++ended["unreadable (" + std::to_string(a.status) + ")"];
      } else if (j.value("payment_attempts", 0) > 0) {
        ++parked;
        ++ended[j.value("status", "?")];
      }
    }
  });
  std::printf("   of the %zu orders accepted from the slowdown on, %llu went through "
              "pending_payment; then:",
              watched_.size(), u(parked));
  for (auto& [status, n] : ended)
    std::printf(" %s %llu", status.c_str(), u(n));
  std::printf("\n");
}

/// The stock level of `sku` once nothing is reserved (the stock read model
/// may lag a little behind the sagas: polled up to 10 s).
json settled_stock(httplib::Client& c, const std::string& sku) {
  json level;
  retry_counts retries;
  for (auto deadline = seconds_now() + 10; seconds_now() < deadline;) {
    auto a = send_until_final(c, "GET", "/v1/stock/" + sku, {}, {}, retries, 10);
    level = json::parse(a.body, nullptr, false);
    if (level.is_object() && level.value("reserved", -1) == 0)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return level.is_object() ? level : json::object();
}

/// Each doorbuster: available >= 0, on hand within its stock, nothing reserved.
bool report_doorbusters(httplib::Client& c) {
  bool ok = true;
  for (std::uint64_t i = 1; i <= doorbusters; ++i) {
    auto level = settled_stock(c, http_sku(i));
    long long on_hand = level.value("on_hand", -1LL);
    long long reserved = level.value("reserved", -1LL);
    long long available = level.value("available", -1LL);
    bool fine = on_hand >= 0 && on_hand <= doorbuster_stock && reserved == 0 && available >= 0;
    ok = ok && fine;
    std::printf("   doorbuster %s: sold %lld of %lld, on hand %lld, reserved %lld, available "
                "%lld: %s\n",
                http_sku(i).c_str(), doorbuster_stock - on_hand, 0LL + doorbuster_stock, on_hand,
                reserved, available, fine ? "ok, no oversell" : "WRONG");
  }
  return ok;
}

/// Orders, sagas, retry queue, breakers, shedding and revenue during the demo.
void http_demo::report_figures(const metrics_sample& m) {
  auto d = [&](const std::string& name, const std::string& label, const std::string& v) {
    return u(static_cast<std::uint64_t>(m.value(name, label, v) - base_.value(name, label, v)));
  };
  std::printf("   orders sent %llu: accepted %llu, refused at the door for lack of stock (409) "
              "%llu, shed (503) %llu, rate-limited (429) %llu, no answer %llu\n",
              u(counts_.sent), u(counts_.accepted), u(counts_.out_of_stock), u(counts_.shed),
              u(counts_.rate_limited), u(counts_.no_answer));
  std::printf("   sagas ended: %llu completed, %llu rejected (out of stock), %llu cancelled "
              "(payment declined or unavailable); %llu parks in pending_payment\n",
              d("keel_orders_total", "outcome", "completed"),
              d("keel_orders_total", "outcome", "rejected"),
              d("keel_orders_total", "outcome", "cancelled"),
              d("keel_orders_total", "outcome", "pending_payment"));
  std::printf("   entered pending_payment (figures read model): %llu\n",
              d("keel_orders_today", "status", "pending_payment"));
  report_pending();
  std::printf("   retry queue: peak depth %.0f, now %.0f; %.0f payments re-driven\n", peak_depth_,
              m.value("keel_retry_queue_depth"),
              m.value("keel_retry_queue_redriven_total")
                - base_.value("keel_retry_queue_redriven_total"));
  for (const auto& gw : o_.gateways) {
    auto now = m.value("keel_breaker_state", "breaker", gw);
    std::printf("   breaker %s: %llu transitions, now %s%s\n", gw.c_str(),
                d("keel_breaker_transitions_total", "breaker", gw), breaker_name(now),
                now == 2 ? " (until its next call, a trial; payments try the first gateway first)"
                         : "");
  }
  std::printf("   breaker changes seen by sampling /metrics every 200 ms:\n");
  for (auto& t : transitions_)
    std::printf("     %s\n", t.c_str());
  std::printf("   the node counted %.0f requests shed (503) and %.0f rate-limited (429)\n",
              m.value("keel_load_shed_total") - base_.value("keel_load_shed_total"),
              m.value("keel_rate_limit_rejections_total")
                - base_.value("keel_rate_limit_rejections_total"));
  std::printf("   revenue today: %.2f EUR (%.2f EUR of it during this demo)\n",
              m.value("keel_revenue_today_cents", "currency", "EUR") / 100,
              static_cast<double>(d("keel_revenue_today_cents", "currency", "EUR")) / 100);
}

int http_demo::report() {
  phase("report", "Outcome");
  auto c = connect(ep_);
  report_figures(metrics(*c));
  auto h = json::parse(send(*c, "GET", "/health").body, nullptr, false);
  if (h.is_object())
    std::printf("   health now: %.2f (%s)\n", h.value("score", 0.0),
                h.value("status", "?").c_str());
  auto stock_ok = report_doorbusters(*c);
  if (counts_.failed > 0)
    std::printf("   %llu unexpected answers; the first: %s\n", u(counts_.failed),
                first_failure_.c_str());
  return stock_ok && counts_.failed == 0 ? 0 : 1;
}

int http_demo::run() {
  std::printf("keel-demo: Black Friday through the HTTP API of %s:%d (order ids %s-<n>)%s\n",
              ep_.host.c_str(), ep_.port, prefix_.c_str(),
              o_.sim ? ", payment and shipping providers at keel-sim" : "");
  auto c = connect(ep_);
  base_ = metrics(*c);
  std::thread mon{[this] { monitor(); }};
  seed(*c);
  phase("normal", "Phase 2: normal load. 40 orders/s for 5 s from 4 connections");
  load_phase(40, 4, 5);
  phase("spike", "Phase 3: Black Friday spike, 50x. 2,000 orders/s attempted for 5 s from 32 "
                 "connections");
  load_phase(2000, 32, 5);
  settle_after_spike();
  phase("slowdown", "Phase 4: payment slowdown. Both gateways take 1-1.5 s per call and fail "
                    "every call; 100 orders/s for 8 s from 8 connections");
  faults(*c, slow_gateways);
  watch_ = true;
  load_phase(100, 8, 8);
  phase("recovery", "Phase 5: recovery. Gateways back to normal; light load (10 orders/s) until "
                    "the retry queue drained, then every order must end");
  faults(*c, normal_gateways);
  if (!recover())
    fail("the orders had not all ended " + std::to_string(int(recovery_timeout_s))
         + " s into the recovery (see the last progress line: retry queue, parked, breakers)");
  stop_monitor_ = true;
  mon.join();
  auto rc = report();
  std::printf("\nkeel-demo %s in %.1f s\n", rc == 0 ? "succeeded" : "FAILED", seconds_now() - t0_);
  std::fflush(stdout);
  return rc;
}

} // namespace

int run_black_friday(black_friday_options o) {
  http_demo demo{std::move(o)};
  return demo.run();
}

} // namespace keel::bench
