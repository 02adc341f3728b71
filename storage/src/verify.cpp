#include "keel/storage/verify.hpp"

#include <cstring>

#include "keel/events/error.hpp"
#include "keel/events/record.hpp"
#include "keel/storage/event_store.hpp"
#include "keys.hpp"
#include "state.hpp"

namespace keel::storage {

namespace {

class checker {
public:
  checker(const store_state& st, verify_options& opts, verify_report& rep)
    : st_(st), opts_(opts), rep_(rep) {
  }

  void report(std::string kind, std::uint64_t position, std::string stream, std::uint64_t version,
              std::string detail) {
    if (rep_.findings.size() >= opts_.max_findings) {
      rep_.truncated = true;
      return;
    }
    rep_.findings.push_back({std::move(kind), position, std::move(stream), version,
                             std::move(detail)});
  }

  void scan_global();
  void scan_streams();
  void scan_event_index();

private:
  rocksdb::ReadOptions scan_options() const {
    rocksdb::ReadOptions ro;
    ro.readahead_size = 2 << 20;
    ro.fill_cache = false;
    return ro;
  }

  /// Looks up records by position in chunks; `check` sees each outcome.
  template <class Check>
  void resolve(const std::vector<std::uint64_t>& positions, Check check);

  /// After the iterator failed at `position`: reports each unreadable
  /// position one by one until a readable one, and returns where to resume
  /// (0 when nothing readable follows).
  std::uint64_t skip_unreadable(std::uint64_t position, const std::string& why);

