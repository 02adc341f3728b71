// Replication of the global log: the commit gate of a primary, batches
// stored by a standby at the primary's positions, terms, truncation of a
// tail the group never acknowledged, and checkpoints for a new standby.

#include <algorithm>
#include <cstring>
#include <future>
#include <map>

#include <rocksdb/utilities/checkpoint.h>

#include "committer.hpp"
#include "keel/events/error.hpp"
#include "keel/events/record.hpp"
#include "keel/storage/event_store.hpp"
#include "keys.hpp"
#include "state.hpp"

namespace keel::storage {

// -- terms ------------------------------------------------------------------------

std::uint64_t token_at(const term_history& terms, std::uint64_t position) noexcept {
  std::uint64_t token = 0;
  for (const auto& t : terms) {
    if (t.first_position > position)
      break;
    token = t.token;
  }
  return token;
}

std::uint64_t agreed_prefix(const term_history& mine, std::uint64_t my_last,
                            const term_history& theirs, std::uint64_t their_last) noexcept {
  auto end = std::min(my_last, their_last);
  // Between two consecutive term boundaries of either history both logs
  // stay in one term each: compare the terms at every boundary up to `end`.
  std::vector<std::uint64_t> bounds{1};
  for (const auto& t : mine)
    bounds.push_back(t.first_position);
  for (const auto& t : theirs)
    bounds.push_back(t.first_position);
  std::sort(bounds.begin(), bounds.end());
  for (auto b : bounds) {
    if (b > end)
      break;
    if (token_at(mine, b) != token_at(theirs, b))
      return b - 1;
  }
  return end;
}

bool well_formed(const term_history& terms) noexcept {
  for (std::size_t i = 0; i < terms.size(); ++i) {
    if (terms[i].token == 0 || terms[i].first_position == 0)
      return false;
    if (i > 0
        && (terms[i].token <= terms[i - 1].token
            || terms[i].first_position < terms[i - 1].first_position))
      return false;
  }
  return true;
}

caf::expected<term_history> load_terms(const store_state& s) {
  term_history out;
  std::unique_ptr<rocksdb::Iterator> it{s.db->NewIterator(rocksdb::ReadOptions{}, s.cf(cf_meta))};
  for (it->Seek(keys::term_prefix); it->Valid(); it->Next()) {
    auto k = it->key();
    if (!k.starts_with(rocksdb::Slice{keys::term_prefix.data(), keys::term_prefix.size()}))
      break;
    auto v = it->value();
    if (k.size() != keys::term_prefix.size() + 8 || v.size() != 8)
      return make_error(errc::corrupt_record, "a term key or value of the wrong size");
    out.push_back({keys::read_be64(k.data() + keys::term_prefix.size()), keys::read_be64(v.data())});
  }
  if (!it->status().ok())
    return to_error(it->status(), "reading the terms");
  if (!well_formed(out))
    return make_error(errc::corrupt_record, "the store's terms are not in order");
  return out;
}

// -- committer --------------------------------------------------------------------

namespace {

rocksdb::WriteOptions synced() {
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return wo;
}

} // namespace

caf::error committer::run_exclusive(std::function<caf::error()> fn) {
  std::promise<caf::error> result;
  auto future = result.get_future();
  auto req = std::make_unique<append_request>();
  req->exclusive = [&] { result.set_value(fn()); };
  // Only called when the store is closing and the work never ran.
  req->done = [&](caf::expected<append_result> r) {
    result.set_value(r ? make_error(errc::not_writable, "the store is closing") : r.error());
  };
  submit(std::move(req));
  return future.get();
}

void committer::set_gate(commit_gate gate) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (gate)
    gate_ = std::make_shared<const commit_gate>(std::move(gate));
  else
    gate_.reset();
}

