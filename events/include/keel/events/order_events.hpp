#pragma once

#include "keel/events/reasons.hpp"
#include "keel/events/types.hpp"

/// Events of the order saga, stored in stream "order-<order id>".
namespace keel::events {

/// A customer placed an order; the saga starts.
/// Schema 2 added `currency` and `premium`; schema-1 records decode with
/// currency "EUR" and premium false (the only values schema 1 knew).
struct order_placed {
  static constexpr const char* type_name = "order_placed";
  static constexpr std::uint16_t schema_version = 2;
  std::string order_id;
  std::string customer_id;
  std::vector<order_line> lines;
  std::string currency = "EUR";
  address shipping_address;
  bool premium = false;
  std::int64_t total_cents = 0;

  template <class Self, class F>
  static void keel_fields(Self& self, F&& f) {
    f("order_id", self.order_id, std::uint16_t{1});
    f("customer_id", self.customer_id, std::uint16_t{1});
    f("lines", self.lines, std::uint16_t{1});
    f("currency", self.currency, std::uint16_t{2});
    f("shipping_address", self.shipping_address, std::uint16_t{1});
    f("premium", self.premium, std::uint16_t{2});
    f("total_cents", self.total_cents, std::uint16_t{1});
  }
  KEEL_SERIALIZE_FIELDS
};

/// The field list of order_rejected and order_cancelled (schema 2).
template <class Self, class F>
void end_fields(Self& self, F&& f) {
  f("order_id", self.order_id, std::uint16_t{1});
  f("reason", self.reason, std::uint16_t{1});
  f("code", self.code, std::uint16_t{2});
}

/// The order was refused before anything was done (e.g. out of stock).
/// Schema 2 added `code`: `reason` is then the detail for people and
/// `reason_text(code, reason)` the text; schema-1 records decode with code
/// `unspecified` and their whole text as `reason`.
struct order_rejected {
  static constexpr const char* type_name = "order_rejected";
  static constexpr std::uint16_t schema_version = 2;
  std::string order_id;
  std::string reason;
  end_reason code = end_reason::unspecified;

  template <class Self, class F>
  static void keel_fields(Self& self, F&& f) {
    end_fields(self, f);
  }
  KEEL_SERIALIZE_FIELDS
};

/// Every line of the order is reserved in inventory.
struct order_stock_reserved {
  static constexpr const char* type_name = "order_stock_reserved";
  static constexpr std::uint16_t schema_version = 1;
  std::string order_id;
  KEEL_FIELDS(order_id)
};

/// The payment provider authorized the order's amount.
struct order_payment_authorized {
  static constexpr const char* type_name = "order_payment_authorized";
  static constexpr std::uint16_t schema_version = 1;
  std::string order_id;
  std::string payment_id;
  std::string provider;
  std::int64_t amount_cents = 0;
  KEEL_FIELDS(order_id, payment_id, provider, amount_cents)
};

/// Payment could not be attempted or answered (breaker open, bulkhead full,
/// timeout); the order waits on the payment retry queue until `retry_at_us`.
struct order_payment_pending {
  static constexpr const char* type_name = "order_payment_pending";
  static constexpr std::uint16_t schema_version = 1;
  std::string order_id;
  std::string reason;
  std::uint32_t attempt = 0;
  std::int64_t retry_at_us = 0;
  KEEL_FIELDS(order_id, reason, attempt, retry_at_us)
};

/// A carrier scheduled the shipment.
struct order_shipment_scheduled {
  static constexpr const char* type_name = "order_shipment_scheduled";
  static constexpr std::uint16_t schema_version = 1;
  std::string order_id;
  std::string tracking_id;
  std::string carrier;
  std::int64_t estimated_delivery_us = 0;
  KEEL_FIELDS(order_id, tracking_id, carrier, estimated_delivery_us)
};

/// The authorized payment was captured.
struct order_payment_captured {
  static constexpr const char* type_name = "order_payment_captured";
  static constexpr std::uint16_t schema_version = 1;
  std::string order_id;
  std::string payment_id;
  std::int64_t amount_cents = 0;
  KEEL_FIELDS(order_id, payment_id, amount_cents)
};

/// Terminal: the order is paid and shipped.
struct order_completed {
  static constexpr const char* type_name = "order_completed";
  static constexpr std::uint16_t schema_version = 1;
  std::string order_id;
  KEEL_FIELDS(order_id)
};

/// The customer (or an operator) asked to cancel the order.
struct order_cancel_requested {
  static constexpr const char* type_name = "order_cancel_requested";
  static constexpr std::uint16_t schema_version = 1;
  std::string order_id;
  std::string requested_by;
  KEEL_FIELDS(order_id, requested_by)
};

/// Compensation: the order's reservations were released.
struct order_stock_released {
  static constexpr const char* type_name = "order_stock_released";
  static constexpr std::uint16_t schema_version = 1;
  std::string order_id;
  KEEL_FIELDS(order_id)
};

/// Compensation: the authorization was voided (nothing was captured).
struct order_payment_voided {
  static constexpr const char* type_name = "order_payment_voided";
  static constexpr std::uint16_t schema_version = 1;
  std::string order_id;
  std::string payment_id;
  KEEL_FIELDS(order_id, payment_id)
};

/// Compensation: a captured payment was refunded.
struct order_payment_refunded {
  static constexpr const char* type_name = "order_payment_refunded";
  static constexpr std::uint16_t schema_version = 1;
  std::string order_id;
  std::string payment_id;
  std::int64_t amount_cents = 0;
  KEEL_FIELDS(order_id, payment_id, amount_cents)
};

/// Terminal: the order was cancelled after its compensations ran. Schema 2
/// added `code`, as for order_rejected.
struct order_cancelled {
  static constexpr const char* type_name = "order_cancelled";
  static constexpr std::uint16_t schema_version = 2;
  std::string order_id;
  std::string reason;
  end_reason code = end_reason::unspecified;

  template <class Self, class F>
  static void keel_fields(Self& self, F&& f) {
    end_fields(self, f);
  }
  KEEL_SERIALIZE_FIELDS
};

/// Inventory could not reserve a line of the order. `partially_reserved`
/// says whether other lines of the order may hold reservations that must be
/// released before the order is rejected.
struct order_stock_refused {
  static constexpr const char* type_name = "order_stock_refused";
  static constexpr std::uint16_t schema_version = 1;
  std::string order_id;
  std::string sku;
  std::uint32_t requested = 0;
  std::int64_t available = 0;
  bool partially_reserved = false;
  KEEL_FIELDS(order_id, sku, requested, available, partially_reserved)
};

/// Every payment provider that answered declined the payment.
struct order_payment_declined {
  static constexpr const char* type_name = "order_payment_declined";
  static constexpr std::uint16_t schema_version = 1;
  std::string order_id;
  std::string provider;
  std::string reason;
  KEEL_FIELDS(order_id, provider, reason)
};

/// No carrier could schedule the shipment.
struct order_shipment_failed {
  static constexpr const char* type_name = "order_shipment_failed";
  static constexpr std::uint16_t schema_version = 1;
  std::string order_id;
  std::string reason;
  KEEL_FIELDS(order_id, reason)
};

/// Compensation: a shipment scheduled for a cancelled order was cancelled.
struct order_shipment_cancelled {
  static constexpr const char* type_name = "order_shipment_cancelled";
  static constexpr std::uint16_t schema_version = 1;
  std::string order_id;
  std::string tracking_id;
  KEEL_FIELDS(order_id, tracking_id)
};

} // namespace keel::events
