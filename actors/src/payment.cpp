#include <deque>
#include <functional>
#include <stdexcept>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/response_promise.hpp>

#include "keel/actors/messages.hpp"
#include "keel/events/error.hpp"
#include "keel/events/streams.hpp"
#include "keel/storage/event_store.hpp"
#include "keyed_service.hpp"

namespace keel::actors {

namespace {

using outcome = payment_reply::outcome;

/// What the payment stream of one order says.
struct payment_record {
  enum class status : std::uint8_t { none, authorized, declined, captured, voided, refunded };
  status st = status::none;
  std::string payment_id;
  std::string provider;
  std::string reason;
  std::int64_t amount_cents = 0;

  /// An authorization awaiting capture or void stays cached.
  bool keep() const noexcept {
    return st == status::authorized;
  }

  void apply(const events::event& ev) {
    using namespace events;
    if (auto* x = std::get_if<payment_authorized>(&ev)) {
      st = status::authorized;
      payment_id = x->payment_id;
      provider = x->provider;
      amount_cents = x->amount_cents;
    } else if (auto* x = std::get_if<payment_declined>(&ev)) {
      st = status::declined;
      reason = x->reason;
    } else if (std::holds_alternative<payment_captured>(ev)) {
      st = status::captured;
    } else if (std::holds_alternative<payment_voided>(ev)) {
      st = status::voided;
    } else if (std::holds_alternative<payment_refunded>(ev)) {
      st = status::refunded;
    }
  }
};

using status = payment_record::status;

class payment_actor : public keyed_service<payment_record> {
public:
  payment_actor(caf::actor_config& cfg, provider_service_config conf)
    : keyed_service(cfg, std::move(conf), std::string{events::payment_prefix}) {
  }

  caf::behavior make_behavior() override {
    return {
      [this](events::authorize_payment& cmd) -> caf::result<payment_reply> {
        auto rp = make_response_promise();
        with_key(cmd.order_id, [this, cmd, rp] { authorize(cmd, rp); });
        return rp;
      },
      [this](events::capture_payment& cmd) -> caf::result<payment_reply> {
        return settle(cmd.order_id, cmd.causation, "capture", status::authorized,
                      status::captured);
      },
      [this](events::void_payment& cmd) -> caf::result<payment_reply> {
        return settle(cmd.order_id, cmd.causation, "void", status::authorized, status::voided);
      },
      [this](events::refund_payment& cmd) -> caf::result<payment_reply> {
        return settle(cmd.order_id, cmd.causation, "refund", status::captured,
                      status::refunded);
      },
      [this](persisted_atom, std::uint64_t token, caf::error& err, std::uint64_t first,
             std::uint64_t last, std::uint64_t pos) { on_persisted(token, err, first, last, pos); },
      [this](crash_atom) -> caf::result<payment_reply> {
        throw std::runtime_error("injected crash");
      },
    };
  }

private:
  void authorize(const events::authorize_payment& cmd, caf::response_promise rp) {
    auto& rec = record(cmd.order_id);
    if (rec.st != status::none) {
      auto res = rec.st == status::declined ? outcome::declined : outcome::authorized;
      auto reason = rec.st == status::declined ? rec.reason : std::string{};
      done(cmd.order_id, rp,
           payment_reply{res, rec.payment_id, rec.provider, reason, last_event(cmd.order_id)});
      return;
    }
    provider_request req{"authorize", cmd.idempotency_key, cmd.amount_cents};
    call_in_order(
      this, pool_, pool_.all(), 0, req, false,
      [this, cmd, rp](std::size_t idx, provider_answer& ans) mutable {
        auto& gw = pool_.routes()[idx].name;
        if (ans.declined) {
          persist(cmd.order_id, events::payment_declined{cmd.order_id, gw, ans.reason},
                  cmd.causation, [this, cmd, rp, gw, ans]() mutable {
                    done(cmd.order_id, rp,
                         payment_reply{outcome::declined, {}, gw, ans.reason,
                                       last_event(cmd.order_id)});
                  });
          return;
        }
        events::payment_authorized ev{cmd.order_id, ans.reference, gw, cmd.amount_cents,
                                      cmd.currency, cmd.idempotency_key};
        persist(cmd.order_id, ev, cmd.causation, [this, cmd, rp, ans, gw]() mutable {
          done(cmd.order_id, rp, payment_reply{outcome::authorized, ans.reference, gw, {},
                                               last_event(cmd.order_id)});
        });
      },
      [this, cmd, rp](caf::error& err) mutable {
        auto reason = describe(err);
        persist(cmd.order_id, events::payment_unavailable{cmd.order_id, "all", reason},
                cmd.causation, [this, cmd, rp, reason]() mutable {
                  done(cmd.order_id, rp, payment_reply{outcome::unavailable, {}, {}, reason,
                                                       last_event(cmd.order_id)});
                });
      });
  }

  /// Capture, void or refund: moves `from` -> `to` through the provider
  /// that authorized the payment. Repeating a finished one answers done.
  caf::result<payment_reply> settle(const std::string& order_id, const events::event_id& cause,
                                    const char* op, status from, status to) {
    auto rp = make_response_promise();
    with_key(order_id, [this, order_id, cause, op, from, to, rp]() mutable {
      auto& rec = record(order_id);
      if (rec.st == to || (to == status::voided
                           && (rec.st == status::none || rec.st == status::declined))) {
        // Already done (its event is the last), or nothing was ever authorized to void.
        auto ev = rec.st == to ? last_event(order_id) : events::event_id{};
        done(order_id, rp, payment_reply{outcome::done, rec.payment_id, rec.provider, {}, ev});
        return;
      }
      if (rec.st != from) {
        done(order_id, rp, payment_reply{outcome::unavailable, rec.payment_id, rec.provider,
                                         std::string{"cannot "} + op + " in this state"});
        return;
      }
      // Only the gateway that authorized the payment can settle it.
      provider_request req{op, std::string{op} + "-" + order_id, rec.amount_cents};
      call_in_order(
        this, pool_, pool_.only(rec.provider), 0, req, false,
        [this, order_id, cause, to, rp](std::size_t, provider_answer&) mutable {
          auto& rec = record(order_id);
          events::event ev;
          if (to == status::captured)
            ev = events::payment_captured{order_id, rec.payment_id, rec.provider, rec.amount_cents};
          else if (to == status::voided)
            ev = events::payment_voided{order_id, rec.payment_id, rec.provider};
          else
            ev = events::payment_refunded{order_id, rec.payment_id, rec.provider, rec.amount_cents};
          auto pid = rec.payment_id;
          auto prov = rec.provider;
          persist(order_id, ev, cause, [this, order_id, rp, pid, prov]() mutable {
            done(order_id, rp, payment_reply{outcome::done, pid, prov, {}, last_event(order_id)});
          });
        },
        [this, order_id, rp](caf::error& err) mutable {
          done(order_id, rp, payment_reply{outcome::unavailable, {}, {}, describe(err)});
        });
    });
    return rp;
  }

};

} // namespace

caf::actor spawn_payment(caf::actor_system& sys, provider_service_config cfg) {
  return sys.spawn<payment_actor>(std::move(cfg));
}

} // namespace keel::actors
