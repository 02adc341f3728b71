#pragma once

// Replication within a group (docs/cluster.md, "Groups"): the primary ships
// every committed batch of its log to a synchronous standby before the batch
// is acknowledged (the store's commit gate), and brings other standbys up to
// date in the background; a standby stores what it is sent at the same
// positions. Private to the runtime; includes CAF.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/meta/type_name.hpp>

#include "agent.hpp"
#include "keel/storage/event_store.hpp"
#include "keel/storage/kafka.hpp"
#include "keel/storage/replication.hpp"
#include "replication_types.hpp"

namespace keel::runtime {

/// Primary -> standby, the first message of a session: the primary's term
/// token, its terms and the last position it published. The standby drops
/// any tail the primary's log does not have and answers its last position.
struct replica_hello {
  std::string group;
  std::string primary;
  std::uint64_t token = 0;
  std::uint64_t last_position = 0;
  std::vector<storage::term> terms;
};

/// Primary -> standby: a batch of the log (answered with the standby's last
/// position), with the primary's last published position and the position
/// its outbox relay delivered up to (a promoted standby resumes there).
struct replica_batch {
  std::string group;
  storage::replicated_batch batch;
  std::uint64_t primary_last = 0;
  std::uint64_t relayed = 0;
  /// The marks the relay saved with `relayed` (sent to each standby once per
  /// position; "" otherwise).
  std::string relay_marks;
};

/// Primary -> standby far behind: fetch checkpoint `id` of the primary's
/// store (its files and sizes; it holds the log up to `position`), then
/// start again on it and follow from there. Answered with `position`.
struct replica_seed_offer {
  std::string group;
  std::string primary;
  std::uint64_t token = 0;
  std::uint64_t position = 0;
  std::string id;
  std::vector<std::string> files;
  std::vector<std::uint64_t> sizes;
};

/// Standby -> primary: a piece of a checkpoint file (answered with its bytes).
struct replica_seed_read {
  std::string group;
  std::string id;
  std::string file;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, replica_seed_offer& x) {
  return f(caf::meta::type_name("keel::replica_seed_offer"), x.group, x.primary, x.token,
           x.position, x.id, x.files, x.sizes);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, replica_seed_read& x) {
  return f(caf::meta::type_name("keel::replica_seed_read"), x.group, x.id, x.file, x.offset,
           x.length);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, replica_hello& x) {
  return f(caf::meta::type_name("keel::replica_hello"), x.group, x.primary, x.token,
           x.last_position, x.terms);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, replica_batch& x) {
  return f(caf::meta::type_name("keel::replica_batch"), x.group, x.batch, x.primary_last,
           x.relayed, x.relay_marks);
}

} // namespace keel::runtime

namespace keel::storage {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, term& x) {
  return f(caf::meta::type_name("keel::term"), x.token, x.first_position);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, replicated_batch& x) {
  return f(caf::meta::type_name("keel::replicated_batch"), x.token, x.first_position, x.records,
           x.terms);
}

} // namespace keel::storage

namespace keel::runtime {

/// One member's replication: primary-side shipping and standby-side storing.
class group_replication {
public:
  /// `handle_of` finds a member's cluster endpoint (a connected peer).
  group_replication(replication_config cfg, caf::actor_system& sys, storage::event_store& store,
                    std::function<cluster::agent*()> agent,
                    std::function<std::optional<caf::actor>(const std::string&)> handle_of);
  ~group_replication();
  group_replication(const group_replication&) = delete;
  group_replication& operator=(const group_replication&) = delete;

  /// The node took its group's leader key with `token`: begins the term in
  /// the store, installs the commit gate and starts shipping. False (logged)
  /// when the store refuses the term.
  bool promote(std::int64_t token);

  /// Standby side: a new primary's session begins (truncates a tail the
  /// primary's log lacks). Returns the store's last position.
  caf::expected<std::uint64_t> on_hello(const replica_hello& h);
  /// Standby side: stores a batch. Returns the store's last position.
  caf::expected<std::uint64_t> on_batch(replica_batch& b);
  /// Standby side: fetches the offered checkpoint on a thread of its own,
  /// then asks the node to start again on it (see `on_demoted`). Returns
  /// the checkpoint's position at once.
  caf::expected<std::uint64_t> on_seed_offer(const replica_seed_offer& o);
  /// Primary side: a piece of the checkpoint a standby fetches.
  caf::expected<std::string> read_seed(const replica_seed_read& r) const;

  /// Runs `job` on the thread that stores what primaries send, in order.
  void submit(std::function<void()> job);

