// The projection runner: one subscription per projection generation, batched
// commits of read-model changes with their checkpoint, poison-event stops,
// operator skips, and rebuilds into a shadow generation with an atomic swap.

#include "keel/projections/runner.hpp"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>
#include <thread>

#include "codec.hpp"
#include "keel/events/error.hpp"
#include "keel/projections/stock_cache.hpp"
#include "keel/storage/event_store.hpp"
#include "models.hpp"

namespace keel::projections {

// -- keyspace and the standard projections ----------------------------------------

projection::~projection() = default;

std::string keyspace::key(std::string_view key) const {
  std::string full;
  full.reserve(prefix_.size() + key.size());
  full.append(prefix_).append(key);
  return full;
}

caf::expected<std::optional<std::string>> keyspace::get(std::string_view key) const {
  return store_->get_model(this->key(key));
}

void keyspace::put(storage::write_batch& batch, std::string_view key,
                   std::string_view value) const {
  batch.put(this->key(key), value);
}

void keyspace::erase(storage::write_batch& batch, std::string_view key) const {
  batch.erase(this->key(key));
}

const std::vector<std::string>& standard_projection_names() {
  static const std::vector<std::string> names{"orders", "stock", "figures"};
  return names;
}

// -- stored metadata --------------------------------------------------------------

namespace {

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

/// The first key after every key that starts with `prefix` (which ends in '/').
std::string prefix_end(std::string prefix) {
  prefix.back() = static_cast<char>(prefix.back() + 1);
  return prefix;
}

std::string skip_key(std::string_view name, std::uint64_t position) {
  auto digits = std::to_string(position);
  return detail::meta_key(name, "skip/" + std::string(20 - digits.size(), '0') + digits);
}

std::string describe_failure(std::string_view name, const projection_failure& f) {
  if (f.position == 0)
    return "projection " + std::string{name} + " stopped: " + f.reason;
  return "projection " + std::string{name} + " stopped at position " + std::to_string(f.position)
         + " (" + f.event_type + " in " + f.stream + "): " + f.reason;
}

} // namespace

caf::expected<std::uint32_t> active_generation(const storage::event_store& store,
                                               std::string_view name) {
  auto key = detail::meta_key(name, "active");
  auto value = store.get_model(key);
  if (!value)
    return value.error();
  if (!*value)
    return std::uint32_t{0};
  std::uint32_t gen = 0;
  auto& s = **value;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), gen);
  if (ec != std::errc{} || end != s.data() + s.size() || gen == 0)
    return detail::corrupt_model(key);
  return gen;
}

caf::expected<std::optional<projection_failure>>
recorded_failure(const storage::event_store& store, std::string_view name) {
  auto framing = detail::framing_of(store, name);
  if (!framing)
    return framing.error();
  auto key = detail::meta_key(name, "failure");
  auto value = store.get_model(key);
  if (!value)
    return value.error();
  if (!*value)
    return std::optional<projection_failure>{};
  projection_failure f;
  if (auto err = detail::decode(key, **value, f, *framing))
    return err;
  return std::optional<projection_failure>{std::move(f)};
}

caf::expected<std::vector<skip_record>> list_skips(const storage::event_store& store,
                                                   std::string_view name) {
  auto framing = detail::framing_of(store, name);
  if (!framing)
    return framing.error();
  std::vector<skip_record> result;
  auto err = detail::for_each_page(
    store, detail::meta_key(name, "skip/"), 1000, [&](detail::model_page& page) {
      for (auto& [key, value] : page) {
        skip_record s;
        if (auto err = detail::decode(key, value, s, *framing))
          return err;
        result.push_back(std::move(s));
      }
      return caf::error{};
    });
  if (err)
    return err;
  return result;
}

