#include "samples.hpp"

#include <stdexcept>

namespace keel::test {

using namespace keel::events;

event sample_event(std::size_t i) {
  const std::vector<order_line> lines{{"SKU-0001", 2, 1999}, {"SKU-0042", 1, 50000}};
  const address addr{"Grace Hopper", "1 Compiler Way", "Arlington", "22201", "US"};
  const std::string oid = "order-2026-0001";
  std::vector<event> all{
    order_placed{oid, "customer-7", lines, "USD", addr, true, total_cents(lines)},
    order_rejected{oid, "SKU-0042 (requested 1, available 0)", end_reason::out_of_stock},
    order_stock_reserved{oid},
    order_payment_authorized{oid, "pay-81", "primary", 53998},
    order_payment_pending{oid, "circuit_open", 3, 1795300000000000},
    order_shipment_scheduled{oid, "TRK-123", "carrier-a", 1795400000000000},
    order_payment_captured{oid, "pay-81", 53998},
    order_completed{oid},
    order_cancel_requested{oid, "customer-7"},
    order_stock_released{oid},
    order_payment_voided{oid, "pay-81"},
    order_payment_refunded{oid, "pay-81", 53998},
    order_cancelled{oid, "insufficient funds", end_reason::payment_declined},
    order_stock_refused{oid, "SKU-0042", 1, 0, true},
    order_payment_declined{oid, "secondary", "insufficient funds"},
    order_shipment_failed{oid, "no carrier serves postal code 22201"},
    order_shipment_cancelled{oid, "TRK-123"},
    stock_adjusted{"SKU-0001", 500, "cycle count"},
    stock_reserved{"SKU-0001", oid, 2},
    stock_reservation_refused{"SKU-0042", oid, 1, 0},
    stock_released{"SKU-0001", oid, 2},
    stock_committed{"SKU-0001", oid, 2},
    payment_authorized{oid, "pay-81", "secondary", 53998, "USD", oid},
    payment_declined{oid, "primary", "insufficient funds"},
    payment_unavailable{oid, "primary", "timeout after 2000 ms"},
    payment_captured{oid, "pay-81", "secondary", 53998},
    payment_voided{oid, "pay-81", "secondary"},
    payment_refunded{oid, "pay-81", "secondary", 53998},
    shipment_scheduled{oid, "TRK-123", "carrier-a", 1795400000000000},
    shipment_failed{oid, "carrier-b", "address not served"},
    shipment_cancelled{oid, "TRK-123", "carrier-a"},
    breaker_transitioned{"payment.primary", breaker_state::closed, breaker_state::open, 10,
                         "10 failures in a window of 20"},
    pool_resized{"payment.primary", 20, 30, "p99 below 1 s"},
    actor_restarted{"inventory-3", "crash: invariant violated", 2},
    catalog_price_set{"SKU-0001", 1999, "USD", "ops-1"},
    catalog_entry_withdrawn{"SKU-0042", "ops-1"},
    providers_configured{{"gw-primary", "gw-secondary"}, {"carrier-a", "carrier-b"}},
  };
  if (all.size() != std::variant_size_v<event>)
    throw std::logic_error("sample_event: a sample is missing for a new event type");
  return all.at(i);
}

} // namespace keel::test
