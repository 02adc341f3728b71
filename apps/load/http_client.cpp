#include "http_client.hpp"

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

#include <random>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "auth.hpp"
#include "measure.hpp"

namespace keel::bench {

namespace {

std::int64_t wall_s() {
  using namespace std::chrono;
  return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

void sleep_s(double s) {
  std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

} // namespace

std::optional<http_endpoint> parse_url(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0)
    return std::nullopt;
  auto rest = url.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/')
    rest.pop_back();
  auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size()
      || rest.find('/') != std::string::npos)
    return std::nullopt;
  auto port_text = rest.substr(colon + 1);
  if (port_text.size() > 5 || port_text.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  auto port = std::stoi(port_text);
  if (port < 1 || port > 65535)
    return std::nullopt;
  return http_endpoint{rest.substr(0, colon), port};
}

std::unique_ptr<httplib::Client> connect(const http_endpoint& ep) {
  auto c = std::make_unique<httplib::Client>(ep.host, ep.port);
  c->set_keep_alive(true);
  c->set_tcp_nodelay(true);
  c->set_connection_timeout(5, 0);
  c->set_read_timeout(30, 0);
  c->set_write_timeout(30, 0);
  return c;
}

std::unique_ptr<httplib::Client> connect_warm(const http_endpoint& ep) {
  static std::mutex one_at_a_time;
  auto c = connect(ep);
  std::lock_guard<std::mutex> guard{one_at_a_time};
  retry_counts ignored;
  send_until_final(*c, "GET", "/ready", {}, {}, ignored, 30);
  return c;
}

// -- tokens -------------------------------------------------------------------

token_cache::token_cache(std::string secret) : secret_(std::move(secret)) {
}

std::string token_cache::customer(const std::string& subject, bool premium) {
  return get(subject, false, premium);
}

std::string token_cache::admin(const std::string& subject) {
  return get(subject, true, false);
}

std::size_t token_cache::size() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return tokens_.size();
}

std::string token_cache::get(const std::string& subject, bool admin, bool premium) {
  auto key = (admin ? "a:" : premium ? "p:" : "c:") + subject;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (auto i = tokens_.find(key); i != tokens_.end())
      return i->second;
  }
  // A day is longer than any run; minting outside the lock keeps threads apart.
  auto jwt = runtime::mint_token(secret_, subject, admin, wall_s(), std::chrono::hours(24), {}, {},
                              premium);
  auto token = "Bearer " + jwt;
  std::lock_guard<std::mutex> guard{mtx_};
  return tokens_.emplace(key, token).first->second;
}

// -- requests -----------------------------------------------------------------

http_answer send(httplib::Client& c, const std::string& method, const std::string& path,
                 const std::string& body, const std::string& auth) {
  httplib::Headers headers;
  if (!auth.empty())
    headers.emplace("Authorization", auth);
  httplib::Result res{nullptr, httplib::Error::Unknown};
  if (method == "GET")
    res = c.Get(path.c_str(), headers);
  else if (method == "POST")
    res = c.Post(path.c_str(), headers, body, "application/json");
  else
    res = c.Put(path.c_str(), headers, body, "application/json");
  http_answer a;
  if (!res) {
    a.error = httplib::to_string(res.error());
    return a;
  }
  a.status = res->status;
  a.body = std::move(res->body);
  auto retry = res->get_header_value("Retry-After");
  if (!retry.empty())
    a.retry_after_s = std::atof(retry.c_str());
  return a;
}

http_answer send_until_final(httplib::Client& c, const std::string& method,
                             const std::string& path, const std::string& body,
                             const std::string& auth, retry_counts& counts, double timeout_s,
                             double* sent_at) {
  auto deadline = seconds_now() + timeout_s;
  for (;;) {
    if (sent_at != nullptr)
      *sent_at = seconds_now();
    auto a = send(c, method, path, body, auth);
    if ((a.status != 0 && a.status != 503 && a.status != 429) || seconds_now() > deadline)
      return a;
    double wait = 0.2;
    if (a.status == 503)
      ++counts.shed;
    else if (a.status == 429)
      ++counts.rate_limited;
    else if (counts.no_answer++ == 0)
      counts.first_error = a.error;
    if (a.status != 0)
      wait = std::max(0.05, a.retry_after_s);
    sleep_s(wait);
  }
}

// -- metrics ------------------------------------------------------------------

