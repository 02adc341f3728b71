#include "http_api.hpp"

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <thread>

#include <sys/socket.h>

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "auth.hpp"
#include "keel/actors/correlation.hpp"
#include "keel/actors/pipeline.hpp"
#include "keel/events/error.hpp"
#include "keel/events/ids.hpp"
#include "keel/events/json.hpp"
#include "keel/projections/read_models.hpp"
#include "node.hpp"
#include "order_json.hpp"
#include "rate_limiter.hpp"

namespace keel::node {

namespace {

using nlohmann::json;

/// Per-request context of the thread serving it (one request at a time).
struct request_context {
  std::chrono::steady_clock::time_point started;
  std::string order_id;
  std::string subject;
  bool shedding = false;
};
thread_local request_context current;

std::int64_t steady_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

std::int64_t wall_s() {
  using namespace std::chrono;
  return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

/// A fixed pool of connection threads with a bounded queue. A connection
/// that finds the queue full is served by the shedding thread, which
/// answers every request on it with 503 and closes it.
class bounded_pool : public httplib::TaskQueue {
public:
  bounded_pool(std::size_t threads, std::size_t queue) : max_queue_(queue) {
    for (std::size_t i = 0; i < threads; ++i)
      workers_.emplace_back([this] { run(queue_, false); });
    workers_.emplace_back([this] { run(shed_queue_, true); });
  }

  void enqueue(std::function<void()> fn) override {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      // Idle workers take connections at once; up to `max_queue_` more wait.
      if (queue_.size() < idle_ + max_queue_)
        queue_.push_back(std::move(fn));
      else
        shed_queue_.push_back(std::move(fn));
    }
    cv_.notify_all();
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> guard{mtx_};
      done_ = true;
    }
    cv_.notify_all();
    for (auto& t : workers_)
      t.join();
  }

private:
  void run(std::deque<std::function<void()>>& q, bool shedding) {
    current.shedding = shedding;
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> guard{mtx_};
        if (!shedding)
          ++idle_;
        cv_.wait(guard, [&] { return done_ || !q.empty(); });
        if (!shedding)
          --idle_;
        if (q.empty())
          return; // done and drained
        fn = std::move(q.front());
        q.pop_front();
      }
      fn();
    }
  }

  std::size_t max_queue_;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::deque<std::function<void()>> shed_queue_;
  std::vector<std::thread> workers_;
  /// Connection workers waiting for a connection.
  std::size_t idle_ = 0;
  bool done_ = false;
};

void send_json(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body, "application/json");
}

void send_error(httplib::Response& res, const api_error& err) {
  send_json(res, err.status, error_body(err));
}

/// The HTTP answer to an error of the pipeline or the read side.
api_error from_error(const caf::error& err) {
  auto text = describe(err);
  switch (code_of(err)) {
    case errc::invalid_argument: return {400, "invalid_value", text, ""};
    case errc::not_found: return {404, "not_found", text, ""};
    case errc::not_cancellable: return {409, "not_cancellable", text, ""};
    case errc::out_of_stock: return {409, "out_of_stock", text, ""};
    case errc::overloaded: return {503, "overloaded", text, ""};
    case errc::circuit_open: return {503, "unavailable", text, ""};
    case errc::timeout: return {503, "timeout", text + " (retry with the same order id)", ""};
    default: break;
  }
  if (err.category() != keel::error_category())
    return {503, "unavailable", text + " (retry with the same order id)", ""};
  return {500, "internal", text, ""};
}

/// The route group of a path, for metrics.
std::string route_of(const httplib::Request& req) {
  auto& p = req.path;
  if (p == "/v1/orders")
    return "place";
  if (p.rfind("/v1/orders/", 0) == 0)
    return p.size() > 7 && p.compare(p.size() - 7, 7, "/cancel") == 0 ? "cancel" : "get";
  if (p.rfind("/v1/customers/", 0) == 0)
    return "customer_orders";
  if (p.rfind("/v1/stock/", 0) == 0)
    return "stock";
  if (p.rfind("/admin/", 0) == 0)
    return "admin";
  if (p == "/metrics")
    return "metrics";
  if (p == "/health" || p == "/ready")
    return "health";
  return "other";
}

} // namespace

