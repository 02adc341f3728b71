#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <caf/error.hpp>

namespace keel::storage {

class event_store;

/// One problem `verify` found.
struct finding {
  /// What kind: "corrupt_record", "position_gap", "version_gap",
  /// "index_mismatch", "missing_index", "unreadable", "terms" (a
  /// replicated log's terms out of order or beyond its end).
  std::string kind;
  /// The global position concerned (0 if none).
  std::uint64_t position = 0;
  /// The stream concerned (empty if none) and its version (0 if none).
  std::string stream;
  std::uint64_t version = 0;
  /// What exactly is wrong.
  std::string detail;
};

/// The outcome of `verify`.
struct verify_report {
  std::uint64_t events = 0;
  std::uint64_t streams = 0;
  std::uint64_t index_entries = 0;
  std::uint64_t last_position = 0;
  std::vector<finding> findings;
  /// True when the finding list was cut at `max_findings`.
  bool truncated = false;
};

/// Options of `verify`.
struct verify_options {
  /// Stop listing after this many findings (the scan still completes).
  std::size_t max_findings = 1000;
  /// Called now and then with the events checked so far.
  std::function<void(std::uint64_t)> progress;
};

/// Checks the whole store without stopping at the first problem: every
/// record's checksum and layout, gap-free global positions, gap-free stream
/// versions, and that the stream index and the event-id index agree with the
/// global log in both directions. A damaged SST block is reported with the
/// positions it hides. Returns an error only when the scan itself cannot run.
caf::expected<verify_report> verify(const event_store& store, verify_options opts = {});

} // namespace keel::storage
