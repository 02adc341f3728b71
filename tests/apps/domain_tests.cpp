// The domain findings of the security review against a real keel-node:
// prices from the catalogue and premium from the token (H4), order ids
// scoped to their customer with URL-safe ids (M4), order reads behind tokens
// that never go through the actor placing orders (M3).

#include <catch2/catch.hpp>

#include <chrono>
#include <csignal>
#include <string>

#include <nlohmann/json.hpp>

#include "auth.hpp"
#include "keel/events/event.hpp"
#include "keel/storage/event_store.hpp"
#include "node_process.hpp"
#include "temp_dir.hpp"

using namespace keel;
using namespace keel::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

/// A customer's token with tier premium.
httplib::Headers premium_auth(const std::string& sub) {
  using namespace std::chrono;
  auto now = duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
  return {{"Authorization", "Bearer " + runtime::mint_token(test_secret, sub, false, now, hours(1),
                                                         "", "", true)}};
}

/// The status and parsed body of a request.
struct answer {
  int status = 0;
  json body;
};

answer ask(httplib::Result res) {
  REQUIRE(res);
  INFO(res->body);
  return {res->status, res->body.empty() ? json{} : json::parse(res->body)};
}

answer get(httplib::Client& c, const std::string& path, const httplib::Headers& h = {}) {
  return ask(c.Get(path.c_str(), h));
}

answer place(httplib::Client& c, const json& body, const httplib::Headers& h) {
  return ask(post(c, "/v1/orders", body, h));
}

answer set_price(httplib::Client& c, const std::string& sku, const json& body,
                 const httplib::Headers& h = auth("ops", true)) {
  return ask(c.Put(("/admin/catalog/" + sku).c_str(), h, body.dump(), "application/json"));
}

/// The order_placed event of `id`, read beside the running node.
events::order_placed placed_event(const std::string& data, const std::string& id) {
  auto store = storage::event_store::open_beside(data);
  REQUIRE(store);
  auto reader = (*store)->read_stream("order-" + id);
  REQUIRE(reader.next());
  auto ev = reader.current().decode_payload();
  REQUIRE(ev);
  return std::get<events::order_placed>(*ev);
}

json unpriced(const std::string& id, const std::string& customer, const std::string& sku,
              int quantity = 1) {
  auto j = order_json(id, customer, sku, quantity);
  j["items"][0].erase("unit_price_cents");
  j.erase("currency");
  j.erase("premium");
  return j;
}

} // namespace

