// The node's pure parts: request parsing, tokens, the rate limit, the
// Prometheus text format. The real process is tested in node_tests.cpp.

#include <catch2/catch.hpp>

#include <fstream>

#include <jwt.h>
#include <unistd.h>

#include <string>

#include <nlohmann/json.hpp>

#include "auth.hpp"
#include "keel/events/error.hpp"
#include "metrics.hpp"
#include "order_json.hpp"
#include "rate_limiter.hpp"

using namespace keel;
using nlohmann::json;

namespace {

json good_order() {
  return json::parse(R"({"order_id":"o-1","customer_id":"c-1",
    "items":[{"sku":"sku-1","quantity":2,"unit_price_cents":1999}],
    "currency":"EUR","shipping_address":{"name":"A","street":"S 1","city":"C",
    "postal_code":"1","country":"DE"},"premium":true})");
}

runtime::api_error error_of(const std::string& body) {
  std::optional<bool> premium;
  auto r = runtime::parse_place_order(body, premium);
  REQUIRE(std::holds_alternative<runtime::api_error>(r));
  return std::get<runtime::api_error>(r);
}

} // namespace

TEST_CASE("a valid order body parses into place_order", "[node][json]") {
  std::optional<bool> premium;
  auto r = runtime::parse_place_order(good_order().dump(), premium);
  REQUIRE(std::holds_alternative<events::place_order>(r));
  auto& cmd = std::get<events::place_order>(r);
  CHECK(cmd.order_id == "o-1");
  CHECK(cmd.customer_id == "c-1");
  REQUIRE(cmd.lines.size() == 1);
  CHECK(cmd.lines[0].quantity == 2);
  CHECK(cmd.lines[0].unit_price_cents == 1999);
  CHECK(cmd.currency == "EUR");
  CHECK(cmd.shipping_address.country == "DE");
  // The body's premium is reported, not taken: the token decides.
  CHECK_FALSE(cmd.premium);
  CHECK(premium == std::optional<bool>{true});
  // Price and currency may be left to the catalogue.
  auto j = good_order();
  j["items"][0].erase("unit_price_cents");
  j.erase("currency");
  j.erase("premium");
  r = runtime::parse_place_order(j.dump(), premium);
  REQUIRE(std::holds_alternative<events::place_order>(r));
  CHECK(std::get<events::place_order>(r).lines[0].unit_price_cents == events::unpriced);
  CHECK(std::get<events::place_order>(r).currency.empty());
  CHECK_FALSE(premium);
}

