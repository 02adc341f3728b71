#include <map>
#include <memory>
#include <stdexcept>
#include <unordered_map>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/response_promise.hpp>
#include <nlohmann/json.hpp>

#include "keel/actors/messages.hpp"
#include "keel/events/error.hpp"
#include "keel/events/streams.hpp"
#include "keel/storage/event_store.hpp"
#include "service_actor.hpp"
#include "services.hpp"

namespace keel::actors {

std::size_t shard_of(std::string_view key, std::size_t shards) {
  return shards == 0 ? 0 : static_cast<std::size_t>(stable_hash(key) % shards);
}

namespace {

constexpr const char* snapshot_type = "inventory_sku";

/// Stock of one SKU. `reserved` is the sum of `holds`; available =
/// on_hand - reserved never goes below zero through a reservation.
struct sku_state {
  std::int64_t on_hand = 0;
  std::int64_t reserved = 0;
  std::unordered_map<std::string, std::uint32_t> holds;
  /// Last version assigned to an append (durable or in flight).
  std::uint64_t version = 0;
  std::uint64_t snapshot_version = 0;
  std::uint32_t in_flight = 0;
  /// Orders whose hold changed in an append not durable yet (appends in
  /// flight per order): the state above shows the change already, but it
  /// may still be lost (a replicated group's primary losing its role before
  /// its standby confirmed). A request that would find nothing to do for
  /// such an order must not be answered from it.
  std::unordered_map<std::string, std::uint32_t> unconfirmed;

  void apply(const events::event& ev) {
    using namespace events;
    if (auto* x = std::get_if<stock_adjusted>(&ev)) {
      on_hand = x->on_hand;
    } else if (auto* x = std::get_if<stock_reserved>(&ev)) {
      reserved += x->quantity;
      holds[x->order_id] = x->quantity;
    } else if (auto* x = std::get_if<stock_released>(&ev)) {
      reserved -= x->quantity;
      holds.erase(x->order_id);
    } else if (auto* x = std::get_if<stock_committed>(&ev)) {
      reserved -= x->quantity;
      on_hand -= x->quantity;
      holds.erase(x->order_id);
    }
  }

  std::int64_t available() const noexcept {
    return on_hand - reserved;
  }
};

std::string encode_snapshot(const sku_state& s) {
  nlohmann::json j{{"on_hand", s.on_hand}, {"reserved", s.reserved}, {"holds", s.holds}};
  return j.dump();
}

bool decode_snapshot(const std::string& text, sku_state& s) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return false;
  try {
    s.on_hand = j.at("on_hand").get<std::int64_t>();
    s.reserved = j.at("reserved").get<std::int64_t>();
    s.holds = j.at("holds").get<std::unordered_map<std::string, std::uint32_t>>();
  } catch (const nlohmann::json::exception&) {
    return false;
  }
  return true;
}

/// The correlation id of a stock event: its order's (as payment and shipping
/// events carry), so an order's timeline joins its inventory events; none for
/// stock_adjusted.
events::event_id correlation_of_stock(const events::event& ev) {
  using namespace events;
  if (auto* x = std::get_if<stock_reserved>(&ev))
    return correlation_of(x->order_id);
  if (auto* x = std::get_if<stock_reservation_refused>(&ev))
    return correlation_of(x->order_id);
  if (auto* x = std::get_if<stock_released>(&ev))
    return correlation_of(x->order_id);
  if (auto* x = std::get_if<stock_committed>(&ev))
    return correlation_of(x->order_id);
  return {};
}

/// The order a stock event concerns (empty for stock_adjusted).
std::string order_of_stock(const events::event& ev) {
  using namespace events;
  if (auto* x = std::get_if<stock_reserved>(&ev))
    return x->order_id;
  if (auto* x = std::get_if<stock_released>(&ev))
    return x->order_id;
  if (auto* x = std::get_if<stock_committed>(&ev))
    return x->order_id;
  return {};
}

/// Sums the quantities of an order's lines per SKU (an order may list a SKU twice).
std::map<std::string, std::uint32_t> per_sku(const std::vector<events::order_line>& lines) {
  std::map<std::string, std::uint32_t> result;
  for (auto& l : lines)
    result[l.sku] += l.quantity;
  return result;
}

class inventory_actor : public service_actor {
public:
  inventory_actor(caf::actor_config& cfg, inventory_config conf)
    : service_actor(cfg, conf.name, conf.capacity, conf.env.metrics->bulkhead(conf.name)),
      conf_(std::move(conf)),
      log_(conf_.env.store, conf_.env.mode) {
  }

