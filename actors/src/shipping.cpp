#include <caf/actor_system.hpp>

#include "keel/events/streams.hpp"
#include "keyed_service.hpp"

namespace keel::actors {

namespace {

using outcome = shipment_reply::outcome;

/// What the shipment stream of one order says.
struct shipment_record {
  enum class status : std::uint8_t { none, scheduled, failed, cancelled };
  status st = status::none;
  std::string tracking_id;
  std::string carrier;
  std::int64_t estimated_delivery_us = 0;
  std::string reason;

  void apply(const events::event& ev) {
    if (auto* x = std::get_if<events::shipment_scheduled>(&ev)) {
      st = status::scheduled;
      tracking_id = x->tracking_id;
      carrier = x->carrier;
      estimated_delivery_us = x->estimated_delivery_us;
    } else if (auto* x = std::get_if<events::shipment_failed>(&ev)) {
      st = status::failed;
      reason = x->reason;
    } else if (std::holds_alternative<events::shipment_cancelled>(ev)) {
      st = status::cancelled;
    }
  }

  bool keep() const noexcept {
    return false;
  }

  shipment_reply reply() const {
    switch (st) {
      case status::scheduled:
        return {outcome::scheduled, tracking_id, carrier, estimated_delivery_us, {}};
      case status::failed:
        return {outcome::failed, {}, carrier, 0, reason};
      default:
        return {outcome::done, tracking_id, carrier, estimated_delivery_us, {}};
    }
  }
};

using status = shipment_record::status;

constexpr std::int64_t us_per_day = 86400LL * 1000 * 1000;

class shipping_actor : public keyed_service<shipment_record> {
public:
  shipping_actor(caf::actor_config& cfg, provider_service_config conf)
    : keyed_service(cfg, std::move(conf), std::string{events::shipment_prefix}) {
  }

  caf::behavior make_behavior() override {
    return {
      [this](events::schedule_shipment& cmd) -> caf::result<shipment_reply> {
        auto rp = make_response_promise();
        with_key(cmd.order_id,
                 [this, id = cmd.order_id, cause = cmd.causation, rp] { schedule(id, cause, rp); });
        return rp;
      },
      [this](events::cancel_shipment& cmd) -> caf::result<shipment_reply> {
        auto rp = make_response_promise();
        with_key(cmd.order_id,
                 [this, id = cmd.order_id, cause = cmd.causation, rp] { cancel(id, cause, rp); });
        return rp;
      },
      [this](persisted_atom, std::uint64_t token, caf::error& err, std::uint64_t first,
             std::uint64_t last, std::uint64_t pos) { on_persisted(token, err, first, last, pos); },
      [this](crash_atom) -> caf::result<shipment_reply> {
        throw std::runtime_error("injected crash");
      },
    };
  }

private:
  /// Primary carrier, then the secondary on a fault or when the primary
  /// does not serve the address. Faults on both: `unavailable`, nothing
  /// recorded (the saga retries); a refusal by every carrier is recorded.
  void schedule(const std::string& order_id, const events::event_id& cause,
                caf::response_promise rp) {
    if (record(order_id).st != status::none) {
      done(order_id, rp, reply(order_id));
      return;
    }
    provider_request req{"schedule", "ship-" + order_id, 0};
    call_in_order(
      this, pool_, pool_.all(), 0, req, true,
      [this, order_id, cause, rp](std::size_t idx, provider_answer& ans) mutable {
        auto& carrier = pool_.routes()[idx].name;
        events::event ev;
        if (ans.declined)
          ev = events::shipment_failed{order_id, carrier, ans.reason};
        else
          ev = events::shipment_scheduled{order_id, ans.reference, carrier,
                                          now_us() + us_per_day * ans.delivery_days};
        persist(order_id, ev, cause, [this, order_id, rp]() mutable {
          done(order_id, rp, reply(order_id));
        });
      },
      [this, order_id, rp](caf::error& err) mutable {
        done(order_id, rp, shipment_reply{outcome::unavailable, {}, {}, 0, describe(err)});
      });
  }

  /// The answer the stream's state gives, naming its last event.
  shipment_reply reply(const std::string& order_id) {
    auto r = record(order_id).reply();
    r.event = last_event(order_id);
    return r;
  }

  void cancel(const std::string& order_id, const events::event_id& cause,
              caf::response_promise rp) {
    auto& rec = record(order_id);
    if (rec.st != status::scheduled) {
      auto ev = rec.st == status::cancelled ? last_event(order_id) : events::event_id{};
      done(order_id, rp, shipment_reply{outcome::done, {}, rec.carrier, 0, {}, ev});
      return;
    }
    provider_request req{"cancel", "cancel-" + order_id, 0};
    call_in_order(
      this, pool_, pool_.only(rec.carrier), 0, req, false,
      [this, order_id, cause, rp](std::size_t, provider_answer&) mutable {
        auto& rec = record(order_id);
        events::shipment_cancelled ev{order_id, rec.tracking_id, rec.carrier};
        persist(order_id, ev, cause, [this, order_id, rp]() mutable {
          done(order_id, rp, shipment_reply{outcome::done, {}, {}, 0, {}, last_event(order_id)});
        });
      },
      [this, order_id, rp](caf::error& err) mutable {
        done(order_id, rp, shipment_reply{outcome::unavailable, {}, {}, 0, describe(err)});
      });
  }

};

} // namespace

caf::actor spawn_shipping(caf::actor_system& sys, provider_service_config cfg) {
  return sys.spawn<shipping_actor>(std::move(cfg));
}

} // namespace keel::actors
