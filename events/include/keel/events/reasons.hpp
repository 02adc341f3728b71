#pragma once

// Why an order ended other than completed: a code that programs branch on
// (projections, tools, HTTP clients) and a detail for people, which nobody
// parses. The saga's decider chooses the code; `reason_text` is the one place
// that turns code and detail into text.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace keel::events {

enum class end_reason : std::uint8_t {
  /// Schema-1 records (their text is the detail) and writers other than the saga.
  unspecified = 0,
  /// A line could not be reserved: the order is rejected.
  out_of_stock = 1,
  /// The payment gateway declined the payment.
  payment_declined = 2,
  /// The payment stayed unavailable (attempts spent or deadline passed).
  payment_unavailable = 3,
  /// No carrier would schedule the shipment.
  shipping_failed = 4,
  /// The customer (or an operator on their behalf) cancelled.
  cancelled_by_customer = 5,
};

/// "out_of_stock", "payment_declined", ...
const char* to_string(end_reason x) noexcept;
std::optional<end_reason> parse_end_reason(std::string_view name) noexcept;

/// The text of a reason: "out of stock: <detail>", "payment declined:
/// <detail>", "payment unavailable after <detail>", "shipping failed: <detail>",
/// "cancelled by customer"; the detail alone for `unspecified`.
std::string reason_text(end_reason code, const std::string& detail);

/// The detail of an out_of_stock reason: "<sku> (requested N, available M)".
std::string out_of_stock_detail(const std::string& sku, std::int64_t requested,
                                std::int64_t available);

} // namespace keel::events
