#include "fold.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <type_traits>

#include "keel/events/correlation.hpp"
#include "keel/events/error.hpp"
#include "keel/projections/runner.hpp"

namespace keel::test {
std::string day_text(const projections::day_figures& x);
}

namespace Catch {
template <>
struct StringMaker<keel::projections::day_figures> {
  static std::string convert(const keel::projections::day_figures& x) {
    return keel::test::day_text(x);
  }
};
} // namespace Catch

namespace keel::test {

using namespace keel::events;
using projections::order_summary;

std::string day_text(const projections::day_figures& x) {
  std::ostringstream out;
  out << x.day << " placed=" << x.placed << " completed=" << x.completed
      << " rejected=" << x.rejected << " cancelled=" << x.cancelled
      << " pending=" << x.pending_payment << " revenue:";
  for (auto& r : x.revenue)
    out << " " << r.currency << "=" << r.revenue_cents << "/" << r.orders;
  return out.str();
}

namespace {

template <class T, class = void>
struct carries_order_id : std::false_type {};
template <class T>
struct carries_order_id<T, std::void_t<decltype(std::declval<T>().order_id)>> : std::true_type {};

std::string order_id_in(const event& ev) {
  std::string id;
  std::visit(
    [&](const auto& x) {
      if constexpr (carries_order_id<std::decay_t<decltype(x)>>::value)
        id = x.order_id;
    },
    ev);
  return id;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

/// What the fold keeps about a saga until it ends (figures).
struct open_saga {
  std::int64_t placed_us = 0;
  std::string currency;
  std::int64_t captured = 0;
  bool pending = false;
  bool cancel_requested = false;
  bool declined = false;
  bool shipment_failed = false;
};

struct folder {
  expected_models& m;
  std::map<std::string, open_saga> sagas;
  std::map<std::string, std::map<std::string, projections::currency_revenue>> revenue;

  void anomaly(const record_view& rec, const std::string& why) {
    m.anomalies.push_back("position " + std::to_string(rec.position) + " (" + std::string{rec.type}
                          + "): " + why);
  }

  projections::day_figures& day(std::int64_t at_us) {
    auto d = utc_day(at_us);
    auto& f = m.days[d];
    f.day = d;
    return f;
  }

  /// Order `id`'s part of the figures of the day of `at_us`.
  projections::day_figures& part(const std::string& id, std::int64_t at_us) {
    auto d = utc_day(at_us);
    auto& f = m.order_days[id][d];
    f.day = d;
    return f;
  }

  // -- orders ------------------------------------------------------------------

  void order(const record_view& rec, const event& ev) {
    auto id = order_id_in(ev);
    if (auto* x = std::get_if<order_placed>(&ev)) {
      if (m.orders.count(id) != 0)
        return anomaly(rec, "order " + id + " placed twice");
      order_summary s;
      s.order_id = x->order_id;
      s.customer_id = x->customer_id;
      s.status = "placed";
      s.items = x->lines;
      s.currency = x->currency;
      s.total_cents = x->total_cents;
      s.premium = x->premium;
      s.placed_us = rec.timestamp_us;
      s.updated_us = rec.timestamp_us;
      s.steps.push_back({"placed", rec.timestamp_us, rec.position});
      m.orders[id] = s;
      return;
    }
    auto it = m.orders.find(id);
    if (it == m.orders.end())
      return anomaly(rec, "order " + id + " was never placed");
    auto& s = it->second;
    s.updated_us = rec.timestamp_us;
    s.steps.push_back({std::string{rec.type}.substr(6), rec.timestamp_us, rec.position});
    if (std::holds_alternative<order_stock_reserved>(ev)) {
      s.status = "stock_reserved";
    } else if (auto* x = std::get_if<order_payment_authorized>(&ev)) {
      s.status = "payment_authorized";
      s.reason = "";
      s.reason_code = end_reason::unspecified;
      s.payment_id = x->payment_id;
      s.payment_provider = x->provider;
    } else if (auto* x = std::get_if<order_payment_pending>(&ev)) {
      s.status = "pending_payment";
      s.reason = x->reason;
      s.reason_code = end_reason::unspecified;
      s.payment_attempts += 1;
    } else if (auto* x = std::get_if<order_shipment_scheduled>(&ev)) {
      s.status = "shipment_scheduled";
      s.tracking_id = x->tracking_id;
      s.carrier = x->carrier;
      s.estimated_delivery_us = x->estimated_delivery_us;
    } else if (std::holds_alternative<order_completed>(ev)) {
      s.status = "completed";
      s.reason = "";
      s.reason_code = end_reason::unspecified;
    } else if (std::holds_alternative<order_cancel_requested>(ev)) {
      s.cancel_requested = true;
    } else if (auto* x = std::get_if<order_stock_refused>(&ev)) {
      std::ostringstream why;
      why << "out of stock: " << x->sku << " (requested " << x->requested << ", available "
          << x->available << ")";
      s.reason = why.str();
      s.reason_code = end_reason::out_of_stock;
    } else if (auto* x = std::get_if<order_payment_declined>(&ev)) {
      s.reason = reason_text(end_reason::payment_declined, x->reason);
      s.reason_code = end_reason::payment_declined;
    } else if (auto* x = std::get_if<order_shipment_failed>(&ev)) {
      s.reason = reason_text(end_reason::shipping_failed, x->reason);
      s.reason_code = end_reason::shipping_failed;
    } else if (auto* x = std::get_if<order_rejected>(&ev)) {
      s.status = "rejected";
      if (x->reason != "" || x->code != end_reason::unspecified) {
        s.reason = reason_text(x->code, x->reason);
        s.reason_code = x->code;
      }
    } else if (auto* x = std::get_if<order_cancelled>(&ev)) {
      s.status = "cancelled";
      if (x->reason != "" || x->code != end_reason::unspecified) {
        s.reason = reason_text(x->code, x->reason);
        s.reason_code = x->code;
      }
    }
    // order_stock_released, order_payment_voided, order_shipment_cancelled:
    // a step, nothing else.
  }

  // -- figures -------------------------------------------------------------------

  void figures(const record_view& rec, const event& ev) {
    static const std::set<std::string> wanted{
      "order_placed",          "order_payment_pending",  "payment_captured",
      "payment_refunded",       "order_cancel_requested", "order_payment_declined",
      "order_shipment_failed", "order_completed",        "order_rejected",
      "order_cancelled"};
    if (wanted.count(std::string{rec.type}) == 0)
      return;
    auto id = order_id_in(ev);
    if (auto* x = std::get_if<order_placed>(&ev)) {
      if (sagas.count(id) != 0)
        return anomaly(rec, "order " + id + " placed again while its saga is in flight");
      sagas[id] = open_saga{rec.timestamp_us, x->currency, 0, false, false, false, false};
      day(rec.timestamp_us).placed += 1;
      part(id, rec.timestamp_us).placed += 1;
      return;
    }
    auto it = sagas.find(id);
    if (it == sagas.end())
      return anomaly(rec, "no saga in flight for order " + id);
    auto& s = it->second;
    if (std::holds_alternative<order_payment_pending>(ev)) {
      if (!s.pending) {
        day(rec.timestamp_us).pending_payment += 1;
        part(id, rec.timestamp_us).pending_payment += 1;
      }
      s.pending = true;
      return;
    }
    if (auto* x = std::get_if<payment_captured>(&ev)) {
      s.captured += x->amount_cents;
      return;
    }
    if (auto* x = std::get_if<payment_refunded>(&ev)) {
      s.captured -= x->amount_cents;
      return;
    }
    if (std::holds_alternative<order_cancel_requested>(ev)) {
      s.cancel_requested = true;
      return;
    }
    if (std::holds_alternative<order_payment_declined>(ev)) {
      s.declined = true;
      return;
    }
    if (std::holds_alternative<order_shipment_failed>(ev)) {
      s.shipment_failed = true;
      return;
    }
    // Terminal.
    auto& d = day(rec.timestamp_us);
    auto& p = part(id, rec.timestamp_us);
    std::string path;
    if (std::holds_alternative<order_completed>(ev)) {
      path = s.pending ? "completed_after_retry" : "completed";
      d.completed += 1;
      p.completed += 1;
      p.revenue.push_back({s.currency, 1, s.captured});
      auto& r = revenue[d.day][s.currency];
      r.currency = s.currency;
      r.orders += 1;
      r.revenue_cents += s.captured;
    } else if (std::holds_alternative<order_rejected>(ev)) {
      path = "rejected";
      d.rejected += 1;
      p.rejected += 1;
    } else {
      if (s.cancel_requested)
        path = "cancelled_by_customer";
      else if (s.declined)
        path = "cancelled_payment_declined";
      else if (s.shipment_failed)
        path = "cancelled_shipment_failed";
      else if (s.pending)
        path = "cancelled_payment_unavailable";
      else
        path = "cancelled_other";
      d.cancelled += 1;
      p.cancelled += 1;
    }
    m.durations_us[path].push_back(rec.timestamp_us - s.placed_us);
    sagas.erase(it);
  }

  // -- stock ---------------------------------------------------------------------

  void stock(const record_view& rec, const event& ev) {
    if (auto* x = std::get_if<stock_adjusted>(&ev)) {
      if (x->on_hand < 0)
        return anomaly(rec, "negative on hand");
      auto& level = m.stock[x->sku];
      level.sku = x->sku;
      level.on_hand = x->on_hand;
      level.updated_us = rec.timestamp_us;
      return;
    }
    std::string sku;
    std::int64_t quantity = 0;
    if (auto* x = std::get_if<stock_reserved>(&ev)) {
      sku = x->sku;
      quantity = x->quantity;
    } else if (auto* x = std::get_if<stock_released>(&ev)) {
      sku = x->sku;
      quantity = x->quantity;
    } else if (auto* x = std::get_if<stock_committed>(&ev)) {
      sku = x->sku;
      quantity = x->quantity;
    } else {
      return; // stock_reservation_refused changes no level
    }
    auto it = m.stock.find(sku);
    if (it == m.stock.end())
      return anomaly(rec, "SKU " + sku + " never stocked");
    auto& level = it->second;
    if (std::holds_alternative<stock_reserved>(ev)) {
      level.reserved += quantity;
    } else if (std::holds_alternative<stock_released>(ev)) {
      if (level.reserved < quantity)
        return anomaly(rec, "releasing more than reserved of " + sku);
      level.reserved -= quantity;
    } else {
      if (level.reserved < quantity || level.on_hand < quantity)
        return anomaly(rec, "committing more than reserved or on hand of " + sku);
      level.reserved -= quantity;
      level.on_hand -= quantity;
    }
    level.updated_us = rec.timestamp_us;
  }
};

std::string text(const order_summary& s) {
  std::ostringstream out;
  out << s.order_id << " customer=" << s.customer_id << " status=" << s.status << " reason='"
      << s.reason << "' code=" << to_string(s.reason_code) << " items=" << s.items.size() << " "
      << s.currency << " total=" << s.total_cents
      << " premium=" << s.premium << " payment=" << s.payment_id << "/" << s.payment_provider
      << " captured=" << s.captured_cents << " tracking=" << s.tracking_id << "/" << s.carrier
      << " eta=" << s.estimated_delivery_us << " cancel_requested=" << s.cancel_requested
      << " attempts=" << s.payment_attempts << " placed=" << s.placed_us
      << " updated=" << s.updated_us << " steps:";
  for (auto& st : s.steps)
    out << " " << st.name << "@" << st.position << "/" << st.at_us;
  return out.str();
}

std::string text(const projections::day_figures& x) {
  return day_text(x);
}

std::string text(const projections::customer_order& x) {
  std::ostringstream out;
  out << x.order_id << " placed=" << x.placed_us << " " << x.total_cents << " " << x.currency
      << " " << x.status;
  return out.str();
}

std::string text(const projections::stock_level& x) {
  std::ostringstream out;
  out << x.sku << " on_hand=" << x.on_hand << " reserved=" << x.reserved
      << " updated=" << x.updated_us;
  return out.str();
}


/// Counts mismatches, reporting the first few in detail.
struct mismatches {
  const char* what;
  std::size_t count = 0;

  void report(const std::string& got, const std::string& want) {
    if (++count <= 3)
      FAIL_CHECK(what << " differs:\n  got  " << got << "\n  want " << want);
  }
  ~mismatches() {
    INFO(what);
    CHECK(count == 0);
  }
};

std::uint32_t serving(const storage::event_store& store, const char* name) {
  auto gen = projections::active_generation(store, name);
  REQUIRE(gen);
  return *gen;
}

void check_orders(const storage::event_store& store, const expected_models& want) {
  auto gen = serving(store, "orders");
  REQUIRE(gen > 0);
  auto prefix = generation_prefix("orders", gen);
  {
    mismatches bad{"order summary"};
    for (auto& [id, summary] : want.orders) {
      auto got = projections::find_order(store, id);
      if (!got)
        bad.report(describe(got.error()), text(summary));
      else if (!(*got == summary))
        bad.report(text(*got), text(summary));
    }
  }
  CHECK(count_models(store, prefix + "o/") == want.orders.size());
  CHECK(count_models(store, prefix + "c/") == want.orders.size());
  auto none = projections::find_order(store, "o-no-such-order");
  REQUIRE_FALSE(none);
  CHECK(code_of(none.error()) == errc::not_found);

  mismatches bad{"customer order list"};
  std::size_t n = 0;
  for (auto& [customer, list] : want.customers) {
    // Page through with a small page size (a different one per customer) ...
    std::size_t limit = 1 + (n++ % 7);
    std::vector<projections::customer_order> got;
    std::string cursor;
    std::size_t pages = 0;
    for (;;) {
      auto page = projections::orders_of_customer(store, customer, limit, cursor);
      if (!page) {
        bad.report(describe(page.error()), customer);
        break;
      }
      ++pages;
      got.insert(got.end(), page->orders.begin(), page->orders.end());
      if (page->next_cursor.empty())
        break;
      if (page->orders.size() != limit)
        bad.report("a page of " + std::to_string(page->orders.size()) + " before the last",
                   std::to_string(limit));
      cursor = page->next_cursor;
      if (pages > list.size() + 1) {
        bad.report("endless paging", customer);
        break;
      }
    }
    if (got != list) {
      std::string g, w;
      for (auto& x : got)
        g += "\n    " + text(x);
      for (auto& x : list)
        w += "\n    " + text(x);
      bad.report(customer + ":" + g, customer + ":" + w);
    }
    if (pages != std::max<std::size_t>(1, (list.size() + limit - 1) / limit))
      bad.report(customer + ": " + std::to_string(pages) + " pages of " + std::to_string(limit),
                 std::to_string(list.size()) + " orders");
    // ... and in one page.
    auto whole = projections::orders_of_customer(store, customer, projections::max_page_size);
    if (!whole || whole->orders != list || !whole->next_cursor.empty())
      bad.report(customer + " in one page differs", customer);
  }
}

void check_stock(const storage::event_store& store, const expected_models& want) {
  auto gen = serving(store, "stock");
  REQUIRE(gen > 0);
  {
    mismatches bad{"stock level"};
    for (auto& [sku, level] : want.stock) {
      auto got = projections::find_stock(store, sku);
      if (!got)
        bad.report(describe(got.error()), text(level));
      else if (!(*got == level))
        bad.report(text(*got), text(level));
    }
  }
  CHECK(count_models(store, generation_prefix("stock", gen) + "s/") == want.stock.size());
  auto none = projections::find_stock(store, "SKU-NEVER-STOCKED");
  REQUIRE_FALSE(none);
  CHECK(code_of(none.error()) == errc::not_found);
}

/// A cluster store's figures per slot: each slot's are the sum of its
/// orders' parts, and all slots together are the day's.
void check_slot_figures(const storage::event_store& store, const expected_models& want,
                        const std::string& prefix) {
  auto slots = projections::cluster_slots(store);
  REQUIRE(slots);
  if (*slots == 0) {
    CHECK(count_models(store, prefix + "s/") == 0);
    return;
  }
  std::map<std::pair<std::uint32_t, std::string>, projections::day_figures> per_slot;
  for (auto& [id, days] : want.order_days)
    for (auto& [day, part] : days) {
      auto& f = per_slot[{static_cast<std::uint32_t>(events::stable_hash(id) % *slots), day}];
      f.day = day;
      f += part;
    }
  mismatches bad{"slot day figures"};
  for (auto& [day, total] : want.days) {
    std::vector<std::uint32_t> all;
    for (std::uint32_t slot = 0; slot < *slots; ++slot) {
      all.push_back(slot);
      auto i = per_slot.find({slot, day});
      auto expected = i != per_slot.end() ? i->second : projections::day_figures{day, 0, 0, 0, 0, 0, {}};
      auto got = projections::figures_of_day(store, day, {slot});
      if (!got)
        bad.report(describe(got.error()), text(expected));
      else if (!(*got == expected))
        bad.report("slot " + std::to_string(slot) + ": " + text(*got), text(expected));
    }
    auto sum = projections::figures_of_day(store, day, all);
    if (!sum)
      bad.report(describe(sum.error()), text(total));
    else if (!(*sum == total))
      bad.report("all slots: " + text(*sum), text(total));
  }
  CHECK(count_models(store, prefix + "s/") == per_slot.size());
}

void check_figures(const storage::event_store& store, const expected_models& want) {
  auto gen = serving(store, "figures");
  REQUIRE(gen > 0);
  auto prefix = generation_prefix("figures", gen);
  {
    mismatches bad{"day figures"};
    for (auto& [day, figures] : want.days) {
      auto got = projections::figures_of_day(store, day);
      if (!got)
        bad.report(describe(got.error()), text(figures));
      else if (!(*got == figures))
        bad.report(text(*got), text(figures));
    }
  }
  CHECK(count_models(store, prefix + "d/") == want.days.size());
  CHECK(count_models(store, prefix + "f/") == want.sagas_in_flight);
  check_slot_figures(store, want, prefix);
  // A day without orders has zeros.
  auto quiet = projections::figures_of_day(store, "2001-02-03");
  REQUIRE(quiet);
  CHECK(*quiet == projections::day_figures{"2001-02-03", 0, 0, 0, 0, 0, {}});
  // Ranges, oldest first: everything, and everything but the first and last day.
  std::vector<projections::day_figures> all;
  for (auto& [day, figures] : want.days)
    all.push_back(figures);
  if (!all.empty()) {
    auto got = projections::figures_between(store, "2000-01-01", "2099-12-31");
    REQUIRE(got);
    CHECK(*got == all);
    got = projections::figures_between(store, all.front().day, all.back().day);
    REQUIRE(got);
    CHECK(*got == all);
    if (all.size() > 2) {
      got = projections::figures_between(store, all[1].day, all[all.size() - 2].day);
      REQUIRE(got);
      CHECK(*got == std::vector<projections::day_figures>(all.begin() + 1, all.end() - 1));
    }
  }

  auto stats = projections::saga_statistics(store);
  REQUIRE(stats);
  std::set<std::string> got_paths, want_paths;
  for (auto& s : *stats)
    got_paths.insert(s.path);
  for (auto& [path, durations] : want.durations_us)
    want_paths.insert(path);
  CHECK(got_paths == want_paths);
  for (auto& s : *stats) {
    auto it = want.durations_us.find(s.path);
    if (it == want.durations_us.end())
      continue;
    const auto& d = it->second;
    INFO("path " << s.path << ", " << d.size() << " sagas");
    REQUIRE(s.count == d.size());
    long double sum = 0;
    for (auto x : d)
      sum += x;
    double mean_ms = static_cast<double>(sum / d.size() / 1000.0L);
    CHECK(std::abs(s.mean_ms - mean_ms) <= 1e-6 * std::abs(mean_ms) + 1e-9);
    CHECK(s.max_ms == static_cast<double>(*std::max_element(d.begin(), d.end())) / 1000.0);
    for (auto [pct, got] : {std::pair<unsigned, double>{50, s.p50_ms}, {90, s.p90_ms}, {99, s.p99_ms}}) {
      auto exact = static_cast<double>(nearest_rank(d, pct)) / 1000.0;
      INFO("p" << pct << ": got " << got << " ms, exact " << exact << " ms");
      CHECK(std::abs(got - exact) <= exact / 32 + 0.001);
    }
  }
}

} // namespace

std::string utc_day(std::int64_t at_us) {
  constexpr std::int64_t day_us = 86'400'000'000LL;
  std::int64_t days = at_us / day_us - (at_us % day_us < 0 ? 1 : 0);
  // Howard Hinnant's civil_from_days.
  std::int64_t z = days + 719468;
  std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  std::int64_t doe = z - era * 146097;
  std::int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  std::int64_t y = yoe + era * 400;
  std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  std::int64_t mp = (5 * doy + 2) / 153;
  std::int64_t d = doy - (153 * mp + 2) / 5 + 1;
  std::int64_t m = mp < 10 ? mp + 3 : mp - 9;
  if (m <= 2)
    ++y;
  char buf[32];
  std::snprintf(buf, sizeof buf, "%04lld-%02lld-%02lld", static_cast<long long>(y),
                static_cast<long long>(m), static_cast<long long>(d));
  return buf;
}

std::int64_t nearest_rank(std::vector<std::int64_t> values, unsigned pct) {
  std::sort(values.begin(), values.end());
  auto n = values.size();
  auto rank = (pct * n + 99) / 100; // ceil(pct / 100 * n), exactly
  rank = std::clamp<std::size_t>(rank, 1, n);
  return values[rank - 1];
}

expected_models fold(const storage::event_store& store, const std::set<std::uint64_t>& skipped,
                     std::uint64_t up_to) {
  expected_models m;
  folder f{m, {}, {}};
  auto all = store.read_all();
  while (all.next()) {
    const auto& rec = all.current();
    if (rec.position > up_to)
      break;
    m.position = rec.position;
    if (skipped.count(rec.position) != 0)
      continue;
    bool order_event = starts_with(rec.type, "order_");
    bool money_event = rec.type == "payment_captured" || rec.type == "payment_refunded";
    bool stock_event = rec.type == "stock_adjusted" || rec.type == "stock_reserved"
                       || rec.type == "stock_released" || rec.type == "stock_committed";
    if (!order_event && !money_event && !stock_event)
      continue;
    auto ev = rec.decode_payload();
    if (!ev) {
      f.anomaly(rec, describe(ev.error()));
      continue;
    }
    if (money_event) {
      // Captured amounts come from the payment stream only.
      auto id = order_id_in(*ev);
      auto it = f.m.orders.find(id);
      if (it == f.m.orders.end()) {
        f.anomaly(rec, "payment of order " + id + " that was never placed");
        continue;
      }
      auto amount = std::holds_alternative<payment_captured>(*ev)
                      ? std::get<payment_captured>(*ev).amount_cents
                      : -std::get<payment_refunded>(*ev).amount_cents;
      it->second.captured_cents += amount;
      f.figures(rec, *ev);
    } else if (order_event) {
      f.order(rec, *ev);
      f.figures(rec, *ev);
    } else {
      f.stock(rec, *ev);
    }
  }
  REQUIRE_FALSE(all.error());
  for (auto& [day, by_currency] : f.revenue)
    for (auto& [currency, r] : by_currency)
      m.days[day].revenue.push_back(r); // std::map: sorted by currency
  for (auto& [id, s] : m.orders)
    m.customers[s.customer_id].push_back({id, s.placed_us, s.total_cents, s.currency, s.status, {}});
  for (auto& [customer, list] : m.customers)
    std::sort(list.begin(), list.end(), [](const auto& x, const auto& y) {
      return x.placed_us != y.placed_us ? x.placed_us > y.placed_us : x.order_id < y.order_id;
    });
  m.sagas_in_flight = f.sagas.size();
  return m;
}

void check_models(const storage::event_store& store, const expected_models& want,
                  model_set which) {
  if (which.orders)
    check_orders(store, want);
  if (which.stock)
    check_stock(store, want);
  if (which.figures)
    check_figures(store, want);
}

std::string generation_prefix(const std::string& name, std::uint32_t gen) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", gen);
  return "m/" + name + "/g" + buf + "/";
}

std::string checkpoint_name(const std::string& name, std::uint32_t gen) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "%08x", gen);
  return "projection/" + name + "/g" + buf;
}

