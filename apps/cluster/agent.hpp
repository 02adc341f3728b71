#pragma once

// A node's part in a cluster: its membership, its view of the cluster fed by
// one etcd watch, the slots it holds, and - while it is the controller - the
// slot map. Key layout (docs/cluster.md):
//
//   /keel/<cluster>/slots/<n>   the node id holding slot n, on that node's lease
//   /keel/<cluster>/data/<n>    the node whose store has slot n's streams
//   /keel/<cluster>/leaving/<id>  a node that hands its slots over before it stops
//
// The map says which node should own a slot; the node named there claims
// the slot by creating its slot key on its own lease (only if absent). The
// key's create revision is the ownership's fencing token: a later holder
// always has a larger one. A node serves a slot only while its membership is
// live and the slot key it created is the one etcd holds; the key goes with
// the lease, so within the lease's TTL (+ etcd's 0.5 s expiry check) of a
// node's loss every other node sees the slot without a holder and answers
// for it with 503 at once.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <caf/expected.hpp>

#include "membership.hpp"
#include "slot_map.hpp"

namespace keel::cluster {

/// The holder of one slot: whose slot key etcd has.
struct slot_holder {
  std::string node;
  /// The key's create revision: the fencing token (0: no holder).
  std::int64_t token = 0;
  std::int64_t lease = 0;
};

/// A group's roles in etcd (docs/cluster.md, "Groups"):
///
///   /keel/<cluster>/groups/<g>/leader  the primary's node id, on its lease;
///                                      its create revision is the term's token
///   /keel/<cluster>/groups/<g>/sync    {"primary","standby"}: the last primary
///                                      and the standby that has every batch it
///                                      acknowledged ("" while it runs alone)
///
/// Only the two nodes the sync key names may take the leader key (with a
/// transaction that checks the sync key did not change since they read it);
/// only the primary writes the sync key (checking it still holds the
/// leader key).
struct group_state {
  slot_holder leader;
  bool sync_exists = false;
  std::string sync_primary;
  std::string sync_standby;
  /// The sync key's mod revision.
  std::int64_t sync_revision = 0;
};

/// What one watch of the cluster's keys shows, at one etcd revision.
struct cluster_view {
  std::int64_t revision = 0;
  std::uint32_t slots = 0;
  slot_map map;
  /// Live members, by node id.
  std::vector<member_info> members;
  /// Per slot (`slots` entries).
  std::vector<slot_holder> holders;
  /// Per slot: the node whose store has the slot's data (empty: never held).
  std::vector<std::string> data_at;
  std::string controller;
  /// Members that leave: the controller moves their slots away.
  std::set<std::string> leaving;
  /// Groups with a leader or sync key, by name.
  std::map<std::string, group_state> groups;

  /// Every slot held by the node the map gives it to (slots of lost
  /// nodes aside): no move is under way.
  bool settled() const;

  const member_info* member(const std::string& id) const;
  /// The live holder of `slot`, if any (a holder whose member is gone is
  /// treated as none: its lease is about to go).
  const member_info* owner(std::uint32_t slot) const;
  /// Slots held by `node`.
  std::size_t held_by(const std::string& node) const;
  /// The group of live member `node` (empty when it is not live).
  std::string group_of(const std::string& node) const;
  /// Whether any member of `group` is live.
  bool group_live(const std::string& group) const;
  /// The live primary of `group` (its leader key's node, if live).
  const member_info* primary(const std::string& group) const;
  /// The groups of the live members, in name order.
  std::vector<std::string> live_groups() const;
};

/// Reads the whole view of `cluster` at one revision.
caf::expected<cluster_view> read_view(etcd_client& etcd, std::string_view cluster);

class agent {
public:
  struct options {
    std::string etcd_url;
    std::string cluster = "keel";
    member_info self;
    /// Slots of a new cluster (ignored when the cluster exists).
    std::uint32_t slots = 64;
    std::int64_t ttl_seconds = 3;
    /// The first map is written once the members stayed the same this long
    /// (so nodes started together share the first map).
    std::chrono::milliseconds settle{2000};
    /// Slots one new map may move (0: a tenth of the slots, at least one).
    std::size_t max_moves = 0;
    /// Called on the watch thread after every change of the view.
    std::function<void(const cluster_view&)> on_change;
    /// Called when the membership is lost and when it is back (live).
    std::function<void(bool live, const std::string& why)> on_membership;
    /// Called on the work thread once this node took its group's leader key
    /// with fencing token `token`, before it claims any slot: the node
    /// prepares to serve as the primary (begins the term in its store).
    /// False: it cannot, and the key is given up again.
    std::function<bool(std::int64_t token)> on_promoted;
    /// Whether this node's store may take a role its group had before: false
    /// while it lacks part of the group's log (new, wiped or seeded, not
    /// caught up yet). A new group's first member takes the role anyway.
    std::function<bool()> may_lead;
  };