  caf::behavior make_behavior() override {
    return {
      [this](events::reserve_stock& cmd) -> caf::result<stock_reply> { return reserve(cmd); },
      [this](events::release_stock& cmd) -> caf::result<stock_reply> {
        return settle(cmd.order_id, cmd.lines, cmd.causation, false);
      },
      [this](events::commit_stock& cmd) -> caf::result<stock_reply> {
        return settle(cmd.order_id, cmd.lines, cmd.causation, true);
      },
      [this](events::set_stock& cmd) -> caf::result<stock_reply> { return set(cmd); },
      [this](get_atom, const std::string& sku) -> caf::result<stock_reply> {
        release();
        auto& s = load(sku);
        return stock_reply{true, sku, 0, s.available(), s.on_hand, s.reserved};
      },
      [this](forget_atom, const std::string& sku) {
        release();
        // A cluster moved the SKU's stream here (or away): read it afresh
        // next time.
        // (A stock_reply, as every answer of the inventory's supervisor.)
        auto i = skus_.find(sku);
        if (i != skus_.end() && i->second.in_flight > 0)
          return stock_reply{false, sku, 0, 0, 0, 0, {}};
        if (i != skus_.end())
          skus_.erase(i);
        return stock_reply{true, sku, 0, 0, 0, 0, {}};
      },
      [this](persisted_atom, std::uint64_t token, caf::error& err, std::uint64_t first,
             std::uint64_t last, std::uint64_t pos) { log_.complete(token, err, first, last, pos); },
      [this](crash_atom) -> caf::result<stock_reply> {
        throw std::runtime_error("injected crash");
      },
    };
  }

  void on_exit() override {
    log_.clear(); // continuations hold promises that refer to this actor
    skus_.clear();
    service_actor::on_exit();
  }

private:
  /// An error when order `order_id`'s hold of `sku` changed in an append
  /// that is not durable yet, or the store is fenced: a retried request
  /// that would be answered "done" from that change waits until it is (the
  /// saga retries).
  caf::error unconfirmed(const std::string& sku, sku_state& s, const std::string& order_id) {
    // A fenced store (a replicated group's primary that lost its role) ends
    // in a tail its group may not have: state read from it is no answer.
    if (log_.store().replication().fenced)
      return make_error(errc::unavailable, "this node's store takes no more writes (it lost its "
                                           "group's primary role)");
    auto i = s.unconfirmed.find(order_id);
    if (i == s.unconfirmed.end())
      return caf::error{};
    return make_error(errc::unavailable, "the stock of " + sku + " for order " + order_id
                                           + " is being written; ask again once it is durable");
  }

  caf::result<stock_reply> reserve(const events::reserve_stock& cmd) {
    auto wanted = per_sku(cmd.lines);
    for (auto& [sku, qty] : wanted) {
      auto& s = load(sku);
      if (s.holds.count(cmd.order_id) != 0)
        if (auto err = unconfirmed(sku, s, cmd.order_id)) {
          release();
          return err;
        }
      if (s.holds.count(cmd.order_id) == 0 && s.available() < static_cast<std::int64_t>(qty)) {
        stock_reply refused{false, sku, qty, s.available(), s.on_hand, s.reserved};
        auto rp = make_response_promise();
        events::event ev = events::stock_reservation_refused{sku, cmd.order_id, qty,
                                                             s.available()};
        refused.event = append(sku, ev, join(rp, 1, refused), cmd.causation);
        return rp;
      }
    }
    std::vector<std::pair<std::string, events::event>> todo;
    for (auto& [sku, qty] : wanted)
      if (load(sku).holds.count(cmd.order_id) == 0)
        todo.emplace_back(sku, events::stock_reserved{sku, cmd.order_id, qty});
    return apply_all(todo, cmd.causation);
  }

  caf::result<stock_reply> settle(const std::string& order_id,
                                  const std::vector<events::order_line>& lines,
                                  const events::event_id& cause, bool commit) {
    std::vector<std::pair<std::string, events::event>> todo;
    for (auto& [sku, qty] : per_sku(lines)) {
      auto& s = load(sku);
      auto i = s.holds.find(order_id);
      if (i == s.holds.end()) {
        // Released or committed before, or never held: nothing to do - once
        // what released or committed it is durable.
        if (auto err = unconfirmed(sku, s, order_id)) {
          release();
          return err;
        }
        continue;
      }
      if (commit)
        todo.emplace_back(sku, events::stock_committed{sku, order_id, i->second});
      else
        todo.emplace_back(sku, events::stock_released{sku, order_id, i->second});
    }
    return apply_all(todo, cause);
  }

