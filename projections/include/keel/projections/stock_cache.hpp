#pragma once

#include <atomic>
#include <functional>
#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "keel/events/types.hpp"
#include "keel/projections/read_models.hpp"
#include "keel/storage/fwd.hpp"

namespace keel::projections {

/// The `out_of_stock` error of an order line asking `requested` units of
/// `sku` when `available` are left (the cache-first check's answer, here and
/// in a cluster for the SKUs of other nodes).
caf::error short_of_stock(const std::string& sku, std::uint32_t requested,
                          std::int64_t available);

/// The first level of the cache-first stock check: stock levels in memory in
/// front of the stock read model. A miss reads the read model; the stock
/// projection refreshes every SKU it changes after each commit, so an entry
/// is as fresh as the projection. Thread-safe (sharded locks).
///
/// The check may only refuse an order, never admit more than inventory has:
/// the inventory actor stays the authority, so a stale entry at worst turns
/// an order away that inventory would have reserved, or lets one through that
/// inventory then refuses.
class stock_cache {
public:
  /// `capacity`: the most SKUs kept (beyond it a shard starts over).
  explicit stock_cache(const storage::event_store& store, std::size_t capacity = 1u << 20);
  ~stock_cache();

  stock_cache(const stock_cache&) = delete;
  stock_cache& operator=(const stock_cache&) = delete;

  /// The level of `sku` (a SKU never stocked has on_hand 0). Errors:
  /// `storage_failure`, `corrupt_record`.
  caf::expected<stock_level> get(std::string_view sku);

  /// `out_of_stock` naming the first line whose quantity exceeds the cached
  /// available units; no error when every line may be served. Read errors
  /// admit the order (the inventory actor decides).
  caf::error check(const std::vector<events::order_line>& lines);

  /// Stores a level the stock projection committed.
  void update(const stock_level& level);

  /// Called (on the projection's thread, after the entry is stored) with
  /// every level `update` stores: a cluster node sends the levels of its
  /// SKUs to the others. Set before the projection starts.
  void on_update(std::function<void(const stock_level&)> f) {
    on_update_ = std::move(f);
  }

  /// Forgets every entry (a rebuilt projection was swapped in).
  void clear();

  std::uint64_t hits() const noexcept {
    return hits_.load(std::memory_order_relaxed);
  }
  std::uint64_t misses() const noexcept {
    return misses_.load(std::memory_order_relaxed);
  }
  /// Orders `check` refused.
  std::uint64_t refusals() const noexcept {
    return refusals_.load(std::memory_order_relaxed);
  }

private:
  struct shard;
  const storage::event_store& store_;
  std::size_t shard_capacity_;
  std::vector<std::unique_ptr<shard>> shards_;
  std::atomic<std::uint64_t> hits_{0};
  std::atomic<std::uint64_t> misses_{0};
  std::atomic<std::uint64_t> refusals_{0};
  std::function<void(const stock_level&)> on_update_;
};

} // namespace keel::projections
