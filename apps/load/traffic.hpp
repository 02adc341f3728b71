#pragma once

// Realistic saga traffic for benchmarks, demos and tool tests: the event
// histories that orders leave in the order, stock, payment and shipment
// streams, deterministic for a seed. The saga's real decider decides every
// step; only the world's answers are chosen here.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "keel/storage/event_store.hpp"

namespace keel::bench {

/// One append of the generated traffic.
struct planned_append {
  std::string stream;
  storage::new_event event;
};

/// The SKUs of the generated catalogue.
constexpr std::uint64_t traffic_skus = 200;

/// Appends the events that set the catalogue's initial stock.
void stock_history(std::uint64_t seed, std::int64_t start_us, std::vector<planned_append>& out);

/// Appends the events of order `n`, driven through the saga's decider (see
/// order_script.hpp): 80% complete (4% after one parked payment); others are
/// rejected (out of stock), declined by the payment gateway, or cancelled by
/// the customer while the shipment is scheduled, with the compensations and
/// reasons the decider gives.
void order_history(std::uint64_t seed, std::uint64_t n, std::int64_t start_us,
                   std::vector<planned_append>& out);

/// Writes the stock and `orders` orders into `store`, keeping up to
/// `in_flight` appends outstanding (positions follow the order of the plan:
/// the committer serves appends first in, first out). Orders are placed 2 ms
/// apart from `start_us` (0: so that the last one is about now); with a
/// fixed start, the store is the same in every run. Returns the number of
/// events written.
caf::expected<std::uint64_t> write_traffic(storage::event_store& store, std::uint64_t seed,
                                           std::uint64_t orders, std::size_t in_flight = 4096,
                                           std::int64_t start_us = 0);

} // namespace keel::bench
