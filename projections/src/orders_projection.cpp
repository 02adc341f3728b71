// Projection "orders": the order summary by id and the orders of each customer.

#include <type_traits>
#include <vector>

#include "keel/events/error.hpp"
#include "keel/projections/projection.hpp"
#include "keel/storage/event_store.hpp"
#include "models.hpp"
#include "pending.hpp"

namespace keel::projections {

namespace {

using namespace keel::events;

class orders_projection final : public projection {
public:
  std::string_view name() const noexcept override {
    return "orders";
  }

  bool wants(std::string_view type) const noexcept override {
    return (type.size() > 6 && type.compare(0, 6, "order_") == 0) || type == "payment_captured"
           || type == "payment_refunded";
  }

  caf::error apply(const record_view& rec, const event& ev, const keyspace& models) override {
    if (auto* placed = std::get_if<order_placed>(&ev))
      return apply_placed(rec, *placed, models);
    auto* order_id = detail::order_id_of(ev);
    if (order_id == nullptr)
      return make_error(errc::invalid_argument,
                        "event type " + std::string{rec.type} + " carries no order id");
    auto slot = summaries_.load(models, "o/" + *order_id);
    if (!slot)
      return slot.error();
    auto& s = **slot;
    if (!s.exists)
      return make_error(errc::invalid_argument, "order " + *order_id + " has no order_placed before this "
                                                  + std::string{rec.type});
    auto& sum = s.value;
    s.dirty = true;
    // Money moves are the payment stream's: the saga records captures and
    // refunds there (its own stream may or may not carry a copy).
    if (auto* x = std::get_if<payment_captured>(&ev)) {
      sum.captured_cents += x->amount_cents;
      return caf::error{};
    }
    if (auto* x = std::get_if<payment_refunded>(&ev)) {
      sum.captured_cents -= x->amount_cents;
      return caf::error{};
    }
    std::visit([&](const auto& x) { update(sum, x); }, ev);
    sum.updated_us = rec.timestamp_us;
    sum.steps.push_back({std::string{rec.type.substr(6)}, rec.timestamp_us, rec.position});
    return caf::error{};
  }

  void flush(storage::write_batch& batch, const keyspace& models) override {
    summaries_.flush(batch, models);
    for (auto& [key, value] : index_)
      models.put(batch, key, value);
    index_.clear();
  }

  void starting(bool empty) override {
    if (empty)
      summaries_.track_writes(8u << 20);
  }

  void discard() override {
    summaries_.discard();
    index_.clear();
  }

private:
  caf::error apply_placed(const record_view& rec, const order_placed& x, const keyspace& models) {
    auto slot = summaries_.load(models, "o/" + x.order_id);
    if (!slot)
      return slot.error();
    auto& s = **slot;
    if (s.exists)
      return make_error(errc::invalid_argument, "order " + x.order_id + " was placed before");
    order_summary sum;
    sum.order_id = x.order_id;
    sum.customer_id = x.customer_id;
    sum.status = "placed";
    sum.items = x.lines;
    sum.currency = x.currency;
    sum.total_cents = x.total_cents;
    sum.premium = x.premium;
    sum.placed_us = rec.timestamp_us;
    sum.updated_us = rec.timestamp_us;
    sum.steps.push_back({"placed", rec.timestamp_us, rec.position});
    s.value = std::move(sum);
    s.exists = s.dirty = true;
    detail::customer_entry entry{x.order_id, rec.timestamp_us, x.total_cents, x.currency};
    index_.emplace_back(detail::customer_prefix(x.customer_id)
                          + detail::customer_suffix(rec.timestamp_us, x.order_id),
                        detail::encode(entry));
    return caf::error{};
  }

  // One overload per order event that changes more than the steps.
  static void update(order_summary& s, const order_stock_reserved&) {
    s.status = "stock_reserved";
  }
  static void update(order_summary& s, const order_payment_authorized& x) {
    s.status = "payment_authorized";
    s.reason.clear();
    s.reason_code = end_reason::unspecified;
    s.payment_id = x.payment_id;
    s.payment_provider = x.provider;
  }
  static void update(order_summary& s, const order_payment_pending& x) {
    s.status = "pending_payment";
    s.reason = x.reason;
    s.reason_code = end_reason::unspecified;
    ++s.payment_attempts;
  }
  static void update(order_summary& s, const order_shipment_scheduled& x) {
    s.status = "shipment_scheduled";
    s.tracking_id = x.tracking_id;
    s.carrier = x.carrier;
    s.estimated_delivery_us = x.estimated_delivery_us;
  }
  static void update(order_summary& s, const order_completed&) {
    s.status = "completed";
    s.reason.clear();
    s.reason_code = end_reason::unspecified;
  }
  static void update(order_summary& s, const order_cancel_requested&) {
    s.cancel_requested = true;
  }
  static void update(order_summary& s, const order_stock_refused& x) {
    s.reason_code = end_reason::out_of_stock;
    s.reason = reason_text(s.reason_code, out_of_stock_detail(x.sku, x.requested, x.available));
  }
  static void update(order_summary& s, const order_payment_declined& x) {
    s.reason_code = end_reason::payment_declined;
    s.reason = reason_text(s.reason_code, x.reason);
  }
  static void update(order_summary& s, const order_shipment_failed& x) {
    s.reason_code = end_reason::shipping_failed;
    s.reason = reason_text(s.reason_code, x.reason);
  }
  static void update(order_summary& s, const order_rejected& x) {
    s.status = "rejected";
    take_reason(s, x);
  }
  static void update(order_summary& s, const order_cancelled& x) {
    s.status = "cancelled";
    take_reason(s, x);
  }
  /// The reason of order_rejected / order_cancelled; a record that names
  /// none keeps the refusal's that led to it.
  template <class T>
  static void take_reason(order_summary& s, const T& x) {
    if (x.reason.empty() && x.code == end_reason::unspecified)
      return;
    s.reason_code = x.code;
    s.reason = reason_text(x.code, x.reason);
  }
  // Compensations and anything else: a step only.
  template <class T>
  static void update(order_summary&, const T&) {
  }

  detail::pending_models<order_summary> summaries_;
  std::vector<std::pair<std::string, std::string>> index_;
};

} // namespace

std::unique_ptr<projection> make_orders_projection() {
  return std::make_unique<orders_projection>();
}

} // namespace keel::projections
