// libFuzzer target: the stored record layout and every event payload
// decoder. Input: one byte choosing an event type, one its schema version,
// then bytes decoded both as a whole record and as that type's payload.
// Decoding must never crash, hang or read out of bounds, whatever the bytes;
// what decodes must re-encode and decode to the same JSON.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "keel/events/codec.hpp"
#include "keel/events/event.hpp"
#include "keel/events/json.hpp"
#include "keel/events/record.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace keel::events;
  std::string_view bytes{reinterpret_cast<const char*>(data), size};
  if (auto rec = decode_record(bytes))
    (void) rec->decode_payload();
  if (size < 2)
    return 0;
  const auto& types = event_types();
  const auto& info = types[data[0] % types.size()];
  auto version = static_cast<std::uint16_t>(data[1] % (info.current_version + 2));
  auto ev = decode(info.name, version, bytes.substr(2));
  if (!ev)
    return 0;
  // Round trip at the current version: the same event again.
  auto again = decode(info.name, info.current_version, encode(*ev, info.current_version));
  if (!again || to_json(*again) != to_json(*ev))
    std::abort();
  return 0;
}
