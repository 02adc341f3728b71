#include "models.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "codec.hpp"
#include "keel/events/error.hpp"
#include "keel/projections/runner.hpp"
#include "keel/storage/event_store.hpp"

namespace keel::projections::detail {

namespace {

constexpr char hex_digits[] = "0123456789abcdef";

void append_hex(std::string& out, std::uint64_t x, int digits) {
  for (int i = digits - 1; i >= 0; --i)
    out.push_back(hex_digits[(x >> (4 * i)) & 0xf]);
}

} // namespace

std::string meta_key(std::string_view projection, std::string_view what) {
  std::string key = "p/";
  key.append(projection).append("/").append(what);
  return key;
}

std::string generation_prefix(std::string_view projection, std::uint32_t generation) {
  std::string key = "m/";
  key.append(projection).append("/g");
  append_hex(key, generation, 8);
  key.push_back('/');
  return key;
}

std::string checkpoint_name(std::string_view projection, std::uint32_t generation) {
  std::string name = "projection/";
  name.append(projection).append("/g");
  append_hex(name, generation, 8);
  return name;
}

std::string framing_value(value_framing x) {
  return std::to_string(static_cast<int>(x));
}

caf::expected<value_framing> framing_of(const storage::event_store& store,
                                        std::string_view projection) {
  auto key = meta_key(projection, "format");
  auto value = store.get_model(key);
  if (!value)
    return value.error();
  if (!*value)
    return value_framing::unversioned;
  for (auto x : {value_framing::unversioned, value_framing::versioned})
    if (**value == framing_value(x))
      return x;
  return make_error(errc::unknown_event_type,
                    "the stored values of projection " + std::string{projection}
                      + " are framed as format " + **value + " (" + key
                      + "); this build knows formats 1 and 2: a newer keel wrote them");
}

caf::expected<serving_models> serving_prefix(const storage::event_store& store,
                                             std::string_view projection) {
  auto gen = active_generation(store, projection);
  if (!gen)
    return gen.error();
  if (*gen == 0)
    return make_error(errc::not_found,
                      "projection " + std::string{projection} + " has not been built yet");
  auto framing = framing_of(store, projection);
  if (!framing)
    return framing.error();
  return serving_models{generation_prefix(projection, *gen), *framing};
}

caf::error for_each_page(const storage::event_store& store, const std::string& prefix,
                         std::size_t page_size, const std::function<caf::error(model_page&)>& f) {
  std::string after;
  for (;;) {
    auto page = store.scan_models(prefix, after, page_size);
    if (!page)
      return page.error();
    if (page->empty())
      return caf::error{};
    after = page->back().first;
    auto full = page->size() == page_size;
    if (auto err = f(*page))
      return err;
    if (!full)
      return caf::error{};
  }
}

caf::error corrupt_model(std::string_view key) {
  return make_error(errc::corrupt_record, "read model " + std::string{key} + " does not decode");
}

caf::error newer_model(std::string_view key, std::uint32_t version, std::uint32_t known) {
  return make_error(errc::unknown_event_type,
                    "read model " + std::string{key} + " is of format version "
                      + std::to_string(version) + "; this build reads versions up to "
                      + std::to_string(known) + " (a newer keel wrote it)");
}

// -- orders --------------------------------------------------------------------

std::string customer_prefix(std::string_view customer_id) {
  std::string key = "c/";
  key.append(customer_id);
  key.push_back('\0');
  return key;
}

std::string customer_suffix(std::int64_t placed_us, std::string_view order_id) {
  std::string out;
  out.reserve(16 + order_id.size());
  append_hex(out, ~static_cast<std::uint64_t>(placed_us), 16);
  out.append(order_id);
  return out;
}

// -- figures -------------------------------------------------------------------

void add_revenue(day_figures& figures, const std::string& currency, std::uint64_t orders,
                 std::int64_t cents) {
  auto it = std::find_if(figures.revenue.begin(), figures.revenue.end(),
                         [&](const currency_revenue& r) { return r.currency >= currency; });
  if (it == figures.revenue.end() || it->currency != currency)
    it = figures.revenue.insert(it, currency_revenue{currency, 0, 0});
  it->orders += orders;
  it->revenue_cents += cents;
}

} // namespace keel::projections::detail

namespace keel::projections {

day_figures& day_figures::operator+=(const day_figures& other) {
  placed += other.placed;
  completed += other.completed;
  rejected += other.rejected;
  cancelled += other.cancelled;
  pending_payment += other.pending_payment;
  for (auto& r : other.revenue)
    detail::add_revenue(*this, r.currency, r.orders, r.revenue_cents);
  return *this;
}

} // namespace keel::projections

namespace keel::projections::detail {

std::string slot_day_key(std::uint32_t slot, std::string_view day) {
  char digits[16];
  std::snprintf(digits, sizeof digits, "%05u", slot);
  std::string key = "s/";
  key.append(digits).append("/").append(day);
  return key;
}

std::uint32_t bucket_of(std::uint64_t us) noexcept {
  if (us < 32)
    return static_cast<std::uint32_t>(us);
  auto exp = 63 - __builtin_clzll(us); // >= 5
  auto sub = (us >> (exp - 5)) & 31;
  return static_cast<std::uint32_t>((exp - 4) * 32 + sub);
}

std::uint64_t bucket_lower(std::uint32_t bucket) noexcept {
  if (bucket < 32)
    return bucket;
  auto exp = bucket / 32 + 4;
  auto sub = bucket % 32;
  return (std::uint64_t{32} + sub) << (exp - 5);
}

std::uint64_t bucket_width(std::uint32_t bucket) noexcept {
  return bucket < 32 ? 1 : std::uint64_t{1} << (bucket / 32 + 4 - 5);
}

void duration_histogram::add(std::int64_t us) {
  auto v = us < 0 ? std::uint64_t{0} : static_cast<std::uint64_t>(us);
  auto b = bucket_of(v);
  auto it = std::lower_bound(buckets.begin(), buckets.end(), b,
                             [](const auto& x, std::uint32_t key) { return x.first < key; });
  if (it != buckets.end() && it->first == b)
    ++it->second;
  else
    buckets.insert(it, {b, 1});
  ++count;
  sum_us += static_cast<std::int64_t>(v);
  max_us = std::max(max_us, static_cast<std::int64_t>(v));
}

double duration_histogram::quantile(double q) const {
  if (count == 0)
    return 0;
  auto rank = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(count)));
  rank = std::clamp<std::uint64_t>(rank, 1, count);
  std::uint64_t seen = 0;
  for (auto& [bucket, n] : buckets) {
    seen += n;
    if (seen >= rank) {
      auto mid = static_cast<double>(bucket_lower(bucket))
                 + (static_cast<double>(bucket_width(bucket)) - 1) / 2;
      return std::min(mid, static_cast<double>(max_us));
    }
  }
  return static_cast<double>(max_us);
}

} // namespace keel::projections::detail