  caf::result<stock_reply> set(const events::set_stock& cmd) {
    auto& s = load(cmd.sku);
    if (cmd.on_hand < 0 || cmd.on_hand < s.reserved || !events::valid_stream_id(events::stock_stream(cmd.sku))) {
      release();
      return make_error(errc::invalid_argument,
                        "on_hand: " + std::to_string(cmd.on_hand) + " for " + cmd.sku
                          + " is negative or below the " + std::to_string(s.reserved)
                          + " units reserved");
    }
    auto rp = make_response_promise();
    append(cmd.sku, events::stock_adjusted{cmd.sku, cmd.on_hand, "set by operator"},
           join(rp, 1, stock_reply{true, cmd.sku, 0, 0, 0, 0}));
    return rp;
  }

  /// Applies every event now (so later requests see the reservations) and
  /// answers once all of them are durable, naming the first.
  caf::result<stock_reply> apply_all(std::vector<std::pair<std::string, events::event>>& todo,
                                     const events::event_id& cause) {
    auto rp = make_response_promise();
    if (todo.empty()) {
      answer(rp, stock_reply{});
      return rp;
    }
    auto reply = std::make_shared<stock_reply>();
    auto left = std::make_shared<std::size_t>(todo.size());
    auto w = [this, rp, left, reply]() mutable {
      if (--*left == 0)
        answer(rp, std::move(*reply));
    };
    for (auto& [sku, ev] : todo) {
      auto id = append(sku, ev, w, cause);
      if (!reply->event.valid())
        reply->event = id;
    }
    return rp;
  }

  std::function<void()> join(caf::response_promise rp, std::size_t n, stock_reply reply) {
    auto left = std::make_shared<std::size_t>(n);
    return [this, rp, left, reply]() mutable {
      if (--*left == 0)
        answer(rp, std::move(reply));
    };
  }

  /// Applies `ev` and appends it (caused by `cause`); returns its id.
  events::event_id append(const std::string& sku, events::event ev, std::function<void()> then,
                          const events::event_id& cause = {}) {
    auto& s = load(sku);
    s.apply(ev);
    auto expected = storage::expected_version::exact(s.version++);
    s.in_flight++;
    auto order = order_of_stock(ev);
    if (!order.empty())
      ++s.unconfirmed[order];
    std::vector<storage::new_event> evs{
      make_new_event(ev, conf_.env.now_us(), correlation_of_stock(ev), cause)};
    auto id = evs.front().id;
    log_.append(caf::actor_cast<caf::actor>(this), events::stock_stream(sku), expected, std::move(evs),
                [this, sku, order, then](const caf::error& err, const storage::append_result& r) {
                  if (err)
                    throw std::runtime_error(events::stock_stream(sku) + ": " + describe(err));
                  auto& s = skus_.at(sku);
                  s.in_flight--;
                  if (auto i = s.unconfirmed.find(order); i != s.unconfirmed.end() && --i->second == 0)
                    s.unconfirmed.erase(i);
                  maybe_snapshot(sku, s, r.last_version);
                  then();
                });
    return id;
  }

  void maybe_snapshot(const std::string& sku, sku_state& s, std::uint64_t durable) {
    if (s.in_flight > 0 || durable != s.version
        || s.version - s.snapshot_version < conf_.snapshot_every)
      return;
    storage::snapshot snap{s.version, snapshot_type, 1, encode_snapshot(s)};
    if (auto err = log_.store().save_snapshot(events::stock_stream(sku), snap))
      throw std::runtime_error(events::stock_stream(sku) + " snapshot: " + describe(err));
    s.snapshot_version = s.version;
  }

  sku_state& load(const std::string& sku) {
    auto i = skus_.find(sku);
    if (i != skus_.end())
      return i->second;
    sku_state s;
    auto stream = events::stock_stream(sku);
    auto snap = log_.store().load_snapshot(stream);
    if (snap && *snap && (*snap)->type == snapshot_type && decode_snapshot((*snap)->payload, s))
      s.version = s.snapshot_version = (*snap)->version;
    else
      s = sku_state{}; // no usable snapshot: fold the whole stream
    auto err = fold_stream(log_.store(), stream, s.version + 1,
                           [&s](const events::event& ev, const events::record_view& rec) {
                             s.apply(ev);
                             s.version = rec.version;
                           });
    if (err)
      throw std::runtime_error(stream + ": " + describe(err));
    return skus_.emplace(sku, std::move(s)).first->second;
  }

  inventory_config conf_;
  journal log_;
  std::unordered_map<std::string, sku_state> skus_;
};

} // namespace

caf::actor spawn_inventory(caf::actor_system& sys, inventory_config cfg) {
  return sys.spawn<inventory_actor>(std::move(cfg));
}

} // namespace keel::actors
