#include "keel/events/ids.hpp"

#include <chrono>
#include <random>

namespace keel::events {

namespace {

std::uint64_t splitmix(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

event_id from_words(std::uint64_t a, std::uint64_t b) {
  event_id result;
  std::memcpy(result.bytes.data(), &a, 8);
  std::memcpy(result.bytes.data() + 8, &b, 8);
  result.bytes[6] = static_cast<std::uint8_t>((result.bytes[6] & 0x0f) | 0x40);
  result.bytes[8] = static_cast<std::uint8_t>((result.bytes[8] & 0x3f) | 0x80);
  return result;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

} // namespace

bool event_id::valid() const noexcept {
  for (auto b : bytes)
    if (b != 0)
      return true;
  return false;
}

event_id event_id::random() {
  // Time-ordered (UUIDv7 layout): 48 bits of Unix milliseconds, big-endian,
  // then random bits. Ids created close in time sort close together, so the
  // store's event-id index receives nearly sequential inserts instead of
  // random ones (measured: random ids made memtable inserts the committer's
  // largest cost).
  thread_local std::uint64_t state = [] {
    std::random_device rd;
    return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  }();
  auto ms = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                         std::chrono::system_clock::now().time_since_epoch())
                                         .count());
  event_id result;
  for (int i = 0; i < 6; ++i)
    result.bytes[i] = static_cast<std::uint8_t>(ms >> (40 - 8 * i));
  auto a = splitmix(state);
  auto b = splitmix(state);
  std::memcpy(result.bytes.data() + 6, &a, 2);
  std::memcpy(result.bytes.data() + 8, &b, 8);
  result.bytes[6] = static_cast<std::uint8_t>((result.bytes[6] & 0x0f) | 0x70);
  result.bytes[8] = static_cast<std::uint8_t>((result.bytes[8] & 0x3f) | 0x80);
  return result;
}

event_id event_id::from_seed(std::uint64_t seed, std::uint64_t n) {
  std::uint64_t state = seed ^ (n * 0xd1b54a32d192ed03ULL);
  auto a = splitmix(state);
  auto b = splitmix(state);
  return from_words(a, b);
}

std::optional<event_id> event_id::parse(std::string_view text) {
  event_id result;
  size_t n = 0;
  int high = -1;
  for (char c : text) {
    if (c == '-')
      continue;
    int v = hex_value(c);
    if (v < 0 || n >= 16)
      return std::nullopt;
    if (high < 0) {
      high = v;
    } else {
      result.bytes[n++] = static_cast<std::uint8_t>(high << 4 | v);
      high = -1;
    }
  }
  if (n != 16 || high >= 0)
    return std::nullopt;
  return result;
}

std::string to_string(const event_id& x) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string result(32, '0');
  for (size_t i = 0; i < 16; ++i) {
    result[2 * i] = digits[x.bytes[i] >> 4];
    result[2 * i + 1] = digits[x.bytes[i] & 0x0f];
  }
  return result;
}

bool valid_stream_id(std::string_view id) noexcept {
  if (id.empty() || id.size() > max_stream_id_size)
    return false;
  for (unsigned char c : id)
    if (c <= 0x20 || c >= 0x7f)
      return false;
  return true;
}

bool valid_key(std::string_view key) noexcept {
  if (key.empty() || key.size() > max_key_size)
    return false;
  for (char c : key) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
              || c == '.' || c == '_' || c == ':' || c == '-';
    if (!ok)
      return false;
  }
  return true;
}

} // namespace keel::events
