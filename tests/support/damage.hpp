#pragma once

#include <cstdint>
#include <string>

namespace keel::test {

/// Flips one payload bit of the record at global `position`, writing with
/// RocksDB directly, behind the store's back (the store must be closed).
void damage_record(const std::string& path, std::uint64_t position);

} // namespace keel::test