  /// Called with what a truncation removed (the node rebuilds projections).
  void on_truncated(std::function<void(const storage::truncation&)> f);
  /// Where the primary's outbox relay is (shipped with each batch): its
  /// checkpoint, with the marks when it is not `known` (the standby's).
  void relay_position(std::function<storage::outbox_resume(std::uint64_t known)> f);
  /// Called once (on the shipper's thread) when this primary lost its role,
  /// or (on the seeder's) when a standby fetched a checkpoint: the node
  /// starts again as a standby.
  void on_demoted(std::function<void()> f);

  bool is_primary() const noexcept {
    return primary_.load(std::memory_order_acquire);
  }
  /// False while the store lacks part of the group's log - new, wiped or
  /// seeded (`replication_config::seeded`), until it caught up with a
  /// primary or became one (a new group's first member): etcd may name it,
  /// it does not take the role.
  bool may_lead() const noexcept {
    return !incomplete_.load(std::memory_order_acquire);
  }
  replication_figures figures() const;
  const replication_config& config() const noexcept {
    return cfg_;
  }

private:
  struct session {
    std::optional<caf::actor> peer;
    bool greeted = false;
    bool sync = false;
    std::uint64_t acked = 0;
    /// The relay position whose marks this standby has.
    std::uint64_t relay_shipped = 0;
    /// The position of the checkpoint offered to it (0: none it has not
    /// started on yet), and when the last one was offered.
    std::uint64_t seeded_at = 0;
    std::chrono::steady_clock::time_point offered_at{};
  };

  /// The store's commit gate (on the committer's thread): runs `confirm`
  /// on the sender thread, which owns the blocking actor CAF calls need (a
  /// blocking actor left on the committer's thread would keep the actor
  /// system from shutting down).
  caf::error gate(storage::replicated_batch& b);
  caf::error confirm(storage::replicated_batch& b);
  caf::error ship(session& s, const std::string& node, storage::replicated_batch& b,
                  std::chrono::milliseconds timeout);
  caf::error greet(session& s, const std::string& node);
  caf::error catch_up(session& s, const std::string& node, std::uint64_t to,
                      std::chrono::milliseconds timeout);
  void ship_loop();
  bool still_primary() const;
  /// Whether standby `s` is far enough behind for a checkpoint.
  bool wants_seed(const session& s) const;
  /// An error unless `group` is this node's.
  caf::error same_group(const std::string& group) const;
  caf::error offer_seed(session& s, const std::string& node);
  void fetch_seed(replica_seed_offer o);

  replication_config cfg_;
  caf::actor_system& sys_;
  storage::event_store& store_;
  std::function<cluster::agent*()> agent_;
  std::function<std::optional<caf::actor>(const std::string&)> handle_of_;
  std::function<void(const storage::truncation&)> truncated_;
  std::function<storage::outbox_resume(std::uint64_t known)> relayed_;

  std::function<void()> demoted_;
  std::atomic<bool> primary_{false};
  bool demotion_told_ = false;
  std::atomic<std::int64_t> token_{0};
  std::atomic<std::uint64_t> promotions_{0};

  /// Sessions with the standbys, by node; `sync_node_` ("" none) is the
  /// one etcd names. The gate and the shipper share them under `mtx_`.
  mutable std::mutex mtx_;
  std::map<std::string, session> sessions_;
  std::string sync_node_;
  std::int64_t alone_since_us_ = 0;
  std::atomic<std::uint64_t> confirmed_{0};
  std::atomic<std::uint64_t> alone_{0};
  std::atomic<std::uint64_t> gate_timeouts_{0};

  // Standby side.
  mutable std::mutex standby_mtx_;
  std::string following_;
  std::uint64_t primary_last_ = 0;
  std::chrono::steady_clock::time_point contact_{};
  std::uint64_t relay_saved_ = 0;
  std::chrono::steady_clock::time_point relay_saved_at_{};
  std::atomic<std::uint64_t> truncated_events_{0};
  std::atomic<bool> seeding_{false};
  std::atomic<bool> incomplete_{false};
  /// Records that the store lacks part of the log (kept across restarts).
  caf::error mark_incomplete();
  void complete(const char* why);
  std::thread seeder_;
  std::atomic<std::uint64_t> seeds_offered_{0};
  std::atomic<std::uint64_t> seeds_received_{0};

  std::mutex loop_mtx_;
  std::condition_variable loop_cv_;
  bool stopping_ = false;
  std::thread shipper_;

  std::mutex jobs_mtx_;
  std::condition_variable jobs_cv_;
  std::deque<std::function<void()>> jobs_;
  bool jobs_stopping_ = false;
  std::thread storer_;

  // The gate's sender thread.
  std::atomic<bool> closing_{false};
  std::mutex send_mtx_;
  std::condition_variable send_cv_;
  std::function<void()> send_job_;
  bool send_stopping_ = false;
  std::thread sender_;
};

} // namespace keel::runtime
