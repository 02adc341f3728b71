// The message format of payment.retry.queue: rendering and a parser that
// trusts nothing (the fuzz target tests/fuzz/retry_entry_fuzz.cpp feeds it).

#include <cctype>
#include <cstdio>
#include <ctime>
#include <limits>
#include <optional>

#include <nlohmann/json.hpp>

#include "keel/events/error.hpp"
#include "keel/events/json.hpp"
#include "keel/storage/kafka.hpp"

namespace keel::storage {

// -- message format -----------------------------------------------------------

std::string to_json(const retry_entry& e) {
  nlohmann::json j{{"order_id", e.order_id},
                   {"timestamp", events::format_timestamp(e.timestamp_us)},
                   {"timestamp_us", e.timestamp_us},
                   {"retry_count", e.retry_count},
                   {"priority", e.premium ? "HIGH" : "NORMAL"},
                   {"correlation_id", e.correlation_id},
                   {"retry_at", events::format_timestamp(e.retry_at_us)},
                   {"retry_at_us", e.retry_at_us},
                   {"fallback_reason", e.fallback_reason}};
  return events::dump_json(j);
}

namespace {

// "YYYY-MM-DDTHH:MM:SS[.fraction]Z" to microseconds since the epoch.
std::optional<std::int64_t> parse_iso(const std::string& text) {
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0, n = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &n) != 6
      || n != 19 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
    return std::nullopt;
  std::size_t i = 19;
  std::int64_t frac_us = 0;
  if (i < text.size() && text[i] == '.') {
    std::int64_t scale = 100000;
    auto first = ++i;
    for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i, scale /= 10)
      frac_us += (text[i] - '0') * scale;
    if (i == first)
      return std::nullopt;
  }
  if (i + 1 != text.size() || text[i] != 'Z')
    return std::nullopt;
  std::tm tm{};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = s;
  return static_cast<std::int64_t>(::timegm(&tm)) * 1000000 + frac_us;
}

caf::error malformed(const std::string& what) {
  return make_error(errc::malformed_payload, "retry entry: " + what);
}

// Reads time `name`: "<name>_us" (integer µs) wins over "<name>" (integer µs
// or ISO-8601); absent is 0.
caf::error read_time(const nlohmann::json& j, const std::string& name, std::int64_t& out) {
  if (auto us = j.find(name + "_us"); us != j.end() && !us->is_null()) {
    if (!us->is_number_integer())
      return malformed(name + "_us is not an integer");
    out = us->get<std::int64_t>();
    return caf::error{};
  }
  auto t = j.find(name);
  if (t == j.end() || t->is_null())
    return caf::error{};
  if (t->is_number_integer()) {
    out = t->get<std::int64_t>();
    return caf::error{};
  }
  if (t->is_string())
    if (auto us = parse_iso(t->get_ref<const std::string&>())) {
      out = *us;
      return caf::error{};
    }
  return malformed(name + " is neither microseconds nor ISO-8601");
}

caf::error read_string(const nlohmann::json& j, const char* name, std::string& out) {
  auto v = j.find(name);
  if (v == j.end() || v->is_null())
    return caf::error{};
  if (!v->is_string())
    return malformed(std::string{name} + " is not a string");
  out = v->get<std::string>();
  return caf::error{};
}

} // namespace

caf::expected<retry_entry> parse_retry_entry(std::string_view text) {
  auto j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return malformed("not a JSON object");
  retry_entry e;
  if (auto err = read_string(j, "order_id", e.order_id))
    return err;
  if (e.order_id.empty())
    return malformed("no order_id");
  auto count = j.find("retry_count");
  if (count == j.end() || !count->is_number_unsigned()
      || count->get<std::uint64_t>() > std::numeric_limits<std::uint32_t>::max())
    return malformed("retry_count is not an unsigned 32-bit number");
  e.retry_count = count->get<std::uint32_t>();
  std::string priority = "NORMAL";
  if (auto err = read_string(j, "priority", priority))
    return err;
  if (priority != "HIGH" && priority != "NORMAL")
    return malformed("priority is neither HIGH nor NORMAL");
  e.premium = priority == "HIGH";
  if (auto err = read_string(j, "correlation_id", e.correlation_id))
    return err;
  if (auto err = read_string(j, "fallback_reason", e.fallback_reason))
    return err;
  if (auto err = read_time(j, "timestamp", e.timestamp_us))
    return err;
  if (auto err = read_time(j, "retry_at", e.retry_at_us))
    return err;
  return e;
}

} // namespace keel::storage
