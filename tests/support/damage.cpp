#include "damage.hpp"

#include <stdexcept>
#include <vector>

#include <rocksdb/db.h>

#include "keel/events/record.hpp"

namespace keel::test {

namespace {

std::string be64(std::uint64_t x) {
  std::string out(8, '\0');
  for (int i = 7; i >= 0; --i, x >>= 8)
    out[static_cast<std::size_t>(i)] = static_cast<char>(x & 0xff);
  return out;
}

void check(const rocksdb::Status& st) {
  if (!st.ok())
    throw std::runtime_error("damage_record: " + st.ToString());
}

/// Rewrites the stored record at `position` with `change(bytes)`, with
/// RocksDB directly (the store must be closed).
template <class Change>
void rewrite_global(const std::string& path, std::uint64_t position, Change change) {
  // The store's column families (docs/storage-format.md).
  const std::vector<std::string> names = {"default",   "streams",     "global",
                                          "event_index", "snapshots", "checkpoints",
                                          "read_models", "meta"};
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (const auto& n : names)
    cfs.emplace_back(n, rocksdb::ColumnFamilyOptions{});
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  check(rocksdb::DB::Open(rocksdb::DBOptions{}, path, cfs, &handles, &db));
  std::string value;
  check(db->Get(rocksdb::ReadOptions{}, handles[2], be64(position), &value));
  change(value);
  check(db->Put(rocksdb::WriteOptions{}, handles[2], be64(position), value));
  for (auto* h : handles)
    db->DestroyColumnFamilyHandle(h);
  delete db;
}

} // namespace

void damage_record(const std::string& path, std::uint64_t position) {
  rewrite_global(path, position, [](std::string& value) {
    value[value.size() - 3] = static_cast<char>(value[value.size() - 3] ^ 0x20);
  });
}

void reversion_record(const std::string& path, std::uint64_t position, std::uint64_t version) {
  rewrite_global(path, position, [&](std::string& value) {
    events::seal_record(value, version, position);
  });
}

} // namespace keel::test