struct http_api::impl {
  node& n;
  httplib::Server server;
  rate_limiter limiter;
  std::thread thread;
  int bound_port = 0;
  int listen_fd = -1;

  explicit impl(node& x) : n(x), limiter(x.config().rate_limit) {
  }

  /// Authenticates a write; on failure answers and returns nothing.
  std::optional<principal> authorize(const httplib::Request& req, httplib::Response& res,
                                     bool admin_only) {
    auto who = authenticate(req.get_header_value("Authorization"), n.config().jwt_secret, wall_s());
    if (auto* err = std::get_if<api_error>(&who)) {
      res.set_header("WWW-Authenticate", "Bearer");
      send_error(res, *err);
      return std::nullopt;
    }
    auto p = std::get<principal>(who);
    current.subject = p.subject;
    if (admin_only && !p.admin) {
      send_error(res, {403, "forbidden", "this endpoint needs the admin role", ""});
      return std::nullopt;
    }
    if (!limit(p.subject, res))
      return std::nullopt;
    return p;
  }

  /// The per-customer rate limit; answers 429 when exceeded.
  bool limit(const std::string& key, httplib::Response& res) {
    auto wait_ms = limiter.acquire(key, steady_ms());
    if (wait_ms == 0)
      return true;
    n.count_rate_limited();
    res.set_header("Retry-After", std::to_string((wait_ms + 999) / 1000));
    send_error(res, {429, "rate_limited",
                     "more than " + std::to_string(limiter.limit())
                       + " requests per second; retry after " + std::to_string(wait_ms) + " ms",
                     ""});
    return false;
  }

  void answer_pipeline_error(httplib::Response& res, const caf::error& err) {
    auto e = from_error(err);
    if (e.status == 503) {
      n.count_shed();
      res.set_header("Retry-After", "1");
    }
    send_error(res, e);
  }

  void place(const httplib::Request& req, httplib::Response& res);
  void get_order(const httplib::Request& req, httplib::Response& res);
  void cancel(const httplib::Request& req, httplib::Response& res);
  void customer_orders(const httplib::Request& req, httplib::Response& res);
  void stock(const httplib::Request& req, httplib::Response& res);
  void set_stock(const httplib::Request& req, httplib::Response& res);
  void faults(const httplib::Request& req, httplib::Response& res);
  void routes();
  void hooks();
};

void http_api::impl::place(const httplib::Request& req, httplib::Response& res) {
  auto who = authorize(req, res, false);
  if (!who)
    return;
  auto parsed = parse_place_order(req.body);
  if (auto* err = std::get_if<api_error>(&parsed))
    return send_error(res, *err);
  auto& cmd = std::get<events::place_order>(parsed);
  current.order_id = cmd.order_id;
  if (!who->admin && cmd.customer_id != who->subject)
    return send_error(res, {403, "forbidden",
                            "a customer may only place orders for itself (token sub "
                              + who->subject + ")",
                            "customer_id"});
  auto view = n.place(cmd);
  if (!view)
    return answer_pipeline_error(res, view.error());
  if (view->created)
    return send_json(res, 202, events::dump_json(json{{"order_id", view->order_id},
                                                      {"status", view->status}}));
  auto summary = projections::find_order(n.store(), view->order_id);
  send_json(res, 200, summary ? order_body(*summary, &*view) : order_body(*view));
}

void http_api::impl::get_order(const httplib::Request& req, httplib::Response& res) {
  if (!limit("ip:" + req.remote_addr, res))
    return;
  std::string id = req.matches[1];
  current.order_id = id;
  auto view = n.get(id);
  if (!view)
    return answer_pipeline_error(res, view.error());
  auto summary = projections::find_order(n.store(), id);
  if (summary && view->status == "compensating")
    view->status = summary->status; // the last step recorded while compensations run
  send_json(res, 200, summary ? order_body(*summary, &*view) : order_body(*view));
}

