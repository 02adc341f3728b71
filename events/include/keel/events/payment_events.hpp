#pragma once

#include "keel/events/types.hpp"

/// Events of the payment service, stored in stream "payment-<order id>".
namespace keel::events {

/// A provider authorized `amount_cents`. The provider saw `idempotency_key`.
/// Schema 2 added `provider`; schema-1 records decode with provider "primary"
/// (the only gateway schema 1 knew).
struct payment_authorized {
  static constexpr const char* type_name = "payment_authorized";
  static constexpr std::uint16_t schema_version = 2;
  std::string order_id;
  std::string payment_id;
  std::string provider = "primary";
  std::int64_t amount_cents = 0;
  std::string currency;
  std::string idempotency_key;

  template <class Self, class F>
  static void keel_fields(Self& self, F&& f) {
    f("order_id", self.order_id, std::uint16_t{1});
    f("payment_id", self.payment_id, std::uint16_t{1});
    f("provider", self.provider, std::uint16_t{2});
    f("amount_cents", self.amount_cents, std::uint16_t{1});
    f("currency", self.currency, std::uint16_t{1});
    f("idempotency_key", self.idempotency_key, std::uint16_t{1});
  }
  KEEL_SERIALIZE_FIELDS
};

/// The provider declined the payment (a business answer, not a fault).
struct payment_declined {
  static constexpr const char* type_name = "payment_declined";
  static constexpr std::uint16_t schema_version = 1;
  std::string order_id;
  std::string provider;
  std::string reason;
  KEEL_FIELDS(order_id, provider, reason)
};

/// No provider could answer (breaker open, bulkhead full, timeout, outage).
struct payment_unavailable {
  static constexpr const char* type_name = "payment_unavailable";
  static constexpr std::uint16_t schema_version = 1;
  std::string order_id;
  std::string provider;
  std::string reason;
  KEEL_FIELDS(order_id, provider, reason)
};

/// An authorization was captured: money moved.
struct payment_captured {
  static constexpr const char* type_name = "payment_captured";
  static constexpr std::uint16_t schema_version = 1;
  std::string order_id;
  std::string payment_id;
  std::string provider;
  std::int64_t amount_cents = 0;
  KEEL_FIELDS(order_id, payment_id, provider, amount_cents)
};

/// An authorization was voided before capture.
struct payment_voided {
  static constexpr const char* type_name = "payment_voided";
  static constexpr std::uint16_t schema_version = 1;
  std::string order_id;
  std::string payment_id;
  std::string provider;
  KEEL_FIELDS(order_id, payment_id, provider)
};

/// A captured payment was refunded.
struct payment_refunded {
  static constexpr const char* type_name = "payment_refunded";
  static constexpr std::uint16_t schema_version = 1;
  std::string order_id;
  std::string payment_id;
  std::string provider;
  std::int64_t amount_cents = 0;
  KEEL_FIELDS(order_id, payment_id, provider, amount_cents)
};

} // namespace keel::events
