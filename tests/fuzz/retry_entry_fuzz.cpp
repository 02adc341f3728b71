// libFuzzer target: the parser of payment.retry.queue messages (anyone who
// can reach the broker can write them). Any value parses or is refused,
// never a crash; what parses renders and parses to the same entry.

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "keel/storage/kafka.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace keel::storage;
  auto e = parse_retry_entry({reinterpret_cast<const char*>(data), size});
  if (!e)
    return 0;
  auto again = parse_retry_entry(to_json(*e));
  if (!again || again->order_id != e->order_id || again->retry_count != e->retry_count
      || again->retry_at_us != e->retry_at_us || again->premium != e->premium)
    std::abort();
  return 0;
}
