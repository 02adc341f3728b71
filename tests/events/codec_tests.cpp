#include <catch2/catch.hpp>

#include <cstring>

#include "keel/events/codec.hpp"
#include "keel/events/error.hpp"
#include "keel/events/ids.hpp"
#include "keel/events/json.hpp"
#include "keel/events/order_status.hpp"
#include "keel/events/correlation.hpp"
#include "keel/events/streams.hpp"
#include "random_archive.hpp"
#include "samples.hpp"

#include "alloc_tracker.hpp"

using namespace keel;
using namespace keel::events;

namespace {

std::string le32(std::uint32_t x) {
  std::string out(4, '\0');
  std::memcpy(out.data(), &x, 4);
  return out;
}

} // namespace

TEST_CASE("every event type survives seeded random encode/decode round trips", "[codec]") {
  const std::uint64_t base_seed = GENERATE(take(1, random(1u, 1'000'000u)));
  for (std::uint64_t round = 0; round < 50; ++round) {
    for (const auto& info : event_types()) {
      auto seed = base_seed * 1000 + round;
      INFO("seed " << seed << ", type " << info.name);
      auto ev = test::random_event(info.index, seed);
      auto bytes = encode(ev);
      auto decoded = decode(info.name, info.current_version, bytes);
      REQUIRE(decoded);
      CHECK(decoded->index() == info.index);
      CHECK(encode(*decoded) == bytes);
      CHECK(to_json(*decoded) == to_json(ev));
    }
  }
}

TEST_CASE("a forged length prefix fails fast without allocating by it", "[codec]") {
  if (!test::tracking_allocations())
    WARN("allocation sizes are asserted in the Release build, not under ASan");
  // order_rejected = {order_id: string, reason: string}
  std::string forged = le32(0xfffffff0u) + "abc";
  test::track_allocations(true);
  auto result = decode("order_rejected", 1, forged);
  test::track_allocations(false);
  REQUIRE_FALSE(result);
  CHECK(code_of(result.error()) == errc::malformed_payload);
  CHECK_THAT(describe(result.error()), Catch::Contains("length prefix 4294967280"));
  CHECK(test::largest_allocation() < 4096);

  // A vector count larger than the remaining bytes: order_placed's lines.
  std::string lines_forged = le32(1) + "o" + le32(1) + "c" + le32(50'000'000) + "xyz";
  test::track_allocations(true);
  auto placed = decode("order_placed", 2, lines_forged);
  test::track_allocations(false);
  REQUIRE_FALSE(placed);
  CHECK(code_of(placed.error()) == errc::malformed_payload);
  CHECK(test::largest_allocation() < 4096);
}

TEST_CASE("truncated, trailing and out-of-range bytes are malformed payloads", "[codec]") {
  auto bytes = encode(test::sample_event(0));
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    auto result = decode("order_placed", 2, std::string_view{bytes}.substr(0, cut));
    INFO("cut at " << cut);
    REQUIRE_FALSE(result);
    CHECK(code_of(result.error()) == errc::malformed_payload);
  }
  auto trailing = decode("order_placed", 2, bytes + "x");
  REQUIRE_FALSE(trailing);
  CHECK_THAT(describe(trailing.error()), Catch::Contains("trailing"));

  // premium is a bool: any byte but 0 and 1 is refused.
  auto placed = std::get<order_placed>(test::sample_event(0));
  placed.premium = false;
  auto good = encode(event{placed});
  // The bool sits right before the trailing i64 total.
  auto bad = good;
  bad[bad.size() - 9] = 7;
  auto bool_result = decode("order_placed", 2, bad);
  REQUIRE_FALSE(bool_result);
  CHECK_THAT(describe(bool_result.error()), Catch::Contains("bool byte 7"));

  // Breaker states other than closed / open / half_open are refused.
  auto breaker_sample = breaker_transitioned{"payment.primary", breaker_state::closed,
                                             breaker_state::open, 10, "10 failures"};
  auto bt = encode(event{breaker_sample});
  auto name_len = breaker_sample.breaker.size();
  bt[4 + name_len] = 9; // `from`
  auto breaker = decode("breaker_transitioned", 1, bt);
  REQUIRE_FALSE(breaker);
  CHECK(code_of(breaker.error()) == errc::malformed_payload);
}

