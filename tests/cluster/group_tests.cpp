// Replicated groups of real keel-node processes on a real etcd: a primary
// lost in every way a machine can be lost (killed, frozen, its lease
// revoked, cut off the network in part or whole, etcd itself gone), and
// every acknowledged order still there, on stores that hold the same log.
// The partition tests run each node in a network namespace of its own.

#include <catch2/catch.hpp>

#include <csignal>
#include <filesystem>

#include "kcat.hpp"
#include "keel/storage/kafka.hpp"
#include "node_cluster.hpp"

using namespace keel;
using namespace keel::test;

TEST_CASE("a group's primary SIGKILLed under load: its standby serves within seconds, no "
          "acknowledged order is lost, and the old primary returns as a standby",
          "[cluster][etcd][replication]") {
  group_run g;
  REQUIRE(g.more(40));
  auto killed_at = clock_type::now();
  g.tc["a1"].signal_and_wait(SIGKILL, 5s);
  bool served = g.more(40);
  g.finish();
  INFO(cluster_warnings(g.tc) << g.tc["a2"].log());
  REQUIRE(served);
  auto failover_ms = g.first_accept_after(killed_at);
  WARN("failover: first order accepted " << failover_ms << " ms after the primary's SIGKILL "
                                         << "(lease TTL 2 s); " << g.acknowledged().size()
                                         << " orders acknowledged");
  CHECK(failover_ms > 0);
  CHECK(failover_ms < 6000);
  auto a2 = g.tc["a2"].client();
  CHECK(metric(a2, "keel_replication_promotions_total") == 1);
  // The old primary comes back with its data once its lease is gone.
  REQUIRE(eventually([&] { return g.tc.view().member("a1") == nullptr; }, 10s));
  g.tc["a1"].restart();
  g.check_after_failover();
}

TEST_CASE("a standby serves reads from its own store with its lag shown, also while its group "
          "has no primary",
          "[cluster][etcd][replication]") {
  group_run g;
  REQUIRE(g.more(40));
  g.finish();
  auto ids = g.acknowledged();
  REQUIRE(!ids.empty());
  auto id = *ids.rbegin();
  auto a1 = g.tc["a1"].client();
  wait_status(a1, id, {"completed"});
  auto a2 = g.tc["a2"].client();
  auto standby = auth("ops", true);
  standby.emplace("Keel-Read", "standby");
  auto read = [&](const std::string& path, const httplib::Headers& h) {
    auto r = a2.Get(path.c_str(), h);
    REQUIRE(r);
    return *r;
  };
  // Without the header a standby forwards reads to its primary.
  auto forwarded = read("/v1/orders/" + id, auth("ops", true));
  CHECK(forwarded.status == 200);
  CHECK(!forwarded.has_header("Keel-Served-By"));
  // With it, it answers from its store: the same order, once its read
  // models have applied the order's last events.
  REQUIRE(eventually([&] {
    std::this_thread::sleep_for(100ms); // under the node's per-client rate limit
    auto r = read("/v1/orders/" + id, standby);
    return r.status == 200 && nlohmann::json::parse(r.body)["status"] == "completed";
  }, 10s));
  auto r = read("/v1/orders/" + id, standby);
  CHECK(r.get_header_value("Keel-Served-By") == "standby a2");
  CHECK(r.get_header_value("Keel-Replica-Lag-Events") == "0");
  CHECK(r.has_header("Keel-Replica-Contact-Ms"));
  auto stock = read("/v1/stock/" + g.skus[0], standby);
  CHECK(stock.status == 200);
  CHECK(stock.get_header_value("Keel-Served-By") == "standby a2");
  CHECK(metric(a2, "keel_replication_standby_reads_total") >= 3);
  // A primary answers the header itself, as always.
  auto on_primary = a1.Get(("/v1/orders/" + id).c_str(), standby);
  REQUIRE(on_primary);
  CHECK(on_primary->status == 200);
  CHECK(!on_primary->has_header("Keel-Served-By"));
  // The primary frozen: reads through the standby still answer at once.
  auto pid = g.tc["a1"].pid();
  ::kill(pid, SIGSTOP);
  auto t0 = clock_type::now();
  auto frozen = read("/v1/orders/" + id, standby);
  auto took = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
  ::kill(pid, SIGCONT);
  CHECK(frozen.status == 200);
  CHECK(took < 500);
  // Bad input changes nothing: an unknown order is a 404 on a standby too.
  CHECK(read("/v1/orders/no-such-order", standby).status == 404);
}

