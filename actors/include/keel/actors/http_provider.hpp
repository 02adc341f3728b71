#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include <caf/expected.hpp>

#include "keel/actors/provider.hpp"

namespace keel::actors {

/// Settings of a provider reached over HTTP (a gateway's or carrier's API,
/// or keel-sim).
///
/// The protocol: `POST <base_url>/<operation>` with the headers
/// `Authorization: Bearer <api_key>`, `Idempotency-Key: <key>` and the body
/// `{"amount_cents": N}`; the answer `200 {"status": "approved",
/// "reference": "...", "delivery_days": N}` or `200 {"status":
/// "declined", "reason": "..."}` (402 is a decline too). Anything else fails
/// the call: 408, 429 and 5xx answers, other 4xx (a wrong key or URL),
/// refused or broken connections, unreadable bodies; a call without an
/// answer within `timeout` times out.
struct http_provider_config {
  std::string name;
  /// "http://host:port/path" or "https://host:port/path".
  std::string base_url;
  /// Sent as a bearer token; empty: no Authorization header.
  std::string api_key;
  std::chrono::milliseconds connect_timeout{1000};
  /// Reading or writing one call.
  std::chrono::milliseconds timeout{10000};
  /// Kept-alive connections, each served by its own I/O thread (the calls
  /// in flight at once); calls beyond them wait, up to `4 x connections`,
  /// then fail at once.
  std::size_t connections = 20;
  /// TLS: a CA bundle to verify the server with (empty: the system's), or
  /// no verification at all (test servers with self-signed certificates).
  std::string ca_file;
  bool verify_tls = true;
};

/// Checks `cfg` (name, URL scheme and host, timeouts, connections) and
/// starts its I/O threads. Errors: errc::invalid_argument.
caf::expected<provider_ptr> make_http_provider(http_provider_config cfg);

} // namespace keel::actors
