#include "cluster_link.hpp"
#include "cluster_state.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/stateful_actor.hpp>
#include <spdlog/spdlog.h>

#include "agent.hpp"
#include "keel/actors/catalog.hpp"
#include "keel/actors/messages.hpp"
#include "keel/actors/pipeline.hpp"
#include "keel/events/error.hpp"
#include "keel/projections/stock_cache.hpp"
#include "metrics.hpp"
#include "pipeline_call.hpp"

namespace keel::runtime {

namespace {

bool split_host_port(const std::string& text, std::string& host, std::uint16_t& port) {
  auto colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return false;
  host = text.substr(0, colon);
  auto p = std::strtoul(text.c_str() + colon + 1, nullptr, 10);
  if (p == 0 || p > 65535)
    return false;
  port = static_cast<std::uint16_t>(p);
  return true;
}

/// Sends `cmd` on to `dest` and answers with its answer (or error).
template <class Self, class Cmd, class Timeout>
caf::result<actors::stock_reply> relay(Self* self, const caf::actor& dest, Timeout timeout,
                                       Cmd& cmd,
                                       std::function<void(const caf::error&)> failed = {}) {
  auto rp = self->template make_response_promise<actors::stock_reply>();
  self->request(dest, timeout, std::move(cmd))
    .then([rp](actors::stock_reply& r) mutable { rp.deliver(std::move(r)); },
          [rp, failed](caf::error& err) mutable {
            if (failed)
              failed(err);
            rp.deliver(std::move(err));
          });
  return rp;
}

struct endpoint_state {
  std::uint64_t next_id = 0;
  std::unordered_map<std::uint64_t, caf::typed_response_promise<forwarded_answer>> pending;
  std::unordered_map<std::uint64_t, caf::typed_response_promise<std::uint64_t>> imports;
  static inline const char* name = "cluster-endpoint";
};

template <class Cmd>
caf::result<actors::stock_reply> stock_from_peer(caf::stateful_actor<endpoint_state>* self,
                                                 cluster_link::impl* link, Cmd& cmd) {
  if (cmd.lines.empty())
    return make_error(errc::invalid_argument, "a stock request without lines");
  auto slot = cluster::slot_of(cmd.lines.front().sku, link->slots);
  if (!link->serving_stock(slot)) {
    link->not_owner.fetch_add(1, std::memory_order_relaxed);
    return make_error(errc::not_owner, "node " + link->cfg.node_id + " does not serve slot "
                                         + std::to_string(slot) + " (SKU "
                                         + cmd.lines.front().sku + ")");
  }
  link->stock_in.fetch_add(1, std::memory_order_relaxed);
  return relay(self, link->local_inventory, caf::infinite, cmd);
}

/// Runs `f` (storing what a primary sent) on the replication's own thread,
/// in arrival order, and answers with the store's last position.
template <class F>
caf::result<std::uint64_t> on_replica(caf::stateful_actor<endpoint_state>* self,
                                      cluster_link::impl* link, F f) {
  if (!link->replication)
    return make_error(errc::invalid_argument,
                      "node " + link->cfg.node_id + " does not replicate a group (no --group)");
  auto id = ++self->state.next_id;
  auto rp = self->make_response_promise<std::uint64_t>();
  caf::actor me{self};
  link->replication->submit([me, id, f = std::move(f)]() mutable {
    auto v = f();
    if (v)
      caf::anon_send(me, imported_atom::value, id, *v);
    else
      caf::anon_send(me, imported_atom::value, id, v.error());
  });
  self->state.imports.emplace(id, rp);
  return rp;
}

caf::behavior endpoint(caf::stateful_actor<endpoint_state>* self, cluster_link::impl* link) {
  self->set_down_handler([link](caf::down_msg& m) { link->peer_down(m.source); });
  return {
    [=](events::reserve_stock& cmd) { return stock_from_peer(self, link, cmd); },
    [=](events::release_stock& cmd) { return stock_from_peer(self, link, cmd); },
    [=](events::commit_stock& cmd) { return stock_from_peer(self, link, cmd); },
    [=](forwarded_call& call) -> caf::result<forwarded_answer> {
      link->forwarded_in.fetch_add(1, std::memory_order_relaxed);
      auto id = ++self->state.next_id;
      auto rp = self->make_response_promise<forwarded_answer>();
      caf::actor me{self};
      auto run = [link, me, id, call = std::move(call)] {
        caf::anon_send(me, served_atom::value, id, link->serve(call));
      };
      if (!link->enqueue(std::move(run)))
        return forwarded_answer{503, "application/json",
                                R"({"error":"overloaded","message":"this node's forwarding )"
                                R"(queue is full","field":null})",
                                {{"Retry-After", "1"}}};
      self->state.pending.emplace(id, rp);
      return rp;
    },
    [=](served_atom, std::uint64_t id, forwarded_answer& answer) {
      auto i = self->state.pending.find(id);
      if (i == self->state.pending.end())
        return;
      i->second.deliver(std::move(answer));
      self->state.pending.erase(i);
    },
    [=](slot_copy& x) -> caf::result<std::uint64_t> {
      // Appending blocks (fsync): on the link's threads, not this actor's.
      auto id = ++self->state.next_id;
      auto rp = self->make_response_promise<std::uint64_t>();
      caf::actor me{self};
      auto run = [link, me, id, x = std::move(x)] {
        auto v = link->import(x);
        if (v)
          caf::anon_send(me, imported_atom::value, id, *v);
        else
          caf::anon_send(me, imported_atom::value, id, v.error());
      };
      if (!link->enqueue(std::move(run)))
        return make_error(errc::overloaded, "node " + link->cfg.node_id + ": queue full");
      self->state.imports.emplace(id, rp);
      return rp;
    },
    [=](replica_hello& h) -> caf::result<std::uint64_t> {
      return on_replica(self, link, [link, h = std::move(h)] {
        return link->replication->on_hello(h);
      });
    },
    [=](replica_batch& b) -> caf::result<std::uint64_t> {
      return on_replica(self, link, [link, b = std::move(b)]() mutable {
        return link->replication->on_batch(b);
      });
    },
    [=](replica_seed_offer& o) -> caf::result<std::uint64_t> {
      return on_replica(self, link, [link, o = std::move(o)] {
        return link->replication->on_seed_offer(o);
      });
    },
    [=](replica_seed_read& r) -> caf::result<std::string> {
      // A piece of at most 4 MiB from a file of the page cache: read here.
      if (!link->replication)
        return make_error(errc::invalid_argument,
                          "node " + link->cfg.node_id + " does not replicate a group (no --group)");
      auto piece = link->replication->read_seed(r);
      if (!piece)
        return std::move(piece.error());
      return std::move(*piece);
    },
    [=](imported_atom, std::uint64_t id, std::uint64_t version) {
      if (auto i = self->state.imports.find(id); i != self->state.imports.end()) {
        i->second.deliver(version);
        self->state.imports.erase(i);
      }
    },
    [=](imported_atom, std::uint64_t id, caf::error& err) {
      if (auto i = self->state.imports.find(id); i != self->state.imports.end()) {
        i->second.deliver(std::move(err));
        self->state.imports.erase(i);
      }
    },
    [=](slot_imported& x) {
      // The inventory drops what it cached of the slot's SKUs (a request:
      // its answer must not come back to the supervisor as a message).
      for (auto& sku : x.skus)
        self->request(link->local_inventory, caf::infinite, actors::forget_atom::value, sku)
          .then([](actors::stock_reply&) {},
                [sku](caf::error& err) {
                  spdlog::error("component=cluster msg=\"the inventory did not drop a moved "
                                "SKU\" sku={} error=\"{}\"",
                                sku, describe(err));
                });
      link->imported(x);
      return true;
    },
    [=](stock_levels& x) {
      std::lock_guard<std::mutex> guard{link->levels_mtx};
      for (auto& l : x.levels) {
        auto& known = link->levels_in[l.sku];
        if (l.updated_us >= known.updated_us)
          known = l;
      }
    },
    [=](price_atom, price_update& u) {
      if (link->catalog != nullptr)
        link->catalog->mirror({u.sku, u.price_cents, u.currency, u.version}, u.withdrawn);
    },
    [=](prices_atom) {
      // Every entry this node knows (its own and its copies): a node that
      // missed an update while disconnected gets it here, and a copy never
      // replaces a newer version.
      std::vector<price_update> out;
      if (link->catalog != nullptr)
        for (auto& [e, withdrawn] : link->catalog->entries())
          out.push_back({e.sku, e.price_cents, e.currency, e.version, withdrawn});
      return out;
    },
    [=](watch_atom, caf::actor& peer) { self->monitor(peer); },
    [=](storage::retry_entry& e) -> caf::result<bool> {
      // Another node read it from the shared topic; checked here, by the
      // order's owner (on the link's threads: the check reads the store).
      if (!link->serving(cluster::slot_of(e.order_id, link->slots)))
        return make_error(errc::not_owner, "node " + link->cfg.node_id
                                              + " does not serve order " + e.order_id);
      if (!link->retry_receiver)
        return make_error(errc::unavailable,
                          "node " + link->cfg.node_id + " runs without a retry topic");
      if (!link->enqueue([link, e = std::move(e)] { link->retry_receiver(e); }))
        return make_error(errc::overloaded, "node " + link->cfg.node_id + ": queue full");
      link->retry_in.fetch_add(1, std::memory_order_relaxed);
      return true;
    },
    [=](pass_atom, storage::retry_entry& e, const std::string& node, std::int64_t deadline) {
      auto until = clock::time_point{clock::duration{deadline}};
      auto peer = link->handle(node);
      if (!peer) {
        link->retry_later(std::move(e), until);
        return;
      }
      self->request(*peer, link->cfg.call_timeout, e)
        .then([link](bool) { link->retry_passed.fetch_add(1, std::memory_order_relaxed); },
              [link, e, node, until](caf::error& err) mutable {
                if (code_of(err) != errc::not_owner && code_of(err) != errc::overloaded)
                  link->call_failed(node, err);
                link->retry_later(std::move(e), until);
              });
    },
  };
}

