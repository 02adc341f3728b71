#include "keel/events/reasons.hpp"

namespace keel::events {

const char* to_string(end_reason x) noexcept {
  switch (x) {
    case end_reason::unspecified: return "unspecified";
    case end_reason::out_of_stock: return "out_of_stock";
    case end_reason::payment_declined: return "payment_declined";
    case end_reason::payment_unavailable: return "payment_unavailable";
    case end_reason::shipping_failed: return "shipping_failed";
    case end_reason::cancelled_by_customer: return "cancelled_by_customer";
  }
  return "invalid";
}

std::optional<end_reason> parse_end_reason(std::string_view name) noexcept {
  for (auto i = static_cast<int>(end_reason::unspecified);
       i <= static_cast<int>(end_reason::cancelled_by_customer); ++i) {
    auto x = static_cast<end_reason>(i);
    if (name == to_string(x))
      return x;
  }
  return std::nullopt;
}

std::string reason_text(end_reason code, const std::string& detail) {
  switch (code) {
    case end_reason::out_of_stock: return "out of stock: " + detail;
    case end_reason::payment_declined: return "payment declined: " + detail;
    case end_reason::payment_unavailable: return "payment unavailable after " + detail;
    case end_reason::shipping_failed: return "shipping failed: " + detail;
    case end_reason::cancelled_by_customer:
      return detail.empty() ? std::string{"cancelled by customer"}
                            : "cancelled by customer: " + detail;
    case end_reason::unspecified: break;
  }
  return detail;
}

std::string out_of_stock_detail(const std::string& sku, std::int64_t requested,
                                std::int64_t available) {
  return sku + " (requested " + std::to_string(requested) + ", available "
         + std::to_string(available) + ")";
}

} // namespace keel::events