caf::error skip_event(storage::event_store& store, std::string_view name,
                      std::uint64_t position, std::string_view skipped_by,
                      std::string_view note) {
  auto failure = recorded_failure(store, name);
  if (!failure)
    return failure.error();
  if (!*failure || (*failure)->position != position)
    return make_error(errc::invalid_argument,
                      "projection " + std::string{name} + " is not stopped at position "
                        + std::to_string(position)
                        + (*failure ? " (it is stopped at " + std::to_string((*failure)->position) + ")"
                                    : std::string{" (it is not stopped)"}));
  auto gen = active_generation(store, name);
  if (!gen)
    return gen.error();
  auto cp_name = detail::checkpoint_name(name, *gen);
  auto cp = store.load_checkpoint(cp_name);
  if (!cp)
    return cp.error();
  auto at = *cp ? (*cp)->position : 0;
  if (at + 1 != position)
    return make_error(errc::invalid_argument, "projection " + std::string{name}
                                                + " has applied up to position " + std::to_string(at)
                                                + ", not up to the event before "
                                                + std::to_string(position));
  skip_record rec{position,  (*failure)->event_type, (*failure)->stream, (*failure)->reason,
                  std::string{skipped_by}, std::string{note}, now_us()};
  // In the framing of the store's other records (a store of an earlier
  // build is upgraded by the next runner, this record with them).
  auto framing = detail::framing_of(store, name);
  if (!framing)
    return framing.error();
  storage::write_batch wb;
  wb.put(skip_key(name, position), detail::encode(rec, *framing));
  wb.erase(detail::meta_key(name, "failure"));
  wb.set_checkpoint(cp_name, position);
  return store.commit(std::move(wb), true);
}

// -- the runner ---------------------------------------------------------------------

namespace {

/// Frames the stored values of projection `name` (serving generation `gen`)
/// as `versioned` when an earlier build left them unversioned. Their bytes
/// are the fields of format version 1, so each value gains the version in
/// front. Skip records are rewritten in place; the models of a standard
/// projection (`models_framed`) are copied into generation `gen + 1`, which
/// becomes the serving one in the batch that records the framing. A crash
/// before that batch leaves generation `gen` serving: the next start erases
/// the partial copy and upgrades again. Returns what it did; nothing when
/// the values carry their versions already.
caf::expected<std::optional<framing_upgrade>>
upgrade_framing(storage::event_store& store, const std::string& name, std::uint32_t gen,
                bool models_framed) {
  auto framing = detail::framing_of(store, name);
  if (!framing)
    return framing.error();
  if (*framing == detail::value_framing::versioned)
    return std::optional<framing_upgrade>{};
  auto started = std::chrono::steady_clock::now();
  framing_upgrade done{name, 0, gen, gen, 0.0};
  const std::string version_1(1, '\x01');
  // Each value of `from` put under `to` with its version in front.
  auto framed = [&](storage::write_batch& wb, const std::string& from, const std::string& to,
                    const detail::model_page& page) {
    for (auto& [key, value] : page)
      wb.put(to + key.substr(from.size()), version_1 + value);
    done.values += page.size();
  };
  storage::write_batch last;
  if (models_framed) {
    auto from = detail::generation_prefix(name, gen);
    auto to = detail::generation_prefix(name, gen + 1);
    auto err = detail::for_each_page(store, from, 4096, [&](detail::model_page& page) {
      storage::write_batch wb;
      framed(wb, from, to, page);
      return store.commit(std::move(wb), false);
    });
    if (err)
      return err;
    auto cp = store.load_checkpoint(detail::checkpoint_name(name, gen));
    if (!cp)
      return cp.error();
    if (*cp)
      last.set_checkpoint(detail::checkpoint_name(name, gen + 1), (*cp)->position);
    last.erase_checkpoint(detail::checkpoint_name(name, gen));
    last.erase_range(from, to);
    last.put(detail::meta_key(name, "active"), std::to_string(gen + 1));
    done.to_generation = gen + 1;
  }
  auto skips = detail::meta_key(name, "skip/");
  auto err = detail::for_each_page(store, skips, 1000, [&](detail::model_page& page) {
    framed(last, skips, skips, page);
    return caf::error{};
  });
  if (err)
    return err;
  last.put(detail::meta_key(name, "format"), detail::framing_value(detail::value_framing::versioned));
  if (auto failed = store.commit(std::move(last), true))
    return failed;
  done.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return std::optional<framing_upgrade>{std::move(done)};
}

using steady = std::chrono::steady_clock;

/// One generation of one projection being applied on its own subscription.
struct lane {
  std::string name;
  std::uint32_t generation = 0;
  std::unique_ptr<projection> proj;
  keyspace models;
  std::string checkpoint;
  std::set<std::uint64_t> skipped;

