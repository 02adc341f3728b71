#include "keel/storage/readers.hpp"

#include <cstring>

#include "keel/events/error.hpp"
#include "keel/storage/event_store.hpp"
#include "keys.hpp"
#include "state.hpp"

namespace keel::storage {

namespace {

rocksdb::ReadOptions scan_options() {
  rocksdb::ReadOptions ro;
  ro.readahead_size = 2 << 20;
  ro.fill_cache = false;
  // Every record carries its own CRC32C (checked by decode_record, in
  // hardware) and the readers cross-check keys against records, so RocksDB's
  // block checksums (a software CRC in Debian's build) would only check the
  // same bytes twice.
  ro.verify_checksums = false;
  return ro;
}

caf::error corrupt_at(std::uint64_t position, const std::string& why) {
  return make_error(errc::corrupt_record, "position " + std::to_string(position) + ": " + why);
}

} // namespace

// -- global_reader ----------------------------------------------------------------

struct global_reader::impl {
  std::unique_ptr<rocksdb::Iterator> it;
  std::uint64_t next_position = 1;
  std::uint64_t remaining = 0;
  bool started = false;
  events::record_view current;
  std::string_view raw;
  caf::error err;
};

global_reader::global_reader(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {
}
global_reader::global_reader(global_reader&&) noexcept = default;
global_reader& global_reader::operator=(global_reader&&) noexcept = default;
global_reader::~global_reader() = default;

bool global_reader::next() {
  auto& s = *impl_;
  if (s.err || s.remaining == 0)
    return false;
  if (!s.started) {
    s.it->Seek(keys::global_key(s.next_position));
    s.started = true;
  } else {
    s.it->Next();
  }
  if (!s.it->Valid()) {
    if (!s.it->status().ok())
      s.err = corrupt_at(s.next_position, "unreadable: " + s.it->status().ToString());
    return false;
  }
  auto k = s.it->key();
  if (k.size() != 8) {
    s.err = corrupt_at(s.next_position, "global key of " + std::to_string(k.size()) + " bytes");
    return false;
  }
  auto position = keys::read_be64(k.data());
  if (position != s.next_position) {
    s.err = corrupt_at(s.next_position, "missing (the next stored position is "
                                          + std::to_string(position) + ")");
    return false;
  }
  auto v = s.it->value();
  auto view = events::decode_record(std::string_view{v.data(), v.size()});
  if (!view) {
    s.err = corrupt_at(position, describe(view.error()));
    return false;
  }
  if (view->position != position) {
    s.err = corrupt_at(position, "record says position " + std::to_string(view->position));
    return false;
  }
  s.current = *view;
  s.raw = std::string_view{v.data(), v.size()};
  ++s.next_position;
  --s.remaining;
  return true;
}

const events::record_view& global_reader::current() const noexcept {
  return impl_->current;
}

const caf::error& global_reader::error() const noexcept {
  return impl_->err;
}

std::string_view global_reader::raw() const noexcept {
  return impl_->raw;
}

global_reader event_store::read_all(std::uint64_t from_position, std::uint64_t max_count) const {
  auto p = std::make_unique<global_reader::impl>();
  p->it.reset(state_->db->NewIterator(scan_options(), state_->cf(cf_global)));
  p->next_position = from_position == 0 ? 1 : from_position;
  p->remaining = max_count;
  return global_reader{std::move(p)};
}

// -- stream_reader ----------------------------------------------------------------

struct stream_reader::impl {
  store_state* state = nullptr;
  std::string stream;
  std::unique_ptr<rocksdb::Iterator> it;
  /// One past the stream's last possible key: the iterator stops there
  /// instead of reading into the next stream's blocks.
  std::string upper;
  rocksdb::Slice upper_slice;
  std::uint64_t next_version = 1;
  std::uint64_t remaining = 0;
  bool exhausted = false;
  // A chunk of index entries resolved with one MultiGet.
  std::vector<std::uint64_t> positions;
  std::vector<std::string> keys;
  std::vector<rocksdb::PinnableSlice> values;
  std::vector<rocksdb::Status> status;
  std::size_t cursor = 0;
  events::record_view current;
  caf::error err;

  bool fill();
};

bool stream_reader::impl::fill() {
  constexpr std::size_t chunk = 64;
  positions.clear();
  keys.clear();
  cursor = 0;
  if (exhausted)
    return false;
  if (!it) {
    upper = stream;
    upper += '\x01';
    upper_slice = rocksdb::Slice{upper};
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper_slice;
    it.reset(state->db->NewIterator(ro, state->cf(cf_streams)));
    it->Seek(keys::stream_key(stream, next_version));
  }
  auto expected = next_version;
  while (positions.size() < chunk && positions.size() < remaining && it->Valid()) {
    auto k = it->key();
    if (k.size() != stream.size() + 8 || std::memcmp(k.data(), stream.data(), stream.size()) != 0) {
      exhausted = true;
      break;
    }
    auto version = keys::read_be64(k.data() + stream.size());
    if (version != expected) {
      err = make_error(errc::corrupt_record, "stream " + stream + ": version "
                                               + std::to_string(expected)
                                               + " missing (next stored is "
                                               + std::to_string(version) + ")");
      return false;
    }
    auto v = it->value();
    if (v.size() != 8) {
      err = make_error(errc::corrupt_record, "stream " + stream + " version "
                                               + std::to_string(version) + ": index value of "
                                               + std::to_string(v.size()) + " bytes");
      return false;
    }
    positions.push_back(keys::read_be64(v.data()));
    ++expected;
    it->Next();
  }
  if (!it->Valid()) {
    if (!it->status().ok()) {
      err = make_error(errc::corrupt_record, "stream " + stream + " from version "
                                               + std::to_string(expected) + ": unreadable: "
                                               + it->status().ToString());
      return false;
    }
    exhausted = true;
  }
  if (positions.empty())
    return false;
  std::vector<rocksdb::Slice> slices;
  for (auto p : positions)
    keys.push_back(keys::global_key(p));
  for (auto& k : keys)
    slices.emplace_back(k);
  values.resize(positions.size());
  status.resize(positions.size());
  state->db->MultiGet(rocksdb::ReadOptions{}, state->cf(cf_global), slices.size(), slices.data(),
                      values.data(), status.data());
  return true;
}

stream_reader::stream_reader(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {
}
stream_reader::stream_reader(stream_reader&&) noexcept = default;
stream_reader& stream_reader::operator=(stream_reader&&) noexcept = default;
stream_reader::~stream_reader() = default;

bool stream_reader::next() {
  auto& s = *impl_;
  if (s.err || s.remaining == 0)
    return false;
  if (s.cursor >= s.positions.size() && !s.fill())
    return false;
  auto i = s.cursor++;
  auto position = s.positions[i];
  auto where = "stream " + s.stream + " version " + std::to_string(s.next_version);
  if (!s.status[i].ok()) {
    s.err = s.status[i].IsNotFound()
              ? make_error(errc::corrupt_record, where + " points to missing position "
                                                   + std::to_string(position))
              : corrupt_at(position, where + ": unreadable: " + s.status[i].ToString());
    return false;
  }
  auto view = events::decode_record(std::string_view{s.values[i].data(), s.values[i].size()});
  if (!view) {
    s.err = corrupt_at(position, where + ": " + describe(view.error()));
    return false;
  }
  if (view->stream != s.stream || view->version != s.next_version || view->position != position) {
    s.err = corrupt_at(position, where + ": record belongs to " + std::string{view->stream}
                                   + " version " + std::to_string(view->version));
    return false;
  }
  s.current = *view;
  ++s.next_version;
  --s.remaining;
  return true;
}

const events::record_view& stream_reader::current() const noexcept {
  return impl_->current;
}

const caf::error& stream_reader::error() const noexcept {
  return impl_->err;
}

stream_reader event_store::read_stream(std::string_view stream, std::uint64_t from_version,
                                       std::uint64_t max_count) const {
  auto p = std::make_unique<stream_reader::impl>();
  p->state = state_.get();
  p->stream = std::string{stream};
  p->next_version = from_version == 0 ? 1 : from_version;
  p->remaining = max_count;
  if (!events::valid_stream_id(stream))
    p->err = make_error(errc::invalid_argument, "invalid stream id");
  return stream_reader{std::move(p)};
}

// -- record_batch -------------------------------------------------------------------

void record_batch::add(const events::record_view& rec) {
  auto* before = arena_.data();
  offsets_.push_back(arena_.size());
  arena_.append(rec.type).append(rec.stream).append(rec.payload);
  views_.push_back(rec);
  // The arena grows by doubling: when it moved, point every view into it
  // again (amortized constant per record); otherwise only the new one.
  auto first = arena_.data() == before ? views_.size() - 1 : 0;
  for (auto i = first; i < views_.size(); ++i) {
    auto& v = views_[i];
    auto* base = arena_.data() + offsets_[i];
    v.type = {base, v.type.size()};
    v.stream = {base + v.type.size(), v.stream.size()};
    v.payload = {base + v.type.size() + v.stream.size(), v.payload.size()};
  }
}

void record_batch::clear() noexcept {
  arena_.clear();
  views_.clear();
  offsets_.clear();
}

} // namespace keel::storage
