#include "group_replication.hpp"

#include <algorithm>
#include <filesystem>
#include <future>

#include <spdlog/spdlog.h>

#include "keel/events/error.hpp"
#include "keel/storage/seed.hpp"
#include "pipeline_call.hpp"

namespace keel::runtime {

namespace {

using clock = std::chrono::steady_clock;

/// The checkpoint of the outbox relay (storage/outbox.cpp).
constexpr const char* relay_checkpoint = "outbox/kafka";

/// Set while the store lacks part of its group's log.
constexpr const char* incomplete_key = "replication/incomplete";

} // namespace

group_replication::group_replication(
  replication_config cfg, caf::actor_system& sys, storage::event_store& store,
  std::function<cluster::agent*()> agent,
  std::function<std::optional<caf::actor>(const std::string&)> handle_of)
  : cfg_(std::move(cfg)),
    sys_(sys),
    store_(store),
    agent_(std::move(agent)),
    handle_of_(std::move(handle_of)) {
  // A store that never began or followed a term (new, or wiped) lacks the
  // group's log, unless the group is new (etcd then names no one), and so
  // does a checkpoint (the tail since); marked so that a restart before it
  // caught up knows it still does.
  auto marked = store_.get_model(incomplete_key);
  incomplete_ = !marked || marked->has_value();
  if (!incomplete_ && (cfg_.seeded || store_.replication().token == 0)) {
    incomplete_ = true;
    if (auto err = mark_incomplete())
      spdlog::warn("component=replication msg=\"recording that the store lacks the group's log "
                   "failed\" error=\"{}\"",
                   describe(err));
  }
  shipper_ = std::thread{[this] {
    ship_loop();
    drop_caller();
  }};
  sender_ = std::thread{[this] {
    std::unique_lock<std::mutex> guard{send_mtx_};
    for (;;) {
      send_cv_.wait(guard, [this] { return send_stopping_ || send_job_; });
      if (!send_job_)
        break;
      auto job = std::move(send_job_);
      send_job_ = nullptr;
      guard.unlock();
      job();
      guard.lock();
    }
    guard.unlock();
    drop_caller();
  }};
  storer_ = std::thread{[this] {
    std::unique_lock<std::mutex> guard{jobs_mtx_};
    for (;;) {
      jobs_cv_.wait(guard, [this] { return jobs_stopping_ || !jobs_.empty(); });
      if (jobs_.empty())
        return;
      auto job = std::move(jobs_.front());
      jobs_.pop_front();
      guard.unlock();
      job();
      guard.lock();
    }
  }};
}

group_replication::~group_replication() {
  // Nothing is acknowledged without the group from here on: the store
  // refuses appends (they would not reach the standby); a batch the gate
  // holds now fails.
  closing_ = true;
  store_.set_commit_gate([](storage::replicated_batch&) {
    return make_error(errc::unavailable, "the node is stopping");
  });
  {
    std::lock_guard<std::mutex> guard{send_mtx_};
    send_stopping_ = true;
  }
  send_cv_.notify_all();
  sender_.join();
  {
    std::lock_guard<std::mutex> guard{loop_mtx_};
    stopping_ = true;
  }
  loop_cv_.notify_all();
  shipper_.join();
  {
    std::lock_guard<std::mutex> guard{jobs_mtx_};
    jobs_stopping_ = true;
  }
  jobs_cv_.notify_all();
  storer_.join();
  if (seeder_.joinable())
    seeder_.join(); // its next piece sees `closing_`
  if (!cfg_.data_dir.empty())
    storage::drop_seeds(cfg_.data_dir);
}

caf::error group_replication::mark_incomplete() {
  storage::write_batch wb;
  wb.put(incomplete_key, "1");
  return store_.commit(std::move(wb));
}

void group_replication::complete(const char* why) {
  if (!incomplete_)
    return;
  storage::write_batch wb;
  wb.erase(incomplete_key);
  if (auto err = store_.commit(std::move(wb))) {
    spdlog::warn("component=replication msg=\"recording that the store has the group's log "
                 "failed\" error=\"{}\"",
                 describe(err));
    return;
  }
  incomplete_ = false;
  spdlog::info("component=replication msg=\"the store has the group's log: this node may take "
               "the primary role\" group={} why=\"{}\" position={}",
               cfg_.group, why, store_.last_position());
}

void group_replication::submit(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> guard{jobs_mtx_};
    jobs_.push_back(std::move(job));
  }
  jobs_cv_.notify_one();
}