bool committer::pass_gate(const commit_gate& gate, std::vector<request_ptr>& batch,
                          std::vector<outcome>& outcomes, std::uint64_t end_position) {
  replicated_batch shipped;
  shipped.first_position = next_position_;
  shipped.records.reserve(end_position - next_position_);
  for (std::size_t r = 0; r < batch.size(); ++r)
    if (outcomes[r].written)
      for (auto& rec : batch[r]->records)
        shipped.records.push_back(std::move(rec)); // acknowledging needs them no more
  auto t0 = clock_ns();
  auto err = gate(shipped);
  state_.gate_wait_ns.fetch_add(clock_ns() - t0, std::memory_order_relaxed);
  if (!err) {
    state_.batches_shipped.fetch_add(1, std::memory_order_relaxed);
    state_.events_shipped.fetch_add(shipped.records.size(), std::memory_order_relaxed);
    return true;
  }
  // The batch is on this disk, unpublished, and maybe nowhere else: from now
  // on this store takes no appends (its tail is resolved by truncate_after).
  state_.fenced.store(true, std::memory_order_release);
  next_position_ = end_position;
  for (std::size_t r = 0; r < batch.size(); ++r) {
    if (outcomes[r].written)
      batch[r]->done(err);
    else if (outcomes[r].err)
      batch[r]->done(std::move(outcomes[r].err));
    else
      batch[r]->done(outcomes[r].result); // a duplicate of an acknowledged append
  }
  return false;
}

caf::error committer::write_terms(const term_history& terms, rocksdb::WriteBatch& wb) {
  if (terms.empty())
    return caf::error{};
  auto have = load_terms(state_);
  if (!have)
    return have.error();
  auto merged = *have;
  for (const auto& t : terms) {
    auto same = std::find_if(merged.begin(), merged.end(),
                             [&](const term& x) { return x.token == t.token; });
    if (same != merged.end()) {
      if (same->first_position != t.first_position)
        return make_error(errc::log_gap, "term " + std::to_string(t.token) + " begins at position "
                                           + std::to_string(same->first_position)
                                           + " here, at " + std::to_string(t.first_position)
                                           + " at the sender");
      continue;
    }
    merged.push_back(t);
    wb.Put(state_.cf(cf_meta), keys::term_key(t.token), keys::be64_value(t.first_position));
  }
  std::sort(merged.begin(), merged.end(),
            [](const term& a, const term& b) { return a.token < b.token; });
  if (!well_formed(merged))
    return make_error(errc::log_gap, "the sender's terms do not extend this store's");
  return caf::error{};
}

caf::error committer::begin_term(std::uint64_t token) {
  if (state_.fenced.load(std::memory_order_acquire))
    return make_error(errc::not_writable, "the store is fenced: truncate its tail first");
  auto seen = state_.token.load(std::memory_order_acquire);
  if (token <= seen)
    return make_error(errc::stale_token, "token " + std::to_string(token)
                                           + " is not above the store's token "
                                           + std::to_string(seen));
  rocksdb::WriteBatch wb;
  if (auto err = write_terms({{token, next_position_}}, wb))
    return err;
  auto st = state_.guarded_write(synced(), &wb);
  if (st.IsIncomplete())
    return unavailable(state_);
  if (!st.ok())
    return to_error(st, "beginning term " + std::to_string(token));
  state_.token.store(token, std::memory_order_release);
  return caf::error{};
}

