// The randomized fault run (torture): two replicated groups, each node in a
// network namespace of its own, orders with stock on both groups placed
// through every node, and for many rounds one fault at a time, drawn from a
// seeded generator - a primary killed, frozen beyond its lease, cut off, its
// lease revoked; primary and standby cut apart; a standby cut off etcd,
// stopped, killed or wiped (it comes back empty and fetches a checkpoint);
// etcd killed. After each fault heals the groups must be
// whole again (a primary with its synchronous standby). Then a checker over
// the clients' history: every acknowledged order is there and terminal, no
// order is charged twice, stock is conserved, and each group's two stores
// verify clean, have gap-free logs with strictly increasing tokens and hold
// the same records.
//
// KEEL_NEMESIS_SEED and KEEL_NEMESIS_ROUNDS (default 12) repeat or lengthen a run.

#include <catch2/catch.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <random>

#include "keel/events/streams.hpp"
#include "node_cluster.hpp"

using namespace keel;
using namespace keel::test;

namespace {

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

const std::vector<std::string> fault_names{
  "kill the primary",         "freeze the primary beyond its lease",
  "cut the primary off",      "cut primary and standby apart",
  "cut the standby off etcd", "kill etcd",
  "revoke the primary's lease", "restart the standby",
  "kill the standby",         "wipe the standby's disk"};

struct nemesis {
  std::unique_ptr<netns_lab> lab = make_lab(true);
  test_cluster tc{*lab};
  std::mt19937_64 rng;

  explicit nemesis(std::uint64_t seed) : rng(seed) {
  }

  std::uint64_t draw(std::uint64_t n) {
    return std::uniform_int_distribution<std::uint64_t>{0, n - 1}(rng);
  }

  /// The last lines of every node's log (for a failure report).
  std::string logs() {
    std::string out;
    for (auto& [id, node] : tc.nodes) {
      auto log = node->log();
      std::size_t at = log.size();
      for (int lines = 0; lines < 60 && at > 0; ++lines)
        at = log.rfind('\n', at - 1) == std::string::npos ? 0 : log.rfind('\n', at - 1);
      out += "== " + id + " ==\n" + log.substr(at) + "\n";
    }
    return out;
  }

  static std::string other(const std::string& group, const std::string& node) {
    auto first = group == "ga" ? std::string{"a1"} : std::string{"b1"};
    auto second = group == "ga" ? std::string{"a2"} : std::string{"b2"};
    return node == first ? second : first;
  }

  /// The group's primary (from etcd), empty when it has none.
  std::string primary_of(const std::string& group) {
    auto etcd = cluster::etcd_client::connect(tc.etcd->url());
    if (!etcd)
      return {};
    auto v = cluster::read_view(**etcd, "t");
    if (!v)
      return {};
    auto g = v->groups.find(group);
    return g == v->groups.end() ? std::string{} : g->second.leader.node;
  }

  /// Both groups have a primary that serves their slots with its
  /// synchronous standby; otherwise why not in `why_not`.
  std::string why_not;
  bool whole() {
    for (std::string group : {"ga", "gb"}) {
      auto p = primary_of(group);
      if (p.empty() || !tc[p].running()) {
        why_not = group + " has no running primary (\"" + p + "\")";
        return false;
      }
      std::string err;
      auto text = metrics_of(tc[p], &err);
      if (!text) {
        why_not = group + ": " + p + " /metrics: " + err;
        return false;
      }
      auto sync = "keel_replication_standby_sync{standby=\"" + other(group, p) + "\"}";
      for (auto [sample, want] :
           {std::pair{std::string{"keel_replication_primary"}, 1.0}, std::pair{sync, 1.0},
            std::pair{std::string{"keel_cluster_slots_without_owner"}, 0.0}}) {
        auto got = sample_of(*text, sample);
        if (got != want) {
          why_not = group + ": " + p + " shows " + sample + " " + std::to_string(got);
          return false;
        }
      }
    }
    return true;
  }

