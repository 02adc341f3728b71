// keel-inspect as users run it: a real process on a real store.

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <regex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "child_process.hpp"
#include "damage.hpp"
#include "keel/events/event.hpp"
#include "keel/events/streams.hpp"
#include "store_support.hpp"

using namespace keel;
using namespace keel::storage;

namespace {

struct result {
  int code;
  std::string out;
};

result inspect(const std::string& args) {
  auto cmd = std::string{KEEL_INSPECT} + " " + args + " 2>&1";
  auto pipe = ::popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  result r;
  std::array<char, 4096> buf{};
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0)
    r.out.append(buf.data(), n);
  auto status = ::pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

void fill(event_store& store, std::uint64_t n, std::uint64_t seed = 31) {
  test::append_range(store, seed, 1, n, "order-", 4);
}

} // namespace

TEST_CASE("keel-inspect verify exits 0 on a healthy store and 1 naming a corrupt record",
          "[inspect]") {
  keel::temp_dir dir;
  {
    auto store = test::open_store(dir.path());
    fill(*store, 40);
  }
  auto healthy = inspect("verify --data " + dir.path());
  INFO(healthy.out);
  CHECK(healthy.code == 0);
  CHECK_THAT(healthy.out, Catch::Contains("40 events in 4 streams, last position 40: healthy"));

  test::damage_record(dir.path(), 13);
  auto damaged = inspect("verify --data " + dir.path());
  INFO(damaged.out);
  CHECK(damaged.code == 1);
  CHECK_THAT(damaged.out, Catch::Contains("corrupt_record"));
  CHECK_THAT(damaged.out, Catch::Contains("13"));
  CHECK_THAT(damaged.out, Catch::Contains("1 finding(s)"));

  auto json = inspect("verify --json --data " + dir.path());
  CHECK(json.code == 1);
  auto first = nlohmann::json::parse(json.out.substr(0, json.out.find('\n')));
  CHECK(first["kind"] == "corrupt_record");
  CHECK(first["position"] == 13);

  // Reading through the damage stops there, with exit code 1.
  auto tail = inspect("tail --data " + dir.path());
  CHECK(tail.code == 1);
  CHECK_THAT(tail.out, Catch::Contains("position 13"));
}

TEST_CASE("keel-inspect lists, reads and tails beside a running writer", "[inspect]") {
  keel::temp_dir dir;
  auto store = test::open_store(dir.path());
  fill(*store, 20);

  auto streams = inspect("streams --data " + dir.path());
  INFO(streams.out);
  CHECK(streams.code == 0);
  CHECK_THAT(streams.out, Catch::Contains("STREAM"));
  CHECK_THAT(streams.out, Catch::Contains("order-1  5"));

  auto read = inspect("read order-2 --from 2 --limit 2 --data " + dir.path());
  INFO(read.out);
  CHECK(read.code == 0);
  CHECK_THAT(read.out, Catch::Contains("order-2@2"));
  CHECK_THAT(read.out, Catch::Contains("order-2@3"));
  CHECK_THAT(read.out, !Catch::Contains("order-2@4"));

  // New appends by the running writer are visible to the next invocation.
  fill(*store, 5, 32);
  auto tail = inspect("tail --json --from 24 --data " + dir.path());
  INFO(tail.out);
  CHECK(tail.code == 0);
  std::vector<nlohmann::json> lines;
  std::size_t start = 0;
  while (start < tail.out.size()) {
    auto end = tail.out.find('\n', start);
    lines.push_back(nlohmann::json::parse(tail.out.substr(start, end - start)));
    start = end + 1;
  }
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["position"] == 24);
  CHECK(lines[1]["position"] == 25);
  CHECK(lines[1]["type"] == "order_rejected");
  CHECK(lines[1]["data"]["reason"] == "test");
}

TEST_CASE("keel-inspect answers usage and I/O errors with exit code 2", "[inspect]") {
  keel::temp_dir dir;
  CHECK(inspect("").code == 2);
  CHECK(inspect("verify").code == 2);
  CHECK(inspect("frobnicate --data " + dir.path()).code == 2);
  CHECK(inspect("tail --from x --data " + dir.path()).code == 2);
  CHECK(inspect("tail --bogus --data " + dir.path()).code == 2);
  auto missing = inspect("verify --data " + dir.sub("nope"));
  CHECK(missing.code == 2);
  CHECK_THAT(missing.out, Catch::Contains("no Keel store"));
  CHECK(inspect("--help").code == 0);
}

