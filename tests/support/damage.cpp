#include "damage.hpp"

#include <stdexcept>
#include <vector>

#include <rocksdb/db.h>

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

} // namespace

void damage_record(const std::string& path, std::uint64_t position) {
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
  value[value.size() - 3] = static_cast<char>(value[value.size() - 3] ^ 0x20);
  check(db->Put(rocksdb::WriteOptions{}, handles[2], be64(position), value));
  for (auto* h : handles)
    db->DestroyColumnFamilyHandle(h);
  delete db;
}

} // namespace keel::test