void group_replication::on_truncated(std::function<void(const storage::truncation&)> f) {
  truncated_ = std::move(f);
}

void group_replication::relay_position(std::function<storage::outbox_resume(std::uint64_t)> f) {
  relayed_ = std::move(f);
}

void group_replication::on_demoted(std::function<void()> f) {
  demoted_ = std::move(f);
}

bool group_replication::still_primary() const {
  auto* a = agent_();
  std::int64_t token = 0;
  return a != nullptr && a->primary(&token) && token == token_.load(std::memory_order_acquire);
}

// -- primary ----------------------------------------------------------------------

bool group_replication::promote(std::int64_t token) {
  if (auto err = store_.begin_term(static_cast<std::uint64_t>(token))) {
    spdlog::error("component=replication msg=\"the store refuses the new term; not serving as "
                  "primary\" group={} token={} error=\"{}\"",
                  cfg_.group, token, describe(err));
    return false;
  }
  // The transaction that took the role wrote the sync key without a
  // standby: this node acknowledges alone (etcd records it) until the
  // shipper names a standby that caught up.
  std::string named;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    sessions_.clear();
    sync_node_ = named;
    alone_since_us_ = named.empty() ? storage::now_us() : 0;
  }
  token_ = token;
  primary_ = true;
  promotions_.fetch_add(1, std::memory_order_relaxed);
  complete("it is the primary");
  store_.set_commit_gate([this](storage::replicated_batch& b) { return gate(b); });
  store_.set_standby(false);
  spdlog::info("component=replication msg=\"primary: every batch goes to the synchronous "
               "standby before it is acknowledged\" group={} token={} last_position={} "
               "sync_standby=\"{}\" strict={}",
               cfg_.group, token, store_.last_position(), named, cfg_.strict);
  loop_cv_.notify_all();
  return true;
}

caf::error group_replication::ship(session& s, const std::string& node,
                                   storage::replicated_batch& b,
                                   std::chrono::milliseconds timeout) {
  if (!s.peer)
    return make_error(errc::unavailable, "no connection to standby " + node);
  replica_batch msg;
  msg.group = cfg_.group;
  msg.batch = b; // the gate's batch is still needed if this standby fails
  // The log's head (a catch-up batch ends before it): the standby's lag, and
  // whether it caught up.
  msg.primary_last = std::max(b.last_position(), store_.last_position());
  if (relayed_) {
    auto r = relayed_(s.relay_shipped);
    msg.relayed = r.checkpoint;
    msg.relay_marks = std::move(r.marks);
  }
  auto peer = *s.peer;
  auto connected = [&] {
    auto now = handle_of_(node);
    return now && *now == peer;
  };
  auto r = call_while<std::uint64_t>(sys_, peer, timeout, connected,
                                     std::chrono::milliseconds{10}, std::move(msg));
  if (!r) {
    s.greeted = false;
    return make_error(errc::unavailable,
                      "standby " + node + " did not store the batch: " + sys_.render(r.error()));
  }
  s.acked = *r;
  s.relay_shipped = msg.relayed;
  if (s.acked < b.last_position())
    return make_error(errc::log_gap, "standby " + node + " is at position "
                                       + std::to_string(s.acked) + " after a batch up to "
                                       + std::to_string(b.last_position()));
  return caf::error{};
}