/// What sagas send stock requests to: the local inventory for the slots
/// served here, the owner's endpoint for the others (with a timeout; a
/// failure is an error the saga retries after a backoff).
template <class Cmd>
caf::result<actors::stock_reply> route_stock(caf::event_based_actor* self,
                                             cluster_link::impl* link,
                                             const caf::actor& local, Cmd& cmd) {
  if (cmd.lines.empty())
    return relay(self, local, caf::infinite, cmd);
  auto slot = cluster::slot_of(cmd.lines.front().sku, link->slots);
  auto* a = link->agent.load();
  if (a == nullptr)
    return make_error(errc::unavailable, "the node has not joined its cluster yet");
  if (link->serving_stock(slot))
    return relay(self, local, caf::infinite, cmd); // a fenced store refuses a demoted primary's
  // A saga of a primary that lost its role (frozen past its lease, cut off)
  // sends nothing to another group: its group's new primary re-drives the
  // saga from the acknowledged log, and a request from the old one would
  // act twice (a reservation after the order's stock was committed never
  // ends). Checked here, on the remote path only: the local one stays free
  // of the agent's lock.
  if (link->replication && !(link->replication->is_primary() && a->primary()))
    return make_error(errc::unavailable, "node " + link->cfg.node_id
                                           + " is no longer its group's primary: its sagas "
                                             "send no stock requests");
  auto v = a->view();
  auto* owner = v->owner(slot);
  if (owner == nullptr)
    return make_error(errc::unavailable, "no node serves slot " + std::to_string(slot));
  if (owner->node_id == link->cfg.node_id)
    return make_error(errc::unavailable, "slot " + std::to_string(slot) + " is moving away");
  auto peer = link->handle(owner->node_id);
  if (!peer) {
    link->wake();
    return make_error(errc::unavailable, "no connection to node " + owner->node_id);
  }
  link->stock_out.fetch_add(1, std::memory_order_relaxed);
  return relay(self, *peer, link->cfg.call_timeout, cmd,
               [link, node = owner->node_id](const caf::error& err) {
                 if (code_of(err) != errc::not_owner)
                   link->call_failed(node, err);
               });
}

