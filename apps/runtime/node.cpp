#include "node.hpp"

#include <chrono>
#include <thread>

#include <sys/resource.h>

#include <spdlog/spdlog.h>

#include "keel/actors/catalog.hpp"
#include "keel/events/correlation.hpp"
#include "keel/events/error.hpp"
#include "keel/events/ids.hpp"
#include "keel/storage/seed.hpp"
#include "auth.hpp"
#include "node_state.hpp"
#include "pipeline_call.hpp"

namespace keel::runtime {

namespace {

std::int64_t wall_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

} // namespace

void outcome_window::record(bool success, std::int64_t now_s) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto& s = slots_[static_cast<std::size_t>(now_s % 60)];
  if (s.second != now_s)
    s = slot{now_s, 0, 0};
  (success ? s.ok : s.failed)++;
}

std::pair<std::uint64_t, std::uint64_t> outcome_window::totals(std::int64_t now_s) const {
  std::lock_guard<std::mutex> guard{mtx_};
  std::pair<std::uint64_t, std::uint64_t> t{0, 0};
  for (auto& s : slots_)
    if (s.second > now_s - 60) {
      t.first += s.ok;
      t.second += s.failed;
    }
  return t;
}

void node::impl::finished(const actors::finished_order& x) {
  auto outcome = std::string{events::to_string(x.status)};
  if (auto i = outcomes.find(outcome); i != outcomes.end())
    i->second->fetch_add(1, std::memory_order_relaxed);
  if (auto i = saga_seconds.find(outcome); i != saga_seconds.end())
    i->second->observe(static_cast<double>(x.finished_at_us - x.placed_at_us) / 1e6);
  // Business health: completed vs. cancelled (a rejection for lack of stock is
  // the business working as intended; parking is not an end).
  if (retry && actors::is_terminal(x.status))
    retry->forget(x.order_id); // its de-duplication memory is no longer needed
  if (x.status == actors::order_status::completed || x.status == actors::order_status::cancelled)
    business.record(x.status == actors::order_status::completed, x.finished_at_us / 1000000);
  spdlog::debug("component=saga msg=\"saga {}\" order_id={} correlation_id={} reason=\"{}\" ms={}",
                outcome, x.order_id, events::to_string(events::correlation_of(x.order_id)),
                x.reason, (x.finished_at_us - x.placed_at_us) / 1000);
}

void node::impl::park(const actors::parked_payment& p) {
  if (retry) {
    storage::retry_entry e;
    e.order_id = p.order_id;
    e.timestamp_us = wall_us();
    e.retry_count = p.attempt;
    e.premium = p.premium;
    e.correlation_id = p.correlation_id;
    e.fallback_reason = p.reason;
    e.retry_at_us = p.retry_at_us;
    if (auto err = retry->publish(e); !err)
      return;
    else
      spdlog::warn("component=retry_queue msg=\"publish failed, parking in process\" order_id={} "
                   "error=\"{}\"",
                   p.order_id, describe(err));
  }
  park_fallbacks.fetch_add(1, std::memory_order_relaxed);
  hand_back(p);
}

void node::impl::hand_back(const actors::parked_payment& p) {
  // The pipeline object outlives every actor and the retry consumer (see
  // shutdown), so a pointer loaded here stays valid while it is used.
  if (auto* live = live_pipeline.load()) {
    live->park(p);
    return;
  }
  std::lock_guard<std::mutex> guard{early_mtx};
  if (auto* live = live_pipeline.load())
    live->park(p);
  else
    early.push_back(p); // during recovery: parked once the pipeline is live
}

storage::retry_topic::verdict node::impl::check_entry(const storage::retry_entry& e) const {
  using verdict = storage::retry_topic::verdict;
  // In a cluster with shared brokers any node may read an entry; the node
  // that serves the order checks it (and only a valid order id travels).
  if (link && events::valid_key(e.order_id) && !link->owns_order(e.order_id))
    return verdict::elsewhere;
  // No backoff parks an order further ahead than a minute and a bit; a
  // message due later than this is not one the node wrote.
  constexpr std::int64_t horizon_us = 10 * 60 * 1'000'000LL;
  actors::parked_payment p{e.order_id, e.retry_at_us, e.premium, e.retry_count,
                           e.fallback_reason, e.correlation_id};
  switch (actors::check_parked(store(), p, wall_us(), horizon_us)) {
    case actors::park_check::valid: return verdict::accept;
    case actors::park_check::stale: return verdict::stale;
    case actors::park_check::far_future: return verdict::far_future;
    case actors::park_check::invalid: break;
  }
  return verdict::invalid;
}

