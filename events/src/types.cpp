#include <string>

#include "keel/events/commands.hpp"
#include "keel/events/error.hpp"
#include "keel/events/ids.hpp"
#include "keel/events/system_events.hpp"
#include "keel/events/types.hpp"

namespace keel::events {

std::int64_t total_cents(const std::vector<order_line>& lines) {
  std::int64_t sum = 0;
  for (const auto& line : lines)
    sum += static_cast<std::int64_t>(line.quantity) * line.unit_price_cents;
  return sum;
}

const char* to_string(breaker_state x) {
  switch (x) {
    case breaker_state::closed: return "closed";
    case breaker_state::open: return "open";
    case breaker_state::half_open: return "half_open";
  }
  return "invalid";
}

namespace {

caf::error field_error(const std::string& field, const std::string& why) {
  return make_error(errc::invalid_argument, field + ": " + why);
}

bool valid_currency(const std::string& x) {
  if (x.size() != 3)
    return false;
  for (char c : x)
    if (c < 'A' || c > 'Z')
      return false;
  return true;
}

} // namespace

caf::error validate(const place_order& cmd) {
  auto key_rule = "must be 1.." + std::to_string(max_key_size)
                  + " characters of A-Z a-z 0-9 . _ : - (nothing that needs URL escaping)";
  if (!valid_key(cmd.order_id))
    return field_error("order_id", key_rule);
  if (!valid_key(cmd.customer_id))
    return field_error("customer_id", key_rule);
  if (cmd.lines.empty() || cmd.lines.size() > max_order_lines)
    return field_error("items", "must have 1.." + std::to_string(max_order_lines) + " lines");
  for (std::size_t i = 0; i < cmd.lines.size(); ++i) {
    const auto& line = cmd.lines[i];
    auto prefix = "items[" + std::to_string(i) + "].";
    if (!valid_key(line.sku))
      return field_error(prefix + "sku", key_rule);
    if (line.quantity < 1 || line.quantity > max_line_quantity)
      return field_error(prefix + "quantity",
                         "must be 1.." + std::to_string(max_line_quantity));
    if (line.unit_price_cents != unpriced
        && (line.unit_price_cents < 0 || line.unit_price_cents > max_unit_price_cents))
      return field_error(prefix + "unit_price_cents",
                         "must be 0.." + std::to_string(max_unit_price_cents));
  }
  if (!cmd.currency.empty() && !valid_currency(cmd.currency))
    return field_error("currency", "must be three upper-case letters (ISO 4217)");
  return caf::error{};
}

} // namespace keel::events