caf::expected<std::uint64_t> committer::apply(replicated_batch& batch) {
  auto seen = state_.token.load(std::memory_order_acquire);
  if (batch.token < seen)
    return make_error(errc::stale_token, "a batch with token " + std::to_string(batch.token)
                                           + " (this store has seen token "
                                           + std::to_string(seen) + ")");
  const auto last = next_position_ - 1;
  auto gap = [&](const std::string& why) {
    versions_.clear(); // versions staged for a write that does not happen
    return make_error(errc::log_gap, why + "; this store ends at position " + std::to_string(last));
  };
  if (batch.first_position == 0)
    return gap("a batch at position 0");
  if (batch.first_position > next_position_)
    return gap("the batch starts at position " + std::to_string(batch.first_position));
  wb_.Clear();
  version_it_.reset();
  if (versions_.size() >= state_.opts.stream_cache_entries)
    versions_.clear();
  std::uint64_t position = batch.first_position;
  std::string stored;
  for (auto& rec : batch.records) {
    if (position < next_position_) {
      // Sent again (after a lost acknowledgement): it must be what is here.
      auto st = state_.db->Get(rocksdb::ReadOptions{}, state_.cf(cf_global),
                               keys::global_key(position), &stored);
      if (!st.ok())
        return to_error(st, "reading position " + std::to_string(position));
      if (stored != rec)
        return gap("position " + std::to_string(position) + " differs from the batch");
      ++position;
      continue;
    }
    auto view = events::decode_record(rec);
    if (!view) {
      versions_.clear();
      return view.error();
    }
    if (view->position != position)
      return gap("the batch's record at position " + std::to_string(position) + " says position "
                 + std::to_string(view->position));
    std::string stream{view->stream};
    auto current = current_version(stream);
    if (!current) {
      versions_.clear();
      return current.error();
    }
    if (view->version != *current + 1)
      return gap("stream " + stream + " is at version " + std::to_string(*current)
                 + ", the batch's next event has version " + std::to_string(view->version));
    global_key_.clear();
    keys::append_be64(global_key_, position);
    keys::put_stream_key(stream_key_, stream, view->version);
    wb_.Put(state_.cf(cf_global), global_key_, rec);
    wb_.Put(state_.cf(cf_streams), stream_key_, global_key_);
    wb_.Put(state_.cf(cf_event_index),
            rocksdb::Slice{reinterpret_cast<const char*>(view->id.bytes.data()), 16}, global_key_);
    versions_[stream] = view->version;
    ++position;
  }
  version_it_.reset();
  if (auto err = write_terms(batch.terms, wb_)) {
    versions_.clear();
    return err;
  }
  if (wb_.Count() > 0) {
    auto st = state_.guarded_write(synced(), &wb_);
    if (st.IsIncomplete() || !st.ok()) {
      versions_.clear();
      return st.IsIncomplete() ? unavailable(state_)
                               : to_error(st, "storing a replicated batch at position "
                                                + std::to_string(batch.first_position));
    }
  }
  std::uint64_t top = batch.token;
  for (const auto& t : batch.terms)
    top = std::max(top, t.token);
  if (top > seen)
    state_.token.store(top, std::memory_order_release);
  if (position > next_position_) {
    state_.batches_received.fetch_add(1, std::memory_order_relaxed);
    state_.events_received.fetch_add(position - next_position_, std::memory_order_relaxed);
    state_.committed_events.fetch_add(position - next_position_, std::memory_order_relaxed);
    next_position_ = position;
    state_.publish(position - 1);
  }
  state_.version_cache_entries.store(versions_.size(), std::memory_order_relaxed);
  return next_position_ - 1;
}

caf::expected<truncation> committer::truncate_after(std::uint64_t position) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    if (gate_)
      return make_error(errc::invalid_argument,
                        "a primary's store (with a commit gate) cannot be truncated");
  }
  truncation out;
  out.last_position = std::min(position, next_position_ - 1);
  rocksdb::WriteBatch wb;
  // Every removed event with its two index entries; per stream, the lowest
  // version removed (snapshots at or after it describe removed events).
  std::map<std::string, std::uint64_t> first_removed;
  {
    std::unique_ptr<rocksdb::Iterator> it{
      state_.db->NewIterator(rocksdb::ReadOptions{}, state_.cf(cf_global))};
    for (it->Seek(keys::global_key(position + 1)); it->Valid(); it->Next()) {
      auto v = it->value();
      auto view = events::decode_record(std::string_view{v.data(), v.size()});
      if (!view)
        return view.error();
      std::string stream{view->stream};
      wb.Delete(state_.cf(cf_global), it->key());
      wb.Delete(state_.cf(cf_streams), keys::stream_key(stream, view->version));
      wb.Delete(state_.cf(cf_event_index),
                rocksdb::Slice{reinterpret_cast<const char*>(view->id.bytes.data()), 16});
      auto [i, fresh] = first_removed.emplace(stream, view->version);
      if (!fresh)
        i->second = std::min(i->second, view->version);
      ++out.removed_events;
    }
    if (!it->status().ok())
      return to_error(it->status(), "reading the tail after position " + std::to_string(position));
  }
  out.streams = first_removed.size();
  for (const auto& [stream, version] : first_removed) {
    std::string value;
    auto st = state_.db->Get(rocksdb::ReadOptions{}, state_.cf(cf_snapshots), stream, &value);
    if (st.IsNotFound())
      continue;
    if (!st.ok())
      return to_error(st, "reading the snapshot of " + stream);
    // A snapshot too short to read is dropped too.
    if (keys::snapshot_version(value).value_or(~std::uint64_t{0}) >= version) {
      wb.Delete(state_.cf(cf_snapshots), stream);
      ++out.snapshots_dropped;
    }
  }
  auto terms = load_terms(state_);
  if (!terms)
    return terms.error();
  for (const auto& t : *terms)
    if (t.first_position > position)
      wb.Delete(state_.cf(cf_meta), keys::term_key(t.token));
  {
    std::unique_ptr<rocksdb::Iterator> it{
      state_.db->NewIterator(rocksdb::ReadOptions{}, state_.cf(cf_checkpoints))};
    for (it->SeekToFirst(); it->Valid(); it->Next())
      if (it->value().size() >= 8 && keys::read_be64(it->value().data()) > position)
        out.checkpoints_beyond.push_back(it->key().ToString());
  }
  if (wb.Count() > 0) {
    auto st = state_.guarded_write(synced(), &wb);
    if (st.IsIncomplete())
      return unavailable(state_);
    if (!st.ok())
      return to_error(st, "truncating after position " + std::to_string(position));
  }
  versions_.clear();
  if (next_position_ > position + 1) {
    next_position_ = position + 1;
    state_.publish(position);
  }
  state_.truncated_events.fetch_add(out.removed_events, std::memory_order_relaxed);
  state_.fenced.store(false, std::memory_order_release);
  return out;
}

