// libFuzzer target: the HTTP API's request parsers (POST /v1/orders, PUT
// /admin/stock, PUT /admin/catalog, skip, faults). Any body gets a command
// or a 400 naming a field, never a crash; an accepted order passes the
// domain's validation.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string_view>

#include "order_json.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace keel;
  std::string_view body{reinterpret_cast<const char*>(data), size};
  std::optional<bool> premium;
  auto order = runtime::parse_place_order(body, premium);
  if (auto* cmd = std::get_if<events::place_order>(&order)) {
    if (events::validate(*cmd))
      std::abort(); // accepted but invalid
  } else if (std::get<runtime::api_error>(order).status != 400
             && std::get<runtime::api_error>(order).status != 413) {
    std::abort();
  }
  (void) runtime::parse_stock_quantity(body);
  (void) runtime::parse_price(body);
  (void) runtime::parse_skip(body);
  (void) runtime::parse_faults(body);
  return 0;
}
