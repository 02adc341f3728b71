#include "keel/events/correlation.hpp"

namespace keel::events {

std::uint64_t stable_hash(std::string_view key) noexcept {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return h;
}

event_id correlation_of(std::string_view order_id) {
  return event_id::from_seed(stable_hash(order_id), 0);
}

} // namespace keel::events
