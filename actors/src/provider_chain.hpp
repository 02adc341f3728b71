#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/error.hpp>
#include <caf/expected.hpp>

#include "keel/actors/breaker.hpp"
#include "keel/actors/messages.hpp"
#include "keel/events/error.hpp"

namespace keel::actors {

/// One provider of a service (a gateway or a carrier) and its supervisor.
struct provider_route {
  std::string name;
  caf::actor hdl;
};

/// The providers of one service shard, primary first. At most `window`
/// calls are in flight to each provider from this shard (the shards'
/// windows add up to the provider's bulkhead), so bursts wait here in FIFO
/// order instead of being rejected as `overloaded` by a healthy provider.
/// A call that waited longer than `max_wait` fails with `timeout`. Owned by
/// one actor; `clear()` it when the actor exits (the callbacks may hold
/// promises that refer to the actor).
class provider_pool {
public:
  using callback = std::function<void(caf::expected<provider_answer>)>;

  provider_pool(std::vector<provider_route> routes, std::size_t window, duration max_wait)
    : routes_(std::move(routes)),
      window_(std::max<std::size_t>(window, 1)),
      max_wait_(max_wait),
      in_flight_(routes_.size(), 0),
      queues_(routes_.size()) {
  }

  const std::vector<provider_route>& routes() const noexcept {
    return routes_;
  }

  /// Every provider, primary first.
  std::vector<std::size_t> all() const {
    std::vector<std::size_t> result(routes_.size());
    for (std::size_t i = 0; i < result.size(); ++i)
      result[i] = i;
    return result;
  }

  /// Provider `name` alone (the one that holds an authorization or a
  /// shipment), or every provider when `name` is unknown.
  std::vector<std::size_t> only(const std::string& name) const {
    for (std::size_t i = 0; i < routes_.size(); ++i)
      if (routes_[i].name == name)
        return {i};
    return all();
  }

  template <class Self>
  void call(Self* self, std::size_t idx, provider_request req, callback k) {
    if (in_flight_[idx] < window_) {
      send(self, idx, std::move(req), std::move(k));
      return;
    }
    queues_[idx].push_back({std::move(req), std::move(k), self->clock().now()});
  }

  void clear() {
    for (auto& q : queues_)
      q.clear();
  }

private:
  struct waiting {
    provider_request req;
    callback k;
    steady_time since;
  };

  template <class Self>
  void send(Self* self, std::size_t idx, provider_request req, callback k) {
    ++in_flight_[idx];
    auto done = [this, self, idx, k](caf::expected<provider_answer> res) {
      --in_flight_[idx];
      k(std::move(res));
      next(self, idx);
    };
    self->request(routes_[idx].hdl, caf::infinite, std::move(req))
      .then([done](provider_answer& ans) { done(std::move(ans)); },
            [done](caf::error& err) { done(std::move(err)); });
  }

  template <class Self>
  void next(Self* self, std::size_t idx) {
    auto& q = queues_[idx];
    auto now = self->clock().now();
    while (!q.empty() && in_flight_[idx] < window_) {
      auto w = std::move(q.front());
      q.pop_front();
      if (now - w.since > max_wait_)
        w.k(make_error(errc::timeout, routes_[idx].name + ": waited too long for a free slot"));
      else
        send(self, idx, std::move(w.req), std::move(w.k));
    }
  }

  std::vector<provider_route> routes_;
  std::size_t window_;
  duration max_wait_;
  std::vector<std::size_t> in_flight_;
  std::vector<std::deque<waiting>> queues_;
};

/// Calls the providers `order[pos..]` of `pool` in turn until one answers:
/// an error (gateway fault, timeout, open breaker, full bulkhead) moves on
/// to the next, and so does a decline when `next_on_decline`.
/// `on_answer(idx, answer)` gets the first answer (or the last decline);
/// `on_fail(err)` the last error when no provider answered.
template <class Self, class OnAnswer, class OnFail>
void call_in_order(Self* self, provider_pool& pool, std::vector<std::size_t> order,
                   std::size_t pos, provider_request req, bool next_on_decline,
                   OnAnswer on_answer, OnFail on_fail) {
  auto idx = order[pos];
  auto again = [=, &pool]() mutable {
    call_in_order(self, pool, std::move(order), pos + 1, std::move(req), next_on_decline,
                  std::move(on_answer), std::move(on_fail));
  };
  pool.call(self, idx, req,
            [=](caf::expected<provider_answer> res) mutable {
              auto last = pos + 1 >= order.size();
              if (res && (!res->declined || !next_on_decline || last))
                on_answer(idx, *res);
              else if (!last)
                again();
              else
                on_fail(res.error());
            });
}

} // namespace keel::actors
