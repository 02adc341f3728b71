#include "etcd_client.hpp"

#include <charconv>
#include <utility>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "keel/events/error.hpp"

namespace keel::cluster {



using nlohmann::json;

namespace {

constexpr char b64_alphabet[] =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string b64(const std::string& in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    auto n = (std::uint32_t{static_cast<unsigned char>(in[i])} << 16)
             | (std::uint32_t{static_cast<unsigned char>(in[i + 1])} << 8)
             | std::uint32_t{static_cast<unsigned char>(in[i + 2])};
    for (int shift : {18, 12, 6, 0})
      out.push_back(b64_alphabet[(n >> shift) & 63]);
  }
  if (auto rest = in.size() - i; rest > 0) {
    std::uint32_t n = std::uint32_t{static_cast<unsigned char>(in[i])} << 16;
    if (rest == 2)
      n |= std::uint32_t{static_cast<unsigned char>(in[i + 1])} << 8;
    out.push_back(b64_alphabet[(n >> 18) & 63]);
    out.push_back(b64_alphabet[(n >> 12) & 63]);
    out.push_back(rest == 2 ? b64_alphabet[(n >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

int b64_digit(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  if (c >= '0' && c <= '9')
    return c - '0' + 52;
  if (c == '+')
    return 62;
  if (c == '/')
    return 63;
  return -1;
}

/// Decodes standard base64 with padding; nullopt when it is not.
std::optional<std::string> unb64(const std::string& in) {
  if (in.size() % 4 != 0)
    return std::nullopt;
  std::string out;
  out.reserve(in.size() / 4 * 3);
  for (std::size_t i = 0; i < in.size(); i += 4) {
    std::uint32_t n = 0;
    int pad = 0;
    for (std::size_t k = 0; k < 4; ++k) {
      auto c = in[i + k];
      int d = 0;
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        ++pad;
      } else if (pad > 0 || (d = b64_digit(c)) < 0) {
        return std::nullopt;
      }
      n = (n << 6) | static_cast<std::uint32_t>(d);
    }
    out.push_back(static_cast<char>((n >> 16) & 0xff));
    if (pad < 2)
      out.push_back(static_cast<char>((n >> 8) & 0xff));
    if (pad < 1)
      out.push_back(static_cast<char>(n & 0xff));
  }
  return out;
}

/// An int64 the gateway sends as a string (or, leniently, a number); 0 when absent.
std::int64_t number(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end())
    return 0;
  if (it->is_number_integer())
    return it->get<std::int64_t>();
  if (!it->is_string())
    return 0;
  auto& s = it->get_ref<const std::string&>();
  std::int64_t x = 0;
  std::from_chars(s.data(), s.data() + s.size(), x);
  return x;
}

std::string bytes_field(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_string())
    return {};
  auto x = unb64(it->get<std::string>());
  return x ? *x : std::string{};
}

etcd_kv kv_of(const json& j) {
  return {bytes_field(j, "key"),         bytes_field(j, "value"), number(j, "create_revision"),
          number(j, "mod_revision"),     number(j, "version"),    number(j, "lease")};
}

std::int64_t header_revision(const json& j) {
  auto it = j.find("header");
  return it == j.end() ? 0 : number(*it, "revision");
}

const char* target_name(etcd_compare::target x) {
  switch (x) {
    case etcd_compare::target::create: return "CREATE";
    case etcd_compare::target::mod: return "MOD";
    case etcd_compare::target::version: return "VERSION";
    case etcd_compare::target::value: return "VALUE";
  }
  return "CREATE";
}

const char* result_name(etcd_compare::result x) {
  switch (x) {
    case etcd_compare::result::equal: return "EQUAL";
    case etcd_compare::result::not_equal: return "NOT_EQUAL";
    case etcd_compare::result::greater: return "GREATER";
    case etcd_compare::result::less: return "LESS";
  }
  return "EQUAL";
}

json compare_json(const etcd_compare& c) {
  json j{{"key", b64(c.key)}, {"target", target_name(c.what)}, {"result", result_name(c.is)}};
  switch (c.what) {
    case etcd_compare::target::create: j["create_revision"] = std::to_string(c.number); break;
    case etcd_compare::target::mod: j["mod_revision"] = std::to_string(c.number); break;
    case etcd_compare::target::version: j["version"] = std::to_string(c.number); break;
    case etcd_compare::target::value: j["value"] = b64(c.value); break;
  }
  return j;
}

json op_json(const etcd_op& op) {
  if (op.what == etcd_op::kind::erase)
    return {{"request_delete_range", {{"key", b64(op.key)}}}};
  json put{{"key", b64(op.key)}, {"value", b64(op.value)}};
  if (op.lease != 0)
    put["lease"] = std::to_string(op.lease);
  return {{"request_put", std::move(put)}};
}

} // namespace

std::string prefix_end(std::string prefix) {
  while (!prefix.empty()) {
    auto& last = prefix.back();
    if (static_cast<unsigned char>(last) != 0xff) {
      last = static_cast<char>(static_cast<unsigned char>(last) + 1);
      return prefix;
    }
    prefix.pop_back();
  }
  return std::string(1, '\0'); // every key
}

struct etcd_client::impl {
  std::string url;
  std::string host;
  int port = 0;
  int timeout_ms = 2000;
  httplib::Client http;

