#pragma once

// A node's membership of a cluster in etcd, and the slots that split the key
// space. Key layout (docs/cluster.md):
//
//   /keel/<cluster>/members/<node id>   {"node_id","http","cluster_listen"} on the node's lease
//
// A node joins by creating its member key on a lease of its own, only if no
// live member has its id (so two processes with one id never both hold it),
// and renews the lease at a third of its TTL. It counts itself lost - and must
// stop serving - as soon as etcd says the lease is gone, or once two thirds of
// the TTL passed without a renewal etcd confirmed: before etcd can let the
// lease expire and hand its slots to another node.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "etcd_client.hpp"

namespace keel::cluster {

/// The slot of `key` (an order id, a SKU) among `slots` (> 0), by
/// `events::stable_hash`: the same on every node, build and run.
std::uint32_t slot_of(std::string_view key, std::uint32_t slots) noexcept;

/// "/keel/<cluster>/".
std::string cluster_root(std::string_view cluster);

/// What a member publishes about itself.
struct member_info {
  std::string node_id;
  /// Its HTTP API, HOST:PORT.
  std::string http;
  /// Where its cluster endpoint (CAF) listens, HOST:PORT.
  std::string cluster_listen;
  /// Its group: the nodes that replicate one log (`--group`; a node alone
  /// is a group of its own, named after it).
  std::string group;
};

/// A member key's stored form, and back (nothing for anything else).
std::string encode_member(const member_info& m);
std::optional<member_info> decode_member(const std::string& text);

/// The live members of `cluster`, by node id.
caf::expected<std::vector<member_info>> list_members(etcd_client& etcd, std::string_view cluster);

class membership {
public:
  struct options {
    std::string etcd_url;
    std::string cluster = "keel";
    member_info self;
    /// The lease's TTL in seconds (etcd may raise it to its minimum).
    std::int64_t ttl_seconds = 3;
    /// Called once, on the renewal thread, when the membership is lost (it
    /// may call `leave`).
    std::function<void(const std::string& why)> on_lost;
  };

  /// Grants a lease and creates the member key on it. Errors:
  /// `invalid_argument` (a bad node id, or one a live member holds),
  /// `storage_failure` (etcd unreachable).
  static caf::expected<std::unique_ptr<membership>> join(options o);

  /// Leaves (see `leave`).
  ~membership();
  membership(const membership&) = delete;
  membership& operator=(const membership&) = delete;

  /// False once the membership was lost or left.
  bool live() const noexcept {
    return live_;
  }
  /// Live, and the last renewal etcd confirmed was sent less than two
  /// thirds of the TTL ago (monotonic clock): etcd cannot have let the lease
  /// expire yet, whatever the renewal thread is doing (stopped, blocked on a
  /// dead connection). A primary acknowledges a write only while this holds.
  bool valid() const noexcept;
  std::int64_t lease() const noexcept {
    return lease_;
  }
  /// etcd's revision at the creation of the member key.
  std::int64_t revision() const noexcept {
    return revision_;
  }
  /// The lease's TTL as granted.
  std::chrono::milliseconds ttl() const noexcept {
    return ttl_;
  }

  /// Stops renewing and revokes the lease: the member key goes at once.
  caf::error leave();

private:
  explicit membership(options o);
  void renew_loop();
  void lose(const std::string& why);

  options o_;
  std::unique_ptr<etcd_client> etcd_;
  std::int64_t lease_ = 0;
  std::int64_t revision_ = 0;
  std::chrono::milliseconds ttl_{0};
  std::atomic<bool> live_{false};
  /// steady_clock nanoseconds until which `valid` holds.
  std::atomic<std::int64_t> valid_until_{0};
  std::mutex mtx_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread renewer_;
};

} // namespace keel::cluster