caf::behavior stock_front(caf::event_based_actor* self, cluster_link::impl* link,
                          caf::actor local) {
  return {
    [=](events::reserve_stock& cmd) { return route_stock(self, link, local, cmd); },
    [=](events::release_stock& cmd) { return route_stock(self, link, local, cmd); },
    [=](events::commit_stock& cmd) { return route_stock(self, link, local, cmd); },
  };
}

} // namespace

void cluster_link::impl::connect_all() {
  auto* a = agent.load();
  if (a == nullptr)
    return;
  auto v = a->view();
  {
    // Members that left or were lost: drop their handles.
    std::lock_guard<std::mutex> guard{peers_mtx};
    for (auto i = peers.begin(); i != peers.end();)
      i = v->member(i->first) == nullptr ? peers.erase(i) : std::next(i);
  }
  for (auto& m : v->members) {
    if (m.node_id == cfg.node_id)
      continue;
    {
      std::lock_guard<std::mutex> guard{peers_mtx};
      auto i = peers.find(m.node_id);
      if (i != peers.end() && i->second.second == m.cluster_listen)
        continue;
    }
    std::string host;
    std::uint16_t p = 0;
    if (!split_host_port(m.cluster_listen, host, p)) {
      spdlog::error("component=cluster msg=\"member with a bad address\" node={} address={}",
                    m.node_id, m.cluster_listen);
      continue;
    }
    auto h = sys->middleman().remote_actor(host, p);
    if (!h) {
      spdlog::debug("component=cluster msg=\"connect failed\" node={} address={} error=\"{}\"",
                    m.node_id, m.cluster_listen, sys->render(h.error()));
      continue;
    }
    caf::anon_send(endpoint, watch_atom::value, *h);
    {
      std::lock_guard<std::mutex> guard{peers_mtx};
      peers[m.node_id] = {*h, m.cluster_listen};
    }
    spdlog::info("component=cluster msg=\"connected\" node={} address={}", m.node_id,
                 m.cluster_listen);
    // Its catalogue entries (later changes come as they happen).
    auto prices = call<std::vector<price_update>>(*sys, *h, cfg.call_timeout, prices_atom::value);
    if (prices && catalog != nullptr)
      for (auto& u : *prices)
        catalog->mirror({u.sku, u.price_cents, u.currency, u.version}, u.withdrawn);
  }
}

