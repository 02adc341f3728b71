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
      [this](answer_atom, std::uint64_t id) { answer(id); },
      [this](timeout_atom, std::uint64_t id) { expire(id); },
      [this](crash_atom) -> caf::result<provider_answer> {
        throw std::runtime_error("injected crash");
      },
    };
  }

  void on_exit() override {
    // Pending promises refer to this actor: drop them or it never dies.
    pending_.clear();
    limits_.clear();
    service_actor::on_exit();
  }

private:
  struct pending_call {
    caf::response_promise rp;
    steady_time started;
    provider_plan plan;
  };

  caf::result<provider_answer> call(const provider_request& req) {
    auto now = clock().now();
    auto plan = conf_.provider->plan({req.operation, req.idempotency_key, req.amount_cents}, now);
    auto load = static_cast<double>(in_use()) / static_cast<double>(std::max<std::int64_t>(1, capacity()));
    auto limit = adaptive_timeout(conf_.timeout, latencies_.quantile(0.99), load);
    auto id = next_id_++;
    auto rp = make_response_promise();
    if (plan.result != provider_plan::outcome::hang)
      delayed_send(this, plan.latency, answer_atom::value, id);
    delayed_send(this, limit, timeout_atom::value, id);
    limits_.emplace(id, limit);
    pending_.emplace(id, pending_call{rp, now, std::move(plan)});
    return rp;
  }

  void answer(std::uint64_t id) {
    auto i = pending_.find(id);
    if (i == pending_.end())
      return;
    auto c = std::move(i->second);
    finish(i); // frees the slot before the answer can bring the next call
    latencies_.record(clock().now() - c.started);
    if (c.plan.result == provider_plan::outcome::failed)
      c.rp.deliver(make_error(errc::provider_failure, name_of() + ": " + c.plan.reason));
    else
      c.rp.deliver(provider_answer{c.plan.result == provider_plan::outcome::declined,
                                   c.plan.reference, c.plan.delivery_days, c.plan.reason});
  }

  void expire(std::uint64_t id) {
    auto i = pending_.find(id);
    if (i == pending_.end())
      return;
    auto limit = limits_[id];
    auto rp = std::move(i->second.rp);
    finish(i); // frees the slot before the answer can bring the next call
    latencies_.record(limit);
    rp.deliver(make_error(errc::timeout, name_of() + ": no answer within "
                                           + std::to_string(limit.count() / 1000000) + " ms"));
  }

  void finish(std::unordered_map<std::uint64_t, pending_call>::iterator i) {
    limits_.erase(i->first);
    pending_.erase(i);
    release();
  }

  std::string name_of() const {
    return conf_.name;
  }

  adapter_config conf_;
  latency_window latencies_;
  std::uint64_t next_id_ = 1;
  std::unordered_map<std::uint64_t, pending_call> pending_;
  std::unordered_map<std::uint64_t, duration> limits_;
};

} // namespace

caf::actor spawn_provider_adapter(caf::actor_system& sys, adapter_config cfg) {
  return sys.spawn<provider_adapter>(std::move(cfg));
}

} // namespace keel::actors
