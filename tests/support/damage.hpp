#pragma once

#include <cstdint>
#include <string>

namespace keel::test {

/// Flips one payload bit of the record at global `position`, writing with
/// RocksDB directly, behind the store's back (the store must be closed).
void damage_record(const std::string& path, std::uint64_t position);

/// Gives the record at global `position` another stream `version`, with a
/// valid checksum, behind the store's back (the store must be closed): a
/// version gap only the audit and verify can see.
void reversion_record(const std::string& path, std::uint64_t position, std::uint64_t version);

} // namespace keel::test
