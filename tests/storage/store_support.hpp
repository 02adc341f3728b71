#pragma once

#include <catch2/catch.hpp>

#include <memory>
#include <string>

#include "keel/events/error.hpp"
#include "keel/storage/event_store.hpp"
#include "temp_dir.hpp"

namespace keel::test {

/// Opens a store at `path` or fails the test with the error.
inline std::unique_ptr<storage::event_store>
open_store(const std::string& path, storage::open_mode mode = storage::open_mode::writer,
           storage::durability d = storage::durability::sync) {
  storage::options opts;
  opts.path = path;
  opts.mode = mode;
  opts.durable = d;
  auto store = storage::event_store::open(opts);
  INFO((store ? std::string{} : describe(store.error())));
  REQUIRE(store);
  return std::move(*store);
}

/// A small real event with id derived from (seed, n).
inline storage::new_event make_event(std::uint64_t seed, std::uint64_t n,
                                     const std::string& reason = "test") {
  return storage::new_event::from(events::event{events::order_rejected{std::to_string(n), reason}},
                                  events::event_id::from_seed(seed, n), 1'700'000'000'000'000 + n);
}

inline std::vector<storage::new_event> one(storage::new_event ev) {
  std::vector<storage::new_event> v;
  v.push_back(std::move(ev));
  return v;
}

/// Appends events first..last (ids from `seed`), one append each: event i
/// goes to stream `prefix` + (i % streams), or to `prefix` when streams is 0.
inline void append_range(storage::event_store& store, std::uint64_t seed, std::uint64_t first,
                         std::uint64_t last, const std::string& prefix, std::uint64_t streams = 0,
                         const std::string& reason = "test") {
  for (std::uint64_t i = first; i <= last; ++i) {
    auto stream = streams == 0 ? prefix : prefix + std::to_string(i % streams);
    auto r = store.append(stream, storage::expected_version::any(), one(make_event(seed, i, reason)));
    INFO((r ? std::string{} : describe(r.error())));
    REQUIRE(r);
  }
}

} // namespace keel::test
