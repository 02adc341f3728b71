#pragma once

// What the tests of real keel-node processes in a cluster share: etcd and
// nodes (on loopback, or each in a network namespace of its own), orders and
// stock, the checks run at the end (audits, projections, logs compared).

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "agent.hpp"
#include "etcd_fixture.hpp"
#include "keel/projections/audit.hpp"
#include "keel/storage/event_store.hpp"
#include "keel/storage/replication.hpp"
#include "keel/storage/verify.hpp"
#include "netns_lab.hpp"
#include "node_process.hpp"
#include "temp_dir.hpp"

namespace keel::test {

using clock_type = std::chrono::steady_clock;
using nlohmann::json;
using namespace std::chrono_literals;


constexpr std::uint32_t test_slots = 16;

/// The path of `ip` (iproute2).
inline std::string ip_program() {
  for (const char* p : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"})
    if (::access(p, X_OK) == 0)
      return p;
  return "ip";
}

/// etcd and keel-node processes of one cluster ("t"), each with its own
/// store; with a network-namespace lab, every node runs in a host of its
/// own (node-to-node traffic and clients on its data link, etcd on its
/// control link), so a test can partition it.
struct test_cluster {
  netns_lab* lab = nullptr;
  std::unique_ptr<bench::etcd_process> etcd;
  keel::temp_dir dir;
  std::map<std::string, std::unique_ptr<node_process>> nodes;

  /// Starts no node (the test adds them).
  test_cluster() : etcd(start_etcd()) {
  }
  /// In `lab` (which outlives this): etcd listens on its control gateway too.
  explicit test_cluster(netns_lab& l) : lab(&l) {
    std::string why;
    etcd = bench::etcd_process::start(why, {l.control_gateway()});
    INFO(why);
    REQUIRE(etcd);
  }
  /// Starts nodes `ids` and waits until they share the slots.
  test_cluster(std::initializer_list<const char*> ids) : test_cluster() {
    for (auto id : ids)
      add(id);
    settle();
  }

  /// The etcd endpoint the nodes use.
  std::string etcd_url() const {
    return lab != nullptr ? etcd->url_on(lab->control_gateway()) : etcd->url();
  }

  std::vector<std::string> args_of(const std::string& id) const {
    // Nodes started one after the other within the settle time share the
    // first map; a lease of 2 s is renewed every 667 ms.
    auto listen = (lab != nullptr ? (*lab)[id].data_ip : std::string{"127.0.0.1"}) + ":0";
    return {"--kafka",    "off",        "--etcd",      etcd_url(), "--node-id",
            id,           "--cluster",  "t",           "--cluster-listen",
            listen,       "--slots",    std::to_string(test_slots), "--settle-ms",
            "3000",       "--lease-ttl", "2",          "--drain-timeout", "5"};
  }
  node_process& add(const std::string& id, std::vector<std::string> extra = {}) {
    node_placement where;
    if (lab != nullptr) {
      if (lab->find(id) == nullptr) {
        std::string why;
        auto* h = lab->add(id, why);
        INFO(why);
        REQUIRE(h);
      }
      where.prefix = lab->exec_prefix(id);
      where.prefix.front() = ip_program();
      where.host = (*lab)[id].data_ip;
    }
    auto args = args_of(id);
    if (std::find(extra.begin(), extra.end(), "--kafka") != extra.end())
      args.erase(args.begin(), args.begin() + 2); // the caller's Kafka, not "off"
    args.insert(args.end(), extra.begin(), extra.end());
    auto n = std::make_unique<node_process>(dir.sub(id), args, where);
    return *(nodes[id] = std::move(n));
  }
  node_process& operator[](const std::string& id) {
    return *nodes.at(id);
  }
  /// Waits until every running node sees every slot held and is connected to
  /// the other running nodes.
  void settle(std::chrono::seconds timeout = 30s) {
    auto running = std::count_if(nodes.begin(), nodes.end(),
                                 [](auto& kv) { return kv.second->running(); });
    auto deadline = clock_type::now() + timeout;
    for (auto& [id, n] : nodes) {
      if (!n->running())
        continue;
      auto c = n->client();
      while (metric(c, "keel_cluster_slots_without_owner") != 0
             || metric(c, "keel_cluster_peers_connected") != static_cast<double>(running - 1)) {
        INFO(id << ": " << n->log());
        REQUIRE(clock_type::now() < deadline);
        std::this_thread::sleep_for(50ms);
      }
    }
    // And no move is under way or to come: the running nodes hold shares
    // that differ by one slot at most.
    auto balanced = [&](const cluster::cluster_view& v) {
      std::size_t lo = test_slots, hi = 0;
      for (auto& [id, n] : nodes)
        if (n->running()) {
          lo = std::min(lo, v.held_by(id));
          hi = std::max(hi, v.held_by(id));
        }
      return v.settled() && hi <= lo + 1;
    };
    while (!balanced(view())) {
      REQUIRE(clock_type::now() < deadline);
      std::this_thread::sleep_for(50ms);
    }
  }
  /// The cluster's view, read from etcd.
  cluster::cluster_view view() {
    auto etcd_client = client_of(*etcd);
    auto v = cluster::read_view(*etcd_client, "t");
    REQUIRE(v);
    return *v;
  }
};

/// `n` keys with prefix `prefix` whose slots `owner` holds.
inline std::vector<std::string> keys_of(const cluster::cluster_view& v, const std::string& owner,
                                 const std::string& prefix, std::size_t n) {
  std::vector<std::string> out;
  for (int i = 0; out.size() < n && i < 100000; ++i) {
    auto k = prefix + std::to_string(i);
    if (v.holders[cluster::slot_of(k, v.slots)].node == owner)
      out.push_back(k);
  }
  REQUIRE(out.size() == n);
  return out;
}

inline json order_body(const std::string& id, const std::string& customer,
                const std::vector<std::pair<std::string, int>>& lines) {
  json items = json::array();
  for (auto& [sku, qty] : lines)
    items.push_back({{"sku", sku}, {"quantity", qty}, {"unit_price_cents", 1250}});
  return {{"order_id", id},
          {"customer_id", customer},
          {"items", items},
          {"currency", "EUR"},
          {"shipping_address",
           {{"name", "Ada"}, {"street", "Main 1"}, {"city", "Berlin"}, {"postal_code", "10115"},
            {"country", "DE"}}}};
}

/// Polls until GET `path` on `c` answers 200 (catalogue copies and read
/// models follow within milliseconds).
inline void until_200(httplib::Client& c, const std::string& path) {
  auto deadline = clock_type::now() + 10s;
  for (;;) {
    auto res = c.Get(path.c_str(), auth("ops", true));
    if (res && res->status == 200)
      return;
    INFO(path << " -> " << (res ? res->status : 0));
    REQUIRE(clock_type::now() < deadline);
    std::this_thread::sleep_for(20ms);
  }
}

/// Stocks and prices `skus` through `entry` (forwarded to each SKU's
/// owner), then waits until every node prices them.
inline void stock_all(test_cluster& tc, node_process& entry, const std::vector<std::string>& skus,
               int quantity) {
  auto c = entry.client();
  for (auto& sku : skus) {
    stock(c, sku, quantity);
    put_on_sale(c, sku);
  }
  for (auto& [id, n] : tc.nodes) {
    auto nc = n->client();
    for (auto& sku : skus)
      until_200(nc, "/v1/catalog/" + sku);
  }
}

/// Audits the store of node `id` beside the running node.
inline void audit_clean(test_cluster& tc, const std::string& id) {
  auto store = storage::event_store::open_beside(tc.dir.sub(id));
  REQUIRE(store);
  projections::audit_options o;
  o.require_terminal = true;
  auto rep = projections::audit(**store, o);
  REQUIRE(rep);
  std::string found;
  for (auto& v : rep->violations)
    found += v.to_string() + "\n";
  INFO(id << " audit: " << found);
  CHECK(rep->ok());
}

/// The cluster warnings and errors of every node's log (failed moves, lost
/// connections), for a failure report.
inline std::string cluster_warnings(test_cluster& tc) {
  std::string out;
  for (auto& [id, n] : tc.nodes) {
    out += id + " (cluster warnings):\n";
    std::istringstream lines{n->log()};
    for (std::string line; std::getline(lines, line);)
      if (line.find("component=cluster") != std::string::npos
          && line.find("level=info") == std::string::npos)
        out += line + "\n";
  }
  return out;
}

/// Every projection of node `id` follows its log (none stopped at an event
/// it could not apply).
inline void projections_live(test_cluster& tc, const std::string& id) {
  auto c = tc[id].client();
  auto res = c.Get("/admin/projections", auth("ops", true));
  REQUIRE(res);
  REQUIRE(res->status == 200);
  auto body = json::parse(res->body);
  INFO(id << ": " << res->body);
  REQUIRE(body["projections"].size() == 3);
  for (auto& p : body["projections"])
    CHECK(p["state"] == "live");
}

/// Today's day of the year, UTC (the daily figures' day).
inline int utc_yday() {
  auto t = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&t, &utc);
  return utc.tm_yday;
}

inline std::string status_of(httplib::Client& c, const std::string& id) {
  auto res = c.Get(("/v1/orders/" + id).c_str(), auth("ops", true));
  REQUIRE(res);
  if (res->status != 200)
    return "http " + std::to_string(res->status);
  return json::parse(res->body)["status"].get<std::string>();
}


/// Polls `pred` every 20 ms for up to `timeout`.
inline bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  for (auto deadline = clock_type::now() + timeout;;) {
    if (pred())
      return true;
    if (clock_type::now() >= deadline)
      return false;
    std::this_thread::sleep_for(20ms);
  }
}

