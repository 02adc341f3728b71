#pragma once

// The stored form of the read models (private to the projections module):
// key layout and value codecs shared by the projections that write the models
// and the queries that read them. Layout (column family read_models):
//
//   p/<projection>/active            serving generation (decimal)
//   p/<projection>/format            how its values are framed (see value_framing)
//   p/<projection>/failure           the event a stopped projection cannot apply
//   p/<projection>/skip/<position>   an event an operator skipped (20 digits)
//   m/<projection>/g<gen:8 hex>/...  the models of one generation:
//     orders:  o/<order id>                               order_summary
//              c/<customer id> \0 <16 hex: ~placed_us> <order id>   customer entry
//     stock:   s/<sku>                                    stock_level
//     figures: d/<YYYY-MM-DD>                             day_figures
//              f/<order id>                               saga in flight
//              x/<path>                                   duration histogram

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include <caf/expected.hpp>

#include "codec.hpp"
#include "keel/projections/read_models.hpp"
#include "keel/projections/runner.hpp"
#include "keel/storage/fwd.hpp"

namespace keel::projections::detail {

template <class T, class = void>
struct has_order_id : std::false_type {};
template <class T>
struct has_order_id<T, std::void_t<decltype(std::declval<T>().order_id)>> : std::true_type {};

/// The order id an event carries, or nullptr.
template <class Event>
const std::string* order_id_of(const Event& ev) {
  const std::string* id = nullptr;
  std::visit(
    [&](const auto& x) {
      if constexpr (has_order_id<std::decay_t<decltype(x)>>::value)
        id = &x.order_id;
    },
    ev);
  return id;
}

std::string meta_key(std::string_view projection, std::string_view what);
std::string generation_prefix(std::string_view projection, std::uint32_t generation);
std::string checkpoint_name(std::string_view projection, std::uint32_t generation);

/// How the values of a projection are stored (`p/<projection>/format`): the
/// runner's records (skips, failure) of every projection and the models of
/// the standard ones (orders, stock, figures). Stores of builds before
/// values carried their format version have no format key: their values
/// are `unversioned` (format version 1 without the version). Since then
/// every value starts with its format version (`codec::encode_value`). The
/// runner upgrades a projection at start (`upgrade_framing`); queries read
/// both.
enum class value_framing : std::uint8_t {
  unversioned = 1,
  versioned = 2,
};

/// The framing of `projection`'s stored values; `unknown_event_type` when a
/// newer build wrote a framing this one does not know.
caf::expected<value_framing> framing_of(const storage::event_store& store,
                                        std::string_view projection);

/// The value of `p/<projection>/format` for `x`.
std::string framing_value(value_framing x);

/// The serving generation of a projection: its key prefix and framing.
struct serving_models {
  std::string prefix;
  value_framing framing = value_framing::versioned;
};

/// The serving generation of `projection`; `not_found` when it was never built.
caf::expected<serving_models> serving_prefix(const storage::event_store& store,
                                             std::string_view projection);

// -- orders --------------------------------------------------------------------


/// The part of a customer-index key after "c/<customer>\0".
std::string customer_suffix(std::int64_t placed_us, std::string_view order_id);
std::string customer_prefix(std::string_view customer_id);

struct customer_entry {
  std::string order_id;
  std::int64_t placed_us = 0;
  std::int64_t total_cents = 0;
  std::string currency;
};

// -- stock ---------------------------------------------------------------------


// -- figures -------------------------------------------------------------------


/// What the figures projection keeps about a saga until it ends.
struct saga_in_flight {
  std::int64_t placed_us = 0;
  std::string currency;
  std::int64_t captured_cents = 0;
  bool pending = false;
  bool cancel_requested = false;
  bool declined = false;
  bool shipment_failed = false;
};

/// A log-linear histogram of durations in microseconds: values below 32 have
/// a bucket each, above that 32 buckets per power of two (relative width at
/// most 1/32).
struct duration_histogram {
  std::uint64_t count = 0;
  std::int64_t sum_us = 0;
  std::int64_t max_us = 0;
  /// (bucket, count), sorted by bucket, counts > 0.
  std::vector<std::pair<std::uint32_t, std::uint64_t>> buckets;

