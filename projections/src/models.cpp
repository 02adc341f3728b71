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

caf::expected<std::string> serving_prefix(const storage::event_store& store,
                                          std::string_view projection) {
  auto gen = active_generation(store, projection);
  if (!gen)
    return gen.error();
  if (*gen == 0)
    return make_error(errc::not_found,
                      "projection " + std::string{projection} + " has not been built yet");
  return generation_prefix(projection, *gen);
}

caf::error corrupt_model(std::string_view key) {
  return make_error(errc::corrupt_record, "read model " + std::string{key} + " does not decode");
}

// -- orders --------------------------------------------------------------------

std::string encode(const order_summary& x) {
  std::string out;
  out.reserve(256);
  codec::writer w{out};
  w.u64(1); // value format
  w.str(x.order_id);
  w.str(x.customer_id);
  w.str(x.status);
  w.str(x.reason);
  w.u64(x.items.size());
  for (auto& line : x.items) {
    w.str(line.sku);
    w.u64(line.quantity);
    w.i64(line.unit_price_cents);
  }
  w.str(x.currency);
  w.i64(x.total_cents);
  w.boolean(x.premium);
  w.str(x.payment_id);
  w.str(x.payment_provider);
  w.i64(x.captured_cents);
  w.str(x.tracking_id);
  w.str(x.carrier);
  w.i64(x.estimated_delivery_us);
  w.boolean(x.cancel_requested);
  w.u64(x.payment_attempts);
  w.i64(x.placed_us);
  w.i64(x.updated_us);
  w.u64(x.steps.size());
  for (auto& step : x.steps) {
    w.str(step.name);
    w.i64(step.at_us);
    w.u64(step.position);
  }
  return out;
}

bool decode(std::string_view bytes, order_summary& x) {
  codec::reader r{bytes};
  std::uint64_t format = 0, n = 0;
  if (!r.u64(format) || format != 1)
    return false;
  r.str(x.order_id);
  r.str(x.customer_id);
  r.str(x.status);
  r.str(x.reason);
  if (!r.count(n))
    return false;
  x.items.resize(n);
  for (auto& line : x.items) {
    r.str(line.sku);
    r.u32(line.quantity);
    r.i64(line.unit_price_cents);
  }
  r.str(x.currency);
  r.i64(x.total_cents);
  r.boolean(x.premium);
  r.str(x.payment_id);
  r.str(x.payment_provider);
  r.i64(x.captured_cents);
  r.str(x.tracking_id);
  r.str(x.carrier);
  r.i64(x.estimated_delivery_us);
  r.boolean(x.cancel_requested);
  r.u32(x.payment_attempts);
  r.i64(x.placed_us);
  r.i64(x.updated_us);
  if (!r.count(n))
    return false;
  x.steps.resize(n);
  for (auto& step : x.steps) {
    r.str(step.name);
    r.i64(step.at_us);
    r.u64(step.position);
  }
  return r.done();
}

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

std::string encode(const customer_entry& x) {
  std::string out;
  codec::writer w{out};
  w.str(x.order_id);
  w.i64(x.placed_us);
  w.i64(x.total_cents);
  w.str(x.currency);
  return out;
}

bool decode(std::string_view bytes, customer_entry& x) {
  codec::reader r{bytes};
  r.str(x.order_id);
  r.i64(x.placed_us);
  r.i64(x.total_cents);
  r.str(x.currency);
  return r.done();
}

// -- stock ---------------------------------------------------------------------

std::string encode(const stock_level& x) {
  std::string out;
  codec::writer w{out};
  w.str(x.sku);
  w.i64(x.on_hand);
  w.i64(x.reserved);
  w.i64(x.updated_us);
  return out;
}

bool decode(std::string_view bytes, stock_level& x) {
  codec::reader r{bytes};
  r.str(x.sku);
  r.i64(x.on_hand);
  r.i64(x.reserved);
  r.i64(x.updated_us);
  return r.done();
}

// -- figures -------------------------------------------------------------------

std::string encode(const day_figures& x) {
  std::string out;
  codec::writer w{out};
  w.str(x.day);
  w.u64(x.placed);
  w.u64(x.completed);
  w.u64(x.rejected);
  w.u64(x.cancelled);
  w.u64(x.pending_payment);
  w.u64(x.revenue.size());
  for (auto& rev : x.revenue) {
    w.str(rev.currency);
    w.u64(rev.orders);
    w.i64(rev.revenue_cents);
  }
  return out;
}

bool decode(std::string_view bytes, day_figures& x) {
  codec::reader r{bytes};
  std::uint64_t n = 0;
  r.str(x.day);
  r.u64(x.placed);
  r.u64(x.completed);
  r.u64(x.rejected);
  r.u64(x.cancelled);
  r.u64(x.pending_payment);
  if (!r.count(n))
    return false;
  x.revenue.resize(n);
  for (auto& rev : x.revenue) {
    r.str(rev.currency);
    r.u64(rev.orders);
    r.i64(rev.revenue_cents);
  }
  return r.done();
}

std::string encode(const saga_in_flight& x) {
  std::string out;
  codec::writer w{out};
  w.i64(x.placed_us);
  w.str(x.currency);
  w.i64(x.captured_cents);
  w.u64((x.pending ? 1u : 0u) | (x.cancel_requested ? 2u : 0u) | (x.declined ? 4u : 0u)
        | (x.shipment_failed ? 8u : 0u));
  return out;
}

bool decode(std::string_view bytes, saga_in_flight& x) {
  codec::reader r{bytes};
  std::uint64_t flags = 0;
  r.i64(x.placed_us);
  r.str(x.currency);
  r.i64(x.captured_cents);
  r.u64(flags);
  x.pending = flags & 1;
  x.cancel_requested = flags & 2;
  x.declined = flags & 4;
  x.shipment_failed = flags & 8;
  return r.done() && flags < 16;
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

std::string encode(const duration_histogram& x) {
  std::string out;
  codec::writer w{out};
  w.u64(x.count);
  w.i64(x.sum_us);
  w.i64(x.max_us);
  w.u64(x.buckets.size());
  for (auto& [b, n] : x.buckets) {
    w.u64(b);
    w.u64(n);
  }
  return out;
}

bool decode(std::string_view bytes, duration_histogram& x) {
  codec::reader r{bytes};
  std::uint64_t n = 0;
  r.u64(x.count);
  r.i64(x.sum_us);
  r.i64(x.max_us);
  if (!r.count(n))
    return false;
  x.buckets.resize(n);
  for (auto& [b, c] : x.buckets) {
    r.u32(b);
    r.u64(c);
  }
  return r.done();
}

} // namespace keel::projections::detail