// -- event_store ------------------------------------------------------------------

namespace {

caf::error read_only() {
  return make_error(errc::not_writable, "the store was opened read-only");
}

} // namespace

void event_store::set_standby(bool standby) {
  state_->standby.store(standby, std::memory_order_release);
}

void event_store::set_commit_gate(commit_gate gate) {
  if (state_->comm)
    state_->comm->set_gate(std::move(gate));
}

caf::error event_store::begin_term(std::uint64_t token) {
  if (!state_->comm)
    return read_only();
  auto* c = state_->comm.get();
  return c->run_exclusive([c, token] { return c->begin_term(token); });
}

caf::expected<std::uint64_t> event_store::replicate(replicated_batch batch) {
  if (!state_->comm)
    return read_only();
  auto* c = state_->comm.get();
  std::uint64_t last = 0;
  auto err = c->run_exclusive([&] {
    auto r = c->apply(batch);
    if (!r)
      return r.error();
    last = *r;
    return caf::error{};
  });
  if (err)
    return err;
  return last;
}

caf::expected<truncation> event_store::truncate_after(std::uint64_t position) {
  if (!state_->comm)
    return read_only();
  auto* c = state_->comm.get();
  truncation out;
  auto err = c->run_exclusive([&] {
    auto r = c->truncate_after(position);
    if (!r)
      return r.error();
    out = std::move(*r);
    return caf::error{};
  });
  if (err)
    return err;
  return out;
}

caf::expected<term_history> event_store::terms() const {
  return load_terms(*state_);
}

replication_stats event_store::replication() const {
  auto& s = *state_;
  replication_stats r;
  r.token = s.token.load(std::memory_order_acquire);
  r.fenced = s.fenced.load(std::memory_order_acquire);
  r.batches_shipped = s.batches_shipped.load(std::memory_order_relaxed);
  r.events_shipped = s.events_shipped.load(std::memory_order_relaxed);
  r.batches_received = s.batches_received.load(std::memory_order_relaxed);
  r.events_received = s.events_received.load(std::memory_order_relaxed);
  r.gate_wait_ns = s.gate_wait_ns.load(std::memory_order_relaxed);
  r.truncated_events = s.truncated_events.load(std::memory_order_relaxed);
  return r;
}

caf::expected<std::uint64_t> event_store::export_checkpoint(const std::string& dir) const {
  rocksdb::Checkpoint* raw = nullptr;
  auto st = rocksdb::Checkpoint::Create(state_->db.get(), &raw);
  if (!st.ok())
    return to_error(st, "preparing a checkpoint");
  std::unique_ptr<rocksdb::Checkpoint> cp{raw};
  std::uint64_t last = 0;
  auto make = [&]() -> caf::error {
    // Memtables are flushed first (0): the copy needs no WAL.
    auto s = cp->CreateCheckpoint(dir, 0);
    if (!s.ok())
      return to_error(s, "writing a checkpoint to " + dir);
    last = state_->last_position.load(std::memory_order_acquire);
    return caf::error{};
  };
  // Between two batches nothing is written: the copy ends exactly at the
  // last published position (a secondary or read-only store has no writer).
  auto err = state_->comm ? state_->comm->run_exclusive(make) : make();
  if (err)
    return err;
  return last;
}

} // namespace keel::storage
