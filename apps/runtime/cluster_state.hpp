#pragma once

// The private state of a cluster_link (cluster_link.cpp, slot_moves.cpp):
// the messages nodes exchange and the link's threads. Includes CAF.

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>

#include <caf/actor.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/meta/type_name.hpp>
#include <spdlog/spdlog.h>

#include "agent.hpp"
#include "cluster_link.hpp"
#include "group_replication.hpp"
#include "keel/events/error.hpp"
#include "keel/events/ids.hpp"
#include "keel/storage/append.hpp"
#include "keel/storage/kafka.hpp"
#include "metrics.hpp"

namespace keel::actors {
class pipeline;
} // namespace keel::actors

namespace keel::storage {
class event_store;
} // namespace keel::storage

namespace keel::runtime {

using price_atom = caf::atom_constant<caf::atom("kprice")>;
using prices_atom = caf::atom_constant<caf::atom("kprices")>;
using watch_atom = caf::atom_constant<caf::atom("kwatch")>;
using served_atom = caf::atom_constant<caf::atom("kserved")>;
using imported_atom = caf::atom_constant<caf::atom("kimported")>;
using pass_atom = caf::atom_constant<caf::atom("kpass")>;

/// A catalogue entry on the wire.
struct price_update {
  std::string sku;
  std::int64_t price_cents = 0;
  std::string currency;
  std::uint64_t version = 0;
  bool withdrawn = false;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, forwarded_call& x) {
  return f(caf::meta::type_name("keel::forwarded_call"), x.method, x.path, x.segments, x.params,
           x.body, x.authorization, x.remote_addr, x.slot, x.token);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, forwarded_answer& x) {
  return f(caf::meta::type_name("keel::forwarded_answer"), x.status, x.content_type, x.body,
           x.headers);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, price_update& x) {
  return f(caf::meta::type_name("keel::price_update"), x.sku, x.price_cents, x.currency,
           x.version, x.withdrawn);
}

/// One event of a slot's streams as the store holds it (id, time,
/// causation), with its stream and version.
struct slot_event {
  std::string stream;
  std::uint64_t version = 0;
  storage::new_event event;
};

/// Events of `slot`'s streams for the node the slot moves to, in the order
/// of the sender's log (its appends keep that order, so its projections see
/// an order's payment before the order's end, as the sender's did).
struct slot_copy {
  std::uint32_t slot = 0;
  std::vector<slot_event> events;
};

/// The stock level of one SKU, from the node that serves it.
struct level_update {
  std::string sku;
  std::int64_t available = 0;
  std::int64_t updated_us = 0;
};

/// Levels that changed, sent to every other member.
struct stock_levels {
  std::vector<level_update> levels;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, level_update& x) {
  return f(caf::meta::type_name("keel::level_update"), x.sku, x.available, x.updated_us);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stock_levels& x) {
  return f(caf::meta::type_name("keel::stock_levels"), x.levels);
}

/// Sent after the streams of `slot`: the receiver drops what it cached of
/// `skus` (inventory, catalogue) before it serves the slot.
struct slot_imported {
  std::uint32_t slot = 0;
  std::vector<std::string> skus;
};

} // namespace keel::runtime

namespace keel::storage {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, retry_entry& x) {
  return f(caf::meta::type_name("keel::retry_entry"), x.order_id, x.timestamp_us, x.retry_count,
           x.premium, x.correlation_id, x.fallback_reason, x.retry_at_us);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, new_event& x) {
  return f(caf::meta::type_name("keel::new_event"), x.id, x.type, x.schema_version,
           x.timestamp_us, x.correlation_id, x.causation_id, x.payload);
}

} // namespace keel::storage

namespace keel::runtime {

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, slot_event& x) {
  return f(caf::meta::type_name("keel::slot_event"), x.stream, x.version, x.event);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, slot_copy& x) {
  return f(caf::meta::type_name("keel::slot_copy"), x.slot, x.events);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, slot_imported& x) {
  return f(caf::meta::type_name("keel::slot_imported"), x.slot, x.skus);
}

using clock = std::chrono::steady_clock;

/// Work for a thread of the link (a forwarded request, an import).
using job = std::function<void()>;

struct cluster_link::impl {
  cluster_config cfg;
  std::uint32_t slots = 0;
  std::atomic<cluster::agent*> agent{nullptr};
  std::unique_ptr<cluster::agent> agent_owner;
  caf::actor_system* sys = nullptr;
  caf::actor endpoint;
  caf::actor local_inventory;
  actors::catalog* catalog = nullptr;
  actors::pipeline* pipeline = nullptr;
  storage::event_store* store = nullptr;
  std::function<forwarded_answer(const forwarded_call&)> serve;
  int port = 0;

  mutable std::mutex peers_mtx;
  /// Node id -> its endpoint, and the address it was reached at.
  std::map<std::string, std::pair<caf::actor, std::string>> peers;

  std::mutex mtx;
  std::condition_variable cv;
  bool stopping = false;
  bool dirty = true;
  std::thread connector;
  std::deque<job> jobs;
  std::vector<std::thread> workers;

  // Slot moves (slot_moves.cpp).
  std::thread mover;
  mutable std::mutex slots_mtx;
  /// Slots this node holds but no longer takes new work for: they are
  /// moving away (their sagas in flight still reach their stock)...
  std::set<std::uint32_t> frozen;
  /// ...and, while their streams are copied, not even that.
  std::set<std::uint32_t> stock_frozen;
  /// Slots whose orders were re-driven since this node started serving them.
  std::set<std::uint32_t> active;
  /// A move that failed is tried again after this time.
  std::map<std::uint32_t, clock::time_point> retry_at;
  std::atomic<std::uint64_t> moves_out{0};
  std::atomic<std::uint64_t> moves_in{0};
  std::atomic<std::uint64_t> move_failures{0};
  std::atomic<std::uint64_t> streams_sent{0};
  std::atomic<std::uint64_t> events_sent{0};
  histogram move_seconds{{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}};