void node::impl::consumed(const storage::retry_entry& e) {
  hand_back(actors::parked_payment{e.order_id, e.retry_at_us, e.premium, e.retry_count,
                                   e.fallback_reason, e.correlation_id});
}

node::node(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {
}

node::~node() {
  shutdown();
}

namespace {

/// Files the store may keep open, and descriptors kept for everything else
/// but HTTP connections (WAL, MANIFEST, logs, Kafka sockets, pipes).
constexpr int store_files = 1024;
constexpr std::size_t reserved_fds = 256;

/// Raises the soft file-descriptor limit to the hard one and lowers the
/// HTTP connection cap so that connections can never take the descriptors
/// the store needs (a store that cannot open a file stops writing).
void fit_fd_budget(node_config& cfg) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0)
    return;
  if (lim.rlim_cur < lim.rlim_max) {
    auto want = lim;
    want.rlim_cur = std::min<rlim_t>(lim.rlim_max, 1u << 20);
    if (::setrlimit(RLIMIT_NOFILE, &want) == 0)
      lim = want;
  }
  auto budget = static_cast<std::size_t>(lim.rlim_cur);
  auto reserved = static_cast<std::size_t>(store_files) + reserved_fds;
  auto room = budget > reserved + 16 ? budget - reserved : 16;
  if (cfg.http.max_connections > room) {
    spdlog::warn("component=node msg=\"HTTP connections capped by the file-descriptor limit\" "
                 "nofile={} max_connections={} wanted={}",
                 budget, room, cfg.http.max_connections);
    cfg.http.max_connections = room;
  }
}

/// The engine's settings from the node's.
engine_config engine_settings(node::impl& s) {
  engine_config ec;
  ec.store.max_open_files = store_files;
  ec.store.path = s.cfg.data;
  ec.store.durable = s.cfg.fsync ? storage::durability::sync : storage::durability::wal;
  ec.store.min_free_bytes = s.cfg.min_free_disk_mb << 20;
  ec.store.memory_budget_bytes = static_cast<std::size_t>(s.cfg.store_memory_mb) << 20;
  ec.currencies = s.cfg.currencies;
  ec.threads = s.cfg.threads;
  ec.providers = s.cfg.providers;
  auto& pc = ec.pipeline;
  pc.mode = actors::append_mode::asynchronous;
  pc.seed = s.cfg.seed;
  pc.provider_breaker.wait_in_open = s.cfg.breaker_wait;
  pc.payment_retry.initial = s.cfg.payment_retry_initial;
  pc.max_sagas = s.cfg.max_sagas;
  pc.on_finished = [&s](const actors::finished_order& x) { s.finished(x); };
  // The read side starts after the store opens and before the pipeline.
  pc.admission = [&s](const events::place_order& cmd) {
    if (!s.link)
      return s.cache->check(cmd.lines);
    // In a cluster the local read model knows the stock of the slots this
    // node serves; other SKUs are checked against the levels their nodes
    // sent (their inventories decide).
    std::vector<events::order_line> local;
    std::vector<std::pair<std::string, std::uint32_t>> remote;
    for (auto& l : cmd.lines)
      if (s.link->serves(s.link->slot_of(l.sku)))
        local.push_back(l);
      else
        remote.emplace_back(l.sku, l.quantity);
    if (auto err = s.cache->check(local))
      return err;
    return s.link->check_remote_stock(remote);
  };
  pc.on_park = [&s](const actors::parked_payment& p) { s.park(p); };
  if (s.link) {
    pc.stock_slots = s.link->slots();
    pc.inventory_front = s.link->inventory_front();
    pc.owns_order = [link = s.link.get()](const std::string& id) { return link->owns_order(id); };
    ec.configure = [](caf::actor_system_config& c) { cluster_link::configure(c); };
  }
  return ec;
}

