#include "supervisor.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <random>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/response_promise.hpp>
#include <caf/sec.hpp>
#include <caf/stateful_actor.hpp>

#include "keel/actors/messages.hpp"
#include "keel/events/error.hpp"
#include "keel/events/streams.hpp"

namespace keel::actors {

namespace {

struct child_slot {
  caf::actor hdl;
  bool up = false;
  /// Killed by a one-for-all restart: its exit is expected, not a crash.
  bool stopping = false;
  std::deque<std::uint64_t> waiting;
};

struct call {
  caf::response_promise rp;
  caf::message msg;
  std::size_t child = 0;
  std::uint32_t attempt = 0;
  steady_time started{};
  breaker_ticket ticket;
};

template <class Reply>
struct supervisor_state {
  supervisor_config cfg;
  std::vector<child_slot> children;
  std::map<std::uint64_t, call> calls;
  std::uint64_t next_id = 1;
  std::optional<restart_budget> budget;
  std::optional<breaker> brk;
  std::mt19937_64 rng;
  std::shared_ptr<breaker_gauge> breaker_metrics;
  std::shared_ptr<supervisor_gauge> metrics;
  std::unique_ptr<journal> log;
  static inline const char* name = "keel.supervisor";
};

template <class Reply>
using supervisor_actor = caf::stateful_actor<supervisor_state<Reply>>;

bool counts_as_failure(const caf::error& err) {
  if (err == caf::sec::request_timeout)
    return true;
  switch (code_of(err)) {
    case errc::timeout:
    case errc::actor_crashed:
    case errc::provider_failure:
    case errc::storage_failure:
    case errc::restart_budget_exhausted:
      return true;
    default:
      return false;
  }
}

template <class Reply>
void record_event(supervisor_actor<Reply>* self, std::string stream, const events::event& ev) {
  auto& st = self->state;
  if (!st.log)
    return;
  std::vector<storage::new_event> evs{make_new_event(ev, st.cfg.now_us())};
  st.log->append(caf::actor_cast<caf::actor>(self), std::move(stream), storage::expected_version::any(),
                 std::move(evs), [](const caf::error&, const storage::append_result&) {});
}

template <class Reply>
void on_transitions(supervisor_actor<Reply>* self, std::vector<breaker_transition>& ts) {
  auto& st = self->state;
  for (auto& t : ts) {
    st.breaker_metrics->state = static_cast<std::uint8_t>(t.to);
    st.breaker_metrics->transitions++;
    record_event(self, events::breaker_stream(st.cfg.name),
                 events::breaker_transitioned{st.cfg.name, t.from, t.to, t.failures, t.reason});
    if (t.to == events::breaker_state::open)
      self->delayed_send(self, st.brk->config().wait_in_open, tick_atom::value);
  }
  ts.clear();
}

template <class Reply>
void settle(supervisor_actor<Reply>* self, std::uint64_t id, bool failed) {
  auto& st = self->state;
  auto i = st.calls.find(id);
  if (st.brk && i->second.ticket.permitted) {
    std::vector<breaker_transition> ts;
    auto elapsed = self->clock().now() - i->second.started;
    st.brk->record(i->second.ticket, !failed, elapsed, ts);
    if (failed)
      st.breaker_metrics->failures++;
    on_transitions(self, ts);
  }
  st.calls.erase(i);
}

template <class Reply>
void dispatch(supervisor_actor<Reply>* self, std::uint64_t id);

template <class Reply>
void on_error(supervisor_actor<Reply>* self, std::uint64_t id, std::uint32_t attempt,
              caf::error err) {
  auto& st = self->state;
  auto i = st.calls.find(id);
  if (i == st.calls.end() || i->second.attempt != attempt)
    return;
  // The child died with this request in its mailbox: the exit handler
  // re-sends it to the successor (whichever of the two arrives first).
  if (err == caf::sec::request_receiver_down)
    return;
  if (err == caf::sec::request_timeout) {
    st.breaker_metrics->timeouts++;
    err = make_error(errc::timeout, st.cfg.name + ": no answer within "
                                      + std::to_string(st.cfg.call_timeout.count() / 1000000)
                                      + " ms");
  }
  auto failed = counts_as_failure(err);
  i->second.rp.deliver(std::move(err));
  settle(self, id, failed);
}

template <class Reply>
void dispatch(supervisor_actor<Reply>* self, std::uint64_t id) {
  auto& st = self->state;
  auto& c = st.calls.at(id);
  auto& slot = st.children.at(c.child);
  if (!slot.up) {
    if (slot.waiting.size() >= st.cfg.max_waiting) {
      c.rp.deliver(make_error(errc::overloaded, st.cfg.name + ": child restarting, "
                                                  + std::to_string(st.cfg.max_waiting)
                                                  + " requests already waiting"));
      settle(self, id, false);
      return;
    }
    slot.waiting.push_back(id);
    return;
  }
  auto attempt = ++c.attempt;
  auto timeout = st.cfg.call_timeout.count() > 0 ? caf::duration{st.cfg.call_timeout}
                                                 : caf::duration{caf::infinite};
  self->request(slot.hdl, timeout, c.msg)
    .then(
      [self, id, attempt](Reply& reply) {
        auto& calls = self->state.calls;
        auto i = calls.find(id);
        if (i == calls.end() || i->second.attempt != attempt)
          return;
        i->second.rp.deliver(std::move(reply));
        settle(self, id, false);
      },
      [self, id, attempt](caf::error& err) { on_error(self, id, attempt, std::move(err)); });
}

template <class Reply>
caf::result<caf::message> forward(supervisor_actor<Reply>* self, caf::message_view& xs) {
  auto& st = self->state;
  auto* elem = self->current_mailbox_element();
  auto msg = xs.move_content_to_message();
  auto child = st.cfg.route ? st.cfg.route(msg) % st.children.size() : 0;
  if (elem == nullptr || !elem->mid.is_request()) {
    if (st.children[child].up)
      self->send(st.children[child].hdl, std::move(msg));
    return caf::message{};
  }
  auto rp = self->make_response_promise();
  call c{rp, std::move(msg), child, 0, self->clock().now(), {}};
  if (st.brk) {
    std::vector<breaker_transition> ts;
    c.ticket = st.brk->acquire(c.started, ts);
    on_transitions(self, ts);
    st.breaker_metrics->calls++;
    if (!c.ticket.permitted) {
      st.breaker_metrics->fast_failed++;
      rp.deliver(make_error(errc::circuit_open, "breaker " + st.cfg.name + " is open"));
      return rp;
    }
  }
  auto id = st.next_id++;
  st.calls.emplace(id, std::move(c));
  dispatch(self, id);
  return rp;
}

template <class Reply>
void start_child(supervisor_actor<Reply>* self, std::size_t idx) {
  auto& slot = self->state.children[idx];
  slot.hdl = self->state.cfg.children[idx].start(self->system());
  self->link_to(slot.hdl);
  slot.up = true;
  slot.stopping = false;
  auto waiting = std::move(slot.waiting);
  slot.waiting.clear();
  for (auto id : waiting)
    if (self->state.calls.count(id) > 0)
      dispatch(self, id);
}

template <class Reply>
void escalate(supervisor_actor<Reply>* self, const caf::error& cause) {
  auto& st = self->state;
  st.metrics->escalated = true;
  auto err = make_error(errc::restart_budget_exhausted,
                        st.cfg.name + ": more than " + std::to_string(st.cfg.intensity)
                          + " restarts within the period; last cause: " + describe(cause));
  for (auto& kvp : st.calls)
    kvp.second.rp.deliver(err);
  st.calls.clear();
  self->quit(err);
}

/// Moves every unanswered call of child `idx` to its waiting list, so the
/// successor gets them in their original order.
template <class Reply>
void requeue(supervisor_actor<Reply>* self, std::size_t idx) {
  auto& st = self->state;
  std::deque<std::uint64_t> ids;
  for (auto& kvp : st.calls)
    if (kvp.second.child == idx) {
      kvp.second.attempt++; // late answers of the dead child are ignored
      ids.push_back(kvp.first);
    }
  auto& slot = st.children[idx];
  for (auto id : slot.waiting)
    ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  st.metrics->resent += ids.size();
  slot.waiting = std::move(ids);
}

template <class Reply>
void schedule_restart(supervisor_actor<Reply>* self, std::size_t idx, const caf::error& reason) {
  auto& st = self->state;
  auto attempt = static_cast<std::uint32_t>(st.budget->recent());
  auto delay = backoff_delay(st.cfg.restart_backoff, std::max<std::uint32_t>(attempt, 1), st.rng);
  st.metrics->restarts++;
  record_event(self, std::string{events::supervisor_stream},
               events::actor_restarted{st.cfg.children[idx].name, describe(reason), attempt});
  self->delayed_send(self, delay, restart_atom::value, static_cast<std::uint64_t>(idx));
}

template <class Reply>
void on_child_exit(supervisor_actor<Reply>* self, std::size_t idx, const caf::error& reason) {
  auto& st = self->state;
  auto& slot = st.children[idx];
  slot.up = false;
  slot.hdl = nullptr;
  if (slot.stopping) {
    requeue(self, idx);
    return; // a sibling's restart stopped it; that restart brings it back
  }
  st.metrics->crashes++;
  if (!st.budget->allow(self->clock().now())) {
    escalate(self, reason);
    return;
  }
  requeue(self, idx);
  if (st.cfg.strategy == restart_strategy::one_for_all) {
    for (std::size_t j = 0; j < st.children.size(); ++j) {
      auto& other = st.children[j];
      if (j != idx && other.up) {
        other.stopping = true;
        self->unlink_from(other.hdl);
        self->send_exit(other.hdl, caf::exit_reason::kill);
        other.up = false;
        other.hdl = nullptr;
        requeue(self, j);
        schedule_restart(self, j, reason);
      }
    }
  }
  schedule_restart(self, idx, reason);
}

template <class Reply>
caf::behavior supervisor_fn(supervisor_actor<Reply>* self, supervisor_config cfg) {
  auto& st = self->state;
  st.cfg = std::move(cfg);
  st.rng.seed(st.cfg.seed);
  st.budget.emplace(st.cfg.intensity, st.cfg.period);
  st.metrics = st.cfg.metrics->supervisor(st.cfg.name);
  st.breaker_metrics = st.cfg.metrics->breaker(st.cfg.name);
  if (st.cfg.breaker) {
    st.brk.emplace(*st.cfg.breaker);
    st.breaker_metrics->state = static_cast<std::uint8_t>(events::breaker_state::closed);
  }
  if (st.cfg.store)
    st.log = std::make_unique<journal>(st.cfg.store, st.cfg.mode);
  st.children.resize(st.cfg.children.size());
  for (std::size_t i = 0; i < st.children.size(); ++i)
    start_child(self, i);
  self->set_exit_handler([self](caf::exit_msg& msg) {
    auto& children = self->state.children;
    for (std::size_t i = 0; i < children.size(); ++i)
      if (children[i].hdl && children[i].hdl.address() == msg.source) {
        on_child_exit(self, i, msg.reason);
        return;
      }
    self->quit(msg.reason); // our parent (or a peer we were linked to) ended
  });
  self->set_default_handler([self](caf::scheduled_actor*, caf::message_view& xs) {
    return forward(self, xs);
  });
  return {
    [self](persisted_atom, std::uint64_t token, caf::error& err, std::uint64_t first,
           std::uint64_t last, std::uint64_t pos) {
      if (self->state.log)
        self->state.log->complete(token, err, first, last, pos);
    },
    [self](restart_atom, std::uint64_t idx) {
      if (idx < self->state.children.size() && !self->state.children[idx].up)
        start_child(self, idx);
    },
    [self](tick_atom) {
      if (!self->state.brk)
        return;
      std::vector<breaker_transition> ts;
      self->state.brk->tick(self->clock().now(), ts);
      on_transitions(self, ts);
    },
  };
}

} // namespace

template <class Reply>
caf::actor spawn_supervisor(caf::actor_system& sys, supervisor_config cfg) {
  return sys.spawn(supervisor_fn<Reply>, std::move(cfg));
}

template caf::actor spawn_supervisor<stock_reply>(caf::actor_system&, supervisor_config);
template caf::actor spawn_supervisor<payment_reply>(caf::actor_system&, supervisor_config);
template caf::actor spawn_supervisor<shipment_reply>(caf::actor_system&, supervisor_config);
template caf::actor spawn_supervisor<provider_answer>(caf::actor_system&, supervisor_config);

} // namespace keel::actors
