#include "keel/actors/catalog.hpp"

#include <algorithm>
#include <mutex>

#include "journal.hpp"
#include "keel/events/error.hpp"
#include "keel/events/event.hpp"
#include "keel/events/ids.hpp"
#include "keel/events/streams.hpp"
#include "keel/storage/event_store.hpp"

namespace keel::actors {

namespace {

bool currency_code(const std::string& x) {
  return x.size() == 3 && std::all_of(x.begin(), x.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

std::string line_field(std::size_t i, const char* name) {
  return "items[" + std::to_string(i) + "]." + name;
}

} // namespace

catalog::catalog(std::shared_ptr<storage::event_store> store, std::vector<std::string> currencies)
  : store_(std::move(store)), currencies_(std::move(currencies)) {
}

caf::expected<std::shared_ptr<catalog>> catalog::open(std::shared_ptr<storage::event_store> store,
                                                      std::vector<std::string> currencies) {
  if (currencies.empty())
    return make_error(errc::invalid_argument, "catalogue: no currency is accepted");
  for (auto& c : currencies)
    if (!currency_code(c))
      return make_error(errc::invalid_argument,
                        "catalogue: currency \"" + c + "\" is not three upper-case letters");
  auto result = std::make_shared<catalog>(std::move(store), std::move(currencies));
  std::string after;
  for (;;) {
    auto page = result->store_->list_streams(events::catalog_prefix, 1000, after);
    if (!page)
      return std::move(page.error());
    for (auto& info : *page)
      if (auto err = result->load(std::string{events::key_of_stream(info.stream)}))
        return err;
    if (page->size() < 1000)
      break;
    after = page->back().stream;
  }
  return result;
}

caf::error catalog::load(const std::string& sku) {
  std::optional<catalog_entry> entry;
  std::uint64_t version = 0;
  auto err = fold_stream(*store_, events::catalog_stream(sku), 1,
                         [&](const events::event& ev, const events::record_view& rec) {
                           version = rec.version;
                           if (auto* set = std::get_if<events::catalog_price_set>(&ev))
                             entry = catalog_entry{sku, set->price_cents, set->currency, 0};
                           else if (std::holds_alternative<events::catalog_entry_withdrawn>(ev))
                             entry.reset();
                         });
  if (err)
    return err;
  std::unique_lock<std::shared_mutex> guard{mtx_};
  if (entry) {
    entry->version = version;
    entries_[sku] = *entry;
    withdrawn_.erase(sku);
  } else {
    entries_.erase(sku);
    withdrawn_[sku] = version;
  }
  return caf::error{};
}

caf::error catalog::reload(const std::string& sku) {
  std::lock_guard<std::mutex> writer{write_mtx_};
  return load(sku);
}

std::optional<catalog_entry> catalog::find(const std::string& sku) const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  auto i = entries_.find(sku);
  if (i == entries_.end())
    return std::nullopt;
  return i->second;
}

bool catalog::accepts(const std::string& currency) const {
  return std::find(currencies_.begin(), currencies_.end(), currency) != currencies_.end();
}

std::size_t catalog::size() const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  return entries_.size();
}

std::vector<std::pair<catalog_entry, bool>> catalog::entries() const {
  std::shared_lock<std::shared_mutex> guard{mtx_};
  std::vector<std::pair<catalog_entry, bool>> out;
  out.reserve(entries_.size() + withdrawn_.size());
  for (auto& kv : entries_)
    out.emplace_back(kv.second, false);
  for (auto& kv : withdrawn_)
    out.emplace_back(catalog_entry{kv.first, 0, {}, kv.second}, true);
  std::sort(out.begin(), out.end(),
            [](auto& a, auto& b) { return a.first.sku < b.first.sku; });
  return out;
}

void catalog::mirror(const catalog_entry& e, bool withdrawn) {
  std::unique_lock<std::shared_mutex> guard{mtx_};
  std::uint64_t known = 0;
  if (auto i = entries_.find(e.sku); i != entries_.end())
    known = i->second.version;
  else if (auto w = withdrawn_.find(e.sku); w != withdrawn_.end())
    known = w->second;
  if (e.version <= known)
    return;
  if (withdrawn) {
    entries_.erase(e.sku);
    withdrawn_[e.sku] = e.version;
  } else {
    entries_[e.sku] = e;
    withdrawn_.erase(e.sku);
  }
}

caf::expected<catalog_entry> catalog::set(const std::string& sku, std::int64_t price_cents,
                                          const std::string& currency, const std::string& by) {
  if (!events::valid_key(sku))
    return make_error(errc::invalid_argument,
                      "sku: must be 1.." + std::to_string(events::max_key_size)
                        + " characters of A-Z a-z 0-9 . _ : -");
  if (price_cents < 1 || price_cents > events::max_unit_price_cents)
    return make_error(errc::invalid_argument,
                      "price_cents: must be 1.." + std::to_string(events::max_unit_price_cents));
  if (!accepts(currency))
    return make_error(errc::invalid_argument, "currency: " + currency + " is not accepted");
  std::lock_guard<std::mutex> writer{write_mtx_};
  std::uint64_t version = 0;
  {
    std::shared_lock<std::shared_mutex> guard{mtx_};
    if (auto i = entries_.find(sku); i != entries_.end()) {
      if (i->second.price_cents == price_cents && i->second.currency == currency)
        return i->second; // unchanged: nothing to record
      version = i->second.version;
    } else if (auto w = withdrawn_.find(sku); w != withdrawn_.end()) {
      version = w->second;
    }
  }
  events::catalog_price_set ev{sku, price_cents, currency, by};
  auto appended = store_->append(events::catalog_stream(sku),
                                 storage::expected_version::exact(version),
                                 {make_new_event(ev, storage::now_us())});
  if (!appended && code_of(appended.error()) == errc::version_conflict) {
    // Written by another process on the same store: catch up, then refuse
    // (the operator decides again with the current price in view).
    if (auto err = load(sku))
      return err;
    return std::move(appended.error());
  }
  if (!appended)
    return std::move(appended.error());
  catalog_entry entry{sku, price_cents, currency, appended->last_version};
  std::unique_lock<std::shared_mutex> guard{mtx_};
  entries_[sku] = entry;
  withdrawn_.erase(sku);
  return entry;
}

caf::error catalog::withdraw(const std::string& sku, const std::string& by) {
  std::lock_guard<std::mutex> writer{write_mtx_};
  std::uint64_t version = 0;
  {
    std::shared_lock<std::shared_mutex> guard{mtx_};
    auto i = entries_.find(sku);
    if (i == entries_.end())
      return make_error(errc::not_found, "catalogue: " + sku + " is not on sale");
    version = i->second.version;
  }
  auto appended = store_->append(events::catalog_stream(sku),
                                 storage::expected_version::exact(version),
                                 {make_new_event(events::catalog_entry_withdrawn{sku, by},
                                                 storage::now_us())});
  if (!appended) {
    if (code_of(appended.error()) == errc::version_conflict)
      if (auto err = load(sku))
        return err;
    return std::move(appended.error());
  }
  std::unique_lock<std::shared_mutex> guard{mtx_};
  entries_.erase(sku);
  withdrawn_[sku] = appended->last_version;
  return caf::error{};
}

caf::error catalog::price(events::place_order& cmd) const {
  if (!cmd.currency.empty() && !accepts(cmd.currency)) {
    std::string list;
    for (auto& c : currencies_)
      list += (list.empty() ? "" : ", ") + c;
    return make_error(errc::invalid_argument,
                      "currency: " + cmd.currency + " is not accepted (accepted: " + list + ")");
  }
  // Two passes under one shared lock: check every line, then set the
  // prices; a refusal leaves `cmd` as it was, and nothing is allocated.
  std::shared_lock<std::shared_mutex> guard{mtx_};
  const catalog_entry* first = nullptr;
  for (std::size_t i = 0; i < cmd.lines.size(); ++i) {
    auto& line = cmd.lines[i];
    auto e = entries_.find(line.sku);
    if (e == entries_.end() || !accepts(e->second.currency))
      return make_error(errc::not_for_sale,
                        line_field(i, "sku") + ": " + line.sku + " is not for sale");
    auto& entry = e->second;
    if (first == nullptr)
      first = &entry;
    if (entry.currency != first->currency)
      return make_error(errc::currency_mismatch,
                        line_field(i, "sku") + ": " + line.sku + " is priced in " + entry.currency
                          + ", the lines before it in " + first->currency
                          + " (one order takes one currency)");
    if (line.unit_price_cents != events::unpriced && line.unit_price_cents != entry.price_cents)
      return make_error(errc::price_changed,
                        line_field(i, "unit_price_cents") + ": " + line.sku + " costs "
                          + std::to_string(entry.price_cents) + " " + entry.currency
                          + " cents now, not " + std::to_string(line.unit_price_cents));
  }
  if (first != nullptr && !cmd.currency.empty() && cmd.currency != first->currency)
    return make_error(errc::currency_mismatch,
                      "currency: the items are priced in " + first->currency + ", not "
                        + cmd.currency);
  for (auto& line : cmd.lines)
    line.unit_price_cents = entries_.find(line.sku)->second.price_cents;
  if (first != nullptr)
    cmd.currency = first->currency;
  return caf::error{};
}

} // namespace keel::actors
