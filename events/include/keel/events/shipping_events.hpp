#pragma once

#include "keel/events/types.hpp"

/// Events of the shipping service, stored in stream "shipment-<order id>".
namespace keel::events {

/// A carrier accepted the shipment.
struct shipment_scheduled {
  static constexpr const char* type_name = "shipment_scheduled";
  static constexpr std::uint16_t schema_version = 1;
  std::string order_id;
  std::string tracking_id;
  std::string carrier;
  std::int64_t estimated_delivery_us = 0;
  KEEL_FIELDS(order_id, tracking_id, carrier, estimated_delivery_us)
};

/// No carrier could schedule the shipment.
struct shipment_failed {
  static constexpr const char* type_name = "shipment_failed";
  static constexpr std::uint16_t schema_version = 1;
  std::string order_id;
  std::string carrier;
  std::string reason;
  KEEL_FIELDS(order_id, carrier, reason)
};

/// A scheduled shipment was cancelled (compensation).
struct shipment_cancelled {
  static constexpr const char* type_name = "shipment_cancelled";
  static constexpr std::uint16_t schema_version = 1;
  std::string order_id;
  std::string tracking_id;
  std::string carrier;
  KEEL_FIELDS(order_id, tracking_id, carrier)
};

} // namespace keel::events