caf::error open_store(node::impl& s) {
  if (s.cfg.currencies.empty()) // a node prices every order from its catalogue
    return make_error(errc::invalid_argument, "node: at least one currency is needed");
  auto opened = engine::open(engine_settings(s));
  if (!opened)
    return opened.error();
  s.core = std::move(*opened);
  return caf::error{};
}

caf::error start_read_side(node::impl& s) {
  s.cache = std::make_shared<projections::stock_cache>(s.store());
  if (s.link)
    s.cache->on_update([link = s.link.get()](const projections::stock_level& l) {
      link->stock_changed(l.sku, l.available(), l.updated_us);
    });
  // A cluster node counts its daily figures per slot too, so that it can
  // report those of the slots it serves (moved orders stay in the store
  // they left).
  bool recount = false;
  if (s.link) {
    auto changed = projections::set_cluster_slots(s.store(), s.link->slots());
    if (!changed)
      return changed.error();
    recount = *changed && s.store().last_position() > 0;
  }
  s.runner = std::make_unique<projections::projection_runner>(s.store());
  s.runner->add_standard(s.cache);
  if (auto err = s.runner->start())
    return err;
  if (recount) {
    spdlog::info("component=projections msg=\"the store joins a cluster: rebuilding the figures "
                 "to count them per slot\" slots={}",
                 s.link->slots());
    if (auto err = s.runner->rebuild("figures"))
      return err;
  }
  for (auto& u : s.runner->upgrades())
    spdlog::info("component=projections msg=\"stored values given their format version\" "
                 "projection={} values={} generation={} from_generation={} seconds={:.2f}",
                 u.projection, u.values, u.to_generation, u.from_generation, u.seconds);
  return caf::error{};
}

caf::error start_relay(node::impl& s) {
  if (!s.kafka)
    return caf::error{};
  {
    std::lock_guard<std::mutex> guard{s.outbox_mtx};
    if (s.outbox)
      return caf::error{};
  }
  storage::outbox_options opts;
  if (s.link && s.link->replicated()) {
    // The group's primaries relay one log: a new one finds what the last
    // published past its checkpoint, and none produces without its lease.
    opts.origin = s.link->config().cluster + "/" + s.link->config().group;
    opts.may_publish = [link = s.link.get()] { return link->primary(); };
  }
  // Not under `outbox_mtx`: the start may read the topics for a while.
  auto relay = storage::outbox_relay::start(s.core->store_ptr(), *s.kafka, std::move(opts));
  if (!relay)
    return relay.error();
  std::lock_guard<std::mutex> guard{s.outbox_mtx};
  if (!s.outbox)
    s.outbox = std::move(*relay);
  return caf::error{};
}

caf::error start_kafka(node::impl& s) {
  if (s.cfg.kafka == "off")
    return caf::error{};
  storage::kafka_options ko;
  if (s.cfg.kafka != "embedded")
    ko.brokers = s.cfg.kafka;
  ko.partitions = s.cfg.kafka_partitions;
  ko.client_id = "keel-node";
  if (!s.cfg.kafka_config.empty()) {
    auto security = storage::load_kafka_settings(s.cfg.kafka_config);
    if (!security)
      return security.error();
    ko.security = std::move(*security);
    spdlog::info("component=kafka msg=\"connection settings\" file={} settings={}",
                 s.cfg.kafka_config, ko.security.size());
  }
  auto cluster = storage::kafka_cluster::open(ko);
  if (!cluster)
    return cluster.error();
  s.kafka = std::move(*cluster);
  spdlog::info("component=kafka msg=\"{}\" bootstrap_servers={}",
               s.kafka->embedded() ? "embedded mock cluster started" : "using external brokers",
               s.kafka->bootstrap_servers());
  // A standby of a replicated group relays nothing (its primary does): the
  // relay starts when it becomes primary, from where the primary was.
  if (!s.link || !s.link->replicated())
    if (auto err = start_relay(s))
      return err;
  storage::retry_topic::handler pass_on;
  if (s.link)
    pass_on = [link = s.link.get()](const storage::retry_entry& e) { link->pass_retry(e); };
  auto retry = storage::retry_topic::start(
    *s.kafka, {}, [&s](const storage::retry_entry& e) { s.consumed(e); },
    [&s](const storage::retry_entry& e) { return s.check_entry(e); }, std::move(pass_on));
  if (!retry)
    return retry.error();
  s.retry = std::move(*retry);
  if (s.link)
    s.link->on_retry_entry([r = s.retry.get()](const storage::retry_entry& e) { r->deliver(e); });
  return caf::error{};
}