// -- golden output of every subcommand on a store the test builds ------------------

namespace {

/// 2026-09-01T00:00:00Z: the sample store's first order.
constexpr std::int64_t sample_start_us = 1'788'220'800'000'000;

/// Writes `orders` orders of saga traffic (keel-bench sample, a real process)
/// with fixed times and seed: the same store in every run.
void sample_store(const std::string& path, int orders) {
  auto r = test::run_child(KEEL_BENCH, {"sample", "--data", path, "--orders", std::to_string(orders),
                                        "--seed", "7", "--start-us", std::to_string(sample_start_us)},
                           std::chrono::seconds{60});
  INFO(r.out);
  REQUIRE(WIFEXITED(r.status));
  REQUIRE(WEXITSTATUS(r.status) == 0);
}

/// What varies from run to run: wall-clock times (the sample's events are
/// all on 2026-09-01 and its stock on 2026-08-31) and durations.
std::string normalise(std::string out) {
  static const std::regex wall{R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z)"};
  std::string result;
  auto begin = std::sregex_iterator(out.begin(), out.end(), wall);
  std::size_t last = 0;
  for (auto i = begin; i != std::sregex_iterator(); ++i) {
    auto t = i->str();
    result += out.substr(last, static_cast<std::size_t>(i->position()) - last);
    result += (t.rfind("2026-09-01", 0) == 0 || t.rfind("2026-08-31", 0) == 0) ? t : "<now>";
    last = static_cast<std::size_t>(i->position() + i->length());
  }
  result += out.substr(last);
  static const std::regex seconds{R"(in \d+\.\d s)"};
  return std::regex_replace(result, seconds, "in <t> s");
}

/// Runs `args` on the store in `dir` and compares the output and exit code
/// with tests/apps/golden/inspect/<name>.txt (KEEL_UPDATE_GOLDEN=1 rewrites it).
void golden(const std::string& name, const std::string& args, const std::string& dir,
            int expected_code = 0) {
  auto r = inspect(args + " --data " + dir);
  auto text = "$ keel-inspect " + args + "\n" + normalise(r.out) + "[exit " + std::to_string(r.code) + "]\n";
  auto path = std::string{KEEL_INSPECT_GOLDEN} + "/" + name + ".txt";
  if (std::getenv("KEEL_UPDATE_GOLDEN") != nullptr) {
    std::ofstream{path} << text;
  }
  std::ifstream in{path};
  INFO("golden file " << path << " (KEEL_UPDATE_GOLDEN=1 rewrites it)");
  REQUIRE(in.good());
  std::stringstream want;
  want << in.rdbuf();
  CHECK(r.code == expected_code);
  CHECK(text == want.str());
}

std::vector<nlohmann::json> json_lines(const std::string& out) {
  std::vector<nlohmann::json> lines;
  std::istringstream in{out};
  std::string line;
  while (std::getline(in, line))
    if (!line.empty())
      lines.push_back(nlohmann::json::parse(line));
  return lines;
}

} // namespace

/// Events the projections have not seen: a lag of 5 events, 4 s behind.
void append_unseen(const std::string& data) {
  auto store = test::open_store(data);
  for (std::uint64_t n = 0; n < 5; ++n) {
    std::vector<storage::new_event> evs;
    evs.push_back(storage::new_event::from(
      events::stock_adjusted{"SKU-0000", 1000 + static_cast<std::int64_t>(n), "recount"},
      events::event_id::from_seed(99, n),
      sample_start_us + 1'000'000 + static_cast<std::int64_t>(n) * 1'000'000));
    REQUIRE(store->append("stock-SKU-0000", storage::expected_version::any(), std::move(evs)));
  }
}

/// A poison event: the stock projection cannot release units of a SKU it
/// never saw, and stops there. Returns its position.
std::uint64_t append_poison(const std::string& data) {
  auto store = test::open_store(data);
  std::vector<storage::new_event> evs;
  evs.push_back(storage::new_event::from(events::stock_released{"SKU-GHOST", "o-ghost", 3},
                                         events::event_id::from_seed(99, 100),
                                         sample_start_us + 6'000'000));
  REQUIRE(store->append("stock-SKU-GHOST", storage::expected_version::no_stream(),
                        std::move(evs)));
  return store->last_position();
}

