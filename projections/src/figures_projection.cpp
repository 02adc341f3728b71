// Projection "figures": business figures per UTC day and saga duration
// statistics per path.

#include <unordered_map>

#include "keel/events/error.hpp"
#include "keel/events/correlation.hpp"
#include "keel/projections/projection.hpp"
#include "keel/storage/event_store.hpp"
#include "models.hpp"
#include "pending.hpp"

namespace keel::projections {

namespace {

using namespace keel::events;

class figures_projection final : public projection {
public:
  explicit figures_projection(std::uint32_t slots) : slots_(slots) {
  }

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
      return count(models, rec.timestamp_us, x->order_id, [](day_figures& f) { ++f.placed; });
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
        if (auto err = count(models, rec.timestamp_us, *order_id,
                             [](day_figures& f) { ++f.pending_payment; }))
          return err;
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
      auto path = saga_path_of(outcome, s.cancel_requested, s.declined, s.shipment_failed,
                               s.pending);
      auto hist = paths_.load(models, "x/" + std::string{path});
      if (!hist)
        return hist.error();
      auto ended = [&](day_figures& figures) {
        if (outcome == "completed") {
          ++figures.completed;
          detail::add_revenue(figures, s.currency, 1, s.captured_cents);
        } else if (outcome == "rejected") {
          ++figures.rejected;
        } else {
          ++figures.cancelled;
        }
      };
      if (auto err = count(models, rec.timestamp_us, *order_id, ended))
        return err;
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
    slot_days_.flush(batch, models);
    sagas_.flush(batch, models);
    paths_.flush(batch, models);
  }

  void discard() override {
    days_.discard();
    slot_days_.discard();
    sagas_.discard();
    paths_.discard();
  }

private:
  using day_slot = detail::pending_models<day_figures>::slot;

  static caf::expected<day_slot*> load_day(detail::pending_models<day_figures>& where,
                                           const keyspace& models, const std::string& key,
                                           const std::string& day) {
    auto slot = where.load(models, key);
    if (slot && !(*slot)->exists) {
      (*slot)->value.day = day;
      (*slot)->exists = true;
    }
    return slot;
  }

  /// Applies `change` to the figures of the day of `at_us` and, in a
  /// cluster, to those of `order_id`'s slot that day.
  template <class Change>
  caf::error count(const keyspace& models, std::int64_t at_us, const std::string& order_id,
                   Change change) {
    auto day = day_of(at_us);
    auto total = load_day(days_, models, "d/" + day, day);
    if (!total)
      return total.error();
    change((*total)->value);
    (*total)->dirty = true;
    if (slots_ == 0)
      return caf::error{};
    auto slot = static_cast<std::uint32_t>(stable_hash(order_id) % slots_);
    auto part = load_day(slot_days_, models, detail::slot_day_key(slot, day), day);
    if (!part)
      return part.error();
    change((*part)->value);
    (*part)->dirty = true;
    return caf::error{};
  }

  std::uint32_t slots_;
  detail::pending_models<day_figures> days_;
  /// Per slot and day, in a cluster.
  detail::pending_models<day_figures> slot_days_;
  detail::pending_models<detail::saga_in_flight> sagas_;
  detail::pending_models<detail::duration_histogram> paths_;
};

} // namespace

std::unique_ptr<projection> make_figures_projection(std::uint32_t slots) {
  return std::make_unique<figures_projection>(slots);
}

} // namespace keel::projections
