#include "cluster_demo.hpp"

#include <atomic>
#include <functional>
#include <csignal>
#include <cstdio>
#include <mutex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "http_client.hpp"
#include "keel/projections/audit.hpp"
#include "keel/storage/event_store.hpp"
#include "local_cluster.hpp"
#include "measure.hpp"

namespace keel::bench {

namespace {

constexpr std::uint64_t demo_skus = 32;

void say(const char* fmt, const std::string& a = {}, const std::string& b = {}) {
  std::printf(fmt, a.c_str(), b.c_str());
  std::fflush(stdout);
}

/// Clients placing orders through every running node until stopped; each
/// 503 is retried with the same order id after a short pause.
class traffic_clients {
public:
  traffic_clients(local_cluster& lc, token_cache& tokens, std::uint64_t clients)
    : lc_(lc), tokens_(tokens) {
    for (std::uint64_t i = 0; i < clients; ++i)
      threads_.emplace_back([this, i] { run(i); });
  }
  ~traffic_clients() {
    stop();
  }
  void stop() {
    stop_ = true;
    for (auto& t : threads_)
      if (t.joinable())
        t.join();
  }
  std::uint64_t acknowledged() const {
    return ok_.load();
  }
  std::uint64_t unavailable() const {
    return shed_.load();
  }
  std::vector<std::string> ids() {
    std::lock_guard<std::mutex> guard{mtx_};
    return {ids_.begin(), ids_.end()};
  }

private:
  void run(std::uint64_t i) {
    for (std::uint64_t n = 0; !stop_; ++n) {
      auto nodes = lc_.ids();
      auto& entry = nodes[(i + n) % nodes.size()];
      if (!lc_.running(entry))
        continue;
      auto ep = parse_url(lc_.url(entry));
      auto c = connect(*ep);
      auto id = "demo-" + std::to_string(i) + "-" + std::to_string(n);
      std::uint64_t k = i * 7919 + n;
      std::vector<http_line> lines{{http_sku(1 + k % demo_skus), 1, http_price(1 + k % demo_skus)},
                                   {http_sku(1 + (k / 3 + 11) % demo_skus), 1,
                                    http_price(1 + (k / 3 + 11) % demo_skus)}};
      auto who = "cust-" + std::to_string(k % 500);
      // A 503 is retried a few times (a slot moving takes a moment); an
      // order of a lost node's slot is given up (never acknowledged).
      for (int attempt = 0; attempt < 10 && !stop_; ++attempt) {
        auto a = send(*c, "POST", "/v1/orders", order_body(id, who, lines), tokens_.customer(who));
        if (a.status == 202 || a.status == 200) {
          ok_++;
          std::lock_guard<std::mutex> guard{mtx_};
          ids_.insert(id);
          break;
        }
        if (a.status == 503)
          shed_++;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (a.status == 0)
          break; // the node it went to is gone: the next order goes elsewhere
      }
    }
  }

