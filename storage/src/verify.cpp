#include "keel/storage/verify.hpp"

#include <algorithm>
#include <cstring>
#include <string_view>
#include <thread>
#include <vector>

#include "keel/events/error.hpp"
#include "keel/events/record.hpp"
#include "keel/storage/event_store.hpp"
#include "keys.hpp"
#include "state.hpp"

namespace keel::storage {

namespace {

/// 32-bit fingerprints of what an index entry must lead to, kept per global
/// position, so the index scans check each entry without a point read.
std::uint32_t mix32(std::uint64_t h) noexcept {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return static_cast<std::uint32_t>(h);
}

std::uint32_t stream_fingerprint(std::string_view stream, std::uint64_t version) noexcept {
  std::uint64_t h = 1469598103934665603ULL;
  for (unsigned char c : stream) {
    h ^= c;
    h *= 1099511628211ULL;
  }
  return mix32(h ^ (version * 0x9e3779b97f4a7c15ULL));
}

std::uint32_t id_fingerprint(const char* bytes) noexcept {
  std::uint64_t a, b;
  std::memcpy(&a, bytes, 8);
  std::memcpy(&b, bytes + 8, 8);
  return mix32(a ^ (b * 0x9e3779b97f4a7c15ULL));
}

/// One bit per global position.
class position_bits {
public:
  void resize(std::uint64_t n) {
    bits_.resize((n + 63) / 64, 0);
  }
  bool test(std::uint64_t i) const noexcept {
    return (bits_[i / 64] >> (i % 64)) & 1u;
  }
  void set(std::uint64_t i) noexcept {
    bits_[i / 64] |= std::uint64_t{1} << (i % 64);
  }

private:
  std::vector<std::uint64_t> bits_;
};

/// What the index scans found, per global position, so they run beside the
/// global scan (on another core) and are compared with it afterwards.
struct index_image {
  /// Per position - 1: the fingerprint of the entry leading there.
  std::vector<std::uint32_t> fps;
  /// Per position - 1: some entry leads there.
  position_bits covered;
  /// Findings of the scan itself (malformed entries, version gaps, second
  /// entries for one position, positions past the end).
  std::vector<finding> findings;
  std::uint64_t entries = 0;
  std::uint64_t streams = 0;
  /// The highest position the image has room for.
  std::uint64_t size = 0;

  explicit index_image(std::uint64_t n) : fps(n, 0), size(n) {
    covered.resize(n);
  }

  /// Records an entry leading to `position`; false (and a finding) when it
  /// cannot be (past the end, or a second entry for the position).
  /// `what()` names the entry; called only for a finding.
  template <class What>
  void add(std::uint64_t position, std::uint32_t fp, const std::string& stream,
           std::uint64_t version, What what) {
    ++entries;
    if (position == 0 || position > size) {
      findings.push_back({"index_mismatch", position, stream, version,
                          what() + " points to missing position " + std::to_string(position)});
      return;
    }
    if (covered.test(position - 1)) {
      findings.push_back({"index_mismatch", position, stream, version,
                          what() + " is a second entry for position " + std::to_string(position)});
      return;
    }
    covered.set(position - 1);
    fps[position - 1] = fp;
  }
};

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

  /// Reads the global log: every record's checksum and layout, gap-free
  /// positions, and each record's fingerprints.
  void scan_global();

  /// Reads the stream index into `img` (versions checked on the way).
  void scan_streams(index_image& img) const;

  /// Reads the event-id index into `img`.
  void scan_event_index(index_image& img) const;

  /// Compares an index image with what the global scan read; reports records
  /// no entry leads to, and entries leading to the wrong record.
  void compare(const index_image& img, const std::vector<std::uint32_t>& fps, bool streams);

  std::uint64_t last_position() const noexcept {
    return rep_.last_position;
  }

private:
  /// Index scans verify RocksDB's block checksums (index entries carry no
  /// checksum of their own); the global scan does not need to: every record
  /// carries its own CRC32C, and skipping the block checksum lets the scan
  /// name exactly the damaged records instead of a whole unreadable block.
  rocksdb::ReadOptions scan_options(bool block_checksums = true) const {
    rocksdb::ReadOptions ro;
    ro.readahead_size = 2 << 20;
    ro.fill_cache = false;
    ro.verify_checksums = block_checksums;
    return ro;
  }

