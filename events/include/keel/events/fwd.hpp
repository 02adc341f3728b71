#pragma once

/// Forward declarations of the events module.
namespace keel::events {

struct event_id;
struct order_line;
struct address;
struct record;
struct record_view;
struct event_type_info;
struct place_order;

} // namespace keel::events
