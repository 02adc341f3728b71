#pragma once

// The private state of a node (node.cpp, node_metrics.cpp), kept out of
// node.hpp so the HTTP layer does not compile CAF's actor headers.

#include <array>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <optional>

#include "engine.hpp"
#include "http_api.hpp"
#include "keel/actors/pipeline.hpp"
#include "keel/projections/runner.hpp"
#include "keel/projections/stock_cache.hpp"
#include "keel/storage/event_store.hpp"
#include "keel/storage/kafka.hpp"
#include "metrics.hpp"
#include "node.hpp"

namespace keel::runtime {

/// Outcomes of finished sagas per second over the last minute (health's
/// business component).
class outcome_window {
public:
  void record(bool success, std::int64_t now_s);
  /// Successes and failures within the last 60 s.
  std::pair<std::uint64_t, std::uint64_t> totals(std::int64_t now_s) const;

private:
  struct slot {
    std::int64_t second = -1;
    std::uint64_t ok = 0;
    std::uint64_t failed = 0;
  };
  mutable std::mutex mtx_;
  std::array<slot, 60> slots_;
};

struct node::impl {
  node_config cfg;
  /// The store, the catalogue, the actor system and the pipeline.
  std::unique_ptr<engine> core;
  std::shared_ptr<projections::stock_cache> cache;
  /// The store's writability last seen (transitions are logged once).
  mutable std::atomic<bool> store_was_writable{true};
  std::unique_ptr<projections::projection_runner> runner;
  std::unique_ptr<storage::kafka_cluster> kafka;
  /// Set at start - or, in a replicated group, once this node is primary
  /// (from the cluster agent's thread): read it under `outbox_mtx`.
  std::unique_ptr<storage::outbox_relay> outbox;
  mutable std::mutex outbox_mtx;
  /// Starts the relay of a promoted standby (node.cpp, on_promoted); joined
  /// by shutdown, or here when the node never finished starting.
  std::thread relay_starter;
  ~impl() {
    if (relay_starter.joinable())
      relay_starter.join();
  }
  std::optional<storage::outbox_status> outbox_status() const {
    std::lock_guard<std::mutex> guard{outbox_mtx};
    if (!outbox)
      return std::nullopt;
    return outbox->status();
  }
  std::unique_ptr<storage::retry_topic> retry;
  std::unique_ptr<http_api> http;
  /// Set in a cluster (before the engine: it shapes the pipeline).
  std::unique_ptr<cluster_link> link;

  /// Retry-queue entries consumed before the pipeline existed.
  std::mutex early_mtx;
  std::vector<actors::parked_payment> early;
  std::atomic<actors::pipeline*> live_pipeline{nullptr};

  // Figures.
  std::atomic<bool> is_ready{false};
  std::atomic<bool> stop_requested{false};
  /// A primary of a replicated group lost its role: it stops at once and
  /// starts again as a standby (keel-node execs itself).
  std::atomic<bool> restart_requested{false};
  std::mutex stop_mtx;
  std::condition_variable stop_cv;
  std::map<std::string, std::unique_ptr<histogram>> saga_seconds; // by outcome, fixed at start
  std::map<std::string, std::unique_ptr<std::atomic<std::uint64_t>>> outcomes;
  outcome_window business;
  mutable std::mutex http_mtx;
  std::map<std::pair<std::string, int>, std::uint64_t> http_requests;
  std::map<std::string, std::unique_ptr<histogram>> http_seconds;
  std::atomic<std::uint64_t> rate_limited{0};
  std::atomic<std::uint64_t> shed{0};
  std::atomic<std::uint64_t> standby_reads{0};
  std::atomic<std::uint64_t> park_fallbacks{0};
  std::int64_t started_us = 0;

  storage::event_store& store() const {
    return core->store();
  }
  actors::registry& registry() const {
    return core->metrics();
  }

  void finished(const actors::finished_order& x);
  void park(const actors::parked_payment& p);
  /// A retry-topic message against the order's stored state (H5: the topic
  /// is not trusted).
  storage::retry_topic::verdict check_entry(const storage::retry_entry& e) const;
  void consumed(const storage::retry_entry& e);
  /// Gives a parked payment to the pipeline's retry scheduler (held until
  /// the pipeline exists, during recovery).
  void hand_back(const actors::parked_payment& p);
};

/// Renders the node's metrics (node_metrics.cpp).
std::string render_metrics(const node::impl& s, const health_report& health);

/// Computes the health score (node_metrics.cpp).
health_report compute_health(const node::impl& s);

} // namespace keel::runtime
