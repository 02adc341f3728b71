#pragma once

// A file system that fails on demand (options::faults): the store's own
// fault injection for drills and tests of the storage failure paths.

#include <memory>

#include <rocksdb/file_system.h>

#include "keel/storage/options.hpp"

namespace keel::storage {

/// Wraps `base`: while `faults->fail_writes` is set, opening a file for
/// writing and every append, flush, sync and fsync fail with an I/O error.
std::shared_ptr<rocksdb::FileSystem> make_faulty_fs(std::shared_ptr<rocksdb::FileSystem> base,
                                                    std::shared_ptr<io_faults> faults);

} // namespace keel::storage