TEST_CASE("every bad order body is a 400 naming the field", "[node][json]") {
  struct bad_case {
    std::function<void(json&)> mutate;
    std::string field;
    std::string code;
  };
  std::vector<bad_case> cases = {
    {[](json& j) { j.erase("order_id"); }, "order_id", "missing_field"},
    {[](json& j) { j["customer_id"] = 7; }, "customer_id", "invalid_type"},
    {[](json& j) { j["items"] = json::array(); }, "items", "out_of_range"},
    {[](json& j) { j["items"] = "many"; }, "items", "invalid_type"},
    {[](json& j) { j["items"][0]["quantity"] = 0; }, "items[0].quantity", "out_of_range"},
    {[](json& j) { j["items"][0]["quantity"] = 1001; }, "items[0].quantity", "out_of_range"},
    {[](json& j) { j["items"][0]["quantity"] = -3; }, "items[0].quantity", "out_of_range"},
    {[](json& j) { j["items"][0]["quantity"] = 1.5; }, "items[0].quantity", "invalid_type"},
    {[](json& j) { j["items"][0]["quantity"] = "2"; }, "items[0].quantity", "invalid_type"},
    {[](json& j) { j["items"][0]["quantity"] = 18446744073709551615ull; }, "items[0].quantity",
     "out_of_range"},
    {[](json& j) { j["items"][0]["unit_price_cents"] = -1; }, "items[0].unit_price_cents",
     "out_of_range"},
    {[](json& j) { j["items"][0].erase("sku"); }, "items[0].sku", "missing_field"},
    {[](json& j) { j["items"][0]["sku"] = "has space"; }, "items[0].sku", "invalid_value"},
    {[](json& j) { j["items"][0]["sku"] = "a/b"; }, "items[0].sku", "invalid_value"},
    {[](json& j) { j["order_id"] = "bf-1?x"; }, "order_id", "invalid_value"},
    {[](json& j) { j["order_id"] = "bf#1"; }, "order_id", "invalid_value"},
    {[](json& j) { j["order_id"] = "bf%2F1"; }, "order_id", "invalid_value"},
    {[](json& j) { j["order_id"] = "bf/1"; }, "order_id", "invalid_value"},
    {[](json& j) { j["order_id"] = "b\u00e9f"; }, "order_id", "invalid_value"},
    {[](json& j) { j["customer_id"] = "c 1"; }, "customer_id", "invalid_value"},
    {[](json& j) { j["items"][0]["unit_price_cents"] = 10000000001; }, "items[0].unit_price_cents",
     "out_of_range"},
    {[](json& j) { j["currency"] = ""; }, "currency", "invalid_value"},
    {[](json& j) { j["items"][0]["colour"] = "red"; }, "items[0].colour", "unknown_field"},
    {[](json& j) { j["currency"] = "euro"; }, "currency", "invalid_value"},
    {[](json& j) { j.erase("shipping_address"); }, "shipping_address", "missing_field"},
    {[](json& j) { j["shipping_address"]["city"] = nullptr; }, "shipping_address.city",
     "invalid_type"},
    {[](json& j) { j["premium"] = "yes"; }, "premium", "invalid_type"},
    {[](json& j) { j["coupon"] = "X"; }, "coupon", "unknown_field"},
    {[](json& j) {
       auto line = j["items"][0];
       j["items"] = json::array();
       for (int i = 0; i < 101; ++i)
         j["items"].push_back(line);
     },
     "items", "too_many_lines"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    auto j = good_order();
    cases[i].mutate(j);
    INFO("case " << i << ": " << j.dump());
    auto err = error_of(j.dump());
    CHECK(err.status == 400);
    CHECK(err.field == cases[i].field);
    CHECK(err.code == cases[i].code);
    CHECK_FALSE(err.message.empty());
  }
}

TEST_CASE("malformed, non-object and oversized bodies are 400s on the body", "[node][json]") {
  // 1e309 overflows a double: nlohmann throws out_of_range, not parse_error
  // (a 500 until tests/fuzz/order_json_fuzz found it).
  for (std::string body : {"", "{", "{\"order_id\":", "[1,2]", "42", "\xff\xfe",
                           "{\"order_id\":1e309}", "[-1e400]"}) {
    auto err = error_of(body);
    CHECK(err.status == 400);
    CHECK(err.field == "body");
  }
  auto big = good_order();
  big["shipping_address"]["name"] = std::string(runtime::max_body_bytes, 'x');
  auto err = error_of(big.dump());
  CHECK(err.code == "body_too_large");
  CHECK(err.field == "body");
}

TEST_CASE("the error body is the API's JSON error object", "[node][json]") {
  auto j = json::parse(runtime::error_body({400, "out_of_range", "must be 1..1000", "items[0].quantity"}));
  CHECK(j["error"]["code"] == "out_of_range");
  CHECK(j["error"]["field"] == "items[0].quantity");
  CHECK(j["error"]["message"] == "must be 1..1000");
}

TEST_CASE("stock quantity bodies are checked", "[node][json]") {
  CHECK(std::get<std::int64_t>(runtime::parse_stock_quantity(R"({"quantity":25})")) == 25);
  for (auto body : {R"({"quantity":-1})", R"({"quantity":"5"})", R"({})", R"({"quantity":1,"x":2})",
                    R"({"quantity":2000000000})"})
    CHECK(std::holds_alternative<runtime::api_error>(runtime::parse_stock_quantity(body)));
}

namespace {

/// A token with exactly `claims`, signed with `alg` and `key` (libjwt).
std::string sign(const std::string& claims, const std::string& key, jwt_alg_t alg = JWT_ALG_HS256) {
  jwt_t* jwt = nullptr;
  REQUIRE(jwt_new(&jwt) == 0);
  REQUIRE(jwt_add_grants_json(jwt, claims.c_str()) == 0);
  REQUIRE(jwt_set_alg(jwt, alg, reinterpret_cast<const unsigned char*>(key.data()),
                      static_cast<int>(key.size()))
          == 0);
  char* text = jwt_encode_str(jwt);
  std::string out = text ? text : "";
  std::free(text);
  jwt_free(jwt);
  return "Bearer " + out;
}

} // namespace

TEST_CASE("tokens: minted ones pass, forged, expired and odd ones are 401", "[node][auth]") {
  runtime::token_policy policy;
  policy.secret = "a-secret-of-at-least-thirty-two-bytes";
  const auto& secret = policy.secret;
  const std::int64_t now = 1'800'000'000;
  auto token = runtime::mint_token(secret, "cust-7", false, now, std::chrono::seconds(60));
  REQUIRE_FALSE(token.empty());
  auto ok = runtime::authenticate("Bearer " + token, policy, now + 1);
  REQUIRE(std::holds_alternative<runtime::principal>(ok));
  CHECK(std::get<runtime::principal>(ok).subject == "cust-7");
  CHECK_FALSE(std::get<runtime::principal>(ok).admin);

  auto admin = runtime::authenticate(
    "Bearer " + runtime::mint_token(secret, "ops", true, now, std::chrono::seconds(60)), policy, now);
  REQUIRE(std::holds_alternative<runtime::principal>(admin));
  CHECK(std::get<runtime::principal>(admin).admin);

  auto why = [&](const std::string& header, std::int64_t at) -> std::string {
    auto r = runtime::authenticate(header, policy, at);
    return std::holds_alternative<runtime::api_error>(r) ? std::get<runtime::api_error>(r).message : "ok";
  };
  auto status_of = [&](const std::string& header, std::int64_t at) {
    return why(header, at) == "ok" ? 200 : 401;
  };
  CHECK(status_of("", now) == 401);
  CHECK(status_of("Basic abc", now) == 401);
  CHECK(status_of("Bearer ", now) == 401);
  CHECK(status_of("Bearer not.a.jwt", now) == 401);
  CHECK(status_of("Bearer " + token, now + 61 + 60) == 401); // expired (beyond the skew)
  auto other = runtime::mint_token("another-secret-of-thirty-two-bytes!", "cust-7", true, now,
                                std::chrono::seconds(60));
  CHECK(status_of("Bearer " + other, now) == 401); // wrong key
  // Flipping one character of the signature breaks it.
  auto tampered = token;
  tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
  CHECK(status_of("Bearer " + tampered, now) == 401);
  // alg "none" with the payload of an admin token.
  auto dot = other.find('.');
  auto payload = other.substr(dot + 1, other.rfind('.') - dot - 1);
  CHECK(status_of("Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0." + payload + ".", now) == 401);

  // Claims: exp required and an integer, bounded lifetime, nbf / iat not in the future.
  auto exp = std::to_string(now + 600);
  CHECK(why(sign(R"({"sub":"c-1","exp":)" + exp + "}", secret), now) == "ok");
  CHECK(why(sign(R"({"sub":"c-1"})", secret), now).find("exp") != std::string::npos);
  CHECK(why(sign(R"({"sub":"c-1","exp":1.9e9})", secret), now).find("integer") != std::string::npos);
  CHECK(why(sign(R"({"sub":"c-1","exp":")" + exp + "\"}", secret), now).find("integer")
        != std::string::npos);
  CHECK(why(sign(R"({"sub":"c-1","exp":)" + std::to_string(now + 400 * 24 * 3600) + "}", secret), now)
          .find("longer") != std::string::npos);
  CHECK(why(sign(R"({"sub":"c-1","exp":)" + exp + R"(,"nbf":)" + std::to_string(now + 300) + "}",
                 secret),
            now)
          .find("nbf") != std::string::npos);
  CHECK(why(sign(R"({"sub":"c-1","exp":)" + exp + R"(,"iat":)" + std::to_string(now + 300) + "}",
                 secret),
            now)
          .find("iat") != std::string::npos);
  CHECK(why(sign(R"({"sub":"c-1","exp":)" + exp + R"(,"nbf":)" + std::to_string(now + 30) + "}",
                 secret),
            now)
        == "ok"); // within the skew
  // Types of sub and role; other algorithms with the same key.
  CHECK(status_of(sign(R"({"sub":7,"exp":)" + exp + "}", secret), now) == 401);
  CHECK(status_of(sign(R"({"sub":"c-1","role":"root","exp":)" + exp + "}", secret), now) == 401);
  CHECK(status_of(sign(R"({"sub":"c-1","role":["admin"],"exp":)" + exp + "}", secret), now) == 401);
  CHECK(status_of(sign(R"({"sub":"c-1","exp":)" + exp + "}", secret, JWT_ALG_HS512), now) == 401);
  CHECK(status_of("Bearer " + std::string(9000, 'a'), now) == 401);
  // The tier: premium only when the token says so; anything else is refused.
  auto tier = [&](const std::string& claims) {
    auto r = runtime::authenticate(sign(claims, secret), policy, now);
    REQUIRE(std::holds_alternative<runtime::principal>(r));
    return std::get<runtime::principal>(r).premium;
  };
  CHECK_FALSE(tier(R"({"sub":"c-1","exp":)" + exp + "}"));
  CHECK_FALSE(tier(R"({"sub":"c-1","tier":"standard","exp":)" + exp + "}"));
  CHECK(tier(R"({"sub":"c-1","tier":"premium","exp":)" + exp + "}"));
  CHECK(status_of(sign(R"({"sub":"c-1","tier":"gold","exp":)" + exp + "}", secret), now) == 401);
  CHECK(status_of(sign(R"({"sub":"c-1","tier":true,"exp":)" + exp + "}", secret), now) == 401);
  auto vip = runtime::authenticate(
    "Bearer " + runtime::mint_token(secret, "c-9", false, now, std::chrono::seconds(60), "", "", true),
    policy, now);
  REQUIRE(std::holds_alternative<runtime::principal>(vip));
  CHECK(std::get<runtime::principal>(vip).premium);
  // Issuer and audience when configured.
  policy.issuer = "keel";
  policy.audience = "orders";
  CHECK(status_of(sign(R"({"sub":"c-1","exp":)" + exp + "}", secret), now) == 401);
  CHECK(status_of(sign(R"({"sub":"c-1","iss":"keel","aud":"other","exp":)" + exp + "}", secret), now)
        == 401);
  CHECK(status_of(sign(R"({"sub":"c-1","iss":"keel","aud":["x","orders"],"exp":)" + exp + "}", secret),
                  now)
        == 200);
  CHECK(status_of("Bearer " + runtime::mint_token(secret, "c-1", false, now, std::chrono::seconds(60),
                                               "keel", "orders"),
                  now)
        == 200);
  // A short secret checks nothing.
  policy.secret = "short";
  CHECK(why("Bearer " + runtime::mint_token("short", "c-1", false, now, std::chrono::seconds(60)), now)
          .find("no JWT secret") != std::string::npos);
}

