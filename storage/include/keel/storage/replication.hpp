#pragma once

// Replication of the global log between the stores of one group: the
// primary ships every committed batch, sealed, to its standbys, which store
// it at the same positions with the same versions and ids. Terms record
// which primary (fencing token) wrote which part of the log.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <caf/error.hpp>

namespace keel::storage {

/// A term: from `first_position` on, the log was written by the primary
/// holding fencing token `token` (until the next term begins).
struct term {
  std::uint64_t token = 0;
  std::uint64_t first_position = 0;

  friend bool operator==(const term& a, const term& b) noexcept {
    return a.token == b.token && a.first_position == b.first_position;
  }
};

/// Terms in log order: tokens strictly increasing, first positions never
/// decreasing (a term that wrote nothing shares its first position with the
/// next).
using term_history = std::vector<term>;

/// A committed batch as a primary ships it: sealed records (events::record
/// bytes with their version and position) at consecutive positions.
struct replicated_batch {
  /// The fencing token of the primary that sends it: a store that has seen
  /// a larger one refuses the batch (`stale_token`).
  std::uint64_t token = 0;
  /// The position of `records.front()` (with no records: the position the
  /// next record would take).
  std::uint64_t first_position = 0;
  std::vector<std::string> records;
  /// Terms of the sender the receiver records (its whole history when a
  /// standby starts following it; empty in the batches after that).
  term_history terms;

  std::uint64_t last_position() const noexcept {
    return first_position + records.size() - 1;
  }
};

/// The token of the term position `position` belongs to in `terms` (0 when
/// none: a log written before replication).
std::uint64_t token_at(const term_history& terms, std::uint64_t position) noexcept;

/// How much of a log (`mine`, last position `my_last`) agrees with another
/// one (`theirs`, last position `their_last`): the last position up to which
/// every position belongs to the same term in both and exists in both. Two
/// logs written through one synchronous primary per term agree wherever their
/// terms agree, so everything after this position is a tail the other log
/// (the current primary's) does not have: it was never acknowledged.
std::uint64_t agreed_prefix(const term_history& mine, std::uint64_t my_last,
                            const term_history& theirs, std::uint64_t their_last) noexcept;

/// Whether `terms` is well formed: tokens strictly increasing, first
/// positions never decreasing, neither zero.
bool well_formed(const term_history& terms) noexcept;

/// Called by the committer of a primary's store after a batch is durable
/// locally and before any append of it is acknowledged or its position
/// published. It ships `batch` (its token still 0: the gate sets it) and
/// returns once the batch is safe: a synchronous standby stored it, or the
/// group recorded that it runs without one. It may block (the committer
/// waits; appends queue up meanwhile and go out in the next batch).
///
/// An error means the batch's fate is unknown (this node lost the primary
/// role, its token was refused): its appends fail with that error and the
/// store refuses every further append (`fenced`), since its log now ends in a
/// tail the group may not have. Only `truncate_after` and `replicate` write
/// to it then (a node rejoining as a standby).
using commit_gate = std::function<caf::error(replicated_batch& batch)>;

/// Replication figures of a store.
struct replication_stats {
  /// The highest fencing token this store has seen (0: none).
  std::uint64_t token = 0;
  /// Batches and events the gate confirmed (primary) or `replicate` stored
  /// (standby).
  std::uint64_t batches_shipped = 0;
  std::uint64_t events_shipped = 0;
  std::uint64_t batches_received = 0;
  std::uint64_t events_received = 0;
  /// Time the committer waited for its gate, in nanoseconds.
  std::uint64_t gate_wait_ns = 0;
  /// A gate failed: the store refuses appends.
  bool fenced = false;
  /// Events removed by `truncate_after` since the store was opened.
  std::uint64_t truncated_events = 0;
};

/// What `truncate_after` removed.
struct truncation {
  /// The last position kept, and how many events went.
  std::uint64_t last_position = 0;
  std::uint64_t removed_events = 0;
  /// Streams that lost events, and snapshots dropped because they were
  /// taken at a removed version.
  std::uint64_t streams = 0;
  std::uint64_t snapshots_dropped = 0;
  /// Checkpoints (projections, the outbox) that stood beyond the kept
  /// position: their read models include removed events. They are left as
  /// they are; the caller rebuilds those models.
  std::vector<std::string> checkpoints_beyond;
};

} // namespace keel::storage
