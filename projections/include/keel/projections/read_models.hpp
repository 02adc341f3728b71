#pragma once

// The read models of Keel's projections and the functions that query them.
// Queries read the store's `read_models` column family (the projection's
// active generation) and are safe from any thread, beside a running
// projection runner or from another process holding a read-only or secondary
// store. They never block on the runner: a model is as fresh as its
// projection's checkpoint (see `projection_runner::status`).

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <caf/expected.hpp>

#include "keel/events/reasons.hpp"
#include "keel/events/types.hpp"
#include "keel/storage/fwd.hpp"

namespace keel::projections {

// -- order summary (projection "orders") --------------------------------------

/// One step of an order's saga as recorded in its stream.
struct order_step {
  /// The event's type without the "order_" prefix ("placed", "stock_reserved").
  std::string name;
  /// When the event was created, microseconds since the Unix epoch.
  std::int64_t at_us = 0;
  /// The event's global position.
  std::uint64_t position = 0;

  friend bool operator==(const order_step& x, const order_step& y) {
    return x.name == y.name && x.at_us == y.at_us && x.position == y.position;
  }
};

/// Everything a customer or support agent asks about one order.
struct order_summary {
  std::string order_id;
  std::string customer_id;
  /// "placed", "stock_reserved", "payment_authorized", "pending_payment",
  /// "shipment_scheduled", "completed", "rejected" or "cancelled".
  std::string status;
  /// Why the order was rejected or cancelled (or is being: a refusal's
  /// compensations run), or why payment is pending; text for people.
  std::string reason;
  std::vector<events::order_line> items;
  std::string currency;
  std::int64_t total_cents = 0;
  bool premium = false;
  std::string payment_id;
  std::string payment_provider;
  std::int64_t captured_cents = 0;
  std::string tracking_id;
  std::string carrier;
  std::int64_t estimated_delivery_us = 0;
  bool cancel_requested = false;
  /// Times the payment was reported unavailable (pending_payment entries).
  std::uint32_t payment_attempts = 0;
  std::int64_t placed_us = 0;
  std::int64_t updated_us = 0;
  std::vector<order_step> steps;
  /// The code of `reason` when the order ends (or is ending) other than
  /// completed; `unspecified` otherwise, for records that named none, and in
  /// summaries stored before the code was (format version 1).
  events::end_reason reason_code = events::end_reason::unspecified;

  friend bool operator==(const order_summary& x, const order_summary& y);
};

/// Whether `status` is terminal (completed, rejected, cancelled).
bool is_terminal(std::string_view status) noexcept;

/// The summary of order `order_id`. Errors: `not_found` (no such order, or the
/// projection has not run yet), `corrupt_record`, `storage_failure`.
caf::expected<order_summary> find_order(const storage::event_store& store,
                                        std::string_view order_id);

// -- orders by customer (projection "orders") ---------------------------------

/// One entry of a customer's order list.
struct customer_order {
  std::string order_id;
  std::int64_t placed_us = 0;
  std::int64_t total_cents = 0;
  std::string currency;
  /// The order's current status (from its summary).
  std::string status;
  /// Where a list continues after this order (a `next_cursor` value; lists
  /// of several stores merge in its order).
  std::string cursor;

  friend bool operator==(const customer_order& x, const customer_order& y) {
    return x.order_id == y.order_id && x.placed_us == y.placed_us
           && x.total_cents == y.total_cents && x.currency == y.currency && x.status == y.status;
  }
};

/// A page of a customer's orders, newest first.
struct customer_orders_page {
  std::vector<customer_order> orders;
  /// Pass to the next call to get the next page; empty on the last page.
  std::string next_cursor;
};

/// The most orders one page returns.
constexpr std::size_t max_page_size = 500;

/// The orders of `customer_id`, newest first (by placement time, then order
/// id), at most `limit` (1..max_page_size) after `cursor`. A customer without
/// orders gets an empty page. Errors: `invalid_argument` (limit out of range,
/// a cursor that is not one this function returned), `not_found` (the
/// projection has not run yet), `corrupt_record`, `storage_failure`.
caf::expected<customer_orders_page> orders_of_customer(const storage::event_store& store,
                                                       std::string_view customer_id,
                                                       std::size_t limit = 20,
                                                       std::string_view cursor = {});

// -- stock levels (projection "stock") ----------------------------------------

/// The stock of one SKU as of the projection's checkpoint.
struct stock_level {
  std::string sku;
  std::int64_t on_hand = 0;
  std::int64_t reserved = 0;
  std::int64_t updated_us = 0;

  std::int64_t available() const noexcept {
    return on_hand - reserved;
  }

  friend bool operator==(const stock_level& x, const stock_level& y) {
    return x.sku == y.sku && x.on_hand == y.on_hand && x.reserved == y.reserved
           && x.updated_us == y.updated_us;
  }
};

/// The stock level of `sku`. Errors: `not_found` (never stocked, or the
/// projection has not run yet), `corrupt_record`, `storage_failure`.
caf::expected<stock_level> find_stock(const storage::event_store& store, std::string_view sku);

// -- business figures and saga statistics (projection "figures") ---------------

/// Revenue of completed orders in one currency.
struct currency_revenue {
  std::string currency;
  std::uint64_t orders = 0;
  std::int64_t revenue_cents = 0;