TEST_CASE("prices come from the catalogue and premium from the token, never from the body",
          "[node][domain]") {
  keel::temp_dir dir;
  auto data = dir.sub("store");
  std::vector<std::string> args{"--kafka", "off", "--currencies", "EUR,USD"};
  auto n = std::make_unique<node_process>(data, args);
  auto c = n->client();
  stock(c, "sku-1", 5000);
  stock(c, "sku-2", 5000);
  stock(c, "sku-u", 5000);

  // The catalogue: admins write, anyone reads.
  CHECK(set_price(c, "sku-1", {{"price_cents", 1999}, {"currency", "EUR"}}, {}).status == 401);
  CHECK(set_price(c, "sku-1", {{"price_cents", 1999}, {"currency", "EUR"}}, auth("c-1")).status
        == 403);
  auto head = head_of(data);
  for (auto& [body, field] : std::vector<std::pair<json, std::string>>{
         {{{"price_cents", 0}, {"currency", "EUR"}}, "price_cents"},
         {{{"price_cents", -5}, {"currency", "EUR"}}, "price_cents"},
         {{{"price_cents", 10000000001}, {"currency", "EUR"}}, "price_cents"},
         {{{"price_cents", 100}, {"currency", "GBP"}}, "currency"}, // not configured
         {{{"price_cents", 100}, {"currency", "XYZ"}}, "currency"},
         {{{"price_cents", 100}}, "currency"},
         {{{"price_cents", 100}, {"currency", "EUR"}, {"discount", 5}}, "discount"}}) {
    auto a = set_price(c, "sku-1", body);
    INFO(body.dump() << " -> " << a.body.dump());
    CHECK(a.status == 400);
    CHECK(a.body["error"]["field"] == field);
  }
  CHECK(set_price(c, "sku%2F1", {{"price_cents", 100}, {"currency", "EUR"}}).status != 200);
  CHECK(head_of(data) == head);
  CHECK(get(c, "/v1/catalog/sku-1").status == 404);

  auto set = set_price(c, "sku-1", {{"price_cents", 1999}, {"currency", "EUR"}});
  REQUIRE(set.status == 200);
  CHECK(set.body["price_cents"] == 1999);
  REQUIRE(set_price(c, "sku-2", {{"price_cents", 350}, {"currency", "EUR"}}).status == 200);
  REQUIRE(set_price(c, "sku-u", {{"price_cents", 900}, {"currency", "USD"}}).status == 200);
  auto entry = get(c, "/v1/catalog/sku-1");
  REQUIRE(entry.status == 200);
  CHECK(entry.body["price_cents"] == 1999);
  CHECK(entry.body["currency"] == "EUR");

  // The review's attack: 1,000 units at 0 cents. Refused, nothing stored.
  head = head_of(data);
  auto attack = order_json("free-1", "c-1", "sku-1", 1000);
  attack["items"][0]["unit_price_cents"] = 0;
  auto a = place(c, attack, auth("c-1"));
  CHECK(a.status == 409);
  CHECK(a.body["error"]["code"] == "price_changed");
  CHECK(a.body["error"]["field"] == "items[0].unit_price_cents");
  CHECK(a.body["error"]["message"].get<std::string>().find("1999") != std::string::npos);
  // No catalogue entry; a currency not accepted; one the items are not priced in.
  stock(c, "sku-unpriced", 10);
  head = head_of(data);
  a = place(c, unpriced("np-1", "c-1", "sku-unpriced"), auth("c-1"));
  CHECK(a.status == 409);
  CHECK(a.body["error"]["code"] == "not_for_sale");
  auto xyz = unpriced("x-1", "c-1", "sku-1");
  xyz["currency"] = "XYZ";
  a = place(c, xyz, auth("c-1"));
  CHECK(a.status == 400);
  CHECK(a.body["error"]["field"] == "currency");
  xyz["currency"] = "USD";
  a = place(c, xyz, auth("c-1"));
  CHECK(a.status == 409);
  CHECK(a.body["error"]["code"] == "currency_mismatch");
  auto mixed = unpriced("m-1", "c-1", "sku-1");
  mixed["items"].push_back({{"sku", "sku-u"}, {"quantity", 1}});
  a = place(c, mixed, auth("c-1"));
  CHECK(a.status == 409);
  CHECK(a.body["error"]["code"] == "currency_mismatch");
  // Premium is the token's: a standard token asking for it is refused.
  auto greedy = unpriced("g-1", "c-1", "sku-1");
  greedy["premium"] = true;
  a = place(c, greedy, auth("c-1"));
  CHECK(a.status == 403);
  CHECK(a.body["error"]["field"] == "premium");
  CHECK(head_of(data) == head);

  // Priced by the catalogue: without a price, or with the right one.
  REQUIRE(place(c, unpriced("p-1", "c-1", "sku-1", 2), auth("c-1")).status == 202);
  auto right = order_json("p-2", "c-1", "sku-2", 3);
  right["items"][0]["unit_price_cents"] = 350;
  REQUIRE(place(c, right, auth("c-1")).status == 202);
  REQUIRE(place(c, unpriced("p-3", "c-vip", "sku-1"), premium_auth("c-vip")).status == 202);
  auto done = wait_status(c, "p-1", {"completed"});
  CHECK(done["total_cents"] == 3998);
  CHECK(done["currency"] == "EUR");
  CHECK(done["items"][0]["unit_price_cents"] == 1999);
  CHECK(done["premium"] == false);
  auto ev = placed_event(data, "p-1");
  CHECK(ev.lines[0].unit_price_cents == 1999);
  CHECK(ev.total_cents == 3998);
  CHECK(ev.currency == "EUR");
  CHECK(wait_status(c, "p-2", {"completed"})["total_cents"] == 1050);
  CHECK(wait_status(c, "p-3", {"completed"})["premium"] == true);
  CHECK(placed_event(data, "p-3").premium);

  // A price change: the old price is refused, the new one charged; placed
  // orders keep theirs.
  REQUIRE(set_price(c, "sku-1", {{"price_cents", 2499}, {"currency", "EUR"}}).status == 200);
  auto stale = order_json("p-4", "c-1", "sku-1");
  stale["items"][0]["unit_price_cents"] = 1999;
  a = place(c, stale, auth("c-1"));
  CHECK(a.status == 409);
  CHECK(a.body["error"]["code"] == "price_changed");
  REQUIRE(place(c, unpriced("p-4", "c-1", "sku-1"), auth("c-1")).status == 202);
  CHECK(wait_status(c, "p-4", {"completed"})["total_cents"] == 2499);
  CHECK(get(c, "/v1/orders/p-1", auth("c-1")).body["total_cents"] == 3998);

  // Withdrawn: not for sale; withdrawing again is a 404.
  CHECK(ask(c.Delete("/admin/catalog/sku-2", auth("c-1"))).status == 403);
  CHECK(ask(c.Delete("/admin/catalog/sku-2", auth("ops", true))).status == 200);
  CHECK(ask(c.Delete("/admin/catalog/sku-2", auth("ops", true))).status == 404);
  CHECK(get(c, "/v1/catalog/sku-2").status == 404);
  a = place(c, unpriced("p-5", "c-1", "sku-2"), auth("c-1"));
  CHECK(a.status == 409);
  CHECK(a.body["error"]["code"] == "not_for_sale");

  // The catalogue is durable: a restarted node prices from it.
  REQUIRE(n->signal_and_wait(SIGTERM, 30s) == 0);
  n = std::make_unique<node_process>(data, args);
  auto c2 = n->client();
  entry = get(c2, "/v1/catalog/sku-1");
  REQUIRE(entry.status == 200);
  CHECK(entry.body["price_cents"] == 2499);
  CHECK(get(c2, "/v1/catalog/sku-2").status == 404);
  REQUIRE(place(c2, unpriced("p-6", "c-1", "sku-1"), auth("c-1")).status == 202);
  CHECK(wait_status(c2, "p-6", {"completed"})["total_cents"] == 2499);
  // Revenue has series for the configured currencies only.
  auto metrics = c2.Get("/metrics");
  REQUIRE(metrics);
  CHECK(metrics->body.find("currency=\"XYZ\"") == std::string::npos);
}