TEST_CASE("keel-inspect golden output of every subcommand", "[inspect][golden]") {
  keel::temp_dir dir;
  auto data = dir.sub("store");
  sample_store(data, 30);

  golden("streams", "streams --prefix order- --limit 5", data);
  golden("streams-json", "streams --prefix stock-SKU-000 --limit 3 --json", data);
  golden("read", "read order-00000003", data);
  golden("read-json", "read payment-00000004 --from 2 --json", data);
  golden("get-position", "get 250", data);
  golden("tail-type", "tail --type order_completed,order_cancelled,order_rejected --limit 6", data);
  golden("tail-prefix", "tail --stream-prefix shipment- --from -40 --limit 3", data);
  golden("tail-correlation", "tail --correlation 00000005", data);
  golden("tail-time", "tail --since 2026-09-01T00:00:00.020Z --until 2026-09-01T00:00:00.0245Z", data);
  golden("tail-json", "tail --from 100 --limit 2 --json", data);
  golden("stats", "stats --top 5", data);
  golden("stats-json", "stats --top 3 --bucket 10ms --json", data);
  golden("verify", "verify", data);
  golden("verify-json", "verify --json", data);
  golden("audit", "audit", data);
  golden("audit-json", "audit --json", data);
  golden("checkpoints-none", "checkpoints", data);
  golden("projection-rebuild", "projection rebuild --all", data);
  append_unseen(data);
  golden("checkpoints", "checkpoints", data);
  golden("checkpoints-json", "checkpoints --json", data);
  golden("projection-skip-refused", "projection skip stock --position 12 --by ops", data, 2);
  auto poison_at = append_poison(data);
  golden("projection-rebuild-stopped", "projection rebuild stock", data, 2);
  golden("checkpoints-stopped", "checkpoints", data);
  golden("projection-skip",
         "projection skip stock --position " + std::to_string(poison_at) + " --by ops --note 'ghost SKU'",
         data);
  golden("projection-skips", "projection skips stock", data);
  golden("projection-rebuild-after-skip", "projection rebuild stock", data);

  // An event id finds the same event as its position.
  auto by_position = inspect("get 250 --json --data " + data);
  REQUIRE(by_position.code == 0);
  auto id = nlohmann::json::parse(by_position.out)["event_id"].get<std::string>();
  auto by_id = inspect("get " + id + " --json --data " + data);
  CHECK(by_id.code == 0);
  CHECK(by_id.out == by_position.out);

  // --from -N counts back from the end; --from end prints nothing.
  auto last_two = json_lines(inspect("tail --from -2 --json --data " + data).out);
  REQUIRE(last_two.size() == 2);
  auto end = inspect("tail --from end --data " + data);
  CHECK(end.code == 0);
  CHECK(end.out.find("order-") == std::string::npos);

  // Bad input: exit 2 and a line that says what is wrong.
  auto bad = [&](const std::string& args, const std::string& says) {
    auto r = inspect(args + " --data " + data);
    INFO(args << " -> " << r.out);
    CHECK(r.code == 2);
    CHECK_THAT(r.out, Catch::Contains(says));
  };
  bad("tail --type order_shipped", "unknown event type 'order_shipped'");
  bad("tail --since yesterday", "--since must be an RFC 3339 UTC time");
  bad("tail --since 2026-09-02T00:00:00Z --until 2026-09-01T00:00:00Z", "--since is after --until");
  bad("tail --from -x", "--from must be a position");
  bad("get 999999", "no event at position 999999");
  bad("get 0123456789abcdef0123456789abcdef", "no event with id");
  bad("get not-an-id", "neither a global position nor an event id");
  bad("read order-none", "no such stream: order-none");
  bad("read", "read needs exactly one stream id");
  bad("stats --bucket 5parsecs", "--bucket must be a duration");
  bad("audit --stuck-after soon", "--stuck-after must be a duration");
  bad("verify --follow", "--follow does not apply to verify");
  bad("projection frob", "unknown projection action");
  bad("projection rebuild nope", "nope");
}