caf::error group_replication::greet(session& s, const std::string& node) {
  s.peer = handle_of_(node);
  if (!s.peer)
    return make_error(errc::unavailable, "no connection to " + node);
  auto terms = store_.terms();
  if (!terms)
    return terms.error();
  replica_hello h{cfg_.group, cfg_.node_id, static_cast<std::uint64_t>(token_.load()),
                  store_.last_position(), std::move(*terms)};
  auto r = call<std::uint64_t>(sys_, *s.peer, std::chrono::milliseconds{5000}, std::move(h));
  if (!r)
    return make_error(errc::unavailable, node + " refused to follow: " + sys_.render(r.error()));
  s.acked = *r;
  s.greeted = true;
  spdlog::info("component=replication msg=\"a standby follows\" group={} standby={} "
               "position={} primary_position={}",
               cfg_.group, node, s.acked, store_.last_position());
  return caf::error{};
}

caf::error group_replication::catch_up(session& s, const std::string& node, std::uint64_t to,
                                       std::chrono::milliseconds timeout) {
  while (s.acked < to) {
    auto n = std::min<std::uint64_t>(to - s.acked, cfg_.catch_up_events);
    storage::replicated_batch b;
    b.token = static_cast<std::uint64_t>(token_.load());
    b.first_position = s.acked + 1;
    auto r = store_.read_all(b.first_position, n);
    while (r.next())
      b.records.emplace_back(r.raw());
    if (r.error())
      return r.error();
    if (b.records.size() != n)
      return make_error(errc::log_gap, "reading positions " + std::to_string(b.first_position)
                                         + " to " + std::to_string(to) + " for " + node);
    if (auto err = ship(s, node, b, timeout))
      return err;
  }
  return caf::error{};
}

caf::error group_replication::gate(storage::replicated_batch& b) {
  // One batch at a time: the committer waits for each.
  std::promise<caf::error> done;
  auto result = done.get_future();
  {
    std::lock_guard<std::mutex> guard{send_mtx_};
    if (send_stopping_)
      return make_error(errc::unavailable, "the node is stopping");
    send_job_ = [this, &b, &done] { done.set_value(confirm(b)); };
  }
  send_cv_.notify_one();
  return result.get();
}

caf::error group_replication::confirm(storage::replicated_batch& b) {
  b.token = static_cast<std::uint64_t>(token_.load());
  auto t0 = clock::now();
  bool told = false;
  for (;;) {
    if (closing_)
      return make_error(errc::unavailable, "the node is stopping");
    if (!still_primary())
      return make_error(errc::unavailable, "this node is no longer its group's primary (lease "
                                           "lost or another node took over)");
    {
      std::lock_guard<std::mutex> guard{mtx_};
      // Without a named standby etcd records that the group runs alone: an
      // available group acknowledges on this node only; a strict one waits
      // until the shipper names a standby that caught up (right after a
      // failover, or while a strict group's first node is alone).
      if (sync_node_.empty() && !cfg_.strict) {
        alone_.fetch_add(1, std::memory_order_relaxed);
        return caf::error{};
      }
      auto i = sync_node_.empty() ? sessions_.end() : sessions_.find(sync_node_);
      if (i != sessions_.end() && i->second.sync && i->second.greeted) {
        auto& s = i->second;
        auto left = cfg_.sync_timeout - std::chrono::duration_cast<std::chrono::milliseconds>(
                                          clock::now() - t0);
        auto timeout = std::max(left, std::chrono::milliseconds{50});
        auto err = catch_up(s, sync_node_, b.first_position - 1, timeout);
        if (!err)
          err = ship(s, sync_node_, b, timeout);
        if (!err) {
          confirmed_.fetch_add(1, std::memory_order_relaxed);
          // Confirmed - but acknowledged only by a primary that still is one.
          if (!still_primary())
            return make_error(errc::unavailable, "this node lost the primary role while its "
                                                 "standby stored the batch");
          return caf::error{};
        }
        s.sync = false;
        spdlog::warn("component=replication msg=\"the synchronous standby failed; writes "
                     "pause\" group={} standby={} error=\"{}\"",
                     cfg_.group, sync_node_, describe(err));
      }
    }
    if (clock::now() - t0 >= cfg_.sync_timeout) {
      if (!cfg_.strict) {
        std::string was;
        {
          std::lock_guard<std::mutex> guard{mtx_};
          was = sync_node_;
        }
        auto* a = agent_();
        auto r = a != nullptr ? a->set_sync_standby("") : caf::expected<bool>{false};
        if (r && *r) {
          gate_timeouts_.fetch_add(1, std::memory_order_relaxed);
          std::lock_guard<std::mutex> guard{mtx_};
          sync_node_.clear();
          alone_since_us_ = storage::now_us();
          spdlog::warn("component=replication msg=\"writing without a synchronous standby "
                       "(recorded in etcd); acknowledged writes are on this node only until "
                       "a standby catches up\" group={} was=\"{}\"",
                       cfg_.group, was);
          continue; // alone now: the next round acknowledges
        }
      } else if (!told) {
        told = true;
        gate_timeouts_.fetch_add(1, std::memory_order_relaxed);
        spdlog::warn("component=replication msg=\"strict: writes wait for a synchronous "
                     "standby\" group={}",
                     cfg_.group);
      }
    }
    loop_cv_.notify_all(); // the shipper brings a standby up to date
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
  }
}

