// The node's Prometheus metrics and its health score.

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "keel/events/system_events.hpp"
#include "keel/projections/read_models.hpp"
#include "keel/events/json.hpp"
#include "node_state.hpp"

namespace keel::runtime {

namespace {

std::int64_t now_s() {
  using namespace std::chrono;
  return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

double breaker_score(events::breaker_state x) {
  switch (x) {
    case events::breaker_state::closed: return 1.0;
    case events::breaker_state::half_open: return 0.5;
    case events::breaker_state::open: return 0.0;
  }
  return 0.0;
}

std::string fixed(double x, int digits = 2) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, x);
  return buf;
}

/// Parked payments: in the in-process scheduler plus those still on the topic.
std::int64_t retry_depth(const node::impl& s) {
  auto depth = s.registry().value("retry_queue.depth")->load();
  if (s.retry)
    depth += std::max<std::int64_t>(0, s.retry->stats().lag);
  return depth;
}

void breakers(exposition& out, const node::impl& s) {
  auto all = s.registry().breakers();
  out.family("keel_breaker_state", "gauge",
             "Circuit breaker state per service or provider: 0 closed, 1 open, 2 half-open.");
  for (auto& b : all)
    out.sample("keel_breaker_state", {{"breaker", b->name}},
               static_cast<double>(static_cast<int>(b->current())));
  struct counter {
    const char* name;
    const char* help;
    std::atomic<std::uint64_t> actors::breaker_gauge::*field;
  };
  const counter counters[] = {
    {"keel_breaker_calls_total", "Calls through the breaker.", &actors::breaker_gauge::calls},
    {"keel_breaker_failures_total", "Failed calls (errors, crashes, timeouts).",
     &actors::breaker_gauge::failures},
    {"keel_breaker_timeouts_total", "Calls that timed out.", &actors::breaker_gauge::timeouts},
    {"keel_breaker_fast_failed_total", "Calls refused fast while open.",
     &actors::breaker_gauge::fast_failed},
    {"keel_breaker_transitions_total", "State transitions.", &actors::breaker_gauge::transitions},
  };
  for (auto& c : counters) {
    out.family(c.name, "counter", c.help);
    for (auto& b : all)
      out.sample(c.name, {{"breaker", b->name}}, static_cast<double>(((*b).*c.field).load()));
  }
}

void bulkheads(exposition& out, const node::impl& s) {
  auto all = s.registry().bulkheads();
  out.family("keel_bulkhead_capacity", "gauge", "Pending requests a bulkhead admits.");
  for (auto& b : all)
    out.sample("keel_bulkhead_capacity", {{"bulkhead", b->name}},
               static_cast<double>(b->capacity.load()));
  out.family("keel_bulkhead_in_use", "gauge", "Pending requests now.");
  for (auto& b : all)
    out.sample("keel_bulkhead_in_use", {{"bulkhead", b->name}},
               static_cast<double>(b->in_use.load()));
  out.family("keel_bulkhead_admitted_total", "counter", "Requests a bulkhead admitted.");
  for (auto& b : all)
    out.sample("keel_bulkhead_admitted_total", {{"bulkhead", b->name}},
               static_cast<double>(b->admitted.load()));
  out.family("keel_bulkhead_rejections_total", "counter",
             "Requests rejected because the bulkhead was full (overloaded).");
  for (auto& b : all)
    out.sample("keel_bulkhead_rejections_total", {{"bulkhead", b->name}},
               static_cast<double>(b->rejected.load()));
}

void pools(exposition& out, const node::impl& s) {
  auto all = s.registry().pools();
  out.family("keel_provider_pool_workers", "gauge", "Workers of a provider adapter pool (1..10).");
  for (auto& p : all)
    out.sample("keel_provider_pool_workers", {{"provider", p->name}},
               static_cast<double>(p->workers.load()));
  out.family("keel_provider_pool_busy", "gauge", "Provider calls in flight in the pool.");
  for (auto& p : all)
    out.sample("keel_provider_pool_busy", {{"provider", p->name}},
               static_cast<double>(p->busy.load()));
  out.family("keel_provider_pool_waiting", "gauge", "Provider calls waiting for a worker.");
  for (auto& p : all)
    out.sample("keel_provider_pool_waiting", {{"provider", p->name}},
               static_cast<double>(p->waiting.load()));
  out.family("keel_provider_pool_resizes_total", "counter",
             "Autoscaler decisions that changed a pool's size.");
  for (auto& p : all) {
    out.sample("keel_provider_pool_resizes_total", {{"provider", p->name}, {"direction", "up"}},
               static_cast<double>(p->scale_ups.load()));
    out.sample("keel_provider_pool_resizes_total", {{"provider", p->name}, {"direction", "down"}},
               static_cast<double>(p->scale_downs.load()));
  }
}

void sagas(exposition& out, const node::impl& s) {
  out.family("keel_orders_total", "counter",
             "Sagas that ended (completed, rejected, cancelled) or parked (pending_payment).");
  for (auto& [outcome, n] : s.outcomes)
    out.sample("keel_orders_total", {{"outcome", outcome}}, static_cast<double>(n->load()));
  out.family("keel_saga_duration_seconds", "histogram",
             "Time from order_placed to the saga's end (or parking), by outcome.");
  for (auto& [outcome, h] : s.saga_seconds)
    out.samples("keel_saga_duration_seconds", {{"outcome", outcome}}, *h);
  out.single("keel_sagas_in_flight", "gauge", "Sagas running now.",
             static_cast<double>(s.registry().value("sagas.in_flight")->load()));
  auto sups = s.registry().supervisors();
  out.family("keel_supervisor_restarts_total", "counter", "Child restarts by supervisor.");
  for (auto& x : sups)
    out.sample("keel_supervisor_restarts_total", {{"supervisor", x->name}},
               static_cast<double>(x->restarts.load()));
  out.family("keel_supervisor_escalated", "gauge",
             "1 when the supervisor spent its restart budget and gave up.");
  for (auto& x : sups)
    out.sample("keel_supervisor_escalated", {{"supervisor", x->name}}, x->escalated.load() ? 1 : 0);
  if (s.core && s.core->started())
    out.single("keel_recovery_quarantined_streams", "gauge",
               "Order streams that did not fold at start (left alone, not re-driven).",
               static_cast<double>(s.core->pipeline().recovered().quarantined));
}

void http(exposition& out, const node::impl& s) {
  out.family("keel_http_requests_total", "counter", "HTTP requests by route and status code.");
  {
    std::lock_guard<std::mutex> guard{s.http_mtx};
    for (auto& [key, n] : s.http_requests)
      out.sample("keel_http_requests_total",
                 {{"route", key.first}, {"code", std::to_string(key.second)}},
                 static_cast<double>(n));
  }
  out.family("keel_http_request_duration_seconds", "histogram", "HTTP request latency by route.");
  for (auto& [route, h] : s.http_seconds)
    out.samples("keel_http_request_duration_seconds", {{"route", route}}, *h);
  out.single("keel_rate_limit_rejections_total", "counter",
             "Requests refused by the per-customer rate limit (429).",
             static_cast<double>(s.rate_limited.load()));
  auto st = s.http ? s.http->stats() : http_server_stats{};
  out.single("keel_load_shed_total", "counter",
             "Requests refused because the node was overloaded (503): by the pipeline, or "
             "because every HTTP handler thread and the queue were busy.",
             static_cast<double>(s.shed.load() + st.shed));
  out.single("keel_http_connections_open", "gauge", "Open HTTP connections.",
             static_cast<double>(st.open_connections));
  out.single("keel_http_connections_refused_total", "counter",
             "Connections closed at accept (connection caps).",
             static_cast<double>(st.refused_connections));
  out.single("keel_http_requests_timed_out_total", "counter",
             "Connections closed for missing the request deadline or the idle limit.",
             static_cast<double>(st.timed_out));
  out.single("keel_http_requests_rejected_total", "counter",
             "Requests refused while read (400, 411, 413, 414, 415, 431, 501).",
             static_cast<double>(st.rejected));
}

void cache(exposition& out, const node::impl& s) {
  auto hits = static_cast<double>(s.cache->hits());
  auto misses = static_cast<double>(s.cache->misses());
  out.single("keel_stock_cache_hits_total", "counter", "Stock cache lookups served from memory.",
             hits);
  out.single("keel_stock_cache_misses_total", "counter", "Stock cache lookups that read the model.",
             misses);
  out.single("keel_stock_cache_hit_ratio", "gauge", "Hits / lookups since start (1 without lookups).",
             hits + misses == 0 ? 1.0 : hits / (hits + misses));
  out.single("keel_stock_cache_refusals_total", "counter",
             "Orders refused by the cache-first stock check.",
             static_cast<double>(s.cache->refusals()));
}

void kafka(exposition& out, const node::impl& s) {
  out.single("keel_retry_queue_depth", "gauge",
             "Parked payments: waiting in the scheduler plus not yet consumed from the topic.",
             static_cast<double>(retry_depth(s)));
  out.single("keel_retry_queue_redriven_total", "counter", "Parked payments sent back to payment.",
             static_cast<double>(s.registry().value("retry_queue.redriven")->load()));
  out.single("keel_retry_queue_overflow_total", "counter",
             "Parks dropped because the in-process queue was full (the orders stay pending; "
             "a restart re-fills the queue from their streams).",
             static_cast<double>(s.registry().value("retry_queue.overflow")->load()));
  auto storage_health = s.store().health();
  out.single("keel_storage_writable", "gauge", "1 while the store can write, 0 after a failed write.",
             storage_health.writable ? 1 : 0);
  auto memory = s.store().memory();
  out.family("keel_store_memory_bytes", "gauge",
             "Memory the event store holds: memtables, cached blocks (the two share the budget), "
             "table readers (index and filter blocks outside the cache).");
  for (auto [part, bytes] : {std::pair{"memtables", memory.memtables},
                             std::pair{"block_cache", memory.block_cache},
                             std::pair{"table_readers", memory.table_readers}})
    out.sample("keel_store_memory_bytes", {{"part", part}}, static_cast<double>(bytes));
  out.single("keel_store_memory_budget_bytes", "gauge",
             "The memory budget memtables and cached blocks share (--store-memory-mb).",
             static_cast<double>(memory.budget));
  out.single("keel_store_version_cache_entries", "gauge",
             "Streams whose current version the committer keeps in memory.",
             static_cast<double>(memory.version_cache_entries));
  out.single("keel_storage_write_failures_total", "counter",
             "Writes to the store that failed (disk full, I/O error).",
             static_cast<double>(storage_health.write_failures));
  out.single("keel_sagas_crashed_total", "counter",
             "Sagas that crashed and were re-driven from their stream (with backoff).",
             static_cast<double>(s.registry().value("sagas.crashed")->load()));
  out.single("keel_sagas_redrives_ignored_total", "counter",
             "Re-drives refused because the id is not an order id.",
             static_cast<double>(s.registry().value("sagas.redrives_ignored")->load()));
  out.single("keel_retry_queue_publish_fallbacks_total", "counter",
             "Parked payments kept in process because publishing to the topic failed.",
             static_cast<double>(s.park_fallbacks.load()));
  if (s.retry) {
    auto st = s.retry->stats();
    out.single("keel_retry_queue_lag_messages", "gauge",
               "Messages of payment.retry.queue produced but not yet consumed.",
               static_cast<double>(st.lag));
    out.single("keel_retry_queue_published_total", "counter", "Messages produced to the topic.",
               static_cast<double>(st.produced));
    out.single("keel_retry_queue_consumed_total", "counter", "Messages consumed from the topic.",
               static_cast<double>(st.consumed));
    out.single("keel_retry_queue_duplicates_total", "counter",
               "Consumed messages dropped as duplicates.", static_cast<double>(st.duplicates));
    out.family("keel_retry_queue_dropped_total", "counter",
               "Consumed messages dropped before the pipeline saw them, by reason: malformed, "
               "invalid (no such order, or fields no park of it had), stale (the order moved on), "
               "far_future, misrouted (another node's order that could not be passed on).");
    for (auto [reason, n] :
         {std::pair{"malformed", st.malformed}, std::pair{"invalid", st.invalid},
          std::pair{"stale", st.stale}, std::pair{"far_future", st.far_future},
          std::pair{"misrouted", st.misrouted}})
      out.sample("keel_retry_queue_dropped_total", {{"reason", reason}}, static_cast<double>(n));
  }
  if (auto status = s.outbox_status()) {
    auto& st = *status;
    out.single("keel_outbox_lag_events", "gauge",
               "Events of the log not yet confirmed delivered to Kafka.",
               static_cast<double>(st.lag_events));
    out.single("keel_outbox_lag_seconds", "gauge", "Age of the oldest undelivered event.",
               static_cast<double>(st.lag_ms) / 1000.0);
    out.single("keel_outbox_checkpoint", "gauge", "The outbox relay's saved position.",
               static_cast<double>(st.checkpoint));
    out.single("keel_outbox_delivered_total", "counter", "Events delivered to Kafka.",
               static_cast<double>(st.delivered));
    out.single("keel_outbox_delivery_failures_total", "counter", "Failed deliveries (retried).",
               static_cast<double>(st.delivery_failures));
    out.single("keel_outbox_found_published_total", "counter",
               "Events a new primary found in the topics past its checkpoint (published by the "
               "primary before it) and did not publish again.",
               static_cast<double>(st.found_published));
  }
}

void projections_and_today(exposition& out, const node::impl& s) {
  auto status = s.runner->status();
  out.family("keel_projection_lag_events", "gauge", "Events a projection has not applied yet.");
  for (auto& p : status)
    out.sample("keel_projection_lag_events", {{"projection", p.name}},
               static_cast<double>(p.lag_events));
  out.family("keel_projection_lag_seconds", "gauge", "Age of the oldest unapplied event.");
  for (auto& p : status)
    out.sample("keel_projection_lag_seconds", {{"projection", p.name}}, p.lag_ms / 1000.0);
  out.family("keel_projection_stopped", "gauge", "1 while a projection is stopped at an event.");
  for (auto& p : status)
    out.sample("keel_projection_stopped", {{"projection", p.name}}, p.failure ? 1.0 : 0.0);
  // In a cluster: the orders of the slots whose data this node holds, so
  // that the nodes' figures add up (a moved slot's old copy is left out).
  auto day = projections::day_of(now_s() * 1000000);
  auto today = s.link ? projections::figures_of_day(s.store(), day, s.link->data_slots())
                      : projections::figures_of_day(s.store(), day);
  out.family("keel_orders_today", "gauge",
             "Orders of today (UTC) by status, from the figures read model (in a cluster, of "
             "the slots whose data this node holds: sum them over the nodes).");
  if (today) {
    std::pair<const char*, std::uint64_t> counts[] = {{"placed", today->placed},
                                                      {"completed", today->completed},
                                                      {"rejected", today->rejected},
                                                      {"cancelled", today->cancelled},
                                                      {"pending_payment", today->pending_payment}};
    for (auto& [name, n] : counts)
      out.sample("keel_orders_today", {{"status", name}}, static_cast<double>(n));
  }
  out.family("keel_revenue_today_cents", "gauge",
             "Revenue of the orders completed today (UTC), per currency, in cents.");
  if (today)
    for (auto& r : today->revenue)
      out.sample("keel_revenue_today_cents", {{"currency", r.currency}},
                 static_cast<double>(r.revenue_cents));
}

} // namespace