void init_figures(node::impl& s) {
  for (auto* o : {"completed", "rejected", "cancelled", "pending_payment"}) {
    s.saga_seconds[o] = std::make_unique<histogram>(latency_buckets());
    s.outcomes[o] = std::make_unique<std::atomic<std::uint64_t>>(0);
  }
  for (auto* r : {"place", "get", "cancel", "customer_orders", "stock", "catalog", "admin", "metrics",
                  "health", "other"})
    s.http_seconds[r] = std::make_unique<histogram>(latency_buckets());
}

/// One line naming each provider: "gw-a (http https://...), gw-b (simulated)".
void log_providers(const provider_specs& specs) {
  auto list = [](const std::vector<provider_spec>& xs) {
    std::string out;
    for (auto& x : xs)
      out += (out.empty() ? "" : ", ") + x.http.name
             + (x.kind == provider_spec::kind_t::http ? " (http " + x.http.base_url + ")"
                                                      : std::string{" (simulated)"});
    return out;
  };
  spdlog::info("component=node msg=\"providers\" gateways=\"{}\" carriers=\"{}\"",
               list(specs.gateways), list(specs.carriers));
}

caf::error start_pipeline(node::impl& s) {
  log_providers(s.cfg.providers);
  if (auto err = s.core->start())
    return err;
  std::lock_guard<std::mutex> guard{s.early_mtx};
  s.live_pipeline = &s.core->pipeline();
  for (auto& p : s.early)
    s.core->pipeline().park(p);
  s.early.clear();
  return caf::error{};
}

/// A standby of a replicated group became its primary (its store began the
/// term): the catalogue is read again (entries came in batches from the old
/// primary) and the outbox relay starts where the old primary had got to.
bool on_promoted(node::impl& s) {
  std::size_t entries = 0;
  for (std::string after;;) {
    auto page = s.store().list_streams("catalog-", 1000, after);
    if (!page) {
      spdlog::error("component=replication msg=\"reading the catalogue failed\" error=\"{}\"",
                    describe(page.error()));
      return false;
    }
    for (auto& st : *page)
      if (auto err = s.core->catalog()->reload(st.stream.substr(8)))
        spdlog::error("component=replication msg=\"reloading a catalogue entry failed\" "
                      "stream={} error=\"{}\"",
                      st.stream, describe(err));
    entries += page->size();
    if (page->size() < 1000)
      break;
    after = page->back().stream;
  }
  spdlog::info("component=replication msg=\"serving as primary\" catalogue_entries={}",
               entries);
  // On a thread of its own: the relay's start reads the topics from its
  // marks (up to its reconcile timeout), which must hold up neither the
  // agent (leases) nor /metrics.
  if (s.kafka) {
    if (s.relay_starter.joinable())
      s.relay_starter.join();
    s.relay_starter = std::thread{[&s] {
      if (auto err = start_relay(s)) {
        spdlog::error("component=replication msg=\"the outbox relay did not start; it is retried "
                      "at the next start\" error=\"{}\"",
                      describe(err));
        return;
      }
      auto st = s.outbox_status();
      spdlog::info("component=replication msg=\"outbox relay started\" relay_from={} "
                   "found_published={} error=\"{}\"",
                   st ? st->checkpoint : 0, st ? st->found_published : 0,
                   st ? st->error : std::string{});
    }};
  }
  return true;
}

/// A standby's store dropped a tail its group never acknowledged: the read
/// models that had seen it are built again, the relay's checkpoint goes back.
void on_truncated(node::impl& s, const storage::truncation& t) {
  for (auto& cp : t.checkpoints_beyond) {
    const std::string prefix = "projection/";
    if (cp.rfind(prefix, 0) == 0) {
      auto name = cp.substr(prefix.size(), cp.rfind("/g") - prefix.size());
      spdlog::warn("component=replication msg=\"rebuilding a projection that saw the dropped "
                   "tail\" projection={}",
                   name);
      if (s.runner)
        if (auto err = s.runner->rebuild(name))
          spdlog::error("component=replication msg=\"rebuild failed\" projection={} "
                        "error=\"{}\"",
                        name, describe(err));
    } else {
      storage::write_batch wb;
      wb.set_checkpoint(cp, t.last_position);
      if (auto err = s.store().commit(std::move(wb)))
        spdlog::error("component=replication msg=\"resetting a checkpoint failed\" "
                      "checkpoint={} error=\"{}\"",
                      cp, describe(err));
    }
  }
}

} // namespace