TEST_CASE("after a failover the outbox publishes no event twice: the new primary finds what the "
          "old one published past the checkpoint it was sent",
          "[cluster][etcd][replication][kafka]") {
  // Shared brokers (the embedded mock cluster, in this process): both nodes
  // relay the group's log to the same topics.
  storage::kafka_options ko;
  ko.partitions = 4;
  ko.client_id = "keel-test";
  auto kafka = storage::kafka_cluster::open(ko);
  REQUIRE(kafka);
  auto brokers = (*kafka)->bootstrap_servers();
  group_options o;
  o.extra = {"--kafka", brokers};
  group_run g{o};
  REQUIRE(g.more(100));
  g.tc["a1"].signal_and_wait(SIGKILL, 5s); // mid-relay, past its shipped checkpoint
  REQUIRE(g.more(60));
  REQUIRE(eventually([&] { return g.tc.view().member("a1") == nullptr; }, 10s));
  g.tc["a1"].restart();
  REQUIRE(g.more(20));
  g.finish();
  INFO(cluster_warnings(g.tc) << g.tc["a2"].log());
  g.check_after_failover();
  auto a2 = g.tc["a2"].client();
  REQUIRE(eventually([&] {
    std::this_thread::sleep_for(200ms);
    return metric(a2, "keel_outbox_lag_events") == 0;
  }, 30s));
  auto found = metric(a2, "keel_outbox_found_published_total");
  std::map<std::string, int> seen; // event id -> messages
  std::set<std::string> placed;    // orders with an order_placed message
  std::size_t messages = 0;
  for (auto* topic : {"keel.orders", "keel.inventory", "keel.payments", "keel.shipping"})
    for (auto& msg : kcat_read(brokers, topic)) {
      auto h = headers_of(msg);
      CHECK(h["origin"] == "t/ga");
      CHECK(!h["position"].empty());
      ++seen[h["event_id"]];
      ++messages;
      if (h["type"] == "order_placed")
        placed.insert(msg["key"].get<std::string>());
    }
  std::size_t twice = 0;
  for (auto& [id, n] : seen)
    twice += n > 1;
  WARN("outbox across a failover: " << messages << " messages, " << seen.size()
                                    << " events; the new primary found " << found
                                    << " already published past its checkpoint");
  CHECK(twice == 0);
  for (auto& id : g.acknowledged())
    CHECK(placed.count("order-" + id) == 1);
}

