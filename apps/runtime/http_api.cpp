#include "http_api.hpp"

#include <chrono>
#include <cmath>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "agent.hpp"
#include "auth.hpp"
#include "keel/actors/catalog.hpp"
#include "keel/events/correlation.hpp"
#include "keel/actors/pipeline.hpp"
#include "keel/events/error.hpp"
#include "keel/events/ids.hpp"
#include "keel/events/json.hpp"
#include "keel/projections/read_models.hpp"
#include "node.hpp"
#include "http_server.hpp"
#include "faults.hpp"
#include "order_json.hpp"
#include "rate_limiter.hpp"

namespace keel::runtime {

namespace {

using nlohmann::json;

std::int64_t steady_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

std::int64_t wall_s() {
  using namespace std::chrono;
  return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

/// At most `per_second` warn lines per second; the lines left out are
/// counted and their number is told in the next line (a flood of failing
/// requests must not fill the disk with the log).
class log_budget {
public:
  explicit log_budget(std::uint32_t per_second) : per_second_(per_second) {
  }

  /// True when a line may be written now; `skipped` gets the lines left out before it.
  bool take(std::uint64_t& skipped) {
    std::lock_guard<std::mutex> guard{mtx_};
    auto now = wall_s();
    if (now != second_) {
      second_ = now;
      used_ = 0;
    }
    if (used_ >= per_second_) {
      ++skipped_;
      return false;
    }
    ++used_;
    skipped = skipped_;
    skipped_ = 0;
    return true;
  }

private:
  std::mutex mtx_;
  std::uint32_t per_second_;
  std::int64_t second_ = 0;
  std::uint32_t used_ = 0;
  std::uint64_t skipped_ = 0;
};

void send_json(http_response& res, int status, const std::string& body) {
  res.status = status;
  res.content_type = "application/json";
  res.body = body;
}

void send_error(http_response& res, const api_error& err) {
  send_json(res, err.status, error_body(err));
}

/// The HTTP answer to an error of the pipeline or the read side.
api_error from_error(const caf::error& err) {
  auto text = describe(err);
  switch (code_of(err)) {
    case errc::invalid_argument: return {400, "invalid_value", text, split_field(err).field};
    case errc::not_for_sale: return {409, "not_for_sale", text, split_field(err).field};
    case errc::price_changed: return {409, "price_changed", text, split_field(err).field};
    case errc::currency_mismatch: return {409, "currency_mismatch", text, split_field(err).field};
    case errc::order_id_taken: return {409, "order_id_taken", text, "order_id"};
    case errc::unavailable: return {503, "unavailable", text, ""};
    case errc::not_owner: return {421, "not_owner", text, ""};
    case errc::stale_token: return {503, "unavailable", text, ""};
    case errc::storage_failure:
    case errc::not_writable:
      // RocksDB's text names files and keys: the log has it (one line per
      // change of the store's state), the client gets what it can act on.
      return {503, "storage_unavailable",
              "the store cannot write (disk full or failing); nothing was changed", ""};
    case errc::version_conflict:
      return {409, "conflict", text + " (changed meanwhile; read it and try again)", ""};
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

/// `text` for a key=value log line: printable ASCII but space, quote and
/// backslash as is, every other byte as \xHH (no line can be forged).
std::string log_quote(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  static constexpr char digits[] = "0123456789abcdef";
  for (unsigned char c : text) {
    if (c > 0x20 && c < 0x7f && c != '"' && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      out += "\\x";
      out.push_back(digits[c >> 4]);
      out.push_back(digits[c & 15]);
    }
  }
  return out;
}

/// A route: method, path pattern ("*" matches one segment), metrics name.
struct route {
  const char* method;
  std::vector<std::string_view> pattern;
  const char* name;
  void (http_api::impl::*serve)(http_request&, http_response&);
};

bool matches(const route& r, const http_request& req) {
  if (r.pattern.size() != req.segments.size())
    return false;
  for (std::size_t i = 0; i < r.pattern.size(); ++i)
    if (r.pattern[i] != "*" && r.pattern[i] != req.segments[i])
      return false;
  return true;
}

/// The JSON of `GET /admin/projections`.
json projections_body(const projections_report& r) {
  auto list = json::array();
  for (const auto& s : r.projections) {
    json j{{"name", s.name},         {"generation", s.generation},
           {"state", s.state},       {"position", s.position},
           {"lag_events", s.lag_events}, {"lag_ms", s.lag_ms}};
    if (s.failure)
      j["failure"] = {{"position", s.failure->position}, {"type", s.failure->event_type},
                      {"stream", s.failure->stream}, {"reason", s.failure->reason}};
    if (s.rebuild_position)
      j["rebuild_position"] = *s.rebuild_position;
    list.push_back(std::move(j));
  }
  return json{{"projections", std::move(list)}, {"last_position", r.last_position}};
}

/// The cluster view of `GET /health`: aggregate figures and node ids, no
/// customer data (the endpoint needs no token).
json cluster_body(const cluster_link& link) {
  auto f = link.figures();
  auto v = link.view();
  auto members = json::array();
  for (auto& m : v->members)
    members.push_back({{"node_id", m.node_id},
                       {"http", m.http},
                       {"slots", v->held_by(m.node_id)},
                       {"connected", m.node_id == f.node_id || link.is_connected(m.node_id)}});
  auto ms = [](double seconds) { return std::round(seconds * 1e6) / 1e3; };
  return {{"cluster", link.config().cluster},
          {"node_id", f.node_id},
          {"live", f.live},
          {"controller", f.controller},
          {"map_version", f.map_version},
          {"slots", f.slots},
          {"slots_owned", f.slots_owned},
          {"slots_without_owner", f.slots_without_owner},
          {"slots_moving", f.slots_moving},
          {"members", std::move(members)},
          {"forwarded",
           {{"out", f.forwarded},
            {"in", f.forwarded_in},
            {"failures", f.forward_failures},
            {"p50_ms", ms(link.forward_seconds().quantile(0.5))},
            {"p99_ms", ms(link.forward_seconds().quantile(0.99))}}},
          {"stock_calls", {{"out", f.stock_calls_out}, {"in", f.stock_calls_in}}},
          {"moves",
           {{"out", f.moves_out},
            {"in", f.moves_in},
            {"failures", f.move_failures},
            {"events_moved", f.events_moved}}},
          {"retry_entries",
           {{"out", f.retry_passed},
            {"in", f.retry_received},
            {"dropped", f.retry_pass_dropped}}}};
}

/// The JSON of `GET /admin/kafka`.
json kafka_body(const kafka_report& r) {
  if (!r.enabled)
    return {{"enabled", false}};
  auto topics = json::array();
  for (auto& t : r.topics)
    topics.push_back({{"name", t.name}, {"partitions", t.partitions}});
  json j{{"enabled", true},
         {"embedded", r.embedded},
         {"bootstrap_servers", r.bootstrap_servers},
         {"topics", std::move(topics)}};
  if (r.outbox)
    j["outbox"] = {{"checkpoint", r.outbox->checkpoint}, {"lag_events", r.outbox->lag_events},
                   {"delivered", r.outbox->delivered}};
  return j;
}

} // namespace

/// Set while this thread serves a request another node forwarded.
thread_local bool serving_forwarded = false;

struct http_api::impl {
  node& n;
  /// Requests per customer (writes) or per client address (reads).
  rate_limiter limiter;
  /// Failed authentications per client address.
  rate_limiter auth_failures;
  /// `/metrics`, `/health`, `/ready` per client address.
  rate_limiter ops;
  log_budget warn_lines{20};
  std::vector<route> table;
  token_policy tokens;
  std::unique_ptr<http_server> server;

  explicit impl(node& x)
    : n(x), limiter(x.config().rate_limit), auth_failures(x.config().auth_failure_limit),
      ops(x.config().ops_rate_limit) {
    auto& cfg = x.config();
    tokens.secret = cfg.jwt_secret;
    tokens.max_ttl = cfg.max_token_ttl;
    tokens.issuer = cfg.token_issuer;
    tokens.audience = cfg.token_audience;
  }

  /// Authenticates a request; on failure answers (401, or 429 once the
  /// address has failed too often) and returns nothing. The subject's rate
  /// limit is taken before the role is checked, so refused calls count too.
  std::optional<principal> authorize(http_request& req, http_response& res,
                                     bool admin_only) {
    auto who = authenticate(req.header("Authorization"), tokens, wall_s());
    if (auto* err = std::get_if<api_error>(&who)) {
      if (!limit(auth_failures, "auth:" + req.remote_addr, res))
        return std::nullopt;
      res.set_header("WWW-Authenticate", "Bearer");
      send_error(res, *err);
      return std::nullopt;
    }
    auto p = std::get<principal>(who);
    req.subject = p.subject;
    if (!limit(limiter, p.subject, res))
      return std::nullopt;
    if (admin_only && !p.admin) {
      send_error(res, {403, "forbidden", "this endpoint needs the admin role", ""});
      return std::nullopt;
    }
    return p;
  }

  /// Takes one request of `key` from `l`; answers 429 when exceeded.
  bool limit(rate_limiter& l, const std::string& key, http_response& res) {
    if (serving_forwarded)
      return true; // the node the client reached took the limit
    auto wait_ms = l.acquire(key, steady_ms());
    if (wait_ms == 0)
      return true;
    n.count_rate_limited();
    res.set_header("Retry-After", std::to_string((wait_ms + 999) / 1000));
    send_error(res, {429, "rate_limited",
                     "more than " + std::to_string(l.limit())
                       + " requests per second; retry after " + std::to_string(wait_ms) + " ms",
                     ""});
    return false;
  }

  bool limit(const std::string& key, http_response& res) {
    return limit(limiter, key, res);
  }

  void answer_pipeline_error(http_response& res, const caf::error& err) {
    auto e = from_error(err);
    if (e.status == 503) {
      n.count_shed();
      res.set_header("Retry-After", e.code == "storage_unavailable" ? "5" : "1");
    }
    send_error(res, e);
  }

  /// Writes are refused at once while the store cannot write: 503
  /// storage_unavailable, never a wait for a timeout.
  bool storage_gate(http_response& res) {
    if (n.store_writable())
      return true;
    n.count_shed();
    res.set_header("Retry-After", "5");
    send_error(res, {503, "storage_unavailable",
                     "the store cannot write (disk full or failing); nothing was changed", ""});
    return false;
  }

  /// A cluster: serves a request whose key (an order id, a SKU) another
  /// node owns by forwarding it there, or answers 503 when no node serves
  /// the key's slot now; false when the key is this node's to serve. On the
  /// owner (a forwarded request), answers 421 not_owner when the slot is no
  /// longer this node's, so that the sender routes again.
  bool elsewhere(http_request& req, http_response& res, const std::string& key);
  /// A read that asked for a standby (`Keel-Read: standby`) on a standby of
  /// the key's group: served from this node's store, its staleness in the
  /// answer's headers.
  bool standby_read(const http_request& req, http_response& res, const std::string& key);

  void place(http_request& req, http_response& res);
  void get_order(http_request& req, http_response& res);
  void cancel(http_request& req, http_response& res);
  void customer_orders(http_request& req, http_response& res);
  void gather_orders(http_request& req, http_response& res, const std::string& id,
                     std::size_t limit, const projections::customer_orders_page& own);
  void catalog_entry(http_request& req, http_response& res);
  void set_price(http_request& req, http_response& res);
  void withdraw(http_request& req, http_response& res);
  std::string order_json(const std::string& id, const actors::order_view* view);
  std::optional<actors::order_state> owned_order(const principal& who, const std::string& id,
                                                 http_response& res);
  void stock(http_request& req, http_response& res);
  void set_stock(http_request& req, http_response& res);
  void faults(http_request& req, http_response& res);
  void list_projections(http_request& req, http_response& res);
  void skip_projection(http_request& req, http_response& res);
  void rebuild_projection(http_request& req, http_response& res);
  void kafka(http_request& req, http_response& res);
  void metrics(http_request& req, http_response& res);
  void health(http_request& req, http_response& res);
  void ready(http_request& req, http_response& res);
  void routes();
  void serve(http_request& req, http_response& res);
  void completed(const http_request& req, const http_response& res, double secs);
};

void http_api::impl::place(http_request& req, http_response& res) {
  auto who = authorize(req, res, false);
  if (!who)
    return;
  std::optional<bool> premium;
  auto parsed = parse_place_order(req.body, premium);
  if (auto* err = std::get_if<api_error>(&parsed))
    return send_error(res, *err);
  auto& cmd = std::get<events::place_order>(parsed);
  req.order_id = cmd.order_id;
  if (!who->admin && cmd.customer_id != who->subject)
    return send_error(res, {403, "forbidden",
                            "a customer may only place orders for itself (token sub "
                              + who->subject + ")",
                            "customer_id"});
  // Premium comes from the token's tier claim; an operator placing an
  // order on a customer's behalf says it in the body.
  if (who->admin) {
    cmd.premium = premium.value_or(false);
  } else {
    if (premium && *premium != who->premium)
      return send_error(res, {403, "forbidden",
                              std::string{"premium comes from the token's \"tier\" claim; this "
                                          "token's tier is "}
                                + (who->premium ? "premium" : "standard"),
                              "premium"});
    cmd.premium = who->premium;
  }
  if (elsewhere(req, res, cmd.order_id) || !storage_gate(res))
    return;
  auto view = n.place(cmd);
  if (!view)
    return answer_pipeline_error(res, view.error());
  if (view->created)
    return send_json(res, 202, events::dump_json(json{{"order_id", view->order_id},
                                                      {"status", view->status}}));
  send_json(res, 200, order_json(view->order_id, &*view));
}

std::string http_api::impl::order_json(const std::string& id, const actors::order_view* view) {
  auto summary = projections::find_order(n.store(), id);
  if (summary)
    return order_body(*summary, view);
  auto st = n.order(id);
  return st ? order_body(*st) : order_body(actors::order_state{});
}

/// Whose order `id` is, from its stream (on this thread); answers 404 and
/// returns nothing when it does not exist or, for a customer, is someone
/// else's (the same answer: ids of others' orders cannot be probed).
std::optional<actors::order_state> http_api::impl::owned_order(const principal& who,
                                                                const std::string& id,
                                                                http_response& res) {
  if (!events::valid_key(id)) {
    send_error(res, {404, "not_found", "no order " + id, ""});
    return std::nullopt;
  }
  auto st = n.order(id);
  if (!st) {
    answer_pipeline_error(res, st.error());
    return std::nullopt;
  }
  if (st->status == actors::order_status::none || (!who.admin && st->customer_id != who.subject)) {
    send_error(res, {404, "not_found", "no order " + id + " of " + who.subject, ""});
    return std::nullopt;
  }
  return std::move(*st);
}

void http_api::impl::get_order(http_request& req, http_response& res) {
  auto who = authorize(req, res, false);
  if (!who)
    return;
  std::string id = req.segments[2];
  req.order_id = id;
  if (elsewhere(req, res, id))
    return;
  auto st = owned_order(*who, id, res);
  if (!st)
    return;
  auto view = actors::view_of(*st, false);
  auto summary = projections::find_order(n.store(), id);
  if (summary && view.status == "compensating")
    view.status = summary->status; // the last step recorded while compensations run
  send_json(res, 200, summary ? order_body(*summary, &view) : order_body(*st));
}

void http_api::impl::cancel(http_request& req, http_response& res) {
  auto who = authorize(req, res, false);
  if (!who)
    return;
  std::string id = req.segments[2];
  req.order_id = id;
  if (elsewhere(req, res, id) || !storage_gate(res))
    return;
  if (!owned_order(*who, id, res))
    return;
  auto view = n.cancel(id, who->subject);
  if (!view)
    return answer_pipeline_error(res, view.error());
  send_json(res, 202, events::dump_json(json{{"order_id", view->order_id},
                                             {"status", view->status}}));
}

void http_api::impl::customer_orders(http_request& req, http_response& res) {
  auto who = authorize(req, res, false);
  if (!who)
    return;
  std::string id = req.segments[2];
  if (!who->admin && id != who->subject)
    return send_error(res, {403, "forbidden",
                            "a customer may only list its own orders (token sub " + who->subject
                              + ")",
                            ""});
  std::size_t limit_n = 20;
  if (req.param("limit")) {
    auto text = *req.param("limit");
    char* end = nullptr;
    auto v = std::strtoul(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || v < 1 || v > projections::max_page_size)
      return send_error(res, {400, "out_of_range",
                              "must be 1.." + std::to_string(projections::max_page_size), "limit"});
    limit_n = v;
  }
  auto page = projections::orders_of_customer(n.store(), id, limit_n, req.param("cursor").value_or(""));
  if (!page && code_of(page.error()) == errc::invalid_argument)
    return send_error(res, {400, "invalid_value", describe(page.error()), "cursor"});
  if (!page && code_of(page.error()) == errc::not_found)
    page = projections::customer_orders_page{};
  if (!page)
    return answer_pipeline_error(res, page.error());
  if (n.cluster() == nullptr || req.forwarded) // a node alone, or this node's part of a list
    return send_json(res, 200, customer_orders_body(id, *page, req.forwarded));
  gather_orders(req, res, id, limit_n, *page);
}

void http_api::impl::gather_orders(http_request& req, http_response& res, const std::string& id,
                                   std::size_t limit, const projections::customer_orders_page& own) {
  // Every group's first `limit` orders after the cursor, merged in cursor
  // order (newest first): the cursor is the same key in every store.
  auto* link = n.cluster();
  auto items = json::array();
  bool more = false;
  // One answer per group: its primary's part, or a standby's copy when the
  // primary does not answer (a lost standby costs nothing; a lost primary
  // is answered from its standby until it is replaced).
  // One group's part from `node` ("": this node's own store); the reason
  // when it gave none.
  auto part_from = [&](const std::string& node) -> std::optional<std::string> {
    if (node.empty()) {
      auto page = json::parse(customer_orders_body(id, own, true));
      for (auto& o : page["orders"])
        items.push_back(std::move(o));
      more = more || !own.next_cursor.empty();
      return std::nullopt;
    }
    slot_route r;
    r.where = slot_route::kind::remote;
    r.node = node;
    auto answer = link->forward(r, {req.method, req.path, req.segments, req.params, req.body,
                                    req.header("Authorization"), req.remote_addr, 0, 0});
    if (!answer)
      return node + " did not answer: " + describe(answer.error());
    if (answer->status != 200)
      return node + " answered " + std::to_string(answer->status);
    auto page = json::parse(answer->body, nullptr, false);
    if (!page.is_object() || !page["orders"].is_array())
      return node + " sent no order list";
    for (auto& o : page["orders"]) {
      o["node"] = node;
      items.push_back(std::move(o));
    }
    more = more || !page["next_cursor"].is_null();
    return std::nullopt;
  };
  for (auto& choices : link->gather_plan(req.header("Keel-Read") == "standby")) {
    std::string why;
    bool got = false;
    for (auto i = choices.begin(); i != choices.end() && !got; ++i) {
      auto failed = part_from(*i);
      got = !failed;
      if (failed)
        why += (why.empty() ? "" : "; ") + *failed;
    }
    if (!got) {
      n.count_shed();
      res.set_header("Retry-After", "1");
      return send_error(res, {503, "unavailable",
                              "a customer's orders are gathered from every group; no node of "
                              "one answered: " + why,
                              ""});
    }
  }
  std::vector<json> merged(items.begin(), items.end());
  std::stable_sort(merged.begin(), merged.end(), [](const json& a, const json& b) {
    return a.value("cursor", std::string{}) < b.value("cursor", std::string{});
  });
  // A moved order is listed by the node it left too (a stale copy): the
  // node that serves its slot now has the current one.
  std::map<std::string, std::size_t> first_of;
  for (std::size_t i = 0; i < merged.size(); ++i) {
    auto id = merged[i].value("order_id", std::string{});
    auto [at, fresh] = first_of.emplace(id, i);
    if (!fresh && merged[i].value("node", std::string{}) == link->route_of(id).node)
      std::swap(merged[at->second], merged[i]);
  }
  std::set<std::string> seen;
  json orders = json::array();
  std::string last;
  for (auto& o : merged) {
    if (!seen.insert(o.value("order_id", std::string{})).second)
      continue;
    o.erase("node");
    if (orders.size() == limit) {
      more = true;
      break;
    }
    last = o.value("cursor", std::string{});
    o.erase("cursor");
    orders.push_back(std::move(o));
  }
  send_json(res, 200, events::dump_json(json{{"customer_id", id},
                                             {"orders", std::move(orders)},
                                             {"next_cursor", more && !last.empty()
                                                               ? json(last) : json(nullptr)}}));
}

void http_api::impl::catalog_entry(http_request& req, http_response& res) {
  if (!limit("ip:" + req.remote_addr, res))
    return;
  auto& sku = req.segments[2];
  auto entry = n.catalog().find(sku);
  if (!entry)
    return send_error(res, {404, "not_for_sale", "SKU " + sku + " is not for sale", ""});
  send_json(res, 200, catalog_body(*entry));
}

void http_api::impl::set_price(http_request& req, http_response& res) {
  auto who = authorize(req, res, true);
  if (!who)
    return;
  if (elsewhere(req, res, req.segments[2]) || !storage_gate(res))
    return;
  auto parsed = parse_price(req.body);
  if (auto* err = std::get_if<api_error>(&parsed))
    return send_error(res, *err);
  auto& p = std::get<price_request>(parsed);
  auto entry = n.catalog().set(req.segments[2], p.price_cents, p.currency, who->subject);
  if (!entry)
    return answer_pipeline_error(res, entry.error());
  if (auto* link = n.cluster())
    link->publish_price(*entry, false);
  send_json(res, 200, catalog_body(*entry));
}

void http_api::impl::withdraw(http_request& req, http_response& res) {
  auto who = authorize(req, res, true);
  if (!who)
    return;
  if (elsewhere(req, res, req.segments[2]) || !storage_gate(res))
    return;
  auto& sku = req.segments[2];
  auto before = n.catalog().find(sku);
  if (auto err = n.catalog().withdraw(sku, who->subject)) {
    if (code_of(err) == errc::not_found)
      return send_error(res, {404, "not_for_sale", "SKU " + sku + " is not for sale", ""});
    return answer_pipeline_error(res, err);
  }
  if (auto* link = n.cluster(); link && before) {
    before->version += 1; // the withdrawal's version of the stream
    link->publish_price(*before, true);
  }
  send_json(res, 200, events::dump_json(json{{"sku", sku}, {"withdrawn", true}}));
}

void http_api::impl::stock(http_request& req, http_response& res) {
  if (!limit("ip:" + req.remote_addr, res))
    return;
  if (elsewhere(req, res, req.segments[2]))
    return;
  auto level = projections::find_stock(n.store(), req.segments[2]);
  if (!level)
    return answer_pipeline_error(res, level.error());
  send_json(res, 200, stock_body(*level));
}

void http_api::impl::set_stock(http_request& req, http_response& res) {
  if (!authorize(req, res, true))
    return;
  if (elsewhere(req, res, req.segments[2]) || !storage_gate(res))
    return;
  auto parsed = parse_stock_quantity(req.body);
  if (auto* err = std::get_if<api_error>(&parsed))
    return send_error(res, *err);
  std::string sku = req.segments[2];
  if (!events::valid_key(sku))
    return send_error(res, {400, "invalid_value",
                            "the SKU must be 1.." + std::to_string(events::max_key_size)
                              + " characters of A-Z a-z 0-9 . _ : -",
                            "sku"});
  auto reply = n.set_stock(sku, std::get<std::int64_t>(parsed));
  if (!reply)
    return answer_pipeline_error(res, reply.error());
  send_json(res, 200, events::dump_json(json{{"sku", sku},
                                             {"on_hand", reply->on_hand},
                                             {"reserved", reply->reserved},
                                             {"available", reply->on_hand - reply->reserved}}));
}

void http_api::impl::faults(http_request& req, http_response& res) {
  if (!authorize(req, res, true))
    return;
  auto parsed = parse_faults(req.body);
  if (auto* err = std::get_if<api_error>(&parsed))
    return send_error(res, *err);
  auto& f = std::get<fault_request>(parsed);
  std::vector<std::string> targets;
  auto pick = [&](const std::vector<std::string>& names, const char* group) {
    for (auto& x : names)
      if (f.provider == "all" || f.provider == group || f.provider == x)
        targets.push_back(x);
  };
  pick(n.gateways(), "gateways");
  pick(n.carriers(), "carriers");
  if (targets.empty())
    return send_error(res, {400, "invalid_value", "unknown provider \"" + f.provider + "\"",
                            "provider"});
  for (auto& t : targets)
    if (!n.simulated(t))
      return send_error(res, {409, "not_simulated",
                              t + " is an HTTP provider: set its faults where it runs (keel-sim)",
                              "provider"});
  auto faults = to_faults(f, std::chrono::steady_clock::now());
  for (auto& t : targets)
    if (auto err = n.set_faults(t, faults))
      return answer_pipeline_error(res, err);
  using std::chrono::duration_cast;
  using ms = std::chrono::milliseconds;
  send_json(res, 200, events::dump_json(json{
                        {"providers", targets},
                        {"error_rate", f.error_rate},
                        {"decline_rate", f.decline_rate},
                        {"hang_rate", f.hang_rate},
                        {"latency_ms", duration_cast<ms>(faults.latency_median).count()},
                        {"latency_p99_ms", duration_cast<ms>(faults.latency_p99).count()},
                        {"outage_seconds", f.outage_seconds},
                        {"outage_hangs", f.outage_hangs}}));
}

void http_api::impl::list_projections(http_request& req, http_response& res) {
  if (authorize(req, res, true))
    send_json(res, 200, events::dump_json(projections_body(n.projections())));
}

void http_api::impl::skip_projection(http_request& req, http_response& res) {
  auto who = authorize(req, res, true);
  if (!who)
    return;
  auto parsed = parse_skip(req.body);
  if (auto* err = std::get_if<api_error>(&parsed))
    return send_error(res, *err);
  auto& r = std::get<skip_request>(parsed);
  auto& name = req.segments[2];
  if (auto err = n.skip_projection(name, r.position, who->subject, r.note)) {
    auto e = from_error(err);
    if (code_of(err) == errc::invalid_argument)
      e = {409, "not_stopped_there", describe(err), "position"};
    return send_error(res, e);
  }
  send_json(res, 200, events::dump_json(projections_body(n.projections())));
}

void http_api::impl::rebuild_projection(http_request& req, http_response& res) {
  if (!authorize(req, res, true))
    return;
  auto& name = req.segments[2];
  auto t0 = std::chrono::steady_clock::now();
  if (auto err = n.rebuild_projection(name)) {
    auto e = from_error(err);
    if (code_of(err) == errc::projection_stopped)
      e = {409, "projection_stopped", describe(err), ""};
    return send_error(res, e);
  }
  auto body = projections_body(n.projections());
  body["rebuilt"] = name;
  body["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  send_json(res, 200, events::dump_json(body));
}

void http_api::impl::kafka(http_request& req, http_response& res) {
  if (authorize(req, res, true))
    send_json(res, 200, events::dump_json(kafka_body(n.kafka())));
}

void http_api::impl::metrics(http_request& req, http_response& res) {
  if (!limit(ops, "ops:" + req.remote_addr, res))
    return;
  res.content_type = "text/plain; version=0.0.4; charset=utf-8";
  res.body = n.metrics_text();
}

void http_api::impl::health(http_request& req, http_response& res) {
  if (!limit(ops, "ops:" + req.remote_addr, res))
    return;
  auto h = n.health();
  auto comps = json::object();
  for (auto& c : h.components)
    comps[c.name] = {{"score", std::round(c.score * 1000) / 1000}, {"weight", c.weight},
                     {"detail", c.detail}};
  json body{{"score", std::round(h.score * 1000) / 1000},
            {"status", h.status},
            {"components", std::move(comps)}};
  if (auto* link = n.cluster())
    body["cluster"] = cluster_body(*link);
  send_json(res, h.status == "critical" ? 503 : 200, events::dump_json(body));
}

void http_api::impl::ready(http_request& req, http_response& res) {
  if (!limit(ops, "ops:" + req.remote_addr, res))
    return;
  auto ok = n.ready();
  send_json(res, ok ? 200 : 503, events::dump_json(json{{"ready", ok}}));
}

void http_api::impl::routes() {
  using i = http_api::impl;
  table = {
    {"POST", {"v1", "orders"}, "place", &i::place},
    {"GET", {"v1", "orders", "*"}, "get", &i::get_order},
    {"POST", {"v1", "orders", "*", "cancel"}, "cancel", &i::cancel},
    {"GET", {"v1", "customers", "*", "orders"}, "customer_orders", &i::customer_orders},
    {"GET", {"v1", "stock", "*"}, "stock", &i::stock},
    {"GET", {"v1", "catalog", "*"}, "catalog", &i::catalog_entry},
    {"PUT", {"admin", "catalog", "*"}, "admin", &i::set_price},
    {"DELETE", {"admin", "catalog", "*"}, "admin", &i::withdraw},
    {"PUT", {"admin", "stock", "*"}, "admin", &i::set_stock},
    {"POST", {"admin", "faults"}, "admin", &i::faults},
    {"GET", {"admin", "projections"}, "admin", &i::list_projections},
    {"POST", {"admin", "projections", "*", "skip"}, "admin", &i::skip_projection},
    {"POST", {"admin", "projections", "*", "rebuild"}, "admin", &i::rebuild_projection},
    {"GET", {"admin", "kafka"}, "admin", &i::kafka},
    {"GET", {"metrics"}, "metrics", &i::metrics},
    {"GET", {"health"}, "health", &i::health},
    {"GET", {"ready"}, "health", &i::ready},
  };
}

void http_api::impl::serve(http_request& req, http_response& res) {
  bool path_known = false;
  for (auto& r : table) {
    if (!matches(r, req))
      continue;
    path_known = true;
    if (req.method != r.method)
      continue;
    req.route = r.name;
    return (this->*r.serve)(req, res);
  }
  // Unknown paths cost a client as much as reads do.
  if (!limit("ip:" + req.remote_addr, res))
    return;
  if (path_known)
    return send_error(res, {405, "method_not_allowed", "this resource does not take " + req.method,
                            ""});
  send_error(res, {404, "not_found", "no such resource", ""});
}

bool http_api::impl::elsewhere(http_request& req, http_response& res, const std::string& key) {
  auto* link = n.cluster();
  if (link == nullptr)
    return false;
  if (req.forwarded) {
    if (link->serves(req.slot, req.token))
      return false;
    send_error(res, {421, "not_owner",
                     "node " + link->config().node_id + " does not own slot "
                       + std::to_string(req.slot) + " now",
                     ""});
    return true;
  }
  if (standby_read(req, res, key))
    return false;
  std::string why;
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto r = link->route_of(key);
    if (r.where == slot_route::kind::local)
      return false;
    if (r.where == slot_route::kind::unavailable) {
      why = "no node serves slot " + std::to_string(r.slot)
            + " now (its owner was lost or is starting); nothing was changed";
      break;
    }
    forwarded_call call{req.method, req.path, req.segments, req.params, req.body,
                        req.header("Authorization"), req.remote_addr, 0, 0};
    auto answer = link->forward(r, std::move(call));
    if (!answer) {
      why = describe(answer.error()) + " (retry; an order is placed once per order id)";
      continue; // the handle was dropped: the next round sees whether it comes back
    }
    if (answer->status == 421) { // the owner's view is newer than ours
      why = "slot " + std::to_string(r.slot) + " is moving between nodes";
      std::this_thread::sleep_for(std::chrono::milliseconds(20 * (attempt + 1)));
      continue;
    }
    res.status = answer->status;
    res.content_type = std::move(answer->content_type);
    res.body = std::move(answer->body);
    for (auto& h : answer->headers)
      res.set_header(h.first, h.second);
    return true;
  }
  n.count_shed();
  res.set_header("Retry-After", "1");
  send_error(res, {503, "unavailable", why, ""});
  return true;
}

bool http_api::impl::standby_read(const http_request& req, http_response& res,
                                  const std::string& key) {
  auto* link = n.cluster();
  if (req.method != "GET" || req.header("Keel-Read") != "standby" || !link->standby_of(key))
    return false;
  auto f = link->replication();
  if (!f)
    return false;
  // Stale by what the primary had (as last heard) that the read models here
  // have not applied yet: the store's lag plus the furthest projection's.
  std::uint64_t behind = 0;
  for (auto& p : n.projections().projections)
    behind = std::max(behind, p.lag_events);
  res.set_header("Keel-Served-By", "standby " + link->config().node_id);
  res.set_header("Keel-Replica-Lag-Events", std::to_string(f->lag_events + behind));
  res.set_header("Keel-Replica-Contact-Ms",
                 std::to_string(static_cast<long long>(f->since_contact_seconds * 1000.0)));
  n.count_standby_read();
  return true;
}

void http_api::impl::completed(const http_request& req, const http_response& res, double secs) {
  n.count_request(req.route.empty() ? "other" : req.route, res.status, secs);
  auto level = res.status >= 500 ? spdlog::level::warn : spdlog::level::debug;
  if (!spdlog::should_log(level))
    return;
  std::uint64_t skipped = 0;
  if (level == spdlog::level::warn && !warn_lines.take(skipped))
    return;
  auto corr = req.order_id.empty() ? std::string{"-"}
                                   : events::to_string(events::correlation_of(req.order_id));
  // Logged values are quoted and escaped: a path cannot forge log lines.
  spdlog::log(level,
              "component=http method={} path={} status={} ms={:.2f} order_id={} "
              "correlation_id={} sub={} remote={}{}",
              req.method.empty() ? "-" : req.method, log_quote(req.path), res.status,
              secs * 1000, req.order_id.empty() ? "-" : log_quote(req.order_id), corr,
              req.subject.empty() ? "-" : log_quote(req.subject), req.remote_addr,
              skipped ? " lines_skipped=" + std::to_string(skipped) : std::string{});
}

http_api::http_api(node& n) : impl_(std::make_unique<impl>(n)) {
  impl_->routes();
}

http_api::~http_api() {
  stop();
}

caf::error http_api::listen(const std::string& host, int port) {
  auto lim = impl_->n.config().http;
  lim.max_body = max_body_bytes;
  auto* self = impl_.get();
  impl_->server = std::make_unique<http_server>(
    lim, [self](http_request& req, http_response& res) { self->serve(req, res); },
    [self](const http_request& req, const http_response& res, double secs) {
      self->completed(req, res, secs);
    },
    [](int status, const std::string& code, const std::string& message) {
      return error_body({status, code, message, code == "body_too_large" ? "body" : ""});
    });
  return impl_->server->listen(host, port);
}

int http_api::port() const noexcept {
  return impl_->server ? impl_->server->port() : 0;
}

http_server_stats http_api::stats() const {
  return impl_->server ? impl_->server->stats() : http_server_stats{};
}

void http_api::stop() {
  if (impl_->server)
    impl_->server->stop();
}

forwarded_answer http_api::serve_forwarded(const forwarded_call& call) {
  http_request req;
  req.method = call.method;
  req.path = call.path;
  req.segments = call.segments;
  req.params = call.params;
  req.body = call.body;
  req.remote_addr = call.remote_addr;
  if (!call.authorization.empty())
    req.headers.emplace_back("Authorization", call.authorization);
  req.forwarded = true;
  req.slot = call.slot;
  req.token = call.token;
  http_response res;
  if (!impl_->n.serving()) {
    res.set_header("Retry-After", "1");
    send_error(res, {503, "unavailable", "the node that owns this key is not ready (starting "
                                         "or stopping)", ""});
  } else {
    serving_forwarded = true;
    impl_->serve(req, res);
    serving_forwarded = false;
  }
  return {res.status, res.content_type, std::move(res.body), std::move(res.headers)};
}

} // namespace keel::runtime
