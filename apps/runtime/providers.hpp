#pragma once

// The payment gateways and carriers of a node, as its providers file names
// them (docs/operations.md "Providers"), and the small file and address
// helpers the runtime's programs share.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "keel/actors/http_provider.hpp"

namespace keel::runtime {

/// One payment gateway or carrier of a node: simulated in process, or an
/// HTTP provider (a real one, or keel-sim).
struct provider_spec {
  enum class kind_t : std::uint8_t { simulated, http };
  kind_t kind = kind_t::simulated;
  /// `http.name` is the provider's name either way.
  actors::http_provider_config http;
};

/// The providers of a node: gateways in order of preference, then carriers.
struct provider_specs {
  std::vector<provider_spec> gateways;
  std::vector<provider_spec> carriers;
};

/// The embedded default: simulated gateways gw-primary and gw-secondary,
/// simulated carriers carrier-a and carrier-b.
provider_specs simulated_defaults();

/// Reads a providers file (JSON, see docs/operations.md "Providers"): every
/// error names the field; API keys are read from their files here.
caf::expected<provider_specs> parse_providers(const std::string& json);
caf::expected<provider_specs> load_providers(const std::string& path);

/// The key in file `path` without trailing whitespace; an error when the
/// file cannot be read or holds no key (errc::invalid_argument).
caf::expected<std::string> read_key_file(const std::string& path);

/// Splits "HOST:PORT" (port 0..65535); false when malformed.
bool split_endpoint(const std::string& text, std::string& host, int& port);

/// Writes `port` to `path` for whoever started the server (`--port-file`):
/// into `<path>.tmp` first, then renamed, so a reader never sees half a
/// number. False when it cannot be written.
bool write_port_file(const std::string& path, int port);

} // namespace keel::runtime