TEST_CASE("a wiped standby fetches a checkpoint of the primary's store while the primary serves, "
          "then follows from the log",
          "[cluster][etcd][replication]") {
  group_options o;
  o.entries = {"a1"};
  o.extra = {"--seed-after-events", "300"};
  group_run g{o};
  REQUIRE(g.more(20));
  // The standby's machine is replaced: an empty disk, the same node id.
  g.tc["a2"].signal_and_wait(SIGKILL, 5s);
  auto dir = g.tc.dir.sub("a2");
  wipe_data(g.tc, "a2");
  REQUIRE(g.more(60)); // alone meanwhile: far more than 300 events ahead
  auto a1 = g.tc["a1"].client();
  const std::string offered = "keel_replication_seeds_total{direction=\"offered\"}";
  auto before = metric(a1, offered);
  auto back_at = clock_type::now();
  g.tc["a2"].restart();
  REQUIRE(synchronous(g.tc, "a1", "a2", 60s));
  auto synced_ms = std::chrono::duration<double, std::milli>(clock_type::now() - back_at).count();
  REQUIRE(g.more(20)); // through it again
  g.finish();
  INFO(cluster_warnings(g.tc) << g.tc["a2"].log());
  CHECK(metric(a1, offered) == before + 1);
  auto log = g.tc["a2"].log();
  CHECK(log.find("fetched a checkpoint of the group's log: starting again on it") != std::string::npos);
  CHECK(log.find("the data directory is now a checkpoint of the group's log") != std::string::npos);
  CHECK(!std::filesystem::exists(dir + ".seed"));
  CHECK(!std::filesystem::exists(dir + ".replaced"));
  // The primary dropped its checkpoint once the standby started on it.
  CHECK(!std::filesystem::exists(g.tc.dir.sub("a1") + ".seed-out"));
  WARN("wiped standby: synchronous again " << synced_ms << " ms after it came back, "
                                           << g.acknowledged().size() << " orders acknowledged");
  g.check_group("a1", "a2");
}

TEST_CASE("a wiped standby that etcd still names does not take the role: the group waits for its "
          "last primary and loses nothing",
          "[cluster][etcd][replication]") {
  group_options o;
  o.entries = {"a1"};
  o.extra = {"--sync", "strict"}; // a1 keeps naming a2 while it is away
  group_run g{o};
  REQUIRE(g.more(40));
  g.tc["a2"].signal_and_wait(SIGKILL, 5s);
  auto dir = g.tc.dir.sub("a2");
  wipe_data(g.tc, "a2");
  std::this_thread::sleep_for(500ms);
  g.tc["a1"].signal_and_wait(SIGKILL, 5s);
  REQUIRE(eventually([&] {
    auto v = g.tc.view();
    return v.member("a1") == nullptr && v.member("a2") == nullptr;
  }, 10s));
  CHECK(g.tc.view().groups.at("ga").sync_standby == "a2");
  // Back with an empty disk, named in etcd: it must not lead.
  g.tc["a2"].restart();
  auto a2 = g.tc["a2"].client();
  std::this_thread::sleep_for(5s); // two leases and more
  CHECK(metric(a2, "keel_replication_primary") == 0);
  CHECK(metric(a2, "keel_replication_incomplete") == 1);
  CHECK(g.tc["a2"].log().find("its store lacks part of the group's log") != std::string::npos);
  // The last primary comes back, takes the role and a2 follows it.
  g.tc["a1"].restart();
  REQUIRE(g.more(20, 60s));
  g.finish();
  INFO(cluster_warnings(g.tc) << g.tc["a2"].log());
  CHECK(metric(a2, "keel_replication_incomplete") == 0);
  g.check_group("a1", "a2");
}

TEST_CASE("a customer's orders are listed from one node of each group: a lost standby or a "
          "frozen primary does not take the list down",
          "[cluster][etcd][replication]") {
  group_run g;
  REQUIRE(g.more(40));
  g.finish();
  auto list = [&](const std::string& via, const httplib::Headers& h) {
    auto c = g.tc[via].client();
    c.set_read_timeout(20, 0);
    auto t0 = clock_type::now();
    auto r = c.Get("/v1/customers/c-1/orders?limit=500", h);
    auto ms = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
    INFO("through " << via << ": " << httplib::to_string(r.error()) << " after " << ms << " ms");
    REQUIRE(r);
    return *r;
  };
  auto count = [](const httplib::Response& r) {
    return nlohmann::json::parse(r.body)["orders"].size();
  };
  auto all = list("a1", auth("ops", true));
  REQUIRE(all.status == 200);
  auto n = count(all);
  CHECK(n == g.acknowledged().size()); // each once, though both nodes hold them
  // The standby lost: the primary's part is enough.
  g.tc["a2"].signal_and_wait(SIGKILL, 5s);
  auto lost = list("a1", auth("ops", true));
  CHECK(lost.status == 200);
  CHECK(count(lost) == n);
  // Back, and synchronous again; then the primary frozen (it loses its
  // role after this): the standby answers from its own copy.
  REQUIRE(eventually([&] { return g.tc.view().member("a2") == nullptr; }, 10s));
  g.tc["a2"].restart();
  REQUIRE(synchronous(g.tc, "a1", "a2", 30s));
  auto pid = g.tc["a1"].pid();
  ::kill(pid, SIGSTOP);
  auto frozen = list("a2", auth("ops", true));
  ::kill(pid, SIGCONT);
  CHECK(frozen.status == 200);
  CHECK(count(frozen) == n);
}