namespace {

/// Where `plant_violations` put what the audit must find.
struct planted {
  std::uint64_t oversell_at = 0;
  std::uint64_t double_charge_at = 0;
  std::uint64_t gap_at = 0;
  std::string charged_order;
};

/// Plants one violation of each kind in the 40-order sample store at `data`.
planted plant_violations(const std::string& data) {
  planted p;
  auto store = test::open_store(data);
  auto append = [&](const std::string& stream, events::event ev, std::int64_t at_us) {
    std::vector<storage::new_event> evs;
    evs.push_back(storage::new_event::from(ev, events::event_id::random(), at_us));
    auto r = store->append(stream, storage::expected_version::any(), std::move(evs));
    REQUIRE(r);
    return store->last_position();
  };
  auto end_us = sample_start_us + 40 * 2000;
  // Oversell: a reservation far beyond the million units on hand.
  p.oversell_at = append("stock-SKU-0001",
                         events::stock_reserved{"SKU-0001", "planted-1", 2'000'000}, end_us + 10);
  // Double charge: capture a completed order's payment a second time.
  for (int n = 0; n < 40 && p.charged_order.empty(); ++n) {
    char id[16];
    std::snprintf(id, sizeof id, "%08d", n);
    auto r = store->read_stream(std::string{"payment-"} + id);
    while (r.next())
      if (r.current().type == "payment_captured") {
        auto ev = r.current().decode_payload();
        REQUIRE(ev);
        p.charged_order = id;
        p.double_charge_at = append(std::string{"payment-"} + id, *ev, end_us + 20);
        break;
      }
  }
  REQUIRE_FALSE(p.charged_order.empty());
  // A saga that never ended: placed an hour before the rest, then nothing.
  events::order_placed stuck;
  stuck.order_id = "planted-stuck";
  stuck.customer_id = "c";
  stuck.lines.push_back({"SKU-0002", 1, 100});
  stuck.currency = "EUR";
  stuck.total_cents = 100;
  append("order-planted-stuck", stuck, sample_start_us - 3'600'000'000LL);
  // The record of order 00000002's last event, to be given a later version.
  std::uint64_t version = 0;
  {
    auto r = store->read_stream("order-00000002");
    while (r.next()) {
      p.gap_at = r.current().position;
      version = r.current().version;
    }
  }
  REQUIRE(p.gap_at != 0);
  store.reset();
  test::reversion_record(data, p.gap_at, version + 1);
  return p;
}

} // namespace

TEST_CASE("keel-inspect audit names each planted violation with its position", "[inspect]") {
  keel::temp_dir dir;
  auto data = dir.sub("store");
  sample_store(data, 40);
  auto clean = inspect("audit --data " + data);
  INFO(clean.out);
  REQUIRE(clean.code == 0);
  CHECK_THAT(clean.out, Catch::Contains("every invariant holds"));

  auto p = plant_violations(data);

  auto r = inspect("audit --json --data " + data);
  INFO(r.out);
  CHECK(r.code == 1);
  auto lines = json_lines(r.out);
  REQUIRE(lines.size() >= 2);
  auto summary = lines.back();
  CHECK(summary["ok"] == false);
  CHECK(summary["by_kind"] == nlohmann::json({{"oversell", 1},
                                              {"double_charge", 1},
                                              {"capture_exceeds_authorization", 1},
                                              {"non_terminal", 1},
                                              {"version_gap", 1}}));
  auto find = [&](const std::string& kind) {
    for (const auto& l : lines)
      if (l.contains("kind") && l["kind"] == kind)
        return l;
    FAIL("no " << kind << " reported");
    return nlohmann::json{};
  };
  auto oversell = find("oversell");
  CHECK(oversell["position"] == p.oversell_at);
  CHECK(oversell["subject"] == "SKU-0001");
  auto charged = find("double_charge");
  CHECK(charged["position"] == p.double_charge_at);
  CHECK(charged["subject"] == p.charged_order);
  auto stuck = find("non_terminal");
  CHECK(stuck["subject"] == "planted-stuck");
  CHECK(stuck["stream"] == "order-planted-stuck");
  auto gap = find("version_gap");
  CHECK(gap["position"] == p.gap_at);
  CHECK(gap["stream"] == "order-00000002");

  // The table names them too (golden), and verify sees the rewritten
  // record's index entry lead elsewhere.
  golden("audit-planted", "audit", data, 1);
  golden("verify-planted", "verify", data, 1);
  // A store placed in the past with --require-terminal: every open saga counts.
  auto strict = inspect("audit --require-terminal --stuck-after 1d --data " + data);
  CHECK(strict.code == 1);
  CHECK_THAT(strict.out, Catch::Contains("planted-stuck"));
}

TEST_CASE("keel-inspect audit reports a record it cannot read as a violation at its position",
          "[inspect]") {
  keel::temp_dir dir;
  {
    auto store = test::open_store(dir.path());
    fill(*store, 40);
  }
  test::damage_record(dir.path(), 13);
  auto r = inspect("audit --json --data " + dir.path());
  INFO(r.out);
  CHECK(r.code == 1);
  auto lines = json_lines(r.out);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["kind"] == "unreadable");
  CHECK(lines[0]["position"] == 13);
  CHECK(lines[1]["by_kind"] == nlohmann::json({{"unreadable", 1}}));
}