  /// Revenue / orders, in cents (0 without orders).
  std::int64_t average_order_cents() const noexcept {
    return orders == 0 ? 0 : revenue_cents / static_cast<std::int64_t>(orders);
  }

  friend bool operator==(const currency_revenue& x, const currency_revenue& y) {
    return x.currency == y.currency && x.orders == y.orders && x.revenue_cents == y.revenue_cents;
  }
};

/// The figures of one UTC day. Orders count as placed on the day of their
/// order_placed event and by outcome on the day they ended; revenue is the
/// captured amount of the orders completed that day, per currency.
struct day_figures {
  /// "YYYY-MM-DD".
  std::string day;
  std::uint64_t placed = 0;
  std::uint64_t completed = 0;
  std::uint64_t rejected = 0;
  std::uint64_t cancelled = 0;
  /// Orders that entered pending_payment that day (each order once).
  std::uint64_t pending_payment = 0;
  /// Sorted by currency.
  std::vector<currency_revenue> revenue;

  /// completed / placed of the day (0 without placed orders).
  double conversion() const noexcept {
    return placed == 0 ? 0.0 : static_cast<double>(completed) / static_cast<double>(placed);
  }

  /// Adds `other`'s counts and revenue (merged by currency, kept sorted) to
  /// these; the day stays.
  day_figures& operator+=(const day_figures& other);

  friend bool operator==(const day_figures& x, const day_figures& y) {
    return x.day == y.day && x.placed == y.placed && x.completed == y.completed
           && x.rejected == y.rejected && x.cancelled == y.cancelled
           && x.pending_payment == y.pending_payment && x.revenue == y.revenue;
  }
};

/// The figures of `day` ("YYYY-MM-DD"); a day without orders has zeros.
/// Errors: `invalid_argument` (not a date), `not_found` (the projection has
/// not run yet), `corrupt_record`, `storage_failure`.
caf::expected<day_figures> figures_of_day(const storage::event_store& store,
                                          std::string_view day);

/// The figures of `day` over the orders of cluster slots `slots` only: a
/// cluster node's own figures, the orders of the slots it serves (the copies
/// of orders that moved to another node are left out, so the nodes' figures
/// add up to the cluster's). The store's figures projection must count per
/// slot (`set_cluster_slots`). Errors as for `figures_of_day`.
caf::expected<day_figures> figures_of_day(const storage::event_store& store,
                                          std::string_view day,
                                          const std::vector<std::uint32_t>& slots);

/// The slot count of the cluster whose node keeps this store (0: none).
/// Errors: `corrupt_record`, `storage_failure`.
caf::expected<std::uint32_t> cluster_slots(const storage::event_store& store);

/// Records that this store belongs to a cluster of `slots` slots (a node
/// joining, before its projections start): the figures projection then also
/// counts per slot. True when it changed, i.e. the figures must be rebuilt to
/// count the orders already projected per slot too. Errors:
/// `invalid_argument` (the store belongs to a cluster of another slot count:
/// its keys would be routed differently), `storage_failure`.
caf::expected<bool> set_cluster_slots(storage::event_store& store, std::uint32_t slots);

/// The figures of every day with orders in [`from`, `to`] (inclusive,
/// "YYYY-MM-DD"), oldest first. Errors as for `figures_of_day`.
caf::expected<std::vector<day_figures>> figures_between(const storage::event_store& store,
                                                        std::string_view from,
                                                        std::string_view to);

/// The UTC day ("YYYY-MM-DD") of a time in microseconds since the epoch.
std::string day_of(std::int64_t at_us);

/// The way a saga ended, for its duration statistics.
///   completed                      paid and shipped
///   completed_after_retry          completed after pending_payment
///   rejected                       out of stock
///   cancelled_by_customer          a cancel request was recorded
///   cancelled_payment_declined     every gateway declined
///   cancelled_payment_unavailable  gave up after pending_payment
///   cancelled_shipment_failed      no carrier could ship
///   cancelled_other                any other cancellation
std::string_view saga_path_of(std::string_view outcome, bool cancel_requested, bool declined,
                              bool shipment_failed, bool pending) noexcept;

/// Durations (order_placed to the terminal event) of the sagas that took one
/// path. Percentiles come from a log-linear histogram (32 buckets per power of
/// two): each is within 3.2% of the exact nearest-rank value.
struct saga_path_stats {
  std::string path;
  std::uint64_t count = 0;
  double mean_ms = 0;
  double p50_ms = 0;
  double p90_ms = 0;
  double p99_ms = 0;
  double max_ms = 0;
};

/// The statistics of every path taken so far, by path name. Errors:
/// `not_found` (the projection has not run yet), `corrupt_record`,
/// `storage_failure`.
caf::expected<std::vector<saga_path_stats>> saga_statistics(const storage::event_store& store);

} // namespace keel::projections
