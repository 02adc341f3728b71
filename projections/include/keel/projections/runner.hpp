#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "keel/projections/projection.hpp"
#include "keel/storage/fwd.hpp"

namespace keel::projections {

/// Why a projection stopped.
struct projection_failure {
  /// The position of the event it could not apply (0: not an event, e.g. a
  /// failed commit).
  std::uint64_t position = 0;
  std::string event_type;
  std::string stream;
  std::string reason;
};

/// An event an operator skipped, as recorded in the store.
struct skip_record {
  std::uint64_t position = 0;
  std::string event_type;
  std::string stream;
  /// The failure that stopped the projection there.
  std::string reason;
  /// Who skipped it and why, as the operator said.
  std::string skipped_by;
  std::string note;
  std::int64_t at_us = 0;
};

/// The state of one projection, as the runner sees it now.
struct projection_status {
  std::string name;
  /// The serving generation (1 after the first build, +1 per rebuild).
  std::uint32_t generation = 0;
  /// "catching_up", "live" or "stopped".
  std::string state;
  /// The last position applied and committed.
  std::uint64_t position = 0;
  /// Events in the store after `position`.
  std::uint64_t lag_events = 0;
  /// Age of the oldest event not applied yet (0 when caught up), in ms.
  double lag_ms = 0;
  /// Event time to commit time of recently applied events (the last
  /// `runner_options::lag_samples` events applied since the projection first
  /// caught up), in ms.
  double applied_lag_p50_ms = 0;
  double applied_lag_p99_ms = 0;
  double applied_lag_max_ms = 0;
  /// Since the runner started.
  std::uint64_t events_applied = 0;
  std::uint64_t commits = 0;
  /// Set while stopped at an event.
  std::optional<projection_failure> failure;
  /// Set while a rebuild fills a shadow generation: its position.
  std::optional<std::uint64_t> rebuild_position;
};

/// What `projection_runner::start` did to a projection whose stored values an
/// earlier build wrote without their format version.
struct framing_upgrade {
  std::string projection;
  /// Values given their version: the models copied and the skip records.
  std::uint64_t values = 0;
  /// The serving generation before and after (the standard projections'
  /// models move to the next generation; others keep theirs).
  std::uint32_t from_generation = 0;
  std::uint32_t to_generation = 0;
  double seconds = 0;
};

/// Tuning of the runner.
struct runner_options {
  /// Commit after this many events at most (throughput while catching up).
  std::size_t max_batch_events = 32768;
  /// Commit at the latest this long after the first uncommitted event was
  /// applied (bounded latency while catching up). When caught up, each
  /// delivery commits at once.
  std::chrono::milliseconds max_batch_delay{20};
  /// Records per subscription delivery.
  std::size_t delivery_batch = 1024;
  /// Fsync each commit (a read model is rebuilt from the log, so the default
  /// only writes the WAL: a process crash loses nothing, a power loss may
  /// drop the last commits, which are then re-applied from the checkpoint).
  bool fsync = false;
  /// After a rebuild's swap, the old generation is deleted this much later
  /// (queries in flight finish reading it).
  std::chrono::milliseconds retire_grace{200};
  /// Applied-lag samples kept per projection (a ring of the most recent).
  std::size_t lag_samples = 65536;
};

/// Runs projections over the store's global log: each catches up from its
/// checkpoint, then follows live on a subscription thread of its own, and
/// commits its changes with its checkpoint in one atomic write. A projection
/// that meets an event it cannot apply stops there (the others go on) until
/// an operator skips the event. Thread-safe.
class projection_runner {
public:
  projection_runner(storage::event_store& store, runner_options opts = {});
  ~projection_runner();

  projection_runner(const projection_runner&) = delete;
  projection_runner& operator=(const projection_runner&) = delete;

  /// Adds a projection (before `start`). `make` builds a fresh instance.
  void add(std::string name, projection_factory make);

  /// Adds the standard projections; the stock projection keeps `cache` current.
  void add_standard(std::shared_ptr<stock_cache> cache = nullptr);

  /// Removes generations a crashed rebuild left behind, builds generation 1
  /// of projections that never ran, upgrades the stored values of a store an
  /// earlier build wrote without format versions (the standard models move
  /// to the next generation, a copy), and starts every projection. Errors:
  /// `storage_failure`, `corrupt_record`, `not_writable`,
  /// `unknown_event_type` (values of a newer build).
  caf::error start();

  /// Stops every projection after its current delivery; changes not
  /// committed yet are dropped (the next start applies them again from the
  /// checkpoint). Idempotent; the destructor calls it.
  void stop();

  /// The status of every projection, in the order they were added.
  std::vector<projection_status> status() const;

  /// The status of projection `name`. Errors: `not_found`.
  caf::expected<projection_status> status(std::string_view name) const;

  /// Blocks until every projection (or `name`) has applied position
  /// `position` or stopped at an event, or `timeout` passed; returns false
  /// only on the timeout (see `status` for a projection that stopped).
  bool wait_for(std::uint64_t position, std::chrono::milliseconds timeout,
                std::string_view name = {}) const;

  /// Skips the event at `position` of projection `name`, which must be
  /// stopped at exactly that position, records the skip and restarts the
  /// projection after it. Errors: `not_found` (no such projection),
  /// `invalid_argument` (not stopped there), `storage_failure`.
  caf::error skip(std::string_view name, std::uint64_t position, std::string_view skipped_by,
                  std::string_view note);

  /// Rebuilds projection `name` from position 1 into a new generation while
  /// the serving one goes on, then swaps it in atomically once it has caught
  /// up with the log (appends during the rebuild included). Blocks until
  /// swapped; the old generation is deleted `retire_grace` later in the
  /// background. Errors: `not_found`, `projection_stopped`
  /// (the shadow met an event it cannot apply: the serving generation stays),
  /// `invalid_argument` (a rebuild of it is already running),
  /// `storage_failure`.
  caf::error rebuild(std::string_view name);

  /// Rebuilds every projection at once: one read of the log feeds a shadow
  /// per projection, each applied on a thread of its own. Errors: the first
  /// projection's that failed (the others are swapped in).
  caf::error rebuild_all();

  /// The upgrades of stored values `start` made, in the order of projections.
  std::vector<framing_upgrade> upgrades() const;

  /// Clears the recent applied-lag samples (benchmarks measure a phase).
  void reset_lag_samples();

private:
  void add_entry(std::string name, projection_factory make, bool models_framed);

  struct impl;
  std::unique_ptr<impl> impl_;
};

/// The skips recorded for projection `name`, oldest first.
caf::expected<std::vector<skip_record>> list_skips(const storage::event_store& store,
                                                   std::string_view name);

/// The failure a stopped projection `name` recorded, if it is stopped.
caf::expected<std::optional<projection_failure>>
recorded_failure(const storage::event_store& store, std::string_view name);

/// Skips the event at `position` of projection `name` in a store no runner
/// has open (operator tools): the recorded failure must be at `position`.
/// The next runner starts after it. Errors as for `projection_runner::skip`.
caf::error skip_event(storage::event_store& store, std::string_view name,
                      std::uint64_t position, std::string_view skipped_by,
                      std::string_view note);

/// The serving generation of projection `name` (0: never built).
caf::expected<std::uint32_t> active_generation(const storage::event_store& store,
                                               std::string_view name);

} // namespace keel::projections