namespace {

void replication(exposition& out, const replication_figures& r, std::uint64_t standby_reads) {
  auto d = [](auto x) { return static_cast<double>(x); };
  out.single("keel_replication_primary", "gauge",
             "1 while this node is its group's primary (it alone writes the group's log).",
             r.primary ? 1.0 : 0.0);
  out.single("keel_replication_token", "gauge", "The fencing token of this primary's term.",
             d(r.token));
  out.single("keel_replication_alone", "gauge",
             "1 while the primary acknowledges writes without a synchronous standby (etcd "
             "records it): they are on one machine only.",
             r.primary && r.sync_standby.empty() ? 1.0 : 0.0);
  out.family("keel_replication_standby_lag_events", "gauge",
             "Events of the primary's log a standby has not stored yet.");
  out.family("keel_replication_standby_sync", "gauge",
             "1 for the standby every acknowledged batch reaches first.");
  for (auto& sb : r.standbys) {
    out.sample("keel_replication_standby_lag_events", {{"standby", sb.node}}, d(sb.lag_events));
    out.sample("keel_replication_standby_sync", {{"standby", sb.node}}, sb.sync ? 1.0 : 0.0);
  }
  out.single("keel_replication_lag_events", "gauge",
             "Standby: events of its primary's log it has not stored yet (its reads are this "
             "stale).",
             d(r.lag_events));
  out.single("keel_replication_seconds_since_contact", "gauge",
             "Standby: seconds since its primary last sent a batch (-1: never).",
             r.since_contact_seconds);
  out.single("keel_replication_standby_reads_total", "counter",
             "Standby: reads it served from its own store (Keel-Read: standby).",
             d(standby_reads));
  out.family("keel_replication_batches_total", "counter",
             "Batches the primary acknowledged: confirmed by the synchronous standby, or alone.");
  out.sample("keel_replication_batches_total", {{"outcome", "confirmed"}}, d(r.batches_confirmed));
  out.sample("keel_replication_batches_total", {{"outcome", "alone"}}, d(r.batches_alone));
  out.single("keel_replication_sync_losses_total", "counter",
             "Times the synchronous standby did not answer within the sync timeout.",
             d(r.gate_timeouts));
  out.single("keel_replication_incomplete", "gauge",
             "1 while this node's store lacks part of its group's log (new, wiped or seeded, "
             "not caught up): it does not take the primary role even if etcd names it.",
             r.incomplete ? 1.0 : 0.0);
  out.family("keel_replication_seeds_total", "counter",
             "Checkpoints of the store offered to standbys far behind (offered), and fetched "
             "by this standby to start again on (received).");
  out.sample("keel_replication_seeds_total", {{"direction", "offered"}}, d(r.seeds_offered));
  out.sample("keel_replication_seeds_total", {{"direction", "received"}}, d(r.seeds_received));
  out.single("keel_replication_promotions_total", "counter",
             "Times this node became its group's primary (failovers, first starts).",
             d(r.promotions));
  out.single("keel_replication_truncated_events_total", "counter",
             "Events this node's store dropped when it rejoined (written by it as primary, "
             "never acknowledged by the group).",
             d(r.truncated_events));
}

void cluster(exposition& out, const cluster_link& link) {
  auto f = link.figures();
  auto d = [](auto x) { return static_cast<double>(x); };
  out.single("keel_cluster_member_live", "gauge",
             "1 while this node's etcd lease is live (it serves its slots only then).",
             f.live ? 1.0 : 0.0);
  out.single("keel_cluster_members", "gauge", "Live members of the cluster, as this node sees them.",
             d(f.members));
  out.single("keel_cluster_slots", "gauge", "Slots of the cluster.", d(f.slots));
  out.single("keel_cluster_slots_owned", "gauge", "Slots this node serves now.", d(f.slots_owned));
  out.single("keel_cluster_slots_without_owner", "gauge",
             "Slots no live node holds: their keys get 503 unavailable.",
             d(f.slots_without_owner));
  out.single("keel_cluster_map_version", "gauge", "Version of the slot map this node sees.",
             d(f.map_version));
  out.single("keel_cluster_controller", "gauge", "1 when this node is the cluster's controller.",
             f.controller ? 1.0 : 0.0);
  out.single("keel_cluster_peers_connected", "gauge", "Other nodes this node has a connection to.",
             d(f.peers_connected));
  out.family("keel_cluster_forwarded_requests_total", "counter",
             "HTTP requests forwarded to a key's owner (out) and served for another node (in).");
  out.sample("keel_cluster_forwarded_requests_total", {{"direction", "out"}}, d(f.forwarded));
  out.sample("keel_cluster_forwarded_requests_total", {{"direction", "in"}}, d(f.forwarded_in));
  out.single("keel_cluster_forward_failures_total", "counter",
             "Forwarded requests the owner did not answer (connection lost, timeout).",
             d(f.forward_failures));
  out.single("keel_cluster_remote_stock_refusals_total", "counter",
             "Orders refused at the door by the stock levels other nodes sent for their SKUs.",
             d(f.remote_stock_refusals));
  out.single("keel_cluster_not_owner_total", "counter",
             "Requests from other nodes for slots this node does not serve.", d(f.not_owner));
  out.family("keel_cluster_stock_calls_total", "counter",
             "Stock requests of sagas sent to a SKU's owner (out) and served for another "
             "node's sagas (in).");
  out.sample("keel_cluster_stock_calls_total", {{"direction", "out"}}, d(f.stock_calls_out));
  out.sample("keel_cluster_stock_calls_total", {{"direction", "in"}}, d(f.stock_calls_in));
  out.family("keel_cluster_slot_moves_total", "counter",
             "Slots this node handed over (out) and received (in).");
  out.sample("keel_cluster_slot_moves_total", {{"direction", "out"}}, d(f.moves_out));
  out.sample("keel_cluster_slot_moves_total", {{"direction", "in"}}, d(f.moves_in));
  out.single("keel_cluster_slot_move_failures_total", "counter",
             "Slot moves that failed and were tried again later.", d(f.move_failures));
  out.single("keel_cluster_slots_moving", "gauge",
             "Slots this node holds but no longer serves: they are being handed over.",
             d(f.slots_moving));
  out.single("keel_cluster_events_moved_total", "counter",
             "Events this node copied to the new owners of its slots.", d(f.events_moved));
  out.family("keel_cluster_retry_entries_total", "counter",
             "Payment retry entries read from the shared topic for another node's order and "
             "passed on to it (out), passed on to this node (in), and dropped because the "
             "order's owner stayed unreachable (dropped; the owner re-parks the order).");
  out.sample("keel_cluster_retry_entries_total", {{"direction", "out"}}, d(f.retry_passed));
  out.sample("keel_cluster_retry_entries_total", {{"direction", "in"}}, d(f.retry_received));
  out.sample("keel_cluster_retry_entries_total", {{"direction", "dropped"}},
             d(f.retry_pass_dropped));
  out.family("keel_cluster_slot_move_duration_seconds", "histogram",
             "Duration of the slot moves this node made, from freeze to release.");
  out.samples("keel_cluster_slot_move_duration_seconds", {}, link.move_seconds());
  out.family("keel_cluster_forward_duration_seconds", "histogram",
             "Latency of forwarded requests, as the forwarding node sees it.");
  out.samples("keel_cluster_forward_duration_seconds", {}, link.forward_seconds());
}

} // namespace

