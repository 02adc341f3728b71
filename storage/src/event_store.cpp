#include "keel/storage/event_store.hpp"

#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <sys/statvfs.h>

#include <rocksdb/cache.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>

#include "committer.hpp"
#include "faulty_fs.hpp"
#include "keel/events/codec.hpp"
#include "keel/events/crc32c.hpp"
#include "keel/events/error.hpp"
#include "keel/events/record.hpp"
#include "keys.hpp"
#include "state.hpp"

namespace keel::storage {

namespace {

constexpr std::string_view format_key = "format";
constexpr std::string_view format_value = "keel-event-store 1";

/// The stream id of a `streams` key (the key without its 8-byte version).
/// The memtable keeps one insert hint per stream: appends to a stream land
/// right after its previous key, so the insert skips the skiplist search
/// (measured: searches for random stream keys were the committer's largest
/// CPU cost).
class stream_prefix : public rocksdb::SliceTransform {
public:
  const char* Name() const override {
    return "keel.stream_prefix";
  }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return rocksdb::Slice{key.data(), key.size() - 8};
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return key.size() > 8;
  }
};

rocksdb::ColumnFamilyOptions cf_options(std::size_t id, const std::shared_ptr<rocksdb::Cache>& cache) {
  rocksdb::ColumnFamilyOptions cfo;
  rocksdb::BlockBasedTableOptions table;
  table.block_cache = cache;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  if (id == cf_global) {
    // The global log serves both sequential scans and the point reads of
    // stream replay. Measured on 2M events: 32 KiB blocks replayed the log at
    // the same 1.4M events/s as 8 KiB ones but made stream reads 5x slower
    // (each event of a stream decompresses a whole block).
    table.block_size = 8 * 1024;
  }
  cfo.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  cfo.level_compaction_dynamic_level_bytes = true;
  // The two indexes take small random-ish inserts on the committer's hot
  // path; in a 64 MiB memtable each insert costs ~3 us of cache misses
  // (measured: each index alone cost ~200 us of a 64-event batch's write).
  // 4 MiB memtables stay cache-resident: 85k -> 106k appends/s (wal mode,
  // 64 writers); 2 MiB was slower again (98k) from extra flushes. With
  // durability sync the fsync dominates and the figure did not move.
  if (id == cf_event_index || id == cf_streams)
    cfo.write_buffer_size = 4u << 20;
  if (id == cf_event_index)
    cfo.memtable_prefix_bloom_size_ratio = 0.02, cfo.memtable_whole_key_filtering = true;
  if (id == cf_streams) {
    // Hints cost ~250 bytes per stream in a memtable, bounded by its size.
    cfo.memtable_insert_with_hint_prefix_extractor = std::make_shared<stream_prefix>();
  }
  return cfo;
}

/// A secondary instance keeps its own small files in a directory of its own,
/// named after the process, removed when the store closes. Directories of
/// processes that are gone (killed before they could remove theirs) are
/// removed here.
std::string make_secondary_dir() {
  auto tmp = std::filesystem::temp_directory_path();
  std::error_code ec;
  const std::string prefix = "keel-secondary-";
  for (const auto& entry : std::filesystem::directory_iterator{tmp, ec}) {
    auto name = entry.path().filename().string();
    if (name.rfind(prefix, 0) != 0)
      continue;
    auto dash = name.find('-', prefix.size());
    if (dash == std::string::npos)
      continue;
    auto pid = std::atoi(name.substr(prefix.size(), dash - prefix.size()).c_str());
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH)
      std::filesystem::remove_all(entry.path(), ec);
  }
  std::string tmpl = (tmp / (prefix + std::to_string(::getpid()) + "-XXXXXX")).string();
  if (::mkdtemp(tmpl.data()) == nullptr)
    return {};
  return tmpl;
}

