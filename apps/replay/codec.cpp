#include "codec.hpp"

#include <cstring>
#include <limits>
#include <map>
#include <stdexcept>
#include <tuple>
#include <type_traits>

#include "keel/events/error.hpp"
#include "keel/events/fields.hpp"
#include "keel/events/json.hpp"

namespace keel::replay {

namespace {

using nlohmann::json;
using namespace keel::events;

// -- field lists: every type's own (keel/events/fields.hpp) ------------------

/// A command's fields in history files: its own list without the order id
/// (the history's) and the causation (the issuing event's own id).
template <class T, class F>
void command_fields(T& x, F&& f) {
  fields(x, [&f](const char* name, auto& v) {
    if constexpr (!std::is_same_v<std::decay_t<decltype(v)>, event_id>)
      if (std::strcmp(name, "order_id") != 0)
        f(name, v);
  });
}

// -- writing --------------------------------------------------------------------

json to_value(const std::string& x) {
  return x;
}
json to_value(bool x) {
  return x;
}
template <class T, class = std::enable_if_t<std::is_integral_v<T>>>
json to_value(T x) {
  return x;
}
json to_value(end_reason x) {
  return to_string(x);
}
json to_value(order_line x);
json to_value(address x);
json to_value(const std::vector<order_line>& xs) {
  auto result = json::array();
  for (auto& x : xs)
    result.push_back(to_value(x));
  return result;
}

template <class T>
json object_of(T x) { // by value: fields() takes mutable references
  auto result = json::object();
  fields(x, [&](const char* name, const auto& v) { result[name] = to_value(v); });
  return result;
}

template <class T>
json command_object(T x) { // by value: command_fields() takes mutable references
  auto result = json::object();
  command_fields(x, [&](const char* name, const auto& v) { result[name] = to_value(v); });
  return result;
}

json to_value(order_line x) {
  return object_of(std::move(x));
}
json to_value(address x) {
  return object_of(std::move(x));
}

// -- reading --------------------------------------------------------------------

/// A history file that does not fit the format; the message names the member.
struct bad_history : std::runtime_error {
  using std::runtime_error::runtime_error;
};

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw bad_history(path + ": " + what);
}

void read(const json& j, const std::string& path, std::string& x) {
  if (!j.is_string())
    fail(path, "expected a string");
  x = j.get<std::string>();
}

void read(const json& j, const std::string& path, bool& x) {
  if (!j.is_boolean())
    fail(path, "expected true or false");
  x = j.get<bool>();
}

template <class T>
std::enable_if_t<std::is_integral_v<T>> read(const json& j, const std::string& path, T& x) {
  if constexpr (std::is_unsigned_v<T>) {
    if (!j.is_number_unsigned())
      fail(path, "expected an unsigned integer");
    auto v = j.get<std::uint64_t>();
    if (v > std::numeric_limits<T>::max())
      fail(path, "out of range");
    x = static_cast<T>(v);
  } else {
    if (!j.is_number_integer())
      fail(path, "expected an integer");
    if (j.is_number_unsigned()
        && j.get<std::uint64_t>() > static_cast<std::uint64_t>(std::numeric_limits<T>::max()))
      fail(path, "out of range");
    x = j.get<T>();
  }
}

void read(const json& j, const std::string& path, end_reason& x) {
  if (!j.is_string())
    fail(path, "expected an end reason");
  auto code = parse_end_reason(j.get<std::string>());
  if (!code)
    fail(path, "\"" + j.get<std::string>() + "\" is not an end reason");
  x = *code;
}

void read(const json& j, const std::string& path, order_line& x);
void read(const json& j, const std::string& path, address& x);
void read(const json& j, const std::string& path, std::vector<order_line>& xs);

template <class T>
void read_object(const json& j, const std::string& path, T& x) {
  if (!j.is_object())
    fail(path, "expected an object");
  // A field a later schema added may be missing (files written before it).
  fields_since(x, [&](const char* name, auto& v, std::uint16_t since) {
    auto i = j.find(name);
    if (i == j.end()) {
      if (since > 1)
        return;
      fail(path + "." + name, "missing");
    }
    read(*i, path + "." + name, v);
  });
}

void read(const json& j, const std::string& path, order_line& x) {
  read_object(j, path, x);
}

void read(const json& j, const std::string& path, address& x) {
  read_object(j, path, x);
}

void read(const json& j, const std::string& path, std::vector<order_line>& xs) {
  if (!j.is_array())
    fail(path, "expected an array");
  xs.resize(j.size());
  for (std::size_t i = 0; i < j.size(); ++i)
    read(j[i], path + "[" + std::to_string(i) + "]", xs[i]);
}

using order_event_types
  = std::tuple<order_placed, order_rejected, order_stock_reserved, order_payment_authorized,
               order_payment_pending, order_shipment_scheduled, order_payment_captured,
               order_completed, order_cancel_requested, order_stock_released,
               order_payment_voided, order_payment_refunded, order_cancelled,
               order_stock_refused, order_payment_declined, order_shipment_failed,
               order_shipment_cancelled>;

template <std::size_t... Is>
event decode_order_event(const std::string& type, const json& j, const std::string& path,
                         std::index_sequence<Is...>) {
  event result;
  bool found = false;
  auto try_one = [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (found || type != T::type_name)
      return;
    T x;
    read_object(j, path, x);
    result = std::move(x);
    found = true;
  };
  (try_one(std::common_type<std::tuple_element_t<Is, order_event_types>>{}), ...);
  if (!found)
    fail(path, "\"" + type + "\" is not an order event type");
  return result;
}

const json& member(const json& j, const std::string& path, const char* name) {
  auto i = j.find(name);
  if (i == j.end())
    fail(path + "." + name, "missing");
  return *i;
}

history_event read_event(const json& j, const std::string& path) {
  if (!j.is_object())
    fail(path, "expected an object");
  history_event x;
  read(member(j, path, "position"), path + ".position", x.position);
  read(member(j, path, "version"), path + ".version", x.version);
  read(member(j, path, "type"), path + ".type", x.type);
  read(member(j, path, "timestamp_us"), path + ".timestamp_us", x.timestamp_us);
  x.data = decode_order_event(x.type, member(j, path, "data"), path + ".data",
                              std::make_index_sequence<std::tuple_size_v<order_event_types>>{});
  auto& cmds = member(j, path, "commands");
  if (!cmds.is_array())
    fail(path + ".commands", "expected an array");
  for (std::size_t i = 0; i < cmds.size(); ++i) {
    auto at = path + ".commands[" + std::to_string(i) + "]";
    if (!cmds[i].is_object() || !cmds[i].contains("command") || !cmds[i]["command"].is_string())
      fail(at, "expected an object with a \"command\" name");
    x.commands.push_back(cmds[i]);
  }
  return x;
}

history read_history(const json& doc) {
  if (!doc.is_object())
    fail("(document)", "expected an object");
  std::string format;
  read(member(doc, "", "format"), ".format", format);
  if (format != history_format)
    fail(".format", "expected \"" + std::string{history_format} + "\", got \"" + format + "\"");
  int version = 0;
  read(member(doc, "", "format_version"), ".format_version", version);
  if (version != history_format_version)
    fail(".format_version", std::to_string(version) + " is not supported (this build reads "
                              + std::to_string(history_format_version) + ")");
  history h;
  read(member(doc, "", "order_id"), ".order_id", h.order_id);
  auto& pol = member(doc, "", "policy");
  read(member(pol, ".policy", "max_payment_attempts"), ".policy.max_payment_attempts",
       h.policy.max_payment_attempts);
  read(member(pol, ".policy", "payment_deadline_us"), ".policy.payment_deadline_us",
       h.policy.payment_deadline_us);
  auto& evs = member(doc, "", "events");
  if (!evs.is_array() || evs.empty())
    fail(".events", "expected a non-empty array");
  for (std::size_t i = 0; i < evs.size(); ++i) {
    auto path = ".events[" + std::to_string(i) + "]";
    h.events.push_back(read_event(evs[i], path));
    if (h.events.back().version != i + 1)
      fail(path + ".version", "expected " + std::to_string(i + 1) + " (versions are gap-free from 1), got "
                                + std::to_string(h.events.back().version));
  }
  return h;
}

/// The quantity per SKU of `lines` (an order may list a SKU twice).
std::map<std::string, std::uint64_t> per_sku(const std::vector<order_line>& lines) {
  std::map<std::string, std::uint64_t> result;
  for (auto& l : lines)
    result[l.sku] += l.quantity;
  return result;
}

std::map<std::string, std::uint64_t> per_sku(const json& lines) {
  std::map<std::string, std::uint64_t> result;
  if (!lines.is_array())
    return result;
  for (auto& l : lines)
    if (l.is_object() && l.contains("sku") && l["sku"].is_string() && l.contains("quantity")
        && l["quantity"].is_number_unsigned())
      result[l["sku"].get<std::string>()] += l["quantity"].get<std::uint64_t>();
  return result;
}

bool sku_quantities_match(const std::map<std::string, std::uint64_t>& e,
                          const std::map<std::string, std::uint64_t>& r, bool partial) {
  if (!partial)
    return e == r;
  for (auto& [sku, qty] : r) {
    auto i = e.find(sku);
    if (i == e.end() || i->second != qty)
      return false;
  }
  return true;
}

} // namespace