TEST_CASE("unknown types and schema versions are reported, not guessed", "[codec]") {
  auto unknown = decode("order_teleported", 1, "");
  REQUIRE_FALSE(unknown);
  CHECK(code_of(unknown.error()) == errc::unknown_event_type);
  auto future = decode("order_placed", 3, encode(test::sample_event(0)));
  REQUIRE_FALSE(future);
  CHECK(code_of(future.error()) == errc::unknown_event_type);
  CHECK_THAT(describe(future.error()), Catch::Contains("reads 1..2"));
  auto zero = decode("order_placed", 0, "");
  REQUIRE_FALSE(zero);
}

TEST_CASE("schema 1 of order_placed upcasts with the defaults it implied", "[codec]") {
  auto v2 = std::get<order_placed>(test::sample_event(0));
  auto v1_bytes = encode(event{v2}, 1);
  CHECK(v1_bytes.size() < encode(event{v2}).size());
  auto decoded = decode("order_placed", 1, v1_bytes);
  REQUIRE(decoded);
  const auto& x = std::get<order_placed>(*decoded);
  CHECK(x.order_id == v2.order_id);
  CHECK(x.lines == v2.lines);
  CHECK(x.shipping_address == v2.shipping_address);
  CHECK(x.currency == "EUR");
  CHECK(x.premium == false);
  CHECK(x.total_cents == v2.total_cents);
}

TEST_CASE("random bytes never crash the decoder", "[codec]") {
  std::mt19937_64 rng{GENERATE(take(1, random(1u, 1'000'000u)))};
  for (int i = 0; i < 20'000; ++i) {
    std::string bytes(rng() % 64, '\0');
    for (auto& c : bytes)
      c = static_cast<char>(rng() % 256);
    const auto& types = event_types();
    const auto& info = types[rng() % types.size()];
    auto result = decode(info.name, info.current_version, bytes);
    if (!result)
      CHECK(code_of(result.error()) == errc::malformed_payload);
  }
}

TEST_CASE("place_order commands round-trip and validate field by field", "[codec][commands]") {
  place_order cmd{"o-1", "c-1", {{"SKU-1", 3, 250}}, "EUR", {"A", "B", "C", "D", "E"}, true};
  CHECK_FALSE(validate(cmd));
  auto decoded = decode_place_order(encode(cmd));
  REQUIRE(decoded);
  CHECK(decoded->lines == cmd.lines);
  CHECK(decoded->premium);

  auto field_of = [](const place_order& c) { return describe(validate(c)); };
  auto bad = cmd;
  bad.lines[0].quantity = 0;
  CHECK_THAT(field_of(bad), Catch::Contains("items[0].quantity"));
  bad = cmd;
  bad.lines[0].quantity = 1001;
  CHECK_THAT(field_of(bad), Catch::Contains("items[0].quantity"));
  bad = cmd;
  bad.lines.clear();
  CHECK_THAT(field_of(bad), Catch::Contains("items"));
  bad = cmd;
  bad.lines.assign(101, cmd.lines[0]);
  CHECK_THAT(field_of(bad), Catch::Contains("items"));
  bad = cmd;
  bad.lines[0].unit_price_cents = -2;
  CHECK_THAT(field_of(bad), Catch::Contains("unit_price_cents"));
  bad.lines[0].unit_price_cents = max_unit_price_cents + 1;
  CHECK_THAT(field_of(bad), Catch::Contains("unit_price_cents"));
  bad.lines[0].unit_price_cents = unpriced; // the catalogue's price, when priced
  CHECK_FALSE(validate(bad));
  bad.currency.clear(); // the catalogue's currency
  CHECK_FALSE(validate(bad));
  bad = cmd;
  bad.currency = "eur";
  CHECK_THAT(field_of(bad), Catch::Contains("currency"));
  bad = cmd;
  bad.order_id = "has space";
  CHECK_THAT(field_of(bad), Catch::Contains("order_id"));
  CHECK(code_of(validate(bad)) == errc::invalid_argument);
  // Keys appear unescaped in URLs, stream ids and token subjects: nothing
  // that would need escaping is accepted.
  for (const auto& key : std::vector<std::string>{"a/b", "a?b", "a#b", "a%2Fb", "cafÃ©", "a+b", "a b", "a&b", "",
                          std::string(max_key_size + 1, 'x')}) {
    INFO("key '" << key << "'");
    bad = cmd;
    bad.order_id = key;
    CHECK_THAT(field_of(bad), Catch::Contains("order_id"));
    bad = cmd;
    bad.customer_id = key;
    CHECK_THAT(field_of(bad), Catch::Contains("customer_id"));
    bad = cmd;
    bad.lines[0].sku = key;
    CHECK_THAT(field_of(bad), Catch::Contains("items[0].sku"));
  }
  // The field the error names, split from its reason (the HTTP API's `field`).
  bad = cmd;
  bad.lines[0].quantity = 0;
  auto split = split_field(validate(bad));
  CHECK(split.field == "items[0].quantity");
  CHECK(split.reason == "must be 1..1000");
  split = split_field(make_error(errc::invalid_argument, "order o-1 is not priced"));
  CHECK(split.field.empty());
  CHECK(split.reason == "order o-1 is not priced");
  CHECK(split_field(make_error(errc::invalid_argument, "a b: c")).field.empty());
  CHECK(split_field(caf::error{}).reason.empty());
  bad = cmd;
  bad.order_id = "Order_2026.12-06:0001";
  bad.customer_id = std::string(max_key_size, 'c');
  CHECK_FALSE(validate(bad));
}

