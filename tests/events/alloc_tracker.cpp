// Replaces the global operator new/delete of the events test binary to
// record the largest allocation while armed.

#include "alloc_tracker.hpp"

#include <atomic>
#include <cstdlib>
#include <new>

#if defined(__SANITIZE_ADDRESS__)

// AddressSanitizer owns operator new; replacing it mixes allocators. The
// bound is asserted in the Release build.
namespace keel::test {
void track_allocations(bool) {
}
std::size_t largest_allocation() {
  return 0;
}
bool tracking_allocations() {
  return false;
}
} // namespace keel::test

#else

namespace {
std::atomic<bool> tracking{false};
std::atomic<std::size_t> largest{0};
} // namespace

void* operator new(std::size_t n) {
  if (tracking.load(std::memory_order_relaxed) && n > largest.load(std::memory_order_relaxed))
    largest.store(n, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n))
    return p;
  throw std::bad_alloc{};
}

void* operator new[](std::size_t n) {
  return operator new(n);
}

void operator delete[](void* p) noexcept {
  std::free(p);
}

void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}

void operator delete(void* p) noexcept {
  std::free(p);
}

void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}

namespace keel::test {

void track_allocations(bool on) {
  if (on)
    largest = 0;
  tracking = on;
}

std::size_t largest_allocation() {
  return largest.load();
}

bool tracking_allocations() {
  return true;
}

} // namespace keel::test

#endif
