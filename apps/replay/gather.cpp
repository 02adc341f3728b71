#include "gather.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "keel/events/error.hpp"
#include "keel/events/streams.hpp"

namespace keel::replay {

namespace {

using namespace keel::events;

caf::expected<stored_event> to_stored(const record_view& rec) {
  auto ev = rec.decode_payload();
  if (!ev)
    return make_error(errc::malformed_payload, std::string{rec.stream} + "@"
                                                 + std::to_string(rec.version) + " (position "
                                                 + std::to_string(rec.position)
                                                 + "): " + describe(ev.error()));
  return stored_event{rec.position,     std::string{rec.stream}, rec.version,
                      std::string{rec.type}, rec.timestamp_us,   rec.id,
                      rec.correlation_id, rec.causation_id,     std::move(*ev)};
}

/// Appends the events of `stream` for which `keep` holds to `out`.
template <class Keep>
caf::error read_into(const storage::event_store& store, const std::string& stream,
                     std::vector<stored_event>& out, Keep keep) {
  auto r = store.read_stream(stream);
  while (r.next()) {
    auto x = to_stored(r.current());
    if (!x)
      return x.error();
    if (keep(*x))
      out.push_back(std::move(*x));
  }
  return r.error();
}

/// Every gateway and carrier any start of the node was configured with.
struct provider_names {
  std::set<std::string> gateways;
  std::set<std::string> carriers;
};

caf::expected<provider_names> configured_providers(const storage::event_store& store) {
  provider_names out;
  std::vector<stored_event> all;
  if (auto err = read_into(store, std::string{providers_stream}, all,
                           [](const stored_event&) { return true; }))
    return err;
  for (auto& e : all)
    if (auto* x = std::get_if<providers_configured>(&e.data)) {
      out.gateways.insert(x->gateways.begin(), x->gateways.end());
      out.carriers.insert(x->carriers.begin(), x->carriers.end());
    }
  return out;
}

/// Breaker transitions of the services the order reached, during its
/// lifetime, plus the last one before it when it left the breaker not closed.
caf::error read_breakers(const storage::event_store& store, order_records& o) {
  bool payment = false;
  bool shipping = false;
  for (auto& s : o.services) {
    payment = payment || kind_of_stream(s.stream) == stream_kind::payment;
    shipping = shipping || kind_of_stream(s.stream) == stream_kind::shipment;
  }
  for (auto& e : o.order) {
    payment = payment || e.type == "order_payment_pending";
    shipping = shipping || e.type == "order_shipment_failed";
  }
  auto from = o.order.front().timestamp_us;
  auto until = o.order.back().timestamp_us;
  for (auto& s : o.services)
    until = std::max(until, s.timestamp_us);
  // The pipeline's breakers by name: its services' and its providers'.
  auto providers = configured_providers(store);
  if (!providers)
    return providers.error();
  auto is_payment_breaker = [&](const std::string& name) {
    return name == "payment" || providers->gateways.count(name) > 0;
  };
  auto is_shipping_breaker = [&](const std::string& name) {
    return name == "shipping" || providers->carriers.count(name) > 0;
  };
  std::set<std::string> names{"payment", "shipping", "inventory"};
  names.insert(providers->gateways.begin(), providers->gateways.end());
  names.insert(providers->carriers.begin(), providers->carriers.end());
  for (auto& name : names) {
    storage::stream_info info{breaker_stream(name), 0};
    std::vector<stored_event> all;
    if (auto err = read_into(store, info.stream, all, [](const stored_event&) { return true; }))
      return err;
    const stored_event* before = nullptr;
    for (auto& e : all) {
      auto* t = std::get_if<breaker_transitioned>(&e.data);
      if (t == nullptr)
        continue;
      bool wanted = (payment && is_payment_breaker(t->breaker))
                    || (shipping && is_shipping_breaker(t->breaker)) || t->breaker == "inventory";
      if (!wanted)
        continue;
      if (e.timestamp_us < from)
        before = &e;
      else if (e.timestamp_us <= until)
        o.breakers.push_back(e);
    }
    if (before != nullptr && std::get<breaker_transitioned>(before->data).to != breaker_state::closed)
      o.breakers.push_back(*before);
  }
  std::sort(o.breakers.begin(), o.breakers.end(),
            [](auto& x, auto& y) { return x.position < y.position; });
  return {};
}

} // namespace

std::string service_order_id(const event& ev) {
  return std::visit(
    [](const auto& x) -> std::string {
      using T = std::decay_t<decltype(x)>;
      if constexpr (std::is_same_v<T, stock_reserved> || std::is_same_v<T, stock_reservation_refused>
                    || std::is_same_v<T, stock_released> || std::is_same_v<T, stock_committed>
                    || std::is_same_v<T, payment_authorized> || std::is_same_v<T, payment_declined>
                    || std::is_same_v<T, payment_unavailable> || std::is_same_v<T, payment_captured>
                    || std::is_same_v<T, payment_voided> || std::is_same_v<T, payment_refunded>
                    || std::is_same_v<T, shipment_scheduled> || std::is_same_v<T, shipment_failed>
                    || std::is_same_v<T, shipment_cancelled>)
        return x.order_id;
      else
        return {};
    },
    ev);
}

bool is_terminal_event(const event& ev) {
  return std::holds_alternative<order_completed>(ev) || std::holds_alternative<order_rejected>(ev)
         || std::holds_alternative<order_cancelled>(ev);
}

caf::expected<order_records> read_order(const storage::event_store& store,
                                        const std::string& order_id, bool with_breakers) {
  order_records o;
  o.order_id = order_id;
  if (order_id.empty() || !valid_stream_id(order_stream(order_id)))
    return make_error(errc::not_found, "no such order: " + order_id);
  auto all = [](const stored_event&) { return true; };
  if (auto err = read_into(store, order_stream(order_id), o.order, all))
    return err;
  if (o.order.empty())
    return make_error(errc::not_found, "no such order: " + order_id);
  if (auto err = read_into(store, payment_stream(order_id), o.services, all))
    return err;
  if (auto err = read_into(store, shipment_stream(order_id), o.services, all))
    return err;
  std::set<std::string> skus;
  if (auto* placed = std::get_if<order_placed>(&o.order.front().data))
    for (auto& l : placed->lines)
      skus.insert(l.sku);
  for (auto& sku : skus) {
    auto mine = [&](const stored_event& e) { return service_order_id(e.data) == order_id; };
    if (auto err = read_into(store, stock_stream(sku), o.services, mine))
      return err;
  }
  std::sort(o.services.begin(), o.services.end(),
            [](auto& x, auto& y) { return x.position < y.position; });
  if (with_breakers)
    if (auto err = read_breakers(store, o))
      return err;
  return o;
}

caf::expected<scan_stats> scan_orders(const storage::event_store& store,
                                      const std::function<void(order_records&)>& visit) {
  scan_stats stats;
  std::unordered_map<std::string, order_records> open;
  std::unordered_set<std::string> ended;
  auto r = store.read_all(1);
  while (r.next()) {
    ++stats.events;
    auto& rec = r.current();
    std::string id;
    auto kind = kind_of_stream(rec.stream);
    bool is_order = kind == stream_kind::order;
    if (is_order)
      id = std::string{key_of_stream(rec.stream)};
    else if (kind != stream_kind::payment && kind != stream_kind::shipment
             && kind != stream_kind::stock)
      continue; // system streams
    auto x = to_stored(rec);
    if (!x)
      return x.error();
    if (!is_order) {
      id = service_order_id(x->data);
      if (id.empty())
        continue; // stock_adjusted
    }
    if (ended.count(id) != 0) { // after its end: the caller reports it
      order_records late;
      late.order_id = id;
      late.services.push_back(std::move(*x));
      visit(late);
      continue;
    }
    auto& o = open[id];
    if (o.order_id.empty())
      o.order_id = id;
    bool terminal = is_order && is_terminal_event(x->data);
    (is_order ? o.order : o.services).push_back(std::move(*x));
    if (terminal) {
      ++stats.orders;
      visit(o);
      open.erase(id);
      ended.insert(id);
    }
  }
  if (r.error())
    return r.error();
  // In flight at the end of the log, in id order so output is stable.
  std::map<std::string, order_records*> rest;
  for (auto& [id, o] : open)
    rest.emplace(id, &o);
  for (auto& [id, o] : rest) {
    if (!o->order.empty())
      ++stats.orders;
    visit(*o);
  }
  return stats;
}

} // namespace keel::replay
