#pragma once

// The reference the projection tests compare against: a straightforward fold
// of the whole global log into what every read model should hold, written
// without the projection code (one pass, plain maps, the rules spelled out
// again), and the checks that compare it with what the queries return.

#include <cstdint>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "keel/projections/read_models.hpp"
#include "keel/storage/event_store.hpp"

namespace keel::test {

struct expected_models {
  /// The last position folded.
  std::uint64_t position = 0;
  std::map<std::string, projections::order_summary> orders;
  /// Newest first (placed_us descending, then order id ascending).
  std::map<std::string, std::vector<projections::customer_order>> customers;
  std::map<std::string, projections::stock_level> stock;
  /// By day; revenue sorted by currency.
  std::map<std::string, projections::day_figures> days;
  /// Each order's part of the day figures, by order id and day (a cluster
  /// store counts them per slot of the order too).
  std::map<std::string, std::map<std::string, projections::day_figures>> order_days;
  /// Saga durations in microseconds, by path, in completion order.
  std::map<std::string, std::vector<std::int64_t>> durations_us;
  /// Orders placed whose saga has not ended (the figures projection keeps them).
  std::size_t sagas_in_flight = 0;
  /// Events the fold could not apply (a valid history has none).
  std::vector<std::string> anomalies;
};

/// Folds the log up to `up_to` (inclusive), leaving out the events at the
/// positions in `skipped` (as a projection does after an operator skip).
expected_models fold(const storage::event_store& store, const std::set<std::uint64_t>& skipped = {},
                     std::uint64_t up_to = std::numeric_limits<std::uint64_t>::max());

/// The UTC day "YYYY-MM-DD" of a time in microseconds (civil-from-days).
std::string utc_day(std::int64_t at_us);

/// Which read models to compare.
struct model_set {
  bool orders = true;
  bool stock = true;
  bool figures = true;
};

/// Compares every read model in `which` with `want` through the query
/// functions (Catch2 checks; the first mismatches are reported in detail).
/// Also checks that the serving generation holds no models beyond `want`.
void check_models(const storage::event_store& store, const expected_models& want,
                  model_set which = {});

/// The key prefix of generation `gen` of projection `name` ("m/orders/g00000001/").
std::string generation_prefix(const std::string& name, std::uint32_t gen);

/// The checkpoint of generation `gen` of projection `name` ("projection/orders/g00000001").
std::string checkpoint_name(const std::string& name, std::uint32_t gen);

/// Checks that the serving generation of each standard projection holds
/// exactly the fold of the log up to that projection's checkpoint (nothing
/// applied twice, nothing missing), whether or not a runner is running.
/// Returns the checkpoints, by projection.
std::map<std::string, std::uint64_t>
check_models_at_checkpoints(const storage::event_store& store,
                            const std::set<std::uint64_t>& skipped = {});

/// Read-model keys under `prefix`.
std::size_t count_models(const storage::event_store& store, const std::string& prefix);

/// The exact nearest-rank percentile `pct` (1..100) of `values`.
std::int64_t nearest_rank(std::vector<std::int64_t> values, unsigned pct);

} // namespace keel::test
