#include "keel/events/event.hpp"
#include "keel/events/streams.hpp"

#include <unordered_map>
#include <utility>

namespace keel::events {

namespace {

template <std::size_t... Is>
std::vector<event_type_info> make_types(std::index_sequence<Is...>) {
  return {event_type_info{std::variant_alternative_t<Is, event>::type_name,
                          std::variant_alternative_t<Is, event>::schema_version, Is}...};
}

const std::unordered_map<std::string_view, const event_type_info*>& type_index() {
  static const auto index = [] {
    std::unordered_map<std::string_view, const event_type_info*> result;
    for (const auto& info : event_types())
      result.emplace(info.name, &info);
    return result;
  }();
  return index;
}

template <class T>
std::string stream_of_event(const T& x) {
  using namespace std::string_literals;
  if constexpr (std::is_same_v<T, stock_adjusted> || std::is_same_v<T, stock_reserved>
                || std::is_same_v<T, stock_reservation_refused>
                || std::is_same_v<T, stock_released> || std::is_same_v<T, stock_committed>)
    return stock_stream(x.sku);
  else if constexpr (std::is_same_v<T, payment_authorized> || std::is_same_v<T, payment_declined>
                     || std::is_same_v<T, payment_unavailable>
                     || std::is_same_v<T, payment_captured> || std::is_same_v<T, payment_voided>
                     || std::is_same_v<T, payment_refunded>)
    return payment_stream(x.order_id);
  else if constexpr (std::is_same_v<T, shipment_scheduled> || std::is_same_v<T, shipment_failed>
                     || std::is_same_v<T, shipment_cancelled>)
    return shipment_stream(x.order_id);
  else if constexpr (std::is_same_v<T, breaker_transitioned>)
    return breaker_stream(x.breaker);
  else if constexpr (std::is_same_v<T, pool_resized>)
    return pool_stream(x.pool);
  else if constexpr (std::is_same_v<T, actor_restarted>)
    return std::string{supervisor_stream};
  else if constexpr (std::is_same_v<T, providers_configured>)
    return std::string{providers_stream};
  else if constexpr (std::is_same_v<T, catalog_price_set>
                     || std::is_same_v<T, catalog_entry_withdrawn>)
    return catalog_stream(x.sku);
  else
    return order_stream(x.order_id);
}

} // namespace

const std::vector<event_type_info>& event_types() {
  static const auto types = make_types(std::make_index_sequence<std::variant_size_v<event>>{});
  return types;
}

const event_type_info* find_event_type(std::string_view name) noexcept {
  const auto& index = type_index();
  auto i = index.find(name);
  return i == index.end() ? nullptr : i->second;
}

std::string_view type_name(const event& ev) noexcept {
  return event_types()[ev.index()].name;
}

std::uint16_t schema_version(const event& ev) noexcept {
  return event_types()[ev.index()].current_version;
}

std::string stream_of(const event& ev) {
  return std::visit([](const auto& x) { return stream_of_event(x); }, ev);
}

} // namespace keel::events
