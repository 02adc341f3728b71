#include "node_process.hpp"

#include <algorithm>
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "auth.hpp"
#include "keel/storage/event_store.hpp"

namespace keel::test {

server_process::server_process(std::string base, std::string program,
                               std::vector<std::string> args, std::string ready_path,
                               std::string host) {
  bench::server_process::options o;
  o.host = std::move(host);
  o.program = std::move(program);
  o.args = std::move(args);
  o.base = std::move(base);
  o.ready_path = std::move(ready_path);
  std::string why;
  p_ = bench::server_process::start(std::move(o), why);
  if (!p_)
    FAIL(why);
}

server_process::~server_process() = default;

void server_process::restart(const std::string& replace, const std::string& with) {
  REQUIRE_FALSE(p_->running());
  std::string why;
  if (!p_->restart(replace, with, why))
    FAIL(why);
}

httplib::Client server_process::client() const {
  httplib::Client c{host(), port()};
  c.set_keep_alive(true);
  c.set_connection_timeout(5, 0);
  c.set_read_timeout(30, 0);
  return c;
}

namespace {

/// The program that runs keel-node at `where`: keel-node, or the prefix's first word.
std::string node_program(const node_placement& where) {
  return where.prefix.empty() ? std::string{KEEL_NODE} : where.prefix.front();
}

std::vector<std::string> node_args(const std::string& data, std::vector<std::string> extra,
                                   const node_placement& where) {
  auto secret_file = data + ".secret";
  std::ofstream{secret_file} << test_secret << '\n';
  std::vector<std::string> args;
  if (!where.prefix.empty()) {
    args.assign(where.prefix.begin() + 1, where.prefix.end());
    args.emplace_back(KEEL_NODE);
  }
  args.insert(args.end(), {"run", "--data", data, "--http", where.host + ":0",
                           "--jwt-secret-file", secret_file, "--log-level", "info"});
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::vector<std::string> with_http(std::vector<std::string> extra) {
  extra.insert(extra.begin(), {"--http", "127.0.0.1:0"});
  return extra;
}

} // namespace

node_process::node_process(const std::string& data, std::vector<std::string> extra,
                           const node_placement& where)
  : server_process(data, node_program(where), node_args(data, std::move(extra), where), "/ready",
                   where.host),
    data_(data) {
}

node_process::~node_process() {
  ::unlink((data_ + ".secret").c_str());
}

sim_process::sim_process(const std::string& base, std::vector<std::string> extra)
  : server_process(base, KEEL_SIM, with_http(std::move(extra)), "/health") {
}

std::string bearer(const std::string& sub, bool admin) {
  using namespace std::chrono;
  auto now = duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
  return "Bearer " + runtime::mint_token(test_secret, sub, admin, now, std::chrono::hours(1));
}

httplib::Headers auth(const std::string& sub, bool admin) {
  return {{"Authorization", bearer(sub, admin)}};
}

httplib::Result post(httplib::Client& c, const std::string& path, const nlohmann::json& body,
                     const httplib::Headers& h) {
  return c.Post(path.c_str(), h, body.dump(), "application/json");
}

std::uint64_t head_of(const std::string& data) {
  auto store = storage::event_store::open_beside(data);
  REQUIRE(store);
  std::uint64_t n = 0;
  auto reader = (*store)->read_all();
  while (reader.next())
    n += reader.current().stream.rfind("$system-", 0) != 0;
  REQUIRE_FALSE(reader.error());
  return n;
}

nlohmann::json wait_status(httplib::Client& c, const std::string& id,
                           const std::set<std::string>& wanted, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  nlohmann::json last;
  while (std::chrono::steady_clock::now() < deadline) {
    auto res = c.Get(("/v1/orders/" + id).c_str(), auth("ops", true));
    if (res && res->status == 200) {
      last = nlohmann::json::parse(res->body);
      if (wanted.count(last["status"].get<std::string>()))
        return last;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  FAIL("order " << id << " did not reach the wanted status; last: " << last.dump());
  return last;
}

void stock(httplib::Client& c, const std::string& sku, int quantity) {
  auto res = c.Put(("/admin/stock/" + sku).c_str(), auth("ops", true),
                   nlohmann::json{{"quantity", quantity}}.dump(), "application/json");
  REQUIRE(res);
  REQUIRE(res->status == 200);
}

void put_on_sale(httplib::Client& c, const std::string& sku, std::int64_t price_cents) {
  auto res = c.Put(("/admin/catalog/" + sku).c_str(), {{"Authorization", bearer("ops", true)}},
                   nlohmann::json{{"price_cents", price_cents}, {"currency", "EUR"}}.dump(),
                   "application/json");
  REQUIRE(res);
  INFO(res->body);
  REQUIRE(res->status == 200);
}

nlohmann::json order_json(const std::string& id, const std::string& customer,
                          const std::string& sku, int quantity) {
  return {{"order_id", id},
          {"customer_id", customer},
          {"items", {{{"sku", sku}, {"quantity", quantity}, {"unit_price_cents", 1250}}}},
          {"currency", "EUR"},
          {"shipping_address",
           {{"name", "Ada"}, {"street", "Main 1"}, {"city", "Berlin"}, {"postal_code", "10115"},
            {"country", "DE"}}},
          {"premium", false}};
}

int connect_from(const char* source, int port) {
  auto fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  REQUIRE(::inet_pton(AF_INET, source, &src.sin_addr) == 1);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) == 0);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(static_cast<std::uint16_t>(port));
  dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) == 0);
  return fd;
}

double metric(httplib::Client& c, const std::string& sample) {
  auto res = c.Get("/metrics");
  REQUIRE(res);
  auto at = res->body.find("\n" + sample + " ");
  if (at == std::string::npos)
    return -1;
  return std::stod(res->body.substr(at + sample.size() + 2));
}

} // namespace keel::test