TEST_CASE("a primary frozen (SIGSTOP) beyond its lease acknowledges nothing when it resumes and "
          "rejoins as a standby",
          "[cluster][etcd][replication]") {
  group_run g;
  REQUIRE(g.more(40));
  auto pid = g.tc["a1"].pid();
  auto stopped_at = clock_type::now();
  ::kill(pid, SIGSTOP);
  bool served = g.more(40); // a2 took over
  auto failover_ms = g.first_accept_after(stopped_at);
  std::this_thread::sleep_for(1s);
  ::kill(pid, SIGCONT);
  // It finds its lease gone, stops and starts again (the same process) as a
  // standby, and a2 names it synchronous standby once it caught up.
  REQUIRE(eventually([&] {
    return g.tc["a1"].log().find("lost the primary role: starting again as a standby")
           != std::string::npos;
  },
                     20s));
  REQUIRE(g.more(20));
  g.finish();
  INFO(cluster_warnings(g.tc) << g.tc["a1"].log());
  REQUIRE(served);
  WARN("SIGSTOP: first order accepted " << failover_ms << " ms after the primary froze; "
                                        << g.acknowledged().size() << " orders acknowledged");
  CHECK(g.tc["a1"].running());
  CHECK(g.tc["a1"].pid() == pid); // exec, not a new process
  g.check_after_failover();
}

TEST_CASE("a primary whose lease is revoked in etcd stops at once, its standby takes over and it "
          "rejoins as a standby",
          "[cluster][etcd][replication]") {
  group_run g;
  REQUIRE(g.more(40));
  auto v = g.tc.view();
  auto lease = v.groups.at("ga").leader.lease;
  REQUIRE(lease != 0);
  auto client = client_of(*g.tc.etcd);
  auto revoked_at = clock_type::now();
  REQUIRE_FALSE(client->revoke(lease));
  bool served = g.more(40);
  g.finish();
  INFO(cluster_warnings(g.tc) << g.tc["a1"].log());
  REQUIRE(served);
  WARN("lease revoked: first order accepted " << g.first_accept_after(revoked_at)
                                              << " ms later");
  REQUIRE(eventually([&] {
    return g.tc["a1"].log().find("lost the primary role: starting again as a standby")
           != std::string::npos;
  },
                     20s));
  g.check_after_failover();
}

// -- partitions (each node in a network namespace of its own) -------------------------

TEST_CASE("a primary cut off from everything acknowledges nothing, its standby takes over and, "
          "healed, the old primary rejoins as a standby",
          "[cluster][etcd][replication][netns]") {
  group_options o;
  o.netns = true;
  o.entries = {"a2", "a1"};
  group_run g{o};
  REQUIRE(g.more(40));
  auto cut_at = clock_type::now();
  REQUIRE(g.lab->cut_data("a1"));
  REQUIRE(g.lab->cut_control("a1"));
  bool served = g.more(40); // a2 took over
  auto failover_ms = g.first_accept_after(cut_at);
  std::this_thread::sleep_for(1s);
  REQUIRE(g.lab->cut_data("a1", false));
  REQUIRE(g.lab->cut_control("a1", false));
  // Back on the network it finds its lease gone and starts again as a standby.
  REQUIRE(eventually([&] {
    return g.tc["a1"].log().find("lost the primary role: starting again as a standby")
           != std::string::npos;
  },
                     20s));
  REQUIRE(g.more(20));
  g.finish();
  INFO(cluster_warnings(g.tc) << g.tc["a1"].log());
  REQUIRE(served);
  WARN("isolated primary: first order accepted " << failover_ms << " ms after the cut; "
                                                 << g.acknowledged().size()
                                                 << " orders acknowledged");
  CHECK(failover_ms > 0);
  CHECK(failover_ms < 6000);
  g.check_after_failover();
}

