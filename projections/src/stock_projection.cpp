// Projection "stock": on hand, reserved and available units by SKU, and the
// first-level stock cache kept current after each commit.

#include <vector>

#include "keel/events/error.hpp"
#include "keel/projections/projection.hpp"
#include "keel/projections/stock_cache.hpp"
#include "keel/storage/event_store.hpp"
#include "models.hpp"
#include "pending.hpp"

namespace keel::projections {

namespace {

using namespace keel::events;

class stock_projection final : public projection {
public:
  explicit stock_projection(std::shared_ptr<stock_cache> cache) : cache_(std::move(cache)) {
  }

  std::string_view name() const noexcept override {
    return "stock";
  }

  bool wants(std::string_view type) const noexcept override {
    return type == "stock_adjusted" || type == "stock_reserved" || type == "stock_released"
           || type == "stock_committed";
  }

  caf::error apply(const record_view& rec, const event& ev, const keyspace& models) override {
    const std::string* sku = nullptr;
    if (auto* x = std::get_if<stock_adjusted>(&ev))
      sku = &x->sku;
    else if (auto* x = std::get_if<stock_reserved>(&ev))
      sku = &x->sku;
    else if (auto* x = std::get_if<stock_released>(&ev))
      sku = &x->sku;
    else if (auto* x = std::get_if<stock_committed>(&ev))
      sku = &x->sku;
    else
      return make_error(errc::invalid_argument, "unexpected event type " + std::string{rec.type});
    auto slot = levels_.load(models, "s/" + *sku);
    if (!slot)
      return slot.error();
    auto& s = **slot;
    auto& level = s.value;
    if (auto* x = std::get_if<stock_adjusted>(&ev)) {
      if (x->on_hand < 0)
        return make_error(errc::invalid_argument,
                          "SKU " + *sku + " set to a negative on hand " + std::to_string(x->on_hand));
      if (!s.exists) {
        level = stock_level{};
        level.sku = *sku;
      }
      level.on_hand = x->on_hand;
    } else {
      if (!s.exists)
        return make_error(errc::invalid_argument,
                          "SKU " + *sku + " was never stocked before this " + std::string{rec.type});
      if (auto* x = std::get_if<stock_reserved>(&ev)) {
        level.reserved += x->quantity;
      } else if (auto* x = std::get_if<stock_released>(&ev)) {
        if (level.reserved < x->quantity)
          return make_error(errc::invalid_argument,
                            "SKU " + *sku + ": releasing " + std::to_string(x->quantity)
                              + " units of " + std::to_string(level.reserved) + " reserved");
        level.reserved -= x->quantity;
      } else if (auto* x = std::get_if<stock_committed>(&ev)) {
        if (level.reserved < x->quantity || level.on_hand < x->quantity)
          return make_error(errc::invalid_argument,
                            "SKU " + *sku + ": committing " + std::to_string(x->quantity)
                              + " units with " + std::to_string(level.reserved) + " reserved and "
                              + std::to_string(level.on_hand) + " on hand");
        level.reserved -= x->quantity;
        level.on_hand -= x->quantity;
      }
    }
    level.updated_us = rec.timestamp_us;
    s.exists = s.dirty = true;
    return caf::error{};
  }

  void flush(storage::write_batch& batch, const keyspace& models) override {
    if (cache_) {
      touched_.clear();
      levels_.for_each_dirty([this](const stock_level& x) { touched_.push_back(x); });
    }
    levels_.flush(batch, models);
  }

  void discard() override {
    levels_.discard();
    touched_.clear();
  }

  void committed(bool serving) override {
    if (cache_ && serving)
      for (auto& level : touched_)
        cache_->update(level);
    touched_.clear();
  }

  void activated() override {
    if (cache_)
      cache_->clear();
  }

private:
  std::shared_ptr<stock_cache> cache_;
  detail::pending_models<stock_level> levels_;
  std::vector<stock_level> touched_;
};

} // namespace

std::unique_ptr<projection> make_stock_projection(std::shared_ptr<stock_cache> cache) {
  return std::make_unique<stock_projection>(std::move(cache));
}

} // namespace keel::projections