  impl(std::string u, std::string h, int p, int t)
    : url(std::move(u)), host(std::move(h)), port(p), timeout_ms(t), http(host, port) {
    http.set_keep_alive(true);
    http.set_tcp_nodelay(true); // else a keepalive waits ~40 ms for a delayed ACK
    http.set_connection_timeout(0, timeout_ms * 1000);
    http.set_read_timeout(timeout_ms / 1000, (timeout_ms % 1000) * 1000);
    http.set_write_timeout(timeout_ms / 1000, (timeout_ms % 1000) * 1000);
  }

  /// POSTs `body` to `path`; the answer's JSON, or an error naming etcd's.
  caf::expected<json> call(const char* path, const json& body) {
    // The gateway ends its error answers (404, 400, ...) with HTTP trailers,
    // which cpp-httplib 0.11 fails to read ("Read") after it has delivered
    // the body: take status and body as they arrive.
    httplib::Request req;
    httplib::Response res;
    httplib::Error err = httplib::Error::Success;
    req.method = "POST";
    req.path = path;
    req.set_header("Content-Type", "application/json");
    req.body = body.dump();
    int status = 0;
    std::string answer;
    req.response_handler = [&](const httplib::Response& r) {
      status = r.status;
      return true;
    };
    req.content_receiver = [&](const char* data, std::size_t n, std::uint64_t, std::uint64_t) {
      answer.append(data, n);
      return true;
    };
    http.send(req, res, err);
    json j = json::parse(answer, nullptr, false);
    if (status == 0 || !j.is_object())
      return make_error(errc::storage_failure, "etcd " + url + path + ": "
                                                 + (status == 0 ? httplib::to_string(err)
                                                                : "an answer that is not JSON"));
    if (status == 200)
      return j;
    auto why = j.value("message", answer);
    auto code = j.value("code", 0);
    auto kind = code == 5 || status == 404 ? errc::not_found
                : code == 3 || status == 400 ? errc::invalid_argument
                                             : errc::storage_failure;
    return make_error(kind, "etcd " + url + path + " answered " + std::to_string(status) + ": "
                              + why);
  }
};

caf::expected<std::unique_ptr<etcd_client>> etcd_client::connect(const std::string& url,
                                                                 int timeout_ms) {
  const std::string scheme = "http://";
  auto bad = [&] {
    return make_error(errc::invalid_argument,
                      "etcd URL " + url + ": expected http://HOST:PORT");
  };
  if (url.compare(0, scheme.size(), scheme) != 0)
    return bad();
  auto rest = url.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/')
    rest.pop_back();
  auto colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0 || rest.find('/') != std::string::npos)
    return bad();
  int port = 0;
  auto ps = rest.substr(colon + 1);
  auto [end, ec] = std::from_chars(ps.data(), ps.data() + ps.size(), port);
  if (ec != std::errc{} || end != ps.data() + ps.size() || port <= 0 || port > 65535)
    return bad();
  auto x = std::make_unique<impl>(scheme + rest, rest.substr(0, colon), port, timeout_ms);
  return std::unique_ptr<etcd_client>{new etcd_client{std::move(x)}};
}

etcd_client::etcd_client(std::unique_ptr<impl> x) : impl_(std::move(x)) {
}

etcd_client::~etcd_client() = default;

const std::string& etcd_client::url() const noexcept {
  return impl_->url;
}

caf::expected<etcd_lease> etcd_client::grant(std::int64_t ttl_seconds) {
  auto j = impl_->call("/v3/lease/grant", {{"TTL", std::to_string(ttl_seconds)}});
  if (!j)
    return j.error();
  return etcd_lease{number(*j, "ID"), number(*j, "TTL")};
}

caf::expected<std::optional<std::int64_t>> etcd_client::keepalive(std::int64_t lease) {
  auto j = impl_->call("/v3/lease/keepalive", {{"ID", std::to_string(lease)}});
  if (!j)
    return j.error();
  // One renewal per request; the answer is a stream envelope. No TTL: the
  // lease is gone.
  auto result = j->find("result");
  auto ttl = result == j->end() ? 0 : number(*result, "TTL");
  return ttl > 0 ? std::optional<std::int64_t>{ttl} : std::nullopt;
}

caf::error etcd_client::revoke(std::int64_t lease) {
  auto j = impl_->call("/v3/lease/revoke", {{"ID", std::to_string(lease)}});
  return j ? caf::error{} : j.error();
}

caf::expected<std::int64_t> etcd_client::put(const std::string& key, const std::string& value,
                                             std::int64_t lease) {
  json body{{"key", b64(key)}, {"value", b64(value)}};
  if (lease != 0)
    body["lease"] = std::to_string(lease);
  auto j = impl_->call("/v3/kv/put", body);
  if (!j)
    return j.error();
  return header_revision(*j);
}

caf::expected<std::optional<etcd_kv>> etcd_client::get(const std::string& key) {
  auto j = impl_->call("/v3/kv/range", {{"key", b64(key)}});
  if (!j)
    return j.error();
  auto kvs = j->find("kvs");
  if (kvs == j->end() || !kvs->is_array() || kvs->empty())
    return std::optional<etcd_kv>{};
  return std::optional<etcd_kv>{kv_of(kvs->front())};
}

caf::expected<etcd_range> etcd_client::range(const std::string& prefix) {
  auto j = impl_->call("/v3/kv/range", {{"key", b64(prefix)}, {"range_end", b64(prefix_end(prefix))}});
  if (!j)
    return j.error();
  etcd_range r;
  r.revision = header_revision(*j);
  if (auto kvs = j->find("kvs"); kvs != j->end() && kvs->is_array())
    for (auto& kv : *kvs)
      r.kvs.push_back(kv_of(kv));
  return r;
}

caf::expected<std::int64_t> etcd_client::erase_prefix(const std::string& prefix) {
  auto j = impl_->call("/v3/kv/deleterange",
                       {{"key", b64(prefix)}, {"range_end", b64(prefix_end(prefix))}});
  if (!j)
    return j.error();
  return number(*j, "deleted");
}

caf::expected<etcd_txn_result> etcd_client::txn(const std::vector<etcd_compare>& compare,
                                                const std::vector<etcd_op>& success,
                                                const std::vector<etcd_op>& failure) {
  json body{{"compare", json::array()}, {"success", json::array()}, {"failure", json::array()}};
  for (auto& c : compare)
    body["compare"].push_back(compare_json(c));
  for (auto& op : success)
    body["success"].push_back(op_json(op));
  for (auto& op : failure)
    body["failure"].push_back(op_json(op));
  auto j = impl_->call("/v3/kv/txn", body);
  if (!j)
    return j.error();
  // `succeeded: false` is left out of the answer (a zero value).
  return etcd_txn_result{j->value("succeeded", false), header_revision(*j)};
}

caf::error etcd_client::watch(const std::string& prefix, std::int64_t start_revision,
                              const std::function<bool(const etcd_watch_batch&)>& on_batch,
                              int idle_seconds) {
  json create{{"key", b64(prefix)}, {"range_end", b64(prefix_end(prefix))},
              {"progress_notify", true}};
  if (start_revision > 0)
    create["start_revision"] = std::to_string(start_revision);
  httplib::Request req;
  httplib::Response res;
  httplib::Error err = httplib::Error::Success;
  req.method = "POST";
  req.path = "/v3/watch";
  req.set_header("Content-Type", "application/json");
  req.body = json{{"create_request", std::move(create)}}.dump();
  std::string buf;
  bool stopped = false;
  caf::error failure;
  req.content_receiver = [&](const char* data, std::size_t n, std::uint64_t, std::uint64_t) {
    buf.append(data, n);
    for (std::size_t p; (p = buf.find('\n')) != std::string::npos;) {
      auto line = buf.substr(0, p);
      buf.erase(0, p + 1);
      if (line.find_first_not_of(" \r\t") == std::string::npos)
        continue;
      auto j = json::parse(line, nullptr, false);
      if (!j.is_object() || j.contains("error") || !j.contains("result")) {
        failure = make_error(errc::storage_failure, "etcd watch on " + impl_->url + ": " + line);
        return false;
      }
      auto& r = j["result"];
      etcd_watch_batch batch;
      batch.revision = header_revision(r);
      batch.created = r.value("created", false);
      batch.compact_revision = number(r, "compact_revision");
      if (auto evs = r.find("events"); evs != r.end() && evs->is_array())
        for (auto& ev : *evs)
          batch.events.push_back({ev.value("type", std::string{"PUT"}) == "DELETE",
                                  kv_of(ev.value("kv", json::object()))});
      if (!on_batch(batch)) {
        stopped = true;
        return false;
      }
    }
    return true;
  };
  impl_->http.set_read_timeout(idle_seconds, 0);
  impl_->http.send(req, res, err);
  impl_->http.set_read_timeout(impl_->timeout_ms / 1000, (impl_->timeout_ms % 1000) * 1000);
  if (stopped)
    return caf::error{};
  if (failure)
    return failure;
  return make_error(errc::storage_failure, "etcd watch on " + impl_->url + " ended: "
                                             + httplib::to_string(err));
}

void etcd_client::cancel() {
  impl_->http.stop();
}

} // namespace keel::cluster