void group_replication::ship_loop() {
  std::unique_lock<std::mutex> guard{loop_mtx_};
  while (!stopping_) {
    loop_cv_.wait_for(guard, std::chrono::milliseconds{100});
    if (stopping_ || !primary_)
      continue;
    guard.unlock();
    if (!still_primary()) {
      // A primary whose lease lapsed or whose key another took: its store is
      // (or will be, at its next batch) fenced; the node starts again as a
      // standby.
      if (!demotion_told_) {
        demotion_told_ = true;
        spdlog::error("component=replication msg=\"this node lost its group's primary role\" "
                      "group={} token={}",
                      cfg_.group, token_.load());
        if (demoted_)
          demoted_();
      }
      guard.lock();
      continue;
    }
    auto* a = agent_();
    auto v = a->view();
    std::vector<std::string> standbys;
    for (auto& m : v->members)
      if (m.group == cfg_.group && m.node_id != cfg_.node_id)
        standbys.push_back(m.node_id);
    for (auto& node : standbys) {
      session s;
      {
        std::lock_guard<std::mutex> g{mtx_};
        auto& cur = sessions_[node];
        if (cur.sync && cur.greeted)
          continue; // the gate feeds it
        s = cur;
      }
      // Greet and catch up without the lock (the gate goes on meanwhile)...
      caf::error err;
      if (!s.greeted || s.peer != handle_of_(node))
        err = greet(s, node);
      if (!err && s.seeded_at != 0 && s.acked >= s.seeded_at) {
        // It started on the checkpoint: its files need not stay (they hold
        // SST files this store's compactions would otherwise delete).
        storage::drop_seeds(cfg_.data_dir);
        s.seeded_at = 0;
      }
      if (!err && wants_seed(s)) {
        // Far behind (new, or wiped): a checkpoint of this store, fetched
        // by the standby while this node serves, rather than the log.
        if (auto seeded = offer_seed(s, node))
          spdlog::warn("component=replication msg=\"offering a checkpoint failed\" standby={} "
                       "error=\"{}\"",
                       node, describe(seeded));
        std::lock_guard<std::mutex> g{mtx_};
        sessions_[node] = s;
        continue;
      }
      if (!err)
        err = catch_up(s, node, store_.last_position(), std::chrono::milliseconds{5000});
      if (err) {
        spdlog::debug("component=replication msg=\"standby not caught up\" standby={} "
                      "error=\"{}\"",
                      node, describe(err));
        std::lock_guard<std::mutex> g{mtx_};
        sessions_[node] = s;
        continue;
      }
      // ...then, with the gate held off, the last batches and the switch to
      // synchronous (when the group has no synchronous standby, or names
      // this one).
      std::lock_guard<std::mutex> g{mtx_};
      err = catch_up(s, node, store_.last_position(), std::chrono::milliseconds{5000});
      if (!err && (sync_node_.empty() || sync_node_ == node)) {
        auto named = a->set_sync_standby(node);
        if (named && *named) {
          s.sync = true;
          sync_node_ = node;
          alone_since_us_ = 0;
        }
      }
      sessions_[node] = s;
    }
    guard.lock();
  }
}

