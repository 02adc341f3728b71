// The catalogue orders are priced from (security review H4) and order ids
// scoped to their customer (M4): a client never chooses the price it pays,
// and an order id is never answered with someone else's order.

#include "keel/actors/catalog.hpp"
#include "keel/events/ids.hpp"
#include "pipeline_fixture.hpp"

using namespace keel;
using namespace keel::test;
using actors::order_view;

namespace {

const std::vector<std::string> currencies{"EUR", "USD"};

std::shared_ptr<actors::catalog> open_catalog(std::shared_ptr<storage::event_store> store) {
  auto c = actors::catalog::open(std::move(store), currencies);
  INFO((c ? std::string{} : describe(c.error())));
  REQUIRE(c);
  return *c;
}

struct catalog_fixture : pipeline_fixture {
  std::shared_ptr<actors::catalog> cat = open_catalog(store);

  void start_priced() {
    auto c = config();
    c.catalog = cat;
    start(std::move(c));
  }

  /// An order of `qty` units of `sku` that names no price nor currency.
  static events::place_order unpriced_order(const std::string& id, const std::string& sku,
                                            std::uint32_t qty = 1) {
    auto cmd = order(id, sku, qty);
    cmd.lines[0].unit_price_cents = events::unpriced;
    cmd.currency.clear();
    return cmd;
  }

  events::order_placed placed(const std::string& id) {
    auto reader = store->read_stream("order-" + id);
    REQUIRE(reader.next());
    auto ev = reader.current().decode_payload();
    REQUIRE(ev);
    return std::get<events::order_placed>(*ev);
  }
};

} // namespace

TEST_CASE_METHOD(catalog_fixture, "the catalogue records prices durably, refuses bad entries and reopens the same", "[catalog]") {
  auto e = cat->set("SKU-1", 1999, "EUR", "ops");
  REQUIRE(e);
  CHECK(e->version == 1);
  REQUIRE(cat->set("SKU-2", 500, "USD", "ops"));
  auto before = store->last_position();
  // Refused, and nothing is stored.
  CHECK(code_of(cat->set("SKU-3", 0, "EUR", "ops").error()) == errc::invalid_argument);
  CHECK(code_of(cat->set("SKU-3", events::max_unit_price_cents + 1, "EUR", "ops").error())
        == errc::invalid_argument);
  CHECK(code_of(cat->set("SKU-3", 100, "XYZ", "ops").error()) == errc::invalid_argument);
  CHECK(code_of(cat->set("SKU/3", 100, "EUR", "ops").error()) == errc::invalid_argument);
  // The current price again records nothing.
  REQUIRE(cat->set("SKU-1", 1999, "EUR", "ops"));
  CHECK(store->last_position() == before);
  CHECK_FALSE(cat->find("SKU-3"));
  // A change, a withdrawal, a second withdrawal.
  e = cat->set("SKU-1", 2499, "EUR", "ops");
  REQUIRE(e);
  CHECK(e->version == 2);
  REQUIRE_FALSE(cat->withdraw("SKU-2", "ops"));
  CHECK_FALSE(cat->find("SKU-2"));
  CHECK(code_of(cat->withdraw("SKU-2", "ops")) == errc::not_found);
  CHECK(cat->size() == 1);
  // Another process opening the store sees the same catalogue.
  auto again = open_catalog(store);
  auto one = again->find("SKU-1");
  REQUIRE(one);
  CHECK(one->price_cents == 2499);
  CHECK(one->currency == "EUR");
  CHECK(one->version == 2);
  CHECK_FALSE(again->find("SKU-2"));
  // A withdrawn SKU can be priced again (after its withdrawal, in its stream).
  e = again->set("SKU-2", 700, "EUR", "ops");
  REQUIRE(e);
  CHECK(e->version == 3);
  // The first instance's view of SKU-2 is stale (withdrawn at version 2):
  // its write conflicts, is refused, and it catches up.
  auto stale = cat->set("SKU-2", 800, "EUR", "ops");
  REQUIRE_FALSE(stale);
  CHECK(code_of(stale.error()) == errc::version_conflict);
  REQUIRE(cat->find("SKU-2"));
  CHECK(cat->find("SKU-2")->price_cents == 700);
  // The list of currencies is checked when the catalogue opens.
  CHECK_FALSE(actors::catalog::open(store, {}));
  CHECK_FALSE(actors::catalog::open(store, {"eur"}));
}

