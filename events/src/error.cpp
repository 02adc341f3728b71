#include "keel/events/error.hpp"

#include <cctype>

#include <caf/atom.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

namespace keel {

std::string_view to_string(errc x) {
  switch (x) {
    case errc::version_conflict: return "version_conflict";
    case errc::invalid_argument: return "invalid_argument";
    case errc::malformed_payload: return "malformed_payload";
    case errc::corrupt_record: return "corrupt_record";
    case errc::unknown_event_type: return "unknown_event_type";
    case errc::not_found: return "not_found";
    case errc::duplicate_event_id: return "duplicate_event_id";
    case errc::storage_failure: return "storage_failure";
    case errc::not_writable: return "not_writable";
    case errc::overloaded: return "overloaded";
    case errc::circuit_open: return "circuit_open";
    case errc::timeout: return "timeout";
    case errc::actor_crashed: return "actor_crashed";
    case errc::restart_budget_exhausted: return "restart_budget_exhausted";
    case errc::not_cancellable: return "not_cancellable";
    case errc::provider_failure: return "provider_failure";
    case errc::out_of_stock: return "out_of_stock";
    case errc::projection_stopped: return "projection_stopped";
    case errc::not_for_sale: return "not_for_sale";
    case errc::price_changed: return "price_changed";
    case errc::currency_mismatch: return "currency_mismatch";
    case errc::order_id_taken: return "order_id_taken";
    case errc::unavailable: return "unavailable";
    case errc::not_owner: return "not_owner";
    case errc::stale_token: return "stale_token";
    case errc::log_gap: return "log_gap";
  }
  return "unknown_error";
}

caf::atom_value error_category() {
  return caf::atom("keel");
}

caf::error make_error(errc code, std::string context) {
  return caf::error{static_cast<std::uint8_t>(code), error_category(),
                    caf::make_message(std::move(context))};
}

errc code_of(const caf::error& err) {
  if (!err || err.category() != error_category())
    return errc{};
  return static_cast<errc>(err.code());
}

std::string describe(const caf::error& err) {
  if (!err)
    return "no error";
  if (err.category() != error_category())
    return caf::to_string(err);
  std::string result{to_string(static_cast<errc>(err.code()))};
  const auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0)) {
    result += ": ";
    result += ctx.get_as<std::string>(0);
  }
  return result;
}

field_reason split_field(const caf::error& err) {
  field_reason result;
  if (!err || err.category() != error_category() || err.context().size() != 1
      || !err.context().match_element<std::string>(0))
    return result;
  result.reason = err.context().get_as<std::string>(0);
  auto colon = result.reason.find(": ");
  if (colon == std::string::npos || colon == 0)
    return result;
  for (std::size_t i = 0; i < colon; ++i) {
    auto c = static_cast<unsigned char>(result.reason[i]);
    if (!(std::isalnum(c) || c == '_' || c == '.' || c == '[' || c == ']'))
      return result;
  }
  result.field = result.reason.substr(0, colon);
  result.reason.erase(0, colon + 2);
  return result;
}

} // namespace keel
