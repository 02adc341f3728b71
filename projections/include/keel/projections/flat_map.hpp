#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace keel::projections {

/// A hash map from strings to `V` for millions of keys: keys live in one
/// arena and entries in one vector (no allocation per key, nothing to free
/// one by one), open addressing on a 64-bit hash, keys compared exactly.
template <class V>
class flat_map {
public:
  flat_map() : slots_(1024) {
  }

  V& operator[](std::string_view key) {
    auto h = hash(key);
    auto mask = slots_.size() - 1;
    for (auto i = h & mask;; i = (i + 1) & mask) {
      auto& s = slots_[i];
      if (s.index == 0) {
        entries_.push_back({arena_.size(), static_cast<std::uint32_t>(key.size()), V{}});
        arena_.append(key.data(), key.size());
        s = {h, static_cast<std::uint32_t>(entries_.size())};
        if (entries_.size() * 2 > slots_.size())
          grow();
        return entries_.back().value;
      }
      if (s.hash == h && key_of(entries_[s.index - 1]) == key)
        return entries_[s.index - 1].value;
    }
  }

  const V* find(std::string_view key) const {
    auto h = hash(key);
    auto mask = slots_.size() - 1;
    for (auto i = h & mask;; i = (i + 1) & mask) {
      const auto& s = slots_[i];
      if (s.index == 0)
        return nullptr;
      if (s.hash == h && key_of(entries_[s.index - 1]) == key)
        return &entries_[s.index - 1].value;
    }
  }

  template <class F>
  void for_each(F f) const {
    for (const auto& e : entries_)
      f(key_of(e), e.value);
  }

  std::size_t size() const noexcept {
    return entries_.size();
  }

private:
  struct slot {
    std::uint64_t hash = 0;
    std::uint32_t index = 0; ///< entry + 1; 0: free
  };
  struct entry {
    std::size_t offset;
    std::uint32_t size;
    V value;
  };

  std::string_view key_of(const entry& e) const noexcept {
    return std::string_view{arena_}.substr(e.offset, e.size);
  }

  static std::uint64_t hash(std::string_view s) noexcept {
    std::uint64_t h = 1469598103934665603ULL;
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ULL;
    }
    return h ^ (h >> 31);
  }

  void grow() {
    std::vector<slot> bigger(slots_.size() * 4);
    auto mask = bigger.size() - 1;
    for (const auto& s : slots_)
      if (s.index != 0)
        for (auto i = s.hash & mask;; i = (i + 1) & mask)
          if (bigger[i].index == 0) {
            bigger[i] = s;
            break;
          }
    slots_.swap(bigger);
  }

  std::vector<slot> slots_;
  std::vector<entry> entries_;
  std::string arena_;
};

} // namespace keel::projections
