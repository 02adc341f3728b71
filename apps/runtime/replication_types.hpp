#pragma once

// What a group member's replication is set up with and shows (no CAF here:
// cluster_link.hpp and the HTTP layer include it).

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace keel::runtime {

/// Replication settings of a group member.
struct replication_config {
  std::string group;
  std::string node_id;
  /// Without a synchronous standby writes wait (strict) rather than go on
  /// alone once etcd records that the group runs without one.
  bool strict = false;
  /// How long the primary waits for its synchronous standby's answer (and
  /// writes pause) before it gives up on it.
  std::chrono::milliseconds sync_timeout{500};
  /// Events per catch-up batch.
  std::size_t catch_up_events = 512;
  /// The node's data directory (seeds are written beside it).
  std::string data_dir;
  /// The data directory was just replaced by a checkpoint of the group's
  /// log (it lacks the tail written since).
  bool seeded = false;
  /// A standby further behind than this many events is sent a checkpoint of
  /// the primary's store rather than the log (0: always the log).
  std::uint64_t seed_after_events = 100000;
};

/// What the replication of one member shows (metrics, /health, keel-inspect).
struct replication_figures {
  bool primary = false;
  std::int64_t token = 0;
  /// Primary: the node named synchronous standby ("" while alone) and since
  /// when it writes alone (0: not alone).
  std::string sync_standby;
  std::int64_t alone_since_us = 0;
  struct standby {
    std::string node;
    std::uint64_t acknowledged = 0;
    std::uint64_t lag_events = 0;
    bool sync = false;
    bool connected = false;
  };
  std::vector<standby> standbys;
  /// Batches confirmed by a standby, written alone, and the gate's waits.
  std::uint64_t batches_confirmed = 0;
  std::uint64_t batches_alone = 0;
  std::uint64_t gate_timeouts = 0;
  /// Standby: the primary it follows, its last known position and how long
  /// ago it was heard from (seconds; -1: never).
  std::string following;
  std::uint64_t primary_last = 0;
  std::uint64_t lag_events = 0;
  double since_contact_seconds = -1;
  /// Events removed from this store's tail when it rejoined.
  std::uint64_t truncated_events = 0;
  std::uint64_t promotions = 0;
  /// Checkpoints offered to standbys far behind (primary) and adopted
  /// (standby, counted before it starts again on one).
  std::uint64_t seeds_offered = 0;
  std::uint64_t seeds_received = 0;
  /// The store lacks part of the group's log (it may not take the role).
  bool incomplete = false;
};

} // namespace keel::runtime
