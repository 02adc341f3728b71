// The Kafka layer against librdkafka's embedded mock cluster, a real RocksDB
// store, and kcat as a separate process that reads and writes the topics.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "child_process.hpp"
#include "kcat.hpp"
#include "delivery_window.hpp"
#include "keel/storage/kafka.hpp"
#include "samples.hpp"
#include "store_support.hpp"

using namespace keel;
using namespace keel::storage;
using namespace std::chrono_literals;
using nlohmann::json;
using test::headers_of;
using test::kcat_path;
using test::kcat_read;

namespace {

std::unique_ptr<kafka_cluster> open_cluster(int partitions = 8) {
  kafka_options opts;
  opts.partitions = partitions;
  opts.client_id = "keel-test";
  auto cluster = kafka_cluster::open(opts);
  INFO((cluster ? std::string{} : describe(cluster.error())));
  REQUIRE(cluster);
  return std::move(*cluster);
}

std::shared_ptr<event_store> shared_store(const std::string& path) {
  return std::shared_ptr<event_store>{test::open_store(path, open_mode::writer, durability::wal)};
}

std::unique_ptr<outbox_relay> start_relay(std::shared_ptr<event_store> store,
                                          const kafka_cluster& cluster, outbox_options opts = {}) {
  auto relay = outbox_relay::start(std::move(store), cluster, std::move(opts));
  INFO((relay ? std::string{} : describe(relay.error())));
  REQUIRE(relay);
  return std::move(*relay);
}

/// Polls `pred` every 10 ms until it holds or `timeout` passed.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline)
      return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

/// The expected message of one event.
struct expected_message {
  std::string topic;
  std::string stream;
  std::string type;
  std::string correlation_id;
};

/// Appends `n` events (ids from `seed`, starting at `first`) round-robin to
/// order-, stock-, payment-, shipment- and $system- streams; returns the
/// domain events by event id.
std::map<std::string, expected_message> append_events(event_store& store, std::uint64_t seed,
                                                      std::uint64_t first, std::uint64_t n) {
  static const std::vector<std::string> kinds{"order-", "stock-", "payment-", "shipment-",
                                              "$system-"};
  std::map<std::string, expected_message> expected;
  for (std::uint64_t i = first; i < first + n; ++i) {
    auto stream = kinds[i % kinds.size()] + std::to_string(i % 7);
    auto ev = test::sample_event(i % 10);
    auto id = events::event_id::from_seed(seed, i);
    auto corr = events::event_id::from_seed(seed + 1, i);
    auto ne = new_event::from(ev, id, 1'700'000'000'000'000 + static_cast<std::int64_t>(i), corr);
    auto type = ne.type;
    auto r = store.append(stream, expected_version::any(), test::one(std::move(ne)));
    INFO((r ? std::string{} : describe(r.error())));
    REQUIRE(r);
    if (!topic_of(stream).empty())
      expected[events::to_string(id)] = {topic_of(stream), stream, type, events::to_string(corr)};
  }
  return expected;
}

/// Reads the four outbox topics; returns how often each event id was seen,
/// checking each message against `expected`.
std::map<std::string, int> read_outbox(const std::string& bootstrap,
                                       const std::map<std::string, expected_message>& expected) {
  std::map<std::string, int> seen;
  for (auto& topic : keel_topics()) {
    if (topic == retry_topic_name)
      continue;
    for (auto& msg : kcat_read(bootstrap, topic)) {
      auto headers = headers_of(msg);
      auto id = headers["event_id"];
      INFO("topic " << topic << ": " << msg.dump());
      auto i = expected.find(id);
      REQUIRE(i != expected.end());
      CHECK(i->second.topic == topic);
      CHECK(msg["key"] == i->second.stream);
      CHECK(headers["type"] == i->second.type);
      CHECK(headers["correlation_id"] == i->second.correlation_id);
      auto value = json::parse(msg["payload"].get<std::string>());
      CHECK(value["stream"] == i->second.stream);
      CHECK(value["event_id"] == id);
      CHECK(value["type"] == i->second.type);
      CHECK(value["correlation_id"] == i->second.correlation_id);
      CHECK(value["position"].get<std::uint64_t>() > 0);
      CHECK(value["version"].get<std::uint64_t>() > 0);
      CHECK(value.contains("timestamp_us"));
      CHECK(value.contains("data"));
      ++seen[id];
    }
  }
  return seen;
}

std::uint64_t saved_checkpoint(const event_store& store, const std::string& name = "outbox/kafka") {
  auto cp = store.load_checkpoint(name);
  REQUIRE(cp);
  return *cp ? (*cp)->position : 0;
}

} // namespace

// -- pure parts -----------------------------------------------------------------

TEST_CASE("streams map to their outbox topics and system streams to none", "[kafka]") {
  CHECK(topic_of("order-42") == "keel.orders");
  CHECK(topic_of("stock-SKU-1") == "keel.inventory");
  CHECK(topic_of("payment-42") == "keel.payments");
  CHECK(topic_of("shipment-42") == "keel.shipping");
  CHECK(topic_of("$system-supervisor").empty());
  CHECK(topic_of("order-").empty());
  CHECK(topic_of("orders").empty());
  CHECK(keel_topics().size() == 5);
}

TEST_CASE("the delivery window only confirms a gap-free prefix of positions", "[kafka]") {
  auto seed = std::random_device{}();
  INFO("seed " << seed);
  std::mt19937_64 rng{seed};
  delivery_window w{100};
  CHECK_FALSE(w.add(102, 0, false)); // positions enter gap-free
  std::vector<std::uint64_t> pending;
  for (std::uint64_t p = 101; p <= 400; ++p) {
    bool system = rng() % 5 == 0;
    REQUIRE(w.add(p, static_cast<std::int64_t>(p), system));
    if (!system)
      pending.push_back(p);
  }
  std::shuffle(pending.begin(), pending.end(), rng);
  std::set<std::uint64_t> open{pending.begin(), pending.end()};
  for (auto p : pending) {
    REQUIRE(w.confirm(p));
    CHECK_FALSE(w.confirm(p)); // a second report changes nothing
    open.erase(p);
    auto expected = open.empty() ? 400 : *open.begin() - 1;
    REQUIRE(w.confirmed() == expected);
    CHECK(w.oldest_timestamp_us() == (open.empty() ? 0 : static_cast<std::int64_t>(expected + 1)));
  }
  CHECK(w.size() == 0);
  CHECK_FALSE(w.confirm(401));
}

TEST_CASE("retry entries round-trip through JSON and bad values are refused", "[kafka]") {
  retry_entry e{"order-7", 1'795'300'000'123'456, 3, true, "c0ffee", "circuit_open",
                1'795'300'005'000'000};
  auto back = parse_retry_entry(to_json(e));
  REQUIRE(back);
  CHECK(back->order_id == e.order_id);
  CHECK(back->timestamp_us == e.timestamp_us);
  CHECK(back->retry_count == 3);
  CHECK(back->premium);
  CHECK(back->correlation_id == "c0ffee");
  CHECK(back->fallback_reason == "circuit_open");
  CHECK(back->retry_at_us == e.retry_at_us);
  auto iso = parse_retry_entry(
    R"({"order_id":"o","retry_count":1,"priority":"NORMAL","timestamp":"2026-11-22T03:04:38.5Z"})");
  REQUIRE(iso);
  CHECK(iso->timestamp_us == 1'795'316'678'500'000);
  CHECK_FALSE(iso->premium);
  for (auto bad : {"", "not json", "[1]", R"({"retry_count":1})", R"({"order_id":"o"})",
                   R"({"order_id":"o","retry_count":-1})", R"({"order_id":"","retry_count":1})",
                   R"({"order_id":"o","retry_count":1,"priority":"URGENT"})",
                   R"({"order_id":"o","retry_count":1,"timestamp":"yesterday"})",
                   R"({"order_id":7,"retry_count":1})"}) {
    INFO(bad);
    auto r = parse_retry_entry(bad);
    REQUIRE_FALSE(r);
    CHECK(code_of(r.error()) == errc::malformed_payload);
  }
}

// -- against the embedded cluster ----------------------------------------------

TEST_CASE("the embedded cluster creates the five topics and kcat sees them", "[kafka]") {
  auto cluster = open_cluster(6);
  CHECK(cluster->embedded());
  CHECK(cluster->bootstrap_servers().rfind("127.0.0.1:", 0) == 0);
  auto topics = cluster->topics();
  REQUIRE(topics.size() == 5);
  for (auto& t : topics)
    CHECK(t.partitions == 6);
  auto res = test::run_child(kcat_path, {"-b", cluster->bootstrap_servers(), "-L", "-J"}, 10s);
  REQUIRE(res.status == 0);
  auto md = json::parse(res.out);
  std::map<std::string, std::size_t> seen;
  for (auto& t : md["topics"])
    seen[t["topic"].get<std::string>()] = t["partitions"].size();
  for (auto& name : keel_topics()) {
    INFO(name);
    CHECK(seen[name] == 6);
  }
}

TEST_CASE("external brokers that have the topics already are used as they are", "[kafka]") {
  auto embedded = open_cluster(3);
  kafka_options opts;
  opts.brokers = embedded->bootstrap_servers();
  opts.partitions = 5;
  // The mock cluster has no controller for CreateTopics: that times out,
  // and the topics found in the metadata are used.
  opts.admin_timeout = 300ms;
  auto external = kafka_cluster::open(opts);
  INFO((external ? std::string{} : describe(external.error())));
  REQUIRE(external);
  CHECK_FALSE((*external)->embedded());
  CHECK((*external)->bootstrap_servers() == opts.brokers);
  CHECK(code_of((*external)->set_brokers_down(true)) == errc::invalid_argument);
  auto topics = (*external)->topics();
  REQUIRE(topics.size() == 5);
  for (auto& t : topics)
    CHECK(t.partitions == 3); // as found, not as asked
}

TEST_CASE("external brokers that do not answer fail the cluster's open with a timeout",
          "[kafka]") {
  kafka_options opts;
  opts.brokers = "127.0.0.1:1";
  opts.admin_timeout = 500ms;
  auto cluster = kafka_cluster::open(opts);
  REQUIRE_FALSE(cluster);
  CHECK(code_of(cluster.error()) == errc::timeout);
  opts.brokers.clear();
  opts.partitions = 0;
  CHECK(code_of(kafka_cluster::open(opts).error()) == errc::invalid_argument);
}

TEST_CASE("the outbox relays every domain event to its topic exactly once", "[kafka]") {
  keel::temp_dir dir;
  auto store = shared_store(dir.path());
  auto cluster = open_cluster();
  auto expected = append_events(*store, 11, 1, 300);
  REQUIRE(expected.size() == 240);
  auto relay = start_relay(store, *cluster);
  auto head = store->last_position();
  CHECK(eventually([&] { return relay->status().checkpoint == head; }, 10s));
  auto st = relay->status();
  CHECK(st.running);
  CHECK(st.delivered == 240);
  CHECK(st.lag_events == 0);
  CHECK(st.lag_ms == 0);
  relay->stop();
  CHECK(saved_checkpoint(*store) == head);
  CHECK_FALSE(relay->status().running);

  auto seen = read_outbox(cluster->bootstrap_servers(), expected);
  CHECK(seen.size() == expected.size()); // every domain event, no system event
  for (auto& [id, n] : seen) {
    INFO(id);
    CHECK(n == 1);
  }
}

TEST_CASE("a restarted outbox relay resumes from its checkpoint", "[kafka]") {
  keel::temp_dir dir;
  auto store = shared_store(dir.path());
  auto cluster = open_cluster();
  auto expected = append_events(*store, 21, 1, 100);
  auto relay = start_relay(store, *cluster);
  CHECK(eventually([&] { return relay->status().checkpoint == 100; }, 10s));
  relay.reset(); // the destructor stops it

  // Appended while no relay runs.
  auto more = append_events(*store, 21, 101, 50);
  CHECK(saved_checkpoint(*store) == 100);
  relay = start_relay(store, *cluster);
  CHECK(eventually([&] { return relay->status().checkpoint == 150; }, 10s));
  CHECK(relay->status().produced == more.size()); // nothing before the checkpoint again
  relay->stop();

  expected.insert(more.begin(), more.end());
  auto seen = read_outbox(cluster->bootstrap_servers(), expected);
  CHECK(seen.size() == expected.size());
  for (auto& [id, n] : seen) {
    INFO(id);
    CHECK(n == 1);
  }
}

TEST_CASE("a relay with an origin resumed from an older checkpoint and its marks publishes "
          "nothing twice, and what it skips is only its origin's",
          "[kafka]") {
  keel::temp_dir dir;
  auto store = shared_store(dir.path());
  auto cluster = open_cluster(4);
  // Another group's relay on the same topics, with the same positions: its
  // messages are not this origin's and must not be skipped for it.
  keel::temp_dir other_dir;
  auto other = shared_store(other_dir.path());
  auto other_expected = append_events(*other, 41, 1, 100);
  outbox_options other_opts;
  other_opts.origin = "t/gb";
  auto other_relay = start_relay(other, *cluster, other_opts);
  REQUIRE(eventually([&] { return other_relay->status().checkpoint == 100; }, 10s));

  outbox_options opts;
  opts.origin = "t/ga";
  opts.commit_interval = 20ms;
  auto expected = append_events(*store, 31, 1, 50);
  auto relay = start_relay(store, *cluster, opts);
  REQUIRE(eventually([&] { return relay->status().checkpoint == 50; }, 10s));
  // What a standby was last sent: the checkpoint and the marks saved with it.
  auto at50 = relay->resume(0);
  REQUIRE(at50.checkpoint == 50);
  REQUIRE(!at50.marks.empty());
  auto known = relay->resume(50); // a standby that has them gets no marks again
  CHECK(known.checkpoint == 50);
  CHECK(known.marks.empty());
  auto stored = store->get_model(outbox_marks_key("outbox/kafka"));
  REQUIRE(stored);
  REQUIRE(*stored);
  CHECK(**stored == at50.marks);
  auto more = append_events(*store, 31, 51, 50);
  REQUIRE(eventually([&] { return relay->status().checkpoint == 100; }, 10s));
  relay->stop();
  // The primary is gone; its standby's store holds the older pair.
  write_batch wb;
  wb.set_checkpoint("outbox/kafka", 50);
  wb.put(outbox_marks_key("outbox/kafka"), at50.marks);
  REQUIRE_FALSE(store->commit(std::move(wb)));
  relay = start_relay(store, *cluster, opts);
  auto last = append_events(*store, 31, 101, 20);
  REQUIRE(eventually([&] { return relay->status().checkpoint == 120; }, 10s));
  auto st = relay->status();
  CHECK(st.found_published == more.size()); // positions 51..100, published before
  CHECK(st.produced == last.size());
  CHECK(st.error.empty());
  relay->stop();
  other_relay->stop();

  expected.insert(more.begin(), more.end());
  expected.insert(last.begin(), last.end());
  expected.insert(other_expected.begin(), other_expected.end());
  auto seen = read_outbox(cluster->bootstrap_servers(), expected);
  CHECK(seen.size() == expected.size());
  for (auto& [id, n] : seen) {
    INFO(id);
    CHECK(n == 1);
  }
}

TEST_CASE("a relay with an origin produces nothing while it may not publish", "[kafka]") {
  keel::temp_dir dir;
  auto store = shared_store(dir.path());
  auto cluster = open_cluster(4);
  std::atomic<bool> allowed{false};
  outbox_options opts;
  opts.origin = "t/ga";
  opts.may_publish = [&] { return allowed.load(); };
  auto expected = append_events(*store, 51, 1, 30);
  auto relay = start_relay(store, *cluster, opts);
  std::this_thread::sleep_for(300ms);
  CHECK(relay->status().produced == 0);
  CHECK(relay->status().checkpoint == 0);
  allowed = true;
  CHECK(eventually([&] { return relay->status().checkpoint == 30; }, 10s));
  relay->stop();
  auto seen = read_outbox(cluster->bootstrap_servers(), expected);
  CHECK(seen.size() == expected.size());
}

TEST_CASE("the outbox checkpoint never passes an undelivered event", "[kafka]") {
  keel::temp_dir dir;
  auto store = shared_store(dir.path());
  auto cluster = open_cluster(4);
  auto expected = append_events(*store, 31, 1, 40);
  outbox_options opts;
  opts.commit_interval = 10ms;
  opts.delivery_timeout = 300ms;
  auto relay = start_relay(store, *cluster, opts);
  REQUIRE(eventually([&] { return relay->status().checkpoint == 40; }, 10s));

  // Brokers down: deliveries time out and are produced again, over and over.
  REQUIRE_FALSE(cluster->set_brokers_down(true));
  auto more = append_events(*store, 31, 41, 40);
  auto stalled = [&] {
    auto st = relay->status();
    REQUIRE(st.checkpoint == 40);
    REQUIRE(st.confirmed == 40);
    return st.delivery_failures >= 32; // as many failed attempts as domain events waiting
  };
  CHECK(eventually(stalled, 10s));
  auto st = relay->status();
  CHECK(st.lag_events == 40);
  CHECK(st.lag_ms > 0);
  CHECK_FALSE(st.error.empty());

  // Healthy again: the same events go through and the checkpoint catches up.
  REQUIRE_FALSE(cluster->set_brokers_down(false));
  CHECK(eventually([&] { return relay->status().checkpoint == 80; }, 15s));
  relay->stop();
  CHECK(saved_checkpoint(*store) == 80);

  expected.insert(more.begin(), more.end());
  auto seen = read_outbox(cluster->bootstrap_servers(), expected);
  CHECK(seen.size() == expected.size()); // at least once: duplicates allowed, no gaps
}

TEST_CASE("a relay stopped while the brokers are down keeps its checkpoint", "[kafka]") {
  keel::temp_dir dir;
  auto store = shared_store(dir.path());
  auto cluster = open_cluster(4);
  REQUIRE_FALSE(cluster->set_brokers_down(true));
  append_events(*store, 41, 1, 20);
  outbox_options opts;
  opts.stop_timeout = 200ms;
  auto relay = start_relay(store, *cluster, opts);
  std::this_thread::sleep_for(300ms);
  auto began = std::chrono::steady_clock::now();
  relay->stop();
  CHECK(std::chrono::steady_clock::now() - began < 2s); // bounded
  CHECK(saved_checkpoint(*store) == 0);
  CHECK(relay->status().confirmed == 0);
  REQUIRE_FALSE(cluster->set_brokers_down(false));
}

TEST_CASE("the retry topic hands out new entries and drops duplicates and malformed messages",
          "[kafka]") {
  keel::temp_dir dir;
  auto cluster = open_cluster(4);
  std::mutex mtx;
  std::condition_variable cv;
  std::vector<retry_entry> got;
  auto started = retry_topic::start(*cluster, {"test-group", "test-node"}, [&](const retry_entry& e) {
    std::lock_guard<std::mutex> guard{mtx};
    got.push_back(e);
    cv.notify_all();
  });
  INFO((started ? std::string{} : describe(started.error())));
  REQUIRE(started);
  auto& topic = **started;

  retry_entry a1{"order-a", 1'795'300'000'000'001, 1, true, "corr-a", "circuit_open",
                 1'795'300'001'000'000};
  auto a2 = a1;
  a2.retry_count = 2;
  a2.fallback_reason = "timeout";
  retry_entry b0{"order-b", 1'795'300'000'000'002, 0, false, "corr-b", "bulkhead_full", 0};
  REQUIRE_FALSE(topic.publish(a1));
  REQUIRE_FALSE(topic.publish(a1)); // a duplicate: same order, same count
  REQUIRE_FALSE(topic.publish(a2));
  REQUIRE_FALSE(topic.publish(b0));

  // Malformed messages from another process.
  auto bad1 = dir.sub("bad1");
  auto bad2 = dir.sub("bad2");
  std::ofstream{bad1} << "not json at all";
  std::ofstream{bad2} << R"({"order_id":"order-c"})";
  auto res = test::run_child(kcat_path,
                             {"-P", "-b", cluster->bootstrap_servers(), "-t",
                              std::string{retry_topic_name}, "-k", "x", bad1, bad2},
                             10s);
  REQUIRE(res.status == 0);

  auto count = [&] { return topic.stats().consumed; };
  CHECK(eventually([&] { return count() == 6; }, 15s));
  auto st = topic.stats();
  CHECK(st.produced == 4);
  CHECK(st.duplicates == 1);
  CHECK(st.malformed == 2);
  CHECK(eventually([&] { return topic.stats().lag == 0; }, 5s));
  // `consumed` counts a message before its handler ran: wait for the handlers.
  CHECK(eventually(
    [&] {
      std::lock_guard<std::mutex> guard{mtx};
      return got.size() >= 3;
    },
    5s));
  {
    std::lock_guard<std::mutex> guard{mtx};
    REQUIRE(got.size() == 3);
    std::map<std::pair<std::string, std::uint32_t>, retry_entry> by;
    for (auto& e : got)
      by[{e.order_id, e.retry_count}] = e;
    REQUIRE(by.count({"order-a", 1}) == 1);
    REQUIRE(by.count({"order-a", 2}) == 1);
    REQUIRE(by.count({"order-b", 0}) == 1);
    auto& x = by[{"order-a", 1}];
    CHECK(x.timestamp_us == a1.timestamp_us);
    CHECK(x.premium);
    CHECK(x.correlation_id == "corr-a");
    CHECK(x.fallback_reason == "circuit_open");
    CHECK(x.retry_at_us == a1.retry_at_us);
    CHECK_FALSE(by[{"order-b", 0}].premium);
  }

  // Forgotten orders start over: the same count is handed out again.
  topic.forget("order-a");
  REQUIRE_FALSE(topic.publish(a1));
  {
    std::unique_lock<std::mutex> guard{mtx};
    CHECK(cv.wait_for(guard, 10s, [&] { return got.size() == 4; }));
  }
  CHECK(topic.stats().duplicates == 1);

  // What other consumers see: key, JSON value and the three headers.
  auto msgs = kcat_read(cluster->bootstrap_servers(), std::string{retry_topic_name});
  CHECK(msgs.size() == 7);
  auto n_a = 0;
  for (auto& m : msgs) {
    if (m["key"] != "order-a")
      continue;
    ++n_a;
    auto h = headers_of(m);
    CHECK(h["content-type"] == "application/json");
    CHECK(h["origin"] == "test-node");
    CHECK((h["fallback-reason"] == "circuit_open" || h["fallback-reason"] == "timeout"));
    auto v = json::parse(m["payload"].get<std::string>());
    CHECK(v["priority"] == "HIGH");
    CHECK(v["order_id"] == "order-a");
  }
  CHECK(n_a == 4);
  topic.stop();
  CHECK(code_of(topic.publish(a1)) == errc::not_writable);
}

TEST_CASE("TLS and SASL settings come from a properties file, only those, checked by librdkafka",
          "[kafka][security]") {
  keel::temp_dir dir;
  auto file = [&](const std::string& name, const std::string& text) {
    std::ofstream{dir.sub(name)} << text;
    return dir.sub(name);
  };
  auto ok = load_kafka_settings(file("ok.properties", "# brokers of the shop\n"
                                                      "security.protocol = SASL_SSL\n\n"
                                                      "sasl.mechanisms=SCRAM-SHA-512\n"
                                                      "sasl.username=keel\n"
                                                      "sasl.password=p=w:d\n"
                                                      "ssl.endpoint.identification.algorithm=https\n"));
  INFO((ok ? std::string{} : describe(ok.error())));
  REQUIRE(ok);
  REQUIRE(ok->size() == 5);
  CHECK((*ok)[0] == std::pair<std::string, std::string>{"security.protocol", "SASL_SSL"});
  CHECK((*ok)[3].second == "p=w:d"); // only the first '=' splits
  auto refused = [&](const std::string& text, const std::string& mention) {
    auto r = load_kafka_settings(file("bad.properties", text));
    REQUIRE_FALSE(r);
    CHECK(code_of(r.error()) == errc::invalid_argument);
    CHECK_THAT(describe(r.error()), Catch::Contains(mention));
    CHECK_THAT(describe(r.error()), Catch::Contains("bad.properties:"));
  };
  refused("acks=0\n", "acks");                           // Keel's own
  refused("enable.auto.commit=false\n", "enable.auto.commit");
  refused("security.protocol=bogus\n", "security.protocol"); // librdkafka refuses the value
  refused("sasl.mechanisms\n", "name=value");
  refused("ssl.no.such.property=1\n", "ssl.no.such.property");
  CHECK(code_of(load_kafka_settings(dir.sub("missing")).error()) == errc::not_found);

  // The options are checked at open too; a TLS setting librdkafka cannot
  // honour (a CA file that does not exist) fails the first client made.
  kafka_options bad;
  bad.security = {{"acks", "0"}};
  CHECK(code_of(kafka_cluster::open(bad).error()) == errc::invalid_argument);
  kafka_options tls;
  tls.brokers = "127.0.0.1:1";
  tls.admin_timeout = 500ms;
  tls.security = {{"security.protocol", "ssl"}, {"ssl.ca.location", dir.sub("no-ca.pem")}};
  auto opened = kafka_cluster::open(tls);
  REQUIRE_FALSE(opened);
  CHECK_THAT(describe(opened.error()), Catch::Contains("ssl.ca.location"));
}
