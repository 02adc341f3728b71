#pragma once

// A client of etcd 3.4's v3 API through its JSON gateway (POST /v3/..., keys
// and values in base64, 64-bit numbers as strings; see docs/cluster.md). The
// cluster keeps its members, slot map and ownerships in etcd; no C++ etcd
// client is packaged in Debian, so this speaks the gateway over cpp-httplib.
// One client holds one keep-alive connection and is not thread-safe: give a
// watch its own client (it blocks for as long as it runs).

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <caf/error.hpp>
#include <caf/expected.hpp>

namespace keel::cluster {

/// One key with its metadata. Revisions are etcd's: the store's, at the
/// write that created / last modified the key.
struct etcd_kv {
  std::string key;
  std::string value;
  std::int64_t create_revision = 0;
  std::int64_t mod_revision = 0;
  std::int64_t version = 0;
  /// The lease the key is attached to (0: none).
  std::int64_t lease = 0;
};

/// The keys of a range read and the store's revision it was read at.
struct etcd_range {
  std::int64_t revision = 0;
  std::vector<etcd_kv> kvs;
};

struct etcd_lease {
  std::int64_t id = 0;
  /// Seconds granted (etcd raises a TTL below its minimum).
  std::int64_t ttl = 0;
};

/// One comparison of a transaction: `target` of `key` against a number
/// (create, mod, version) or a value.
struct etcd_compare {
  enum class target { create, mod, version, value };
  enum class result { equal, not_equal, greater, less };
  std::string key;
  target what = target::create;
  result is = result::equal;
  std::int64_t number = 0;
  std::string value;

  /// `key` does not exist.
  static etcd_compare absent(std::string key) {
    return {std::move(key), target::create, result::equal, 0, {}};
  }
  /// `key` was last written at `revision`.
  static etcd_compare modified_at(std::string key, std::int64_t revision) {
    return {std::move(key), target::mod, result::equal, revision, {}};
  }
  /// `key` holds `value`.
  static etcd_compare holds(std::string key, std::string value) {
    return {std::move(key), target::value, result::equal, 0, std::move(value)};
  }
};

/// One operation of a transaction branch: a put (with an optional lease) or
/// a delete of one key.
struct etcd_op {
  enum class kind { put, erase };
  kind what = kind::put;
  std::string key;
  std::string value;
  std::int64_t lease = 0;

  static etcd_op put(std::string key, std::string value, std::int64_t lease = 0) {
    return {kind::put, std::move(key), std::move(value), lease};
  }
  static etcd_op erase(std::string key) {
    return {kind::erase, std::move(key), {}, 0};
  }
};

struct etcd_txn_result {
  bool succeeded = false;
  /// The store's revision after the transaction (a fencing token when it
  /// wrote an ownership).
  std::int64_t revision = 0;
};

/// What one message of a watch stream brought.
struct etcd_watch_event {
  bool deleted = false;
  etcd_kv kv;
};
struct etcd_watch_batch {
  /// The store's revision this message is current to.
  std::int64_t revision = 0;
  /// The first message: the watch is established.
  bool created = false;
  /// Set when the history from the start revision was compacted: read the
  /// range afresh and watch from its revision + 1.
  std::int64_t compact_revision = 0;
  std::vector<etcd_watch_event> events;
};

/// The first key after every key that starts with `prefix` (etcd's range_end
/// of a prefix).
std::string prefix_end(std::string prefix);

class etcd_client {
public:
  /// `url`: http://HOST:PORT. Errors: `invalid_argument` (not such a URL).
  static caf::expected<std::unique_ptr<etcd_client>> connect(const std::string& url,
                                                             int timeout_ms = 2000);
  ~etcd_client();
  etcd_client(const etcd_client&) = delete;
  etcd_client& operator=(const etcd_client&) = delete;

  const std::string& url() const noexcept;

  caf::expected<etcd_lease> grant(std::int64_t ttl_seconds);
  /// Renews the lease once; nullopt when it is gone (expired or revoked).
  caf::expected<std::optional<std::int64_t>> keepalive(std::int64_t lease);
  /// Errors: `not_found` (no such lease).
  caf::error revoke(std::int64_t lease);

  /// Returns the store's revision after the put.
  caf::expected<std::int64_t> put(const std::string& key, const std::string& value,
                                  std::int64_t lease = 0);
  /// The key, if it exists (a linearizable read).
  caf::expected<std::optional<etcd_kv>> get(const std::string& key);
  /// Every key starting with `prefix`, in key order.
  caf::expected<etcd_range> range(const std::string& prefix);
  /// Deletes every key starting with `prefix`; returns how many.
  caf::expected<std::int64_t> erase_prefix(const std::string& prefix);
  caf::expected<etcd_txn_result> txn(const std::vector<etcd_compare>& compare,
                                     const std::vector<etcd_op>& success,
                                     const std::vector<etcd_op>& failure = {});

  /// Watches every key starting with `prefix` from `start_revision`,
  /// calling `on_batch` per message until it returns false (then returns no
  /// error) or the stream fails (an error: watch again from the last revision
  /// + 1). A stream silent for `idle_seconds` counts as failed: etcd sends a
  /// progress message after at most two of its
  /// `--experimental-watch-progress-notify-interval` (default 10 min), so run
  /// it with an interval below half of `idle_seconds`, or expect to re-watch.
  /// Blocks; no other call may use this client meanwhile.
  caf::error watch(const std::string& prefix, std::int64_t start_revision,
                   const std::function<bool(const etcd_watch_batch&)>& on_batch,
                   int idle_seconds = 10);

  /// Ends a `watch` (or any call) blocked on another thread: its connection
  /// is shut down and it returns an error. Thread-safe; a call that starts
  /// after this one is not affected.
  void cancel();

private:
  struct impl;
  explicit etcd_client(std::unique_ptr<impl> x);
  std::unique_ptr<impl> impl_;
};

} // namespace keel::cluster
