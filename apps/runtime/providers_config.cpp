#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "keel/events/error.hpp"
#include "providers.hpp"

namespace keel::runtime {

namespace {

using nlohmann::json;

caf::error bad(const std::string& where, const std::string& why) {
  return make_error(errc::invalid_argument, "providers: " + where + ": " + why);
}

bool valid_name(const std::string& x) {
  if (x.empty() || x.size() > 64)
    return false;
  for (char c : x)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      return false;
  return true;
}

caf::expected<std::string> read_key(const std::string& where, const std::string& path) {
  auto key = read_key_file(path);
  if (!key)
    return bad(where, split_field(key.error()).reason);
  return key;
}

/// Reads an integer field into `out` if present: within [lo, hi].
caf::error read_int(const json& j, const std::string& where, const char* key, std::int64_t lo,
                    std::int64_t hi, std::int64_t& out) {
  auto i = j.find(key);
  if (i == j.end())
    return caf::error{};
  if (!i->is_number_integer() || i->get<std::int64_t>() < lo || i->get<std::int64_t>() > hi)
    return bad(where + "." + key,
               "must be an integer in " + std::to_string(lo) + ".." + std::to_string(hi));
  out = i->get<std::int64_t>();
  return caf::error{};
}

caf::error read_http(const json& j, const std::string& where, provider_spec& spec) {
  auto& h = spec.http;
  auto url = j.find("base_url");
  if (url == j.end() || !url->is_string() || url->get<std::string>().empty())
    return bad(where + ".base_url", "an http provider needs its base URL");
  h.base_url = url->get<std::string>();
  if (auto k = j.find("api_key_file"); k != j.end()) {
    if (!k->is_string())
      return bad(where + ".api_key_file", "must be a path");
    auto key = read_key(where + ".api_key_file", k->get<std::string>());
    if (!key)
      return key.error();
    h.api_key = std::move(*key);
  }
  std::int64_t timeout = h.timeout.count();
  std::int64_t connect = h.connect_timeout.count();
  auto conns = static_cast<std::int64_t>(h.connections);
  if (auto err = read_int(j, where, "timeout_ms", 1, 600000, timeout))
    return err;
  if (auto err = read_int(j, where, "connect_timeout_ms", 1, 600000, connect))
    return err;
  if (auto err = read_int(j, where, "connections", 1, 1024, conns))
    return err;
  h.timeout = std::chrono::milliseconds{timeout};
  h.connect_timeout = std::chrono::milliseconds{connect};
  h.connections = static_cast<std::size_t>(conns);
  if (auto ca = j.find("ca_file"); ca != j.end()) {
    if (!ca->is_string())
      return bad(where + ".ca_file", "must be a path");
    h.ca_file = ca->get<std::string>();
  }
  if (auto v = j.find("verify_tls"); v != j.end()) {
    if (!v->is_boolean())
      return bad(where + ".verify_tls", "must be true or false");
    h.verify_tls = v->get<bool>();
  }
  return caf::error{};
}

caf::error read_one(const json& j, const std::string& where, provider_spec& spec) {
  static const std::set<std::string> known{"name",       "type",         "base_url",
                                           "api_key_file", "timeout_ms", "connect_timeout_ms",
                                           "connections", "ca_file",     "verify_tls"};
  if (!j.is_object())
    return bad(where, "must be an object");
  for (auto& [key, value] : j.items())
    if (!known.count(key))
      return bad(where + "." + key, "unknown field");
  auto name = j.find("name");
  if (name == j.end() || !name->is_string() || !valid_name(name->get<std::string>()))
    return bad(where + ".name", "1-64 characters of A-Z a-z 0-9 . _ -");
  spec.http.name = name->get<std::string>();
  auto type = j.value("type", std::string{});
  if (type == "simulated") {
    spec.kind = provider_spec::kind_t::simulated;
    if (j.size() > 2)
      return bad(where, "a simulated provider has only a name and a type");
    return caf::error{};
  }
  if (type != "http")
    return bad(where + ".type", "must be \"simulated\" or \"http\"");
  spec.kind = provider_spec::kind_t::http;
  return read_http(j, where, spec);
}

caf::error read_list(const json& doc, const char* key, std::vector<provider_spec>& out,
                     std::set<std::string>& names) {
  auto i = doc.find(key);
  if (i == doc.end() || !i->is_array() || i->empty())
    return bad(key, "a list of at least one provider is needed");
  for (std::size_t n = 0; n < i->size(); ++n) {
    auto where = std::string{key} + "[" + std::to_string(n) + "]";
    provider_spec spec;
    if (auto err = read_one((*i)[n], where, spec))
      return err;
    if (!names.insert(spec.http.name).second)
      return bad(where + ".name", "\"" + spec.http.name + "\" is named twice");
    out.push_back(std::move(spec));
  }
  return caf::error{};
}

} // namespace

provider_specs simulated_defaults() {
  auto simulated = [](const char* name) {
    provider_spec spec;
    spec.http.name = name;
    return spec;
  };
  return {{simulated("gw-primary"), simulated("gw-secondary")},
          {simulated("carrier-a"), simulated("carrier-b")}};
}

caf::expected<provider_specs> parse_providers(const std::string& text) {
  auto doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object())
    return bad("file", "not a JSON object");
  for (auto& [key, value] : doc.items())
    if (key != "gateways" && key != "carriers")
      return bad(key, "unknown field (gateways and carriers are)");
  provider_specs out;
  std::set<std::string> names;
  if (auto err = read_list(doc, "gateways", out.gateways, names))
    return err;
  if (auto err = read_list(doc, "carriers", out.carriers, names))
    return err;
  return out;
}

caf::expected<std::string> read_key_file(const std::string& path) {
  std::ifstream in{path};
  if (!in)
    return make_error(errc::invalid_argument, "key: cannot read the API key file " + path);
  std::stringstream buf;
  buf << in.rdbuf();
  auto key = buf.str();
  while (!key.empty() && std::isspace(static_cast<unsigned char>(key.back())))
    key.pop_back();
  if (key.empty())
    return make_error(errc::invalid_argument, "key: the API key file " + path + " is empty");
  return key;
}

bool split_endpoint(const std::string& text, std::string& host, int& port) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    return false;
  char* end = nullptr;
  auto p = std::strtol(text.c_str() + colon + 1, &end, 10);
  if (*end != '\0' || p < 0 || p > 65535)
    return false;
  host = text.substr(0, colon);
  port = static_cast<int>(p);
  return true;
}

caf::expected<provider_specs> load_providers(const std::string& path) {
  std::ifstream in{path};
  if (!in)
    return make_error(errc::invalid_argument, "providers: cannot read " + path);
  std::stringstream buf;
  buf << in.rdbuf();
  return parse_providers(buf.str());
}

bool write_port_file(const std::string& path, int port) {
  auto tmp = path + ".tmp";
  {
    std::ofstream out{tmp};
    if (!(out << port << '\n'))
      return false;
  }
  return std::rename(tmp.c_str(), path.c_str()) == 0;
}

} // namespace keel::runtime
