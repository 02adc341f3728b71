#include "provider_adapter.hpp"

#include <stdexcept>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/response_promise.hpp>

#include "keel/actors/messages.hpp"
#include "keel/events/error.hpp"
#include "service_actor.hpp"

namespace keel::actors {

namespace {

class provider_adapter : public service_actor {
public:
  provider_adapter(caf::actor_config& cfg, adapter_config conf)
    : service_actor(cfg, conf.name, conf.capacity, conf.metrics->bulkhead(conf.name)),
      conf_(std::move(conf)) {
  }

  caf::behavior make_behavior() override {
    return {
      [this](provider_request& req) -> caf::result<provider_answer> { return call(req); },
      [this](answer_atom, std::uint64_t id) { on_answer(id); },
      [this](timeout_atom, std::uint64_t id) { on_timeout(id); },
      [this](crash_atom) -> caf::result<provider_answer> {
        throw std::runtime_error("injected crash");
      },
    };
  }

  void on_exit() override {
    pending_.clear(); // pending promises refer to this actor: it would never die
    service_actor::on_exit();
  }

private:
  /// The observed p99 is recomputed every this many answers, not per call.
  static constexpr std::size_t p99_refresh = 64;

  struct pending_call {
    caf::response_promise rp;
    steady_time started;
    duration limit;
    provider_plan plan;
  };

  caf::result<provider_answer> call(const provider_request& req) {
    auto now = clock().now();
    auto plan = conf_.provider->plan({req.operation, req.idempotency_key, req.amount_cents}, now);
    auto load = static_cast<double>(in_use())
                / static_cast<double>(std::max<std::int64_t>(1, capacity()));
    auto limit = adaptive_timeout(conf_.timeout, p99_, load);
    auto id = next_id_++;
    auto rp = make_response_promise();
    if (plan.result != provider_plan::outcome::hang)
      delayed_send(this, plan.latency, answer_atom::value, id);
    delayed_send(this, limit, timeout_atom::value, id);
    pending_.emplace(id, pending_call{rp, now, limit, std::move(plan)});
    return rp;
  }

  void on_answer(std::uint64_t id) {
    auto i = pending_.find(id);
    if (i == pending_.end())
      return; // timed out before
    auto c = std::move(i->second);
    pending_.erase(i);
    record(clock().now() - c.started);
    if (c.plan.result == provider_plan::outcome::failed)
      answer(c.rp, make_error(errc::provider_failure, conf_.name + ": " + c.plan.reason));
    else
      answer(c.rp, provider_answer{c.plan.result == provider_plan::outcome::declined,
                                   c.plan.reference, c.plan.delivery_days, c.plan.reason});
  }

  void on_timeout(std::uint64_t id) {
    auto i = pending_.find(id);
    if (i == pending_.end())
      return; // answered before
    auto c = std::move(i->second);
    pending_.erase(i);
    record(c.limit);
    answer(c.rp, make_error(errc::timeout, conf_.name + ": no answer within "
                                             + std::to_string(c.limit.count() / 1000000) + " ms"));
  }

  void record(duration latency) {
    latencies_.record(latency);
    if (++since_refresh_ >= p99_refresh || latencies_.size() <= p99_refresh) {
      p99_ = latencies_.quantile(0.99);
      since_refresh_ = 0;
    }
  }

  adapter_config conf_;
  latency_window latencies_;
  duration p99_{0};
  std::size_t since_refresh_ = 0;
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, pending_call> pending_;
};

} // namespace

caf::actor spawn_provider_adapter(caf::actor_system& sys, adapter_config cfg) {
  return sys.spawn<provider_adapter>(std::move(cfg));
}

} // namespace keel::actors