caf::error validate_append(std::string_view stream, const std::vector<new_event>& events) {
  if (!events::valid_stream_id(stream))
    return make_error(errc::invalid_argument,
                      "stream id '" + std::string{stream.substr(0, 64)}
                        + "' is not 1..200 printable characters without spaces");
  if (events.empty())
    return make_error(errc::invalid_argument, "append to " + std::string{stream} + " has no events");
  if (events.size() > 10'000)
    return make_error(errc::invalid_argument, "append of " + std::to_string(events.size())
                                                + " events exceeds 10000");
  for (std::size_t i = 0; i < events.size(); ++i) {
    const auto& ev = events[i];
    if (!ev.id.valid())
      return make_error(errc::invalid_argument,
                        "event " + std::to_string(i) + " of the append has the zero id");
    if (ev.payload.size() > events::max_payload_size)
      return make_error(errc::invalid_argument,
                        "event " + std::to_string(i) + " has a payload of "
                          + std::to_string(ev.payload.size()) + " bytes (limit "
                          + std::to_string(events::max_payload_size) + ")");
    for (std::size_t j = 0; j < i; ++j)
      if (events[j].id == ev.id)
        return make_error(errc::invalid_argument,
                          "events " + std::to_string(j) + " and " + std::to_string(i)
                            + " of the append share id " + events::to_string(ev.id));
  }
  return caf::error{};
}

} // namespace

// -- store_state ----------------------------------------------------------------

const char* cf_name(std::size_t id) {
  static constexpr const char* names[] = {"default",   "streams",     "global", "event_index",
                                          "snapshots", "checkpoints", "read_models", "meta"};
  return id < cf_count ? names[id] : "?";
}

caf::error to_error(const rocksdb::Status& st, const std::string& what) {
  auto code = st.IsCorruption() ? errc::corrupt_record : errc::storage_failure;
  return make_error(code, what + ": " + st.ToString());
}

caf::expected<std::uint64_t> seek_last_version(rocksdb::Iterator& it, std::string_view stream) {
  it.SeekForPrev(keys::stream_last_key(stream));
  if (!it.Valid()) {
    if (!it.status().ok())
      return to_error(it.status(), "reading the version of stream " + std::string{stream});
    return std::uint64_t{0};
  }
  auto k = it.key();
  if (k.size() == stream.size() + 8 && std::memcmp(k.data(), stream.data(), stream.size()) == 0)
    return keys::read_be64(k.data() + stream.size());
  return std::uint64_t{0};
}

void store_state::publish(std::uint64_t position) {
  {
    std::lock_guard<std::mutex> guard{commit_mtx};
    last_position.store(position, std::memory_order_release);
  }
  commit_cv.notify_all();
}

caf::error unavailable(const store_state& s) {
  std::lock_guard<std::mutex> guard{s.health_mtx};
  return make_error(errc::storage_failure, "the store cannot write (" + s.write_error
                                             + "); retrying in the background");
}

namespace {

/// Publishes the failing state of `s` (with `write_mtx` held) and why.
void set_failing(store_state& s, std::string why, std::int64_t now) {
  std::lock_guard<std::mutex> guard{s.health_mtx};
  s.write_error = std::move(why);
  if (!s.failing.exchange(true))
    s.failing_since_us = now;
}

void set_writable(store_state& s) {
  std::lock_guard<std::mutex> guard{s.health_mtx};
  s.failing = false;
  s.write_error.clear();
  s.failing_since_us = 0;
  s.resumes.fetch_add(1, std::memory_order_relaxed);
}

} // namespace

