#pragma once

// A throwaway single-member etcd (Debian's etcd-server) for the tests and the
// cluster demo: data and log in a fresh directory under /dev/shm (tmpfs:
// etcd's fsyncs are cheap), client and peer ports chosen free, fast election
// timing (leases of 1 s are honoured), progress notifications every second.
// Removed with its directory when dropped.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "server_process.hpp"
#include "temp_dir.hpp"

namespace keel::bench {

class etcd_process {
public:
  /// Starts etcd and waits until GET /health answers; nullptr with the
  /// reason in `why` when it cannot (not installed, did not start).
  /// It listens on 127.0.0.1 and on each address of `also_on` (the same port).
  static std::unique_ptr<etcd_process> start(std::string& why,
                                             const std::vector<std::string>& also_on = {});

  ~etcd_process();
  etcd_process(const etcd_process&) = delete;
  etcd_process& operator=(const etcd_process&) = delete;

  /// http://127.0.0.1:PORT
  std::string url() const;
  /// http://HOST:PORT (HOST one of the addresses it listens on).
  std::string url_on(const std::string& host) const;
  int port() const noexcept;
  server_process& process() noexcept {
    return *server_;
  }

private:
  etcd_process() = default;

  std::unique_ptr<temp_dir> dir_;
  std::unique_ptr<server_process> server_;
};

/// The path of the etcd executable ("/usr/bin/etcd"), empty when missing.
std::string etcd_program();

} // namespace keel::bench