  // Used by the subscription thread only.
  std::uint64_t applied = 0;
  std::size_t pending = 0;
  steady::time_point first_pending;
  std::vector<std::int64_t> pending_ts;

  // Shared; guarded by the runner's mutex unless atomic.
  bool shadow = false;
  bool ended = false;
  bool swapped = false;
  std::uint64_t committed = 0;
  std::optional<projection_failure> failure;
  std::uint64_t events_applied = 0;
  std::uint64_t commits = 0;
  std::atomic<bool> live{false};
  std::atomic<bool> retire{false};
  std::atomic<bool> serving{false};

  std::unique_ptr<storage::subscription> sub; // last: stopped first on destruction

  lane(std::string n, std::uint32_t gen, std::unique_ptr<projection> p,
       const storage::event_store& store)
    : name(std::move(n)),
      generation(gen),
      proj(std::move(p)),
      models(store, detail::generation_prefix(name, gen)),
      checkpoint(detail::checkpoint_name(name, gen)) {
  }
};

} // namespace

struct projection_runner::impl {
  struct entry {
    std::string name;
    projection_factory make;
    std::shared_ptr<lane> active;
    std::shared_ptr<lane> shadow;
    /// Lanes replaced by a swap or a skip, joined and dropped by API calls
    /// (never by their own thread).
    std::vector<std::shared_ptr<lane>> retired;
    std::vector<double> lag_ms;
    std::size_t lag_next = 0;
    /// A skip is between its check and its new lane (review L2: a second
    /// skip must not pass the same check and launch a second live lane).
    bool skipping = false;
    /// A standard projection: its models are encoded by this module (see
    /// `upgrade_framing`); other projections' models are their own bytes.
    bool models_framed = false;
  };

  storage::event_store& store;
  runner_options opts;
  std::vector<std::unique_ptr<entry>> entries;
  mutable std::mutex mtx;
  mutable std::condition_variable cv;
  bool started = false;
  bool stopping = false;
  /// Threads that delete swapped-out generations (joined by `stop`).
  std::vector<std::thread> janitors;
  std::vector<framing_upgrade> upgrades;

  impl(storage::event_store& s, runner_options o) : store(s), opts(o) {
  }

  entry* find(std::string_view name) const {
    for (auto& e : entries)
      if (e->name == name)
        return e.get();
    return nullptr;
  }

  caf::expected<std::shared_ptr<lane>> make_lane(entry& e, std::uint32_t gen, bool shadow) {
    auto skips = list_skips(store, e.name);
    if (!skips)
      return skips.error();
    auto l = std::make_shared<lane>(e.name, gen, e.make(), store);
    for (auto& s : *skips)
      l->skipped.insert(s.position);
    l->shadow = shadow;
    l->serving = !shadow;
    return l;
  }

  caf::error launch(entry& e, lane& l) {
    auto cp = store.load_checkpoint(l.checkpoint);
    if (!cp)
      return cp.error();
    l.applied = l.committed = *cp ? (*cp)->position : 0;
    l.proj->starting(l.applied == 0);
    storage::subscription::options sopts;
    sopts.max_batch = opts.delivery_batch;
    // A record that cannot be read (corrupt, I/O) stops the projection like
    // an event it cannot apply: at that position, recorded, skippable.
    sopts.on_error = [this, &l](const caf::error& err) {
      stop_at(l, {l.applied + 1, {}, {}, "reading the log: " + describe(err)}, true);
    };
    l.sub = store.subscribe(
      l.applied + 1,
      [this, &e, &l](const std::vector<events::record_view>& batch) { return on_batch(e, l, batch); },
      sopts);
    return caf::error{};
  }

