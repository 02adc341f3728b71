#include "provider_adapter.hpp"

#include <algorithm>
#include <deque>
#include <stdexcept>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/response_promise.hpp>
#include <caf/send.hpp>

#include "journal.hpp"
#include "keel/actors/messages.hpp"
#include "keel/events/error.hpp"
#include "keel/events/streams.hpp"
#include "service_actor.hpp"

namespace keel::actors {

namespace {

std::string millis(duration x) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(x).count()) + " ms";
}

class provider_adapter : public service_actor {
public:
  provider_adapter(caf::actor_config& cfg, adapter_config conf)
    : service_actor(cfg, conf.name, conf.capacity, conf.metrics->bulkhead(conf.name)),
      conf_(std::move(conf)),
      per_worker_(calls_per_worker(conf_.pool, conf_.capacity)),
      workers_(conf_.pool.initial_workers),
      gauge_(conf_.metrics->pool(conf_.name)) {
  }

  caf::behavior make_behavior() override {
    if (conf_.store)
      log_ = std::make_unique<journal>(conf_.store, conf_.mode);
    meter_ = pool_meter{clock().now()};
    start_pool();
    return {
      [this](provider_request& req) -> caf::result<provider_answer> { return call(req); },
      [this](answer_atom, std::uint64_t id, provider_answer& ans) { on_answer(id, std::move(ans)); },
      [this](answer_atom, std::uint64_t id, bool timed_out, std::string& why) {
        on_failure(id, timed_out, std::move(why));
      },
      [this](timeout_atom, std::uint64_t id) { on_timeout(id); },
      [this](tick_atom) { autoscale(); },
      [this](persisted_atom, std::uint64_t token, caf::error& err, std::uint64_t first,
             std::uint64_t last, std::uint64_t pos) {
        if (log_)
          log_->complete(token, err, first, last, pos);
      },
      [this](crash_atom) -> caf::result<provider_answer> {
        throw std::runtime_error("injected crash");
      },
    };
  }

  void on_exit() override {
    // Pending promises refer to this actor: it would never die.
    pending_.clear();
    waiting_.clear();
    if (log_)
      log_->clear();
    service_actor::on_exit();
  }

private:
  /// The observed p99 is recomputed every this many answers, not per call.
  static constexpr std::size_t p99_refresh = 64;

  struct pending_call {
    caf::response_promise rp;
    /// When the call arrived (its timeout runs from here).
    steady_time arrived;
    duration limit;
    provider_request req;
    /// Set once a worker took the call.
    bool at_worker = false;
    steady_time started;
  };

  using call_map = std::unordered_map<std::uint64_t, pending_call>;

  std::size_t slots() const noexcept {
    return static_cast<std::size_t>(workers_) * per_worker_;
  }

  void start_pool() {
    auto previous = gauge_->workers.load();
    gauge_->min = conf_.pool.min_workers;
    gauge_->max = conf_.pool.max_workers;
    gauge_->calls_per_worker = per_worker_;
    publish();
    if (previous != 0 && previous != static_cast<std::int64_t>(workers_))
      record_resize(static_cast<std::uint32_t>(previous), "adapter restarted at its initial size");
    delayed_send(this, conf_.pool.interval, tick_atom::value);
  }

  caf::result<provider_answer> call(provider_request& req) {
    auto now = clock().now();
    auto load = static_cast<double>(in_use())
                / static_cast<double>(std::max<std::int64_t>(1, capacity()));
    auto limit = adaptive_timeout(conf_.timeout, p99_, load);
    auto id = next_id_++;
    auto rp = make_response_promise();
    delayed_send(this, limit, timeout_atom::value, id);
    auto i = pending_.emplace(id, pending_call{rp, now, limit, std::move(req), false, {}})
               .first;
    if (waiting_.empty() && busy_ < slots()) {
      begin(i, now);
    } else {
      waiting_.push_back(id);
      meter_.waited();
    }
    publish();
    return rp;
  }

  /// A worker takes the call: it goes to the provider now. The reply comes
  /// back as a message (from any thread, or delayed by a simulator); one
  /// for a call that timed out, or for an adapter that restarted, is ignored.
  void begin(call_map::iterator i, steady_time now) {
    auto& c = i->second;
    c.at_worker = true;
    c.started = now;
    ++busy_;
    auto self = caf::actor_cast<caf::weak_actor_ptr>(this);
    auto id = i->first;
    conf_.provider->call({c.req.operation, c.req.idempotency_key, c.req.amount_cents}, now,
                         [self, id](provider_reply r, duration after) {
                           deliver(self, id, std::move(r), after);
                         });
  }

  static void deliver(const caf::weak_actor_ptr& self, std::uint64_t id, provider_reply r,
                      duration after) {
    auto strong = self.lock();
    if (!strong)
      return;
    auto hdl = caf::actor_cast<caf::actor>(strong);
    auto send = [&](auto&&... xs) {
      if (after > duration::zero())
        caf::delayed_anon_send(hdl, after, answer_atom::value, id, std::move(xs)...);
      else
        caf::anon_send(hdl, answer_atom::value, id, std::move(xs)...);
    };
    using outcome = provider_reply::outcome;
    if (r.result == outcome::failed || r.result == outcome::timed_out)
      send(r.result == outcome::timed_out, std::move(r.reason));
    else
      send(provider_answer{r.result == provider_reply::outcome::declined,
                           std::move(r.reference), r.delivery_days, std::move(r.reason)});
  }