TEST_CASE("a cut between primary and standby pauses writes for the sync timeout at most, the "
          "primary goes on alone, recorded in etcd, and the standby catches up when healed",
          "[cluster][etcd][replication][netns]") {
  group_options o;
  o.netns = true;
  o.entries = {"a1"}; // a2's data link goes down: clients reach the primary only
  o.extra = {"--sync-timeout-ms", "500"};
  group_run g{o};
  REQUIRE(g.more(40));
  auto a1 = g.tc["a1"].client();
  auto cut_at = clock_type::now();
  REQUIRE(g.lab->cut_data("a2"));
  REQUIRE(g.more(60));
  auto during = clock_type::now();
  CHECK(metric(a1, "keel_replication_alone") == 1);
  CHECK(metric(a1, "keel_replication_sync_losses_total") >= 1);
  auto v = g.tc.view();
  CHECK(v.groups.at("ga").sync_standby.empty()); // etcd records it
  REQUIRE(g.lab->cut_data("a2", false));
  REQUIRE(synchronous(g.tc, "a1", "a2", 30s));
  CHECK(metric(a1, "keel_replication_alone") == 0);
  REQUIRE(g.more(20));
  g.finish();
  INFO(cluster_warnings(g.tc) << g.tc["a1"].log());
  auto pause_ms = g.longest_pause(cut_at, during);
  WARN("primary-standby cut: the longest pause between acknowledgements was " << pause_ms
                                                                             << " ms");
  CHECK(pause_ms < 3000);
  auto a2 = g.tc["a2"].client();
  CHECK(metric(a2, "keel_replication_promotions_total") == 0);
  g.check_group("a1", "a2");
}

TEST_CASE("strict mode: with the synchronous standby cut off nothing is acknowledged, writes "
          "resume when it is back",
          "[cluster][etcd][replication][netns]") {
  group_options o;
  o.netns = true;
  o.entries = {"a1"};
  o.extra = {"--sync", "strict", "--sync-timeout-ms", "500"};
  group_run g{o};
  REQUIRE(g.more(40));
  auto a1 = g.tc["a1"].client();
  const std::string alone = "keel_replication_batches_total{outcome=\"alone\"}";
  auto alone_before = metric(a1, alone);
  REQUIRE(g.lab->cut_data("a2"));
  auto cut_at = clock_type::now();
  std::this_thread::sleep_for(3s);
  auto healed_at = clock_type::now();
  REQUIRE(g.lab->cut_data("a2", false));
  REQUIRE(g.more(40));
  g.finish();
  INFO(cluster_warnings(g.tc) << g.tc["a1"].log());
  // Requests that began after the batches in flight at the cut wait; none
  // is acknowledged before the standby has it again.
  std::size_t acked_while_cut = 0;
  for (auto& a : g.history())
    if (a.status == 202 && a.at > cut_at + 200ms && a.done < healed_at)
      ++acked_while_cut;
  CHECK(acked_while_cut == 0);
  CHECK(g.tc.view().groups.at("ga").sync_standby == "a2"); // never dropped
  CHECK(metric(a1, alone) == alone_before);
  g.check_group("a1", "a2");
}