  /// Positions the global scan could not read at all.
  std::uint64_t unreadable_ = 0;
  const store_state& st_;
  verify_options& opts_;
  verify_report& rep_;
};

std::uint64_t checker::skip_unreadable(std::uint64_t position, const std::string& why) {
  // Probe with point reads: each position inside a damaged block fails alone,
  // so every hidden event is named. Give up after a long unreadable run.
  constexpr std::uint64_t max_run = 1'000'000;
  for (std::uint64_t p = position; p < position + max_run; ++p) {
    std::string value;
    auto s = st_.db->Get(rocksdb::ReadOptions{}, st_.cf(cf_global), keys::global_key(p), &value);
    if (s.ok())
      return p;
    if (s.IsNotFound()) {
      // End of the log, or a gap: let a fresh iterator find what follows.
      std::unique_ptr<rocksdb::Iterator> it{st_.db->NewIterator(rocksdb::ReadOptions{},
                                                                st_.cf(cf_global))};
      it->Seek(keys::global_key(p));
      if (it->Valid() && it->key().size() == 8)
        return keys::read_be64(it->key().data());
      return 0;
    }
    ++unreadable_;
    report("unreadable", p, {}, 0, (p == position ? why : s.ToString()));
  }
  return 0;
}

void checker::scan_global() {
  std::uint64_t expected = 1;
  std::uint64_t resume_at = 1;
  while (resume_at != 0) {
    std::unique_ptr<rocksdb::Iterator> it{st_.db->NewIterator(scan_options(), st_.cf(cf_global))};
    it->Seek(keys::global_key(resume_at));
    resume_at = 0;
    for (; it->Valid(); it->Next()) {
      auto k = it->key();
      if (k.size() != 8) {
        report("corrupt_record", 0, {}, 0,
               "global key of " + std::to_string(k.size()) + " bytes");
        continue;
      }
      auto position = keys::read_be64(k.data());
      if (position != expected)
        report("position_gap", expected, {}, 0,
               "positions " + std::to_string(expected) + ".." + std::to_string(position - 1)
                 + " are missing");
      expected = position + 1;
      ++rep_.events;
      rep_.last_position = position;
      if (opts_.progress && (rep_.events & 0xfffff) == 0)
        opts_.progress(rep_.events);
      auto v = it->value();
      auto view = events::decode_record(std::string_view{v.data(), v.size()});
      if (!view) {
        report("corrupt_record", position, {}, 0, describe(view.error()));
        continue;
      }
      if (view->position != position)
        report("corrupt_record", position, std::string{view->stream}, view->version,
               "record says position " + std::to_string(view->position));
    }
    if (!it->status().ok()) {
      resume_at = skip_unreadable(expected, it->status().ToString());
      if (resume_at != 0) {
        // Positions skipped over were reported as unreadable, not as a gap.
        expected = resume_at;
      }
    }
  }
}

template <class Check>
void checker::resolve(const std::vector<std::uint64_t>& positions, Check check) {
  std::vector<std::string> keys;
  std::vector<rocksdb::Slice> slices;
  keys.reserve(positions.size());
  for (auto p : positions)
    keys.push_back(keys::global_key(p));
  for (auto& k : keys)
    slices.emplace_back(k);
  std::vector<rocksdb::PinnableSlice> values(positions.size());
  std::vector<rocksdb::Status> status(positions.size());
  st_.db->MultiGet(rocksdb::ReadOptions{}, st_.cf(cf_global), slices.size(), slices.data(),
                   values.data(), status.data());
  for (std::size_t i = 0; i < positions.size(); ++i) {
    if (status[i].IsNotFound()) {
      check(i, nullptr, "points to missing position " + std::to_string(positions[i]));
      continue;
    }
    if (!status[i].ok())
      continue; // an unreadable record: the global scan reports it
    auto view = events::decode_record(std::string_view{values[i].data(), values[i].size()});
    if (!view)
      continue; // a corrupt record: the global scan reports it
    check(i, &*view, std::string{});
  }
}

void checker::scan_streams() {
  struct entry {
    std::string stream;
    std::uint64_t version;
  };
  std::vector<entry> entries;
  std::vector<std::uint64_t> positions;
  auto flush = [&] {
    resolve(positions, [&](std::size_t i, const events::record_view* v, const std::string& why) {
      const auto& e = entries[i];
      if (v == nullptr)
        report("index_mismatch", positions[i], e.stream, e.version, "stream index entry " + why);
      else if (v->stream != e.stream || v->version != e.version)
        report("index_mismatch", positions[i], e.stream, e.version,
               "stream index entry leads to " + std::string{v->stream} + " version "
                 + std::to_string(v->version));
    });
    entries.clear();
    positions.clear();
  };
  std::unique_ptr<rocksdb::Iterator> it{st_.db->NewIterator(scan_options(), st_.cf(cf_streams))};
  std::string current;
  std::uint64_t last_version = 0;
  std::uint64_t count = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto k = it->key();
    auto v = it->value();
    if (k.size() < 9 || v.size() != 8) {
      report("index_mismatch", 0, {}, 0, "malformed stream index entry");
      continue;
    }
    std::string_view stream{k.data(), k.size() - 8};
    auto version = keys::read_be64(k.data() + stream.size());
    if (stream != current) {
      current = std::string{stream};
      ++rep_.streams;
      last_version = 0;
    }
    if (version != last_version + 1)
      report("version_gap", 0, current, last_version + 1,
             "versions " + std::to_string(last_version + 1) + ".." + std::to_string(version - 1)
               + " are missing");
    last_version = version;
    ++count;
    entries.push_back({current, version});
    positions.push_back(keys::read_be64(v.data()));
    if (positions.size() == 256)
      flush();
  }
  flush();
  if (!it->status().ok())
    report("unreadable", 0, current, last_version + 1,
           "stream index unreadable after this entry: " + it->status().ToString());
  // Entries of unreadable records are not counted as surplus: the global
  // scan already named those positions.
  if (count != rep_.events + unreadable_ && it->status().ok())
    report("index_mismatch", 0, {}, 0,
           "stream index has " + std::to_string(count) + " entries, the global log "
             + std::to_string(rep_.events) + " events");
}

void checker::scan_event_index() {
  std::vector<events::event_id> ids;
  std::vector<std::uint64_t> positions;
  auto flush = [&] {
    resolve(positions, [&](std::size_t i, const events::record_view* v, const std::string& why) {
      if (v == nullptr)
        report("index_mismatch", positions[i], {}, 0,
               "event index entry " + events::to_string(ids[i]) + " " + why);
      else if (v->id != ids[i])
        report("index_mismatch", positions[i], std::string{v->stream}, v->version,
               "event index entry " + events::to_string(ids[i]) + " leads to event "
                 + events::to_string(v->id));
    });
    ids.clear();
    positions.clear();
  };
  std::unique_ptr<rocksdb::Iterator> it{
    st_.db->NewIterator(scan_options(), st_.cf(cf_event_index))};
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto k = it->key();
    auto v = it->value();
    if (k.size() != 16 || v.size() != 8) {
      report("index_mismatch", 0, {}, 0, "malformed event index entry");
      continue;
    }
    ++rep_.index_entries;
    events::event_id id;
    std::memcpy(id.bytes.data(), k.data(), 16);
    ids.push_back(id);
    positions.push_back(keys::read_be64(v.data()));
    if (positions.size() == 256)
      flush();
  }
  flush();
  if (!it->status().ok())
    report("unreadable", 0, {}, 0, "event index unreadable: " + it->status().ToString());
  else if (rep_.index_entries != rep_.events + unreadable_)
    report("index_mismatch", 0, {}, 0,
           "event index has " + std::to_string(rep_.index_entries) + " entries, the global log "
             + std::to_string(rep_.events) + " events");
}

} // namespace

caf::expected<verify_report> verify(const event_store& store, verify_options opts) {
  verify_report rep;
  checker c{store.state(), opts, rep};
  c.scan_global();
  c.scan_streams();
  c.scan_event_index();
  return rep;
}

} // namespace keel::storage