  local_cluster& lc_;
  token_cache& tokens_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> ok_{0};
  std::atomic<std::uint64_t> shed_{0};
  std::mutex mtx_;
  std::set<std::string> ids_;
  std::vector<std::thread> threads_;
};

std::string shares(const cluster::cluster_view& v, const std::vector<std::string>& ids) {
  std::string out;
  for (auto& id : ids)
    out += (out.empty() ? "" : ", ") + id + " " + std::to_string(v.held_by(id));
  return out;
}

/// Where order `id`'s stream is, and what its owner answers (for a report).
std::string whereabouts(local_cluster& lc, const std::string& id, const http_answer& last) {
  auto v = lc.view();
  auto slot = cluster::slot_of(id, v.slots);
  std::string out = "answered " + std::to_string(last.status) + " " + last.body + "; slot "
                    + std::to_string(slot) + " held by "
                    + (v.holders[slot].node.empty() ? "nobody" : v.holders[slot].node)
                    + ", data at " + v.data_at[slot] + "; its stream is in the stores of:";
  for (auto& node : lc.ids()) {
    auto store = storage::event_store::open_beside(lc.data(node));
    auto version = store ? (*store)->stream_version("order-" + id) : caf::expected<std::uint64_t>{0};
    if (version && *version > 0)
      out += " " + node + " (version " + std::to_string(*version) + ")";
  }
  return out;
}

/// Every acknowledged order's status, read through `url` (waits up to 60 s
/// for the ones in flight); returns the number not completed.
std::size_t check_orders(local_cluster& lc, const std::string& url, token_cache& tokens,
                         const std::vector<std::string>& ids) {
  auto c = connect(*parse_url(url));
  auto admin = tokens.admin("ops");
  std::size_t bad = 0;
  for (auto& id : ids) {
    std::string status;
    http_answer a;
    for (auto t0 = seconds_now(); seconds_now() - t0 < 60;) {
      a = send(*c, "GET", "/v1/orders/" + id, {}, admin);
      status = a.status == 200 ? nlohmann::json::parse(a.body).value("status", "") : "";
      if (status == "completed" || status == "rejected" || status == "cancelled")
        break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    if (status != "completed") {
      if (bad < 3)
        say("   order %s is not completed: %s\n", id, whereabouts(lc, id, a));
      ++bad;
    }
  }
  return bad;
}

/// What went wrong: the cluster's state and each node's last log lines.
int failed(local_cluster& lc, const std::string& what, const std::string& why) {
  say("%s %s\n", what, why);
  auto v = lc.view();
  std::printf("   map version %lld, settled %s, members %zu\n",
              static_cast<long long>(v.map.version), v.settled() ? "yes" : "no",
              v.members.size());
  for (std::uint32_t s = 0; s < v.slots; ++s)
    if (v.holders[s].node != v.map.owners[s])
      std::printf("   slot %u: mapped to %s, held by %s, data at %s\n", s,
                  v.map.owners[s].c_str(), v.holders[s].node.c_str(), v.data_at[s].c_str());
  for (auto& id : lc.ids()) {
    std::string text = lc.process(id).log(), moves;
    std::size_t n = 0;
    for (std::size_t at = 0; (at = text.find("component=cluster msg=\"slot move failed", at))
                             != std::string::npos;
         ++at)
      if (++n <= 3)
        moves += "  | " + text.substr(text.rfind('\n', at) + 1,
                                      text.find('\n', at) - text.rfind('\n', at) - 1)
                 + "\n";
    std::printf("   %s: %zu failed slot moves%s\n%s", id.c_str(), n, n ? ", the first:" : "",
                moves.c_str());
  }
  return 1;
}

} // namespace

/// The value of `sample` (`name` or `name{label="value"}`) on node `id`; -1 without an answer.
double sample_on(local_cluster& lc, const std::string& id, const std::string& name,
                 const std::string& label = {}, const std::string& value = {}) {
  auto ep = parse_url(lc.url(id));
  auto c = ep ? connect(*ep) : nullptr;
  auto m = c ? fetch_metrics(*c) : std::nullopt;
  if (!m)
    return -1;
  return label.empty() ? m->value(name) : m->value(name, label, value);
}

bool wait_until(const std::function<bool()>& pred, double seconds) {
  for (auto t0 = seconds_now(); !pred();) {
    if (seconds_now() - t0 > seconds)
      return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return true;
}

/// n5 joins group g4 as n4's standby; n4 is SIGKILLed; n5 takes over; n4
/// comes back as the standby. The orders acknowledged by the probe go to
/// `probed`.
bool failover(local_cluster& lc, token_cache& tokens, std::vector<std::string>& probed) {
  say("== n5 joins group g4 (--group g4): it follows n4 and becomes its synchronous standby\n");
  std::string why;
  auto f0 = seconds_now();
  if (!lc.add("n5", why, {"--group", "g4"}))
    return false;
  if (!wait_until(
        [&] { return sample_on(lc, "n4", "keel_replication_standby_sync", "standby", "n5") == 1; },
        60))
    return false;
  std::printf("   synchronous standby %.1f s after its start; from now on every order n4 "
              "acknowledges is on n5's disk too\n",
              seconds_now() - f0);
  // Order ids of g4's slots, placed through n1 one after the other.
  auto v = lc.view();
  std::vector<std::string> keys;
  for (std::uint64_t i = 0; keys.size() < 5000 && i < 1000000; ++i) {
    auto k = "fo-" + std::to_string(i);
    if (v.holders[cluster::slot_of(k, v.slots)].node == "n4")
      keys.push_back(k);
  }
  auto c = connect(*parse_url(lc.url("n1")));
  c->set_read_timeout(5, 0);
  std::size_t next = 0;
  auto place = [&] {
    auto& id = keys[next++ % keys.size()];
    auto sku = http_sku(1 + next % demo_skus);
    std::vector<http_line> lines{{sku, 1, http_price(1 + next % demo_skus)}};
    auto a = send(*c, "POST", "/v1/orders", order_body(id, "cust-fo", lines),
                  tokens.customer("cust-fo"));
    if (a.status == 202)
      probed.push_back(id);
    return a.status;
  };
  say("== SIGKILL n4, the primary of g4, while orders for its slots arrive through n1\n");
  auto k0 = seconds_now();
  lc.kill("n4");
  double first = -1;
  while (first < 0 && seconds_now() - k0 < 30) {
    if (place() == 202)
      first = seconds_now() - k0;
    else
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (first < 0)
    return false;
  std::printf("   n5 took over: the first order on g4's slots acknowledged %.2f s after the "
              "kill (lease 3 s); n5 promotions %.0f\n",
              first, sample_on(lc, "n5", "keel_replication_promotions_total"));
  say("== n4 restarts with its data: it rejoins g4 as n5's standby\n");
  auto r0 = seconds_now();
  if (!wait_until([&] { return lc.view().member("n4") == nullptr; }, 20)
      || !lc.restart("n4", why)
      || !wait_until(
        [&] { return sample_on(lc, "n5", "keel_replication_standby_sync", "standby", "n4") == 1; },
        60))
    return false;
  std::printf("   n4 follows n5 as its synchronous standby %.1f s later\n", seconds_now() - r0);
  return true;
}

int run_cluster_demo(const cluster_demo_options& o) {
  local_cluster::options co;
  co.slots = o.slots;
  co.node_args = {"--kafka", "off", "--log-level", "warn"};
  std::string why;
  auto lc = local_cluster::start(co, why);
  if (!lc) {
    say("cannot start etcd: %s\n", why);
    return 1;
  }
  say("== etcd at %s; starting nodes n1, n2, n3\n", lc->etcd_url());
  auto t0 = seconds_now();
  if (!lc->add_all({"n1", "n2", "n3"}, why) || !lc->wait_balanced(std::chrono::seconds(60))) {
    say("the cluster did not form: %s\n", why);
    return 1;
  }
  std::printf("   formed in %.1f s: slots %s (of %u)\n", seconds_now() - t0,
              shares(lc->view(), {"n1", "n2", "n3"}).c_str(), o.slots);
  token_cache tokens{lc->secret()};
  if (auto err = seed_skus(lc->url("n1"), tokens, demo_skus, 1000000); !err.empty())
    return failed(*lc, "seeding failed:", err);
  for (auto& id : lc->ids())
    if (!wait_priced(lc->url(id), demo_skus))
      return failed(*lc, id + " does not price the SKUs", "");
  say("== %s SKUs priced and stocked through n1 (each stored by its owner); traffic from "
      "8 clients through every node\n", std::to_string(demo_skus));
  traffic_clients traffic{*lc, tokens, 8};
  std::this_thread::sleep_for(std::chrono::seconds(o.phase_seconds));
  auto before = traffic.acknowledged();
  std::printf("   %llu orders acknowledged in %u s\n", u(before), o.phase_seconds);

  say("== SIGKILL n2\n");
  auto v = lc->view();
  std::string victim;
  for (std::uint64_t i = 0; victim.empty() && i < 100000; ++i)
    if (v.holders[cluster::slot_of("probe-" + std::to_string(i), v.slots)].node == "n2")
      victim = "probe-" + std::to_string(i);
  auto probe = connect(*parse_url(lc->url("n1")));
  auto k0 = seconds_now();
  lc->kill("n2");
  double first_503 = -1;
  while (seconds_now() - k0 < 2) {
    auto a = send(*probe, "GET", "/v1/orders/" + victim, {}, tokens.admin("ops"));
    if (a.status == 503 && first_503 < 0)
      first_503 = (seconds_now() - k0) * 1000;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  auto during = traffic.acknowledged();
  std::this_thread::sleep_for(std::chrono::seconds(o.phase_seconds));
  std::printf("   n1 answered n2's keys with 503 %.0f ms after the kill; %llu orders "
              "acknowledged in %u s meanwhile (n2's keys retried by the clients)\n",
              first_503, u(traffic.acknowledged() - during), o.phase_seconds);

  say("== n2 restarts with its data\n");
  auto r0 = seconds_now();
  if (!lc->restart("n2", why) || !lc->wait_balanced(std::chrono::seconds(60)))
    return failed(*lc, "n2 did not come back:", why);
  std::printf("   serving its slots again %.1f s later\n", seconds_now() - r0);

  say("== n4 joins, the primary of a replicated group (--group g4)\n");
  auto j0 = seconds_now();
  if (!lc->add("n4", why, {"--group", "g4"}) || !lc->wait_balanced(std::chrono::seconds(120)))
    return failed(*lc, "n4 did not join:", why);
  auto after_join = lc->view();
  std::printf("   settled %.1f s after its start: slots %s; map version %lld\n",
              seconds_now() - j0, shares(after_join, {"n1", "n2", "n3", "n4"}).c_str(),
              static_cast<long long>(after_join.map.version));
  std::this_thread::sleep_for(std::chrono::seconds(o.phase_seconds));

  std::vector<std::string> probed;
  if (!failover(*lc, tokens, probed))
    return failed(*lc, "the failover of group g4 did not complete:", "");
  std::this_thread::sleep_for(std::chrono::seconds(o.phase_seconds));
  traffic.stop();
  auto ids = traffic.ids();
  ids.insert(ids.end(), probed.begin(), probed.end());
  std::printf("== traffic stopped: %llu orders acknowledged, %llu answers were 503 (retried)\n",
              u(traffic.acknowledged()), u(traffic.unavailable()));
  auto bad = check_orders(*lc, lc->url("n3"), tokens, ids);
  std::printf("   %zu of %zu acknowledged orders completed\n", ids.size() - bad, ids.size());
  // Each node counts the daily figures of the slots whose data it holds, so
  // they add up although moved slots left copies behind; and every
  // projection of every node still follows its log after the moves.
  double placed = 0, completed = 0;
  std::string stopped;
  for (auto& id : lc->ids()) {
    auto c = connect(*parse_url(lc->url(id)));
    if (auto m = fetch_metrics(*c)) {
      placed += m->value("keel_orders_today", "status", "placed");
      completed += m->value("keel_orders_today", "status", "completed");
    }
    auto a = send(*c, "GET", "/admin/projections", {}, tokens.admin("ops"));
    auto body = nlohmann::json::parse(a.body, nullptr, false);
    if (a.status != 200 || !body.is_object() || !body["projections"].is_array()) {
      stopped += " " + id + " (no answer)";
      continue;
    }
    for (auto& p : body["projections"])
      if (p.value("state", std::string{}) != "live")
        stopped += " " + id + "/" + p.value("name", std::string{});
  }
  std::printf("   daily figures summed over the nodes: %.0f placed, %.0f completed today\n",
              placed, completed);
  if (!stopped.empty()) {
    ++bad;
    std::printf("   projections not live:%s\n", stopped.c_str());
  } else {
    std::printf("   every projection of every node is live\n");
  }
  for (auto& id : lc->ids()) {
    auto store = storage::event_store::open_beside(lc->data(id));
    projections::audit_options ao;
    ao.require_terminal = true;
    auto rep = store ? projections::audit(**store, ao)
                     : caf::expected<projections::audit_report>{store.error()};
    if (!rep || !rep->ok()) {
      ++bad;
      std::printf("   audit of %s: %s\n", id.c_str(),
                  rep ? (std::to_string(rep->violation_count()) + " violations").c_str()
                      : "cannot read the store");
      continue;
    }
    std::printf("   audit of %s's store: %llu events, %llu orders, every invariant holds\n",
                id.c_str(), u(rep->events), u(rep->orders));
  }
  say("== keel-inspect cluster --etcd %s\n", lc->etcd_url());
  auto cmd = executable_dir() + "/keel-inspect cluster --etcd " + lc->etcd_url()
             + " | head -8";
  std::fflush(stdout);
  if (std::system(cmd.c_str()) != 0)
    std::printf("   (keel-inspect failed)\n");
  return bad == 0 ? 0 : 1;
}

} // namespace keel::bench