// -- causation ------------------------------------------------------------------

TEST_CASE("every saga outcome and service event names its cause, an event of the same order, "
          "and keel-inspect get resolves it",
          "[inspect][causation]") {
  keel::temp_dir dir;
  auto data = dir.path() + "/sagas";
  // The real pipeline (keel-bench sagas): 300 orders, with a payment outage
  // so that orders park and are re-driven.
  auto r = test::run_child(KEEL_BENCH, {"sagas", "--orders", "300", "--concurrency", "32",
                                        "--skus", "20", "--faults", "payment-outage", "--data",
                                        data},
                           std::chrono::seconds{120});
  INFO(r.out);
  REQUIRE(WIFEXITED(r.status));
  REQUIRE(WEXITSTATUS(r.status) == 0);

  auto store = event_store::open_beside(data);
  REQUIRE(store);
  std::size_t outcomes = 0, services = 0, external = 0;
  std::vector<std::uint64_t> sampled;
  auto all = (*store)->read_all();
  while (all.next()) {
    const auto& rec = all.current();
    std::string type{rec.type};
    auto kind = events::kind_of_stream(rec.stream);
    bool order_event = kind == events::stream_kind::order;
    bool service_event = kind == events::stream_kind::payment
                         || kind == events::stream_kind::shipment
                         || (kind == events::stream_kind::stock && type != "stock_adjusted");
    if (!order_event && !service_event)
      continue;
    INFO(rec.stream << "@" << rec.version << " " << type);
    if (type == "order_placed" || type == "order_cancel_requested") {
      // Commands from outside: nothing in the log caused them.
      CHECK_FALSE(rec.causation_id.valid());
      ++external;
      continue;
    }
    REQUIRE(rec.causation_id.valid());
    auto at = (*store)->find_event(rec.causation_id);
    REQUIRE(at);
    CHECK(*at < rec.position);
    auto cause = (*store)->read_event(*at);
    REQUIRE(cause);
    // The same order: the same correlation id, and a service event is
    // caused by a decision of the saga (an order event).
    CHECK(cause->correlation_id == rec.correlation_id);
    if (service_event)
      CHECK(events::kind_of_stream(cause->stream) == events::stream_kind::order);
    (order_event ? outcomes : services)++;
    if (order_event && sampled.size() < 8 && rec.position % 7 == 0)
      sampled.push_back(rec.position);
  }
  CHECK(external >= 300);
  CHECK(outcomes >= 4 * 300);
  CHECK(services >= 4 * 300);
  REQUIRE_FALSE(sampled.empty());
  for (auto position : sampled) {
    auto get = inspect("get " + std::to_string(position) + " --json --data " + data);
    INFO(get.out);
    REQUIRE(get.code == 0);
    auto j = nlohmann::json::parse(get.out);
    REQUIRE(j.contains("caused_by"));
    CHECK(j["caused_by"]["position"].get<std::uint64_t>() < position);
    auto cause = inspect("get " + j["caused_by"]["position"].dump() + " --json --data " + data);
    CHECK(nlohmann::json::parse(cause.out)["correlation_id"] == j["correlation_id"]);
  }
}
