#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <caf/actor.hpp>
#include <caf/expected.hpp>

#include "keel/actors/fwd.hpp"
#include "keel/events/correlation.hpp"
#include "keel/storage/append.hpp"
#include "keel/storage/event_store.hpp"

namespace keel::actors {

/// The event-sourcing half of an actor shell: appends events and runs the
/// continuation inside the actor once they are durable (or failed). The
/// continuation runs when the actor handles `(persisted_atom, token, error,
/// last_version, last_position)`, which `handles()` recognizes. Owned by one
/// actor; not thread-safe.
class journal {
public:
  using continuation = std::function<void(const caf::error&, const storage::append_result&)>;

  journal(std::shared_ptr<storage::event_store> store, append_mode mode);

  /// Appends `events` to `stream`; `k` runs in the actor when durable.
  void append(const caf::actor& self, std::string stream, storage::expected_version expected,
              std::vector<storage::new_event> events, continuation k);

  /// Runs the continuation of `token`.
  void complete(std::uint64_t token, const caf::error& err, std::uint64_t first_version,
                std::uint64_t last_version, std::uint64_t last_position);

  /// Drops every continuation (the actor is exiting; they may hold promises
  /// that refer back to the actor and would keep it alive).
  void clear() noexcept {
    pending_.clear();
  }

  storage::event_store& store() const noexcept {
    return *store_;
  }

private:
  std::shared_ptr<storage::event_store> store_;
  append_mode mode_;
  std::uint64_t next_token_ = 1;
  std::unordered_map<std::uint64_t, continuation> pending_;
};

/// Decodes the events of `stream` from `from_version` on and hands each to
/// `apply` with its record (version, timestamp). Errors: storage errors and
/// events that do not decode (the fold stops there).
caf::error fold_stream(
  const storage::event_store& store, std::string_view stream, std::uint64_t from_version,
  const std::function<void(const events::event&, const events::record_view&)>& apply);

/// The stable hash and correlation ids live in events/ (correlation.hpp).
using events::correlation_of;
using events::stable_hash;

/// Encodes `ev` as a new event with a fresh id, stamped `at_us`, with the
/// order's correlation id and the id of the event that caused it.
storage::new_event make_new_event(const events::event& ev, std::int64_t at_us,
                                  const events::event_id& correlation = {},
                                  const events::event_id& causation = {});

} // namespace keel::actors
