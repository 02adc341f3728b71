#include "orders.hpp"

#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/system_messages.hpp>

#include "keel/actors/catalog.hpp"
#include "keel/actors/messages.hpp"
#include "keel/events/error.hpp"
#include "keel/events/ids.hpp"
#include "keel/storage/event_store.hpp"
#include "service_actor.hpp"

namespace keel::actors {

namespace {

class orders_actor : public service_actor {
public:
  orders_actor(caf::actor_config& cfg, orders_config conf)
    : service_actor(cfg, "orders", conf.capacity, conf.sagas->env.metrics->bulkhead("orders")),
      conf_(std::move(conf)),
      in_flight_gauge_(conf_.sagas->env.metrics->value("sagas.in_flight")) {
  }

  caf::behavior make_behavior() override {
    set_down_handler([this](caf::down_msg& msg) { on_down(msg); });
    // Every handler answers or delegates at once: the bulkhead bounds the
    // mailbox; `max_sagas` bounds the work in flight.
    return {
      [this](events::place_order& cmd) -> caf::result<order_view> {
        release();
        return place(cmd);
      },
      [this](events::cancel_order& cmd) -> caf::result<order_view> {
        release();
        return cancel(cmd);
      },
      [this](get_atom, std::string& id) -> caf::result<order_view> {
        release();
        if (to_saga(id, get_atom::value, id))
          return caf::delegated<order_view>{};
        auto st = load(id);
        if (!st)
          return std::move(st.error());
        if (st->status == order_status::none)
          return make_error(errc::not_found, "order " + id);
        return view_of(*st, false);
      },
      [this](redrive_atom, const std::string& id) {
        // Never a saga for something that is not an order id (its stream
        // could not even be read): the id may come from outside.
        if (!events::valid_key(id)) {
          ignored_->fetch_add(1);
          return;
        }
        if (!owns(id))
          return; // its owner re-drives it
        if (sagas_.count(id) == 0)
          send(start(id), redrive_atom::value);
      },
      [this](in_flight_atom) {
        release();
        std::vector<std::string> ids;
        ids.reserve(sagas_.size());
        for (auto& kv : sagas_)
          ids.push_back(kv.first);
        return ids;
      },
      [this](done_atom, const std::string& id) {
        crashes_by_id_.erase(id);
        if (auto i = sagas_.find(id); i != sagas_.end()) {
          demonitor(i->second);
          sagas_.erase(i);
          *in_flight_gauge_ = static_cast<std::int64_t>(sagas_.size());
        }
      },
    };
  }

  void on_exit() override {
    // Sagas are not linked (a crash must not take the orders actor down),
    // so they are stopped explicitly when the pipeline stops.
    for (auto& kvp : sagas_)
      send_exit(kvp.second, caf::exit_reason::user_shutdown);
    sagas_.clear();
    service_actor::on_exit();
  }

private:
  /// Hands the current request to the saga of `id` if one is in flight.
  template <class... Ts>
  bool to_saga(const std::string& id, const Ts&... xs) {
    auto i = sagas_.find(id);
    if (i == sagas_.end())
      return false;
    delegate(i->second, xs...);
    return true;
  }

  bool owns(const std::string& id) const {
    return !conf_.owns_order || conf_.owns_order(id);
  }

  caf::error not_owner(const std::string& id) const {
    return make_error(errc::not_owner, "this node does not own order " + id + " now");
  }

  caf::result<order_view> place(events::place_order& cmd) {
    if (auto err = events::validate(cmd))
      return err;
    if (to_saga(cmd.order_id, cmd))
      return caf::delegated<order_view>{};
    if (!owns(cmd.order_id))
      return not_owner(cmd.order_id);
    auto st = load(cmd.order_id);
    if (!st)
      return std::move(st.error());
    if (st->status != order_status::none) {
      if (auto err = same_order(*st, cmd))
        return err;
      return view_of(*st, false); // the same order again: its current state
    }
    if (auto err = price(cmd))
      return err;
    if (conf_.admission)
      if (auto err = conf_.admission(cmd))
        return err;
    if (sagas_.size() >= conf_.max_sagas)
      return make_error(errc::overloaded, "orders: " + std::to_string(conf_.max_sagas)
                                            + " sagas in flight");
    delegate(start(cmd.order_id, std::move(*st)), std::move(cmd));
    return caf::delegated<order_view>{};
  }

