#pragma once

// A server (keel-node, keel-sim, etcd) as a child process, for the benchmarks
// that start their own node and for the integration tests: ours are started
// with `--port-file`, others on a port given; its stdout and stderr in a log
// file, ready once it wrote its port (and, with a ready path, once GET answers
// 200 there); stopped by a signal, SIGKILLed when dropped while running. Used
// from one thread.

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace keel::bench {

class server_process {
public:
  struct options {
    /// The executable (a full path) and its arguments (`--port-file` is added).
    std::string program;
    std::vector<std::string> args;
    /// Prefix of the port file (`<base>.port`) and of the log (`<base>.log.<n>`).
    std::string base;
    /// GET path that answers 200 once it serves ("/ready"); empty: the port file suffices.
    std::string ready_path;
    /// Environment variables of the child (secrets go here, not in argv,
    /// which every local user can read).
    std::map<std::string, std::string> env;
    /// How long it may take to become ready.
    std::chrono::milliseconds start_timeout{60000};
    /// A program without `--port-file` (etcd): the port its arguments make
    /// it listen on; 0 for ours.
    int port = 0;
    /// The address readiness is checked on (a server in another network
    /// namespace is reached on its own address).
    std::string host = "127.0.0.1";
  };

  /// Spawns it and waits until it is ready; on failure returns nothing and
  /// puts the reason, with the log's tail, in `why`.
  static std::unique_ptr<server_process> start(options o, std::string& why);

  ~server_process();
  server_process(const server_process&) = delete;
  server_process& operator=(const server_process&) = delete;

  int port() const noexcept {
    return port_;
  }
  const std::string& host() const noexcept {
    return o_.host;
  }
  int pid() const noexcept {
    return pid_;
  }
  bool running() const noexcept {
    return pid_ > 0;
  }

  /// Sends `sig` and waits up to `timeout` for the exit; returns the wait
  /// status (-1 when it did not exit in time: it is SIGKILLed then).
  int signal_and_wait(int sig, std::chrono::milliseconds timeout);

  /// SIGTERM and waits up to `timeout`: the exit code, or -1 when it was
  /// killed by a signal or did not exit in time.
  int stop(std::chrono::milliseconds timeout);

  /// Starts it again after it exited, with `replace` in its arguments
  /// swapped for `with` (e.g. "127.0.0.1:0" for the port it had); false
  /// with the reason in `why` when it does not become ready.
  bool restart(const std::string& replace, const std::string& with, std::string& why);

  const std::string& log_path() const noexcept {
    return log_path_;
  }
  /// Its output so far, and the last `lines` lines of it ("  | " before each).
  std::string log() const;
  std::string log_tail(std::size_t lines) const;

private:
  explicit server_process(options o);
  bool spawn(std::string& why);

  options o_;
  std::string log_path_;
  int pid_ = -1;
  int port_ = 0;
};

} // namespace keel::bench
