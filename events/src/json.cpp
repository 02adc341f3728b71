#include "keel/events/json.hpp"

#include <ctime>

#include <nlohmann/json.hpp>

#include "keel/events/error.hpp"
#include "keel/events/fields.hpp"
#include "keel/events/record.hpp"

namespace keel::events {

void to_json(nlohmann::json& j, const event_id& x) {
  j = to_string(x);
}

NLOHMANN_JSON_SERIALIZE_ENUM(breaker_state, {{breaker_state::closed, "closed"},
                                             {breaker_state::open, "open"},
                                             {breaker_state::half_open, "half_open"}})

NLOHMANN_JSON_SERIALIZE_ENUM(end_reason,
                             {{end_reason::unspecified, "unspecified"},
                              {end_reason::out_of_stock, "out_of_stock"},
                              {end_reason::payment_declined, "payment_declined"},
                              {end_reason::payment_unavailable, "payment_unavailable"},
                              {end_reason::shipping_failed, "shipping_failed"},
                              {end_reason::cancelled_by_customer, "cancelled_by_customer"}})

namespace {

/// Accepts any field, so the overload below exists only for types with a
/// field list.
struct any_field {
  template <class V>
  void operator()(const char*, const V&) const {
  }
};

} // namespace

/// Every type of fields.hpp as a JSON object of its named fields.
template <class T, class = decltype(fields(std::declval<const T&>(), any_field{}))>
void to_json(nlohmann::json& j, const T& x) {
  j = nlohmann::json::object();
  fields(x, [&j](const char* name, const auto& v) { j[name] = v; });
}

nlohmann::json to_json_value(const event& ev) {
  return std::visit([](const auto& x) { return nlohmann::json(x); }, ev);
}

std::string dump_json(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string to_json(const event& ev) {
  return dump_json(to_json_value(ev));
}

std::string format_timestamp(std::int64_t us) {
  auto secs = static_cast<std::time_t>(us / 1'000'000);
  auto frac = us % 1'000'000;
  if (frac < 0) {
    frac += 1'000'000;
    --secs;
  }
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof out, "%s.%06lldZ", buf, static_cast<long long>(frac));
  return out;
}

nlohmann::json to_json_value(const record& rec) {
  nlohmann::json j;
  j["position"] = rec.position;
  j["stream"] = rec.stream;
  j["version"] = rec.version;
  j["type"] = rec.type;
  j["schema_version"] = rec.schema_version;
  j["event_id"] = to_string(rec.id);
  j["correlation_id"] = to_string(rec.correlation_id);
  j["causation_id"] = to_string(rec.causation_id);
  j["timestamp_us"] = rec.timestamp_us;
  j["time"] = format_timestamp(rec.timestamp_us);
  if (auto ev = rec.decode_payload())
    j["data"] = to_json_value(*ev);
  else
    j["error"] = describe(ev.error());
  return j;
}

} // namespace keel::events