  bool on_batch(entry& e, lane& l, const std::vector<events::record_view>& batch) {
    if (l.retire.load())
      return false;
    for (auto& rec : batch) {
      if (rec.position <= l.applied)
        continue;
      if (l.skipped.count(rec.position) == 0 && l.proj->wants(rec.type)) {
        auto ev = rec.decode_payload();
        if (!ev) {
          stop_at(l, failure_at(rec, describe(ev.error())), true);
          return false;
        }
        if (auto err = l.proj->apply(rec, *ev, l.models)) {
          stop_at(l, failure_at(rec, describe(err)), true);
          return false;
        }
      }
      if (l.pending == 0)
        l.first_pending = steady::now();
      ++l.pending;
      l.applied = rec.position;
      l.pending_ts.push_back(rec.timestamp_us);
      if (l.pending >= opts.max_batch_events && !commit(e, l))
        return false;
    }
    bool caught_up = l.applied >= store.last_position();
    if (l.pending > 0 && (caught_up || steady::now() - l.first_pending >= opts.max_batch_delay)
        && !commit(e, l))
      return false;
    if (caught_up) {
      l.live = true;
      if (l.shadow)
        return swap(e, l);
    }
    return true;
  }

  bool commit(entry& e, lane& l) {
    storage::write_batch wb;
    l.proj->flush(wb, l.models);
    wb.set_checkpoint(l.checkpoint, l.applied);
    if (auto err = store.commit(std::move(wb), opts.fsync)) {
      l.proj->discard();
      stop_at(l, {0, {}, {}, "committing a batch: " + describe(err)}, false);
      return false;
    }
    auto now = now_us();
    l.proj->committed(l.serving.load());
    {
      std::lock_guard<std::mutex> guard{mtx};
      l.committed = l.applied;
      l.events_applied += l.pending;
      ++l.commits;
      if (l.live && !l.shadow) {
        auto window = std::max<std::size_t>(1, opts.lag_samples);
        for (auto ts : l.pending_ts) {
          auto ms = static_cast<double>(now - ts) / 1000.0;
          if (e.lag_ms.size() < window)
            e.lag_ms.push_back(ms);
          else
            e.lag_ms[e.lag_next] = ms;
          e.lag_next = (e.lag_next + 1) % window;
        }
      }
    }
    cv.notify_all();
    l.pending = 0;
    l.pending_ts.clear();
    return true;
  }

  /// Stops lane `l` at `f`. With `at_event` (an event it cannot apply or
  /// cannot read), first commits what was applied before it and records the
  /// failure for operators (serving lanes); otherwise (a failed commit) the
  /// pending changes are gone already.
  void stop_at(lane& l, projection_failure f, bool at_event) {
    if (at_event) {
      storage::write_batch wb;
      if (l.pending > 0) {
        l.proj->flush(wb, l.models);
        wb.set_checkpoint(l.checkpoint, l.applied);
      }
      if (!l.shadow)
        wb.put(detail::meta_key(l.name, "failure"), detail::encode(f));
      if (auto err = store.commit(std::move(wb), true)) {
        l.proj->discard();
        f.reason += "; then recording it failed: " + describe(err);
      } else {
        l.proj->committed(l.serving.load());
        std::lock_guard<std::mutex> guard{mtx};
        l.committed = l.applied;
        l.events_applied += l.pending;
      }
      l.pending = 0;
      l.pending_ts.clear();
    }
    {
      std::lock_guard<std::mutex> guard{mtx};
      l.failure = std::move(f);
      l.ended = true;
    }
    cv.notify_all();
  }

  /// The failure of event `rec`.
  static projection_failure failure_at(const events::record_view& rec, std::string reason) {
    return {rec.position, std::string{rec.type}, std::string{rec.stream}, std::move(reason)};
  }

  /// Runs on the shadow's subscription thread once it caught up: stops the
  /// serving lane, makes the shadow's generation the serving one in one
  /// write, and goes on as the serving lane.
  bool swap(entry& e, lane& l) {
    std::shared_ptr<lane> old;
    {
      std::lock_guard<std::mutex> guard{mtx};
      old = e.active;
    }
    old->retire = true;
    old->serving = false;
    if (old->sub)
      old->sub->stop(); // joins the old lane's thread (never this one)
    storage::write_batch wb;
    wb.put(detail::meta_key(e.name, "active"), std::to_string(l.generation));
    wb.erase(detail::meta_key(e.name, "failure"));
    if (auto err = store.commit(std::move(wb), true)) {
      stop_at(l,
              {0, {}, {}, "swapping in generation " + std::to_string(l.generation) + ": "
                            + describe(err)},
              false);
      // The old generation still serves: let it go on.
      auto again = make_lane(e, old->generation, false);
      if (again && !launch(e, **again)) {
        std::lock_guard<std::mutex> guard{mtx};
        e.retired.push_back(std::move(e.active));
        e.active = std::move(*again);
      }
      return false;
    }
    {
      std::lock_guard<std::mutex> guard{mtx};
      l.serving = true;
      l.shadow = false;
      l.swapped = true;
      e.retired.push_back(std::move(e.active));
      e.active = std::move(e.shadow);
      e.lag_ms.clear();
      e.lag_next = 0;
    }
    l.proj->activated();
    cv.notify_all();
    return true;
  }