bool group_replication::wants_seed(const session& s) const {
  if (cfg_.seed_after_events == 0 || cfg_.data_dir.empty()
      || store_.last_position() <= s.acked + cfg_.seed_after_events)
    return false;
  // One checkpoint per standby every 30 s at most: one it took is followed
  // by the log tail written meanwhile; one it did not take is offered again.
  return s.offered_at == clock::time_point{}
         || clock::now() - s.offered_at >= std::chrono::seconds{30};
}

caf::error group_replication::same_group(const std::string& group) const {
  if (group == cfg_.group)
    return caf::error{};
  return make_error(errc::invalid_argument, "this node is in group " + cfg_.group + ", not "
                                              + group);
}

caf::error group_replication::offer_seed(session& s, const std::string& node) {
  auto t0 = clock::now();
  auto seed = storage::prepare_seed(store_, cfg_.data_dir, static_cast<std::uint64_t>(token_.load()));
  if (!seed)
    return seed.error();
  std::uint64_t bytes = 0;
  for (auto n : seed->sizes)
    bytes += n;
  replica_seed_offer o{cfg_.group, cfg_.node_id, static_cast<std::uint64_t>(token_.load()),
                       seed->position, seed->id, seed->files, seed->sizes};
  auto r = call<std::uint64_t>(sys_, *s.peer, std::chrono::milliseconds{5000}, std::move(o));
  if (!r)
    return make_error(errc::unavailable, node + " did not take the checkpoint: " + sys_.render(r.error()));
  s.seeded_at = seed->position;
  s.offered_at = clock::now();
  s.greeted = false; // it starts again on the checkpoint, then greets anew
  seeds_offered_.fetch_add(1, std::memory_order_relaxed);
  spdlog::info("component=replication msg=\"a standby far behind fetches a checkpoint of this "
               "store\" group={} standby={} standby_position={} checkpoint_position={} files={} "
               "bytes={} prepared_ms={}",
               cfg_.group, node, s.acked, seed->position, seed->files.size(), bytes,
               std::chrono::duration_cast<std::chrono::milliseconds>(s.offered_at - t0).count());
  return caf::error{};
}

caf::expected<std::string> group_replication::read_seed(const replica_seed_read& r) const {
  if (auto err = same_group(r.group))
    return err;
  return storage::read_seed(cfg_.data_dir, r.id, r.file, r.offset, r.length);
}

// -- standby ----------------------------------------------------------------------

caf::expected<std::uint64_t> group_replication::on_seed_offer(const replica_seed_offer& o) {
  if (auto err = same_group(o.group))
    return err;
  if (primary_)
    return make_error(errc::invalid_argument, "this node is its group's primary");
  if (o.token < store_.replication().token)
    return make_error(errc::stale_token, "primary " + o.primary + " has token "
                                           + std::to_string(o.token) + "; this store has seen "
                                           + std::to_string(store_.replication().token));
  if (cfg_.data_dir.empty() || o.files.size() != o.sizes.size())
    return make_error(errc::invalid_argument, "this node cannot take a checkpoint");
  if (seeding_.exchange(true))
    return make_error(errc::unavailable, "this node is fetching a checkpoint already");
  if (seeder_.joinable())
    seeder_.join();
  seeder_ = std::thread{[this, o] {
    fetch_seed(o);
    drop_caller();
  }};
  return o.position;
}