TEST_CASE_METHOD(catalog_fixture, "pricing takes the catalogue's prices and refuses a client's price that differs", "[catalog]") {
  REQUIRE(cat->set("SKU-1", 1999, "EUR", "ops"));
  REQUIRE(cat->set("SKU-2", 350, "EUR", "ops"));
  REQUIRE(cat->set("SKU-U", 900, "USD", "ops"));
  auto cmd = unpriced_order("o-1", "SKU-1", 3);
  cmd.lines.push_back({"SKU-2", 2, 350}); // a client price that matches is fine
  REQUIRE_FALSE(cat->price(cmd));
  CHECK(cmd.lines[0].unit_price_cents == 1999);
  CHECK(cmd.lines[1].unit_price_cents == 350);
  CHECK(cmd.currency == "EUR");

  auto refused = [&](events::place_order c, errc code, const std::string& field) {
    auto original = c;
    auto err = cat->price(c);
    INFO(describe(err));
    CHECK(code_of(err) == code);
    CHECK(describe(err).find(field) != std::string::npos);
    CHECK(c.lines == original.lines); // unchanged
    CHECK(c.currency == original.currency);
  };
  auto free = unpriced_order("o-2", "SKU-1", 1000);
  free.lines[0].unit_price_cents = 0; // the review's attack: the whole stock for nothing
  refused(free, errc::price_changed, "items[0].unit_price_cents");
  refused(unpriced_order("o-3", "SKU-9"), errc::not_for_sale, "items[0].sku");
  auto mixed = unpriced_order("o-4", "SKU-1");
  mixed.lines.push_back({"SKU-U", 1, events::unpriced});
  refused(mixed, errc::currency_mismatch, "items[1].sku");
  auto other = unpriced_order("o-5", "SKU-1");
  other.currency = "USD";
  refused(other, errc::currency_mismatch, "currency");
  other.currency = "XYZ";
  refused(other, errc::invalid_argument, "currency");
  // A withdrawn SKU is not for sale.
  REQUIRE_FALSE(cat->withdraw("SKU-2", "ops"));
  refused(unpriced_order("o-6", "SKU-2"), errc::not_for_sale, "items[0].sku");
  // A catalogue that no longer accepts USD does not sell what is priced in it.
  auto eur_only = actors::catalog::open(store, {"EUR"});
  REQUIRE(eur_only);
  auto usd = unpriced_order("o-7", "SKU-U");
  CHECK(code_of((*eur_only)->price(usd)) == errc::not_for_sale);
}

TEST_CASE_METHOD(catalog_fixture, "a priced pipeline records the catalogue's price and charges it", "[catalog][pipeline]") {
  start_priced();
  REQUIRE(cat->set("SKU-1", 1999, "EUR", "ops"));
  set_stock("SKU-1", 10);
  auto before = store->last_position();
  auto attack = unpriced_order("o-1", "SKU-1", 5);
  attack.lines[0].unit_price_cents = 0;
  auto refused = place(attack);
  REQUIRE_FALSE(refused);
  CHECK(code_of(refused.error()) == errc::price_changed);
  CHECK(store->last_position() == before);
  CHECK(types("order-o-1").empty());
  CHECK(code_of(place(unpriced_order("o-1", "SKU-9")).error()) == errc::not_for_sale);
  CHECK(store->last_position() == before);

  auto v = place(unpriced_order("o-1", "SKU-1", 2));
  REQUIRE(v);
  CHECK(v->created);
  CHECK(v->total_cents == 2 * 1999);
  auto ev = placed("o-1");
  CHECK(ev.lines[0].unit_price_cents == 1999);
  CHECK(ev.currency == "EUR");
  CHECK(ev.total_cents == 3998);
  advance(200ms);
  CHECK(status("o-1") == "completed");
  auto reader = store->read_stream("payment-o-1");
  REQUIRE(reader.next());
  auto auth = reader.current().decode_payload();
  REQUIRE(auth);
  CHECK(std::get<events::payment_authorized>(*auth).amount_cents == 3998);
  // A later price change leaves the placed order as it was, and a retry of
  // it (with the old price) answers the order, not a price_changed.
  REQUIRE(cat->set("SKU-1", 2999, "EUR", "ops"));
  auto retry = unpriced_order("o-1", "SKU-1", 2);
  retry.lines[0].unit_price_cents = 1999;
  auto again = place(retry);
  REQUIRE(again);
  CHECK_FALSE(again->created);
  CHECK(again->total_cents == 3998);
  CHECK(audit().ok());
}

