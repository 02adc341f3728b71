#include "saga_rig.hpp"

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <unistd.h>

#include <caf/event_based_actor.hpp>

#include "keel/actors/messages.hpp"
#include "keel/events/error.hpp"
#include "keel/events/streams.hpp"

namespace keel::bench {

/// Routes the pipeline's on_finished to the current driver.
struct saga_rig::sink {
  std::mutex mtx;
  std::weak_ptr<const saga_driver> target;

  void operator()(const actors::finished_order& x) {
    std::shared_ptr<const saga_driver> d;
    {
      std::lock_guard<std::mutex> guard{mtx};
      d = target.lock();
    }
    if (d)
      d->report(x);
  }
};

namespace {

/// set_stock requests, up to 256 in flight; `done` gets the first error
/// (or none) once every one was answered.
struct stock_job {
  caf::actor inventory;
  std::vector<events::set_stock> cmds;
  std::size_t next = 0;
  std::size_t answered = 0;
  caf::error first;
  std::promise<caf::error> done;
};

void send_one(caf::event_based_actor* self, std::shared_ptr<stock_job> job) {
  auto i = job->next++;
  auto answered = [self, job](caf::error err) {
    if (err && !job->first)
      job->first = std::move(err);
    if (++job->answered == job->cmds.size())
      job->done.set_value(job->first);
    else if (job->next < job->cmds.size())
      send_one(self, job);
  };
  self->request(job->inventory, caf::infinite, job->cmds[i])
    .then([answered](actors::stock_reply&) { answered(caf::error{}); },
          [answered](caf::error& err) { answered(std::move(err)); });
}

void set_stock_all(caf::event_based_actor* self, std::shared_ptr<stock_job> job) {
  for (std::size_t i = 0; i < std::min<std::size_t>(256, job->cmds.size()); ++i)
    send_one(self, job);
}

} // namespace

saga_rig::saga_rig(const rig_settings& settings) : sink_(std::make_shared<sink>()) {
  path_ = settings.data;
  if (path_.empty()) {
    tmp_ = std::make_unique<temp_dir>("keel-bench-sagas");
    path_ = tmp_->path();
  }
  runtime::engine_config ec;
  ec.store.path = path_;
  ec.store.durable = storage::durability::sync;
  ec.threads = settings.threads;
  auto& pc = ec.pipeline;
  pc.mode = actors::append_mode::asynchronous;
  pc.seed = settings.seed;
  pc.provider_breaker.wait_in_open = settings.breaker_wait;
  pc.payment_retry.initial = settings.payment_retry_initial;
  pc.on_finished = [s = sink_](const actors::finished_order& x) { (*s)(x); };
  auto opened = runtime::engine::open(std::move(ec));
  caf::error err;
  if (opened) {
    engine_ = std::move(*opened);
    err = engine_->start();
  } else {
    err = opened.error();
  }
  if (err) {
    std::cerr << "keel-bench: " << describe(err) << '\n';
    std::exit(2);
  }
}

saga_rig::~saga_rig() {
  {
    std::lock_guard<std::mutex> guard{sink_->mtx};
    sink_->target.reset();
  }
  engine_->stop(); // stops every pipeline actor and waits for them
}

std::string saga_rig::fresh_prefix(const std::string& base) const {
  auto used = store().list_streams(keel::events::order_stream(base + "-"), 1);
  if (used && used->empty())
    return base;
  return base + "r" + std::to_string(store().last_position());
}

caf::error saga_rig::set_stock(std::uint64_t first, std::uint64_t count, std::int64_t each) {
  if (count == 0)
    return caf::error{};
  auto job = std::make_shared<stock_job>();
  job->inventory = pipeline().inventory();
  for (auto i = first; i < first + count; ++i)
    job->cmds.push_back({sku_name(i), each});
  auto result = job->done.get_future();
  engine_->system().spawn(set_stock_all, job);
  return result.get();
}

void saga_rig::payment_outage(actors::duration d) {
  auto now = std::chrono::steady_clock::now();
  for (const auto& name : pipeline().gateways()) {
    auto& gw = pipeline().simulator(name);
    auto f = gw.faults();
    f.outage_from = now;
    f.outage_until = now + d;
    f.outage_hangs = false;
    gw.faults(f);
  }
}

std::shared_ptr<saga_driver> saga_rig::launch(drive_plan plan) {
  auto d = std::make_shared<saga_driver>(engine_->system(), pipeline().orders(), std::move(plan));
  std::lock_guard<std::mutex> guard{sink_->mtx};
  sink_->target = d;
  return d;
}

void saga_rig::await(const saga_driver& d, saga_driver::until what, double timeout_s,
                     const std::string& label) {
  auto last_print = seconds_now();
  auto tick = [&] {
    if (seconds_now() - last_print < 10)
      return;
    last_print = seconds_now();
    auto& c = d.counters();
    std::fprintf(stderr, "  [%s] placed %llu, terminal %llu, parked now %llu, retry queue %lld\n",
                 label.c_str(), static_cast<unsigned long long>(c.placed.load()),
                 static_cast<unsigned long long>(c.terminal()),
                 static_cast<unsigned long long>(c.parked_now.load()),
                 static_cast<long long>(value("retry_queue.depth")));
  };
  auto why = d.wait(what, timeout_s, 60, tick);
  if (!why.empty()) {
    auto& c = d.counters();
    fail(label + ": " + why + " (placed " + std::to_string(c.placed.load()) + ", terminal "
         + std::to_string(c.terminal()) + ", parked now " + std::to_string(c.parked_now.load())
         + ")");
  }
}

std::uint64_t saga_rig::breaker_transitions() const {
  std::uint64_t n = 0;
  for (auto& b : engine_->metrics().breakers())
    n += b->transitions.load();
  return n;
}

std::uint64_t saga_rig::bulkhead_rejections() const {
  std::uint64_t n = 0;
  for (auto& b : engine_->metrics().bulkheads())
    n += b->rejected.load();
  return n;
}

std::map<std::string, std::uint64_t> saga_rig::bulkhead_rejections_by_name() const {
  std::map<std::string, std::uint64_t> result;
  for (auto& b : engine_->metrics().bulkheads())
    if (auto n = b->rejected.load(); n > 0)
      result[b->name] = n;
  return result;
}

std::int64_t saga_rig::value(const std::string& name) const {
  return engine_->metrics().value(name)->load();
}

std::string saga_rig::breaker_summary() const {
  std::string out;
  for (auto& b : engine_->metrics().breakers())
    if (b->current() != events::breaker_state::closed)
      out += (out.empty() ? "" : ", ") + b->name + " " + events::to_string(b->current());
  return out.empty() ? "all breakers closed" : out;
}

void saga_rig::fail(const std::string& why) const {
  std::fflush(stdout);
  std::cerr << "keel-bench: FAILED: " << why << '\n'
            << "  breakers: " << breaker_summary() << '\n';
  for (auto& [name, v] : engine_->metrics().values())
    std::cerr << "  " << name << " = " << v << '\n';
  for (auto& b : engine_->metrics().bulkheads())
    std::cerr << "  bulkhead " << b->name << ": in use " << b->in_use << ", rejected "
              << b->rejected << '\n';
  std::cerr.flush();
  if (tmp_) {
    std::error_code ec;
    std::filesystem::remove_all(tmp_->path(), ec);
  }
  std::_Exit(1);
}

double rss_mb() {
  std::ifstream in{"/proc/self/statm"};
  std::uint64_t size = 0;
  std::uint64_t resident = 0;
  if (!(in >> size >> resident))
    return 0;
  return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / 1048576.0;
}

} // namespace keel::bench