/// Every record of the store at `dir` (beside its running node, or closed),
/// as stored, with the store's terms; the store verifies clean.
inline std::pair<std::vector<std::string>, storage::term_history>
log_and_terms(const std::string& dir) {
  auto store = storage::event_store::open_beside(dir);
  REQUIRE(store);
  std::vector<std::string> records;
  auto r = (*store)->read_all(1, (*store)->last_position());
  while (r.next())
    records.emplace_back(r.raw());
  REQUIRE_FALSE(r.error());
  auto terms = (*store)->terms();
  REQUIRE(terms);
  auto report = storage::verify(**store);
  REQUIRE(report);
  std::string found;
  for (auto& f : report->findings)
    found += f.kind + " at " + std::to_string(f.position) + ": " + f.detail + "\n";
  INFO(dir << " verify: " << found);
  CHECK(report->findings.empty());
  return {std::move(records), std::move(*terms)};
}

/// Node `n`'s /metrics, or nothing (with the reason in `why`) when it does
/// not answer (stopped, starting again, cut off).
inline std::optional<std::string> metrics_of(node_process& n, std::string* why = nullptr) {
  httplib::Client c{n.host(), n.port()};
  c.set_connection_timeout(1, 0);
  c.set_read_timeout(3, 0);
  auto res = c.Get("/metrics");
  if (!res || res->status != 200) {
    if (why != nullptr)
      *why = res ? "answered " + std::to_string(res->status) + ": " + res->body
                 : "no answer: " + httplib::to_string(res.error());
    return std::nullopt;
  }
  return res->body;
}