void cluster_link::impl::retry_later(storage::retry_entry e, clock::time_point deadline) {
  std::lock_guard<std::mutex> guard{retry_mtx};
  retry_waiting.emplace_back(std::move(e), deadline);
}

void cluster_link::impl::pass_waiting() {
  std::deque<std::pair<storage::retry_entry, clock::time_point>> batch;
  {
    std::lock_guard<std::mutex> guard{retry_mtx};
    batch.swap(retry_waiting);
  }
  if (batch.empty())
    return;
  auto* a = agent.load();
  auto v = a != nullptr ? a->view() : nullptr;
  auto now = clock::now();
  std::deque<std::pair<storage::retry_entry, clock::time_point>> keep;
  for (auto& [e, deadline] : batch) {
    if (now > deadline) {
      retry_dropped.fetch_add(1, std::memory_order_relaxed);
      spdlog::warn("component=cluster msg=\"payment retry entry dropped: its order's owner was "
                   "not reachable; the owner re-parks the order when it serves it again\" "
                   "order_id={}",
                   e.order_id);
      continue;
    }
    auto slot = cluster::slot_of(e.order_id, slots);
    if (serving(slot)) { // the slot came here meanwhile
      auto here = [this, e] {
        retry_in.fetch_add(1, std::memory_order_relaxed);
        retry_receiver(e);
      };
      if (!retry_receiver || !enqueue(here))
        keep.emplace_back(std::move(e), deadline);
      continue;
    }
    auto* owner = v != nullptr ? v->owner(slot) : nullptr;
    if (owner == nullptr || owner->node_id == cfg.node_id || !handle(owner->node_id)) {
      keep.emplace_back(std::move(e), deadline);
      continue;
    }
    caf::anon_send(endpoint, pass_atom::value, std::move(e), owner->node_id,
                   static_cast<std::int64_t>(deadline.time_since_epoch().count()));
  }
  if (!keep.empty()) {
    std::lock_guard<std::mutex> guard{retry_mtx};
    for (auto i = keep.rbegin(); i != keep.rend(); ++i)
      retry_waiting.push_front(std::move(*i));
  }
}

void cluster_link::impl::connect_loop() {
  std::unique_lock<std::mutex> guard{mtx};
  while (!stopping) {
    cv.wait_for(guard, std::chrono::milliseconds(500), [this] { return stopping || dirty; });
    if (stopping)
      break;
    dirty = false;
    guard.unlock();
    stock_levels out;
    {
      std::lock_guard<std::mutex> g{levels_mtx};
      for (auto& kv : levels_out)
        out.levels.push_back(std::move(kv.second));
      levels_out.clear();
    }
    if (!out.levels.empty()) {
      std::lock_guard<std::mutex> g{peers_mtx};
      for (auto& kv : peers)
        caf::anon_send(kv.second.first, out);
    }
    connect_all();
    pass_waiting();
    guard.lock();
  }
  guard.unlock();
  drop_caller();
}

namespace {

/// Calls `f` (which talks to etcd) until it succeeds or fails for another
/// reason than etcd not answering: a node may start, or start again after
/// losing its primary role, while etcd is down, and waits for it as it
/// would for etcd to come back later (`cfg.etcd_wait`; a SIGTERM ends it).
template <class F>
auto while_etcd_down(const cluster_config& cfg, F f) -> decltype(f()) {
  auto began = std::chrono::steady_clock::now();
  auto next_note = began;
  auto r = f();
  while (!r && code_of(r.error()) == errc::storage_failure) {
    auto now = std::chrono::steady_clock::now();
    if (cfg.etcd_wait.count() >= 0 && now - began >= cfg.etcd_wait)
      return make_error(errc::unavailable, "etcd did not answer for "
                                             + std::to_string(cfg.etcd_wait.count() / 1000)
                                             + " s: " + describe(r.error()));
    if (cfg.keep_waiting && !cfg.keep_waiting())
      return make_error(errc::unavailable, "stopped while waiting for etcd");
    if (now >= next_note) {
      spdlog::warn("component=cluster msg=\"waiting for etcd\" waited_s={} error=\"{}\"",
                   std::chrono::duration_cast<std::chrono::seconds>(now - began).count(),
                   describe(r.error()));
      next_note = now + std::chrono::seconds{5};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{250});
    r = f();
  }
  return r;
}

} // namespace

cluster_link::cluster_link(std::unique_ptr<impl> x) : impl_(std::move(x)) {
}

cluster_link::~cluster_link() {
  stop();
}

