// The HTTP provider against keel-sim's server (in this process, real
// sockets), and the providers file of keel-node.

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <thread>

#include <httplib.h>

#include <catch2/catch.hpp>

#include "keel/actors/http_provider.hpp"
#include "keel/events/error.hpp"
#include "node.hpp"
#include "sim_server.hpp"
#include "temp_dir.hpp"

using namespace keel;
using namespace std::chrono_literals;
using outcome = actors::provider_reply::outcome;

namespace {

struct sim_fixture {
  std::unique_ptr<sim::sim_server> server;

  explicit sim_fixture(std::string key = "k-123") {
    sim::sim_config cfg;
    cfg.port = 0;
    cfg.api_key = std::move(key);
    cfg.gateways = {"gw"};
    cfg.carriers = {"ship"};
    cfg.threads = 16;
    auto s = sim::sim_server::start(cfg);
    REQUIRE(s);
    server = std::move(*s);
  }

  actors::http_provider_config config(const std::string& name) const {
    actors::http_provider_config c;
    c.name = name;
    c.base_url = "http://127.0.0.1:" + std::to_string(server->port()) + "/providers/" + name;
    c.api_key = "k-123";
    c.timeout = 2s;
    c.connections = 2;
    return c;
  }

  void faults(const std::string& name, void (*change)(actors::provider_faults&)) {
    auto* p = server->provider(name);
    REQUIRE(p);
    auto f = p->faults();
    change(f);
    p->faults(f);
  }
};

actors::provider_reply call(actors::provider& p, const std::string& op, const std::string& key) {
  std::promise<actors::provider_reply> done;
  p.call({op, key, 1250}, std::chrono::steady_clock::now(),
         [&done](actors::provider_reply r, actors::duration after) {
           CHECK(after == actors::duration::zero());
           done.set_value(std::move(r));
         });
  auto f = done.get_future();
  REQUIRE(f.wait_for(10s) == std::future_status::ready);
  return f.get();
}

actors::provider_ptr make(const actors::http_provider_config& c) {
  auto p = actors::make_http_provider(c);
  REQUIRE(p);
  return *p;
}

} // namespace

TEST_CASE("an HTTP provider gets approvals, the same reference for the same key, and delivery "
          "days from keel-sim",
          "[providers]") {
  sim_fixture sim;
  auto gw = make(sim.config("gw"));
  auto a = call(*gw, "authorize", "order-1/authorize");
  CHECK(a.result == outcome::ok);
  CHECK(a.reference.rfind("gw-", 0) == 0);
  CHECK(call(*gw, "authorize", "order-1/authorize").reference == a.reference);
  CHECK(sim.server->provider("gw")->distinct_successes() == 1);
  auto ship = make(sim.config("ship"));
  auto s = call(*ship, "schedule", "order-1/ship");
  CHECK(s.result == outcome::ok);
  CHECK(s.delivery_days >= 1);
  CHECK(s.delivery_days <= 5);
}

TEST_CASE("an HTTP provider maps declines, gateway errors, wrong keys, unknown operations and "
          "slow answers to the saga's outcomes",
          "[providers]") {
  sim_fixture sim;
  auto gw = make(sim.config("gw"));
  sim.faults("gw", [](auto& f) { f.decline_rate = 1.0; });
  auto declined = call(*gw, "authorize", "k1");
  CHECK(declined.result == outcome::declined);
  CHECK(declined.reason == "insufficient funds");
  sim.faults("gw", [](auto& f) { f.decline_rate = 0, f.error_rate = 1.0; });
  auto failed = call(*gw, "authorize", "k2");
  CHECK(failed.result == outcome::failed);
  CHECK(failed.reason == "HTTP 503: gateway error");
  sim.faults("gw", [](auto& f) { f.error_rate = 0; });
  CHECK(call(*gw, "schedule", "k3").reason == "HTTP 404: gw has no operation schedule");

  auto wrong = sim.config("gw");
  wrong.api_key = "not-the-key";
  auto refused = call(*make(wrong), "authorize", "k4");
  CHECK(refused.result == outcome::failed);
  CHECK(refused.reason == "HTTP 401: missing or wrong API key");

  sim.faults("gw", [](auto& f) { f.latency_median = f.latency_p99 = 3s; });
  auto slow = sim.config("gw");
  slow.timeout = 200ms;
  auto late = call(*make(slow), "authorize", "k5");
  CHECK(late.result == outcome::timed_out);
}