void group_replication::fetch_seed(replica_seed_offer o) {
  namespace fs = std::filesystem;
  auto t0 = clock::now();
  auto dir = storage::incoming_seed_dir(cfg_.data_dir);
  auto fail = [&](const std::string& why) {
    spdlog::warn("component=replication msg=\"fetching a checkpoint failed; the primary offers "
                 "it again\" group={} primary={} checkpoint={} error=\"{}\"",
                 cfg_.group, o.primary, o.id, why);
    std::error_code ec;
    fs::remove_all(dir, ec);
    seeding_ = false;
  };
  std::error_code ec;
  fs::remove_all(dir, ec);
  fs::create_directories(dir, ec);
  if (ec)
    return fail("creating " + dir + ": " + ec.message());
  spdlog::info("component=replication msg=\"fetching a checkpoint of the primary's store\" "
               "group={} primary={} checkpoint={} position={} files={}",
               cfg_.group, o.primary, o.id, o.position, o.files.size());
  constexpr std::uint64_t piece = 1u << 20;
  std::uint64_t bytes = 0;
  for (std::size_t i = 0; i < o.files.size(); ++i) {
    auto path = dir + "/" + o.files[i];
    if (auto err = storage::append_to(path, std::string{})) // empty files too
      return fail(describe(err));
    for (std::uint64_t at = 0; at < o.sizes[i];) {
      if (closing_)
        return fail("the node is stopping");
      auto peer = handle_of_(o.primary);
      if (!peer)
        return fail("no connection to " + o.primary);
      auto r = call<std::string>(sys_, *peer, std::chrono::milliseconds{30000},
                                 replica_seed_read{cfg_.group, o.id, o.files[i], at,
                                                   std::min(piece, o.sizes[i] - at)});
      if (!r)
        return fail(sys_.render(r.error()));
      if (r->empty())
        return fail(o.files[i] + " ends before its size");
      if (auto err = storage::append_to(path, *r))
        return fail(describe(err));
      at += r->size();
      bytes += r->size();
    }
  }
  auto about = "checkpoint " + o.id + " of " + o.primary + " (group " + cfg_.group
               + ") up to position " + std::to_string(o.position);
  if (auto err = storage::finish_seed(cfg_.data_dir, about))
    return fail(describe(err));
  seeds_received_.fetch_add(1, std::memory_order_relaxed);
  spdlog::warn("component=replication msg=\"fetched a checkpoint of the group's log: starting "
               "again on it\" group={} primary={} position={} bytes={} took_ms={}",
               cfg_.group, o.primary, o.position, bytes,
               std::chrono::duration_cast<std::chrono::milliseconds>(clock::now() - t0).count());
  if (demoted_)
    demoted_();
}

caf::expected<std::uint64_t> group_replication::on_hello(const replica_hello& h) {
  if (auto err = same_group(h.group))
    return err;
  if (primary_)
    return make_error(errc::invalid_argument, "this node is its group's primary");
  if (seeding_)
    return make_error(errc::unavailable, "this node is fetching a checkpoint");
  auto seen = store_.replication().token;
  if (h.token < seen)
    return make_error(errc::stale_token, "primary " + h.primary + " has token "
                                           + std::to_string(h.token) + "; this store has seen "
                                           + std::to_string(seen));
  auto mine = store_.terms();
  if (!mine)
    return mine.error();
  auto last = store_.last_position();
  auto agreed = storage::agreed_prefix(*mine, last, h.terms, h.last_position);
  // A longer log in the same term is the primary's unpublished batch: kept
  // (the primary ships it again). Only a tail of another term goes.
  if (agreed < last && storage::token_at(*mine, agreed + 1) != storage::token_at(h.terms, agreed + 1)) {
    auto cut = store_.truncate_after(agreed);
    if (!cut)
      return cut.error();
    truncated_events_.fetch_add(cut->removed_events, std::memory_order_relaxed);
    spdlog::warn("component=replication msg=\"discarded the tail the group never acknowledged\" "
                 "group={} primary={} kept_up_to={} removed_events={} streams={} "
                 "snapshots_dropped={}",
                 cfg_.group, h.primary, agreed, cut->removed_events, cut->streams,
                 cut->snapshots_dropped);
    if (truncated_)
      truncated_(*cut);
  }
  storage::replicated_batch terms;
  terms.token = h.token;
  terms.first_position = store_.last_position() + 1;
  terms.terms = h.terms;
  auto r = store_.replicate(std::move(terms));
  if (!r)
    return r.error();
  {
    std::lock_guard<std::mutex> guard{standby_mtx_};
    following_ = h.primary;
    primary_last_ = h.last_position;
    contact_ = clock::now();
  }
  if (*r >= h.last_position)
    complete("it has the primary's log");
  spdlog::info("component=replication msg=\"following\" group={} primary={} token={} "
               "position={} primary_position={}",
               cfg_.group, h.primary, h.token, *r, h.last_position);
  return *r;
}

