#pragma once

// A cluster on this machine for the benchmark and `./keel cluster-demo`: a
// throwaway etcd and keel-node processes (one store each under one temporary
// directory), with what both need - adding, killing and restarting nodes,
// the cluster's view from etcd, waiting until moves are done.

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "agent.hpp"
#include "etcd_process.hpp"
#include "server_process.hpp"
#include "temp_dir.hpp"

namespace keel::bench {

class local_cluster {
public:
  struct options {
    std::uint32_t slots = 64;
    std::string cluster = "keel";
    /// Extra arguments of every node (e.g. {"--kafka", "off"}).
    std::vector<std::string> node_args;
    std::chrono::milliseconds settle{1500};
  };

  /// Starts etcd; nullptr with the reason in `why`.
  static std::unique_ptr<local_cluster> start(options o, std::string& why);

  ~local_cluster();
  local_cluster(const local_cluster&) = delete;
  local_cluster& operator=(const local_cluster&) = delete;

  /// Starts node `id` (its store `<dir>/<id>`); false with the reason in `why`.
  bool add(const std::string& id, std::string& why, std::vector<std::string> extra = {});
  /// Nodes started one after the other, within the first map's settle time.
  bool add_all(const std::vector<std::string>& ids, std::string& why);
  void kill(const std::string& id);
  /// SIGTERM and wait; the exit code (-1: killed or timed out).
  int stop(const std::string& id, std::chrono::seconds timeout);
  bool restart(const std::string& id, std::string& why);

  /// http://127.0.0.1:PORT of node `id`.
  std::string url(const std::string& id) const;
  bool running(const std::string& id) const;
  /// Node `id`'s store directory.
  std::string data(const std::string& id) const;
  std::vector<std::string> ids() const;
  const std::string& secret() const noexcept {
    return secret_;
  }
  std::string etcd_url() const;
  const std::string& name() const noexcept {
    return o_.cluster;
  }
  server_process& process(const std::string& id);

  /// The view from etcd (empty on an error).
  cluster::cluster_view view() const;
  /// Waits until every slot of a running node is held, no move is under way
  /// or to come (the shares of the running nodes that are not a group's
  /// standby differ by one at most), and every running node is connected to
  /// the others; false after `timeout`.
  bool wait_balanced(std::chrono::milliseconds timeout) const;

private:
  local_cluster() = default;
  std::vector<std::string> args_of(const std::string& id) const;

  options o_;
  std::string secret_;
  std::unique_ptr<etcd_process> etcd_;
  std::unique_ptr<temp_dir> dir_;
  std::map<std::string, std::unique_ptr<server_process>> nodes_;
};

} // namespace keel::bench