TEST_CASE("an HTTP provider fails calls at once when nothing listens, and refuses bad settings",
          "[providers]") {
  actors::http_provider_config c;
  c.name = "gw";
  c.base_url = "http://127.0.0.1:1/x";
  c.connect_timeout = 500ms;
  auto refused = call(*make(c), "authorize", "k");
  CHECK(refused.result == outcome::failed);

  auto bad = [](actors::http_provider_config x) {
    auto p = actors::make_http_provider(std::move(x));
    REQUIRE_FALSE(p);
    CHECK(code_of(p.error()) == errc::invalid_argument);
    return describe(p.error());
  };
  auto x = c;
  x.base_url = "ftp://host/x";
  CHECK_THAT(bad(x), Catch::Contains("scheme must be http or https"));
  x.base_url = "http:///x";
  CHECK_THAT(bad(x), Catch::Contains("has no host"));
  x = c;
  x.connections = 0;
  CHECK_THAT(bad(x), Catch::Contains("connections must be 1..1024"));
  x = c;
  x.name.clear();
  CHECK_THAT(bad(x), Catch::Contains("no name"));
}

TEST_CASE("a providers file names gateways in order and carriers, simulated or HTTP, and every "
          "mistake is named",
          "[providers]") {
  keel::temp_dir dir;
  auto key = dir.sub("key");
  std::ofstream{key} << "secret-key\n";
  auto ok = runtime::parse_providers(
    R"({"gateways": [{"name": "stripe", "type": "http", "base_url": "https://api.example/v1",
                      "api_key_file": ")" + key + R"(", "timeout_ms": 900, "connections": 4},
                     {"name": "backup", "type": "simulated"}],
        "carriers": [{"name": "dhl", "type": "simulated"}]})");
  REQUIRE(ok);
  REQUIRE(ok->gateways.size() == 2);
  CHECK(ok->gateways[0].kind == runtime::provider_spec::kind_t::http);
  CHECK(ok->gateways[0].http.name == "stripe");
  CHECK(ok->gateways[0].http.api_key == "secret-key");
  CHECK(ok->gateways[0].http.timeout == 900ms);
  CHECK(ok->gateways[0].http.connections == 4);
  CHECK(ok->gateways[1].kind == runtime::provider_spec::kind_t::simulated);
  CHECK(ok->carriers.at(0).http.name == "dhl");

  auto error_of = [](const std::string& text) {
    auto r = runtime::parse_providers(text);
    REQUIRE_FALSE(r);
    return describe(r.error());
  };
  const std::string carriers = R"("carriers": [{"name": "c", "type": "simulated"}])";
  CHECK_THAT(error_of("[]"), Catch::Contains("not a JSON object"));
  CHECK_THAT(error_of(R"({"gateways": [], )" + carriers + "}"),
             Catch::Contains("gateways: a list of at least one provider"));
  CHECK_THAT(error_of(R"({"gateways": [{"name": "g", "type": "simulated", "x": 1}], )" + carriers
                      + "}"),
             Catch::Contains("gateways[0].x: unknown field"));
  CHECK_THAT(error_of(R"({"gateways": [{"name": "c", "type": "simulated"}], )" + carriers + "}"),
             Catch::Contains("carriers[0].name: \"c\" is named twice"));
  CHECK_THAT(error_of(R"({"gateways": [{"name": "g", "type": "http"}], )" + carriers + "}"),
             Catch::Contains("gateways[0].base_url"));
  CHECK_THAT(error_of(R"({"gateways": [{"name": "g", "type": "grpc"}], )" + carriers + "}"),
             Catch::Contains("gateways[0].type"));
  CHECK_THAT(error_of(R"({"gateways": [{"name": "g h", "type": "simulated"}], )" + carriers + "}"),
             Catch::Contains("gateways[0].name"));
  CHECK_THAT(error_of(R"({"gateways": [{"name": "g", "type": "http", "base_url": "http://h",
                                        "timeout_ms": 0}], )"
                      + carriers + "}"),
             Catch::Contains("gateways[0].timeout_ms: must be an integer in 1..600000"));
  CHECK_THAT(error_of(R"({"gateways": [{"name": "g", "type": "http", "base_url": "http://h",
                                        "api_key_file": "/nonexistent/key"}], )"
                      + carriers + "}"),
             Catch::Contains("cannot read the API key file /nonexistent/key"));
}