/// The value of the sample `sample` in a /metrics text (-1: absent).
inline double sample_of(const std::string& text, const std::string& sample) {
  auto at = text.find("\n" + sample + " ");
  if (at == std::string::npos)
    return -1;
  return std::stod(text.substr(at + sample.size() + 2));
}

/// Starts groups ga (a1, a2) and gb (b1, b2) in `tc` and waits until each
/// primary (a1, b1) has its synchronous standby and holds half of the slots.
inline void start_two_groups(test_cluster& tc, const std::vector<std::string>& extra = {}) {
  auto in = [&](const std::string& group) {
    std::vector<std::string> args{"--group", group};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  tc.add("a1", in("ga"));
  tc.add("b1", in("gb"));
  tc.add("a2", in("ga"));
  tc.add("b2", in("gb"));
  auto a1 = tc["a1"].client();
  auto b1 = tc["b1"].client();
  REQUIRE(eventually(
    [&] {
      return metric(a1, "keel_replication_standby_sync{standby=\"a2\"}") == 1
             && metric(b1, "keel_replication_standby_sync{standby=\"b2\"}") == 1;
    },
    30s));
  REQUIRE(eventually(
    [&] {
      auto v = tc.view();
      return v.settled() && v.held_by("a1") + v.held_by("b1") == test_slots
             && v.held_by("a1") > 0 && v.held_by("b1") > 0;
    },
    30s));
  for (auto& [id, n] : tc.nodes) {
    auto c = n->client();
    REQUIRE(eventually([&] { return metric(c, "keel_cluster_slots_without_owner") == 0; }, 20s));
  }
}

/// A client placing orders from a thread of its own, keeping every attempt
/// (a 202 is an acknowledged order; no answer or a 5xx leaves it open: the
/// order may have been placed). It sends to the nodes `entries` in order of
/// preference and, on a failed request, turns to the next one, as a client
/// behind a load balancer would.
struct order_load {
  struct attempt {
    std::string id;
    std::string entry;
    int status = 0;
    clock_type::time_point at;
    clock_type::time_point done;
  };
  /// Order i: its id and body.
  using order_maker = std::function<std::pair<std::string, json>(std::size_t)>;

  test_cluster& tc;
  std::vector<std::string> entries;
  order_maker make;
  mutable std::mutex mtx;
  std::vector<attempt> attempts;
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> accepted{0};
  std::thread thread;

  order_load(test_cluster& c, std::vector<std::string> e, order_maker m, std::size_t limit = 20000)
    : tc(c), entries(std::move(e)), make(std::move(m)) {
    thread = std::thread{[this, limit] { run(limit); }};
  }
  ~order_load() {
    finish();
  }
  void run(std::size_t limit) {
    std::map<std::string, std::unique_ptr<httplib::Client>> clients;
    std::size_t entry = 0;
    for (std::size_t i = 0; !stop && i < limit; ++i) {
      attempt a;
      a.entry = entries[entry % entries.size()];
      auto& c = clients[a.entry];
      if (!c) {
        auto& n = tc[a.entry];
        c = std::make_unique<httplib::Client>(n.host(), n.port());
        c->set_keep_alive(true);
        c->set_connection_timeout(1, 0);
        c->set_read_timeout(5, 0);
      }
      auto [id, body] = make(i);
      a.id = id;
      a.at = clock_type::now();
      auto res = post(*c, "/v1/orders", body, auth("ops", true));
      a.status = res ? res->status : 0;
      a.done = clock_type::now();
      accepted += a.status == 202;
      {
        std::lock_guard<std::mutex> guard{mtx};
        attempts.push_back(a);
      }
      if (a.status == 0 || a.status >= 500) {
        ++entry;
        c.reset(); // a new connection (the node may have come back on another port)
      }
      if (a.status != 202)
        std::this_thread::sleep_for(20ms);
    }
  }
  /// Waits for `n` more accepted orders (false after `timeout`).
  bool more(std::size_t n, std::chrono::milliseconds timeout = 30s) {
    auto before = accepted.load();
    return eventually([&] { return accepted >= before + n; }, timeout);
  }
  void finish() {
    stop = true;
    if (thread.joinable())
      thread.join();
  }
  std::vector<attempt> history() const {
    std::lock_guard<std::mutex> guard{mtx};
    return attempts;
  }
  std::set<std::string> acknowledged() const {
    std::set<std::string> out;
    for (auto& a : history())
      if (a.status == 202)
        out.insert(a.id);
    return out;
  }
  /// Milliseconds from `t0` to the first order accepted after it.
  double first_accept_after(clock_type::time_point t0) const {
    for (auto& a : history())
      if (a.status == 202 && a.at > t0)
        return std::chrono::duration<double, std::milli>(a.at - t0).count();
    return -1;
  }
  /// The longest time between two acknowledgements (ends of requests) in
  /// [from, to], in ms.
  double longest_pause(clock_type::time_point from, clock_type::time_point to) const {
    auto last = from;
    double longest = 0;
    for (auto& a : history())
      if (a.status == 202 && a.done >= from && a.done <= to) {
        longest = std::max(longest, std::chrono::duration<double, std::milli>(a.done - last).count());
        last = a.done;
      }
    return std::max(longest, std::chrono::duration<double, std::milli>(to - last).count());
  }
};

/// A machine replaced: node `id`'s data directory emptied (the node must
/// be stopped).
inline void wipe_data(test_cluster& tc, const std::string& id) {
  for (auto& entry : std::filesystem::directory_iterator{tc.dir.sub(id)})
    std::filesystem::remove_all(entry.path());
}

/// Whether `primary` names `standby` its synchronous standby within
/// `timeout` (polled every 200 ms, under a node's rate limit).
inline bool synchronous(test_cluster& tc, const std::string& primary, const std::string& standby,
                        std::chrono::milliseconds timeout) {
  auto c = tc[primary].client();
  return eventually([&] {
    if (metric(c, "keel_replication_standby_sync{standby=\"" + standby + "\"}") == 1)
      return true;
    std::this_thread::sleep_for(200ms);
    return false;
  }, timeout);
}

/// How a group_run is set up.
struct group_options {
  /// Each node in a network namespace of its own (partition tests).
  bool netns = false;
  /// The nodes the client sends orders to, in order of preference.
  std::vector<std::string> entries{"a2"};
  /// More arguments of both nodes (e.g. "--sync", "strict").
  std::vector<std::string> extra;
};

inline std::unique_ptr<netns_lab> make_lab(bool wanted) {
  if (!wanted)
    return nullptr;
  std::string why;
  auto lab = netns_lab::create(why);
  INFO(why);
  REQUIRE(lab);
  return lab;
}

inline std::unique_ptr<test_cluster> make_cluster(netns_lab* lab) {
  return lab != nullptr ? std::make_unique<test_cluster>(*lab) : std::make_unique<test_cluster>();
}

/// Group "ga" of a1 (primary) and a2 (its synchronous standby), three SKUs
/// on sale, and one client placing orders (through a2 by default: the
/// standby forwards them to the primary, and serves them itself once it
/// took over).
struct group_run {
  std::unique_ptr<netns_lab> lab; // outlives the nodes
  std::unique_ptr<test_cluster> cluster;
  test_cluster& tc;
  group_options opts;
  std::vector<std::string> skus{"sku-r1", "sku-r2", "sku-r3"};
  std::unique_ptr<order_load> load;

  explicit group_run(group_options o = {})
    : lab(make_lab(o.netns)), cluster(make_cluster(lab.get())), tc(*cluster), opts(std::move(o)) {
    std::vector<std::string> group{"--group", "ga"};
    group.insert(group.end(), opts.extra.begin(), opts.extra.end());
    tc.add("a1", group);
    auto a2_sync = "keel_replication_standby_sync{standby=\"a2\"}";
    // Polled without failing on a missed answer: a node on a machine this
    // busy may lose its first lease and start again (as the group's only
    // member it takes the role back).
    auto shows = [&](const std::string& id, std::vector<std::pair<std::string, double>> want) {
      auto text = metrics_of(tc[id]);
      if (!text)
        return false;
      for (auto& [sample, value] : want)
        if (sample_of(*text, sample) != value)
          return false;
      return true;
    };
    REQUIRE(eventually(
      [&] {
        return shows("a1", {{"keel_replication_primary", 1}, {"keel_cluster_slots_without_owner", 0}});
      },
      30s));
    tc.add("a2", group);
    // a2 follows, catches up and becomes the synchronous standby.
    REQUIRE(eventually([&] { return shows("a1", {{a2_sync, 1}}); }, 30s));
    auto a1 = tc["a1"].client();
    auto a2 = tc["a2"].client();
    CHECK(metric(a2, "keel_replication_primary") == 0);
    CHECK(metric(a1, "keel_replication_alone") == 0);
    stock_all(tc, tc["a2"], skus, 100000); // through the standby: forwarded to the primary
    load = std::make_unique<order_load>(tc, opts.entries, [this](std::size_t i) {
      auto id = "r-" + std::to_string(i);
      return std::pair{id, order_body(id, "c-1", {{skus[i % 3], 1}})};
    });
  }
  ~group_run() {
    load.reset(); // before the nodes
  }

  bool more(std::size_t n, std::chrono::milliseconds timeout = 30s) {
    return load->more(n, timeout);
  }
  void finish() {
    load->finish();
  }
  std::vector<order_load::attempt> history() const {
    return load->history();
  }
  std::set<std::string> acknowledged() const {
    return load->acknowledged();
  }
  double first_accept_after(clock_type::time_point t0) const {
    return load->first_accept_after(t0);
  }
  double longest_pause(clock_type::time_point from, clock_type::time_point to) const {
    return load->longest_pause(from, to);
  }
  /// `primary` serves the group with `standby` as its synchronous standby:
  /// every acknowledged order ends there, its store audits clean, and both
  /// stores verify clean and hold the same log and terms.
  void check_group(const std::string& primary, const std::string& standby) {
    auto p = tc[primary].client();
    CHECK(metric(p, "keel_replication_primary") == 1);
    for (auto& id : acknowledged())
      wait_status(p, id, {"completed"});
    audit_clean(tc, primary);
    projections_live(tc, primary);
    REQUIRE(synchronous(tc, primary, standby, 30s));
    auto s = tc[standby].client();
    CHECK(metric(s, "keel_replication_primary") == 0);
    same_stores(tc, primary, standby);
  }
  /// The stores of `primary` and `standby` verify clean and hold the same
  /// records and terms, once the standby has the primary's last batch (a
  /// primary holds a batch, its own $system events too, a moment before
  /// its standby does).
  static void same_stores(test_cluster& tc, const std::string& primary,
                          const std::string& standby) {
    std::pair<std::vector<std::string>, storage::term_history> lp, ls;
    bool same = eventually([&] {
      lp = log_and_terms(tc.dir.sub(primary));
      ls = log_and_terms(tc.dir.sub(standby));
      if (lp.first == ls.first && lp.second == ls.second)
        return true;
      std::this_thread::sleep_for(200ms);
      return false;
    }, 10s);
    INFO(primary << " holds " << lp.first.size() << " records, " << standby << " "
                 << ls.first.size());
    CHECK(same);
    CHECK(lp.first.size() == ls.first.size());
    CHECK(lp.first == ls.first);
    CHECK(lp.second == ls.second);
    for (std::size_t i = 1; i < lp.second.size(); ++i)
      CHECK(lp.second[i].token > lp.second[i - 1].token);
  }
  /// After a2 took over from a1: a1 follows a2, and the log has both terms.
  void check_after_failover() {
    check_group("a2", "a1");
    CHECK(tc["a1"].log().find("msg=\"following\" group=ga primary=a2") != std::string::npos);
    auto l2 = log_and_terms(tc.dir.sub("a2"));
    REQUIRE(l2.second.size() >= 2); // a1's term, then a2's
  }
};

} // namespace keel::test
