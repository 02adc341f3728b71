#include "retry_queue.hpp"

#include <map>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/stateful_actor.hpp>

#include "keel/actors/messages.hpp"

namespace keel::actors {

namespace {

struct queue_state {
  retry_queue_config cfg;
  /// Due time -> order id, one map per priority.
  using queue = std::multimap<std::int64_t, std::string>;
  queue premium;
  queue normal;
  /// Where each parked order sits: its queue and its entry there.
  std::unordered_map<std::string, std::pair<queue*, queue::iterator>> index;
  std::shared_ptr<std::atomic<std::int64_t>> depth;
  std::shared_ptr<std::atomic<std::int64_t>> redriven;
  std::shared_ptr<std::atomic<std::int64_t>> overflow;
  static inline const char* name = "keel.retry_queue";
};

using queue_actor = caf::stateful_actor<queue_state>;

void erase(queue_state& s, const std::string& id) {
  auto i = s.index.find(id);
  if (i == s.index.end())
    return;
  i->second.first->erase(i->second.second);
  s.index.erase(i);
}

/// How many orders may go back to payment now: the free bulkhead slots of
/// the closed gateways (so a recovery does not flood them), one while the
/// best gateway is half-open (a trial), none while all are open.
std::size_t budget(const queue_state& s) {
  if (s.cfg.gateways.empty())
    return s.cfg.per_tick;
  std::int64_t free = 0;
  bool half_open = false;
  for (std::size_t i = 0; i < s.cfg.gateways.size(); ++i) {
    auto st = s.cfg.gateways[i]->current();
    half_open = half_open || st == events::breaker_state::half_open;
    if (st == events::breaker_state::closed && i < s.cfg.bulkheads.size()) {
      auto& b = *s.cfg.bulkheads[i];
      free += std::max<std::int64_t>(0, b.capacity - b.in_use);
    }
  }
  if (free > 0)
    return std::min<std::size_t>(s.cfg.per_tick, static_cast<std::size_t>(free));
  return half_open ? 1 : 0;
}

void drain(queue_actor* self) {
  auto& s = self->state;
  auto now = s.cfg.env.now_us();
  auto n = budget(s);
  for (auto* q : {&s.premium, &s.normal})
    while (n > 0 && !q->empty() && q->begin()->first <= now) {
      auto id = q->begin()->second;
      erase(s, id);
      self->send(s.cfg.orders, redrive_atom::value, id);
      s.redriven->fetch_add(1);
      --n;
    }
  *s.depth = static_cast<std::int64_t>(s.index.size());
}

caf::behavior queue_fn(queue_actor* self, retry_queue_config cfg) {
  auto& s = self->state;
  s.cfg = std::move(cfg);
  s.depth = s.cfg.env.metrics->value("retry_queue.depth");
  s.redriven = s.cfg.env.metrics->value("retry_queue.redriven");
  s.overflow = s.cfg.env.metrics->value("retry_queue.overflow");
  self->delayed_send(self, s.cfg.tick, tick_atom::value);
  return {
    [self](park_atom, const std::string& id, std::int64_t retry_at, bool premium) {
      auto& s = self->state;
      erase(s, id);
      if (s.index.size() >= s.cfg.capacity) {
        s.overflow->fetch_add(1);
        return;
      }
      auto& q = premium ? s.premium : s.normal;
      s.index[id] = {&q, q.emplace(retry_at, id)};
      *s.depth = static_cast<std::int64_t>(s.index.size());
    },
    [self](tick_atom) {
      drain(self);
      self->delayed_send(self, self->state.cfg.tick, tick_atom::value);
    },
  };
}

} // namespace

caf::actor spawn_retry_queue(caf::actor_system& sys, retry_queue_config cfg) {
  return sys.spawn(queue_fn, std::move(cfg));
}

} // namespace keel::actors