TEST_CASE("secrets come from a file or KEEL_JWT_SECRET and have at least 32 bytes", "[node][auth]") {
  auto path = std::string{"/tmp/keel-secret-test-"} + std::to_string(::getpid());
  ::unsetenv("KEEL_JWT_SECRET");
  auto none = runtime::load_secret("");
  REQUIRE_FALSE(none);
  CHECK(describe(none.error()).find("no JWT secret") != std::string::npos);
  std::ofstream{path} << "too-short\n";
  auto r = runtime::load_secret(path);
  REQUIRE_FALSE(r);
  CHECK(describe(r.error()).find("at least 32") != std::string::npos);
  std::ofstream{path} << std::string(40, 'k') << "\n";
  r = runtime::load_secret(path);
  REQUIRE(r);
  CHECK(*r == std::string(40, 'k')); // the trailing newline is not part of it
  ::unlink(path.c_str());
  CHECK_FALSE(runtime::load_secret(path));
  ::setenv("KEEL_JWT_SECRET", "keel-demo-secret", 1);
  CHECK_FALSE(runtime::load_secret(""));
  ::setenv("KEEL_JWT_SECRET", std::string(32, 'e').c_str(), 1);
  r = runtime::load_secret("");
  REQUIRE(r);
  CHECK(*r == std::string(32, 'e'));
  ::unsetenv("KEEL_JWT_SECRET");
  CHECK(runtime::check_secret(std::string(31, 'x'), "given"));
  CHECK_FALSE(runtime::check_secret(std::string(32, 'x'), "given"));
}