  /// Remembers what the record at `position` is, for the comparison.
  void remember(std::uint64_t position, const events::record_view& view);

  /// Describes the record at `position` ("stream version V, event E"), read
  /// with a point lookup (only for findings).
  std::string describe_record(std::uint64_t position) const;

  /// After the iterator failed at `position`: reports each unreadable
  /// position one by one until a readable one, and returns where to resume
  /// (0 when nothing readable follows).
  std::uint64_t skip_unreadable(std::uint64_t position, const std::string& why);

  bool damaged(std::uint64_t position) const {
    return std::binary_search(damaged_.begin(), damaged_.end(), position);
  }

  /// Positions the global scan could not read at all.
  std::uint64_t unreadable_ = 0;

public:
  /// Per position - 1: fingerprints of (stream, version) and of the event id,
  /// and whether the record was read and decoded.
  std::vector<std::uint32_t> stream_fps_;
  std::vector<std::uint32_t> id_fps_;

private:
  position_bits readable_;
  /// Positions stored but unreadable or corrupt (named by the global scan).
  std::vector<std::uint64_t> damaged_;
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
    damaged_.push_back(p);
    report("unreadable", p, {}, 0, (p == position ? why : s.ToString()));
  }
  return 0;
}

void checker::remember(std::uint64_t position, const events::record_view& view) {
  if (position == 0 || position > (std::uint64_t{1} << 40))
    return;
  if (stream_fps_.size() < position) {
    auto n = std::max<std::uint64_t>(position, stream_fps_.size() * 2);
    stream_fps_.resize(n, 0);
    id_fps_.resize(n, 0);
    readable_.resize(n);
  }
  stream_fps_[position - 1] = stream_fingerprint(view.stream, view.version);
  id_fps_[position - 1] = id_fingerprint(reinterpret_cast<const char*>(view.id.bytes.data()));
  readable_.set(position - 1);
}

void checker::scan_global() {
  {
    auto n = st_.last_position.load();
    stream_fps_.resize(n, 0);
    id_fps_.resize(n, 0);
    readable_.resize(n);
  }
  std::uint64_t expected = 1;
  std::uint64_t resume_at = 1;
  while (resume_at != 0) {
    std::unique_ptr<rocksdb::Iterator> it{
      st_.db->NewIterator(scan_options(false), st_.cf(cf_global))};
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
        damaged_.push_back(position);
        continue;
      }
      if (view->position != position) {
        damaged_.push_back(position);
        report("corrupt_record", position, std::string{view->stream}, view->version,
               "record says position " + std::to_string(view->position));
        continue;
      }
      remember(position, *view);
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

std::string checker::describe_record(std::uint64_t position) const {
  std::string value;
  auto s = st_.db->Get(rocksdb::ReadOptions{}, st_.cf(cf_global), keys::global_key(position),
                       &value);
  if (s.IsNotFound())
    return "missing position " + std::to_string(position);
  if (!s.ok())
    return "an unreadable record (" + s.ToString() + ")";
  auto view = events::decode_record(value);
  if (!view)
    return "a corrupt record";
  return std::string{view->stream} + " version " + std::to_string(view->version) + ", event "
         + events::to_string(view->id);
}

void checker::scan_streams(index_image& img) const {
  std::unique_ptr<rocksdb::Iterator> it{st_.db->NewIterator(scan_options(), st_.cf(cf_streams))};
  std::string current;
  std::uint64_t last_version = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto k = it->key();
    auto v = it->value();
    if (k.size() < 9 || v.size() != 8) {
      img.findings.push_back({"index_mismatch", 0, {}, 0, "malformed stream index entry"});
      continue;
    }
    std::string_view stream{k.data(), k.size() - 8};
    auto version = keys::read_be64(k.data() + stream.size());
    if (stream != current) {
      current.assign(stream.data(), stream.size());
      ++img.streams;
      last_version = 0;
    }
    if (version != last_version + 1)
      img.findings.push_back({"version_gap", 0, current, last_version + 1,
                              "versions " + std::to_string(last_version + 1) + ".."
                                + std::to_string(version - 1) + " are missing"});
    last_version = version;
    img.add(keys::read_be64(v.data()), stream_fingerprint(stream, version), current, version,
            [] { return std::string{"stream index entry"}; });
  }
  if (!it->status().ok())
    img.findings.push_back({"unreadable", 0, current, last_version + 1,
                            "stream index unreadable after this entry: "
                              + it->status().ToString()});
}