bool store_state::may_write() {
  auto now = now_us();
  if (opts.min_free_bytes != 0 && now - space_checked_us >= 20'000) {
    space_checked_us = now;
    struct statvfs fs {};
    if (::statvfs(opts.path.c_str(), &fs) == 0) { // cannot tell: let RocksDB try
      auto free_bytes = static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
      bool was_low = space_low;
      space_low = free_bytes < opts.min_free_bytes;
      if (space_low)
        set_failing(*this,
                    "disk almost full: " + std::to_string(free_bytes >> 20) + " MiB free, "
                      + std::to_string(opts.min_free_bytes >> 20) + " MiB kept in reserve",
                    now);
      else if (was_low && !write_failed)
        set_writable(*this); // RocksDB saw no error: room again is enough
    }
  }
  if (space_low)
    return false;
  if (!write_failed)
    return true;
  if (needs_restart.load(std::memory_order_relaxed) || now - last_resume_us < 250'000)
    return false;
  // Clears RocksDB's background error once the cause is gone; RocksDB 7.8
  // resumes after failed flushes and compactions, not after a failed WAL
  // write or sync: those need the store reopened.
  last_resume_us = now;
  if (!db->Resume().ok()) {
    needs_restart = true;
    return false;
  }
  write_failed = false;
  set_writable(*this);
  return true;
}

rocksdb::Status store_state::guarded_write(const rocksdb::WriteOptions& wo,
                                           rocksdb::WriteBatch* wb) {
  std::lock_guard<std::mutex> guard{write_mtx};
  if (!may_write())
    return rocksdb::Status::Incomplete("the store cannot write");
  auto st = db->Write(wo, wb);
  if (!st.ok()) {
    write_failed = true;
    write_failures.fetch_add(1, std::memory_order_relaxed);
    set_failing(*this, st.ToString(), now_us());
  }
  return st;
}

void store_state::try_resume() {
  std::lock_guard<std::mutex> guard{write_mtx};
  may_write();
}

caf::expected<std::uint64_t> store_state::scan_last_position() const {
  std::unique_ptr<rocksdb::Iterator> it{db->NewIterator(rocksdb::ReadOptions{}, cf(cf_global))};
  it->SeekToLast();
  if (!it->status().ok())
    return to_error(it->status(), "finding the last position");
  if (!it->Valid())
    return std::uint64_t{0};
  if (it->key().size() != 8)
    return make_error(errc::corrupt_record, "global log key of " + std::to_string(it->key().size())
                                              + " bytes");
  return keys::read_be64(it->key().data());
}

store_state::~store_state() {
  comm.reset(); // drains queued appends before the database closes
  if (db) {
    for (auto* h : cfs)
      if (h)
        db->DestroyColumnFamilyHandle(h);
    cfs.clear();
    db->Close();
    db.reset();
  }
  if (!secondary_dir.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(secondary_dir, ec);
  }
}

const char* to_string(durability x) {
  return x == durability::sync ? "sync" : "wal";
}

std::int64_t now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
}

new_event new_event::from(const events::event& ev, events::event_id id, std::int64_t timestamp_us,
                          events::event_id correlation_id, events::event_id causation_id) {
  new_event result;
  result.id = id;
  result.type = std::string{events::type_name(ev)};
  result.schema_version = events::schema_version(ev);
  result.timestamp_us = timestamp_us;
  result.correlation_id = correlation_id;
  result.causation_id = causation_id;
  result.payload = events::encode(ev);
  return result;
}

// -- event_store ------------------------------------------------------------------

event_store::event_store(std::unique_ptr<store_state> state) : state_(std::move(state)) {
}

event_store::~event_store() = default;

caf::expected<std::unique_ptr<event_store>> event_store::open_beside(std::string path) {
  options opts;
  opts.path = std::move(path);
  opts.mode = open_mode::secondary;
  opts.create_if_missing = false;
  opts.memory_budget_bytes = 32u << 20;
  auto store = open(std::move(opts));
  if (!store)
    return store;
  if (auto err = (*store)->refresh())
    return err;
  return store;
}