TEST_CASE("the rate limit allows the limit per window and says when to retry", "[node][rate]") {
  runtime::rate_limiter limiter{10, std::chrono::milliseconds(1000)};
  std::int64_t t = 5000; // the start of a window
  for (int i = 0; i < 10; ++i)
    CHECK(limiter.acquire("a", t + i) == 0);
  auto wait = limiter.acquire("a", t + 10);
  CHECK(wait > 0);
  CHECK(wait <= 1000);
  CHECK(limiter.acquire("b", t + 10) == 0); // per key
  // Halfway through the next window, half of the previous one still counts:
  // 10 * 0.5 = 5 used, so 5 more fit.
  int allowed = 0;
  for (int i = 0; i < 20; ++i)
    allowed += limiter.acquire("a", t + 1500) == 0;
  CHECK(allowed == 5);
  // Two windows later everything is forgotten.
  CHECK(limiter.acquire("a", t + 3000) == 0);
  CHECK(limiter.rejected() == 16);
}

TEST_CASE("the exposition format writes families, labels and histograms", "[node][metrics]") {
  runtime::histogram h{{0.01, 0.1, 1}};
  h.observe(0.005);
  h.observe(0.05);
  h.observe(0.05);
  h.observe(5);
  runtime::exposition out;
  out.family("keel_x_total", "counter", "Things.");
  out.sample("keel_x_total", {{"name", "a\"b\\c\nd"}}, 3);
  out.family("keel_lat_seconds", "histogram", "Latency.");
  out.samples("keel_lat_seconds", {{"route", "get"}}, h);
  auto text = out.take();
  CHECK(text.find("# TYPE keel_x_total counter\n") != std::string::npos);
  CHECK(text.find("keel_x_total{name=\"a\\\"b\\\\c\\nd\"} 3\n") != std::string::npos);
  CHECK(text.find("keel_lat_seconds_bucket{route=\"get\",le=\"0.01\"} 1\n") != std::string::npos);
  CHECK(text.find("keel_lat_seconds_bucket{route=\"get\",le=\"0.1\"} 3\n") != std::string::npos);
  CHECK(text.find("keel_lat_seconds_bucket{route=\"get\",le=\"+Inf\"} 4\n") != std::string::npos);
  CHECK(text.find("keel_lat_seconds_count{route=\"get\"} 4\n") != std::string::npos);
  CHECK(text.find("keel_lat_seconds_sum{route=\"get\"} 5.105\n") != std::string::npos);
  CHECK(h.quantile(0.5) == Approx(0.055).margin(0.05));
}