  void drop_retired(entry& e) {
    std::vector<std::shared_ptr<lane>> dead;
    {
      std::lock_guard<std::mutex> guard{mtx};
      dead.swap(e.retired);
    }
    for (auto& l : dead) {
      l->retire = true;
      if (l->sub)
        l->sub->stop();
    }
  }

  caf::error erase_generation(std::string_view name, std::uint32_t gen) {
    storage::write_batch wb;
    auto prefix = detail::generation_prefix(name, gen);
    wb.erase_range(prefix, prefix_end(prefix));
    wb.erase_checkpoint(detail::checkpoint_name(name, gen));
    return store.commit(std::move(wb), opts.fsync);
  }

  /// A batch of records copied out of the reader, shared by the lanes that
  /// apply it.
  /// A bounded hand-over of batches from the reader to one lane's thread.
  struct batch_queue {
    std::mutex mtx;
    std::condition_variable cv;
    std::deque<std::shared_ptr<const storage::record_batch>> items;
    bool closed = false;
    bool done = false; // the lane stopped taking batches
  };

  /// Fills shadow lanes from position 1 up to the log's current end with one
  /// reader (this thread) and one applying thread per lane, so a rebuild of
  /// every projection reads the log once and uses both cores. Lanes go on
  /// with subscriptions of their own afterwards (`launch`).
  void fill(const std::vector<std::pair<entry*, std::shared_ptr<lane>>>& jobs) {
    constexpr std::size_t queue_depth = 8;
    auto end = store.last_position();
    std::vector<std::unique_ptr<batch_queue>> queues;
    std::vector<std::thread> workers;
    for (auto& [e, l] : jobs) {
      queues.push_back(std::make_unique<batch_queue>());
      auto* q = queues.back().get();
      workers.emplace_back([this, e = e, l = l.get(), q] {
        for (;;) {
          std::shared_ptr<const storage::record_batch> b;
          {
            std::unique_lock<std::mutex> guard{q->mtx};
            q->cv.wait(guard, [&] { return !q->items.empty() || q->closed; });
            if (q->items.empty())
              break;
            b = std::move(q->items.front());
            q->items.pop_front();
          }
          q->cv.notify_all();
          if (!on_batch(*e, *l, b->views())) {
            std::lock_guard<std::mutex> guard{q->mtx};
            q->done = true;
            q->items.clear();
            return;
          }
        }
        if (l->pending > 0 && !l->ended)
          commit(*e, *l);
        // An empty log delivers no batch: see whether the shadow is caught
        // up (and swaps) here, or its subscription never would until the
        // next append.
        if (!l->ended && !l->swapped)
          on_batch(*e, *l, {});
      });
    }
    auto publish = [&](std::shared_ptr<const storage::record_batch> b) {
      for (auto& q : queues) {
        std::unique_lock<std::mutex> guard{q->mtx};
        q->cv.wait(guard, [&] { return q->items.size() < queue_depth || q->done; });
        if (!q->done)
          q->items.push_back(b);
        guard.unlock();
        q->cv.notify_all();
      }
    };
    // A read error ends the fill early; each lane's subscription then meets
    // the same record and stops there (see `launch`).
    auto reader = store.read_all(1, end);
    auto batch = std::make_shared<storage::record_batch>();
    bool running = true;
    while (running && reader.next()) {
      batch->add(reader.current());
      if (batch->size() == opts.delivery_batch) {
        publish(std::move(batch));
        batch = std::make_shared<storage::record_batch>();
        std::lock_guard<std::mutex> guard{mtx};
        running = !stopping;
      }
    }
    if (!batch->empty())
      publish(std::move(batch));
    for (auto& q : queues) {
      {
        std::lock_guard<std::mutex> guard{q->mtx};
        q->closed = true;
      }
      q->cv.notify_all();
    }
    for (auto& w : workers)
      w.join();
  }