TEST_CASE("strict mode after a failover: the new primary acknowledges nothing until a standby "
          "has its writes",
          "[cluster][etcd][replication]") {
  group_options o;
  o.entries = {"a2"};
  o.extra = {"--sync", "strict"};
  group_run g{o};
  REQUIRE(g.more(40));
  auto killed_at = clock_type::now();
  g.tc["a1"].signal_and_wait(SIGKILL, 5s);
  auto a2 = g.tc["a2"].client();
  // a2 takes the role (etcd then names no synchronous standby) ...
  REQUIRE(eventually([&] { return metric(a2, "keel_replication_primary") == 1; }, 15s));
  REQUIRE(eventually([&] { return g.tc.view().member("a1") == nullptr; }, 10s));
  std::this_thread::sleep_for(2s); // orders keep arriving at a2 alone
  auto restarted_at = clock_type::now();
  // ... and acknowledges once a1, back with its data, follows it.
  g.tc["a1"].restart();
  bool served = g.more(40);
  g.finish();
  INFO(cluster_warnings(g.tc) << g.tc["a2"].log());
  REQUIRE(served);
  std::size_t acked_alone = 0;
  for (auto& a : g.history())
    if (a.status == 202 && a.at > killed_at && a.done < restarted_at)
      ++acked_alone;
  CHECK(acked_alone == 0);
  CHECK(metric(a2, "keel_replication_batches_total{outcome=\"alone\"}") == 0);
  WARN("strict failover: first order accepted " << g.first_accept_after(restarted_at)
                                                << " ms after the old primary was restarted");
  g.check_after_failover();
}

TEST_CASE("a standby cut off from etcd neither takes over nor stops the primary, it rejoins when "
          "healed",
          "[cluster][etcd][replication][netns]") {
  group_options o;
  o.netns = true;
  o.entries = {"a1"};
  group_run g{o};
  REQUIRE(g.more(40));
  auto cut_at = clock_type::now();
  REQUIRE(g.lab->cut_control("a2"));
  std::this_thread::sleep_for(4s); // twice the lease
  REQUIRE(g.more(20));
  auto healed_at = clock_type::now();
  REQUIRE(g.lab->cut_control("a2", false));
  REQUIRE(eventually(
    [&] { return g.tc["a2"].log().find("msg=\"joined again\"") != std::string::npos; }, 20s));
  REQUIRE(g.more(20));
  g.finish();
  INFO(cluster_warnings(g.tc) << g.tc["a2"].log());
  auto pause_ms = g.longest_pause(cut_at, healed_at);
  WARN("standby cut from etcd: the longest pause between acknowledgements was " << pause_ms
                                                                               << " ms");
  CHECK(pause_ms < 3000);
  auto a2 = g.tc["a2"].client();
  CHECK(metric(a2, "keel_replication_promotions_total") == 0);
  auto a1 = g.tc["a1"].client();
  CHECK(metric(a1, "keel_replication_promotions_total") == 1);
  g.check_group("a1", "a2");
}

TEST_CASE("etcd killed and restarted: the primary stops acknowledging within its lease, and the "
          "group serves again once etcd is back",
          "[cluster][etcd][replication][netns]") {
  group_options o;
  o.netns = true;
  o.entries = {"a2", "a1"};
  group_run g{o};
  REQUIRE(g.more(40));
  auto& etcd = g.tc.etcd->process();
  auto killed_at = clock_type::now();
  etcd.signal_and_wait(SIGKILL, 5s);
  std::this_thread::sleep_for(4s);
  auto back_at = clock_type::now();
  std::string why;
  INFO(why);
  REQUIRE(etcd.restart("", "", why));
  REQUIRE(g.more(40, 60s));
  g.finish();
  INFO(cluster_warnings(g.tc) << g.tc["a1"].log() << g.tc["a2"].log());
  // A 2 s lease is renewed every 667 ms and trusted for 2/3 of it: nothing
  // that began later than that after the kill is acknowledged until etcd
  // is back.
  std::size_t acked_blind = 0;
  for (auto& a : g.history())
    if (a.status == 202 && a.at > killed_at + 2s && a.done < back_at)
      ++acked_blind;
  CHECK(acked_blind == 0);
  WARN("etcd down 4 s: first order accepted " << g.first_accept_after(back_at)
                                              << " ms after it was back");
  // Either node may hold the primary role now; the other follows it.
  auto v = g.tc.view();
  auto primary = v.groups.at("ga").leader.node;
  REQUIRE((primary == "a1" || primary == "a2"));
  g.check_group(primary, primary == "a1" ? "a2" : "a1");
}

