#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/expected.hpp>

#include "keel/actors/simulated_provider.hpp"

namespace keel::sim {

/// What keel-sim serves: simulated payment gateways and carriers behind the
/// HTTP protocol of `actors::http_provider_config`.
struct sim_config {
  std::string host = "127.0.0.1";
  /// 0: any free port (see `sim_server::port`).
  int port = 9100;
  std::vector<std::string> gateways{"gw-primary", "gw-secondary"};
  std::vector<std::string> carriers{"carrier-a", "carrier-b"};
  /// Callers must send it as a bearer token; empty: no authentication.
  std::string api_key;
  std::uint64_t seed = 1;
  /// Idempotency keys each provider remembers.
  std::size_t key_capacity = 200000;
  /// Calls served at once (each waits out its simulated latency on a thread).
  std::size_t threads = 256;
  /// Faults every provider starts with (the default: 2 ms median, 10 ms p99).
  actors::provider_faults faults;
};

/// keel-sim's HTTP server:
/// - `POST /providers/<name>/<operation>` (authorize, capture, void, refund
///   for gateways; schedule, cancel for carriers) with `Idempotency-Key`
///   and `{"amount_cents": N}`: answers after the simulated latency with
///   `200 {"status": "approved", "reference", "delivery_days"}`, `200
///   {"status": "declined", "reason"}` or `503 {"error"}`; a hung call is
///   answered only when the server stops.
/// - `POST /admin/faults`: the body of keel-node's `/admin/faults`
///   (provider name, "gateways", "carriers" or "all").
/// - `GET /stats`: calls and distinct successes per provider.
/// - `GET /health`.
class sim_server {
public:
  static caf::expected<std::unique_ptr<sim_server>> start(sim_config cfg);
  ~sim_server();

  sim_server(const sim_server&) = delete;
  sim_server& operator=(const sim_server&) = delete;

  int port() const noexcept;

  /// The simulator behind provider `name`; null when there is none.
  actors::simulated_provider* provider(const std::string& name) const;

  /// Blocks until `stop`.
  void wait();
  /// Stops serving; hung calls are answered with 503. Safe from any thread.
  void stop();

  struct impl;

private:
  explicit sim_server(std::unique_ptr<impl> ptr);
  std::unique_ptr<impl> impl_;
};

} // namespace keel::sim