caf::expected<std::unique_ptr<event_store>> event_store::open(options opts) {
  if (opts.path.empty())
    return make_error(errc::invalid_argument, "no data directory given");
  if (opts.max_batch_events == 0)
    return make_error(errc::invalid_argument, "max_batch_events must be at least 1");
  if (opts.mode != open_mode::writer || !opts.create_if_missing) {
    std::error_code ec;
    if (!std::filesystem::exists(std::filesystem::path{opts.path} / "CURRENT", ec))
      return make_error(errc::storage_failure, "no Keel store at " + opts.path);
  }
  auto state = std::make_unique<store_state>();
  state->opts = opts;
  if (opts.memory_budget_bytes < (4u << 20))
    return make_error(errc::invalid_argument, "the store's memory budget must be at least 4 MiB");
  auto cache = rocksdb::NewLRUCache(opts.memory_budget_bytes);
  state->cache = cache;

  rocksdb::DBOptions dbo;
  dbo.create_if_missing = opts.create_if_missing && opts.mode == open_mode::writer;
  dbo.create_missing_column_families = opts.mode == open_mode::writer;
  dbo.max_background_jobs = 2;
  dbo.bytes_per_sync = 1 << 20;
  dbo.paranoid_checks = true;
  // A column family written rarely (checkpoints, snapshots, meta) would
  // otherwise pin every WAL file since its first unflushed write: a store
  // of 10M events kept 2.3 GB of WAL, which every open and every secondary
  // instance replayed. Past this size RocksDB flushes the column families
  // holding the oldest WAL, so it can be deleted.
  dbo.max_total_wal_size = 64u << 20;
  // Memtables and cached blocks share one budget: every memtable's arena is
  // charged to the block cache, and memtables are flushed once they hold
  // half of the budget (RocksDB's per-column-family write buffer sizes stay
  // the upper bound of each).
  if (opts.mode == open_mode::writer) {
    state->memtable_budget =
      std::make_shared<rocksdb::WriteBufferManager>(opts.memory_budget_bytes / 2, cache);
    dbo.write_buffer_manager = state->memtable_budget;
  }
  dbo.max_open_files = opts.max_open_files;
  if (opts.mode == open_mode::secondary)
    dbo.max_open_files = -1; // required by secondary instances
  if (opts.faults && opts.mode == open_mode::writer) {
    state->fs = make_faulty_fs(rocksdb::FileSystem::Default(), opts.faults);
    state->env = rocksdb::NewCompositeEnv(state->fs);
    dbo.env = state->env.get();
  }

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (std::size_t i = 0; i < cf_count; ++i)
    descriptors.emplace_back(cf_name(i), cf_options(i, cache));

  rocksdb::DB* raw = nullptr;
  rocksdb::Status st;
  switch (opts.mode) {
    case open_mode::writer:
      st = rocksdb::DB::Open(dbo, opts.path, descriptors, &state->cfs, &raw);
      break;
    case open_mode::read_only:
      st = rocksdb::DB::OpenForReadOnly(dbo, opts.path, descriptors, &state->cfs, &raw);
      break;
    case open_mode::secondary:
      state->secondary_dir = make_secondary_dir();
      if (state->secondary_dir.empty())
        return make_error(errc::storage_failure, "cannot create a directory for the secondary");
      st = rocksdb::DB::OpenAsSecondary(dbo, opts.path, state->secondary_dir, descriptors,
                                        &state->cfs, &raw);
      break;
  }
  if (!st.ok()) {
    if (opts.mode != open_mode::writer && st.IsInvalidArgument())
      return make_error(errc::storage_failure,
                        "no Keel store at " + opts.path + " (" + st.ToString() + ")");
    return to_error(st, "opening the store at " + opts.path);
  }
  state->db.reset(raw);
  state->write_opts.sync = opts.durable == durability::sync;

  // A store carries its format in `meta`; refuse anything else.
  std::string format;
  st = state->db->Get(rocksdb::ReadOptions{}, state->cf(cf_meta), format_key, &format);
  if (st.IsNotFound() && opts.mode == open_mode::writer) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    st = state->db->Put(wo, state->cf(cf_meta), format_key, format_value);
    if (!st.ok())
      return to_error(st, "writing the store format");
  } else if (!st.ok()) {
    return to_error(st, "reading the store format");
  } else if (format != format_value) {
    return make_error(errc::storage_failure, "unsupported store format '" + format + "' at "
                                               + opts.path);
  }

  auto last = state->scan_last_position();
  if (!last)
    return last.error();
  state->last_position = *last;
  auto terms = load_terms(*state);
  if (!terms)
    return terms.error();
  if (!terms->empty())
    state->token = terms->back().token;
  if (opts.mode == open_mode::writer)
    state->comm = std::make_unique<committer>(*state, *last + 1);
  return std::unique_ptr<event_store>{new event_store(std::move(state))};
}

bool event_store::writable() const noexcept {
  return !state_->failing.load(std::memory_order_acquire);
}

storage_health event_store::health() const {
  storage_health h;
  h.writable = writable();
  h.needs_restart = state_->needs_restart.load(std::memory_order_acquire);
  h.write_failures = state_->write_failures.load(std::memory_order_relaxed);
  h.resumes = state_->resumes.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> guard{state_->health_mtx};
  h.error = state_->write_error;
  h.failing_since_us = state_->failing_since_us;
  return h;
}

commit_stats event_store::stats() const noexcept {
  commit_stats result;
  result.batches = state_->batches.load(std::memory_order_relaxed);
  result.events = state_->committed_events.load(std::memory_order_relaxed);
  result.prepare_ns = state_->prepare_ns.load(std::memory_order_relaxed);
  result.write_ns = state_->write_ns.load(std::memory_order_relaxed);
  result.acknowledge_ns = state_->acknowledge_ns.load(std::memory_order_relaxed);
  return result;
}

