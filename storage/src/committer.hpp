#pragma once

// The group committer: the single thread that writes events. Appends queue up
// while a batch is being written and synced; the next batch takes them all,
// so one fsync covers every append that arrived during the previous one.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <rocksdb/write_batch.h>

#include "keel/events/ids.hpp"
#include "keel/storage/event_store.hpp"
#include "state.hpp"

namespace keel::storage {

/// Monotonic nanoseconds (the committer's time accounting).
inline std::uint64_t clock_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                      std::chrono::steady_clock::now().time_since_epoch())
                                      .count());
}

/// One queued append. Records are encoded by the caller; the committer seals
/// them with their version and position.
struct append_request {
  std::string stream;
  expected_version expected = expected_version::any();
  std::vector<events::event_id> ids;
  std::vector<std::string> records;
  event_store::append_callback done;
  /// Set for work that needs the committer alone (replication, terms,
  /// truncation): it runs on the committer's thread between batches.
  std::function<void()> exclusive;
};

class committer {
public:
  /// Starts the thread; `next_position` is one past the last stored event.
  committer(store_state& state, std::uint64_t next_position);

  /// Drains every queued append, then stops the thread.
  ~committer();

  /// Queues an append; its callback runs on the committer's thread.
  void submit(std::unique_ptr<append_request> req);

  /// Runs `fn` on the committer's thread between two batches and returns
  /// what it returned (blocks until then).
  caf::error run_exclusive(std::function<caf::error()> fn);

  /// Installs the gate the next batches pass (empty: none).
  void set_gate(commit_gate gate);

  // Replication steps: call them through run_exclusive only.
  caf::error begin_term(std::uint64_t token);
  caf::expected<std::uint64_t> apply(replicated_batch& batch);
  caf::expected<truncation> truncate_after(std::uint64_t position);

private:
  using request_ptr = std::unique_ptr<append_request>;

  struct outcome {
    caf::error err;
    append_result result;
    /// Its events are in the batch's write (not a duplicate, not refused).
    bool written = false;
  };

  void run();
  void process(std::vector<request_ptr>& batch, const commit_gate* gate);
  /// Ships the batch just written through `gate`; false (and every written
  /// append failed) when the gate refused it.
  bool pass_gate(const commit_gate& gate, std::vector<request_ptr>& batch,
                 std::vector<outcome>& outcomes, std::uint64_t end_position);
  caf::error write_terms(const term_history& terms, rocksdb::WriteBatch& wb);
  caf::expected<std::uint64_t> current_version(const std::string& stream);
  void mark_repeated_ids(const std::vector<request_ptr>& batch);
  caf::error check_duplicate(const append_request& req, const std::vector<std::uint64_t>& found,
                             append_result& result);

  store_state& state_;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::vector<request_ptr> queue_;
  bool stopping_ = false;
  std::shared_ptr<const commit_gate> gate_;
  /// How many appends the committer expects per batch: those acknowledged by
  /// the last batch plus those that queued meanwhile (closed-loop callers
  /// resubmit right after their acknowledgement).
  std::size_t expected_requests_ = 1;
  /// How long the last write took, in microseconds.
  std::uint64_t last_write_us_ = 0;

  // Owned by the committer thread.
  std::uint64_t next_position_;
  /// Last version per stream, including the versions staged in the batch
  /// being written (cleared when a write fails, trimmed between batches).
  std::unordered_map<std::string, std::uint64_t> versions_;
  std::unique_ptr<rocksdb::Iterator> version_it_;
  rocksdb::WriteBatch wb_;
  // Buffers reused from batch to batch.
  std::vector<std::pair<events::event_id, std::uint32_t>> batch_ids_;
  std::vector<char> repeats_;
  std::string stream_key_;
  std::string global_key_;
  std::thread thread_;
};

} // namespace keel::storage