bool lines_match(const json& expected, const json& recorded, bool partial) {
  return sku_quantities_match(per_sku(expected), per_sku(recorded), partial);
}

bool command_equals(const actors::saga_command& cmd, const json& recorded, match_mode mode) {
  auto name = recorded.find("command");
  if (name == recorded.end() || !name->is_string()
      || name->get_ref<const std::string&>() != actors::command_name(cmd))
    return false;
  bool partial = false;
  if (auto p = recorded.find("partial"); p != recorded.end())
    partial = mode == match_mode::evidence && p->is_boolean() && p->get<bool>();
  bool ok = true;
  std::size_t seen = 1;
  std::visit(
    [&](auto x) { // a copy: fields() takes mutable references
      command_fields(x, [&](const char* field, const auto& v) {
        using T = std::decay_t<decltype(v)>;
        auto i = recorded.find(field);
        if (i == recorded.end()) {
          ok = ok && mode == match_mode::evidence;
          return;
        }
        ++seen;
        if constexpr (std::is_same_v<T, std::vector<order_line>>) {
          ok = ok
               && (mode == match_mode::evidence
                     ? sku_quantities_match(per_sku(v), per_sku(*i), partial)
                     : to_value(v) == *i);
        } else if constexpr (std::is_same_v<T, std::string>) {
          ok = ok && i->is_string() && i->template get_ref<const std::string&>() == v;
        } else if constexpr (std::is_same_v<T, bool> || std::is_integral_v<T>) {
          ok = ok && *i == v;
        } else {
          ok = ok && to_value(v) == *i;
        }
      });
    },
    cmd);
  if (mode == match_mode::exact)
    ok = ok && recorded.size() == seen;
  return ok;
}