store_memory event_store::memory() const {
  store_memory m;
  for (std::size_t i = 0; i < cf_count; ++i) {
    std::uint64_t value = 0;
    if (state_->db->GetIntProperty(state_->cf(static_cast<cf_id>(i)),
                                   rocksdb::DB::Properties::kCurSizeAllMemTables, &value))
      m.memtables += value;
    if (state_->db->GetIntProperty(state_->cf(static_cast<cf_id>(i)),
                                   rocksdb::DB::Properties::kEstimateTableReadersMem, &value))
      m.table_readers += value;
  }
  // The cache's usage includes the reservations charging memtables to it.
  auto usage = state_->cache->GetUsage();
  auto charged = state_->memtable_budget ? state_->memtable_budget->memory_usage() : 0;
  m.block_cache = usage > charged ? usage - charged : 0;
  m.budget = state_->cache->GetCapacity();
  m.version_cache_entries = state_->version_cache_entries.load(std::memory_order_relaxed);
  return m;
}

const options& event_store::opts() const noexcept {
  return state_->opts;
}

// -- appends --------------------------------------------------------------------

void event_store::append_async(std::string stream, expected_version expected,
                               std::vector<new_event> events, append_callback done) {
  if (!state_->comm) {
    done(make_error(errc::not_writable, "the store was opened read-only"));
    return;
  }
  if (auto err = validate_append(stream, events)) {
    done(std::move(err));
    return;
  }
  auto req = std::make_unique<append_request>();
  req->expected = expected;
  req->ids.reserve(events.size());
  req->records.reserve(events.size());
  events::record rec;
  rec.stream = stream;
  for (auto& ev : events) {
    if (state_->opts.validate_payloads) {
      if (auto decoded = events::decode(ev.type, ev.schema_version, ev.payload); !decoded) {
        done(decoded.error());
        return;
      }
    }
    rec.id = ev.id;
    rec.type = std::move(ev.type);
    rec.schema_version = ev.schema_version;
    rec.timestamp_us = ev.timestamp_us;
    rec.correlation_id = ev.correlation_id;
    rec.causation_id = ev.causation_id;
    rec.payload = std::move(ev.payload);
    req->ids.push_back(ev.id);
    req->records.push_back(events::encode_record(rec));
  }
  req->stream = std::move(stream);
  req->done = std::move(done);
  state_->comm->submit(std::move(req));
}

caf::expected<append_result> event_store::append(std::string_view stream,
                                                 expected_version expected,
                                                 std::vector<new_event> events) {
  struct waiter {
    std::mutex mtx;
    std::condition_variable cv;
    bool ready = false;
    caf::expected<append_result> result{append_result{}};
  } w;
  append_async(std::string{stream}, expected, std::move(events),
               [&w](caf::expected<append_result> res) {
                 std::lock_guard<std::mutex> guard{w.mtx};
                 w.result = std::move(res);
                 w.ready = true;
                 w.cv.notify_one();
               });
  std::unique_lock<std::mutex> guard{w.mtx};
  w.cv.wait(guard, [&w] { return w.ready; });
  return std::move(w.result);
}

// -- reads ----------------------------------------------------------------------

std::uint64_t event_store::last_position() const noexcept {
  return state_->last_position.load(std::memory_order_acquire);
}

bool event_store::wait_for(std::uint64_t position, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> guard{state_->commit_mtx};
  return state_->commit_cv.wait_for(guard, timeout, [&] {
    return state_->last_position.load(std::memory_order_acquire) >= position;
  });
}

caf::expected<std::uint64_t> event_store::stream_version(std::string_view stream) const {
  if (!events::valid_stream_id(stream))
    return make_error(errc::invalid_argument, "invalid stream id");
  std::unique_ptr<rocksdb::Iterator> it{
    state_->db->NewIterator(rocksdb::ReadOptions{}, state_->cf(cf_streams))};
  return seek_last_version(*it, stream);
}

caf::expected<events::record> event_store::read_event(std::uint64_t position) const {
  std::string value;
  auto st = state_->db->Get(rocksdb::ReadOptions{}, state_->cf(cf_global),
                            keys::global_key(position), &value);
  if (st.IsNotFound())
    return make_error(errc::not_found, "no event at position " + std::to_string(position));
  if (!st.ok())
    return to_error(st, "reading position " + std::to_string(position));
  auto view = events::decode_record(value);
  if (!view)
    return make_error(errc::corrupt_record,
                      "position " + std::to_string(position) + ": " + describe(view.error()));
  if (view->position != position)
    return make_error(errc::corrupt_record, "position " + std::to_string(position)
                                              + ": record says position "
                                              + std::to_string(view->position));
  return view->to_record();
}

