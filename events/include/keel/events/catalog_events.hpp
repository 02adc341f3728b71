#pragma once

#include "keel/events/types.hpp"

/// Events of the catalogue, stored in stream "catalog-<sku>". Orders are
/// priced from it: a line's unit price is the SKU's price when the order is
/// placed (recorded in order_placed), never a price the client names.
namespace keel::events {

/// An operator put `sku` on sale at `price_cents` per unit in `currency`
/// (or changed its price).
struct catalog_price_set {
  static constexpr const char* type_name = "catalog_price_set";
  static constexpr std::uint16_t schema_version = 1;
  std::string sku;
  std::int64_t price_cents = 0;
  std::string currency;
  std::string set_by;
  KEEL_FIELDS(sku, price_cents, currency, set_by)
};

/// An operator took `sku` off sale: new orders of it are refused until it
/// is priced again (orders placed before keep their price).
struct catalog_entry_withdrawn {
  static constexpr const char* type_name = "catalog_entry_withdrawn";
  static constexpr std::uint16_t schema_version = 1;
  std::string sku;
  std::string withdrawn_by;
  KEEL_FIELDS(sku, withdrawn_by)
};

} // namespace keel::events