metrics_sample metrics_sample::parse(const std::string& text) {
  metrics_sample m;
  std::istringstream in{text};
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#')
      continue;
    // Label values never hold a space in the node's metrics: the value
    // follows the last space.
    auto space = line.rfind(' ');
    if (space == std::string::npos || space == 0)
      continue;
    char* end = nullptr;
    auto v = std::strtod(line.c_str() + space + 1, &end);
    if (end == line.c_str() + space + 1)
      continue;
    m.series_[line.substr(0, space)] = v;
  }
  return m;
}

double metrics_sample::value(const std::string& name) const {
  auto i = series_.find(name);
  return i == series_.end() ? 0.0 : i->second;
}

double metrics_sample::value(const std::string& name, const std::string& label,
                             const std::string& v) const {
  return value(name + "{" + label + "=\"" + v + "\"}");
}

std::uint64_t metrics_sample::orders(const std::string& o) const {
  return static_cast<std::uint64_t>(value("keel_orders_total", "outcome", o));
}

std::uint64_t metrics_sample::terminal() const {
  return orders("completed") + orders("rejected") + orders("cancelled");
}

std::optional<metrics_sample> fetch_metrics(httplib::Client& c) {
  auto a = send(c, "GET", "/metrics");
  if (a.status != 200)
    return std::nullopt;
  return metrics_sample::parse(a.body);
}

// -- orders -------------------------------------------------------------------

std::string order_body(const std::string& order_id, const std::string& customer_id,
                       const std::vector<http_line>& lines) {
  auto items = nlohmann::json::array();
  for (auto& l : lines)
    items.push_back(
      {{"sku", l.sku}, {"quantity", l.quantity}, {"unit_price_cents", l.unit_price_cents}});
  nlohmann::json j{{"order_id", order_id},
                   {"customer_id", customer_id},
                   {"items", std::move(items)},
                   {"shipping_address",
                    {{"name", "Ada Lovelace"},
                     {"street", "12 Analytical Row"},
                     {"city", "London"},
                     {"postal_code", "N1 9GU"},
                     {"country", "GB"}}}};
  return j.dump();
}

std::int64_t http_price(std::uint64_t i) {
  return 199 + static_cast<std::int64_t>((i * 2654435761ULL) % 20'000);
}

bool premium_customer(std::uint64_t number) {
  return number % 10 == 0;
}

std::string http_sku(std::uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "sku-%05llu", static_cast<unsigned long long>(i));
  return buf;
}

std::string seed_skus(const std::string& url, token_cache& tokens, std::uint64_t count,
                      std::int64_t quantity) {
  auto ep = parse_url(url);
  if (!ep)
    return "not a node URL: " + url;
  auto c = connect(*ep);
  auto admin = tokens.admin("ops");
  for (std::uint64_t i = 1; i <= count; ++i) {
    auto price = send(*c, "PUT", "/admin/catalog/" + http_sku(i),
                      nlohmann::json{{"price_cents", http_price(i)}, {"currency", "EUR"}}.dump(),
                      admin);
    auto stock = send(*c, "PUT", "/admin/stock/" + http_sku(i),
                      nlohmann::json{{"quantity", quantity}}.dump(), admin);
    if (price.status != 200 || stock.status != 200)
      return "seeding " + http_sku(i) + ": " + std::to_string(price.status) + "/"
             + std::to_string(stock.status) + " " + price.body + stock.body;
  }
  return {};
}

bool wait_priced(const std::string& url, std::uint64_t count) {
  auto ep = parse_url(url);
  if (!ep)
    return false;
  auto c = connect(*ep);
  for (std::uint64_t i = 1; i <= count; ++i)
    for (int tries = 0; send(*c, "GET", "/v1/catalog/" + http_sku(i)).status != 200; ++tries) {
      if (tries > 500)
        return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  return true;
}

std::string run_prefix(const std::string& base) {
  using namespace std::chrono;
  auto ms = static_cast<std::uint64_t>(
    duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
  std::string digits;
  for (auto x = ms; x > 0; x /= 36)
    digits.insert(digits.begin(), "0123456789abcdefghijklmnopqrstuvwxyz"[x % 36]);
  return base + "-" + digits + std::to_string(::getpid() % 1000);
}

std::string executable_dir() {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string{"."} : self.parent_path().string();
}

std::string random_secret() {
  static constexpr char alphabet[] =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  std::random_device rd;
  std::string out;
  for (int i = 0; i < 48; ++i)
    out.push_back(alphabet[rd() % (sizeof alphabet - 1)]);
  return out;
}

} // namespace keel::bench
