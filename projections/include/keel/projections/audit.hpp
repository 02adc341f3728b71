#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "keel/storage/fwd.hpp"

namespace keel::projections {

/// One broken invariant.
struct audit_violation {
  /// "oversell", "stock_accounting", "double_charge", "foreign_capture",
  /// "capture_without_completion", "capture_exceeds_authorization",
  /// "authorization_not_voided", "non_terminal", "version_gap",
  /// "position_gap", "unreadable".
  std::string kind;
  /// The global position of the event that broke it (for end-of-log checks:
  /// the last event of the order concerned); 0 if none.
  std::uint64_t position = 0;
  /// The stream and version of that event (empty / 0 if none).
  std::string stream;
  std::uint64_t version = 0;
  /// The order or SKU concerned (empty if none).
  std::string subject;
  /// What exactly is wrong, in words.
  std::string detail;

  /// "kind at position P (stream@version): detail".
  std::string to_string() const;
};

std::ostream& operator<<(std::ostream& out, const audit_violation& x);

/// What `audit` checks beyond the invariants that always hold.
struct audit_options {
  /// Every order must have ended (completed, rejected or cancelled): for a
  /// store after faults stopped and every saga had time to finish.
  bool require_terminal = false;
  /// Otherwise an order counts as stuck (a violation) when its last event is
  /// this much older than the newest event of the log. Microseconds.
  std::int64_t stuck_after_us = 5LL * 60 * 1000 * 1000;
  /// Violations listed at most (all are counted).
  std::size_t max_violations = 10000;
  /// Called now and then with the events scanned so far.
  std::function<void(std::uint64_t)> progress;
};

/// What `audit` found.
struct audit_report {
  std::uint64_t events = 0;
  std::uint64_t streams = 0;
  std::uint64_t last_position = 0;
  std::uint64_t orders = 0;
  std::uint64_t skus = 0;
  std::uint64_t captures = 0;
  /// Orders by outcome: "completed", "rejected", "cancelled", "in_flight".
  std::map<std::string, std::uint64_t> outcomes;
  /// Violations by kind (all of them, also those not listed).
  std::map<std::string, std::uint64_t> counts;
  /// The violations, in the order found, at most `max_violations`.
  std::vector<audit_violation> violations;
  /// True when `violations` was cut at `max_violations`.
  bool truncated = false;

  bool ok() const noexcept {
    return counts.empty();
  }

  /// Violations found, listed or not.
  std::uint64_t violation_count() const noexcept {
    std::uint64_t n = 0;
    for (const auto& kv : counts)
      n += kv.second;
    return n;
  }
};

/// Checks the invariants of DESIGN section 2 over the whole global log, from
/// the recorded events alone: it shares no code with the saga, the services
/// or the read models, so a bug there cannot hide itself here.
/// - no SKU is reserved beyond its stock on hand, at any reservation; releases
///   and commits match holds;
/// - every capture belongs to exactly one completed order, no order is
///   captured twice or beyond its authorization; every authorization of a
///   cancelled or rejected order is voided or refunded;
/// - every order ends completed, rejected or cancelled (see `audit_options`);
/// - global positions are gap-free and ordered; stream versions gap-free.
/// A record that cannot be read or decoded ends the scan as a violation
/// (`unreadable`, `position_gap`); `keel-inspect verify` names every one.
/// Errors: a store that cannot be read at all.
caf::expected<audit_report> audit(const storage::event_store& store,
                                  const audit_options& opts = {});

} // namespace keel::projections
