#pragma once

/// Forward declarations of the storage module.
namespace keel::storage {

class event_store;
class global_reader;
class stream_reader;
class subscription;
class write_batch;
struct options;
struct new_event;
struct append_result;
struct snapshot;
struct checkpoint;
struct verify_report;

} // namespace keel::storage