void http_api::impl::cancel(const httplib::Request& req, httplib::Response& res) {
  auto who = authorize(req, res, false);
  if (!who)
    return;
  std::string id = req.matches[1];
  current.order_id = id;
  if (!who->admin) {
    auto summary = projections::find_order(n.store(), id);
    auto owner = summary ? summary->customer_id : std::string{};
    if (!summary) {
      auto view = n.get(id); // not projected yet: the actor knows it
      if (!view)
        return answer_pipeline_error(res, view.error());
      if (auto st = actors::load_order(n.store(), id))
        owner = st->customer_id;
    }
    if (owner != who->subject)
      return send_error(res, {403, "forbidden", "order " + id + " belongs to another customer", ""});
  }
  auto view = n.cancel(id, who->subject);
  if (!view)
    return answer_pipeline_error(res, view.error());
  send_json(res, 202, events::dump_json(json{{"order_id", view->order_id},
                                             {"status", view->status}}));
}

void http_api::impl::customer_orders(const httplib::Request& req, httplib::Response& res) {
  if (!limit("ip:" + req.remote_addr, res))
    return;
  std::string id = req.matches[1];
  std::size_t limit_n = 20;
  if (req.has_param("limit")) {
    auto text = req.get_param_value("limit");
    char* end = nullptr;
    auto v = std::strtoul(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || v < 1 || v > projections::max_page_size)
      return send_error(res, {400, "out_of_range",
                              "must be 1.." + std::to_string(projections::max_page_size), "limit"});
    limit_n = v;
  }
  auto page = projections::orders_of_customer(n.store(), id, limit_n, req.get_param_value("cursor"));
  if (!page && code_of(page.error()) == errc::invalid_argument)
    return send_error(res, {400, "invalid_value", describe(page.error()), "cursor"});
  if (!page && code_of(page.error()) == errc::not_found)
    return send_json(res, 200, customer_orders_body(id, {}));
  if (!page)
    return answer_pipeline_error(res, page.error());
  send_json(res, 200, customer_orders_body(id, *page));
}

void http_api::impl::stock(const httplib::Request& req, httplib::Response& res) {
  if (!limit("ip:" + req.remote_addr, res))
    return;
  auto level = projections::find_stock(n.store(), std::string{req.matches[1]});
  if (!level)
    return answer_pipeline_error(res, level.error());
  send_json(res, 200, stock_body(*level));
}

void http_api::impl::set_stock(const httplib::Request& req, httplib::Response& res) {
  if (!authorize(req, res, true))
    return;
  auto parsed = parse_stock_quantity(req.body);
  if (auto* err = std::get_if<api_error>(&parsed))
    return send_error(res, *err);
  std::string sku = req.matches[1];
  if (!events::valid_stream_id("stock-" + sku))
    return send_error(res, {400, "invalid_value",
                            "the SKU must be printable characters without spaces", "sku"});
  auto reply = n.set_stock(sku, std::get<std::int64_t>(parsed));
  if (!reply)
    return answer_pipeline_error(res, reply.error());
  send_json(res, 200, events::dump_json(json{{"sku", sku},
                                             {"on_hand", reply->on_hand},
                                             {"reserved", reply->reserved},
                                             {"available", reply->on_hand - reply->reserved}}));
}

void http_api::impl::faults(const httplib::Request& req, httplib::Response& res) {
  if (!authorize(req, res, true))
    return;
  auto parsed = parse_faults(req.body);
  if (auto* err = std::get_if<api_error>(&parsed))
    return send_error(res, *err);
  auto& f = std::get<fault_request>(parsed);
  std::vector<std::string> targets;
  for (auto& x : n.providers())
    if (f.provider == "all" || f.provider == x
        || (f.provider == "gateways" && x.rfind("gw-", 0) == 0)
        || (f.provider == "carriers" && x.rfind("carrier-", 0) == 0))
      targets.push_back(x);
  if (targets.empty())
    return send_error(res, {400, "invalid_value", "unknown provider \"" + f.provider + "\"",
                            "provider"});
  using ms = std::chrono::milliseconds;
  auto median = ms{f.latency_ms};
  auto p99 = f.latency_p99_ms < 0 ? median * 5 : ms{f.latency_p99_ms};
  auto outage = ms{static_cast<std::int64_t>(f.outage_seconds * 1000)};
  for (auto& t : targets)
    if (auto err = n.set_faults(t, f.error_rate, f.decline_rate, median, p99, outage,
                                f.outage_hangs))
      return answer_pipeline_error(res, err);
  send_json(res, 200, events::dump_json(json{{"providers", targets},
                                             {"error_rate", f.error_rate},
                                             {"decline_rate", f.decline_rate},
                                             {"latency_ms", median.count()},
                                             {"latency_p99_ms", p99.count()},
                                             {"outage_seconds", f.outage_seconds},
                                             {"outage_hangs", f.outage_hangs}}));
}

