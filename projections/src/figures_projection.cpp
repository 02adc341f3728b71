// Projection "figures": business figures per UTC day and saga duration
// statistics per path.

#include <algorithm>
#include <unordered_map>

#include "keel/events/error.hpp"
#include "keel/projections/projection.hpp"
#include "keel/storage/event_store.hpp"
#include "models.hpp"
#include "pending.hpp"

namespace keel::projections {

namespace {

using namespace keel::events;

class figures_projection final : public projection {
public:
  std::string_view name() const noexcept override {
    return "figures";
  }

  bool wants(std::string_view type) const noexcept override {
    return type == "order_placed" || type == "order_payment_pending"
           || type == "payment_captured" || type == "payment_refunded"
           || type == "order_cancel_requested" || type == "order_payment_declined"
           || type == "order_shipment_failed" || type == "order_completed"
           || type == "order_rejected" || type == "order_cancelled";
  }

  caf::error apply(const record_view& rec, const event& ev, const keyspace& models) override {
    if (auto* x = std::get_if<order_placed>(&ev)) {
      auto day = load_day(models, rec.timestamp_us);
      if (!day)
        return day.error();
      // Read, not create: a second order_placed of a saga in flight is
      // refused whether or not the first is in this batch.
      auto saga_slot = sagas_.load(models, "f/" + x->order_id);
      if (!saga_slot)
        return saga_slot.error();
      auto& slot = **saga_slot;
      if (slot.exists)
        return make_error(errc::invalid_argument, "order " + x->order_id + " was placed before");
      slot.value = detail::saga_in_flight{rec.timestamp_us, x->currency, 0, false, false, false, false};
      slot.exists = slot.dirty = true;
      ++(*day)->value.placed;
      (*day)->dirty = true;
      return caf::error{};
    }
    auto* order_id = detail::order_id_of(ev);
    if (order_id == nullptr)
      return make_error(errc::invalid_argument, "unexpected event type " + std::string{rec.type});
    auto saga_slot = sagas_.load(models, "f/" + *order_id);
    if (!saga_slot)
      return saga_slot.error();
    auto& saga = **saga_slot;
    if (!saga.exists)
      return make_error(errc::invalid_argument, "order " + *order_id
                                                  + " has no saga in flight for this "
                                                  + std::string{rec.type});
    auto& s = saga.value;
    if (auto* x = std::get_if<order_payment_pending>(&ev)) {
      (void) x;
      if (!s.pending) {
        auto day = load_day(models, rec.timestamp_us);
        if (!day)
          return day.error();
        ++(*day)->value.pending_payment;
        (*day)->dirty = true;
        s.pending = true;
      }
    } else if (auto* x = std::get_if<payment_captured>(&ev)) {
      s.captured_cents += x->amount_cents;
    } else if (auto* x = std::get_if<payment_refunded>(&ev)) {
      s.captured_cents -= x->amount_cents;
    } else if (std::holds_alternative<order_cancel_requested>(ev)) {
      s.cancel_requested = true;
    } else if (std::holds_alternative<order_payment_declined>(ev)) {
      s.declined = true;
    } else if (std::holds_alternative<order_shipment_failed>(ev)) {
      s.shipment_failed = true;
    } else {
      // A terminal event.
      std::string_view outcome = std::holds_alternative<order_completed>(ev)  ? "completed"
                                 : std::holds_alternative<order_rejected>(ev) ? "rejected"
                                                                               : "cancelled";
      auto day = load_day(models, rec.timestamp_us);
      if (!day)
        return day.error();
      auto path = saga_path_of(outcome, s.cancel_requested, s.declined, s.shipment_failed,
                               s.pending);
      auto hist = paths_.load(models, "x/" + std::string{path});
      if (!hist)
        return hist.error();
      auto& figures = (*day)->value;
      if (outcome == "completed") {
        ++figures.completed;
        auto it = std::find_if(figures.revenue.begin(), figures.revenue.end(),
                               [&](const auto& r) { return r.currency >= s.currency; });
        if (it == figures.revenue.end() || it->currency != s.currency)
          it = figures.revenue.insert(it, currency_revenue{s.currency, 0, 0});
        ++it->orders;
        it->revenue_cents += s.captured_cents;
      } else if (outcome == "rejected") {
        ++figures.rejected;
      } else {
        ++figures.cancelled;
      }
      (*day)->dirty = true;
      (*hist)->value.add(rec.timestamp_us - s.placed_us);
      (*hist)->exists = (*hist)->dirty = true;
      saga.exists = false;
    }
    saga.dirty = true;
    return caf::error{};
  }

  void starting(bool empty) override {
    if (empty)
      sagas_.track_writes(8u << 20);
  }

  void flush(storage::write_batch& batch, const keyspace& models) override {
    days_.flush(batch, models);
    sagas_.flush(batch, models);
    paths_.flush(batch, models);
  }

  void discard() override {
    days_.discard();
    sagas_.discard();
    paths_.discard();
  }

private:
  using day_slot = detail::pending_models<day_figures>::slot;

  caf::expected<day_slot*> load_day(const keyspace& models, std::int64_t at_us) {
    auto day = day_of(at_us);
    auto slot = days_.load(models, "d/" + day);
    if (slot && !(*slot)->exists) {
      (*slot)->value.day = day;
      (*slot)->exists = true;
    }
    return slot;
  }

  detail::pending_models<day_figures> days_;
  detail::pending_models<detail::saga_in_flight> sagas_;
  detail::pending_models<detail::duration_histogram> paths_;
};

} // namespace

std::unique_ptr<projection> make_figures_projection() {
  return std::make_unique<figures_projection>();
}

} // namespace keel::projections
