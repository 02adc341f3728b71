#include "keel/events/streams.hpp"

#include <array>
#include <utility>

namespace keel::events {

namespace {

std::string join(std::string_view prefix, std::string_view key) {
  std::string result;
  result.reserve(prefix.size() + key.size());
  result.append(prefix);
  result.append(key);
  return result;
}

// Longer prefixes first: "$system-breaker-" before any shorter one it extends.
constexpr std::array<std::pair<std::string_view, stream_kind>, 7> keyed = {{
  {breaker_prefix, stream_kind::breaker},
  {pool_prefix, stream_kind::pool},
  {shipment_prefix, stream_kind::shipment},
  {payment_prefix, stream_kind::payment},
  {catalog_prefix, stream_kind::catalog},
  {order_prefix, stream_kind::order},
  {stock_prefix, stream_kind::stock},
}};

bool starts_with(std::string_view x, std::string_view prefix) noexcept {
  return x.size() >= prefix.size() && x.compare(0, prefix.size(), prefix) == 0;
}

// The kind of `stream` and where its key starts (its size when it has none).
std::pair<stream_kind, std::size_t> match(std::string_view stream) noexcept {
  if (stream == supervisor_stream)
    return {stream_kind::supervisor, stream.size()};
  if (stream == providers_stream)
    return {stream_kind::providers, stream.size()};
  for (const auto& [prefix, kind] : keyed)
    if (stream.size() > prefix.size() && starts_with(stream, prefix))
      return {kind, prefix.size()};
  return {stream_kind::other, stream.size()};
}

} // namespace

std::string order_stream(std::string_view order_id) {
  return join(order_prefix, order_id);
}

std::string stock_stream(std::string_view sku) {
  return join(stock_prefix, sku);
}

std::string payment_stream(std::string_view order_id) {
  return join(payment_prefix, order_id);
}

std::string shipment_stream(std::string_view order_id) {
  return join(shipment_prefix, order_id);
}

std::string catalog_stream(std::string_view sku) {
  return join(catalog_prefix, sku);
}

std::string breaker_stream(std::string_view name) {
  return join(breaker_prefix, name);
}

std::string pool_stream(std::string_view name) {
  return join(pool_prefix, name);
}

stream_kind kind_of_stream(std::string_view stream) noexcept {
  return match(stream).first;
}

std::string_view key_of_stream(std::string_view stream) noexcept {
  return stream.substr(match(stream).second);
}

} // namespace keel::events