  /// Where acknowledged order `a` is: the attempt, each node's answer to
  /// GET, and each store's events of its stream.
  std::string trace(const order_load::attempt& a, clock_type::time_point start) {
    auto at = [&](clock_type::time_point t) {
      return std::to_string(std::chrono::duration<double>(t - start).count()) + " s";
    };
    std::string out = "sent to " + a.entry + " at " + at(a.at) + ", answered " +
                      std::to_string(a.status) + " at " + at(a.done) + ";";
    for (auto& [id, node] : tc.nodes) {
      httplib::Client c{node->host(), node->port()};
      c.set_connection_timeout(1, 0);
      auto res = c.Get(("/v1/orders/" + a.id).c_str(), auth("trace", true));
      out += " " + id + " GET " + (res ? std::to_string(res->status) : std::string{"-"});
      auto store = storage::event_store::open_beside(tc.dir.sub(id));
      if (!store)
        continue;
      auto r = (*store)->read_stream("order-" + a.id);
      std::size_t events = 0;
      std::string types;
      while (r.next()) {
        ++events;
        types += std::string{r.current().type} + "@" + std::to_string(r.current().position) + " ";
      }
      auto terms = (*store)->terms();
      out += " (store: " + std::to_string(events) + " events of its stream [" + types + "], last position " +
             std::to_string((*store)->last_position()) + ", " +
             std::to_string(terms ? terms->size() : 0) + " terms)";
    }
    return out;
  }

  /// Polls `whole` every 250 ms (the nodes limit requests per address).
  bool wait_whole(std::chrono::milliseconds timeout) {
    for (auto deadline = clock_type::now() + timeout;;) {
      if (whole())
        return true;
      if (clock_type::now() >= deadline)
        return false;
      std::this_thread::sleep_for(250ms);
    }
  }

  /// Restarts node `id` once etcd let its member record go.
  void restart(const std::string& id) {
    REQUIRE(eventually([&] { return tc.view().member(id) == nullptr; }, 20s));
    tc[id].restart();
  }

  /// Applies fault `f` to `group`, holds it for `hold`, heals it.
  void run_fault(std::size_t f, const std::string& group, std::chrono::milliseconds hold) {
    auto p = primary_of(group);
    REQUIRE_FALSE(p.empty());
    auto s = other(group, p);
    switch (f) {
    case 0:
      tc[p].signal_and_wait(SIGKILL, 5s);
      std::this_thread::sleep_for(hold);
      restart(p);
      break;
    case 1: {
      auto pid = tc[p].pid();
      ::kill(pid, SIGSTOP);
      std::this_thread::sleep_for(std::max(hold, std::chrono::milliseconds{3000}));
      ::kill(pid, SIGCONT);
      break;
    }
    case 2:
      REQUIRE(lab->cut_data(p));
      REQUIRE(lab->cut_control(p));
      std::this_thread::sleep_for(std::max(hold, std::chrono::milliseconds{3000}));
      REQUIRE(lab->cut_data(p, false));
      REQUIRE(lab->cut_control(p, false));
      break;
    case 3:
      REQUIRE(lab->cut_data(s));
      std::this_thread::sleep_for(hold);
      REQUIRE(lab->cut_data(s, false));
      break;
    case 4:
      REQUIRE(lab->cut_control(s));
      std::this_thread::sleep_for(hold);
      REQUIRE(lab->cut_control(s, false));
      break;
    case 5: {
      auto& e = tc.etcd->process();
      e.signal_and_wait(SIGKILL, 5s);
      std::this_thread::sleep_for(hold);
      std::string why;
      bool back = e.restart("", "", why);
      INFO(why);
      REQUIRE(back);
      break;
    }
    case 6: {
      auto v = tc.view();
      auto lease = v.groups.at(group).leader.lease;
      if (lease != 0)
        client_of(*tc.etcd)->revoke(lease);
      std::this_thread::sleep_for(hold);
      break;
    }
    case 7:
      tc[s].signal_and_wait(SIGTERM, 20s);
      std::this_thread::sleep_for(hold);
      restart(s);
      break;
    case 8:
      tc[s].signal_and_wait(SIGKILL, 5s);
      std::this_thread::sleep_for(hold);
      restart(s);
      break;
    case 9: {
      // A new disk: the standby comes back empty and fetches a checkpoint.
      tc[s].signal_and_wait(SIGKILL, 5s);
      wipe_data(tc, s);
      std::this_thread::sleep_for(hold);
      restart(s);
      break;
    }
    }
  }
};

/// Waits (up to 60 s) until order `id` is terminal; false when it is not
/// found or does not end.
bool terminal(httplib::Client& c, const std::string& id, json& order) {
  auto deadline = clock_type::now() + 60s;
  while (clock_type::now() < deadline) {
    auto res = c.Get(("/v1/orders/" + id).c_str(), auth("checker", true));
    if (res && res->status == 200) {
      order = json::parse(res->body);
      auto status = order["status"].get<std::string>();
      if (status == "completed" || status == "cancelled" || status == "rejected")
        return true;
    }
    std::this_thread::sleep_for(100ms); // within the operators' rate limit
  }
  return false;
}

} // namespace

