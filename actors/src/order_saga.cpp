#include "order_saga.hpp"

#include <algorithm>
#include <deque>
#include <optional>
#include <map>
#include <random>
#include <stdexcept>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/response_promise.hpp>
#include <caf/stateful_actor.hpp>

#include "keel/actors/messages.hpp"
#include "keel/events/error.hpp"
#include "keel/events/streams.hpp"
#include "keel/storage/event_store.hpp"

namespace keel::actors {

namespace {

struct saga_state {
  std::shared_ptr<const saga_env> env;
  caf::actor orders;
  order_state st;
  std::unique_ptr<journal> log;
  /// Appends run one at a time, each decided once durable.
  bool appending = false;
  /// Events to record in order: the event, what runs once it is durable,
  /// and what runs if its append fails.
  struct pending_record {
    events::event ev;
    /// The event it answers (a service's, or the order event it follows).
    events::event_id cause;
    std::function<void()> then;
    std::function<void(const caf::error&)> failed;
  };
  std::deque<pending_record> queued;
  /// The commands of the step in flight; answers of older steps are ignored.
  std::vector<saga_command> step;
  std::uint64_t step_id = 0;
  std::uint32_t step_attempt = 0;
  std::mt19937_64 rng;
  bool ended = false;
  /// A cancel that arrived while an append was in progress, or while a
  /// re-driven authorization was in flight: recorded once the saga is idle
  /// (after that outcome, so a granted authorization is voided).
  std::optional<events::cancel_order> deferred_cancel;
  std::vector<caf::response_promise> cancel_waiters;
  /// Callers that placed the same order id while its order_placed was being
  /// recorded; once it is durable they get its view (created = false), or
  /// order_id_taken when theirs is another order (see same_order).
  std::vector<std::pair<caf::response_promise, events::place_order>> place_waiters;
  static inline const char* name = "keel.saga";
};

using saga_actor = caf::stateful_actor<saga_state>;

/// Service commands carry the id of the event that issued them.
template <class T, class = void>
struct has_causation : std::false_type {};

template <class T>
struct has_causation<T, std::void_t<decltype(std::declval<T&>().causation)>> : std::true_type {};

void execute(saga_actor* self, std::vector<saga_command> cmds);
void record_deferred_cancel(saga_actor* self);

/// Answers waiting cancels, reports the order to `on_finished` when
/// `report` (not for a re-drive that found nothing to do: that was reported
/// already), tells `orders` and quits.
void end(saga_actor* self, bool report = true) {
  auto& s = self->state;
  if (s.ended)
    return;
  s.ended = true;
  for (auto& rp : s.cancel_waiters)
    if (s.st.status == order_status::cancelled)
      rp.deliver(view_of(s.st, false));
    else
      rp.deliver(make_error(errc::not_cancellable,
                            "order " + s.st.order_id + " is " + to_string(s.st.status)));
  s.cancel_waiters.clear();
  if (report && s.env->on_finished)
    s.env->on_finished(finished_order{s.st.order_id, s.st.status, reason_of(s.st),
                                      s.st.placed_at_us, s.env->env.now_us()});
  self->send(s.orders, done_atom::value, s.st.order_id);
  self->quit();
}

void pump(saga_actor* self);

/// Parks the order (pending_payment) on the retry queue, or gives it to the
/// node's hook.
void hand_over(saga_actor* self) {
  auto& s = self->state;
  auto x = parked_of(s.st);
  if (s.env->on_park)
    s.env->on_park(x);
  else
    self->send(s.env->retry_queue, park_atom::value, x.order_id, x.retry_at_us, x.premium);
}

/// A re-drive (retry queue, recovery, crash of an earlier saga). Parks can
/// be stale or repeated (a hook's queue delivers at least once), so only an
/// order that is due is driven on.
void redrive(saga_actor* self) {
  auto& s = self->state;
  if (is_terminal(s.st.status) || s.st.status == order_status::none) {
    end(self, false);
    return;
  }
  if (!s.step.empty() || s.appending)
    return;
  if (s.st.status == order_status::pending_payment && s.env->env.now_us() < s.st.retry_at_us) {
    hand_over(self);
    end(self, false);
    return;
  }
  execute(self, resume(s.st));
}

/// Records `ev` (caused by the event `cause`) in the order stream, folds it
/// through the decider once durable, runs `then` and executes the decided
/// commands.
void record(saga_actor* self, events::event ev, const events::event_id& cause,
            std::function<void()> then = {}, std::function<void(const caf::error&)> failed = {}) {
  auto& s = self->state;
  s.queued.push_back({std::move(ev), cause, std::move(then), std::move(failed)});
  pump(self);
}

/// Records the outcome `ev` of the step in flight: caused by the service
/// event that answered (`answer`), or, when no service event was recorded
/// (a repeated command, a failure seen by the saga itself), by the order
/// event that issued the step.
void record_outcome(saga_actor* self, events::event ev, const events::event_id& answer = {}) {
  record(self, std::move(ev), answer.valid() ? answer : self->state.st.last_event);
}

void pump(saga_actor* self) {
  auto& s = self->state;
  if (s.appending || s.queued.empty())
    return;
  s.appending = true;
  auto [ev, cause, then, failed] = std::move(s.queued.front());
  s.queued.pop_front();
  auto at = s.env->env.now_us();
  auto expected = s.st.version == 0 ? storage::expected_version::no_stream()
                                    : storage::expected_version::exact(s.st.version);
  std::vector<storage::new_event> evs{
    make_new_event(ev, at, correlation_of(s.st.order_id), cause)};
  auto id = evs.front().id;
  s.log->append(caf::actor_cast<caf::actor>(self), events::order_stream(s.st.order_id), expected,
                std::move(evs),
                [self, ev = ev, then = then, failed = failed, at, id](const caf::error& err,
                                                     const storage::append_result& r) {
                  auto& s = self->state;
                  if (err) {
                    // Whoever waits for an answer gets the error now, not a
                    // timeout: the store cannot write (or the append was refused).
                    for (auto& [waiter, other] : s.place_waiters)
                      waiter.deliver(err);
                    s.place_waiters.clear();
                    for (auto& waiter : s.cancel_waiters)
                      waiter.deliver(err);
                    s.cancel_waiters.clear();
                    if (failed)
                      failed(err);
                    if (s.st.status == order_status::none) {
                      // order_placed was not stored: there is no order, nothing to re-drive.
                      s.ended = true;
                      self->send(s.orders, done_atom::value, s.st.order_id);
                      self->quit();
                      return;
                    }
                    throw std::runtime_error(events::order_stream(s.st.order_id) + ": " + describe(err));
                  }
                  auto d = decide(s.st, ev, at, s.env->policy);
                  s.st = std::move(d.state);
                  s.st.version = r.last_version;
                  s.st.last_event = id;
                  s.appending = false;
                  if (then)
                    then();
                  execute(self, std::move(d.commands));
                  if (s.deferred_cancel && !s.ended && !s.appending && s.queued.empty()
                      && s.st.status != order_status::pending_payment)
                    record_deferred_cancel(self);
                  pump(self);
                });
}

void retry_later(saga_actor* self) {
  auto& s = self->state;
  auto delay = backoff_delay(s.env->step_retry, ++s.step_attempt, s.rng);
  self->delayed_send(self, delay, tick_atom::value, s.step_id);
}

/// Splits `lines` by inventory shard (and in a cluster by slot as well):
/// one request per shard and slot.
std::map<std::size_t, std::vector<events::order_line>>
by_shard(const saga_actor* self, const std::vector<events::order_line>& lines) {
  std::map<std::size_t, std::vector<events::order_line>> result;
  auto& env = *self->state.env;
  for (auto& l : lines) {
    auto key = shard_of(l.sku, env.inventory_shards);
    if (env.stock_slots > 0)
      key += shard_of(l.sku, env.stock_slots) * env.inventory_shards;
    result[key].push_back(l);
  }
  return result;
}

/// Tracks the answers of one step's requests.
struct tally {
  std::size_t left = 0;
  bool failed = false;
  bool any_ok = false;
  std::optional<stock_reply> refused;
  /// The first service event the answers named.
  events::event_id event;