  std::atomic<std::uint64_t> forwarded{0};
  std::atomic<std::uint64_t> forward_failures{0};
  std::atomic<std::uint64_t> forwarded_in{0};
  std::atomic<std::uint64_t> not_owner{0};
  std::atomic<std::uint64_t> stock_out{0};
  std::atomic<std::uint64_t> stock_in{0};

  // Stock levels for the cache-first check of other nodes' SKUs.
  std::mutex levels_mtx;
  /// Levels of this node's SKUs not sent yet.
  std::map<std::string, level_update> levels_out;
  /// The latest level of each SKU of another node.
  std::map<std::string, level_update> levels_in;
  std::atomic<std::uint64_t> remote_refusals{0};
  histogram forward_seconds{latency_buckets()};

  // Payment retry entries for other nodes' orders (the shared retry topic).
  std::function<void(const storage::retry_entry&)> retry_receiver;
  /// Entries waiting for their owner to be reachable, with their deadlines.
  std::mutex retry_mtx;
  std::deque<std::pair<storage::retry_entry, clock::time_point>> retry_waiting;
  std::atomic<std::uint64_t> retry_passed{0};
  std::atomic<std::uint64_t> retry_dropped{0};
  std::atomic<std::uint64_t> retry_in{0};

  // Replication within the group (group_replication.cpp); null without --group.
  std::unique_ptr<group_replication> replication;
  std::function<bool()> promoted;
  std::function<void(const storage::truncation&)> truncated;
  std::function<storage::outbox_resume(std::uint64_t known)> relayed;
  std::function<void()> demoted;

  std::optional<caf::actor> handle(const std::string& node) const {
    std::lock_guard<std::mutex> guard{peers_mtx};
    auto i = peers.find(node);
    if (i == peers.end())
      return std::nullopt;
    return i->second.first;
  }

  void wake() {
    {
      std::lock_guard<std::mutex> guard{mtx};
      dirty = true;
    }
    cv.notify_all();
  }

  /// A call to `node` failed: drop its handle (the connector connects again).
  void call_failed(const std::string& node, const caf::error& err) {
    spdlog::debug("component=cluster msg=\"call failed\" node={} error=\"{}\"", node,
                  describe(err));
    {
      std::lock_guard<std::mutex> guard{peers_mtx};
      peers.erase(node);
    }
    wake();
  }

  void peer_down(const caf::actor_addr& who) {
    std::string gone;
    {
      std::lock_guard<std::mutex> guard{peers_mtx};
      for (auto i = peers.begin(); i != peers.end(); ++i)
        if (i->second.first.address() == who) {
          gone = i->first;
          peers.erase(i);
          break;
        }
    }
    if (!gone.empty()) {
      spdlog::warn("component=cluster msg=\"connection to a node lost\" node={}", gone);
      wake();
    }
  }

  bool is_frozen(std::uint32_t slot) const {
    std::lock_guard<std::mutex> guard{slots_mtx};
    return frozen.count(slot) != 0;
  }

  /// This node serves `slot` now: it holds it and does not move it away.
  bool serving(std::uint32_t slot, std::int64_t* token = nullptr) const {
    auto* a = agent.load();
    return a != nullptr && a->serves(slot, token) && !is_frozen(slot);
  }

  /// This node serves the stock of `slot`'s SKUs now (also while the slot
  /// waits for its sagas to rest before it moves).
  bool serving_stock(std::uint32_t slot) const {
    auto* a = agent.load();
    if (a == nullptr || !a->serves(slot))
      return false;
    std::lock_guard<std::mutex> guard{slots_mtx};
    return stock_frozen.count(slot) == 0;
  }

  bool enqueue(job j) {
    {
      std::lock_guard<std::mutex> guard{mtx};
      if (stopping || jobs.size() >= cfg.forward_threads * 64)
        return false;
      jobs.push_back(std::move(j));
    }
    cv.notify_all();
    return true;
  }

  void work() {
    std::unique_lock<std::mutex> guard{mtx};
    while (true) {
      cv.wait(guard, [this] { return stopping || !jobs.empty(); });
      if (jobs.empty())
        return; // stopping
      auto j = std::move(jobs.front());
      jobs.pop_front();
      guard.unlock();
      j();
      guard.lock();
    }
  }

  void connect_all();
  void connect_loop();
  /// Sends the waiting retry entries whose owner is reachable now.
  void pass_waiting();
  /// A pass failed: the entry waits again (until its deadline).
  void retry_later(storage::retry_entry e, clock::time_point deadline);

  // slot_moves.cpp
  /// Hands the slots this node holds but the map gives to another node
  /// over to it, one at a time; re-drives the orders of slots it starts to serve.
  void move_loop();
  /// Re-drives the orders of the slots served now that were not before.
  void activate();
  /// Freezes `slot`, waits for its sagas to rest, copies its streams to
  /// `node`, the primary of group `to`, and releases the slot's key to that
  /// group; false (the slot thawed) on failure.
  bool hand_over(std::uint32_t slot, const std::string& to, const std::string& node);
  /// Appends what this store lacks of a slot's copied events, in their
  /// order; the number of events appended.
  caf::expected<std::uint64_t> import(const slot_copy& x);
  /// The end of a slot's import: forgets cached state of its SKUs.
  void imported(const slot_imported& x);
};

} // namespace keel::runtime
