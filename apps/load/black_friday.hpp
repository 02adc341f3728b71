#pragma once

#include <optional>
#include <string>
#include <vector>

#include "http_client.hpp"

namespace keel::bench {

/// Where the Black Friday runs.
struct black_friday_options {
  /// The keel-node (started with --breaker-wait-ms 3000 --payment-retry-ms 500).
  http_endpoint node;
  /// The node's JWT secret (the demo mints its customers' and admin's tokens).
  std::string jwt_secret;
  /// keel-sim serving the node's providers: the slowdown's faults are set
  /// there. Without it, at the node's own (simulated) providers.
  std::optional<http_endpoint> sim;
  std::string sim_key;
  /// The node's gateways, whose breakers the demo follows.
  std::vector<std::string> gateways{"gw-primary", "gw-secondary"};
};

/// Seeds the catalogue, then normal load, a 50x spike, a payment slowdown
/// that opens the gateway breakers while orders keep coming, the recovery
/// until every order ended, and a report of the node's own figures. Prints
/// as it goes; returns the exit code (0: every order ended, no doorbuster
/// oversold, no unexpected answer).
int run_black_friday(black_friday_options o);

} // namespace keel::bench
