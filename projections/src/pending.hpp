#pragma once

// The uncommitted changes of one projection batch: typed values by model key,
// loaded from the committed models on first use, written back by `flush`.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <caf/expected.hpp>

#include "keel/projections/projection.hpp"
#include "keel/storage/event_store.hpp"
#include "models.hpp"

namespace keel::projections::detail {

/// A fixed-size blocked Bloom filter of strings: 8 MiB of 64-bit words,
/// three bits in one word per key (one cache miss per probe). About 2% false
/// positives at 6 million keys, more beyond (callers then look up).
class bloom_filter {
public:
  bloom_filter() : words_(std::size_t{1} << 20) {
  }

  void add(std::string_view key) {
    auto h = std::hash<std::string_view>{}(key);
    words_[word(h)] |= mask(h);
  }

  bool maybe_contains(std::string_view key) const {
    auto h = std::hash<std::string_view>{}(key);
    auto m = mask(h);
    return (words_[word(h)] & m) == m;
  }

private:
  std::size_t word(std::size_t h) const {
    return (h & 0xffffffffu) % words_.size();
  }

  static std::uint64_t mask(std::size_t h) {
    return (std::uint64_t{1} << ((h >> 32) & 63)) | (std::uint64_t{1} << ((h >> 38) & 63))
           | (std::uint64_t{1} << ((h >> 44) & 63));
  }

  std::vector<std::uint64_t> words_;
};

template <class T>
class pending_models {
public:
  struct slot {
    T value{};
    /// The model exists (after the pending changes).
    bool exists = false;
    /// The model exists in the committed state.
    bool stored = false;
    bool dirty = false;
  };

  /// The slot of `key`, loading the committed value on first use.
  caf::expected<slot*> load(const keyspace& models, const std::string& key) {
    auto it = slots_.find(key);
    if (it != slots_.end())
      return &it->second;
    slot s;
    auto bytes = models.get(key);
    if (!bytes)
      return bytes.error();
    if (*bytes) {
      if (!decode(**bytes, s.value))
        return corrupt_model(models.key(key));
      s.exists = s.stored = true;
    }
    return &slots_.emplace(key, std::move(s)).first->second;
  }

  /// A slot for a model the caller knows is new (no read).
  slot& create(const std::string& key) {
    return slots_[key];
  }

  void flush(storage::write_batch& batch, const keyspace& models) {
    for (auto& [key, s] : slots_) {
      if (!s.dirty)
        continue;
      if (s.exists)
        models.put(batch, key, encode(s.value));
      else if (s.stored)
        models.erase(batch, key);
    }
    slots_.clear();
  }

  void discard() {
    slots_.clear();
  }

  template <class F>
  void for_each_dirty(F&& f) const {
    for (auto& [key, s] : slots_)
      if (s.dirty && s.exists)
        f(s.value);
  }

private:
  std::unordered_map<std::string, slot> slots_;
};

} // namespace keel::projections::detail
