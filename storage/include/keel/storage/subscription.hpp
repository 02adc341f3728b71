#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include <caf/error.hpp>

#include "keel/events/record.hpp"

namespace keel::storage {

struct store_state;

/// A running delivery of the global log to a handler, on a thread of its own:
/// catch-up from the start position, then live, woken by the committer (no
/// polling). Delivery is in position order, gap-free, each event once. Stops
/// when the handler returns false, on a read error (see `error()`), on
/// `stop()` or on destruction.
class subscription {
public:
  /// Receives a batch of records; views are valid during the call only.
  /// Returns false to stop the subscription.
  using handler = std::function<bool(const std::vector<events::record_view>&)>;

  /// Called once, on the subscription's thread, when a read error (a
  /// corrupt record, an I/O error) stops it; the records before the failing
  /// one have been delivered, so it is at `next_position()`.
  using error_handler = std::function<void(const caf::error&)>;

  struct options {
    /// The most records per handler call.
    std::size_t max_batch = 1024;
    /// Optional; see `error_handler`.
    error_handler on_error = nullptr;
  };

  ~subscription();

  /// Stops delivery and joins the thread. The handler is not called after
  /// `stop()` returns. Idempotent; must not be called from the handler.
  void stop();

  /// The position after the last record delivered.
  std::uint64_t next_position() const noexcept;

  /// The error that stopped the subscription, if any (after it stopped).
  caf::error error() const;

  /// True while the subscription is delivering or waiting for commits.
  bool running() const noexcept;

  struct impl;
  explicit subscription(std::unique_ptr<impl> ptr);

private:
  std::unique_ptr<impl> impl_;
};

} // namespace keel::storage