caf::expected<std::uint64_t> event_store::find_event(const events::event_id& id) const {
  std::string value;
  auto st = state_->db->Get(
    rocksdb::ReadOptions{}, state_->cf(cf_event_index),
    rocksdb::Slice{reinterpret_cast<const char*>(id.bytes.data()), 16}, &value);
  if (st.IsNotFound())
    return make_error(errc::not_found, "no event with id " + events::to_string(id));
  if (!st.ok())
    return to_error(st, "looking up event " + events::to_string(id));
  if (value.size() != 8)
    return make_error(errc::corrupt_record, "event index entry of " + events::to_string(id)
                                              + " has " + std::to_string(value.size())
                                              + " bytes");
  return keys::read_be64(value.data());
}

caf::expected<std::vector<stream_info>>
event_store::list_streams(std::string_view prefix, std::size_t limit, std::string_view after) const {
  std::vector<stream_info> result;
  std::unique_ptr<rocksdb::Iterator> it{
    state_->db->NewIterator(rocksdb::ReadOptions{}, state_->cf(cf_streams))};
  // Each stream's keys are contiguous: "<id>\0\0..." up to "<id>" + max
  // version; "<id>\x01" sorts after all of them and before any longer id.
  if (!after.empty() && after >= prefix)
    it->Seek(std::string{after} + '\x01');
  else
    it->Seek(prefix);
  while (it->Valid() && result.size() < limit) {
    auto k = it->key();
    if (k.size() < 9)
      return make_error(errc::corrupt_record, "stream index key of " + std::to_string(k.size())
                                                + " bytes");
    // Copied: the key's memory belongs to the iterator's position, which
    // SeekForPrev moves.
    std::string stream{k.data(), k.size() - 8};
    if (std::string_view{stream}.substr(0, prefix.size()) != prefix)
      break;
    std::string next = stream + '\x01';
    it->SeekForPrev(next);
    if (!it->Valid())
      break;
    auto last = it->key();
    result.push_back({std::move(stream), keys::read_be64(last.data() + last.size() - 8)});
    it->Seek(next);
  }
  if (!it->status().ok())
    return to_error(it->status(), "listing streams");
  return result;
}

// -- snapshots ---------------------------------------------------------------------
//
// Value: u32 crc32c (over the rest) | u64 version | u16 schema | u16 type length |
// type | payload; little-endian.

caf::error event_store::save_snapshot(std::string_view stream, const snapshot& snap) {
  if (!state_->comm)
    return make_error(errc::not_writable, "the store was opened read-only");
  if (state_->standby.load(std::memory_order_acquire))
    return make_error(errc::not_writable, "a standby's store takes its primary's log only");
  if (!events::valid_stream_id(stream))
    return make_error(errc::invalid_argument, "invalid stream id");
  if (snap.type.size() > 0xffff || snap.payload.size() > events::max_payload_size)
    return make_error(errc::invalid_argument, "snapshot type or payload too large");
  std::string value(16 + snap.type.size() + snap.payload.size(), '\0');
  char* p = value.data();
  std::memcpy(p + 4, &snap.version, 8);
  std::memcpy(p + 12, &snap.schema_version, 2);
  auto type_len = static_cast<std::uint16_t>(snap.type.size());
  std::memcpy(p + 14, &type_len, 2);
  std::memcpy(p + 16, snap.type.data(), snap.type.size());
  std::memcpy(p + 16 + snap.type.size(), snap.payload.data(), snap.payload.size());
  auto crc = events::crc32c(p + 4, value.size() - 4);
  std::memcpy(p, &crc, 4);
  rocksdb::WriteBatch wb;
  wb.Put(state_->cf(cf_snapshots), stream, value);
  auto st = state_->guarded_write(state_->write_opts, &wb);
  if (st.IsIncomplete())
    return unavailable(*state_);
  return st.ok() ? caf::error{} : to_error(st, "saving a snapshot of " + std::string{stream});
}