  void add(std::int64_t us);
  /// The nearest-rank quantile `q` (0..1], as the middle of its bucket, in µs.
  double quantile(double q) const;
};
std::uint32_t bucket_of(std::uint64_t us) noexcept;
/// [lower, lower + width) of a bucket.
std::uint64_t bucket_lower(std::uint32_t bucket) noexcept;
std::uint64_t bucket_width(std::uint32_t bucket) noexcept;

/// Adds `orders` completed orders with `cents` captured in `currency` to
/// `figures` (revenue stays sorted by currency).
void add_revenue(day_figures& figures, const std::string& currency, std::uint64_t orders,
                 std::int64_t cents);

/// The key of a day's figures of one cluster slot: "s/<slot, 5 digits>/<day>".
std::string slot_day_key(std::uint32_t slot, std::string_view day);

/// A page of read-model entries (key, value).
using model_page = std::vector<std::pair<std::string, std::string>>;

/// Calls `f(page)` for every page of at most `page_size` read-model entries
/// under `prefix`, in key order, until `f` returns an error.
caf::error for_each_page(const storage::event_store& store, const std::string& prefix,
                         std::size_t page_size, const std::function<caf::error(model_page&)>& f);

/// "corrupt_record: read model <key> does not decode".
caf::error corrupt_model(std::string_view key);

/// "unknown_event_type: read model <key> is of format version N, ...".
caf::error newer_model(std::string_view key, std::uint32_t version, std::uint32_t known);

} // namespace keel::projections::detail

// The field lists of every stored value (see codec.hpp), in storage order.
// A field is added at the end as `f.since(N, ...)` with a new format version
// N of the type (`format_version`); older values stay readable.
namespace keel::projections::codec {

#define KEEL_STORED_FIELDS(type, ...)                                                            \
  template <class F, class T>                                                                     \
  std::enable_if_t<std::is_same_v<std::remove_const_t<T>, type>> fields(F& f, T& x) {             \
    f(__VA_ARGS__);                                                                               \
  }

KEEL_STORED_FIELDS(events::order_line, x.sku, x.quantity, x.unit_price_cents)
KEEL_STORED_FIELDS(order_step, x.name, x.at_us, x.position)
KEEL_STORED_FIELDS(detail::customer_entry, x.order_id, x.placed_us, x.total_cents, x.currency)
KEEL_STORED_FIELDS(stock_level, x.sku, x.on_hand, x.reserved, x.updated_us)
KEEL_STORED_FIELDS(currency_revenue, x.currency, x.orders, x.revenue_cents)
KEEL_STORED_FIELDS(day_figures, x.day, x.placed, x.completed, x.rejected, x.cancelled,
                   x.pending_payment, x.revenue)
KEEL_STORED_FIELDS(detail::saga_in_flight, x.placed_us, x.currency, x.captured_cents, x.pending,
                   x.cancel_requested, x.declined, x.shipment_failed)
KEEL_STORED_FIELDS(detail::duration_histogram, x.count, x.sum_us, x.max_us, x.buckets)
KEEL_STORED_FIELDS(projection_failure, x.position, x.event_type, x.stream, x.reason)
KEEL_STORED_FIELDS(skip_record, x.position, x.event_type, x.stream, x.reason, x.skipped_by,
                   x.note, x.at_us)

#undef KEEL_STORED_FIELDS

/// Version 2 added the reason code.
template <class F, class T>
std::enable_if_t<std::is_same_v<std::remove_const_t<T>, order_summary>> fields(F& f, T& x) {
  f(x.order_id, x.customer_id, x.status, x.reason, x.items, x.currency, x.total_cents, x.premium,
    x.payment_id, x.payment_provider, x.captured_cents, x.tracking_id, x.carrier,
    x.estimated_delivery_us, x.cancel_requested, x.payment_attempts, x.placed_us, x.updated_us,
    x.steps);
  f.since(2, x.reason_code);
}

template <>
struct format_version<order_summary> {
  static constexpr std::uint32_t value = 2;
};

} // namespace keel::projections::codec

namespace keel::projections::detail {

/// `x` as stored in a projection of framing `framing`.
template <class T>
std::string encode(const T& x, value_framing framing = value_framing::versioned) {
  return framing == value_framing::versioned ? codec::encode_value(x) : codec::encode_fields(x);
}

/// Decodes the value stored at `key`: `corrupt_record` when it is damaged,
/// `unknown_event_type` when a newer build wrote it.
template <class T>
caf::error decode(std::string_view key, std::string_view bytes, T& x,
                  value_framing framing = value_framing::versioned) {
  if (framing == value_framing::unversioned)
    return codec::decode_fields(bytes, x) ? caf::error{} : corrupt_model(key);
  std::uint32_t version = 0;
  switch (codec::decode_value(bytes, x, version)) {
    case codec::decoded::ok:
      return caf::error{};
    case codec::decoded::newer:
      return newer_model(key, version, codec::format_version<T>::value);
    case codec::decoded::damaged:
      break;
  }
  return corrupt_model(key);
}

} // namespace keel::projections::detail
