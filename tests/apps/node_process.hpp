#pragma once

// A real keel-node process for integration tests: started on a free port
// with its own store directory, its log in a file, stopped by SIGTERM or
// SIGKILL.

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "server_process.hpp"

namespace keel::test {

/// A real server process of ours (keel-node, keel-sim): bench::server_process
/// (the one launcher the benchmarks use too), started with `--port-file`,
/// ready once GET `ready_path` answers 200; a start that fails fails the test.
class server_process {
public:
  /// Starts `program args... --port-file <base>.port` and waits until it
  /// serves (on `host`: the address it listens on).
  server_process(std::string base, std::string program, std::vector<std::string> args,
                 std::string ready_path, std::string host = "127.0.0.1");
  virtual ~server_process();

  server_process(const server_process&) = delete;
  server_process& operator=(const server_process&) = delete;

  int port() const noexcept {
    return p_->port();
  }
  const std::string& host() const noexcept {
    return p_->host();
  }
  /// A keep-alive client of this server.
  httplib::Client client() const;

  /// Sends `sig` and waits up to `timeout` for the exit; returns the wait
  /// status (-1 when it did not exit in time; it is SIGKILLed then).
  int signal_and_wait(int sig, std::chrono::milliseconds timeout) {
    return p_->signal_and_wait(sig, timeout);
  }

  /// Starts it again (after it exited) with the same arguments, but
  /// `replace` swapped for `with` (e.g. "127.0.0.1:0" for the port it had).
  void restart(const std::string& replace = {}, const std::string& with = {});

  /// The output so far.
  std::string log() const {
    return p_->log();
  }

  int pid() const noexcept {
    return p_->pid();
  }

  bool running() const noexcept {
    return p_->running();
  }

private:
  std::unique_ptr<bench::server_process> p_;
};

/// Where a node runs: on this host's loopback, or behind a command prefix
/// (`ip netns exec NS`) on an address of its own.
struct node_placement {
  std::vector<std::string> prefix;
  std::string host = "127.0.0.1";
};

/// `keel-node run --data DATA --http HOST:0 ...extra`, ready once /ready answers.
class node_process : public server_process {
public:
  node_process(const std::string& data, std::vector<std::string> extra = {},
               const node_placement& where = {});
  ~node_process() override;

private:
  std::string data_;
};

/// `keel-sim --http 127.0.0.1:0 ...extra`; `restart_same_port` brings it back where it was.
class sim_process : public server_process {
public:
  sim_process(const std::string& base, std::vector<std::string> extra = {});

  void restart_same_port() {
    restart("127.0.0.1:0", "127.0.0.1:" + std::to_string(port()));
  }
};

/// The JWT secret every test node runs with.
inline const std::string test_secret = "keel-test-secret-of-at-least-32-bytes";

/// A bearer header value for `sub` (role admin when `admin`).
std::string bearer(const std::string& sub, bool admin = false);

/// Headers with a bearer token for `sub`.
httplib::Headers auth(const std::string& sub, bool admin = false);
/// POSTs `body` as JSON.
httplib::Result post(httplib::Client& c, const std::string& path, const nlohmann::json& body,
                     const httplib::Headers& h);
/// The domain events of the store (every stream but the `$system-` ones,
/// which the node appends on its own: breaker transitions, pool resizes),
/// read beside the running node (RocksDB secondary instance).
std::uint64_t head_of(const std::string& data);
/// Polls GET /v1/orders/{id} (as an admin) until its status is one of
/// `wanted`; returns the order, or fails the test with the last one seen.
nlohmann::json wait_status(httplib::Client& c, const std::string& id,
                           const std::set<std::string>& wanted,
                           std::chrono::seconds timeout = std::chrono::seconds(20));
/// PUT /admin/stock/{sku} {"quantity": quantity}, as an admin; requires 200.
void stock(httplib::Client& c, const std::string& sku, int quantity);
/// Puts `sku` on sale at `price_cents` EUR (PUT /admin/catalog/{sku}).
void put_on_sale(httplib::Client& c, const std::string& sku, std::int64_t price_cents = 1250);
/// A valid `POST /v1/orders` body: one line of `quantity` x `sku` at 12.50
/// EUR (the price `put_on_sale` sets by default), premium false.
nlohmann::json order_json(const std::string& id, const std::string& customer,
                          const std::string& sku, int quantity = 1);

/// A plain TCP connection to the node on 127.0.0.1 from `source` (any
/// 127/8 address works on loopback, so clients can be told apart), for
/// requests httplib will not send.
int connect_from(const char* source, int port);

/// The value of the unlabelled sample `sample` in the node's /metrics (-1: absent).
double metric(httplib::Client& c, const std::string& sample);

} // namespace keel::test
