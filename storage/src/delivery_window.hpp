#pragma once

#include <cstdint>
#include <deque>

namespace keel::storage {

/// The positions of the global log the outbox relay has read but not yet
/// confirmed. Positions enter in log order (gap-free, as the subscription
/// delivers them); delivery reports confirm them in any order (partitions
/// report independently). `confirmed()` only moves over a gap-free prefix of
/// confirmed positions, so a checkpoint taken from it never passes an event
/// that was not delivered. Not thread-safe (the relay guards it).
class delivery_window {
public:
  /// Starts after `confirmed`: the next position added is `confirmed + 1`.
  explicit delivery_window(std::uint64_t confirmed = 0) : confirmed_(confirmed) {
  }

  /// Adds the next position of the log, created at `timestamp_us`; `done`
  /// for an event with nothing to deliver (a system stream). Returns false
  /// (and changes nothing) unless `position == last() + 1`.
  bool add(std::uint64_t position, std::int64_t timestamp_us, bool done) {
    if (position != last() + 1)
      return false;
    slots_.push_back({timestamp_us, done});
    advance();
    return true;
  }

  /// Confirms `position`. Returns false for a position that is not waiting
  /// (never added, or confirmed already).
  bool confirm(std::uint64_t position) {
    if (position <= confirmed_ || position > last())
      return false;
    auto& slot = slots_[static_cast<std::size_t>(position - confirmed_ - 1)];
    if (slot.done)
      return false;
    slot.done = true;
    advance();
    return true;
  }

  /// Every position at or before it is confirmed.
  std::uint64_t confirmed() const noexcept {
    return confirmed_;
  }

  /// The last position added (or `confirmed()` when none waits).
  std::uint64_t last() const noexcept {
    return confirmed_ + slots_.size();
  }

  /// Positions after `confirmed()` up to `last()`: waiting for a report, or
  /// confirmed behind one that waits.
  std::size_t size() const noexcept {
    return slots_.size();
  }

  /// The creation time of the oldest unconfirmed event; 0 when none waits.
  std::int64_t oldest_timestamp_us() const noexcept {
    return slots_.empty() ? 0 : slots_.front().timestamp_us;
  }

private:
  struct slot {
    std::int64_t timestamp_us;
    bool done;
  };

  void advance() {
    while (!slots_.empty() && slots_.front().done) {
      slots_.pop_front();
      ++confirmed_;
    }
  }

  // slots_[i] is position confirmed_ + 1 + i; the front is never done.
  std::deque<slot> slots_;
  std::uint64_t confirmed_;
};

} // namespace keel::storage