caf::expected<std::unique_ptr<cluster_link>> cluster_link::open(cluster_config cfg) {
  auto x = std::make_unique<impl>();
  x->cfg = std::move(cfg);
  auto etcd = while_etcd_down(x->cfg, [&x] {
    auto c = cluster::etcd_client::connect(x->cfg.etcd);
    if (c) {
      // Connecting does not reach etcd yet: a read does.
      if (auto members = cluster::list_members(**c, x->cfg.cluster); !members)
        return caf::expected<std::unique_ptr<cluster::etcd_client>>{members.error()};
    }
    return c;
  });
  if (!etcd)
    return etcd.error();
  // Refused here already, before the store opens; joining checks it again
  // atomically. A member record of this id whose lease etcd still keeps may
  // be this node's own, from before it crashed or started again (etcd
  // renews every lease when it restarts): it is gone within one TTL unless
  // another process renews it.
  auto twin_deadline = std::chrono::steady_clock::now()
                       + std::chrono::seconds{x->cfg.ttl_seconds} + std::chrono::seconds{1};
  for (bool told = false;;) {
    auto twin = cluster::list_members(**etcd, x->cfg.cluster);
    if (!twin)
      return twin.error();
    auto held = std::find_if(twin->begin(), twin->end(),
                             [&](auto& m) { return m.node_id == x->cfg.node_id; });
    if (held == twin->end())
      break;
    if (std::chrono::steady_clock::now() >= twin_deadline)
      return make_error(errc::invalid_argument,
                        "node id " + held->node_id + " is held by a live member of cluster "
                          + x->cfg.cluster + " (at " + held->cluster_listen
                          + "); two processes never share one");
    if (!told) {
      told = true;
      spdlog::warn("component=cluster msg=\"this node id has a live member record; waiting "
                   "one lease for it to lapse\" node={} at={}",
                   held->node_id, held->cluster_listen);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{250});
  }
  auto slots = cluster::ensure_config(**etcd, x->cfg.cluster, x->cfg.slots);
  if (!slots)
    return slots.error();
  x->slots = *slots;
  return std::unique_ptr<cluster_link>{new cluster_link(std::move(x))};
}

const cluster_config& cluster_link::config() const noexcept {
  return impl_->cfg;
}

std::uint32_t cluster_link::slots() const noexcept {
  return impl_->slots;
}

void cluster_link::configure(caf::actor_system_config& cfg) {
  cfg.load<caf::io::middleman>();
  // A silent peer (frozen, partitioned) is seen within a second; CAF 0.17
  // sends no heartbeats unless asked.
  cfg.set("middleman.heartbeat-interval", caf::timespan{std::chrono::milliseconds(250)});
  cfg.set("middleman.connection-timeout", caf::timespan{std::chrono::seconds(1)});
  cfg.set("middleman.app-identifiers", std::vector<std::string>{"keel-1"});
  cfg.add_message_type<forwarded_call>("keel::forwarded_call");
  cfg.add_message_type<forwarded_answer>("keel::forwarded_answer");
  cfg.add_message_type<price_update>("keel::price_update");
  cfg.add_message_type<std::vector<price_update>>("keel::price_updates");
  cfg.add_message_type<slot_copy>("keel::slot_copy");
  cfg.add_message_type<slot_imported>("keel::slot_imported");
  cfg.add_message_type<stock_levels>("keel::stock_levels");
  cfg.add_message_type<storage::retry_entry>("keel::retry_entry");
  cfg.add_message_type<replica_hello>("keel::replica_hello");
  cfg.add_message_type<replica_seed_offer>("keel::replica_seed_offer");
  cfg.add_message_type<replica_seed_read>("keel::replica_seed_read");
  cfg.add_message_type<replica_batch>("keel::replica_batch");
}

std::function<caf::actor(caf::actor_system&, const caf::actor&)> cluster_link::inventory_front() {
  return [x = impl_.get()](caf::actor_system& sys, const caf::actor& local) {
    return sys.spawn(stock_front, x, local);
  };
}