caf::expected<std::uint64_t> group_replication::on_batch(replica_batch& b) {
  if (primary_)
    return make_error(errc::stale_token, "this node is its group's primary now");
  if (seeding_)
    return make_error(errc::unavailable, "this node is fetching a checkpoint");
  auto r = store_.replicate(std::move(b.batch));
  if (!r)
    return r.error();
  if (incomplete_ && *r >= b.primary_last)
    complete("it caught up with the primary");
  bool save = false;
  {
    std::lock_guard<std::mutex> guard{standby_mtx_};
    primary_last_ = std::max(b.primary_last, *r);
    contact_ = clock::now();
    if (b.relayed > relay_saved_ && b.relayed <= *r
        && contact_ - relay_saved_at_ >= std::chrono::milliseconds{100}) {
      relay_saved_ = b.relayed;
      relay_saved_at_ = contact_;
      save = true;
    }
  }
  if (save) {
    // A promoted standby resumes the outbox where the primary was (no fsync:
    // a lost save only means events relayed again).
    storage::write_batch wb;
    wb.set_checkpoint(relay_checkpoint, b.relayed);
    // Marks of an older position stay valid for a newer one (they only
    // make the new primary read more of the topics); never the reverse.
    if (!b.relay_marks.empty())
      wb.put(storage::outbox_marks_key(relay_checkpoint), b.relay_marks);
    if (auto err = store_.commit(std::move(wb), false))
      spdlog::warn("component=replication msg=\"saving the relay position failed\" error=\"{}\"",
                   describe(err));
  }
  return *r;
}

replication_figures group_replication::figures() const {
  replication_figures f;
  f.primary = primary_;
  f.token = token_;
  f.batches_confirmed = confirmed_;
  f.batches_alone = alone_;
  f.gate_timeouts = gate_timeouts_;
  f.promotions = promotions_;
  f.seeds_offered = seeds_offered_;
  f.seeds_received = seeds_received_;
  f.incomplete = incomplete_;
  f.truncated_events = truncated_events_;
  auto last = store_.last_position();
  {
    std::lock_guard<std::mutex> guard{mtx_};
    f.sync_standby = sync_node_;
    f.alone_since_us = f.primary ? alone_since_us_ : 0;
    for (auto& [node, s] : sessions_)
      f.standbys.push_back({node, s.acked, last > s.acked ? last - s.acked : 0, s.sync,
                            s.peer.has_value() && s.greeted});
  }
  std::lock_guard<std::mutex> guard{standby_mtx_};
  f.following = f.primary ? std::string{} : following_;
  f.primary_last = primary_last_;
  f.lag_events = primary_last_ > last ? primary_last_ - last : 0;
  if (contact_ != clock::time_point{})
    f.since_contact_seconds = std::chrono::duration<double>(clock::now() - contact_).count();
  return f;
}

} // namespace keel::runtime
