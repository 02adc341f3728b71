#pragma once

#include <cstddef>
#include <cstdint>

namespace keel::events {

/// Computes CRC32C (Castagnoli) of `size` bytes at `data`, continuing from
/// `crc` (0 to start). Uses the SSE4.2 instruction when the CPU has it.
std::uint32_t crc32c(const void* data, std::size_t size, std::uint32_t crc = 0) noexcept;

} // namespace keel::events