  caf::result<order_view> cancel(events::cancel_order& cmd) {
    if (to_saga(cmd.order_id, cmd))
      return caf::delegated<order_view>{};
    if (!owns(cmd.order_id))
      return not_owner(cmd.order_id);
    auto st = load(cmd.order_id);
    if (!st)
      return std::move(st.error());
    if (st->status == order_status::none)
      return make_error(errc::not_found, "order " + cmd.order_id);
    if (st->status == order_status::cancelled || st->cancel_requested)
      return view_of(*st, false);
    if (!can_cancel(*st))
      return make_error(errc::not_cancellable,
                        "order " + cmd.order_id + " is " + to_string(st->status));
    delegate(start(cmd.order_id, std::move(*st)), std::move(cmd));
    return caf::delegated<order_view>{}; // wakes a parked order
  }

  /// Prices a new order from the catalogue; without one, the command must
  /// carry its prices and currency.
  caf::error price(events::place_order& cmd) const {
    if (conf_.catalog)
      return conf_.catalog->price(cmd);
    for (std::size_t i = 0; i < cmd.lines.size(); ++i)
      if (cmd.lines[i].unit_price_cents == events::unpriced)
        return make_error(errc::invalid_argument, "items[" + std::to_string(i)
                                                    + "].unit_price_cents: required (no catalogue)");
    if (cmd.currency.empty())
      return make_error(errc::invalid_argument, "currency: required (no catalogue)");
    return caf::error{};
  }

  caf::expected<order_state> load(const std::string& id) {
    return load_order(*conf_.sagas->env.store, id, conf_.sagas->policy);
  }

  /// Starts the saga of `id`; `known` is its folded stream when the caller
  /// has read it already (the saga would read it again otherwise).
  caf::actor start(const std::string& id, std::optional<order_state> known = std::nullopt) {
    auto saga = spawn_saga(system(), conf_.sagas, caf::actor_cast<caf::actor>(this), id,
                           std::move(known));
    monitor(saga);
    sagas_.emplace(id, saga);
    *in_flight_gauge_ = static_cast<std::int64_t>(sagas_.size());
    return saga;
  }

  void on_down(const caf::down_msg& msg) {
    if (!msg.reason)
      return; // ended normally: its done_atom came first
    for (auto i = sagas_.begin(); i != sagas_.end(); ++i) {
      if (i->second.address() != msg.source)
        continue;
      auto id = i->first;
      sagas_.erase(i);
      *in_flight_gauge_ = static_cast<std::int64_t>(sagas_.size());
      crashes_->fetch_add(1);
      // Re-driven after 50 ms, doubling with every crash of the same order
      // up to 30 s: a saga that keeps crashing (a stream it cannot read, a
      // store that cannot write) costs little, and it is never given up
      // (the order stays in flight until it ends or the node stops).
      auto n = ++crashes_by_id_[id];
      auto delay = std::chrono::milliseconds(50) * (1LL << std::min<std::uint32_t>(n - 1, 10));
      delayed_send(this, std::min<std::chrono::milliseconds>(delay, std::chrono::seconds(30)),
                   redrive_atom::value, id);
      return;
    }
  }

  orders_config conf_;
  std::shared_ptr<std::atomic<std::int64_t>> in_flight_gauge_;
  std::unordered_map<std::string, caf::actor> sagas_;
  std::shared_ptr<std::atomic<std::int64_t>> crashes_ = conf_.sagas->env.metrics->value("sagas.crashed");
  std::shared_ptr<std::atomic<std::int64_t>> ignored_
    = conf_.sagas->env.metrics->value("sagas.redrives_ignored");
  /// Crashes in a row per order (forgotten when its saga ends or parks).
  std::unordered_map<std::string, std::uint32_t> crashes_by_id_;
};

} // namespace

caf::actor spawn_orders(caf::actor_system& sys, orders_config cfg) {
  return sys.spawn<orders_actor>(std::move(cfg));
}

} // namespace keel::actors