TEST_CASE("an HTTP provider speaks TLS: verified against the server's certificate, refused when "
          "it cannot verify it",
          "[providers]") {
  keel::temp_dir dir;
  auto cert = dir.sub("cert.pem");
  auto key = dir.sub("key.pem");
  auto cmd = "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + key + " -out " + cert
             + " -days 1 -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 2>/dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
  httplib::SSLServer server{cert.c_str(), key.c_str()};
  REQUIRE(server.is_valid());
  server.Post("/pay/authorize", [](const httplib::Request& req, httplib::Response& res) {
    res.set_content(R"({"status":"approved","reference":"tls-)" + req.get_header_value("Idempotency-Key")
                      + R"("})",
                    "application/json");
  });
  auto port = server.bind_to_any_port("127.0.0.1");
  REQUIRE(port > 0);
  std::thread listener{[&server] { server.listen_after_bind(); }};
  actors::http_provider_config c;
  c.name = "gw-tls";
  c.base_url = "https://127.0.0.1:" + std::to_string(port) + "/pay";
  c.ca_file = cert;
  auto ok = call(*make(c), "authorize", "k1");
  CHECK(ok.result == outcome::ok);
  CHECK(ok.reference == "tls-k1");
  c.ca_file.clear(); // the system's CAs do not know this certificate
  auto refused = call(*make(c), "authorize", "k2");
  CHECK(refused.result == outcome::failed);
  c.verify_tls = false;
  CHECK(call(*make(c), "authorize", "k3").result == outcome::ok);
  server.stop();
  listener.join();
}

TEST_CASE("key files are read without trailing whitespace and endpoints split at the last colon",
          "[providers]") {
  keel::temp_dir dir;
  auto key = dir.sub("key");
  std::ofstream{key} << "k-1 \r\n";
  REQUIRE(runtime::read_key_file(key));
  CHECK(*runtime::read_key_file(key) == "k-1");
  std::ofstream{dir.sub("empty")} << "\n";
  CHECK_THAT(describe(runtime::read_key_file(dir.sub("empty")).error()), Catch::Contains("is empty"));
  CHECK_FALSE(runtime::read_key_file(dir.sub("missing")));
  std::string host;
  int port = -1;
  CHECK(runtime::split_endpoint("127.0.0.1:0", host, port));
  CHECK(host == "127.0.0.1");
  CHECK(port == 0);
  for (auto* bad : {"127.0.0.1", ":80", "h:", "h:65536", "h:8x"})
    CHECK_FALSE(runtime::split_endpoint(bad, host, port));
}

TEST_CASE("a port file is written whole, and a missing directory is an error", "[providers]") {
  keel::temp_dir dir;
  REQUIRE(runtime::write_port_file(dir.sub("p.port"), 43210));
  std::ifstream in{dir.sub("p.port")};
  int port = 0;
  CHECK((in >> port && port == 43210));
  CHECK_FALSE(std::filesystem::exists(dir.sub("p.port.tmp")));
  CHECK_FALSE(runtime::write_port_file(dir.sub("missing/p.port"), 1));
}
