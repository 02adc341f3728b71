#include "keel/actors/messages.hpp"

#include <caf/actor_system_config.hpp>

namespace keel::actors {

void add_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_type<stock_reply>("keel::stock_reply");
  cfg.add_message_type<payment_reply>("keel::payment_reply");
  cfg.add_message_type<shipment_reply>("keel::shipment_reply");
  cfg.add_message_type<provider_request>("keel::provider_request");
  cfg.add_message_type<provider_answer>("keel::provider_answer");
  cfg.add_message_type<order_view>("keel::order_view");
  cfg.add_message_type<events::place_order>("keel::place_order");
  cfg.add_message_type<events::cancel_order>("keel::cancel_order");
  cfg.add_message_type<events::set_stock>("keel::set_stock");
  cfg.add_message_type<events::reserve_stock>("keel::reserve_stock");
  cfg.add_message_type<events::release_stock>("keel::release_stock");
  cfg.add_message_type<events::commit_stock>("keel::commit_stock");
  cfg.add_message_type<events::authorize_payment>("keel::authorize_payment");
  cfg.add_message_type<events::capture_payment>("keel::capture_payment");
  cfg.add_message_type<events::void_payment>("keel::void_payment");
  cfg.add_message_type<events::refund_payment>("keel::refund_payment");
  cfg.add_message_type<events::schedule_shipment>("keel::schedule_shipment");
  cfg.add_message_type<events::cancel_shipment>("keel::cancel_shipment");
}

} // namespace keel::actors
