// The JSON requests of the HTTP API: parsed and validated before anything
// else happens (the fuzz target tests/fuzz/order_json_fuzz.cpp feeds this file).

#include "order_json.hpp"

#include <limits>

#include <nlohmann/json.hpp>

#include "keel/events/error.hpp"
#include "keel/events/json.hpp"

namespace keel::runtime {

using nlohmann::json;

std::string error_body(const api_error& err) {
  json j{{"error", {{"code", err.code}, {"message", err.message}}}};
  if (!err.field.empty())
    j["error"]["field"] = err.field;
  return events::dump_json(j);
}

namespace {

api_error bad(std::string field, std::string code, std::string message) {
  return api_error{400, std::move(code), std::move(message), std::move(field)};
}

const char* type_name(const json& x) {
  return x.type_name();
}

/// Parses `body` as one JSON object, or says why not.
std::variant<json, api_error> parse_object(std::string_view body) {
  if (body.size() > max_body_bytes)
    return bad("body", "body_too_large",
               "the body has " + std::to_string(body.size()) + " bytes; at most "
                 + std::to_string(max_body_bytes) + " are accepted");
  json j;
  try {
    j = json::parse(body.begin(), body.end());
  } catch (const json::parse_error& e) {
    return bad("body", "malformed_json", "the body is not valid JSON (at byte "
                                           + std::to_string(e.byte) + ")");
  } catch (const json::exception&) {
    // A number beyond a double (1e309) is out_of_range, not a parse error
    // (found by tests/fuzz/order_json_fuzz).
    return bad("body", "malformed_json", "the body holds a number out of range");
  }
  if (!j.is_object())
    return bad("body", "invalid_type",
               std::string{"the body must be a JSON object, not "} + type_name(j));
  return j;
}

/// Rejects members of `obj` not in `known`.
std::optional<api_error> unknown_members(const json& obj, std::initializer_list<const char*> known,
                                         const std::string& prefix) {
  for (auto& [key, value] : obj.items()) {
    bool found = false;
    for (auto* k : known)
      found = found || key == k;
    if (!found)
      return bad(prefix + key, "unknown_field", "unknown field \"" + key + "\"");
  }
  return std::nullopt;
}

/// Reads required (or optional, with `required` false) string member `key`.
std::optional<api_error> get_string(const json& obj, const char* key, const std::string& field,
                                    std::string& out, bool required = true) {
  auto i = obj.find(key);
  if (i == obj.end())
    return required ? std::optional<api_error>{bad(field, "missing_field", "is required")}
                    : std::nullopt;
  if (!i->is_string())
    return bad(field, "invalid_type", std::string{"must be a string, not "} + type_name(*i));
  out = i->get<std::string>();
  return std::nullopt;
}

/// Reads required integer member `key` within [lo, hi].
std::optional<api_error> get_integer(const json& obj, const char* key, const std::string& field,
                                     std::int64_t lo, std::int64_t hi, std::int64_t& out) {
  auto i = obj.find(key);
  if (i == obj.end())
    return bad(field, "missing_field", "is required");
  if (!i->is_number_integer())
    return bad(field, "invalid_type",
               std::string{"must be an integer, not "}
                 + (i->is_number() ? "a fractional number" : type_name(*i)));
  // Unsigned JSON numbers beyond int64 are out of range, never wrapped.
  bool in_range = false;
  if (i->is_number_unsigned()) {
    auto u = i->get<std::uint64_t>();
    in_range = u <= static_cast<std::uint64_t>(hi) && static_cast<std::int64_t>(u) >= lo;
  } else {
    auto v = i->get<std::int64_t>();
    in_range = v >= lo && v <= hi;
  }
  if (!in_range)
    return bad(field, "out_of_range",
               "must be " + std::to_string(lo) + ".." + std::to_string(hi));
  out = i->get<std::int64_t>();
  return std::nullopt;
}

std::optional<api_error> parse_line(const json& item, std::size_t index, events::order_line& line) {
  auto prefix = "items[" + std::to_string(index) + "]";
  if (!item.is_object())
    return bad(prefix, "invalid_type", std::string{"must be an object, not "} + type_name(item));
  if (auto err = unknown_members(item, {"sku", "quantity", "unit_price_cents"}, prefix + "."))
    return err;
  if (auto err = get_string(item, "sku", prefix + ".sku", line.sku))
    return err;
  std::int64_t quantity = 0;
  if (auto err = get_integer(item, "quantity", prefix + ".quantity", 1,
                             events::max_line_quantity, quantity))
    return err;
  line.quantity = static_cast<std::uint32_t>(quantity);
  line.unit_price_cents = events::unpriced; // the catalogue's
  if (!item.contains("unit_price_cents"))
    return std::nullopt;
  return get_integer(item, "unit_price_cents", prefix + ".unit_price_cents", 0,
                     events::max_unit_price_cents, line.unit_price_cents);
}

std::optional<api_error> parse_address(const json& obj, events::address& out) {
  auto i = obj.find("shipping_address");
  if (i == obj.end())
    return bad("shipping_address", "missing_field", "is required");
  if (!i->is_object())
    return bad("shipping_address", "invalid_type",
               std::string{"must be an object, not "} + type_name(*i));
  if (auto err = unknown_members(*i, {"name", "street", "city", "postal_code", "country"},
                                 "shipping_address."))
    return err;
  std::pair<const char*, std::string*> fields[] = {{"name", &out.name},
                                                   {"street", &out.street},
                                                   {"city", &out.city},
                                                   {"postal_code", &out.postal_code},
                                                   {"country", &out.country}};
  for (auto& [key, dest] : fields) {
    if (auto err = get_string(*i, key, std::string{"shipping_address."} + key, *dest))
      return err;
    if (dest->size() > 200)
      return bad(std::string{"shipping_address."} + key, "out_of_range", "at most 200 bytes");
  }
  return std::nullopt;
}

std::optional<api_error> parse_order_fields(const json& j, events::place_order& cmd,
                                            std::optional<bool>& premium) {
  if (auto err = unknown_members(j, {"order_id", "customer_id", "items", "currency",
                                     "shipping_address", "premium"}, ""))
    return err;
  if (auto err = get_string(j, "order_id", "order_id", cmd.order_id))
    return err;
  if (auto err = get_string(j, "customer_id", "customer_id", cmd.customer_id))
    return err;
  auto items = j.find("items");
  if (items == j.end())
    return bad("items", "missing_field", "is required");
  if (!items->is_array())
    return bad("items", "invalid_type", std::string{"must be an array, not "} + type_name(*items));
  if (items->empty() || items->size() > events::max_order_lines)
    return bad("items", items->empty() ? "out_of_range" : "too_many_lines",
               "must have 1.." + std::to_string(events::max_order_lines) + " lines, not "
                 + std::to_string(items->size()));
  cmd.lines.resize(items->size());
  for (std::size_t i = 0; i < items->size(); ++i)
    if (auto err = parse_line((*items)[i], i, cmd.lines[i]))
      return err;
  if (auto err = get_string(j, "currency", "currency", cmd.currency, false))
    return err;
  if (j.contains("currency") && cmd.currency.empty())
    return bad("currency", "invalid_value", "must be three upper-case letters (ISO 4217)");
  if (auto err = parse_address(j, cmd.shipping_address))
    return err;
  if (auto p = j.find("premium"); p != j.end()) {
    if (!p->is_boolean())
      return bad("premium", "invalid_type", std::string{"must be a boolean, not "} + type_name(*p));
    premium = p->get<bool>();
  }
  return std::nullopt;
}

} // namespace

std::variant<events::place_order, api_error> parse_place_order(std::string_view body,
                                                               std::optional<bool>& premium) {
  auto parsed = parse_object(body);
  if (auto* err = std::get_if<api_error>(&parsed))
    return std::move(*err);
  auto& j = std::get<json>(parsed);
  events::place_order cmd;
  premium.reset();
  if (auto err = parse_order_fields(j, cmd, premium))
    return std::move(*err);
  // The domain's own rules (id syntax, currency code) name the field first.
  if (auto err = events::validate(cmd)) {
    auto [field, why] = split_field(err);
    return bad(field, "invalid_value", why);
  }
  return cmd;
}

std::variant<std::int64_t, api_error> parse_stock_quantity(std::string_view body) {
  auto parsed = parse_object(body);
  if (auto* err = std::get_if<api_error>(&parsed))
    return std::move(*err);
  auto& j = std::get<json>(parsed);
  if (auto err = unknown_members(j, {"quantity"}, ""))
    return std::move(*err);
  std::int64_t quantity = 0;
  if (auto err = get_integer(j, "quantity", "quantity", 0, 1'000'000'000, quantity))
    return std::move(*err);
  return quantity;
}

std::variant<price_request, api_error> parse_price(std::string_view body) {
  auto parsed = parse_object(body);
  if (auto* err = std::get_if<api_error>(&parsed))
    return std::move(*err);
  auto& j = std::get<json>(parsed);
  if (auto err = unknown_members(j, {"price_cents", "currency"}, ""))
    return std::move(*err);
  price_request r;
  if (auto err = get_integer(j, "price_cents", "price_cents", 1, events::max_unit_price_cents,
                             r.price_cents))
    return std::move(*err);
  if (auto err = get_string(j, "currency", "currency", r.currency))
    return std::move(*err);
  return r;
}

std::variant<skip_request, api_error> parse_skip(std::string_view body) {
  auto parsed = parse_object(body);
  if (auto* err = std::get_if<api_error>(&parsed))
    return std::move(*err);
  auto& j = std::get<json>(parsed);
  if (auto err = unknown_members(j, {"position", "note"}, ""))
    return std::move(*err);
  skip_request r;
  std::int64_t position = 0;
  if (auto err = get_integer(j, "position", "position", 1, std::numeric_limits<std::int64_t>::max(),
                             position))
    return std::move(*err);
  r.position = static_cast<std::uint64_t>(position);
  if (auto err = get_string(j, "note", "note", r.note, false))
    return std::move(*err);
  if (r.note.size() > 500)
    return bad("note", "too_long", "must be at most 500 characters");
  return r;
}

namespace {

/// Reads optional number member `key` within [lo, hi].
std::optional<api_error> get_number(const json& obj, const char* key, double lo, double hi,
                                    double& out) {
  auto i = obj.find(key);
  if (i == obj.end())
    return std::nullopt;
  if (!i->is_number())
    return bad(key, "invalid_type", std::string{"must be a number, not "} + type_name(*i));
  auto v = i->get<double>();
  if (!(v >= lo && v <= hi))
    return bad(key, "out_of_range", "must be " + std::to_string(lo) + ".." + std::to_string(hi));
  out = v;
  return std::nullopt;
}

std::optional<api_error> parse_fault_fields(const json& j, fault_request& f) {
  if (auto err = unknown_members(j, {"provider", "error_rate", "decline_rate", "hang_rate", "latency_ms",
                                     "latency_p99_ms", "outage_seconds", "outage_hangs"}, ""))
    return err;
  if (auto err = get_string(j, "provider", "provider", f.provider))
    return err;
  if (j.contains("latency_ms"))
    if (auto err = get_integer(j, "latency_ms", "latency_ms", 0, 600000, f.latency_ms))
      return err;
  if (j.contains("latency_p99_ms"))
    if (auto err = get_integer(j, "latency_p99_ms", "latency_p99_ms", 0, 600000, f.latency_p99_ms))
      return err;
  for (auto err : {get_number(j, "error_rate", 0, 1, f.error_rate),
                   get_number(j, "decline_rate", 0, 1, f.decline_rate),
                   get_number(j, "hang_rate", 0, 1, f.hang_rate),
                   get_number(j, "outage_seconds", 0, 86400, f.outage_seconds)})
    if (err)
      return err;
  if (auto h = j.find("outage_hangs"); h != j.end()) {
    if (!h->is_boolean())
      return bad("outage_hangs", "invalid_type", std::string{"must be a boolean, not "} + type_name(*h));
    f.outage_hangs = h->get<bool>();
  }
  return std::nullopt;
}

} // namespace

std::variant<fault_request, api_error> parse_faults(std::string_view body) {
  auto parsed = parse_object(body);
  if (auto* err = std::get_if<api_error>(&parsed))
    return std::move(*err);
  fault_request f;
  if (auto err = parse_fault_fields(std::get<json>(parsed), f))
    return std::move(*err);
  return f;
}

} // namespace keel::runtime