std::string render_metrics(const node::impl& s, const health_report& health) {
  exposition out;
  sagas(out, s);
  breakers(out, s);
  bulkheads(out, s);
  pools(out, s);
  http(out, s);
  cache(out, s);
  kafka(out, s);
  projections_and_today(out, s);
  if (s.link)
    cluster(out, *s.link);
  if (s.link)
    if (auto r = s.link->replication())
      replication(out, *r, s.standby_reads.load());
  out.family("keel_health_score", "gauge", "Weighted health score 0..1 (warn below 0.7).");
  out.sample("keel_health_score", {}, health.score);
  out.family("keel_health_component_score", "gauge", "Health score of one component 0..1.");
  for (auto& c : health.components)
    out.sample("keel_health_component_score", {{"component", c.name}}, c.score);
  out.single("keel_ready", "gauge", "1 when the node serves (recovered, not draining).",
             s.is_ready.load() ? 1.0 : 0.0);
  return out.take();
}

namespace {

/// A gate like storage: a node without its lease serves none of its slots
/// (critical); slots without a live owner, or members holding slots it
/// cannot reach, make part of the key space answer 503 (warn).
health_component cluster_health(const cluster_link& link, std::string& status) {
  auto f = link.figures();
  auto& name = link.config().cluster;
  if (!f.live) {
    status = "critical";
    return {"cluster", 0.0, 0.0,
            "node " + f.node_id + " is not a live member of cluster " + name
              + " (no lease: it serves no slot and keeps trying to join)"};
  }
  auto detail = "node " + f.node_id + " of cluster " + name + ": " + std::to_string(f.members)
                + " members, serves " + std::to_string(f.slots_owned) + " of "
                + std::to_string(f.slots) + " slots";
  bool degraded = false;
  if (f.slots_without_owner > 0) {
    detail += "; " + std::to_string(f.slots_without_owner)
              + " slots without a live owner (their keys get 503)";
    degraded = true;
  }
  if (!link.connected()) {
    detail += "; not connected to every member that holds slots";
    degraded = true;
  }
  if (degraded && status == "ok")
    status = "warn";
  return {"cluster", 0.0, degraded ? 0.5 : 1.0, detail};
}

/// A replicated group's member: a primary writing alone, or a standby that
/// does not follow its primary (or lags far behind), is a warning.
health_component replication_health(const replication_figures& r, const std::string& group,
                                    std::string& status) {
  std::string detail;
  bool degraded = false;
  if (r.primary) {
    detail = "primary of group " + group + " (token " + std::to_string(r.token) + ")";
    if (r.sync_standby.empty()) {
      detail += "; acknowledges writes without a synchronous standby since "
                + events::format_timestamp(r.alone_since_us) + " (on this machine only)";
      degraded = true;
    } else {
      detail += "; synchronous standby " + r.sync_standby;
    }
  } else {
    detail = "standby of group " + group;
    if (r.following.empty() || r.since_contact_seconds < 0 || r.since_contact_seconds > 5) {
      detail += "; not following a primary now";
      degraded = true;
    } else {
      detail += ", following " + r.following + ", " + std::to_string(r.lag_events)
                + " events behind";
      degraded = r.lag_events > 10000;
    }
  }
  if (degraded && status == "ok")
    status = "warn";
  return {"replication", 0.0, degraded ? 0.5 : 1.0, detail};
}

} // namespace

