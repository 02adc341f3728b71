#include "keel/events/crc32c.hpp"

#include <array>
#include <cstring>

namespace keel::events {

namespace {

constexpr std::uint32_t poly = 0x82f63b78; // CRC32C, reflected

constexpr std::array<std::uint32_t, 256> make_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int k = 0; k < 8; ++k)
      c = (c & 1) ? (c >> 1) ^ poly : c >> 1;
    table[i] = c;
  }
  return table;
}

constexpr auto table = make_table();

std::uint32_t crc_software(const std::uint8_t* p, std::size_t n, std::uint32_t crc) noexcept {
  for (std::size_t i = 0; i < n; ++i)
    crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
std::uint32_t crc_hardware(const std::uint8_t* p, std::size_t n, std::uint32_t crc) noexcept {
  std::uint64_t c = crc;
  while (n >= 8) {
    std::uint64_t word;
    std::memcpy(&word, p, 8);
    c = __builtin_ia32_crc32di(c, word);
    p += 8;
    n -= 8;
  }
  auto c32 = static_cast<std::uint32_t>(c);
  while (n > 0) {
    c32 = __builtin_ia32_crc32qi(c32, *p++);
    --n;
  }
  return c32;
}

const bool have_sse42 = __builtin_cpu_supports("sse4.2");
#endif

} // namespace

std::uint32_t crc32c(const void* data, std::size_t size, std::uint32_t crc) noexcept {
  auto p = static_cast<const std::uint8_t*>(data);
  crc = ~crc;
#if defined(__x86_64__)
  if (have_sse42)
    return ~crc_hardware(p, size, crc);
#endif
  return ~crc_software(p, size, crc);
}

} // namespace keel::events