TEST_CASE_METHOD(catalog_fixture, "an order id is never answered with another customer's order", "[catalog][pipeline]") {
  start_priced();
  REQUIRE(cat->set("SKU-1", 1000, "EUR", "ops"));
  set_stock("SKU-1", 10);
  // Two customers race for a new id: the second is refused once the first
  // is recorded (it waited on the saga while order_placed was written).
  auto mine = unpriced_order("bf-1", "SKU-1");
  auto theirs = mine;
  theirs.customer_id = "customer-2";
  auto first = ask<order_view>(p->orders(), mine);
  auto second = ask<order_view>(p->orders(), theirs);
  run();
  REQUIRE(first->has_value());
  REQUIRE(**first);
  CHECK((**first)->created);
  REQUIRE(second->has_value());
  REQUIRE_FALSE(**second);
  CHECK(code_of((**second).error()) == errc::order_id_taken);
  // Once in flight and once ended: the same answers.
  auto in_flight = place(theirs);
  REQUIRE_FALSE(in_flight);
  CHECK(code_of(in_flight.error()) == errc::order_id_taken);
  advance(200ms);
  CHECK(status("bf-1") == "completed");
  auto ended = place(theirs);
  REQUIRE_FALSE(ended);
  CHECK(code_of(ended.error()) == errc::order_id_taken);
  // The owner with another body: taken too; with the same body: its order.
  auto changed = mine;
  changed.lines[0].quantity = 2;
  CHECK(code_of(place(changed).error()) == errc::order_id_taken);
  changed = mine;
  changed.shipping_address.city = "Paris";
  CHECK(code_of(place(changed).error()) == errc::order_id_taken);
  changed = mine;
  changed.currency = "USD";
  CHECK(code_of(place(changed).error()) == errc::order_id_taken);
  auto same = place(mine);
  REQUIRE(same);
  CHECK_FALSE(same->created);
  CHECK(same->status == "completed");
  CHECK(types("order-bf-1").size() == 5);
  CHECK(placed("bf-1").customer_id == "customer-1");
}

TEST_CASE_METHOD(pipeline_fixture, "a store that cannot write answers placements and cancels with storage_failure at once", "[pipeline][faults]") {
  auto faults = std::make_shared<storage::io_faults>();
  storage::options opts;
  opts.path = dir.sub("faulty");
  opts.durable = storage::durability::wal;
  opts.faults = faults;
  auto opened = storage::event_store::open(opts);
  REQUIRE(opened);
  store = std::shared_ptr<storage::event_store>(std::move(*opened));
  start();
  set_stock("SKU-1", 10);
  REQUIRE(place(order("o-1", "SKU-1")));
  advance(200ms);
  REQUIRE(status("o-1") == "completed");
  auto before = store->last_position();
  faults->fail_writes = true;
  // The caller gets the error, not a timeout; no order exists; the saga
  // that could not record order_placed is not re-driven (nothing to drive).
  auto v = place(order("o-2", "SKU-1"));
  REQUIRE_FALSE(v);
  CHECK(code_of(v.error()) == errc::storage_failure);
  CHECK(store->last_position() == before);
  CHECK(p->metrics().value("sagas.crashed")->load() == 0);
  auto again = place(order("o-3", "SKU-1"));
  REQUIRE_FALSE(again);
  CHECK(code_of(again.error()) == errc::storage_failure);
  CHECK(types("order-o-2").empty());
  CHECK(p->metrics().value("sagas.in_flight")->load() == 0);
}

TEST_CASE_METHOD(pipeline_fixture, "an order stream that does not fold is quarantined at start, the others recover", "[pipeline][recovery]") {
  storage::options opts;
  opts.path = dir.sub("poisoned");
  opts.durable = storage::durability::wal;
  opts.validate_payloads = false; // to store what no reader decodes
  auto opened = storage::event_store::open(opts);
  REQUIRE(opened);
  store = std::shared_ptr<storage::event_store>(std::move(*opened));
  // A healthy order that a crash left at order_placed, and a poisoned one.
  auto healthy = order("ok-1", "SKU-1");
  events::order_placed placed{healthy.order_id, healthy.customer_id, healthy.lines,
                              healthy.currency, healthy.shipping_address, false,
                              events::total_cents(healthy.lines)};
  REQUIRE(store->append("order-ok-1", storage::expected_version::no_stream(),
                        {storage::new_event::from(events::event{placed},
                                                  events::event_id::from_seed(9, 1), epoch_us)}));
  auto bad = storage::new_event::from(events::event{placed}, events::event_id::from_seed(9, 2),
                                      epoch_us);
  bad.payload = "\xff\xff\xff\xff not cereal";
  REQUIRE(store->append("order-poison-1", storage::expected_version::no_stream(), {bad}));
  start();
  CHECK(p->recovered().quarantined == 1);
  REQUIRE(p->recovered().quarantine.size() == 1);
  CHECK(p->recovered().quarantine[0].first == "order-poison-1");
  CHECK(p->recovered().redriven == 1);
  set_stock("SKU-1", 5);
  advance(300ms);
  CHECK(status("ok-1") != "placed"); // re-driven, not stuck behind the poison
  CHECK(p->metrics().value("sagas.crashed")->load() == 0);
}
