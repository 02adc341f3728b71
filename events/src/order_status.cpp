#include "keel/events/order_status.hpp"

namespace keel::events {

const char* to_string(order_status x) noexcept {
  switch (x) {
    case order_status::none: return "none";
    case order_status::placed: return "placed";
    case order_status::stock_reserved: return "stock_reserved";
    case order_status::payment_authorized: return "payment_authorized";
    case order_status::pending_payment: return "pending_payment";
    case order_status::shipment_scheduled: return "shipment_scheduled";
    case order_status::compensating: return "compensating";
    case order_status::completed: return "completed";
    case order_status::rejected: return "rejected";
    case order_status::cancelled: return "cancelled";
  }
  return "invalid";
}

std::optional<order_status> parse_order_status(std::string_view name) noexcept {
  for (auto i = static_cast<int>(order_status::none); i <= static_cast<int>(order_status::cancelled);
       ++i) {
    auto x = static_cast<order_status>(i);
    if (name == to_string(x))
      return x;
  }
  return std::nullopt;
}

bool is_terminal(order_status x) noexcept {
  return x == order_status::completed || x == order_status::rejected
         || x == order_status::cancelled;
}

} // namespace keel::events