  caf::error rebuild(const std::vector<std::string>& names) {
    std::vector<std::pair<entry*, std::shared_ptr<lane>>> jobs;
    std::vector<std::uint32_t> old_gens;
    auto undo = [&] {
      std::lock_guard<std::mutex> guard{mtx};
      for (auto& [e, l] : jobs)
        if (e->shadow == l)
          e->shadow.reset();
    };
    for (auto& name : names) {
      std::unique_lock<std::mutex> guard{mtx};
      auto* e = find(name);
      if (e == nullptr) {
        guard.unlock();
        undo();
        return make_error(errc::not_found, "no projection " + name);
      }
      if (!started || stopping || !e->active) {
        guard.unlock();
        undo();
        return make_error(errc::invalid_argument, "the projection runner is not running");
      }
      if (e->shadow) {
        guard.unlock();
        undo();
        return make_error(errc::invalid_argument,
                          "a rebuild of projection " + name + " is running");
      }
      auto old_gen = e->active->generation;
      guard.unlock();
      if (auto err = erase_generation(e->name, old_gen + 1)) {
        undo();
        return err;
      }
      auto shadow = make_lane(*e, old_gen + 1, true);
      if (!shadow) {
        undo();
        return shadow.error();
      }
      guard.lock();
      e->shadow = *shadow;
      jobs.emplace_back(e, *shadow);
      old_gens.push_back(old_gen);
    }
    fill(jobs);
    std::unique_lock<std::mutex> guard{mtx};
    for (auto& [e, l] : jobs)
      if (!l->ended && !stopping)
        if (auto err = launch(*e, *l)) {
          l->failure = projection_failure{0, {}, {}, describe(err)};
          l->ended = true;
        }
    cv.wait(guard, [&] {
      return stopping
             || std::all_of(jobs.begin(), jobs.end(),
                            [](auto& job) { return job.second->swapped || job.second->ended; });
    });
    caf::error first;
    for (std::size_t i = 0; i < jobs.size(); ++i) {
      auto* e = jobs[i].first;
      auto l = jobs[i].second;
      auto old_gen = old_gens[i];
      if (l->swapped) {
        // The old generation goes after a grace period, off the caller's
        // time: queries that read the old serving generation finish.
        janitors.emplace_back([this, e, old_gen] {
          {
            std::unique_lock<std::mutex> lock{mtx};
            cv.wait_for(lock, opts.retire_grace, [&] { return stopping; });
          }
          drop_retired(*e);
          erase_generation(e->name, old_gen);
        });
        continue;
      }
      auto failure = l->failure;
      if (e->shadow == l)
        e->shadow.reset();
      guard.unlock();
      l->retire = true;
      if (l->sub)
        l->sub->stop();
      erase_generation(e->name, l->generation);
      guard.lock();
      if (!first)
        first = failure ? make_error(errc::projection_stopped,
                                     "rebuild: " + describe_failure(e->name, *failure))
                        : make_error(errc::invalid_argument,
                                     "the projection runner stopped during the rebuild");
    }
    return first;
  }

  /// What status reads under the runner's lock; `complete` does the rest
  /// outside it (sorting the samples would hold up every commit).
  projection_status status_of(const entry& e, std::vector<double>& samples) const {
    projection_status s;
    auto& l = *e.active;
    s.name = e.name;
    s.generation = l.generation;
    s.position = l.committed;
    auto last = store.last_position();
    s.lag_events = last > l.committed ? last - l.committed : 0;
    // At the end of the log it is live, even before a delivery set `live`
    // (a lane started at the end of the log gets none until the next append).
    s.state = l.failure ? "stopped" : (l.live || s.lag_events == 0 ? "live" : "catching_up");
    s.events_applied = l.events_applied;
    s.commits = l.commits;
    s.failure = l.failure;
    if (e.shadow)
      s.rebuild_position = e.shadow->committed;
    samples = e.lag_ms;
    return s;
  }

