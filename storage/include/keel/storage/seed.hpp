#pragma once

// Seeding a replicated group's standby from a checkpoint of its primary's
// store: the files beside a data directory, and the swap before it opens.
//
// Primary: `prepare_seed` writes a RocksDB checkpoint of the store next to
// its data directory (`<data>.seed-out/<id>`, hard links where it can) and
// lists its files; `read_seed` hands out pieces of them. Standby: it writes
// the pieces to `<data>.seed/`, syncs them, marks the copy complete
// (`KEEL_SEED`) and starts again; `adopt_seed`, run before the store opens,
// puts the complete copy in place of the data directory.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "keel/storage/event_store.hpp"

namespace keel::storage {

/// A checkpoint prepared for standbys.
struct seed_files {
  /// Names the checkpoint ("<token>-<position>").
  std::string id;
  /// The last position it holds.
  std::uint64_t position = 0;
  /// Plain file names and their sizes.
  std::vector<std::string> files;
  std::vector<std::uint64_t> sizes;
};

/// Writes a checkpoint of `store` (whose data directory is `data`) for a
/// standby, replacing any earlier one.
caf::expected<seed_files> prepare_seed(const event_store& store, const std::string& data,
                                       std::uint64_t token);

/// Up to `length` bytes (at most 4 MiB) of `file` of checkpoint `id` from
/// `offset`. Errors: `not_found` when that checkpoint is gone (a newer one
/// replaced it), `invalid_argument` for a name that is not one of its files.
caf::expected<std::string> read_seed(const std::string& data, const std::string& id,
                                     const std::string& file, std::uint64_t offset,
                                     std::uint64_t length);

/// Removes the checkpoints prepared for standbys.
void drop_seeds(const std::string& data);

/// Where a standby writes a seed it receives.
std::string incoming_seed_dir(const std::string& data);

/// Marks the seed in `incoming_seed_dir(data)` complete (synced) with what
/// it holds.
caf::error finish_seed(const std::string& data, const std::string& about);

/// Before the store opens: a complete seed replaces the data directory
/// (crash-safe: a start after a crash at any point finishes or drops it);
/// an incomplete one is removed. Returns what the adopted seed holds
/// ("" when none was adopted).
caf::expected<std::string> adopt_seed(const std::string& data);

/// Writes `bytes` at the end of `path` (created if missing).
caf::error append_to(const std::string& path, const std::string& bytes);

} // namespace keel::storage