caf::expected<std::optional<snapshot>> event_store::load_snapshot(std::string_view stream) const {
  std::string value;
  auto st = state_->db->Get(rocksdb::ReadOptions{}, state_->cf(cf_snapshots), stream, &value);
  if (st.IsNotFound())
    return std::optional<snapshot>{};
  if (!st.ok())
    return to_error(st, "loading the snapshot of " + std::string{stream});
  auto corrupt = [&](const char* why) {
    return make_error(errc::corrupt_record, "snapshot of " + std::string{stream} + ": " + why);
  };
  if (value.size() < 16)
    return corrupt("shorter than its header");
  const char* p = value.data();
  std::uint32_t crc;
  std::memcpy(&crc, p, 4);
  if (crc != events::crc32c(p + 4, value.size() - 4))
    return corrupt("checksum mismatch");
  snapshot snap;
  std::uint16_t type_len;
  snap.version = *keys::snapshot_version(value);
  std::memcpy(&snap.schema_version, p + 12, 2);
  std::memcpy(&type_len, p + 14, 2);
  if (16u + type_len > value.size())
    return corrupt("type length beyond the value");
  snap.type.assign(p + 16, type_len);
  snap.payload.assign(p + 16 + type_len, value.size() - 16 - type_len);
  return std::optional<snapshot>{std::move(snap)};
}

// -- checkpoints and read models -------------------------------------------------
//
// Checkpoint value: big-endian u64 position | big-endian u64 updated_us.

struct write_batch::impl {
  enum kind : std::uint8_t { put, erase, erase_range, checkpoint, erase_checkpoint };
  struct op {
    kind what;
    std::string key;
    std::string value; // put: the value; erase_range: the end key
    std::uint64_t position = 0;
  };
  std::vector<op> ops;
};

write_batch::write_batch() : impl_(std::make_unique<impl>()) {
}
write_batch::write_batch(write_batch&&) noexcept = default;
write_batch& write_batch::operator=(write_batch&&) noexcept = default;
write_batch::~write_batch() = default;

void write_batch::put(std::string_view key, std::string_view value) {
  impl_->ops.push_back({impl::put, std::string{key}, std::string{value}, 0});
}

void write_batch::erase(std::string_view key) {
  impl_->ops.push_back({impl::erase, std::string{key}, {}, 0});
}

void write_batch::erase_range(std::string_view begin, std::string_view end) {
  impl_->ops.push_back({impl::erase_range, std::string{begin}, std::string{end}, 0});
}

void write_batch::set_checkpoint(std::string_view name, std::uint64_t position) {
  impl_->ops.push_back({impl::checkpoint, std::string{name}, {}, position});
}

void write_batch::erase_checkpoint(std::string_view name) {
  impl_->ops.push_back({impl::erase_checkpoint, std::string{name}, {}, 0});
}

std::size_t write_batch::size() const noexcept {
  return impl_->ops.size();
}

caf::error event_store::commit(write_batch batch, bool fsync) {
  if (!state_->comm)
    return make_error(errc::not_writable, "the store was opened read-only");
  rocksdb::WriteBatch wb;
  auto now = now_us();
  auto* models = state_->cf(cf_read_models);
  auto* checkpoints = state_->cf(cf_checkpoints);
  for (auto& op : batch.impl_->ops) {
    switch (op.what) {
      case write_batch::impl::put:
        wb.Put(models, op.key, op.value);
        break;
      case write_batch::impl::erase:
        wb.Delete(models, op.key);
        break;
      case write_batch::impl::erase_range:
        if (op.key < op.value)
          wb.DeleteRange(models, op.key, op.value);
        break;
      case write_batch::impl::checkpoint: {
        if (op.key.empty())
          return make_error(errc::invalid_argument, "checkpoint without a name");
        std::string value = keys::be64_value(op.position);
        keys::append_be64(value, static_cast<std::uint64_t>(now));
        wb.Put(checkpoints, op.key, value);
        break;
      }
      case write_batch::impl::erase_checkpoint:
        wb.Delete(checkpoints, op.key);
        break;
    }
  }
  auto wopts = state_->write_opts;
  if (!fsync)
    wopts.sync = false;
  auto st = state_->guarded_write(wopts, &wb);
  if (st.IsIncomplete())
    return unavailable(*state_);
  return st.ok() ? caf::error{} : to_error(st, "committing a read-model batch");
}