std::map<std::string, std::uint64_t>
check_models_at_checkpoints(const storage::event_store& store,
                            const std::set<std::uint64_t>& skipped) {
  std::map<std::string, std::uint64_t> checkpoints;
  for (std::string name : {"orders", "stock", "figures"}) {
    auto gen = projections::active_generation(store, name);
    REQUIRE(gen);
    if (*gen == 0)
      continue; // never built
    auto cp = store.load_checkpoint(checkpoint_name(name, *gen));
    REQUIRE(cp);
    auto position = *cp ? (*cp)->position : 0;
    checkpoints[name] = position;
    INFO("projection " << name << ", generation " << *gen << ", checkpoint " << position);
    REQUIRE(position <= store.last_position());
    auto want = fold(store, skipped, position);
    REQUIRE(want.anomalies.empty());
    check_models(store, want, model_set{name == "orders", name == "stock", name == "figures"});
  }
  return checkpoints;
}

std::size_t count_models(const storage::event_store& store, const std::string& prefix) {
  std::size_t n = 0;
  std::string after;
  for (;;) {
    auto page = store.scan_models(prefix, after, 1000);
    REQUIRE(page);
    n += page->size();
    if (page->size() < 1000)
      return n;
    after = page->back().first;
  }
}

} // namespace keel::test