caf::expected<std::unique_ptr<node>> node::start(node_config cfg) {
  auto s = std::make_unique<impl>();
  s->cfg = std::move(cfg);
  s->started_us = wall_us();
  if (auto err = check_secret(s->cfg.jwt_secret, "given"))
    return err;
  init_figures(*s);
  fit_fd_budget(s->cfg);
  if (s->cfg.cluster) {
    s->cfg.cluster->data_dir = s->cfg.data;
    if (!s->cfg.cluster->group.empty()) {
      // A standby that fetched a checkpoint of its group's log starts on it.
      auto adopted = storage::adopt_seed(s->cfg.data);
      if (!adopted)
        return adopted.error();
      s->cfg.cluster->seeded = !adopted->empty();
      if (s->cfg.cluster->seeded)
        spdlog::warn("component=replication msg=\"the data directory is now a checkpoint of the "
                     "group's log\" seed=\"{}\"",
                     *adopted);
    }
    auto link = cluster_link::open(*s->cfg.cluster);
    if (!link)
      return link.error();
    s->link = std::move(*link);
  }
  if (auto err = open_store(*s))
    return err;
  // A member of a replicated group writes nothing until it is the primary.
  if (s->link && s->link->replicated())
    s->store().set_standby(true);
  spdlog::info("component=node msg=\"store open\" data={} last_position={}", s->cfg.data,
               s->store().last_position());
  if (auto err = start_read_side(*s))
    return err;
  if (auto err = start_kafka(*s))
    return err;
  if (auto err = start_pipeline(*s))
    return err;
  auto& rec = s->core->pipeline().recovered();
  spdlog::info("component=node msg=\"recovered\" orders={} redriven={} parked={} quarantined={}",
               rec.orders, rec.redriven, rec.parked, rec.quarantined);
  for (auto& [stream, why] : rec.quarantine)
    spdlog::warn("component=node msg=\"order stream does not fold; left alone\" stream={} "
                 "error=\"{}\"",
                 stream, why);
  std::unique_ptr<node> n{new node(std::move(s))};
  n->impl_->http = std::make_unique<http_api>(*n);
  if (auto err = n->impl_->http->listen(n->impl_->cfg.http_host, n->impl_->cfg.http_port))
    return err;
  if (auto& link = n->impl_->link) {
    auto* api = n->impl_->http.get();
    auto& core = *n->impl_->core;
    if (link->replicated()) {
      auto* st = n->impl_.get();
      link->on_promoted([st] { return on_promoted(*st); });
      link->on_truncated([st](const storage::truncation& t) { on_truncated(*st, t); });
      link->relay_position([st](std::uint64_t known) -> storage::outbox_resume {
        // Never waits (the committer calls it for every batch): while the
        // relay starts or stops, or /metrics reads it, nothing new.
        std::unique_lock<std::mutex> guard{st->outbox_mtx, std::try_to_lock};
        if (!guard.owns_lock() || !st->outbox)
          return {known, {}};
        return st->outbox->resume(known);
      });
      link->on_demoted([st] {
        st->restart_requested = true;
        {
          std::lock_guard<std::mutex> guard{st->stop_mtx};
          st->stop_requested = true;
        }
        st->stop_cv.notify_all();
      });
    }
    if (auto err = link->start(core.system(), core.pipeline(), core.store(), core.catalog().get(),
                               [api](const forwarded_call& c) { return api->serve_forwarded(c); },
                               n->impl_->cfg.http_host + ":" + std::to_string(n->port())))
      return err;
  }
  n->impl_->is_ready = true;
  spdlog::info("component=http msg=\"listening\" url=http://{}:{}", n->impl_->cfg.http_host,
               n->port());
  return n;
}