TEST_CASE("stream names are built and recognized in one place", "[events][streams]") {
  CHECK(order_stream("o-1") == "order-o-1");
  CHECK(stock_stream("sku-1") == "stock-sku-1");
  CHECK(payment_stream("o-1") == "payment-o-1");
  CHECK(shipment_stream("o-1") == "shipment-o-1");
  CHECK(catalog_stream("sku-1") == "catalog-sku-1");
  CHECK(breaker_stream("gw-primary") == "$system-breaker-gw-primary");
  CHECK(pool_stream("gw-primary") == "$system-pool-gw-primary");
  struct row {
    std::string stream;
    stream_kind kind;
    std::string key;
  };
  for (const auto& r : std::vector<row>{
         {"order-o-1", stream_kind::order, "o-1"},
         // An order id may itself look like another prefix.
         {"order-stock-1", stream_kind::order, "stock-1"},
         {"stock-sku-1", stream_kind::stock, "sku-1"},
         {"payment-o-1", stream_kind::payment, "o-1"},
         {"shipment-o-1", stream_kind::shipment, "o-1"},
         {"catalog-sku-1", stream_kind::catalog, "sku-1"},
         {"$system-breaker-payment", stream_kind::breaker, "payment"},
         {"$system-pool-gw-primary", stream_kind::pool, "gw-primary"},
         {"$system-supervisor", stream_kind::supervisor, ""},
         // A prefix without a key, and names outside the conventions.
         {"order-", stream_kind::other, ""},
         {"$system-other", stream_kind::other, ""},
         {"orders-1", stream_kind::other, ""},
         {"", stream_kind::other, ""},
       }) {
    INFO(r.stream);
    CHECK(kind_of_stream(r.stream) == r.kind);
    CHECK(key_of_stream(r.stream) == r.key);
  }
  // Every event names its stream through the same functions.
  CHECK(stream_of(event{order_rejected{"o-9", "x"}}) == order_stream("o-9"));
  CHECK(kind_of_stream(stream_of(event{order_rejected{"o-9", "x"}})) == stream_kind::order);
}

TEST_CASE("order statuses have one name each, parsed back to the same status", "[events][status]") {
  int terminal = 0;
  for (auto i = static_cast<int>(order_status::none); i <= static_cast<int>(order_status::cancelled);
       ++i) {
    auto x = static_cast<order_status>(i);
    INFO(to_string(x));
    REQUIRE(parse_order_status(to_string(x)) == x);
    terminal += is_terminal(x) ? 1 : 0;
  }
  CHECK(terminal == 3);
  CHECK(is_terminal(order_status::cancelled));
  CHECK_FALSE(is_terminal(order_status::pending_payment));
  CHECK(parse_order_status("pending_payment") == order_status::pending_payment);
  CHECK_FALSE(parse_order_status("Completed"));
  CHECK_FALSE(parse_order_status(""));
  CHECK_FALSE(parse_order_status("invalid"));
}

TEST_CASE("the stable hash never changes and an order's correlation id is derived from its id",
          "[events][correlation]") {
  // Stored correlation ids, shards and references depend on these values.
  CHECK(keel::events::stable_hash("") == 0x14650fb0739d0383ULL);
  CHECK(keel::events::stable_hash("a") == 0x44bd8ad473cd9906ULL);
  auto c = keel::events::correlation_of("o-1");
  CHECK(c.valid());
  CHECK(c == keel::events::correlation_of(std::string{"o-1"}));
  CHECK(c != keel::events::correlation_of("o-2"));
  CHECK(c == keel::events::event_id::from_seed(keel::events::stable_hash("o-1"), 0));
}