void http_api::impl::routes() {
  using req_t = const httplib::Request&;
  using res_t = httplib::Response&;
  server.Post("/v1/orders", [this](req_t req, res_t res) { place(req, res); });
  server.Get(R"(/v1/orders/([^/]+))", [this](req_t req, res_t res) { get_order(req, res); });
  server.Post(R"(/v1/orders/([^/]+)/cancel)", [this](req_t req, res_t res) { cancel(req, res); });
  server.Get(R"(/v1/customers/([^/]+)/orders)",
             [this](req_t req, res_t res) { customer_orders(req, res); });
  server.Get(R"(/v1/stock/([^/]+))", [this](req_t req, res_t res) { stock(req, res); });
  server.Put(R"(/admin/stock/([^/]+))", [this](req_t req, res_t res) { set_stock(req, res); });
  server.Post("/admin/faults", [this](req_t req, res_t res) { faults(req, res); });
  server.Get("/admin/projections", [this](req_t req, res_t res) {
    if (authorize(req, res, true))
      send_json(res, 200, n.projections_json());
  });
  server.Post(R"(/admin/projections/([^/]+)/skip)", [this](req_t req, res_t res) {
    auto who = authorize(req, res, true);
    if (!who)
      return;
    auto parsed = parse_skip(req.body);
    if (auto* err = std::get_if<api_error>(&parsed))
      return send_error(res, *err);
    auto& r = std::get<skip_request>(parsed);
    std::string name = req.matches[1];
    if (auto err = n.skip_projection(name, r.position, who->subject, r.note)) {
      auto e = from_error(err);
      if (code_of(err) == errc::invalid_argument)
        e = {409, "not_stopped_there", describe(err), "position"};
      return send_error(res, e);
    }
    send_json(res, 200, n.projections_json());
  });
  server.Post(R"(/admin/projections/([^/]+)/rebuild)", [this](req_t req, res_t res) {
    if (!authorize(req, res, true))
      return;
    std::string name = req.matches[1];
    auto t0 = std::chrono::steady_clock::now();
    if (auto err = n.rebuild_projection(name)) {
      auto e = from_error(err);
      if (code_of(err) == errc::projection_stopped)
        e = {409, "projection_stopped", describe(err), ""};
      return send_error(res, e);
    }
    auto body = json::parse(n.projections_json());
    body["rebuilt"] = name;
    body["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    send_json(res, 200, events::dump_json(body));
  });
  server.Get("/admin/kafka", [this](req_t req, res_t res) {
    if (authorize(req, res, true))
      send_json(res, 200, n.kafka_json());
  });
  server.Get("/metrics", [this](req_t, res_t res) {
    res.set_content(n.metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
  });
  server.Get("/health", [this](req_t, res_t res) {
    auto h = n.health();
    auto comps = json::object();
    for (auto& c : h.components)
      comps[c.name] = {{"score", std::round(c.score * 1000) / 1000}, {"weight", c.weight},
                       {"detail", c.detail}};
    send_json(res, h.status == "critical" ? 503 : 200,
              events::dump_json(json{{"score", std::round(h.score * 1000) / 1000}, {"status", h.status},
                                     {"components", std::move(comps)}}));
  });
  server.Get("/ready", [this](req_t, res_t res) {
    auto ok = n.ready();
    send_json(res, ok ? 200 : 503, events::dump_json(json{{"ready", ok}}));
  });
}

void http_api::impl::hooks() {
  using req_t = const httplib::Request&;
  using res_t = httplib::Response&;
  server.set_pre_routing_handler([this](req_t, res_t res) {
    current.started = std::chrono::steady_clock::now();
    current.order_id.clear();
    current.subject.clear();
    if (!current.shedding)
      return httplib::Server::HandlerResponse::Unhandled;
    n.count_shed();
    res.set_header("Retry-After", "1");
    res.set_header("Connection", "close");
    send_error(res, {503, "overloaded", "too many connections; retry later", ""});
    return httplib::Server::HandlerResponse::Handled;
  });
  server.set_error_handler(httplib::Server::HandlerWithResponse{
    [](req_t, res_t res) -> httplib::Server::HandlerResponse {
    if (res.status == 413) { // payload_max_length: the body was not read
      res.status = 400;
      send_error(res, {400, "body_too_large",
                       "the body is larger than " + std::to_string(max_body_bytes) + " bytes",
                       "body"});
      return httplib::Server::HandlerResponse::Handled;
    }
    if (!res.body.empty())
      return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, {res.status, res.status == 404 ? "not_found" : "bad_request",
                     res.status == 404 ? "no such resource" : "the request was not understood",
                     ""});
    return httplib::Server::HandlerResponse::Handled;
  }});
  server.set_exception_handler([](req_t, res_t res, std::exception_ptr ep) {
    std::string what = "unknown";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    spdlog::error("component=http msg=\"handler threw\" what=\"{}\"", what);
    send_error(res, {500, "internal", "internal error", ""});
  });
  server.set_logger([this](req_t req, const httplib::Response& res) {
    auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - current.started)
                  .count();
    n.count_request(route_of(req), res.status, secs);
    auto level = res.status >= 500 ? spdlog::level::warn : spdlog::level::debug;
    if (!spdlog::should_log(level))
      return;
    auto corr = current.order_id.empty()
                  ? std::string{"-"}
                  : events::to_string(actors::correlation_of(current.order_id));
    spdlog::log(level,
                "component=http method={} path={} status={} ms={:.2f} order_id={} "
                "correlation_id={} sub={} remote={}",
                req.method, req.path, res.status, secs * 1000,
                current.order_id.empty() ? "-" : current.order_id, corr,
                current.subject.empty() ? "-" : current.subject, req.remote_addr);
  });
}