  /// Fills the applied-lag percentiles from `samples` and the age of the
  /// oldest event not applied yet.
  void complete(projection_status& s, std::vector<double>& samples) const {
    if (!samples.empty()) {
      std::sort(samples.begin(), samples.end());
      auto at = [&](double q) {
        auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(samples.size())));
        return samples[std::clamp<std::size_t>(rank, 1, samples.size()) - 1];
      };
      s.applied_lag_p50_ms = at(0.50);
      s.applied_lag_p99_ms = at(0.99);
      s.applied_lag_max_ms = samples.back();
    }
    fill_lag_ms(s);
  }

  void fill_lag_ms(projection_status& s) const {
    if (s.lag_events == 0)
      return;
    auto next = store.read_event(s.position + 1);
    if (next)
      s.lag_ms = std::max(0.0, static_cast<double>(now_us() - next->timestamp_us) / 1000.0);
  }
};

projection_runner::projection_runner(storage::event_store& store, runner_options opts)
  : impl_(std::make_unique<impl>(store, opts)) {
}

projection_runner::~projection_runner() {
  stop();
}

void projection_runner::add(std::string name, projection_factory make) {
  add_entry(std::move(name), std::move(make), false);
}

void projection_runner::add_entry(std::string name, projection_factory make,
                                  bool models_framed) {
  auto e = std::make_unique<impl::entry>();
  e->name = std::move(name);
  e->make = std::move(make);
  e->models_framed = models_framed;
  std::lock_guard<std::mutex> guard{impl_->mtx};
  impl_->entries.push_back(std::move(e));
}

void projection_runner::add_standard(std::shared_ptr<stock_cache> cache) {
  add_entry("orders", [] { return make_orders_projection(); }, true);
  add_entry("stock", [cache] { return make_stock_projection(cache); }, true);
  // A cluster node's store counts its figures per slot too (a store that
  // cannot be read fails the start anyway).
  auto slots = cluster_slots(impl_->store);
  add_entry("figures", [n = slots ? *slots : 0u] { return make_figures_projection(n); }, true);
}

caf::error projection_runner::start() {
  auto& d = *impl_;
  {
    std::lock_guard<std::mutex> guard{d.mtx};
    if (d.started)
      return make_error(errc::invalid_argument, "the projection runner was started before");
    d.started = true;
  }
  auto checkpoints = d.store.list_checkpoints();
  if (!checkpoints)
    return checkpoints.error();
  for (auto& e : d.entries) {
    auto gen = active_generation(d.store, e->name);
    if (!gen)
      return gen.error();
    storage::write_batch wb;
    if (*gen == 0) {
      *gen = 1;
      wb.put(detail::meta_key(e->name, "active"), "1");
      wb.put(detail::meta_key(e->name, "format"),
             detail::framing_value(detail::value_framing::versioned));
    }
    // Generations a crashed rebuild or an interrupted swap left behind.
    auto all = "m/" + e->name + "/";
    auto serving = detail::generation_prefix(e->name, *gen);
    wb.erase_range(all, serving);
    wb.erase_range(prefix_end(serving), prefix_end(all));
    auto own = detail::checkpoint_name(e->name, *gen);
    auto cp_prefix = "projection/" + e->name + "/g";
    for (auto& [name, cp] : *checkpoints)
      if (name.compare(0, cp_prefix.size(), cp_prefix) == 0 && name != own)
        wb.erase_checkpoint(name);
    // A recorded failure is found again if the event still cannot be applied.
    wb.erase(detail::meta_key(e->name, "failure"));
    if (auto err = d.store.commit(std::move(wb), true))
      return err;
    auto upgrade = upgrade_framing(d.store, e->name, *gen, e->models_framed);
    if (!upgrade)
      return upgrade.error();
    if (*upgrade) {
      *gen = (*upgrade)->to_generation;
      std::lock_guard<std::mutex> guard{d.mtx};
      d.upgrades.push_back(std::move(**upgrade));
    }
    auto l = d.make_lane(*e, *gen, false);
    if (!l)
      return l.error();
    std::lock_guard<std::mutex> guard{d.mtx};
    e->active = *l;
    if (auto err = d.launch(*e, *e->active))
      return err;
  }
  return caf::error{};
}