caf::error cluster_link::start(caf::actor_system& sys, actors::pipeline& pipeline,
                               storage::event_store& store, actors::catalog* catalog,
                               std::function<forwarded_answer(const forwarded_call&)> serve,
                               const std::string& http) {
  auto& x = *impl_;
  x.sys = &sys;
  x.pipeline = &pipeline;
  x.store = &store;
  x.local_inventory = pipeline.inventory();
  x.catalog = catalog;
  x.serve = std::move(serve);
  if (!x.cfg.group.empty()) {
    replication_config rc;
    rc.group = x.cfg.group;
    rc.node_id = x.cfg.node_id;
    rc.strict = x.cfg.strict_sync;
    rc.sync_timeout = x.cfg.sync_timeout;
    rc.data_dir = x.cfg.data_dir;
    rc.seed_after_events = x.cfg.seed_after_events;
    rc.seeded = x.cfg.seeded;
    x.replication = std::make_unique<group_replication>(
      rc, sys, store, [&x] { return x.agent.load(); },
      [&x](const std::string& node) { return x.handle(node); });
    x.replication->on_truncated([&x](const storage::truncation& t) {
      if (x.truncated)
        x.truncated(t);
    });
    x.replication->relay_position([&x](std::uint64_t known) {
      return x.relayed ? x.relayed(known) : storage::outbox_resume{known, {}};
    });
    x.replication->on_demoted([&x] {
      if (x.demoted)
        x.demoted();
    });
  }
  x.endpoint = sys.spawn(endpoint, &x);
  auto bound = sys.middleman().publish(x.endpoint, static_cast<std::uint16_t>(x.cfg.listen_port),
                                       x.cfg.listen_host.c_str(), true);
  if (!bound)
    return make_error(errc::invalid_argument, "--cluster-listen " + x.cfg.listen_host + ":"
                                                + std::to_string(x.cfg.listen_port) + ": "
                                                + sys.render(bound.error()));
  x.port = *bound;
  for (std::size_t i = 0; i < x.cfg.forward_threads; ++i)
    x.workers.emplace_back([&x] { x.work(); });
  cluster::agent::options o;
  o.etcd_url = x.cfg.etcd;
  o.cluster = x.cfg.cluster;
  o.self = {x.cfg.node_id, http, x.cfg.listen_host + ":" + std::to_string(x.port), x.cfg.group};
  o.on_promoted = [&x](std::int64_t token) {
    if (x.replication && !x.replication->promote(token))
      return false;
    return x.promoted ? x.promoted() : true;
  };
  o.may_lead = [&x] { return !x.replication || x.replication->may_lead(); };
  o.slots = x.slots;
  o.ttl_seconds = x.cfg.ttl_seconds;
  o.settle = x.cfg.settle;
  o.on_change = [&x](const cluster::cluster_view&) { x.wake(); };
  auto a = while_etcd_down(x.cfg, [&o] { return cluster::agent::start(o); });
  if (!a)
    return a.error();
  x.agent_owner = std::move(*a);
  x.agent = x.agent_owner.get();
  x.connector = std::thread{[&x] { x.connect_loop(); }};
  x.mover = std::thread{[&x] { x.move_loop(); }};
  spdlog::info("component=cluster msg=\"joined\" cluster={} node={} endpoint={}:{} slots={}",
               x.cfg.cluster, x.cfg.node_id, x.cfg.listen_host, x.port, x.slots);
  return caf::error{};
}

int cluster_link::port() const noexcept {
  return impl_->port;
}

bool cluster_link::owns_order(const std::string& order_id) const {
  return impl_->serving(cluster::slot_of(order_id, impl_->slots));
}

std::size_t cluster_link::hand_over_all(std::chrono::milliseconds timeout) {
  auto* a = impl_->agent.load();
  if (a == nullptr)
    return 0;
  if (other_members().empty()) {
    spdlog::warn("component=cluster msg=\"leaving: no other member to take the slots; they "
                 "wait for this node\" slots={}",
                 a->view()->held_by(impl_->cfg.node_id));
    return a->view()->held_by(impl_->cfg.node_id);
  }
  if (auto err = a->set_leaving()) {
    spdlog::error("component=cluster msg=\"cannot mark this node as leaving\" error=\"{}\"",
                  describe(err));
    return a->view()->held_by(impl_->cfg.node_id);
  }
  spdlog::info("component=cluster msg=\"leaving: handing the slots over\" slots={}",
               a->view()->held_by(impl_->cfg.node_id));
  auto me = impl_->cfg.node_id;
  a->wait_for([&](const cluster::cluster_view& v) { return v.held_by(me) == 0; }, timeout);
  auto left = a->view()->held_by(me);
  spdlog::info("component=cluster msg=\"left\" slots_still_here={}", left);
  return left;
}

std::uint32_t cluster_link::slot_of(std::string_view key) const noexcept {
  return cluster::slot_of(key, impl_->slots);
}

slot_route cluster_link::route_of(std::string_view key) const {
  slot_route r;
  r.slot = cluster::slot_of(key, impl_->slots);
  auto* a = impl_->agent.load();
  if (a == nullptr)
    return r;
  if (impl_->serving(r.slot, &r.token)) {
    r.where = slot_route::kind::local;
    return r;
  }
  auto v = a->view();
  auto* owner = v->owner(r.slot);
  if (owner != nullptr && owner->node_id != impl_->cfg.node_id) { // not while moving from here
    r.where = slot_route::kind::remote;
    r.node = owner->node_id;
    r.token = v->holders[r.slot].token;
  }
  return r;
}

std::vector<std::uint32_t> cluster_link::data_slots() const {
  auto v = view();
  std::vector<std::uint32_t> out;
  auto* a = impl_->agent.load();
  const auto& group = a != nullptr ? a->group() : impl_->cfg.node_id;
  for (std::uint32_t s = 0; s < v->slots && s < v->data_at.size(); ++s)
    if (v->data_at[s] == group)
      out.push_back(s);
  return out;
}

bool cluster_link::serves(std::uint32_t slot, std::int64_t token) const {
  std::int64_t held = 0;
  return impl_->serving(slot, &held) && (token == 0 || token == held);
}