http_api::http_api(node& n) : impl_(std::make_unique<impl>(n)) {
  auto& cfg = n.config();
  auto& svr = impl_->server;
  svr.new_task_queue = [threads = cfg.http_threads, queue = cfg.http_queue] {
    return new bounded_pool(threads, queue);
  };
  svr.set_payload_max_length(max_body_bytes);
  svr.set_read_timeout(static_cast<time_t>(cfg.read_timeout.count()), 0);
  svr.set_write_timeout(static_cast<time_t>(cfg.write_timeout.count()), 0);
  svr.set_keep_alive_timeout(static_cast<time_t>(cfg.idle_timeout.count()));
  svr.set_keep_alive_max_count(100000);
  // Headers and body go out in two writes: without TCP_NODELAY every answer
  // after the first on a keep-alive connection waits ~40 ms for delayed ACKs.
  svr.set_tcp_nodelay(true);
  svr.set_socket_options([this](int sock) {
    int one = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    impl_->listen_fd = sock;
  });
  impl_->routes();
  impl_->hooks();
}

http_api::~http_api() {
  stop();
}

caf::error http_api::listen(const std::string& host, int port) {
  auto& svr = impl_->server;
  if (port == 0)
    impl_->bound_port = svr.bind_to_any_port(host.c_str());
  else
    impl_->bound_port = svr.bind_to_port(host.c_str(), port) ? port : -1;
  // The library listens with a backlog of 5: bursts of new connections
  // overflow it. listen() again on the bound socket raises the backlog.
  if (impl_->bound_port > 0 && impl_->listen_fd >= 0)
    ::listen(impl_->listen_fd, 1024);
  if (impl_->bound_port <= 0)
    return make_error(errc::invalid_argument,
                      "cannot listen on " + host + ":" + std::to_string(port)
                        + " (address in use or not local?)");
  impl_->thread = std::thread{[this] { impl_->server.listen_after_bind(); }};
  return caf::error{};
}

int http_api::port() const noexcept {
  return impl_->bound_port;
}

void http_api::stop() {
  if (!impl_->thread.joinable())
    return;
  impl_->server.stop();
  impl_->thread.join();
}

} // namespace keel::node