void checker::scan_event_index(index_image& img) const {
  std::unique_ptr<rocksdb::Iterator> it{
    st_.db->NewIterator(scan_options(), st_.cf(cf_event_index))};
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto k = it->key();
    auto v = it->value();
    if (k.size() != 16 || v.size() != 8) {
      img.findings.push_back({"index_mismatch", 0, {}, 0, "malformed event index entry"});
      continue;
    }
    img.add(keys::read_be64(v.data()), id_fingerprint(k.data()), {}, 0, [&] {
      events::event_id id;
      std::memcpy(id.bytes.data(), k.data(), 16);
      return "event index entry " + events::to_string(id);
    });
  }
  if (!it->status().ok())
    img.findings.push_back({"unreadable", 0, {}, 0,
                            "event index unreadable: " + it->status().ToString()});
}

void checker::compare(const index_image& img, const std::vector<std::uint32_t>& fps,
                      bool streams) {
  for (const auto& f : img.findings)
    report(f.kind, f.position, f.stream, f.version, f.detail);
  const char* index = streams ? "stream index" : "event index";
  // Positions whose entry leads to the wrong record (or to a hole in the
  // log); named in a second pass over the index, only when there are any.
  std::vector<std::uint64_t> wrong;
  for (std::uint64_t i = 0; i < img.size; ++i) {
    auto position = i + 1;
    if (i < fps.size() && readable_.test(i)) {
      if (!img.covered.test(i))
        report("missing_index", position, {}, 0,
               std::string{"no "} + index + " entry leads to " + describe_record(position));
      else if (img.fps[i] != fps[i])
        wrong.push_back(position);
    } else if (img.covered.test(i) && !damaged(position)) {
      wrong.push_back(position);
    }
    if (rep_.truncated)
      return;
  }
  if (wrong.empty())
    return;
  auto cf = streams ? cf_streams : cf_event_index;
  std::unique_ptr<rocksdb::Iterator> it{st_.db->NewIterator(scan_options(), st_.cf(cf))};
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto k = it->key();
    auto v = it->value();
    if (v.size() != 8 || (streams ? k.size() < 9 : k.size() != 16))
      continue;
    auto position = keys::read_be64(v.data());
    if (!std::binary_search(wrong.begin(), wrong.end(), position))
      continue;
    if (streams) {
      std::string stream{k.data(), k.size() - 8};
      auto version = keys::read_be64(k.data() + stream.size());
      report("index_mismatch", position, stream, version,
             "stream index entry leads to " + describe_record(position));
    } else {
      events::event_id id;
      std::memcpy(id.bytes.data(), k.data(), 16);
      report("index_mismatch", position, {}, 0,
             "event index entry " + events::to_string(id) + " leads to "
               + describe_record(position));
    }
  }
}

} // namespace

caf::expected<verify_report> verify(const event_store& store, verify_options opts) {
  verify_report rep;
  checker c{store.state(), opts, rep};
  // The index scans do not depend on the global scan: they run on a thread
  // of their own and are compared with it once both are done.
  auto room = store.state().last_position.load();
  index_image streams{room};
  index_image ids{room};
  std::thread indexes{[&] {
    c.scan_streams(streams);
    c.scan_event_index(ids);
  }};
  c.scan_global();
  indexes.join();
  rep.streams = streams.streams;
  rep.index_entries = ids.entries;
  c.compare(streams, c.stream_fps_, true);
  c.compare(ids, c.id_fps_, false);
  // Terms (a replicated group's log): tokens strictly increasing, first
  // positions in order, none beyond the log's end.
  auto terms = load_terms(store.state());
  if (!terms) {
    c.report("terms", 0, {}, 0, describe(terms.error()));
  } else {
    for (const auto& t : *terms)
      if (t.first_position > rep.last_position + 1)
        c.report("terms", t.first_position, {}, 0,
                 "term " + std::to_string(t.token) + " begins at position "
                   + std::to_string(t.first_position) + ", after the log's end");
  }
  return rep;
}

} // namespace keel::storage
