// libFuzzer target: keel-replay's history reader (a file a user hands to
// `keel-replay check --history`). Any text is a history or an error, never
// a crash.

#include <cstddef>
#include <cstdint>
#include <string>

#include "codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void) keel::replay::parse_history(std::string{reinterpret_cast<const char*>(data), size});
  return 0;
}
