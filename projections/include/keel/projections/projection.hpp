#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "keel/events/event.hpp"
#include "keel/events/record.hpp"
#include "keel/storage/fwd.hpp"

namespace keel::projections {

/// The keys of one generation of one projection's read models: every key it
/// writes is prefixed with "m/<projection>/g<generation>/", so a rebuild can
/// fill a new generation beside the one that serves and swap in one write.
class keyspace {
public:
  keyspace(const storage::event_store& store, std::string prefix)
    : store_(&store), prefix_(std::move(prefix)) {
  }

  /// The prefix of every key of this generation.
  const std::string& prefix() const noexcept {
    return prefix_;
  }

  /// The full key of model key `key`.
  std::string key(std::string_view key) const;

  /// Reads model key `key` as committed. Errors: `storage_failure`.
  caf::expected<std::optional<std::string>> get(std::string_view key) const;

  /// Adds a put or erase of model key `key` to `batch`.
  void put(storage::write_batch& batch, std::string_view key, std::string_view value) const;
  void erase(storage::write_batch& batch, std::string_view key) const;

private:
  const storage::event_store* store_;
  std::string prefix_;
};

/// A read-side fold of the global log. The runner feeds it events in position
/// order and commits its pending changes with its checkpoint in one write
/// batch, so each event is applied exactly once across crashes.
///
/// Contract: `apply` either applies an event completely to the pending state
/// or returns an error having changed nothing (validate first, then mutate),
/// so the runner can commit everything before a poison event.
class projection {
public:
  virtual ~projection();

  /// The stable name ("orders", "stock", "figures"): key prefix, checkpoint
  /// name, and what operators type.
  virtual std::string_view name() const noexcept = 0;

  /// Whether events of `type` matter; others are skipped without decoding.
  virtual bool wants(std::string_view type) const noexcept = 0;

  /// Applies one event to the pending state, reading committed state through
  /// `models` where the pending state does not have it. An error means the
  /// event cannot be applied (the reason goes into the runner's report).
  virtual caf::error apply(const events::record_view& rec, const events::event& ev,
                           const keyspace& models)
    = 0;

  /// Moves the pending changes into `batch` (the runner adds the checkpoint
  /// and commits) and forgets them.
  virtual void flush(storage::write_batch& batch, const keyspace& models) = 0;

  /// Forgets the pending changes (a failed commit).
  virtual void discard() = 0;

  /// Called after a batch from `flush` committed, on the runner's thread.
  /// `serving`: this instance's generation is the one queries read (false
  /// while it is a rebuild's shadow).
  virtual void committed([[maybe_unused]] bool serving) {
  }

  /// Called once when this instance's generation becomes the serving one
  /// (after a rebuild's swap).
  virtual void activated() {
  }

  /// Called before the first event: `empty` says the generation holds
  /// nothing yet (it starts at position 1), so every model it will hold is
  /// one this instance writes (projections may skip lookups of keys they
  /// know they never wrote).
  virtual void starting([[maybe_unused]] bool empty) {
  }
};

/// Creates a fresh instance of a projection (one per generation: a rebuild
/// runs a second instance beside the serving one).
using projection_factory = std::function<std::unique_ptr<projection>()>;

class stock_cache;

/// "orders": order summaries and orders by customer.
std::unique_ptr<projection> make_orders_projection();

/// "stock": stock levels by SKU; keeps `cache` (if any) current after each
/// commit of the serving generation.
std::unique_ptr<projection> make_stock_projection(std::shared_ptr<stock_cache> cache = nullptr);

/// "figures": business figures per day and saga statistics; with `slots`
/// (a cluster node's store) also per day and cluster slot of the order.
std::unique_ptr<projection> make_figures_projection(std::uint32_t slots = 0);

/// The names of the standard projections: "orders", "stock", "figures".
const std::vector<std::string>& standard_projection_names();

} // namespace keel::projections
