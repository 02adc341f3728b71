// The keel_replay library: history files, the check of recorded histories
// (tampered copies of the corpus), evidence from a store, the timeline.

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "check.hpp"
#include "codec.hpp"
#include "derive.hpp"
#include "keel/events/correlation.hpp"
#include "keel/events/error.hpp"
#include "scenarios.hpp"
#include "timeline.hpp"

using namespace keel;
using namespace keel::replay;
using nlohmann::json;

namespace {

std::string corpus_text(const std::string& name) {
  std::ifstream in(std::string{KEEL_REPLAY_CORPUS} + "/" + name + ".json", std::ios::binary);
  REQUIRE(in);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

json corpus(const std::string& name) {
  return json::parse(corpus_text(name));
}

check_report check_doc(const json& doc) {
  auto h = parse_history(doc.dump());
  REQUIRE(h);
  return check(*h);
}

std::string parse_error(const std::string& text) {
  auto h = parse_history(text);
  REQUIRE_FALSE(h);
  return describe(h.error());
}

/// Removes event `i` and renumbers the versions after it (a lost event).
json drop_event(json doc, std::size_t i) {
  auto& evs = doc["events"];
  evs.erase(evs.begin() + static_cast<std::ptrdiff_t>(i));
  for (std::size_t k = 0; k < evs.size(); ++k)
    evs[k]["version"] = k + 1;
  return doc;
}

stored_event stored(std::uint64_t pos, std::string stream, std::uint64_t version,
                    std::int64_t at_us, events::event ev) {
  stored_event e;
  e.position = pos;
  e.stream = std::move(stream);
  e.version = version;
  e.type = std::string{events::type_name(ev)};
  e.timestamp_us = at_us;
  e.data = std::move(ev);
  return e;
}

/// A completed order as a store holds it, hand-built (positions 1..10).
events::event_id id_at(std::uint64_t pos) {
  return events::event_id::from_seed(77, pos);
}

/// The event at `pos` names the one at `by` as its cause.
void cause(order_records& o, std::uint64_t pos, std::uint64_t by) {
  for (auto* list : {&o.order, &o.services})
    for (auto& e : *list)
      if (e.position == pos)
        e.causation_id = id_at(by);
}

order_records completed_order() {
  using namespace events;
  order_records o;
  o.order_id = "o-1";
  order_placed placed{"o-1", "c-1", {{"SKU-1", 2, 500}}, "EUR", {"Ada", "St", "London", "N1", "GB"},
                      false, 1000};
  std::int64_t t = 1'000'000;
  o.order.push_back(stored(1, "order-o-1", 1, t, placed));
  o.services.push_back(stored(2, "stock-SKU-1", 1, t + 100, stock_reserved{"SKU-1", "o-1", 2}));
  o.order.push_back(stored(3, "order-o-1", 2, t + 200, order_stock_reserved{"o-1"}));
  o.services.push_back(stored(4, "payment-o-1", 1, t + 300,
                              payment_authorized{"o-1", "p-1", "gw-primary", 1000, "EUR", "auth-o-1"}));
  o.order.push_back(stored(5, "order-o-1", 3, t + 400, order_payment_authorized{"o-1", "p-1", "gw-primary", 1000}));
  o.services.push_back(stored(6, "shipment-o-1", 1, t + 500, shipment_scheduled{"o-1", "t-1", "carrier-a", 0}));
  o.order.push_back(stored(7, "order-o-1", 4, t + 600, order_shipment_scheduled{"o-1", "t-1", "carrier-a", 0}));
  o.services.push_back(stored(8, "payment-o-1", 2, t + 700, payment_captured{"o-1", "p-1", "gw-primary", 1000}));
  o.services.push_back(stored(9, "stock-SKU-1", 2, t + 800, stock_committed{"SKU-1", "o-1", 2}));
  o.order.push_back(stored(10, "order-o-1", 5, t + 900, order_completed{"o-1"}));
  // As the pipeline records them: a service event names the order event that
  // issued its step, an outcome the first service event of its step.
  for (auto* list : {&o.order, &o.services})
    for (auto& e : *list)
      e.id = id_at(e.position);
  for (auto [pos, by] : {std::pair{2, 1}, {3, 2}, {4, 3}, {5, 4}, {6, 5}, {7, 6}, {8, 7}, {9, 7},
                         {10, 8}})
    cause(o, pos, by);
  return o;
}

} // namespace

TEST_CASE("the corpus holds every saga path and each file replays clean", "[unit]") {
  std::set<std::string> files;
  for (auto& entry : std::filesystem::directory_iterator(KEEL_REPLAY_CORPUS))
    files.insert(entry.path().stem().string());
  std::set<std::string> paths(test::scenario_orders().begin(), test::scenario_orders().end());
  CHECK(files == paths);
  for (auto& name : files) {
    INFO("corpus/" << name << ".json");
    auto r = check_doc(corpus(name));
    CHECK(r.divergences.empty());
    CHECK(render_text(r, false).empty());
  }
  CHECK(check_doc(corpus("completed")).status == "completed");
  CHECK(check_doc(corpus("pending-given-up")).status == "cancelled");
}

TEST_CASE("a history file survives parse and render unchanged", "[unit]") {
  auto text = corpus_text("pending-resumed");
  auto h = parse_history(text);
  REQUIRE(h);
  CHECK(h->order_id == "pending-resumed");
  CHECK(h->policy.max_payment_attempts == 3);
  auto again = json(history_json(*h, {{"exported_by", "keel-replay export"}}));
  auto original = json::parse(text);
  original.erase("store_check");
  CHECK(again == original);
}

TEST_CASE("a changed quantity in a recorded command is reported at its event with both sides", "[unit]") {
  auto doc = corpus("completed");
  doc["events"][0]["commands"][0]["lines"][0]["quantity"] = 3;
  auto r = check_doc(doc);
  REQUIRE(r.divergences.size() == 1);
  auto& d = r.divergences[0];
  CHECK(d.kind == "commands");
  CHECK(d.version == 1);
  CHECK(d.position == doc["events"][0]["position"].get<std::uint64_t>());
  CHECK(d.type == "order_placed");
  CHECK(d.detail == "reserve_stock differs in lines");
  CHECK(d.expected[0]["lines"][0]["quantity"] == 2);
  CHECK(d.recorded[0]["lines"][0]["quantity"] == 3);
  auto text = render_text(r, false);
  CHECK(text.find("- reserve_stock lines=[SKU-1 x2 @1250]\n") != std::string::npos);
  CHECK(text.find("+ reserve_stock lines=[SKU-1 x3 @1250]\n") != std::string::npos);
  CHECK(render_json(r)["divergences"][0]["expected"][0]["command"] == "reserve_stock");
}

TEST_CASE("a dropped event is reported where the decider stops expecting what follows", "[unit]") {
  // completed: placed, stock_reserved, payment_authorized, ...; drop stock_reserved.
  auto original = corpus("completed");
  auto doc = drop_event(original, 1);
  auto r = check_doc(doc);
  REQUIRE_FALSE(r.divergences.empty());
  auto& d = r.divergences.front();
  CHECK(d.kind == "unexpected_event");
  CHECK(d.version == 2);
  CHECK(d.type == "order_payment_authorized");
  CHECK(d.position == original["events"][2]["position"].get<std::uint64_t>());
  CHECK(d.detail == "the decider did not expect it: order_payment_authorized in status placed");
  REQUIRE(d.expected.size() == 1);
  CHECK(d.expected[0]["command"] == "reserve_stock"); // what the saga waited for
  CHECK(d.recorded[0]["event"] == "order_payment_authorized");
  // The recorded authorize_payment at order_placed is not what the decider issues there.
  auto text = render_text(r, false);
  CHECK(text.find("order-completed@2 position") != std::string::npos);
}

TEST_CASE("a changed order line changes every command that carries it", "[unit]") {
  auto doc = corpus("declined");
  doc["events"][0]["data"]["lines"][0]["quantity"] = 4;
  doc["events"][0]["data"]["total_cents"] = 5000;
  auto r = check_doc(doc);
  std::vector<std::pair<std::uint64_t, std::string>> where;
  for (auto& d : r.divergences)
    where.emplace_back(d.version, d.detail);
  // placed -> reserve (lines); reserved -> authorize (amount); declined -> release (lines)
  CHECK(where
        == std::vector<std::pair<std::uint64_t, std::string>>{
          {1, "reserve_stock differs in lines"},
          {2, "authorize_payment differs in amount_cents"},
          {3, "release_stock differs in lines"}});
}

TEST_CASE("compensations recorded in another order than the decider's are reported", "[unit]") {
  // shipping-failed: the decider voids before it releases.
  auto doc = corpus("shipping-failed");
  std::size_t failed = 0;
  for (std::size_t i = 0; i < doc["events"].size(); ++i)
    if (doc["events"][i]["type"] == "order_shipment_failed")
      failed = i;
  REQUIRE(failed > 0);
  REQUIRE(doc["events"][failed]["commands"][0]["command"] == "void_payment");
  doc["events"][failed]["commands"][0] = {{"command", "release_stock"},
                                          {"lines", doc["events"][0]["data"]["lines"]}};
  auto r = check_doc(doc);
  REQUIRE(r.divergences.size() == 1);
  CHECK(r.divergences[0].version == failed + 1);
  CHECK(r.divergences[0].detail == "the decider issues [void_payment], recorded [release_stock]");
  auto text = render_text(r, false);
  CHECK(text.find("    - void_payment payment_id=") != std::string::npos);
  CHECK(text.find("    + release_stock lines=[SKU-1 x1 @1250]") != std::string::npos);
}

TEST_CASE("a policy in the file is the policy replayed", "[unit]") {
  // pending-given-up gave up at attempt 3; with 4 attempts the decider parks again.
  auto doc = corpus("pending-given-up");
  doc["policy"]["max_payment_attempts"] = 4;
  auto r = check_doc(doc);
  REQUIRE_FALSE(r.divergences.empty());
  CHECK(r.divergences[0].type == "order_payment_pending");
  CHECK(r.divergences[0].detail.find("the decider issues [park_payment") == 0);
}

TEST_CASE("a malformed history file is named by line or by member", "[unit]") {
  CHECK(parse_error("{\n  \"format\": \n}").find("not JSON: parse error at line 3") != std::string::npos);
  CHECK(parse_error("[]").find("(document): expected an object") != std::string::npos);
  auto doc = corpus("completed");
  auto with = [&](auto change) {
    auto copy = doc;
    change(copy);
    return parse_error(copy.dump());
  };
  CHECK(with([](json& d) { d["format"] = "other"; }).find(".format: expected \"keel-replay-history\"") != std::string::npos);
  CHECK(with([](json& d) { d["format_version"] = 2; }).find(".format_version: 2 is not supported") != std::string::npos);
  CHECK(with([](json& d) { d["events"][0]["data"]["lines"][0]["quantity"] = -1; })
          .find(".events[0].data.lines[0].quantity: expected an unsigned integer") != std::string::npos);
  CHECK(with([](json& d) { d["events"][1]["type"] = "stock_reserved"; })
          .find(".events[1].data: \"stock_reserved\" is not an order event type") != std::string::npos);
  CHECK(with([](json& d) { d["events"][2]["version"] = 7; })
          .find(".events[2].version: expected 3 (versions are gap-free from 1), got 7") != std::string::npos);
  CHECK(with([](json& d) { d["events"][0]["commands"][0] = 5; })
          .find(".events[0].commands[0]: expected an object with a \"command\" name") != std::string::npos);
  CHECK(with([](json& d) { d.erase("policy"); }).find(".policy: missing") != std::string::npos);
  CHECK(with([](json& d) { d["events"] = json::array(); }).find(".events: expected a non-empty array") != std::string::npos);
}

TEST_CASE("the store's evidence of a clean order agrees with the decider", "[unit]") {
  auto o = completed_order();
  auto d = derive(o);
  auto r = check(recorded_history(o, d, {}));
  CHECK(r.divergences.empty());
  CHECK(r.status == "completed");
  REQUIRE(d.steps.size() == 4);
  CHECK(d.steps[0].name == "reserve_stock");
  CHECK(d.steps[3].name == "capture_payment+commit_stock");
  CHECK(d.caused_by[3] == std::optional<std::size_t>{3}); // stock_committed by capture+commit
  CHECK(d.recorded[0] == std::vector<json>{{{"command", "reserve_stock"},
                                            {"lines", {{{"sku", "SKU-1"}, {"quantity", 2}}}}}});
}

TEST_CASE("store evidence that differs from the decider is reported at the issuing event", "[unit]") {
  using namespace events;
  auto o = completed_order();
  o.services[0].data = stock_reserved{"SKU-1", "o-1", 5};                          // wrong quantity
  o.services[1].data = payment_authorized{"o-1", "p-1", "gw-primary", 1000, "EUR", "o-1"}; // wrong key
  o.services.push_back(stored(11, "payment-o-1", 3, 2'000'000,
                              payment_captured{"o-1", "p-1", "gw-primary", 1000})); // a second charge
  o.services.back().id = id_at(11);
  cause(o, 11, 7);
  auto r = check(recorded_history(o, derive(o), {}));
  REQUIRE(r.divergences.size() == 3);
  CHECK(r.divergences[0].position == 1);
  CHECK(r.divergences[0].detail == "reserve_stock differs in lines");
  CHECK(r.divergences[1].position == 3);
  CHECK(r.divergences[1].detail == "authorize_payment differs in idempotency_key");
  CHECK(r.divergences[2].kind == "unexplained_service_event");
  CHECK(r.divergences[2].position == 11);
  CHECK(r.divergences[2].detail == "after the order ended (order_completed)");
}

TEST_CASE("an order in flight is not a divergence until its evidence contradicts the decider", "[unit]") {
  auto o = completed_order();
  o.order.resize(1);  // placed; reserve in flight with one stock event written
  o.services.resize(1);
  auto r = check(recorded_history(o, derive(o), {}));
  CHECK(r.divergences.empty());
  CHECK(r.status == "placed");
  o.services.clear(); // nothing written yet
  auto empty = check(recorded_history(o, derive(o), {}));
  INFO(render_text(empty, true));
  CHECK(empty.divergences.empty());
}

TEST_CASE("the timeline joins service events to the step that caused them and escapes html", "[unit]") {
  auto o = completed_order();
  std::get<events::order_placed>(o.order[0].data).customer_id = "<b>&\"x\"";
  auto d = derive(o);
  auto t = build_timeline(o, d, {});
  REQUIRE(t.rows.size() == 10);
  CHECK(t.rows[1].type == "stock_reserved");
  CHECK(t.rows[1].caused_by == "reserve_stock by @1 order_placed");
  CHECK(t.rows[1].lane == "inventory");
  CHECK(t.rows[9].caused_by == "capture_payment+commit_stock by @4 order_shipment_scheduled");
  CHECK(t.correlation_id == to_string(events::correlation_of("o-1")));
  REQUIRE(t.steps.size() == 4);
  CHECK(t.steps[1].start_us - t.placed_us == 200);
  CHECK(t.steps[1].end_us - t.placed_us == 400);
  auto html = render_html(t);
  CHECK(html.find("<b>&") == std::string::npos);
  CHECK(html.find("&lt;b&gt;&amp;&quot;x&quot;") != std::string::npos);
  CHECK(relative_time(0) == "+0.000 ms");
  CHECK(relative_time(12'345) == "+12.345 ms");
  CHECK(relative_time(31'500'000) == "+31.500 s");
  CHECK(relative_time(-5000) == "-5.000 ms");
}

TEST_CASE("the steps come from the stored causation ids and contradictions are reported",
          "[unit]") {
  auto o = completed_order();
  auto id = id_at;
  auto cause = [&](std::uint64_t pos, std::uint64_t by) { ::cause(o, pos, by); };
  auto linked = derive(o);
  std::vector<std::string> steps;
  for (auto& st : linked.steps)
    steps.push_back(st.name + " by @" + std::to_string(o.order[st.driver].position) + " with "
                    + std::to_string(st.services.size()));
  CHECK(steps
        == std::vector<std::string>{"reserve_stock by @1 with 1", "authorize_payment by @3 with 1",
                                    "schedule_shipment by @5 with 1",
                                    "capture_payment+commit_stock by @7 with 2"});
  CHECK(check(recorded_history(o, linked, {})).divergences.empty());

  cause(4, 1);                          // payment_authorized names order_placed
  o.order.back().causation_id = id(99); // order_completed names an unknown event
  o.order.front().causation_id = id(3); // order_placed names a cause
  auto r = check(recorded_history(o, derive(o), {}));
  INFO(render_text(r, true));
  std::vector<std::string> seen;
  for (auto& d : r.divergences)
    seen.push_back(d.kind + " @" + std::to_string(d.position) + ": " + d.detail);
  CHECK(seen == std::vector<std::string>{
                  "causation @1: answers no step, yet names a cause: order_stock_reserved order-o-1@2",
                  "commands @3: the decider issues [authorize_payment], recorded []",
                  "unexplained_service_event @4: not caused by reserve_stock (issued by order_placed "
                  "order-o-1@1)",
                  "causation @5: answers no step, yet names a cause: payment_authorized payment-o-1@1",
                  "causation @10: answers no step, yet names a cause: an event that is not this "
                  "order's"});
}

TEST_CASE("events without causation ids are reported, not placed by inference", "[unit]") {
  auto o = completed_order();
  for (auto* list : {&o.order, &o.services})
    for (auto& e : *list)
      e.causation_id = {};
  auto d = derive(o);
  CHECK(d.steps.empty());
  auto r = check(recorded_history(o, d, {}));
  std::map<std::string, int> kinds;
  for (auto& x : r.divergences) {
    kinds[x.kind]++;
    if (x.kind != "commands")
      CHECK_THAT(x.detail, Catch::Contains("carries no causation id"));
  }
  CHECK(kinds["unexplained_service_event"] == 5);
  CHECK(kinds["causation"] == 4); // every outcome; order_placed needs none
}