TEST_CASE("an order id belongs to its customer and ids that need URL escaping are refused",
          "[node][domain]") {
  keel::temp_dir dir;
  auto data = dir.sub("store");
  node_process n{data, {"--kafka", "off"}};
  auto c = n.client();
  stock(c, "sku-1", 100);
  put_on_sale(c, "sku-1");
  REQUIRE(place(c, order_json("bf-1", "c-victim", "sku-1"), auth("c-victim")).status == 202);
  wait_status(c, "bf-1", {"completed"});
  auto head = head_of(data);
  // The review's scenario: a predictable id placed first by someone else.
  auto a = place(c, order_json("bf-1", "c-attacker", "sku-1"), auth("c-attacker"));
  CHECK(a.status == 409);
  CHECK(a.body["error"]["code"] == "order_id_taken");
  CHECK(a.body.dump().find("c-victim") == std::string::npos);
  // The same customer with another order under the same id.
  a = place(c, order_json("bf-1", "c-victim", "sku-1", 5), auth("c-victim"));
  CHECK(a.status == 409);
  CHECK(a.body["error"]["code"] == "order_id_taken");
  // A retry of the same order: its state.
  a = place(c, order_json("bf-1", "c-victim", "sku-1"), auth("c-victim"));
  CHECK(a.status == 200);
  CHECK(a.body["status"] == "completed");
  CHECK(a.body["customer_id"] == "c-victim");
  // Another customer cannot read or cancel it, nor tell that it exists.
  auto missing = get(c, "/v1/orders/no-such-order", auth("c-attacker"));
  auto theirs = get(c, "/v1/orders/bf-1", auth("c-attacker"));
  CHECK(theirs.status == 404);
  CHECK(missing.status == 404);
  CHECK(theirs.body["error"]["code"] == missing.body["error"]["code"]);
  CHECK(ask(c.Post("/v1/orders/bf-1/cancel", auth("c-attacker"), "", "application/json")).status
        == 404);

  // Ids that would need escaping in a URL are refused, for orders and customers.
  for (std::string id : {"bf/2", "bf?2", "bf#2", "bf%2F2", "bf%2", "b\xc3\xa9-2", "bf 2", "bf+2",
                         "bf&2"}) {
    INFO("order id '" << id << "'");
    a = place(c, order_json(id, "c-victim", "sku-1"), auth("c-victim"));
    CHECK(a.status == 400);
    CHECK(a.body["error"]["field"] == "order_id");
  }
  a = place(c, order_json("ok-1", "c/victim", "sku-1"), auth("c/victim"));
  CHECK(a.status == 400);
  CHECK(a.body["error"]["field"] == "customer_id");
  CHECK(head_of(data) == head);
}

