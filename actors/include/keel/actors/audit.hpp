#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "keel/storage/fwd.hpp"

namespace keel::actors {

/// What `audit` found.
struct audit_report {
  std::uint64_t events = 0;
  std::uint64_t orders = 0;
  /// Orders by their last order event's outcome: "completed", "rejected",
  /// "cancelled", or "in_flight".
  std::map<std::string, std::uint64_t> outcomes;
  /// Every broken invariant, one line each, naming the stream and position.
  std::vector<std::string> violations;

  bool ok() const noexcept {
    return violations.empty();
  }
};

/// Checks the invariants of DESIGN section 2 over the whole global log, from
/// the events alone (independent of the saga's decider):
/// - no SKU is ever reserved beyond its stock (at every reservation);
/// - at most one authorization and one capture per order; every capture
///   belongs to a completed order; every authorization of a cancelled or
///   rejected order is voided or refunded;
/// - every order ends completed, rejected or cancelled (when
///   `require_terminal`);
/// - global positions are gap-free and ordered; stream versions gap-free.
/// Errors: storage and decoding errors that stop the scan.
caf::expected<audit_report> audit(const storage::event_store& store, bool require_terminal);

} // namespace keel::actors