cluster_link* node::cluster() const noexcept {
  return impl_->link.get();
}

int node::port() const noexcept {
  return impl_->http ? impl_->http->port() : 0;
}

void node::request_stop() {
  {
    std::lock_guard<std::mutex> guard{impl_->stop_mtx};
    impl_->stop_requested = true;
  }
  impl_->stop_cv.notify_all();
}

bool node::restart_requested() const noexcept {
  return impl_->restart_requested.load();
}

void node::wait_for_stop() {
  std::unique_lock<std::mutex> guard{impl_->stop_mtx};
  impl_->stop_cv.wait(guard, [this] { return impl_->stop_requested.load(); });
}

std::int64_t node::shutdown() {
  auto& s = *impl_;
  if (!s.core)
    return 0;
  bool demoted = s.restart_requested.load();
  if (s.link && s.link->config().leave_on_stop && s.is_ready && !demoted)
    s.link->hand_over_all(s.cfg.drain_timeout); // while it still serves
  s.is_ready = false; // forwarded requests are refused from now on
  if (s.http)
    s.http->stop(); // no new requests; in-flight ones are answered first
  auto in_flight = s.registry().value("sagas.in_flight");
  // A demoted primary's store takes no appends: its sagas cannot move on
  // here (the new primary re-drives them).
  auto deadline = std::chrono::steady_clock::now()
                  + (demoted ? std::chrono::seconds{0} : s.cfg.drain_timeout);
  while (in_flight->load() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto left = in_flight->load();
  spdlog::info("component=node msg=\"drained\" sagas_in_flight={}", left);
  // In a cluster the sagas above could still reach other nodes' stock, and
  // theirs this node's; now the member and slot keys go (the others answer
  // for its slots with 503 until it is back).
  if (s.link)
    s.link->stop();
  s.http.reset();
  if (s.retry)
    s.retry->stop(); // joins the consumer thread: no more hand_back from it
  {
    std::lock_guard<std::mutex> guard{s.early_mtx};
    s.live_pipeline = nullptr;
  }
  // Waits for every actor (a saga parking now still calls the pipeline
  // through hand_back).
  s.core->stop();
  if (auto err = s.store().flush())
    spdlog::error("component=node msg=\"flush failed\" error=\"{}\"", describe(err));
  if (s.runner)
    s.runner->stop();
  if (s.relay_starter.joinable())
    s.relay_starter.join(); // the agent is stopped: no other starts
  {
    std::lock_guard<std::mutex> guard{s.outbox_mtx};
    if (s.outbox)
      s.outbox->stop(); // after its outstanding deliveries; saves the checkpoint
  }
  s.retry.reset();
  {
    std::lock_guard<std::mutex> guard{s.outbox_mtx};
    s.outbox.reset();
  }
  s.kafka.reset();
  s.runner.reset();
  s.cache.reset();
  s.core.reset();
  spdlog::info("component=node msg=\"stopped\"");
  return left;
}

caf::expected<actors::order_view> node::place(const events::place_order& cmd) {
  return call<actors::order_view>(impl_->core->system(), impl_->core->pipeline().orders(),
                                  impl_->cfg.request_timeout, cmd);
}

caf::expected<actors::order_view> node::cancel(const std::string& order_id,
                                               const std::string& who) {
  return call<actors::order_view>(impl_->core->system(), impl_->core->pipeline().orders(),
                                  impl_->cfg.request_timeout, events::cancel_order{order_id, who});
}

caf::expected<actors::order_state> node::order(const std::string& order_id) const {
  return actors::load_order(impl_->store(), order_id);
}

actors::catalog& node::catalog() const noexcept {
  return *impl_->core->catalog();
}

caf::expected<actors::stock_reply> node::set_stock(const std::string& sku, std::int64_t on_hand) {
  auto set = call<actors::stock_reply>(impl_->core->system(), impl_->core->pipeline().inventory(),
                                      impl_->cfg.request_timeout, events::set_stock{sku, on_hand});
  if (!set)
    return set;
  // The levels now (set_stock answers once the adjustment is durable).
  return call<actors::stock_reply>(impl_->core->system(), impl_->core->pipeline().inventory(),
                                   impl_->cfg.request_timeout, actors::get_atom::value, sku);
}

caf::error node::set_faults(const std::string& provider, const actors::provider_faults& f) {
  if (!impl_->core->pipeline().provider(provider))
    return make_error(errc::not_found, "no provider named " + provider);
  if (!simulated(provider))
    return make_error(errc::invalid_argument,
                      provider + " is not simulated here: set its faults where it runs");
  impl_->core->pipeline().simulator(provider).faults(f);
  using std::chrono::duration_cast;
  using ms = std::chrono::milliseconds;
  spdlog::warn("component=admin msg=\"provider faults set\" provider={} error_rate={} "
               "decline_rate={} hang_rate={} latency_median_ms={} latency_p99_ms={} outage_ms={}",
               provider, f.error_rate, f.decline_rate, f.hang_rate,
               duration_cast<ms>(f.latency_median).count(), duration_cast<ms>(f.latency_p99).count(),
               duration_cast<ms>(f.outage_until - f.outage_from).count());
  return caf::error{};
}

const std::vector<std::string>& node::gateways() const {
  return impl_->core->pipeline().gateways();
}

const std::vector<std::string>& node::carriers() const {
  return impl_->core->pipeline().carriers();
}

bool node::simulated(const std::string& name) const {
  return dynamic_cast<actors::simulated_provider*>(impl_->core->pipeline().provider(name).get())
         != nullptr;
}

const storage::event_store& node::store() const {
  return impl_->store();
}

const node_config& node::config() const noexcept {
  return impl_->cfg;
}

projections_report node::projections() const {
  return {impl_->runner->status(), impl_->store().last_position()};
}

caf::error node::skip_projection(const std::string& name, std::uint64_t position,
                                 const std::string& by, const std::string& note) {
  return impl_->runner->skip(name, position, by, note);
}

caf::error node::rebuild_projection(const std::string& name) {
  return name == "all" ? impl_->runner->rebuild_all() : impl_->runner->rebuild(name);
}

kafka_report node::kafka() const {
  kafka_report r;
  auto& s = *impl_;
  if (!s.kafka)
    return r;
  r.enabled = true;
  r.embedded = s.kafka->embedded();
  r.bootstrap_servers = s.kafka->bootstrap_servers();
  r.topics = s.kafka->topics();
  r.outbox = s.outbox_status();
  return r;
}

std::string node::metrics_text() const {
  return render_metrics(*impl_, health());
}

health_report node::health() const {
  return compute_health(*impl_);
}

bool node::ready() const {
  // In a cluster: while a member (its lease live; else it serves nothing).
  return impl_->is_ready.load() && store_writable() && escalated_supervisors().empty()
         && (!impl_->link || impl_->link->live());
}

bool node::serving() const {
  return impl_->is_ready.load();
}

std::vector<std::string> node::escalated_supervisors() const {
  std::vector<std::string> names;
  for (auto& x : impl_->registry().supervisors())
    if (x->escalated.load())
      names.push_back(x->name);
  return names;
}

bool node::store_writable() const {
  auto& s = *impl_;
  auto writable = s.store().writable(); // one atomic load on every write request
  // One line per change, not per request.
  if (s.store_was_writable.exchange(writable) != writable) {
    auto h = s.store().health();
    if (writable)
      spdlog::info("component=storage msg=\"writing again\" resumes={}", h.resumes);
    else
      spdlog::error("component=storage msg=\"the store cannot write; writes are refused with 503 "
                    "storage_unavailable\" error=\"{}\" needs_restart={}",
                    h.error, h.needs_restart);
  }
  return writable;
}

void node::count_request(const std::string& route, int status, double seconds) {
  auto& s = *impl_;
  auto h = s.http_seconds.find(route);
  (h == s.http_seconds.end() ? s.http_seconds.at("other") : h->second)->observe(seconds);
  std::lock_guard<std::mutex> guard{s.http_mtx};
  s.http_requests[{route, status}]++;
}

void node::count_rate_limited() {
  impl_->rate_limited.fetch_add(1, std::memory_order_relaxed);
}

void node::count_shed() {
  impl_->shed.fetch_add(1, std::memory_order_relaxed);
}

void node::count_standby_read() {
  impl_->standby_reads.fetch_add(1, std::memory_order_relaxed);
}

} // namespace keel::runtime