TEST_CASE("fault bodies are checked like order bodies", "[node][json]") {
  auto ok = runtime::parse_faults(R"({"provider":"gateways","error_rate":0.5,"latency_ms":1000})");
  REQUIRE(std::holds_alternative<runtime::fault_request>(ok));
  auto& f = std::get<runtime::fault_request>(ok);
  CHECK(f.provider == "gateways");
  CHECK(f.error_rate == 0.5);
  CHECK(f.latency_ms == 1000);
  CHECK(f.latency_p99_ms == -1);
  struct bad_case {
    const char* body;
    const char* field;
  };
  for (auto x : {bad_case{R"({"error_rate":0.1})", "provider"},
                 bad_case{R"({"provider":"all","error_rate":7})", "error_rate"},
                 bad_case{R"({"provider":"all","latency_ms":-1})", "latency_ms"},
                 bad_case{R"({"provider":"all","outage_hangs":1})", "outage_hangs"},
                 bad_case{R"({"provider":"all","colour":1})", "colour"},
                 bad_case{R"({"provider":)", "body"}}) {
    INFO(x.body);
    auto r = runtime::parse_faults(x.body);
    REQUIRE(std::holds_alternative<runtime::api_error>(r));
    CHECK(std::get<runtime::api_error>(r).field == x.field);
    CHECK(std::get<runtime::api_error>(r).status == 400);
  }
}