// -- restarts and sagas across groups -----------------------------------------------------

TEST_CASE("a rolling restart of every node of a group loses no acknowledged order",
          "[cluster][etcd][replication]") {
  group_options o;
  o.entries = {"a2", "a1"};
  group_run g{o};
  REQUIRE(g.more(40));
  auto a1 = g.tc["a1"].client();
  // The standby first: the primary goes on alone meanwhile, then names it again.
  CHECK(g.tc["a2"].signal_and_wait(SIGTERM, 20s) == 0);
  REQUIRE(g.more(20));
  g.tc["a2"].restart();
  REQUIRE(synchronous(g.tc, "a1", "a2", 30s));
  REQUIRE(g.more(20));
  // Then the primary: its standby takes over as soon as its lease is gone.
  auto stopped_at = clock_type::now();
  CHECK(g.tc["a1"].signal_and_wait(SIGTERM, 20s) == 0);
  REQUIRE(g.more(20));
  auto failover_ms = g.first_accept_after(stopped_at);
  REQUIRE(eventually([&] { return g.tc.view().member("a1") == nullptr; }, 10s));
  g.tc["a1"].restart();
  REQUIRE(g.more(20));
  g.finish();
  INFO(cluster_warnings(g.tc) << g.tc["a1"].log());
  WARN("rolling restart: " << g.acknowledged().size() << " orders acknowledged; the first "
                           << failover_ms << " ms after the primary's SIGTERM");
  g.check_after_failover();
}