json command_json(const actors::saga_command& cmd) {
  auto result = std::visit([](auto x) { return command_object(std::move(x)); }, cmd);
  json named = {{"command", actors::command_name(cmd)}};
  named.update(result);
  return named;
}

nlohmann::ordered_json history_json(const history& h, const json& extra) {
  using ojson = nlohmann::ordered_json;
  ojson doc;
  doc["format"] = history_format;
  doc["format_version"] = history_format_version;
  doc["order_id"] = h.order_id;
  doc["policy"]["max_payment_attempts"] = h.policy.max_payment_attempts;
  doc["policy"]["payment_deadline_us"] = h.policy.payment_deadline_us;
  if (extra.is_object())
    for (auto& [k, v] : extra.items())
      doc[k] = ojson(v);
  auto evs = ojson::array();
  for (auto& e : h.events) {
    ojson x;
    x["position"] = e.position;
    x["version"] = e.version;
    x["type"] = e.type;
    x["timestamp_us"] = e.timestamp_us;
    x["time"] = format_timestamp(e.timestamp_us);
    x["data"] = ojson(to_json_value(e.data));
    x["commands"] = ojson::array();
    for (auto& c : e.commands) {
      ojson cmd;
      cmd["command"] = c.value("command", std::string{});
      for (auto& [k, v] : c.items())
        if (k != "command")
          cmd[k] = ojson(v);
      x["commands"].push_back(std::move(cmd));
    }
    evs.push_back(std::move(x));
  }
  doc["events"] = std::move(evs);
  return doc;
}

caf::expected<history> parse_history(const std::string& text) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::parse_error& e) {
    // e.what() reads "[json.exception.parse_error.101] parse error at line 3, column 5: ..."
    std::string what = e.what();
    auto at = what.find("parse error");
    return make_error(errc::invalid_argument,
                      "not JSON: " + (at == std::string::npos ? what : what.substr(at)));
  } catch (const json::exception&) {
    // A number beyond a double (1e309) is out_of_range, not a parse error.
    return make_error(errc::invalid_argument, "not JSON: a number out of range");
  }
  try {
    auto h = read_history(doc);
    h.mode = match_mode::exact;
    return h;
  } catch (const bad_history& e) {
    return make_error(errc::invalid_argument, e.what());
  } catch (const json::exception& e) {
    return make_error(errc::invalid_argument, e.what());
  }
}

} // namespace keel::replay