  /// Hands waiting calls to free slots, oldest first. A call whose time is
  /// up is answered instead of being sent (its timeout may be due at the
  /// same instant as the one that freed the slot).
  void next(steady_time now) {
    while (!waiting_.empty() && busy_ < slots()) {
      auto i = pending_.find(waiting_.front());
      waiting_.pop_front();
      if (i == pending_.end())
        continue;
      if (now - i->second.arrived >= i->second.limit)
        expire(i);
      else
        begin(i, now);
    }
    publish();
  }

  /// Answers a call that never reached a worker with `timeout`. No latency
  /// sample (the provider never saw it), no slot to free.
  void expire(call_map::iterator i) {
    auto c = std::move(i->second);
    pending_.erase(i);
    answer(c.rp, make_error(errc::timeout, conf_.name + ": no answer within " + millis(c.limit)
                                             + " (waited for one of " + std::to_string(workers_)
                                             + " workers)"));
  }

  /// Takes a call that was at a worker out of the pool.
  pending_call leave(call_map::iterator i, steady_time now) {
    auto c = std::move(i->second);
    pending_.erase(i);
    --busy_;
    auto latency = now - c.started;
    meter_.left(latency);
    latencies_.record(latency);
    if (++since_refresh_ >= p99_refresh || latencies_.size() <= p99_refresh) {
      p99_ = latencies_.quantile(0.99);
      since_refresh_ = 0;
    }
    return c;
  }

  void on_answer(std::uint64_t id, provider_answer ans) {
    auto i = pending_.find(id);
    if (i == pending_.end() || !i->second.at_worker)
      return; // timed out before
    auto now = clock().now();
    auto c = leave(i, now);
    answer(c.rp, std::move(ans));
    next(now);
  }

  void on_failure(std::uint64_t id, bool timed_out, std::string why) {
    auto i = pending_.find(id);
    if (i == pending_.end() || !i->second.at_worker)
      return; // timed out before
    auto now = clock().now();
    auto c = leave(i, now);
    answer(c.rp, make_error(timed_out ? errc::timeout : errc::provider_failure,
                            conf_.name + ": " + why));
    next(now);
  }

  void on_timeout(std::uint64_t id) {
    auto i = pending_.find(id);
    if (i == pending_.end())
      return; // answered before
    if (!i->second.at_worker) {
      waiting_.erase(std::find(waiting_.begin(), waiting_.end(), id));
      expire(i);
      publish();
      return;
    }
    auto now = clock().now();
    auto c = leave(i, now);
    answer(c.rp, make_error(errc::timeout, conf_.name + ": no answer within " + millis(c.limit)));
    next(now);
  }

  /// Applies the scaling rules to the window since the last decision.
  void autoscale() {
    auto now = clock().now();
    duration oldest{0};
    for (auto& kvp : pending_)
      if (kvp.second.at_worker)
        oldest = std::max(oldest, now - kvp.second.started);
    auto w = meter_.close(now, workers_, per_worker_, oldest, idle_streak_);
    auto d = decide_pool_size(conf_.pool, w);
    idle_streak_ = d.idle_streak;
    if (d.resized(w)) {
      auto from = workers_;
      workers_ = d.workers;
      (workers_ > from ? gauge_->scale_ups : gauge_->scale_downs)++;
      record_resize(from, std::move(d.reason));
      next(now);
    }
    delayed_send(this, conf_.pool.interval, tick_atom::value);
  }

  /// Appends `pool_resized{from -> workers_}` without waiting for it.
  void record_resize(std::uint32_t from, std::string reason) {
    publish();
    if (!log_)
      return;
    auto at = conf_.now_us ? conf_.now_us() : storage::now_us();
    std::vector<storage::new_event> evs{
      make_new_event(events::pool_resized{conf_.name, from, workers_, std::move(reason)}, at)};
    log_->append(caf::actor_cast<caf::actor>(this), events::pool_stream(conf_.name),
                 storage::expected_version::any(), std::move(evs),
                 [](const caf::error&, const storage::append_result&) {});
  }

  /// Shows the pool's figures (after every change) to the meter and the gauge.
  void publish() {
    meter_.update(clock().now(), busy_, waiting_.size());
    gauge_->workers.store(workers_, std::memory_order_relaxed);
    gauge_->busy.store(static_cast<std::int64_t>(busy_), std::memory_order_relaxed);
    gauge_->waiting.store(static_cast<std::int64_t>(waiting_.size()), std::memory_order_relaxed);
  }

  adapter_config conf_;
  std::uint32_t per_worker_;
  std::uint32_t workers_;
  std::shared_ptr<pool_gauge> gauge_;
  pool_meter meter_{steady_time{}};
  std::uint32_t idle_streak_ = 0;
  std::size_t busy_ = 0;
  std::deque<std::uint64_t> waiting_;
  std::unique_ptr<journal> log_;
  latency_window latencies_;
  duration p99_{0};
  std::size_t since_refresh_ = 0;
  std::uint64_t next_id_ = 1;
  call_map pending_;
};

} // namespace

caf::actor spawn_provider_adapter(caf::actor_system& sys, adapter_config cfg) {
  return sys.spawn<provider_adapter>(std::move(cfg));
}

} // namespace keel::actors