caf::expected<forwarded_answer> cluster_link::forward(const slot_route& r, forwarded_call c) {
  auto& x = *impl_;
  auto peer = x.handle(r.node);
  if (!peer) {
    x.wake();
    return make_error(errc::unavailable, "no connection to node " + r.node + ", owner of slot "
                                           + std::to_string(r.slot));
  }
  c.slot = r.slot;
  c.token = r.token;
  x.forwarded.fetch_add(1, std::memory_order_relaxed);
  auto t0 = clock::now();
  // The owner's connection lost while the call waits (it was SIGKILLed,
  // say): answer at once rather than after call_timeout.
  auto connected = [&x, &r, &peer] {
    auto now = x.handle(r.node);
    return now && *now == *peer;
  };
  auto answer = call_while<forwarded_answer>(*x.sys, *peer, x.cfg.call_timeout, connected,
                                             std::chrono::milliseconds{20}, std::move(c));
  if (answer)
    x.forward_seconds.observe(std::chrono::duration<double>(clock::now() - t0).count());
  if (!answer) {
    x.forward_failures.fetch_add(1, std::memory_order_relaxed);
    x.call_failed(r.node, answer.error());
    return make_error(errc::unavailable, "node " + r.node + ", owner of slot "
                                           + std::to_string(r.slot) + ", did not answer: "
                                           + x.sys->render(answer.error()));
  }
  return answer;
}

void cluster_link::stock_changed(const std::string& sku, std::int64_t available,
                                 std::int64_t updated_us) {
  auto& x = *impl_;
  if (!x.serving_stock(cluster::slot_of(sku, x.slots)))
    return;
  {
    std::lock_guard<std::mutex> guard{x.levels_mtx};
    x.levels_out[sku] = {sku, available, updated_us};
  }
  x.wake();
}

caf::error
cluster_link::check_remote_stock(const std::vector<std::pair<std::string, std::uint32_t>>& lines) {
  auto& x = *impl_;
  std::lock_guard<std::mutex> guard{x.levels_mtx};
  for (auto& [sku, quantity] : lines) {
    auto i = x.levels_in.find(sku);
    if (i == x.levels_in.end() || i->second.available >= static_cast<std::int64_t>(quantity))
      continue;
    x.remote_refusals.fetch_add(1, std::memory_order_relaxed);
    return projections::short_of_stock(sku, quantity, i->second.available);
  }
  return caf::error{};
}

void cluster_link::publish_price(const actors::catalog_entry& e, bool withdrawn) {
  auto& x = *impl_;
  price_update u{e.sku, e.price_cents, e.currency, e.version, withdrawn};
  std::lock_guard<std::mutex> guard{x.peers_mtx};
  for (auto& kv : x.peers)
    caf::anon_send(kv.second.first, price_atom::value, u);
}

void cluster_link::on_retry_entry(std::function<void(const storage::retry_entry&)> receiver) {
  impl_->retry_receiver = std::move(receiver);
}