TEST_CASE("randomized faults under load: every acknowledged order survives, nothing is charged "
          "twice, stock is conserved, and each group's stores end identical",
          "[cluster][etcd][replication][netns][torture]") {
  auto seed = env_number("KEEL_NEMESIS_SEED",
                         static_cast<std::uint64_t>(clock_type::now().time_since_epoch().count()));
  auto rounds = env_number("KEEL_NEMESIS_ROUNDS", 12);
  std::printf("nemesis: seed %llu, %llu rounds (KEEL_NEMESIS_SEED=%llu repeats this run)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(rounds),
              static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  nemesis n{seed};
  auto& tc = n.tc;
  // A wiped standby (fault 9) is sent a checkpoint rather than the log.
  start_two_groups(tc, {"--seed-after-events", "300"});
  auto v = tc.view();
  std::map<std::string, std::vector<std::string>> skus{{"ga", keys_of(v, "a1", "sku-a", 3)},
                                                       {"gb", keys_of(v, "b1", "sku-b", 3)}};
  std::vector<std::string> all = skus["ga"];
  all.insert(all.end(), skus["gb"].begin(), skus["gb"].end());
  constexpr int on_hand = 1000000;
  stock_all(tc, tc["a2"], all, on_hand);
  auto ids_a = keys_of(v, "a1", "n-a-", 10000);
  auto ids_b = keys_of(v, "b1", "n-b-", 10000);
  // Orders of both groups, each with a unit of a SKU of either group.
  order_load load{tc, {"a2", "b2", "a1", "b1"}, [&](std::size_t i) {
                    auto& id = (i % 2 == 0 ? ids_a : ids_b)[(i / 2) % 10000];
                    return std::pair{id, order_body(id, "c-" + std::to_string(i % 50),
                                                    {{skus["ga"][i % 3], 1}, {skus["gb"][i % 3], 1}})};
                  }};

  std::map<std::string, int> applied;
  auto start = clock_type::now();
  for (std::uint64_t r = 0; r < rounds; ++r) {
    if (!n.wait_whole(90s))
      FAIL("the groups are not whole again after round " << r << " (" << n.why_not << "):\n"
                                                          << n.logs());
    REQUIRE(load.more(10, 60s));
    auto f = static_cast<std::size_t>(n.draw(fault_names.size()));
    auto group = n.draw(2) == 0 ? std::string{"ga"} : std::string{"gb"};
    auto hold = std::chrono::milliseconds{500 + n.draw(3500)};
    std::printf("round %llu at %.1f s: %s of %s (primary %s), held %lld ms\n",
                static_cast<unsigned long long>(r + 1),
                std::chrono::duration<double>(clock_type::now() - start).count(),
                fault_names[f].c_str(), group.c_str(), n.primary_of(group).c_str(),
                static_cast<long long>(hold.count()));
    std::fflush(stdout);
    n.run_fault(f, group, hold);
    ++applied[fault_names[f]];
  }
  if (!n.wait_whole(90s))
    FAIL("the groups are not whole again after the last round (" << n.why_not << "):\n"
                                                                 << n.logs());
  REQUIRE(load.more(20, 60s));
  load.finish();

  // -- the checker ------------------------------------------------------------
  INFO(cluster_warnings(tc));
  auto pa = n.primary_of("ga");
  auto pb = n.primary_of("gb");
  auto reader = tc[pa].client();
  std::map<std::string, int> sold;
  std::size_t acked = 0, completed = 0, open_placed = 0;
  std::set<std::string> seen;
  std::map<std::string, std::string> outcome;
  std::map<std::string, std::set<std::string>> lines_of;
  for (auto& a : load.history()) {
    if (a.status != 202 && a.status != 0 && a.status < 500)
      continue; // refused: nothing was placed
    if (!seen.insert(a.id).second)
      continue; // an id is used once
    json order;
    if (a.status == 202) {
      ++acked;
      if (!terminal(reader, a.id, order))
        FAIL("acknowledged order " << a.id << " is not there: " << n.trace(a, start) << "\n"
                                   << n.logs());
    } else {
      auto res = reader.Get(("/v1/orders/" + a.id).c_str(), auth("ops", true));
      REQUIRE(res);
      if (res->status == 404)
        continue;
      ++open_placed;
      if (!terminal(reader, a.id, order))
        FAIL("order " << a.id << " (no answer when placed) does not end: " << n.trace(a, start));
    }
    outcome[a.id] = order["status"].get<std::string>();
    for (auto& line : order["items"])
      lines_of[a.id].insert(line["sku"].get<std::string>());
    if (order["status"] == "completed") {
      ++completed;
      for (auto& line : order["items"])
        sold[line["sku"].get<std::string>()] += line["quantity"].get<int>();
    }
  }
  for (auto& sku : all) {
    INFO(sku << " sold " << sold[sku]);
    json level;
    eventually(
      [&] {
        auto res = reader.Get(("/v1/stock/" + sku).c_str());
        if (!res || res->status != 200)
          return false;
        level = json::parse(res->body);
        return level["on_hand"] == on_hand - sold[sku] && level["reserved"] == 0;
      },
      15s);
    CHECK(level["on_hand"] == on_hand - sold[sku]);
    CHECK(level["reserved"] == 0);
    if (level["reserved"] != 0 || level["on_hand"] != on_hand - sold[sku]) {
      // Each order's reservations, commits and releases in the SKU's
      // stream, against what became of the order.
      auto group = sku.rfind("sku-a", 0) == 0 ? std::string{"ga"} : std::string{"gb"};
      auto holder = group == "ga" ? pa : pb;
      auto store = storage::event_store::open_beside(tc.dir.sub(holder));
      REQUIRE(store);
      auto r = (*store)->read_stream(events::stock_stream(sku));
      std::map<std::string, std::string> trail;
      std::map<std::string, int> held, committed;
      while (r.next()) {
        auto ev = r.current().decode_payload();
        if (!ev)
          continue;
        auto at = "@" + std::to_string(r.current().version) + " ";
        if (auto* x = std::get_if<events::stock_reserved>(&*ev)) {
          ++held[x->order_id];
          trail[x->order_id] += "reserved" + at;
        } else if (auto* x = std::get_if<events::stock_committed>(&*ev)) {
          --held[x->order_id];
          ++committed[x->order_id];
          trail[x->order_id] += "committed" + at;
        } else if (auto* x = std::get_if<events::stock_released>(&*ev)) {
          --held[x->order_id];
          trail[x->order_id] += "released" + at;
        }
      }
      std::string report;
      for (auto& [order, events] : trail) {
        auto done = outcome.count(order) ? outcome[order] : std::string{"(not placed)"};
        bool odd = held[order] != 0 || (done == "completed") != (committed[order] == 1);
        if (!odd)
          continue;
        report += order + " " + done + ": " + events + "\n";
        for (auto& a : load.history())
          if (a.id == order)
            report += "  " + n.trace(a, start) + "\n";
        for (auto& [id, node] : tc.nodes) {
          std::istringstream lines{node->log()};
          for (std::string line; std::getline(lines, line);)
            if (line.find(order) != std::string::npos
                && line.find("component=http") == std::string::npos)
              report += "  " + id + ": " + line + "\n";
        }
      }
      for (auto& [order, done] : outcome)
        if (done == "completed" && trail.count(order) == 0 && lines_of[order].count(sku) != 0)
          report += order + " completed without a trace in " + sku + "\n";
      FAIL_CHECK(sku << " (" << group << ", primary " << holder << ") does not add up:\n"
                     << report << n.logs());
    }
  }
  for (auto& [group, p] : {std::pair{std::string{"ga"}, pa}, std::pair{std::string{"gb"}, pb}}) {
    audit_clean(tc, p);
    projections_live(tc, p);
    group_run::same_stores(tc, p, nemesis::other(group, p));
    auto lp = log_and_terms(tc.dir.sub(p));
    for (std::size_t i = 1; i < lp.second.size(); ++i) {
      CHECK(lp.second[i].token > lp.second[i - 1].token);
      CHECK(lp.second[i].first_position >= lp.second[i - 1].first_position);
    }
  }
  std::string faults;
  for (auto& [name, count] : applied)
    faults += "\n  " + std::to_string(count) + " x " + name;
  WARN("nemesis (seed " << seed << "): " << rounds << " rounds:" << faults << "\n"
                        << acked << " orders acknowledged (all present and terminal), "
                        << open_placed << " unanswered but placed, " << completed
                        << " completed; stock conserved on " << all.size() << " SKUs");
}