health_report compute_health(const node::impl& s) {
  health_report r;
  double sum = 0;
  auto all_breakers = s.registry().breakers();
  std::size_t open = 0;
  for (auto& b : all_breakers) {
    sum += breaker_score(b->current());
    open += b->current() == events::breaker_state::open;
  }
  auto breakers = all_breakers.empty() ? 1.0 : sum / static_cast<double>(all_breakers.size());
  r.components.push_back({"breakers", 0.3, breakers,
                          std::to_string(open) + " of " + std::to_string(all_breakers.size())
                            + " open"});
  double worst = 0;
  std::string worst_name = "none";
  for (auto& b : s.registry().bulkheads()) {
    auto cap = std::max<std::int64_t>(1, b->capacity.load());
    auto u = static_cast<double>(b->in_use.load()) / static_cast<double>(cap);
    if (u > worst) {
      worst = u;
      worst_name = b->name;
    }
  }
  r.components.push_back({"bulkheads", 0.2, std::clamp(1.0 - worst, 0.0, 1.0),
                          "fullest " + worst_name + " at " + fixed(worst * 100, 0) + "%"});
  auto hits = static_cast<double>(s.cache->hits());
  auto lookups = hits + static_cast<double>(s.cache->misses());
  auto ratio = lookups == 0 ? 1.0 : hits / lookups;
  r.components.push_back({"cache", 0.2, ratio, "stock cache hit ratio " + fixed(ratio)});
  auto depth = retry_depth(s);
  r.components.push_back({"queue", 0.2,
                          std::clamp(1.0 - static_cast<double>(depth) / 10000.0, 0.0, 1.0),
                          "retry queue depth " + std::to_string(depth) + " (alert at 10000)"});
  auto [ok, failed] = s.business.totals(now_s());
  auto business = ok + failed == 0 ? 1.0 : static_cast<double>(ok) / static_cast<double>(ok + failed);
  r.components.push_back({"business", 0.1, business,
                          std::to_string(ok) + " completed, " + std::to_string(failed)
                            + " cancelled in the last 60 s"});
  r.score = 0;
  for (auto& c : r.components)
    r.score += c.weight * c.score;
  r.status = r.score >= 0.7 ? "ok" : r.score >= 0.4 ? "warn" : "critical";
  // Storage is a gate, not a weight: a node that cannot write is critical
  // whatever the other figures say.
  auto st = s.store().health();
  std::string detail = "writable";
  if (!st.writable) {
    detail = "cannot write since " + events::format_timestamp(st.failing_since_us) + ": "
             + st.error
             + (st.needs_restart ? "; restart the node once the cause is fixed (RocksDB cannot "
                                   "resume after a failed WAL write)"
                                 : "; resuming by itself once the cause is gone");
    r.status = "critical";
  }
  r.components.push_back({"storage", 0.0, st.writable ? 1.0 : 0.0, detail});
  // So are the supervisors: one that gave up leaves its service dead.
  std::string gave_up;
  for (auto& x : s.registry().supervisors())
    if (x->escalated.load())
      gave_up += (gave_up.empty() ? "" : ", ") + x->name;
  if (!gave_up.empty())
    r.status = "critical";
  r.components.push_back({"supervisors", 0.0, gave_up.empty() ? 1.0 : 0.0,
                          gave_up.empty() ? "none gave up"
                                          : "gave up (restart budget spent): " + gave_up
                                              + "; restart the node"});
  // Order streams that did not fold at start: a warning for an operator.
  auto& rec = s.core && s.core->started() ? s.core->pipeline().recovered() : actors::recovery_report{};
  if (rec.quarantined > 0 && r.status == "ok")
    r.status = "warn";
  r.components.push_back({"recovery", 0.0, rec.quarantined == 0 ? 1.0 : 0.0,
                          std::to_string(rec.quarantined)
                            + " order streams did not fold at start and were left alone"
                            + (rec.quarantine.empty() ? std::string{}
                                                      : " (first: " + rec.quarantine[0].first + ")")});
  if (s.link)
    r.components.push_back(cluster_health(*s.link, r.status));
  if (s.link)
    if (auto rep = s.link->replication())
      r.components.push_back(replication_health(*rep, s.link->config().group, r.status));
  return r;
}

} // namespace keel::runtime
