#include "order_json.hpp"

#include <limits>

#include <nlohmann/json.hpp>

#include "keel/actors/catalog.hpp"
#include "keel/actors/messages.hpp"
#include "keel/actors/pipeline.hpp"
#include "keel/events/error.hpp"
#include "keel/events/json.hpp"
#include "keel/projections/read_models.hpp"

namespace keel::runtime {

using nlohmann::json;

namespace {

json items_json(const std::vector<events::order_line>& lines) {
  auto items = json::array();
  for (auto& l : lines)
    items.push_back(
      {{"sku", l.sku}, {"quantity", l.quantity}, {"unit_price_cents", l.unit_price_cents}});
  return items;
}

json time_or_null(std::int64_t us) {
  return us == 0 ? json(nullptr) : json(events::format_timestamp(us));
}

json empty_or(const std::string& x) {
  return x.empty() ? json(nullptr) : json(x);
}

json code_or_null(events::end_reason x) {
  return x == events::end_reason::unspecified ? json(nullptr) : json(events::to_string(x));
}

} // namespace

std::string order_body(const projections::order_summary& s, const actors::order_view* view) {
  auto steps = json::array();
  for (auto& st : s.steps)
    steps.push_back({{"name", st.name}, {"at", events::format_timestamp(st.at_us)},
                     {"position", st.position}});
  auto status = view ? view->status : s.status;
  auto reason = view ? view->reason : s.reason;
  auto reason_code = view ? view->reason_code : s.reason_code;
  auto payment_id = view && !view->payment_id.empty() ? view->payment_id : s.payment_id;
  auto tracking_id = view && !view->tracking_id.empty() ? view->tracking_id : s.tracking_id;
  auto eta = view && view->estimated_delivery_us != 0 ? view->estimated_delivery_us
                                                      : s.estimated_delivery_us;
  json j{{"order_id", s.order_id},
         {"customer_id", s.customer_id},
         {"status", status},
         {"reason", empty_or(reason)},
         {"reason_code", code_or_null(reason_code)},
         {"items", items_json(s.items)},
         {"currency", s.currency},
         {"total_cents", s.total_cents},
         {"premium", s.premium},
         {"payment_id", empty_or(payment_id)},
         {"payment_provider", empty_or(s.payment_provider)},
         {"captured_cents", s.captured_cents},
         {"tracking_id", empty_or(tracking_id)},
         {"carrier", empty_or(s.carrier)},
         {"estimated_delivery", time_or_null(eta)},
         {"cancel_requested", s.cancel_requested},
         {"payment_attempts", s.payment_attempts},
         {"placed_at", time_or_null(s.placed_us)},
         {"updated_at", time_or_null(s.updated_us)},
         {"steps", std::move(steps)}};
  return events::dump_json(j);
}

std::string order_body(const actors::order_state& st) {
  auto v = actors::view_of(st, false);
  json j{{"order_id", st.order_id},
         {"customer_id", st.customer_id},
         {"status", v.status},
         {"reason", empty_or(v.reason)},
         {"reason_code", code_or_null(v.reason_code)},
         {"items", items_json(st.lines)},
         {"currency", st.currency},
         {"total_cents", st.total_cents},
         {"premium", st.premium},
         {"payment_id", empty_or(st.payment_id)},
         {"tracking_id", empty_or(st.tracking_id)},
         {"carrier", empty_or(st.carrier)},
         {"estimated_delivery", time_or_null(st.estimated_delivery_us)},
         {"cancel_requested", st.cancel_requested},
         {"payment_attempts", st.payment_attempts},
         {"placed_at", time_or_null(st.placed_at_us)},
         {"steps", json::array()}};
  return events::dump_json(j);
}

std::string catalog_body(const actors::catalog_entry& e) {
  return events::dump_json(json{{"sku", e.sku},
                                {"price_cents", e.price_cents},
                                {"currency", e.currency},
                                {"version", e.version}});
}

std::string customer_orders_body(std::string_view customer_id,
                                 const projections::customer_orders_page& page,
                                 bool with_cursors) {
  auto orders = json::array();
  for (auto& o : page.orders) {
    orders.push_back({{"order_id", o.order_id}, {"status", o.status},
                      {"placed_at", time_or_null(o.placed_us)}, {"total_cents", o.total_cents},
                      {"currency", o.currency}});
    if (with_cursors)
      orders.back()["cursor"] = o.cursor;
  }
  json j{{"customer_id", customer_id}, {"orders", std::move(orders)},
         {"next_cursor", empty_or(page.next_cursor)}};
  return events::dump_json(j);
}

std::string stock_body(const projections::stock_level& level) {
  json j{{"sku", level.sku},
         {"on_hand", level.on_hand},
         {"reserved", level.reserved},
         {"available", level.available()},
         {"updated_at", time_or_null(level.updated_us)}};
  return events::dump_json(j);
}

} // namespace keel::runtime