TEST_CASE("order reads need a token, show customers their own orders only and never go through "
          "the orders actor",
          "[node][domain]") {
  keel::temp_dir dir;
  node_process n{dir.sub("store"), {"--kafka", "off"}};
  auto c = n.client();
  stock(c, "sku-1", 100);
  put_on_sale(c, "sku-1");
  REQUIRE(place(c, order_json("r-1", "c-1", "sku-1"), auth("c-1")).status == 202);
  wait_status(c, "r-1", {"completed"});

  CHECK(get(c, "/v1/orders/r-1").status == 401);
  CHECK(get(c, "/v1/orders/r-1", {{"Authorization", "Bearer forged"}}).status == 401);
  CHECK(get(c, "/v1/orders/r-1", auth("c-2")).status == 404);
  auto own = get(c, "/v1/orders/r-1", auth("c-1"));
  REQUIRE(own.status == 200);
  CHECK(own.body["customer_id"] == "c-1");
  CHECK(get(c, "/v1/orders/r-1", auth("ops", true)).status == 200);

  CHECK(get(c, "/v1/customers/c-1/orders").status == 401);
  auto other = get(c, "/v1/customers/c-1/orders", auth("c-2"));
  CHECK(other.status == 403);
  CHECK(other.body.dump().find("r-1") == std::string::npos);
  auto list = get(c, "/v1/customers/c-1/orders", auth("c-1"));
  REQUIRE(list.status == 200);
  REQUIRE(list.body["orders"].size() == 1);
  CHECK(list.body["orders"][0]["order_id"] == "r-1");
  CHECK(get(c, "/v1/customers/c-1/orders", auth("ops", true)).body["orders"].size() == 1);

  // Reads are served from the store and the read models on the HTTP
  // threads: the orders actor's bulkhead admits none of them.
  const std::string admitted = "keel_bulkhead_admitted_total{bulkhead=\"orders\"}";
  auto before = metric(c, admitted);
  REQUIRE(before >= 1);
  for (int i = 0; i < 300; ++i) {
    auto id = i % 3 == 0 ? std::string{"r-1"} : "unknown-" + std::to_string(i);
    auto r = c.Get(("/v1/orders/" + id).c_str(), auth(i % 2 ? "c-1" : "c-2"));
    REQUIRE(r);
    CHECK((r->status == 200 || r->status == 404));
  }
  CHECK(metric(c, admitted) == before);
  // A placement does go through it (the figure is live).
  REQUIRE(place(c, order_json("r-2", "c-1", "sku-1"), auth("c-1")).status == 202);
  CHECK(metric(c, admitted) == before + 1);
}