  void saw(const events::event_id& id) {
    if (!event.valid())
      event = id;
  }
};

template <class Cmd, class Done>
void to_inventory(saga_actor* self, const Cmd& cmd, Done done) {
  auto t = std::make_shared<tally>();
  auto groups = by_shard(self, cmd.lines);
  t->left = groups.size();
  auto id = self->state.step_id;
  for (auto& [shard, lines] : groups) {
    Cmd part{cmd.order_id, lines, cmd.causation};
    self->request(self->state.env->inventory, caf::infinite, std::move(part))
      .then(
        [self, t, id, done](stock_reply& r) {
          if (!r.ok && !t->refused)
            t->refused = r;
          t->any_ok = t->any_ok || r.ok;
          t->saw(r.event);
          if (--t->left == 0 && id == self->state.step_id)
            done(*t);
        },
        [self, t, id, done](caf::error&) {
          t->failed = true;
          if (--t->left == 0 && id == self->state.step_id)
            done(*t);
        });
  }
}

void reserve(saga_actor* self, const events::reserve_stock& cmd) {
  to_inventory(self, cmd, [self](const tally& t) {
    auto& st = self->state.st;
    if (t.refused)
      record_outcome(self,
                     events::order_stock_refused{st.order_id, t.refused->sku,
                                                 t.refused->requested, t.refused->available,
                                                 t.any_ok || t.failed},
                     t.refused->event);
    else if (t.failed)
      retry_later(self);
    else
      record_outcome(self, events::order_stock_reserved{st.order_id}, t.event);
  });
}

void park(saga_actor* self, std::string reason, const events::event_id& answer = {}) {
  auto& s = self->state;
  auto attempt = s.st.payment_attempts + 1;
  auto delay = backoff_delay(s.env->payment_retry, attempt, s.rng);
  auto retry_at = s.env->env.now_us()
                  + std::chrono::duration_cast<std::chrono::microseconds>(delay).count();
  record_outcome(self,
                 events::order_payment_pending{s.st.order_id, std::move(reason), attempt, retry_at},
                 answer);
}

void authorize(saga_actor* self, const events::authorize_payment& cmd) {
  auto id = self->state.step_id;
  self->request(self->state.env->payment, caf::infinite, cmd)
    .then(
      [self, id](payment_reply& r) {
        auto& st = self->state.st;
        if (id != self->state.step_id)
          return;
        using outcome = payment_reply::outcome;
        if (r.result == outcome::authorized)
          record_outcome(self,
                         events::order_payment_authorized{st.order_id, r.payment_id, r.provider,
                                                          st.total_cents},
                         r.event);
        else if (r.result == outcome::declined)
          record_outcome(self, events::order_payment_declined{st.order_id, r.provider, r.reason},
                         r.event);
        else
          park(self, r.reason, r.event);
      },
      [self, id](caf::error& err) {
        if (id == self->state.step_id)
          park(self, describe(err));
      });
}

void schedule(saga_actor* self, const events::schedule_shipment& cmd) {
  auto id = self->state.step_id;
  self->request(self->state.env->shipping, caf::infinite, cmd)
    .then(
      [self, id](shipment_reply& r) {
        auto& s = self->state;
        if (id != s.step_id)
          return;
        using outcome = shipment_reply::outcome;
        if (r.result == outcome::scheduled)
          record_outcome(self,
                         events::order_shipment_scheduled{s.st.order_id, r.tracking_id, r.carrier,
                                                          r.estimated_delivery_us},
                         r.event);
        else if (r.result == outcome::failed)
          record_outcome(self, events::order_shipment_failed{s.st.order_id, r.reason}, r.event);
        else if (s.step_attempt + 1 >= s.env->max_shipping_attempts)
          record_outcome(self, events::order_shipment_failed{
                                 s.st.order_id, "no carrier available: " + r.reason});
        else
          retry_later(self);
      },
      [self, id](caf::error& err) {
        auto& s = self->state;
        if (id != s.step_id)
          return;
        if (s.step_attempt + 1 >= s.env->max_shipping_attempts)
          record_outcome(self, events::order_shipment_failed{
                                 s.st.order_id, "no carrier available: " + describe(err)});
        else
          retry_later(self);
      });
}

/// Sends a payment or shipping command whose only good answer is "done";
/// anything else retries the whole step later (the commands are idempotent).
template <class Reply, class Cmd>
void expect_done(saga_actor* self, const caf::actor& dest, const Cmd& cmd,
                 std::shared_ptr<tally> t, std::function<void(const tally&)> done) {
  auto id = self->state.step_id;
  self->request(dest, caf::infinite, cmd)
    .then(
      [self, id, t, done](Reply& r) {
        t->failed = t->failed || r.result != Reply::outcome::done;
        t->saw(r.event);
        if (--t->left == 0 && id == self->state.step_id)
          done(*t);
      },
      [self, id, t, done](caf::error&) {
        t->failed = true;
        if (--t->left == 0 && id == self->state.step_id)
          done(*t);
      });
}

void run_step(saga_actor* self);

/// Capture and commit run together; the order completes when both are done.
void finish(saga_actor* self, const events::capture_payment& cap, const events::commit_stock& com) {
  auto t = std::make_shared<tally>();
  t->left = 2;
  auto done = [self](const tally& t) {
    if (t.failed)
      retry_later(self);
    else
      record_outcome(self, events::order_completed{self->state.st.order_id}, t.event);
  };
  expect_done<payment_reply>(self, self->state.env->payment, cap, t, done);
  to_inventory(self, com, [t, done](const tally& inv) {
    t->failed = t->failed || inv.failed || inv.refused.has_value();
    t->saw(inv.event);
    if (--t->left == 0)
      done(*t);
  });
}

void compensate(saga_actor* self, const saga_command& cmd) {
  auto& st = self->state.st;
  auto then = [self](events::event ev) {
    return [self, ev](const tally& t) {
      if (t.failed)
        retry_later(self);
      else
        record_outcome(self, ev, t.event);
    };
  };
  auto t = std::make_shared<tally>();
  t->left = 1;
  if (auto* x = std::get_if<events::void_payment>(&cmd))
    expect_done<payment_reply>(self, self->state.env->payment, *x, t,
                               then(events::order_payment_voided{st.order_id, x->payment_id}));
  else if (auto* x = std::get_if<events::cancel_shipment>(&cmd))
    expect_done<shipment_reply>(self, self->state.env->shipping, *x, t,
                                then(events::order_shipment_cancelled{st.order_id, x->tracking_id}));
  else if (auto* x = std::get_if<events::release_stock>(&cmd))
    to_inventory(self, *x, then(events::order_stock_released{st.order_id}));
}

void record_deferred_cancel(saga_actor* self) {
  auto& s = self->state;
  auto cmd = std::move(*s.deferred_cancel);
  s.deferred_cancel.reset();
  auto waiters = std::move(s.cancel_waiters);
  s.cancel_waiters.clear();
  if (!can_cancel(s.st)) {
    for (auto& rp : waiters)
      rp.deliver(make_error(errc::not_cancellable,
                            "order " + s.st.order_id + " is " + to_string(s.st.status)));
    return;
  }
  record(
    self, events::order_cancel_requested{cmd.order_id, cmd.requested_by}, {},
    [self, waiters]() mutable {
      for (auto& rp : waiters)
        rp.deliver(view_of(self->state.st, false));
    },
    [waiters](const caf::error& err) mutable {
      for (auto& rp : waiters)
        rp.deliver(err);
    });
}

void run_step(saga_actor* self) {
  auto& s = self->state;
  if (s.step.empty())
    return;
  auto& first = s.step.front();
  if (auto* x = std::get_if<events::reserve_stock>(&first))
    reserve(self, *x);
  else if (auto* x = std::get_if<events::authorize_payment>(&first))
    authorize(self, *x);
  else if (auto* x = std::get_if<events::schedule_shipment>(&first))
    schedule(self, *x);
  else if (auto* x = std::get_if<events::capture_payment>(&first))
    finish(self, *x, std::get<events::commit_stock>(s.step.at(1)));
  else
    compensate(self, first);
}

void execute(saga_actor* self, std::vector<saga_command> cmds) {
  auto& s = self->state;
  if (cmds.empty()) {
    if (is_terminal(s.st.status))
      end(self);
    return;
  }
  auto& first = cmds.front();
  if (auto* x = std::get_if<record_rejected>(&first)) {
    record(self, events::order_rejected{s.st.order_id, x->reason, x->code}, s.st.last_event);
  } else if (auto* x = std::get_if<record_cancelled>(&first)) {
    record(self, events::order_cancelled{s.st.order_id, x->reason, x->code}, s.st.last_event);
  } else if (std::holds_alternative<park_payment>(first)) {
    if (s.deferred_cancel) {
      record_deferred_cancel(self);
      return;
    }
    hand_over(self); // the decider's figures are the state's
    end(self);
  } else {
    // Each command names the order event whose decision issued it.
    for (auto& c : cmds)
      std::visit(
        [&s](auto& x) {
          if constexpr (has_causation<std::decay_t<decltype(x)>>::value)
            x.causation = s.st.last_event;
        },
        c);
    s.step = std::move(cmds);
    s.step_id++;
    s.step_attempt = 0;
    run_step(self);
  }
}

caf::result<order_view> place(saga_actor* self, events::place_order& cmd) {
  auto& s = self->state;
  if (s.st.status != order_status::none) {
    if (auto err = same_order(s.st, cmd))
      return err;
    return view_of(s.st, false);
  }
  auto rp = self->make_response_promise();
  if (s.appending) { // the first placement of this id is being recorded
    s.place_waiters.emplace_back(rp, std::move(cmd));
    return rp;
  }
  // The orders actor prices a new order before its saga sees it.
  if (cmd.currency.empty()
      || std::any_of(cmd.lines.begin(), cmd.lines.end(),
                     [](auto& l) { return l.unit_price_cents == events::unpriced; }))
    return make_error(errc::invalid_argument, "order " + cmd.order_id + " is not priced");
  events::order_placed ev{cmd.order_id,
                          cmd.customer_id,
                          cmd.lines,
                          cmd.currency,
                          cmd.shipping_address,
                          cmd.premium,
                          events::total_cents(cmd.lines)};
  record(
    self, std::move(ev), {},
    [self, rp]() mutable {
      auto& s = self->state;
      rp.deliver(view_of(s.st, true));
      for (auto& [waiter, other] : s.place_waiters) {
        if (auto err = same_order(s.st, other))
          waiter.deliver(std::move(err));
        else
          waiter.deliver(view_of(s.st, false));
      }
      s.place_waiters.clear();
    },
    [rp](const caf::error& err) mutable { rp.deliver(err); });
  return rp;
}

caf::result<order_view> cancel(saga_actor* self, events::cancel_order& cmd) {
  auto& s = self->state;
  if (s.st.cancel_requested || s.st.status == order_status::cancelled)
    return view_of(s.st, false);
  if (!can_cancel(s.st))
    return make_error(errc::not_cancellable, "order " + cmd.order_id + " is "
                                               + to_string(s.st.status));
  auto rp = self->make_response_promise();
  if (s.deferred_cancel || s.appending || !s.queued.empty()
      || (s.st.status == order_status::pending_payment && !s.step.empty())) {
    // Busy recording, or a re-driven authorization is in flight: the
    // cancel is recorded once the saga is idle (see record_deferred_cancel).
    if (!s.deferred_cancel)
      s.deferred_cancel = cmd;
    s.cancel_waiters.push_back(rp);
    return rp;
  }
  record(
    self, events::order_cancel_requested{cmd.order_id, cmd.requested_by}, {},
    [self, rp]() mutable { rp.deliver(view_of(self->state.st, false)); },
    [rp](const caf::error& err) mutable { rp.deliver(err); });
  return rp;
}

caf::behavior saga_fn(saga_actor* self, std::shared_ptr<const saga_env> env, caf::actor orders,
                      std::string order_id, std::optional<order_state> known) {
  auto& s = self->state;
  s.env = std::move(env);
  s.orders = std::move(orders);
  s.rng.seed(s.env->seed ^ stable_hash(order_id));
  s.log = std::make_unique<journal>(s.env->env.store, s.env->env.mode);
  if (!known) {
    auto loaded = load_order(*s.env->env.store, order_id, s.env->policy);
    if (!loaded)
      throw std::runtime_error(events::order_stream(order_id) + ": " + describe(loaded.error()));
    known = std::move(*loaded);
  }
  s.st = std::move(*known);
  s.st.order_id = order_id;
  return {
    [self](events::place_order& cmd) { return place(self, cmd); },
    [self](events::cancel_order& cmd) { return cancel(self, cmd); },
    [self](get_atom, const std::string&) { return view_of(self->state.st, false); },
    [self](redrive_atom) { redrive(self); },
    [self](tick_atom, std::uint64_t step_id) {
      if (step_id == self->state.step_id)
        run_step(self);
    },
    [self](persisted_atom, std::uint64_t token, caf::error& err, std::uint64_t first,
           std::uint64_t last, std::uint64_t pos) {
      self->state.log->complete(token, err, first, last, pos);
    },
  };
}

} // namespace

parked_payment parked_of(const order_state& st) {
  return parked_payment{st.order_id,         st.retry_at_us,    st.premium,
                        st.payment_attempts, st.pending_reason,
                        events::to_string(correlation_of(st.order_id))};
}

caf::error same_order(const order_state& st, const events::place_order& cmd) {
  if (st.customer_id != cmd.customer_id)
    return make_error(errc::order_id_taken,
                      "order id " + cmd.order_id + " is taken by another customer's order");
  bool same_lines = st.lines.size() == cmd.lines.size();
  for (std::size_t i = 0; same_lines && i < st.lines.size(); ++i)
    same_lines = st.lines[i].sku == cmd.lines[i].sku
                 && st.lines[i].quantity == cmd.lines[i].quantity;
  if (!same_lines || !(st.shipping_address == cmd.shipping_address)
      || (!cmd.currency.empty() && cmd.currency != st.currency))
    return make_error(errc::order_id_taken,
                      "order id " + cmd.order_id
                        + " is taken by another order of this customer (other items, "
                          "currency or address); a retry must repeat the order it retries");
  return caf::error{};
}

order_view view_of(const order_state& st, bool created) {
  return order_view{st.order_id,    to_string(st.status), reason_of(st),
                    st.total_cents, st.payment_id,        st.tracking_id,
                    st.estimated_delivery_us, created,    st.reason_code};
}

caf::actor spawn_saga(caf::actor_system& sys, std::shared_ptr<const saga_env> env,
                      caf::actor orders, std::string order_id, std::optional<order_state> known) {
  return sys.spawn(saga_fn, std::move(env), std::move(orders), std::move(order_id),
                   std::move(known));
}

caf::expected<order_state> load_order(const storage::event_store& store,
                                      const std::string& order_id, const saga_policy& policy) {
  order_state st;
  auto err = fold_stream(store, events::order_stream(order_id), 1,
                         [&](const events::event& ev, const events::record_view& rec) {
                           st = decide(st, ev, rec.timestamp_us, policy).state;
                           st.version = rec.version;
                           st.last_event = rec.id;
                         });
  if (err)
    return err;
  return st;
}

} // namespace keel::actors
