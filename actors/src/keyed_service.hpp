#pragma once

#include <deque>
#include <functional>
#include <stdexcept>
#include <string>
#include <unordered_map>

#include <caf/actor_cast.hpp>
#include <caf/response_promise.hpp>

#include "keel/actors/messages.hpp"
#include "keel/events/error.hpp"
#include "keel/storage/event_store.hpp"
#include "service_actor.hpp"
#include "services.hpp"

namespace keel::actors {

/// Base of services that keep one stream per order ("<prefix><order id>")
/// and call external providers through a `provider_pool`: payment and
/// shipping. `Record` folds the stream (`apply(event)`) and says
/// whether it must stay cached (`keep()`, e.g. an authorization awaiting
/// capture); other records are dropped after each operation and read back
/// from the stream when needed, so memory follows the orders in flight.
/// Operations on one order run one at a time, in arrival order.
template <class Record>
class keyed_service : public service_actor {
public:
  keyed_service(caf::actor_config& cfg, provider_service_config conf, std::string prefix)
    : service_actor(cfg, conf.name, conf.capacity, conf.env.metrics->bulkhead(conf.name)),
      pool_(std::move(conf.providers), conf.window, conf.max_wait),
      env_(std::move(conf.env)),
      prefix_(std::move(prefix)),
      log_(env_.store, env_.mode) {
  }

  void on_exit() override {
    // Queued operations, calls and continuations hold promises that refer
    // to this actor: drop them or it never dies.
    entries_.clear();
    pool_.clear();
    log_.clear();
    service_actor::on_exit();
  }

protected:
  struct entry {
    Record rec;
    std::uint64_t version = 0;
    /// The id of the stream's last event (what answers name as their event).
    events::event_id last_event;
    bool busy = false;
    std::deque<std::function<void()>> queued;
  };

  /// Handles the journal's completion message; add to the behavior.
  void on_persisted(std::uint64_t token, caf::error& err, std::uint64_t first,
                    std::uint64_t last, std::uint64_t pos) {
    log_.complete(token, err, first, last, pos);
  }

  Record& record(const std::string& key) {
    return entries_.at(key).rec;
  }

  /// The id of the last event of the key's stream (none for an empty one).
  const events::event_id& last_event(const std::string& key) const {
    return entries_.at(key).last_event;
  }

  /// Runs `fn` now, or after the operation in progress for the same key.
  void with_key(const std::string& key, std::function<void()> fn) {
    auto& e = load(key);
    if (e.busy) {
      e.queued.push_back(std::move(fn));
      return;
    }
    e.busy = true;
    fn();
  }

  /// Answers `rp`, frees the bulkhead slot and starts the next operation.
  template <class Reply>
  void done(const std::string& key, caf::response_promise& rp, Reply reply) {
    answer(rp, std::move(reply));
    auto i = entries_.find(key);
    auto& e = i->second;
    e.busy = false;
    if (!e.queued.empty()) {
      auto next = std::move(e.queued.front());
      e.queued.pop_front();
      e.busy = true;
      next();
    } else if (!e.rec.keep()) {
      entries_.erase(i);
    }
  }

  /// Appends `ev` (caused by the order event `cause`) to the key's stream;
  /// applies it and runs `then` once it is durable (`last_event` is then
  /// its id). A failed append crashes the actor (its successor re-reads).
  void persist(const std::string& key, events::event ev, const events::event_id& cause,
               std::function<void()> then) {
    auto& e = entries_.at(key);
    std::vector<storage::new_event> evs{
      make_new_event(ev, env_.now_us(), correlation_of(key), cause)};
    auto id = evs.front().id;
    log_.append(caf::actor_cast<caf::actor>(this), prefix_ + key,
                storage::expected_version::exact(e.version), std::move(evs),
                [this, key, ev, id, then](const caf::error& err, const storage::append_result& r) {
                  if (err)
                    throw std::runtime_error(prefix_ + key + ": " + describe(err));
                  auto& e = entries_.at(key);
                  e.rec.apply(ev);
                  e.version = r.last_version;
                  e.last_event = id;
                  then();
                });
  }

  std::int64_t now_us() const {
    return env_.now_us();
  }

  provider_pool pool_;

private:
  entry& load(const std::string& key) {
    auto i = entries_.find(key);
    if (i != entries_.end())
      return i->second;
    entry e;
    auto err = fold_stream(log_.store(), prefix_ + key, 1,
                           [&e](const events::event& ev, const events::record_view& rec) {
                             e.rec.apply(ev);
                             e.version = rec.version;
                             e.last_event = rec.id;
                           });
    if (err)
      throw std::runtime_error(prefix_ + key + ": " + describe(err));
    return entries_.emplace(key, std::move(e)).first->second;
  }

  service_env env_;
  std::string prefix_;
  journal log_;
  std::unordered_map<std::string, entry> entries_;
};

} // namespace keel::actors
