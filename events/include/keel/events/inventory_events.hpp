#pragma once

#include "keel/events/types.hpp"

/// Events of inventory, stored in stream "stock-<sku>".
namespace keel::events {

/// An operator set the units on hand of `sku`.
struct stock_adjusted {
  static constexpr const char* type_name = "stock_adjusted";
  static constexpr std::uint16_t schema_version = 1;
  std::string sku;
  std::int64_t on_hand = 0;
  std::string reason;
  KEEL_FIELDS(sku, on_hand, reason)
};

/// `quantity` units of `sku` are held for `order_id`.
struct stock_reserved {
  static constexpr const char* type_name = "stock_reserved";
  static constexpr std::uint16_t schema_version = 1;
  std::string sku;
  std::string order_id;
  std::uint32_t quantity = 0;
  KEEL_FIELDS(sku, order_id, quantity)
};

/// A reservation was refused: fewer than `requested` units were available.
struct stock_reservation_refused {
  static constexpr const char* type_name = "stock_reservation_refused";
  static constexpr std::uint16_t schema_version = 1;
  std::string sku;
  std::string order_id;
  std::uint32_t requested = 0;
  std::int64_t available = 0;
  KEEL_FIELDS(sku, order_id, requested, available)
};

/// A reservation was given back (compensation).
struct stock_released {
  static constexpr const char* type_name = "stock_released";
  static constexpr std::uint16_t schema_version = 1;
  std::string sku;
  std::string order_id;
  std::uint32_t quantity = 0;
  KEEL_FIELDS(sku, order_id, quantity)
};

/// A reservation became a sale: the units left the warehouse.
struct stock_committed {
  static constexpr const char* type_name = "stock_committed";
  static constexpr std::uint16_t schema_version = 1;
  std::string sku;
  std::string order_id;
  std::uint32_t quantity = 0;
  KEEL_FIELDS(sku, order_id, quantity)
};

} // namespace keel::events
