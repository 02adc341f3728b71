// Query functions over the serving generation of each read model.

#include <algorithm>
#include <charconv>

#include "keel/events/error.hpp"
#include "keel/events/json.hpp"
#include "keel/events/order_status.hpp"
#include "keel/projections/read_models.hpp"
#include "keel/projections/runner.hpp"
#include "keel/storage/event_store.hpp"
#include "models.hpp"

namespace keel::projections {

bool operator==(const order_summary& x, const order_summary& y) {
  return x.order_id == y.order_id && x.customer_id == y.customer_id && x.status == y.status
         && x.reason == y.reason && x.items == y.items && x.currency == y.currency
         && x.total_cents == y.total_cents && x.premium == y.premium
         && x.payment_id == y.payment_id && x.payment_provider == y.payment_provider
         && x.captured_cents == y.captured_cents && x.tracking_id == y.tracking_id
         && x.carrier == y.carrier && x.estimated_delivery_us == y.estimated_delivery_us
         && x.cancel_requested == y.cancel_requested
         && x.payment_attempts == y.payment_attempts && x.placed_us == y.placed_us
         && x.updated_us == y.updated_us && x.steps == y.steps
         && x.reason_code == y.reason_code;
}

bool is_terminal(std::string_view status) noexcept {
  auto x = events::parse_order_status(status);
  return x && events::is_terminal(*x);
}

std::string day_of(std::int64_t at_us) {
  // "YYYY-MM-DDTHH:MM:SS.ffffffZ" -> "YYYY-MM-DD"
  return events::format_timestamp(at_us).substr(0, 10);
}

std::string_view saga_path_of(std::string_view outcome, bool cancel_requested, bool declined,
                              bool shipment_failed, bool pending) noexcept {
  if (outcome == "completed")
    return pending ? "completed_after_retry" : "completed";
  if (outcome == "rejected")
    return "rejected";
  if (cancel_requested)
    return "cancelled_by_customer";
  if (declined)
    return "cancelled_payment_declined";
  if (shipment_failed)
    return "cancelled_shipment_failed";
  if (pending)
    return "cancelled_payment_unavailable";
  return "cancelled_other";
}

namespace {

/// The model at `what` (after the prefix) of the serving generation `at`.
template <class T>
caf::expected<std::optional<T>> read_model(const storage::event_store& store,
                                           const detail::serving_models& at,
                                           std::string_view what) {
  auto key = at.prefix + std::string{what};
  auto bytes = store.get_model(key);
  if (!bytes)
    return bytes.error();
  if (!*bytes)
    return std::optional<T>{};
  T value;
  if (auto err = detail::decode(key, **bytes, value, at.framing))
    return err;
  return std::optional<T>{std::move(value)};
}

bool valid_day(std::string_view day) {
  if (day.size() != 10 || day[4] != '-' || day[7] != '-')
    return false;
  for (std::size_t i : {0, 1, 2, 3, 5, 6, 8, 9})
    if (day[i] < '0' || day[i] > '9')
      return false;
  auto month = (day[5] - '0') * 10 + (day[6] - '0');
  auto mday = (day[8] - '0') * 10 + (day[9] - '0');
  return month >= 1 && month <= 12 && mday >= 1 && mday <= 31;
}

bool valid_cursor(std::string_view cursor) {
  if (cursor.size() <= 16)
    return false;
  return std::all_of(cursor.begin(), cursor.begin() + 16,
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

} // namespace

caf::expected<order_summary> find_order(const storage::event_store& store,
                                        std::string_view order_id) {
  auto prefix = detail::serving_prefix(store, "orders");
  if (!prefix)
    return prefix.error();
  auto found = read_model<order_summary>(store, *prefix, "o/" + std::string{order_id});
  if (!found)
    return found.error();
  if (!*found)
    return make_error(errc::not_found, "no order " + std::string{order_id});
  return std::move(**found);
}

caf::expected<customer_orders_page> orders_of_customer(const storage::event_store& store,
                                                       std::string_view customer_id,
                                                       std::size_t limit,
                                                       std::string_view cursor) {
  if (limit == 0 || limit > max_page_size)
    return make_error(errc::invalid_argument, "limit: " + std::to_string(limit)
                                                + " is not in 1.." + std::to_string(max_page_size));
  if (!cursor.empty() && !valid_cursor(cursor))
    return make_error(errc::invalid_argument, "cursor: not a cursor of this list");
  auto prefix = detail::serving_prefix(store, "orders");
  if (!prefix)
    return prefix.error();
  auto list_prefix = prefix->prefix + detail::customer_prefix(customer_id);
  std::string after = cursor.empty() ? std::string{} : list_prefix + std::string{cursor};
  auto entries = store.scan_models(list_prefix, after, limit + 1);
  if (!entries)
    return entries.error();
  customer_orders_page page;
  for (std::size_t i = 0; i < entries->size() && i < limit; ++i) {
    auto& [key, value] = (*entries)[i];
    detail::customer_entry entry;
    if (auto err = detail::decode(key, value, entry, prefix->framing))
      return err;
    customer_order item{entry.order_id, entry.placed_us, entry.total_cents, entry.currency, {},
                        key.substr(list_prefix.size())};
    auto summary = read_model<order_summary>(store, *prefix, "o/" + entry.order_id);
    if (!summary)
      return summary.error();
    item.status = *summary ? (*summary)->status : std::string{"placed"};
    page.orders.push_back(std::move(item));
  }
  if (entries->size() > limit)
    page.next_cursor = (*entries)[limit - 1].first.substr(list_prefix.size());
  return page;
}

caf::expected<stock_level> find_stock(const storage::event_store& store, std::string_view sku) {
  auto prefix = detail::serving_prefix(store, "stock");
  if (!prefix)
    return prefix.error();
  auto found = read_model<stock_level>(store, *prefix, "s/" + std::string{sku});
  if (!found)
    return found.error();
  if (!*found)
    return make_error(errc::not_found, "no stock for SKU " + std::string{sku});
  return std::move(**found);
}

caf::expected<day_figures> figures_of_day(const storage::event_store& store,
                                          std::string_view day) {
  if (!valid_day(day))
    return make_error(errc::invalid_argument, "day: " + std::string{day} + " is not YYYY-MM-DD");
  auto prefix = detail::serving_prefix(store, "figures");
  if (!prefix)
    return prefix.error();
  auto found = read_model<day_figures>(store, *prefix, "d/" + std::string{day});
  if (!found)
    return found.error();
  if (!*found) {
    day_figures empty;
    empty.day = std::string{day};
    return empty;
  }
  return std::move(**found);
}

caf::expected<day_figures> figures_of_day(const storage::event_store& store,
                                          std::string_view day,
                                          const std::vector<std::uint32_t>& slots) {
  if (!valid_day(day))
    return make_error(errc::invalid_argument, "day: " + std::string{day} + " is not YYYY-MM-DD");
  auto prefix = detail::serving_prefix(store, "figures");
  if (!prefix)
    return prefix.error();
  day_figures sum;
  sum.day = std::string{day};
  for (auto slot : slots) {
    auto found = read_model<day_figures>(store, *prefix, detail::slot_day_key(slot, day));
    if (!found)
      return found.error();
    if (!*found)
      continue;
    sum += **found;
  }
  return sum;
}

caf::expected<std::uint32_t> cluster_slots(const storage::event_store& store) {
  auto key = detail::meta_key("cluster", "slots");
  auto value = store.get_model(key);
  if (!value)
    return value.error();
  if (!*value)
    return 0u;
  std::uint32_t slots = 0;
  auto& text = **value;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), slots);
  if (ec != std::errc{} || end != text.data() + text.size())
    return make_error(errc::corrupt_record, "store key " + key + " holds no slot count");
  return slots;
}

caf::expected<bool> set_cluster_slots(storage::event_store& store, std::uint32_t slots) {
  auto now = cluster_slots(store);
  if (!now)
    return now.error();
  if (*now == slots)
    return false;
  if (*now != 0)
    return make_error(errc::invalid_argument,
                      "this store belongs to a cluster of " + std::to_string(*now)
                        + " slots, not " + std::to_string(slots)
                        + ": its keys would be routed elsewhere");
  storage::write_batch batch;
  batch.put(detail::meta_key("cluster", "slots"), std::to_string(slots));
  if (auto err = store.commit(std::move(batch)))
    return err;
  return true;
}

caf::expected<std::vector<day_figures>> figures_between(const storage::event_store& store,
                                                        std::string_view from,
                                                        std::string_view to) {
  if (!valid_day(from))
    return make_error(errc::invalid_argument, "from: " + std::string{from} + " is not YYYY-MM-DD");
  if (!valid_day(to))
    return make_error(errc::invalid_argument, "to: " + std::string{to} + " is not YYYY-MM-DD");
  auto prefix = detail::serving_prefix(store, "figures");
  if (!prefix)
    return prefix.error();
  std::vector<day_figures> result;
  auto days_prefix = prefix->prefix + "d/";
  std::string after;
  for (;;) {
    auto entries = store.scan_models(days_prefix, after, 256);
    if (!entries)
      return entries.error();
    for (auto& [key, value] : *entries) {
      auto day = std::string_view{key}.substr(days_prefix.size());
      if (day < from)
        continue;
      if (day > to)
        return result;
      day_figures figures;
      if (auto err = detail::decode(key, value, figures, prefix->framing))
        return err;
      result.push_back(std::move(figures));
    }
    if (entries->size() < 256)
      return result;
    after = entries->back().first;
  }
}

caf::expected<std::vector<saga_path_stats>> saga_statistics(const storage::event_store& store) {
  auto prefix = detail::serving_prefix(store, "figures");
  if (!prefix)
    return prefix.error();
  auto entries = store.scan_models(prefix->prefix + "x/", {}, 64);
  if (!entries)
    return entries.error();
  std::vector<saga_path_stats> result;
  for (auto& [key, value] : *entries) {
    detail::duration_histogram hist;
    if (auto err = detail::decode(key, value, hist, prefix->framing))
      return err;
    saga_path_stats stats;
    stats.path = key.substr(prefix->prefix.size() + 2);
    stats.count = hist.count;
    stats.mean_ms = hist.count == 0 ? 0.0
                                    : static_cast<double>(hist.sum_us)
                                        / static_cast<double>(hist.count) / 1000.0;
    stats.p50_ms = hist.quantile(0.50) / 1000.0;
    stats.p90_ms = hist.quantile(0.90) / 1000.0;
    stats.p99_ms = hist.quantile(0.99) / 1000.0;
    stats.max_ms = static_cast<double>(hist.max_us) / 1000.0;
    result.push_back(std::move(stats));
  }
  return result;
}

} // namespace keel::projections