  /// Creates the cluster's config if needed, joins (errors as
  /// membership::join) and starts the watch and the work loop.
  static caf::expected<std::unique_ptr<agent>> start(options o);
  /// Stops (without leaving: see `leave`); the lease lapses by itself.
  ~agent();
  agent(const agent&) = delete;
  agent& operator=(const agent&) = delete;

  const std::string& node_id() const noexcept {
    return o_.self.node_id;
  }
  std::uint32_t slots() const noexcept {
    return slots_;
  }
  /// The latest view (never null after `start`).
  std::shared_ptr<const cluster_view> view() const;
  /// Whether the membership is live.
  bool live() const noexcept {
    return live_;
  }
  /// This node's group.
  const std::string& group() const noexcept {
    return o_.self.group;
  }
  /// Whether this node is its group's primary now: its membership is valid
  /// (monotonic clock, see membership::valid) and etcd holds the leader key
  /// it took on its current lease. `token`: the term's fencing token.
  bool primary(std::int64_t* token = nullptr) const;
  /// Primary: names `standby` ("" none: the group runs alone) as the node
  /// with every batch this primary acknowledges, in one transaction that
  /// checks this node still holds the leader key. False when it does not.
  caf::expected<bool> set_sync_standby(const std::string& standby);
  /// Whether this node may serve `slot` now: live, and etcd holds the slot
  /// key this node created on its current lease. `token`: set to the
  /// ownership's fencing token.
  bool serves(std::uint32_t slot, std::int64_t* token = nullptr) const;
  /// Blocks until `pred(view)` holds or `timeout` passed; returns whether it held.
  bool wait_for(const std::function<bool(const cluster_view&)>& pred,
                std::chrono::milliseconds timeout) const;

  /// Deletes the key of `slot` this node created on its current lease and
  /// names `to` as the node with the slot's data, in one compare-and-swap:
  /// `to` claims the slot next. False when the key was not this node's.
  caf::expected<bool> release(std::uint32_t slot, const std::string& to);

  /// Asks the controller to move this node's slots to the others.
  caf::error set_leaving();

  /// Revokes the lease: the member and slot keys go at once; stops.
  void leave();

private:
  explicit agent(options o);
  void watch_loop();
  void watch_rounds();
  void work_loop();
  void publish(std::shared_ptr<cluster_view> v);
  void reconcile();
  caf::error join();
  void claim(const cluster_view& v);
  void elect(const cluster_view& v);
  void control(const cluster_view& v);
  void stop_threads();

  options o_;
  std::uint32_t slots_ = 0;
  std::unique_ptr<etcd_client> watcher_;
  std::unique_ptr<etcd_client> writer_;
  /// Replaced (under `mtx_`) when the node joins again.
  std::shared_ptr<membership> member_;
  std::atomic<std::int64_t> lease_{0};
  std::atomic<bool> live_{false};
  /// The leader key this node took (its create revision), 0: none.
  std::atomic<std::int64_t> leader_token_{0};
  /// The refusal of a role its store could not take was logged.
  std::atomic<bool> refused_told_{false};
  mutable std::mutex mtx_;
  mutable std::condition_variable cv_;
  std::shared_ptr<const cluster_view> view_;
  bool dirty_ = true;
  bool stopping_ = false;
  /// When the member set last changed (for the first map's settle time).
  std::chrono::steady_clock::time_point members_changed_;
  std::atomic<bool> watch_done_{false};
  std::thread watch_thread_;
  std::thread work_thread_;
};

} // namespace keel::cluster
