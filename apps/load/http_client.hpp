#pragma once

// The HTTP side of keel-bench http and keel-demo: connections to a
// keel-node, bearer tokens, requests retried after 503/429, the node's
// Prometheus figures, order bodies, and a keel-node child process.

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <sys/types.h>
#include <thread>
#include <unordered_map>
#include <vector>

#include <httplib.h>

namespace keel::bench {

/// Host and port of a node's HTTP API.
struct http_endpoint {
  std::string host;
  int port = 0;
};

/// Parses "http://HOST:PORT" (a trailing slash is allowed); nothing on any
/// other form (https, no port, a path).
std::optional<http_endpoint> parse_url(const std::string& url);

/// One keep-alive connection to `ep` with generous timeouts (connect 5 s,
/// read and write 30 s) and TCP_NODELAY (a POST's headers and body go out
/// in two writes: with Nagle, the second waits for the server's delayed
/// ACK). Not thread-safe: one per thread.
std::unique_ptr<httplib::Client> connect(const http_endpoint& ep);

/// `connect`, then one `GET /ready` (retried until answered), one thread
/// at a time: keel-node listens with a backlog of 5 (cpp-httplib's), and
/// dozens of connections opened at once overflow it; the overflowed ones
/// see their first request fail after about a second.
std::unique_ptr<httplib::Client> connect_warm(const http_endpoint& ep);

/// Runs `fn(client, i)` for i in 0..n-1 on n threads, each with its own
/// warmed keep-alive connection; returns once all returned.
template <class F>
void on_connections(const http_endpoint& ep, std::uint64_t n, F fn) {
  std::vector<std::thread> threads;
  for (std::uint64_t i = 0; i < n; ++i)
    threads.emplace_back([&ep, &fn, i] {
      auto c = connect_warm(ep);
      fn(*c, i);
    });
  for (auto& t : threads)
    t.join();
}

/// Bearer tokens ("Bearer <JWT>") minted with the node's secret, one per
/// subject, cached. Thread-safe.
class token_cache {
public:
  explicit token_cache(std::string secret);

  /// The token of customer `subject` (tier premium when `premium`).
  std::string customer(const std::string& subject, bool premium = false);

  /// A token with role admin for operator `subject`. Each subject has its
  /// own rate-limit bucket on the node.
  std::string admin(const std::string& subject);

  /// Tokens minted so far.
  std::size_t size() const;

private:
  std::string get(const std::string& subject, bool admin, bool premium);

  std::string secret_;
  mutable std::mutex mtx_;
  std::unordered_map<std::string, std::string> tokens_;
};

/// One answer. `status` 0: no answer (connection refused, reset, timeout);
/// `error` says why.
struct http_answer {
  int status = 0;
  std::string body;
  /// Seconds of the Retry-After header, 0 when absent.
  double retry_after_s = 0;
  std::string error;
};

/// Sends one request ("GET", "POST", "PUT") with a JSON body and an
/// `Authorization` header when `auth` is not empty.
http_answer send(httplib::Client& c, const std::string& method, const std::string& path,
                 const std::string& body = {}, const std::string& auth = {});

/// Requests that were answered 503 or 429, or not at all, and sent again.
struct retry_counts {
  std::uint64_t shed = 0;
  std::uint64_t rate_limited = 0;
  std::uint64_t no_answer = 0;
  /// Why the first request without an answer got none.
  std::string first_error;
};

/// Sends until the answer is neither 503, 429 nor missing, sleeping the
/// Retry-After (at least 50 ms; 200 ms after no answer) in between. Only for
/// idempotent requests: an order's POST is, by its id. Gives up after
/// `timeout_s` and returns the last answer. `sent_at`, when given, gets the
/// time (seconds_now) the last attempt was sent.
http_answer send_until_final(httplib::Client& c, const std::string& method,
                             const std::string& path, const std::string& body,
                             const std::string& auth, retry_counts& counts,
                             double timeout_s = 120, double* sent_at = nullptr);

/// The figures of one `GET /metrics`: series ("name" or
/// `name{label="value",...}` exactly as the node writes them) -> value.
class metrics_sample {
public:
  /// Parses Prometheus text format; comments and malformed lines are skipped.
  static metrics_sample parse(const std::string& text);

  /// The value of a series without labels, or of `name{label="value"}`; 0
  /// when absent.
  double value(const std::string& name) const;
  double value(const std::string& name, const std::string& label, const std::string& v) const;

  /// Sagas ended: keel_orders_total of completed, rejected and cancelled.
  std::uint64_t terminal() const;

  /// Outcome `o` of keel_orders_total (completed, rejected, cancelled, pending_payment).
  std::uint64_t orders(const std::string& o) const;

  bool empty() const {
    return series_.empty();
  }

private:
  std::map<std::string, double> series_;
};

/// GET /metrics; nothing when the node did not answer 200.
std::optional<metrics_sample> fetch_metrics(httplib::Client& c);

/// One line of an order.
struct http_line {
  std::string sku;
  std::uint32_t quantity = 1;
  std::int64_t unit_price_cents = 0;
};

/// The body of `POST /v1/orders`: the lines with the prices the client
/// saw in the catalogue, a fixed shipping address; the currency and
/// premium are the catalogue's and the token's.
std::string order_body(const std::string& order_id, const std::string& customer_id,
                       const std::vector<http_line>& lines);

/// "sku-00001" for 1: the SKUs the HTTP benchmarks seed and order.
std::string http_sku(std::uint64_t i);

/// Prices (http_price) and stocks (`quantity` each) SKUs 1..`count` through
/// the node at `url` as an admin; "" or what went wrong.
std::string seed_skus(const std::string& url, token_cache& tokens, std::uint64_t count,
                      std::int64_t quantity);

/// Waits until the node at `url` prices SKUs 1..`count` (catalogue copies
/// follow within milliseconds); false after about 5 s.
bool wait_priced(const std::string& url, std::uint64_t count);

/// The EUR price the benchmarks put SKU `i` on sale at (1.99..201.98).
std::int64_t http_price(std::uint64_t i);

/// One customer in ten has a premium token (as a real tier would be fixed
/// per customer): "cust-10", "cust-20", ...
bool premium_customer(std::uint64_t number);

/// A prefix for order ids unique to this run ("<base>-<time, base 36><pid>").
std::string run_prefix(const std::string& base);

/// A random JWT secret of 48 characters (for nodes a benchmark starts itself).
std::string random_secret();

/// For printf's %llu.
inline unsigned long long u(std::uint64_t x) {
  return static_cast<unsigned long long>(x);
}

/// The directory of this executable (from /proc/self/exe).
std::string executable_dir();

} // namespace keel::bench