namespace {

caf::expected<checkpoint> decode_checkpoint(std::string_view name, rocksdb::Slice value) {
  if (value.size() != 16)
    return make_error(errc::corrupt_record, "checkpoint " + std::string{name} + " has "
                                              + std::to_string(value.size()) + " bytes");
  checkpoint cp;
  cp.position = keys::read_be64(value.data());
  cp.updated_us = static_cast<std::int64_t>(keys::read_be64(value.data() + 8));
  return cp;
}

} // namespace

caf::expected<std::optional<checkpoint>> event_store::load_checkpoint(std::string_view name) const {
  std::string value;
  auto st = state_->db->Get(rocksdb::ReadOptions{}, state_->cf(cf_checkpoints), name, &value);
  if (st.IsNotFound())
    return std::optional<checkpoint>{};
  if (!st.ok())
    return to_error(st, "loading checkpoint " + std::string{name});
  auto cp = decode_checkpoint(name, value);
  if (!cp)
    return cp.error();
  return std::optional<checkpoint>{*cp};
}

caf::expected<std::vector<std::pair<std::string, checkpoint>>> event_store::list_checkpoints() const {
  std::vector<std::pair<std::string, checkpoint>> result;
  std::unique_ptr<rocksdb::Iterator> it{
    state_->db->NewIterator(rocksdb::ReadOptions{}, state_->cf(cf_checkpoints))};
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto name = it->key().ToString();
    auto cp = decode_checkpoint(name, it->value());
    if (!cp)
      return cp.error();
    result.emplace_back(std::move(name), *cp);
  }
  if (!it->status().ok())
    return to_error(it->status(), "listing checkpoints");
  return result;
}

caf::expected<std::optional<std::string>> event_store::get_model(std::string_view key) const {
  std::string value;
  auto st = state_->db->Get(rocksdb::ReadOptions{}, state_->cf(cf_read_models), key, &value);
  if (st.IsNotFound())
    return std::optional<std::string>{};
  if (!st.ok())
    return to_error(st, "reading read model key");
  return std::optional<std::string>{std::move(value)};
}

caf::expected<std::vector<std::pair<std::string, std::string>>>
event_store::scan_models(std::string_view prefix, std::string_view after, std::size_t limit) const {
  std::vector<std::pair<std::string, std::string>> result;
  if (limit == 0)
    return result;
  std::unique_ptr<rocksdb::Iterator> it{
    state_->db->NewIterator(rocksdb::ReadOptions{}, state_->cf(cf_read_models))};
  std::string start = after.empty() ? std::string{prefix} : std::string{after};
  it->Seek(start);
  if (!after.empty() && it->Valid() && it->key() == rocksdb::Slice{after.data(), after.size()})
    it->Next();
  for (; it->Valid() && result.size() < limit; it->Next()) {
    auto key = it->key();
    if (!key.starts_with(rocksdb::Slice{prefix.data(), prefix.size()}))
      break;
    result.emplace_back(key.ToString(), it->value().ToString());
  }
  if (!it->status().ok())
    return to_error(it->status(), "scanning read models");
  return result;
}

// -- operations ---------------------------------------------------------------------

caf::error event_store::refresh() {
  if (state_->opts.mode != open_mode::secondary)
    return caf::error{};
  auto st = state_->db->TryCatchUpWithPrimary();
  if (!st.ok())
    return to_error(st, "catching up with the writer");
  auto last = state_->scan_last_position();
  if (!last)
    return last.error();
  state_->publish(*last);
  return caf::error{};
}

caf::error event_store::flush() {
  if (!state_->comm)
    return caf::error{};
  std::lock_guard<std::mutex> writes{state_->write_mtx};
  if (state_->failing.load(std::memory_order_acquire))
    return unavailable(*state_); // nothing to flush that may be written
  rocksdb::FlushOptions fo;
  fo.wait = true;
  for (std::size_t i = 0; i < cf_count; ++i) {
    auto st = state_->db->Flush(fo, state_->cf(static_cast<cf_id>(i)));
    if (!st.ok())
      return to_error(st, std::string{"flushing "} + cf_name(i));
  }
  return caf::error{};
}

std::vector<file_info> event_store::live_files() const {
  std::vector<rocksdb::LiveFileMetaData> files;
  state_->db->GetLiveFilesMetaData(&files);
  std::vector<file_info> result;
  for (const auto& f : files)
    result.push_back({f.column_family_name, f.directory + "/" + f.relative_filename, f.size});
  return result;
}

} // namespace keel::storage