void cluster_link::pass_retry(const storage::retry_entry& e) {
  constexpr std::size_t most_waiting = 100000;
  auto& x = *impl_;
  {
    std::lock_guard<std::mutex> guard{x.retry_mtx};
    if (x.retry_waiting.size() >= most_waiting) {
      x.retry_dropped.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    x.retry_waiting.emplace_back(e, clock::now() + x.cfg.retry_pass_patience);
  }
  x.wake();
}

std::vector<std::string> cluster_link::other_members() const {
  std::vector<std::string> out;
  for (auto& m : view()->members)
    if (m.node_id != impl_->cfg.node_id)
      out.push_back(m.node_id);
  return out;
}

std::vector<std::vector<std::string>> cluster_link::gather_plan(bool own_ok) const {
  auto v = view();
  auto* a = impl_->agent.load();
  const auto& me = impl_->cfg.node_id;
  const auto& mine = a != nullptr ? a->group() : me;
  std::map<std::string, std::vector<std::string>> by_group;
  by_group[mine];
  for (auto& m : v->members)
    if (m.node_id != me)
      by_group[m.group.empty() ? m.node_id : m.group].push_back(m.node_id);
  std::vector<std::vector<std::string>> out;
  for (auto& [group, nodes] : by_group) {
    auto g = v->groups.find(group);
    auto leader = g != v->groups.end() ? g->second.leader.node : std::string{};
    std::stable_partition(nodes.begin(), nodes.end(),
                          [&](const std::string& n) { return n == leader; });
    if (group == mine) {
      if (own_ok || primary() || leader.empty() || leader == me)
        nodes.clear();
      else
        nodes.erase(std::remove_if(nodes.begin(), nodes.end(),
                                   [&](const std::string& n) { return n != leader; }),
                    nodes.end());
      nodes.push_back(""); // this node's own store
    }
    out.push_back(std::move(nodes));
  }
  return out;
}

bool cluster_link::live() const {
  auto* a = impl_->agent.load();
  return a != nullptr && a->live();
}

bool cluster_link::is_connected(const std::string& node) const {
  return impl_->handle(node).has_value();
}

bool cluster_link::connected() const {
  auto* a = impl_->agent.load();
  if (a == nullptr || !a->live())
    return false;
  auto v = a->view();
  for (std::uint32_t s = 0; s < v->slots; ++s) {
    auto* o = v->owner(s);
    if (o != nullptr && o->node_id != impl_->cfg.node_id && !impl_->handle(o->node_id))
      return false;
  }
  return true;
}

std::shared_ptr<const cluster::cluster_view> cluster_link::view() const {
  auto* a = impl_->agent.load();
  return a == nullptr ? std::make_shared<const cluster::cluster_view>() : a->view();
}

cluster_figures cluster_link::figures() const {
  auto& x = *impl_;
  cluster_figures f;
  f.node_id = x.cfg.node_id;
  auto* a = x.agent.load();
  f.live = a != nullptr && a->live();
  auto v = view();
  f.members = v->members.size();
  f.slots = x.slots;
  for (std::uint32_t s = 0; s < v->slots; ++s) {
    if (serves(s))
      ++f.slots_owned;
    if (v->owner(s) == nullptr)
      ++f.slots_without_owner;
  }
  f.map_version = v->map.version;
  f.controller = v->controller == x.cfg.node_id;
  {
    std::lock_guard<std::mutex> guard{x.peers_mtx};
    f.peers_connected = x.peers.size();
  }
  f.forwarded = x.forwarded.load();
  f.forward_failures = x.forward_failures.load();
  f.forwarded_in = x.forwarded_in.load();
  f.not_owner = x.not_owner.load();
  f.stock_calls_out = x.stock_out.load();
  f.stock_calls_in = x.stock_in.load();
  f.remote_stock_refusals = x.remote_refusals.load();
  f.moves_out = x.moves_out.load();
  f.moves_in = x.moves_in.load();
  f.move_failures = x.move_failures.load();
  f.events_moved = x.events_sent.load();
  f.retry_passed = x.retry_passed.load();
  f.retry_pass_dropped = x.retry_dropped.load();
  f.retry_received = x.retry_in.load();
  {
    std::lock_guard<std::mutex> guard{x.slots_mtx};
    f.slots_moving = x.frozen.size();
  }
  return f;
}

const histogram& cluster_link::forward_seconds() const {
  return impl_->forward_seconds;
}

const histogram& cluster_link::move_seconds() const {
  return impl_->move_seconds;
}

void cluster_link::stop() {
  auto& x = *impl_;
  {
    std::lock_guard<std::mutex> guard{x.mtx};
    if (x.stopping)
      return;
    x.stopping = true;
  }
  x.cv.notify_all();
  x.replication.reset(); // its gate refuses from now on
  if (x.connector.joinable())
    x.connector.join();
  if (x.mover.joinable())
    x.mover.join();
  for (auto& w : x.workers)
    w.join();
  x.workers.clear();
  if (x.agent_owner) {
    x.agent = nullptr;
    x.agent_owner->leave();
  }
  {
    std::lock_guard<std::mutex> guard{x.peers_mtx};
    x.peers.clear();
  }
  if (x.endpoint) {
    x.sys->middleman().unpublish(x.endpoint, static_cast<std::uint16_t>(x.port));
    caf::anon_send_exit(x.endpoint, caf::exit_reason::user_shutdown);
    x.endpoint = nullptr;
  }
}

} // namespace keel::runtime

namespace keel::runtime {

bool cluster_link::replicated() const noexcept {
  return !impl_->cfg.group.empty();
}

bool cluster_link::primary() const {
  if (!impl_->replication)
    return true;
  auto* a = impl_->agent.load();
  return impl_->replication->is_primary() && a != nullptr && a->primary();
}

std::optional<replication_figures> cluster_link::replication() const {
  if (!impl_->replication)
    return std::nullopt;
  return impl_->replication->figures();
}

bool cluster_link::standby_of(std::string_view key) const {
  auto* a = impl_->agent.load();
  if (!impl_->replication || impl_->replication->is_primary() || a == nullptr)
    return false;
  auto slot = cluster::slot_of(key, impl_->slots);
  auto v = a->view();
  return slot < v->data_at.size() && v->data_at[slot] == a->group();
}

void cluster_link::on_promoted(std::function<bool()> f) {
  impl_->promoted = std::move(f);
}

void cluster_link::on_truncated(std::function<void(const storage::truncation&)> f) {
  impl_->truncated = std::move(f);
}

void cluster_link::relay_position(std::function<storage::outbox_resume(std::uint64_t)> f) {
  impl_->relayed = std::move(f);
}

void cluster_link::on_demoted(std::function<void()> f) {
  impl_->demoted = std::move(f);
}

} // namespace keel::runtime
