#include "committer.hpp"

#include <algorithm>
#include <chrono>

#include <pthread.h>

#include "keel/events/error.hpp"
#include "keel/events/record.hpp"
#include "keys.hpp"

namespace keel::storage {

committer::committer(store_state& state, std::uint64_t next_position)
  : state_(state), next_position_(next_position) {
  thread_ = std::thread{[this] {
    ::pthread_setname_np(::pthread_self(), "keel-committer");
    run();
  }};
}

committer::~committer() {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    stopping_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

void committer::submit(request_ptr req) {
  bool wake = false;
  bool refused = false;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (stopping_) {
      refused = true;
    } else {
      queue_.push_back(std::move(req));
      // Wake the committer for the first append, and when the group it
      // waits for is complete.
      wake = queue_.size() == 1 || queue_.size() == expected_requests_;
    }
  }
  if (refused) {
    // The store is closing: refuse rather than lose the append.
    req->done(make_error(errc::not_writable, "the store is closing"));
    return;
  }
  if (wake)
    cv_.notify_one();
}

void committer::run() {
  std::vector<request_ptr> batch;
  std::vector<request_ptr> waiting;
  std::shared_ptr<const commit_gate> gate;
  for (;;) {
    {
      std::unique_lock<std::mutex> guard{mtx_};
      // While the store cannot write, try to resume it now and then even
      // when nobody appends (a node that reports not ready gets no traffic).
      while (!stopping_ && queue_.empty() && state_.failing.load(std::memory_order_acquire)) {
        cv_.wait_for(guard, std::chrono::milliseconds(250));
        guard.unlock();
        state_.try_resume();
        guard.lock();
      }
      cv_.wait(guard, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty())
        return; // stopping and drained
      // Group commit window: callers acknowledged by the last batch are about
      // to append again. Starting a write with only part of them would split
      // the callers into groups that alternate between batches forever, each
      // paying a full WAL sync. Wait a fraction of the last write's duration
      // for them, so one sync covers everyone; never longer than that.
      if (queue_.size() < expected_requests_ && last_write_us_ > 0 && !stopping_) {
        auto window = std::chrono::microseconds{std::min<std::uint64_t>(last_write_us_ / 4, 250)};
        cv_.wait_for(guard, window,
                     [this] { return stopping_ || queue_.size() >= expected_requests_; });
      }
      waiting.swap(queue_);
      gate = gate_;
    }
    // Cut the queue into batches of at most max_batch_events events; work
    // that needs the committer alone runs between them, in queue order.
    std::size_t i = 0;
    while (i < waiting.size()) {
      if (waiting[i]->exclusive) {
        waiting[i++]->exclusive();
        std::lock_guard<std::mutex> guard{mtx_};
        gate = gate_; // it may have changed the gate
        continue;
      }
      std::size_t events = 0;
      batch.clear();
      while (i < waiting.size() && !waiting[i]->exclusive
             && (batch.empty() || events + waiting[i]->records.size() <= state_.opts.max_batch_events)) {
        events += waiting[i]->records.size();
        batch.push_back(std::move(waiting[i++]));
      }
      process(batch, gate.get());
    }
    {
      std::lock_guard<std::mutex> guard{mtx_};
      expected_requests_ = std::max<std::size_t>(1, waiting.size() + queue_.size());
    }
    waiting.clear();
  }
}

caf::expected<std::uint64_t> committer::current_version(const std::string& stream) {
  if (auto i = versions_.find(stream); i != versions_.end())
    return i->second;
  if (!version_it_)
    version_it_.reset(state_.db->NewIterator(rocksdb::ReadOptions{}, state_.cf(cf_streams)));
  auto version = seek_last_version(*version_it_, stream);
  if (version)
    versions_.emplace(stream, *version);
  return version;
}

void committer::mark_repeated_ids(const std::vector<request_ptr>& batch) {
  // An id in two appends of one batch (a client retrying before its first
  // attempt was acknowledged): the later append cannot be checked against
  // the store yet, so it is refused. One sort per batch, no per-event map.
  batch_ids_.clear();
  for (std::size_t r = 0; r < batch.size(); ++r)
    for (const auto& id : batch[r]->ids)
      batch_ids_.emplace_back(id, static_cast<std::uint32_t>(r));
  std::sort(batch_ids_.begin(), batch_ids_.end());
  repeats_.assign(batch.size(), 0);
  for (std::size_t i = 1; i < batch_ids_.size(); ++i)
    if (batch_ids_[i].first == batch_ids_[i - 1].first)
      repeats_[batch_ids_[i].second] = 1;
}

caf::error committer::check_duplicate(const append_request& req,
                                      const std::vector<std::uint64_t>& found,
                                      append_result& result) {
  // Every id is stored: an identical earlier append if the events sit at
  // consecutive positions in this stream, in this order.
  for (std::size_t i = 1; i < found.size(); ++i)
    if (found[i] != found[0] + i)
      return make_error(errc::duplicate_event_id,
                        "event " + events::to_string(req.ids[i]) + " is stored at position "
                          + std::to_string(found[i]) + ", not after its predecessor");
  std::uint64_t first_version = 0;
  for (std::size_t i = 0; i < found.size(); ++i) {
    std::string value;
    auto st = state_.db->Get(rocksdb::ReadOptions{}, state_.cf(cf_global),
                             keys::global_key(found[i]), &value);
    if (!st.ok())
      return to_error(st, "reading position " + std::to_string(found[i]));
    auto view = events::decode_record(value);
    if (!view)
      return view.error();
    if (view->stream != req.stream || view->id != req.ids[i])
      return make_error(errc::duplicate_event_id,
                        "event " + events::to_string(req.ids[i]) + " is stored in stream "
                          + std::string{view->stream} + " at position "
                          + std::to_string(found[i]));
    if (i == 0)
      first_version = view->version;
  }
  result.duplicate = true;
  result.first_position = found.front();
  result.last_position = found.back();
  result.first_version = first_version;
  result.last_version = first_version + found.size() - 1;
  return caf::error{};
}

void committer::process(std::vector<request_ptr>& batch, const commit_gate* gate) {
  if (state_.fenced.load(std::memory_order_acquire)) {
    for (auto& req : batch)
      req->done(make_error(errc::not_writable,
                           "this store's node is no longer its group's primary: its log ends in "
                           "a tail the group may not have"));
    return;
  }
  if (state_.standby.load(std::memory_order_acquire)) {
    for (auto& req : batch)
      req->done(make_error(errc::not_writable,
                           "this store is a standby's: it takes its primary's log only"));
    return;
  }
  auto t0 = clock_ns();
  wb_.Clear();
  version_it_.reset();
  // Trim the version cache only between batches: it holds this batch's
  // staged versions until the write is done.
  if (versions_.size() >= state_.opts.stream_cache_entries)
    versions_.clear();
  mark_repeated_ids(batch);

  // One MultiGet looks up every event id of the batch (idempotency).
  std::vector<rocksdb::Slice> id_keys;
  for (const auto& req : batch)
    for (const auto& id : req->ids)
      id_keys.emplace_back(reinterpret_cast<const char*>(id.bytes.data()), id.bytes.size());
  std::vector<rocksdb::PinnableSlice> id_values(id_keys.size());
  std::vector<rocksdb::Status> id_status(id_keys.size());
  state_.db->MultiGet(rocksdb::ReadOptions{}, state_.cf(cf_event_index), id_keys.size(),
                      id_keys.data(), id_values.data(), id_status.data());

  std::vector<outcome> outcomes(batch.size());
  std::uint64_t position = next_position_;
  std::size_t id_offset = 0;
  std::vector<std::uint64_t> found;
  for (std::size_t r = 0; r < batch.size(); ++r) {
    auto& req = *batch[r];
    auto& out = outcomes[r];
    const std::size_t n = req.ids.size();
    found.clear();
    if (repeats_[r]) {
      id_offset += n;
      out.err = make_error(errc::duplicate_event_id,
                           "an event id of this append to " + req.stream
                             + " is in a concurrent append that is not acknowledged yet");
      continue;
    }
    for (std::size_t i = 0; i < n; ++i) {
      const auto& st = id_status[id_offset + i];
      if (st.ok() && id_values[id_offset + i].size() == 8) {
        found.push_back(keys::read_be64(id_values[id_offset + i].data()));
      } else if (!st.ok() && !st.IsNotFound()) {
        out.err = to_error(st, "looking up event " + events::to_string(req.ids[i]));
        break;
      }
    }
    id_offset += n;
    if (out.err)
      continue;
    if (found.size() == n) {
      out.err = check_duplicate(req, found, out.result);
      continue;
    }
    if (!found.empty()) {
      out.err = make_error(errc::duplicate_event_id,
                           std::to_string(found.size()) + " of the " + std::to_string(n)
                             + " events of this append to " + req.stream
                             + " are already stored (first at position "
                             + std::to_string(found.front()) + ")");
      continue;
    }
    auto current = current_version(req.stream);
    if (!current) {
      out.err = current.error();
      continue;
    }
    if (!req.expected.is_any() && req.expected.value() != *current) {
      out.err = make_error(errc::version_conflict,
                           "stream " + req.stream + ": expected version "
                             + std::to_string(req.expected.value()) + ", actual "
                             + std::to_string(*current));
      continue;
    }
    if (*current + n > keys::max_version) {
      out.err = make_error(errc::invalid_argument, "stream " + req.stream
                                                     + " reached the highest version");
      continue;
    }
    std::uint64_t version = *current;
    out.result.first_version = version + 1;
    out.result.first_position = position;
    for (std::size_t i = 0; i < n; ++i) {
      ++version;
      auto& rec = req.records[i];
      events::seal_record(rec, version, position);
      global_key_.clear();
      keys::append_be64(global_key_, position);
      keys::put_stream_key(stream_key_, req.stream, version);
      wb_.Put(state_.cf(cf_global), global_key_, rec);
      wb_.Put(state_.cf(cf_streams), stream_key_, global_key_);
      wb_.Put(state_.cf(cf_event_index),
              rocksdb::Slice{reinterpret_cast<const char*>(req.ids[i].bytes.data()), 16},
              global_key_);
      ++position;
    }
    out.result.last_version = version;
    out.result.last_position = position - 1;
    out.written = true;
    versions_[req.stream] = version;
  }
  version_it_.reset();

  auto t1 = clock_ns();
  state_.prepare_ns.fetch_add(t1 - t0, std::memory_order_relaxed);
  if (wb_.Count() > 0) {
    // While the store cannot write, fail fast: nothing of the batch is written.
    auto st = state_.guarded_write(state_.write_opts, &wb_);
    caf::error refused;
    if (st.IsIncomplete())
      refused = unavailable(state_);
    auto write_ns = clock_ns() - t1;
    state_.write_ns.fetch_add(write_ns, std::memory_order_relaxed);
    last_write_us_ = write_ns / 1000;
    if (refused || !st.ok()) {
      auto err = refused ? refused
                         : to_error(st, "committing a batch of " + std::to_string(wb_.Count() / 3)
                                          + " events");
      for (std::size_t r = 0; r < batch.size(); ++r)
        if (!outcomes[r].err)
          outcomes[r].err = err;
      // Nothing of the batch is visible: drop the versions it staged.
      versions_.clear();
      for (std::size_t r = 0; r < batch.size(); ++r)
        batch[r]->done(std::move(outcomes[r].err));
      return;
    }
    state_.batches.fetch_add(1, std::memory_order_relaxed);
    state_.committed_events.fetch_add(position - next_position_, std::memory_order_relaxed);
    if (gate && !pass_gate(*gate, batch, outcomes, position))
      return;
    next_position_ = position;
    state_.publish(position - 1);
  }
  state_.version_cache_entries.store(versions_.size(), std::memory_order_relaxed);
  auto t2 = clock_ns();
  for (std::size_t r = 0; r < batch.size(); ++r) {
    if (outcomes[r].err)
      batch[r]->done(std::move(outcomes[r].err));
    else
      batch[r]->done(outcomes[r].result);
  }
  state_.acknowledge_ns.fetch_add(clock_ns() - t2, std::memory_order_relaxed);
}

} // namespace keel::storage
