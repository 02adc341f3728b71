#include "keel/projections/stock_cache.hpp"

#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

#include "keel/events/error.hpp"
#include "keel/storage/event_store.hpp"

namespace keel::projections {

namespace {
constexpr std::size_t shard_count = 16;
}

struct stock_cache::shard {
  std::mutex mtx;
  std::unordered_map<std::string, stock_level> levels;
};

stock_cache::stock_cache(const storage::event_store& store, std::size_t capacity)
  : store_(store), shard_capacity_(std::max<std::size_t>(1, capacity / shard_count)) {
  for (std::size_t i = 0; i < shard_count; ++i)
    shards_.push_back(std::make_unique<shard>());
}

stock_cache::~stock_cache() = default;

caf::expected<stock_level> stock_cache::get(std::string_view sku) {
  auto& s = *shards_[std::hash<std::string_view>{}(sku) % shard_count];
  // A miss reads the read model while holding the shard's lock, so an update
  // the projection makes meanwhile lands after it (never overwritten by an
  // older value read here).
  std::lock_guard<std::mutex> guard{s.mtx};
  auto it = s.levels.find(std::string{sku});
  if (it != s.levels.end()) {
    hits_.fetch_add(1, std::memory_order_relaxed);
    return it->second;
  }
  misses_.fetch_add(1, std::memory_order_relaxed);
  stock_level level;
  auto found = find_stock(store_, sku);
  if (found) {
    level = std::move(*found);
  } else if (code_of(found.error()) == errc::not_found) {
    level.sku = std::string{sku}; // never stocked (or no projection yet): nothing available
  } else {
    return found.error();
  }
  if (s.levels.size() >= shard_capacity_)
    s.levels.clear();
  s.levels.emplace(level.sku, level);
  return level;
}

caf::error short_of_stock(const std::string& sku, std::uint32_t requested,
                          std::int64_t available) {
  return make_error(errc::out_of_stock, "SKU " + sku + ": " + std::to_string(requested)
                                          + " requested, "
                                          + std::to_string(std::max<std::int64_t>(0, available))
                                          + " available");
}

caf::error stock_cache::check(const std::vector<events::order_line>& lines) {
  for (auto& line : lines) {
    auto level = get(line.sku);
    if (!level)
      continue; // the inventory actor decides
    if (level->available() < static_cast<std::int64_t>(line.quantity)) {
      refusals_.fetch_add(1, std::memory_order_relaxed);
      return short_of_stock(line.sku, line.quantity, level->available());
    }
  }
  return caf::error{};
}

void stock_cache::update(const stock_level& level) {
  {
    auto& s = *shards_[std::hash<std::string_view>{}(level.sku) % shard_count];
    std::lock_guard<std::mutex> guard{s.mtx};
    auto it = s.levels.find(level.sku);
    if (it != s.levels.end()) {
      it->second = level;
    } else {
      if (s.levels.size() >= shard_capacity_)
        s.levels.clear();
      s.levels.emplace(level.sku, level);
    }
  }
  if (on_update_)
    on_update_(level);
}

void stock_cache::clear() {
  for (auto& s : shards_) {
    std::lock_guard<std::mutex> guard{s->mtx};
    s->levels.clear();
  }
}

} // namespace keel::projections