void projection_runner::stop() {
  auto& d = *impl_;
  std::vector<std::shared_ptr<lane>> lanes;
  {
    std::lock_guard<std::mutex> guard{d.mtx};
    d.stopping = true;
    for (auto& e : d.entries) {
      if (e->active)
        lanes.push_back(e->active);
      if (e->shadow)
        lanes.push_back(e->shadow);
      for (auto& l : e->retired)
        lanes.push_back(l);
    }
  }
  d.cv.notify_all();
  for (auto& l : lanes) {
    l->retire = true;
    if (l->sub)
      l->sub->stop();
  }
  std::vector<std::thread> janitors;
  {
    std::lock_guard<std::mutex> guard{d.mtx};
    janitors.swap(d.janitors);
  }
  for (auto& t : janitors)
    t.join();
}

std::vector<projection_status> projection_runner::status() const {
  std::vector<projection_status> result;
  std::vector<std::vector<double>> samples;
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    for (auto& e : impl_->entries)
      if (e->active)
        result.push_back(impl_->status_of(*e, samples.emplace_back()));
  }
  for (std::size_t i = 0; i < result.size(); ++i)
    impl_->complete(result[i], samples[i]);
  return result;
}

caf::expected<projection_status> projection_runner::status(std::string_view name) const {
  projection_status s;
  std::vector<double> samples;
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    auto* e = impl_->find(name);
    if (e == nullptr || !e->active)
      return make_error(errc::not_found, "no projection " + std::string{name});
    s = impl_->status_of(*e, samples);
  }
  impl_->complete(s, samples);
  return s;
}

bool projection_runner::wait_for(std::uint64_t position, std::chrono::milliseconds timeout,
                                 std::string_view name) const {
  std::unique_lock<std::mutex> guard{impl_->mtx};
  return impl_->cv.wait_for(guard, timeout, [&] {
    for (auto& e : impl_->entries) {
      if (!name.empty() && e->name != name)
        continue;
      if (!e->active)
        return false;
      if (e->active->committed < position && !e->active->ended)
        return false;
    }
    return true;
  });
}

caf::error projection_runner::skip(std::string_view name, std::uint64_t position,
                                   std::string_view skipped_by, std::string_view note) {
  auto& d = *impl_;
  std::shared_ptr<lane> old;
  impl::entry* e = nullptr;
  {
    std::lock_guard<std::mutex> guard{d.mtx};
    e = d.find(name);
    if (e == nullptr || !e->active)
      return make_error(errc::not_found, "no projection " + std::string{name});
    if (e->shadow)
      return make_error(errc::invalid_argument,
                        "a rebuild of projection " + std::string{name} + " is running");
    if (e->skipping)
      return make_error(errc::invalid_argument,
                        "another skip of projection " + std::string{name} + " is in progress");
    old = e->active;
    if (!old->ended || !old->failure || old->failure->position != position)
      return make_error(errc::invalid_argument,
                        "projection " + std::string{name} + " is not stopped at position "
                          + std::to_string(position));
    e->skipping = true;
  }
  auto done = [&d, e](caf::error err) {
    std::lock_guard<std::mutex> guard{d.mtx};
    e->skipping = false;
    return err;
  };
  if (old->sub)
    old->sub->stop();
  if (auto err = skip_event(d.store, name, position, skipped_by, note))
    return done(std::move(err));
  auto l = d.make_lane(*e, old->generation, false);
  if (!l)
    return done(std::move(l.error()));
  std::lock_guard<std::mutex> guard{d.mtx};
  e->skipping = false;
  e->retired.push_back(std::move(e->active));
  e->active = *l;
  return d.launch(*e, *e->active);
}

std::vector<framing_upgrade> projection_runner::upgrades() const {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  return impl_->upgrades;
}

caf::error projection_runner::rebuild(std::string_view name) {
  return impl_->rebuild({std::string{name}});
}

caf::error projection_runner::rebuild_all() {
  std::vector<std::string> names;
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    for (auto& e : impl_->entries)
      names.push_back(e->name);
  }
  return impl_->rebuild(names);
}

void projection_runner::reset_lag_samples() {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  for (auto& e : impl_->entries) {
    e->lag_ms.clear();
    e->lag_next = 0;
  }
}

} // namespace keel::projections