TEST_CASE("sagas whose stock lives on another group end when either group's primary is killed "
          "mid-step, nothing is reserved or charged twice and stock is conserved",
          "[cluster][etcd][replication]") {
  test_cluster tc;
  start_two_groups(tc);
  auto v = tc.view();
  // Orders live on ga; every order takes one unit of a gb SKU and one of a ga SKU.
  auto order_ids = keys_of(v, "a1", "x-", 4000);
  auto remote = keys_of(v, "b1", "sku-b", 3);
  auto local = keys_of(v, "a1", "sku-a", 3);
  std::vector<std::string> skus = remote;
  skus.insert(skus.end(), local.begin(), local.end());
  constexpr int on_hand = 100000;
  stock_all(tc, tc["b2"], skus, on_hand);

  struct attempt {
    std::string id;
    int status = 0;
  };
  std::mutex mtx;
  std::vector<attempt> attempts;
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> accepted{0};
  std::thread load{[&] {
    // Through the standbys (they forward, and serve once they took over),
    // turning to the other on a failed request.
    std::vector<std::string> entries{"a2", "b2"};
    std::size_t entry = 0;
    std::unique_ptr<httplib::Client> c;
    for (std::size_t i = 0; !stop && i < order_ids.size(); ++i) {
      if (!c) {
        auto& n = tc[entries[entry % 2]];
        c = std::make_unique<httplib::Client>(n.host(), n.port());
        c->set_connection_timeout(1, 0);
        c->set_read_timeout(5, 0);
      }
      attempt a{order_ids[i]};
      auto res = post(*c, "/v1/orders",
                      order_body(a.id, "c-1", {{remote[i % 3], 1}, {local[i % 3], 1}}),
                      auth("ops", true));
      a.status = res ? res->status : 0;
      accepted += a.status == 202;
      {
        std::lock_guard<std::mutex> guard{mtx};
        attempts.push_back(a);
      }
      if (a.status == 0 || a.status >= 500) {
        ++entry;
        c.reset();
        std::this_thread::sleep_for(20ms);
      }
    }
  }};
  auto more = [&](std::size_t n) {
    auto before = accepted.load();
    return eventually([&] { return accepted >= before + n; }, 30s);
  };
  auto finish = [&] {
    stop = true;
    if (load.joinable())
      load.join();
  };
  struct joiner {
    std::function<void()> f;
    ~joiner() {
      f();
    }
  } join_on_exit{finish};

  REQUIRE(more(40));
  // The stock side first: a1's sagas reserve on gb while b1 dies.
  tc["b1"].signal_and_wait(SIGKILL, 5s);
  REQUIRE(more(40));
  REQUIRE(eventually([&] { return tc.view().member("b1") == nullptr; }, 10s));
  tc["b1"].restart();
  auto b2 = tc["b2"].client();
  REQUIRE(eventually(
    [&] { return metric(b2, "keel_replication_standby_sync{standby=\"b1\"}") == 1; }, 30s));
  // Then the order side: a2 re-drives the sagas a1 had in flight.
  REQUIRE(more(20));
  tc["a1"].signal_and_wait(SIGKILL, 5s);
  REQUIRE(more(40));
  REQUIRE(eventually([&] { return tc.view().member("a1") == nullptr; }, 10s));
  tc["a1"].restart();
  REQUIRE(more(20));
  finish();
  INFO(cluster_warnings(tc));

  // Every acknowledged order ends; an unanswered one may have been placed:
  // whatever completed counts for the stock.
  auto a2 = tc["a2"].client();
  std::map<std::string, int> sold;
  std::size_t acked = 0, completed = 0;
  for (auto& a : attempts) {
    if (a.status != 202 && a.status != 0 && a.status < 500)
      continue; // refused at the door
    json order;
    if (a.status == 202) {
      ++acked;
      order = wait_status(a2, a.id, {"completed", "cancelled", "rejected"}, 60s);
    } else {
      auto res = a2.Get(("/v1/orders/" + a.id).c_str(), auth("ops", true));
      REQUIRE(res);
      if (res->status == 404)
        continue;
      order = wait_status(a2, a.id, {"completed", "cancelled", "rejected"}, 60s);
    }
    if (order["status"] == "completed") {
      ++completed;
      for (auto& line : order["items"])
        sold[line["sku"].get<std::string>()] += line["quantity"].get<int>();
    }
  }
  WARN("sagas across groups: " << acked << " acknowledged, " << completed
                               << " completed, through a kill of each group's primary");
  CHECK(completed >= acked * 9 / 10);
  for (auto& sku : skus) {
    INFO(sku << " sold " << sold[sku]);
    json level;
    auto reader = tc["b2"].client();
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
  }
  for (auto* id : {"a2", "b2"}) {
    audit_clean(tc, id);
    projections_live(tc, id);
  }
  // Each old primary follows its group's new one with the same log.
  auto a2c = tc["a2"].client();
  REQUIRE(eventually(
    [&] { return metric(a2c, "keel_replication_standby_sync{standby=\"a1\"}") == 1; }, 30s));
  for (auto [p, s] : {std::pair{"a2", "a1"}, std::pair{"b2", "b1"}}) {
    // A primary's store holds a batch (its own $system events too) a moment
    // before its standby does: read both until they agree, for 10 s at most.
    std::pair<std::vector<std::string>, storage::term_history> lp, ls;
    eventually(
      [&] {
        lp = log_and_terms(tc.dir.sub(p));
        ls = log_and_terms(tc.dir.sub(s));
        return lp == ls;
      },
      10s);
    CHECK(lp.first == ls.first);
    CHECK(lp.second == ls.second);
  }
}
