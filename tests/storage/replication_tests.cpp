// Replication of the global log between two stores: the primary's commit
// gate ships every batch before it is acknowledged, the standby stores it at
// the same positions, terms fence old primaries, and a primary that lost its
// role discards the tail its group never acknowledged.

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>

#include "keel/storage/verify.hpp"
#include "store_support.hpp"

using namespace keel;
using namespace keel::test;
using storage::expected_version;
using storage::replicated_batch;
using storage::term;
using storage::term_history;

namespace {

/// Every record of `store` (up to its last published position), as stored.
std::vector<std::string> log_of(const storage::event_store& store) {
  std::vector<std::string> out;
  auto r = store.read_all(1, store.last_position());
  while (r.next())
    out.emplace_back(r.raw());
  REQUIRE_FALSE(r.error());
  return out;
}

/// Ships `from.. last` of `primary` to `standby` in batches of `n`, with the
/// primary's terms and `token`.
void catch_up(const storage::event_store& primary, storage::event_store& standby,
              std::uint64_t token, std::size_t n = 100) {
  auto terms = primary.terms();
  REQUIRE(terms);
  replicated_batch hello;
  hello.token = token;
  hello.first_position = standby.last_position() + 1;
  hello.terms = *terms;
  auto r0 = standby.replicate(hello);
  INFO((r0 ? std::string{} : describe(r0.error())));
  REQUIRE(r0);
  auto last = primary.last_position();
  auto from = standby.last_position() + 1;
  if (from > last)
    return;
  auto r = primary.read_all(from, last - from + 1);
  replicated_batch b;
  b.token = token;
  b.first_position = from;
  auto flush = [&] {
    if (b.records.empty())
      return;
    auto done = standby.replicate(b);
    INFO((done ? std::string{} : describe(done.error())));
    REQUIRE(done);
    b.first_position += b.records.size();
    b.records.clear();
  };
  while (r.next()) {
    b.records.emplace_back(r.raw());
    if (b.records.size() == n)
      flush();
  }
  REQUIRE_FALSE(r.error());
  flush();
}

void require_clean(const storage::event_store& store) {
  auto report = storage::verify(store);
  REQUIRE(report);
  INFO((report->findings.empty() ? std::string{} : report->findings.front().detail));
  CHECK(report->findings.empty());
}

} // namespace

TEST_CASE("a standby storing what the primary's gate ships holds the same log, index and terms",
          "[replication]") {
  temp_dir dir;
  auto primary = open_store(dir.path() + "/p");
  auto standby = open_store(dir.path() + "/s");
  REQUIRE_FALSE(primary->begin_term(7));
  catch_up(*primary, *standby, 7); // the terms, before any event
  std::atomic<std::uint64_t> gated{0};
  primary->set_commit_gate([&](replicated_batch& b) -> caf::error {
    b.token = 7;
    auto r = standby->replicate(b);
    if (!r)
      return r.error();
    gated += b.records.size();
    return caf::error{};
  });
  // 16 writers, 125 appends each, over 40 streams: batches of many appends.
  std::vector<std::thread> writers;
  for (int w = 0; w < 16; ++w)
    writers.emplace_back([&, w] {
      for (std::uint64_t i = 0; i < 125; ++i) {
        auto n = static_cast<std::uint64_t>(w) * 1000 + i;
        auto r = primary->append("order-" + std::to_string(n % 40), expected_version::any(),
                                 one(make_event(3, n)));
        REQUIRE(r);
        // Acknowledged: the standby has it already.
        REQUIRE(standby->last_position() >= r->last_position);
      }
    });
  for (auto& t : writers)
    t.join();
  CHECK(primary->last_position() == 2000);
  CHECK(gated == 2000);
  CHECK(primary->replication().batches_shipped < 2000); // group commit reached the standby too
  CHECK(log_of(*primary) == log_of(*standby));
  CHECK(*primary->terms() == *standby->terms());
  CHECK(*standby->terms() == term_history{{7, 1}});
  for (int s = 0; s < 40; ++s) {
    auto stream = "order-" + std::to_string(s);
    CHECK(*primary->stream_version(stream) == *standby->stream_version(stream));
  }
  auto at = standby->find_event(events::event_id::from_seed(3, 15'124));
  REQUIRE(at);
  CHECK(*at == *primary->find_event(events::event_id::from_seed(3, 15'124)));
  require_clean(*standby);
  CHECK(standby->replication().events_received == 2000);
  CHECK(standby->replication().token == 7);
}

TEST_CASE("nothing is acknowledged or published before the gate lets the batch pass",
          "[replication]") {
  temp_dir dir;
  auto primary = open_store(dir.path() + "/p");
  std::mutex mtx;
  std::condition_variable cv;
  bool open = false;
  int calls = 0;
  primary->set_commit_gate([&](replicated_batch&) -> caf::error {
    std::unique_lock<std::mutex> guard{mtx};
    ++calls;
    cv.notify_all();
    cv.wait(guard, [&] { return open; });
    return caf::error{};
  });
  std::atomic<int> acknowledged{0};
  primary->append_async("order-1", expected_version::any(), one(make_event(1, 1)),
                        [&](caf::expected<storage::append_result> r) {
                          REQUIRE(r);
                          ++acknowledged;
                        });
  {
    std::unique_lock<std::mutex> guard{mtx};
    REQUIRE(cv.wait_for(guard, std::chrono::seconds(5), [&] { return calls == 1; }));
  }
  // Written to this disk, waiting at the gate: not acknowledged, not published.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(acknowledged == 0);
  CHECK(primary->last_position() == 0);
  CHECK_FALSE(primary->wait_for(1, std::chrono::milliseconds(20)));
  {
    std::lock_guard<std::mutex> guard{mtx};
    open = true;
  }
  cv.notify_all();
  REQUIRE(primary->wait_for(1, std::chrono::seconds(5)));
  for (int i = 0; i < 500 && acknowledged == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  CHECK(acknowledged == 1);
  primary->set_commit_gate({});
}

TEST_CASE("a refused gate fences the store until its tail is truncated", "[replication]") {
  temp_dir dir;
  auto path = dir.path() + "/p";
  auto primary = open_store(path);
  REQUIRE_FALSE(primary->begin_term(3));
  append_range(*primary, 1, 1, 10, "order-", 3);
  primary->set_commit_gate([&](replicated_batch&) -> caf::error {
    return make_error(errc::unavailable, "this node lost the primary role");
  });
  auto r = primary->append("order-1", expected_version::any(), one(make_event(1, 11)));
  REQUIRE_FALSE(r);
  CHECK(code_of(r.error()) == errc::unavailable);
  CHECK(primary->replication().fenced);
  CHECK(primary->last_position() == 10); // on disk, never published
  auto again = primary->append("order-2", expected_version::any(), one(make_event(1, 12)));
  REQUIRE_FALSE(again);
  CHECK(code_of(again.error()) == errc::not_writable);
  CHECK(code_of(primary->begin_term(4)) == errc::not_writable);
  // Truncation is for a store that left the primary role: not while a gate is set.
  CHECK(code_of(primary->truncate_after(10).error()) == errc::invalid_argument);
  primary->set_commit_gate({});
  auto cut = primary->truncate_after(10);
  REQUIRE(cut);
  CHECK(cut->removed_events == 1);
  CHECK(cut->last_position == 10);
  CHECK_FALSE(primary->replication().fenced);
  CHECK_FALSE(primary->find_event(events::event_id::from_seed(1, 11)));
  CHECK(*primary->stream_version("order-1") == 4); // 1, 4, 7, 10
  require_clean(*primary);
  // Writable again (it is no primary now, but the store does not know roles).
  auto r2 = primary->append("order-1", expected_version::exact(4), one(make_event(1, 11)));
  REQUIRE(r2);
  CHECK(r2->first_position == 11);
}

TEST_CASE("a standby refuses an older token, a gap and a batch that differs from its log, and "
          "takes a resent batch",
          "[replication]") {
  temp_dir dir;
  auto primary = open_store(dir.path() + "/p");
  auto standby = open_store(dir.path() + "/s");
  REQUIRE_FALSE(primary->begin_term(5));
  append_range(*primary, 2, 1, 30, "order-", 4);
  standby->set_standby(true); // takes its primary's log only
  catch_up(*primary, *standby, 5, 7);
  CHECK(standby->last_position() == 30);
  auto own = standby->append("order-9", expected_version::any(), one(make_event(2, 999)));
  REQUIRE_FALSE(own);
  CHECK(code_of(own.error()) == errc::not_writable);
  CHECK(code_of(standby->save_snapshot("order-1", {1, "t", 1, "x"})) == errc::not_writable);

  auto batch_of = [&](std::uint64_t first, std::uint64_t last, std::uint64_t token) {
    replicated_batch b;
    b.token = token;
    b.first_position = first;
    auto r = primary->read_all(first, last - first + 1);
    while (r.next())
      b.records.emplace_back(r.raw());
    return b;
  };
  // Resent (its acknowledgement was lost): accepted, nothing changes.
  auto resent = standby->replicate(batch_of(21, 30, 5));
  REQUIRE(resent);
  CHECK(*resent == 30);
  // A primary of an older term.
  auto old = standby->replicate(batch_of(21, 30, 4));
  REQUIRE_FALSE(old);
  CHECK(code_of(old.error()) == errc::stale_token);
  // A gap: the standby ends at 30.
  append_range(*primary, 2, 31, 40, "order-", 4);
  auto gap = standby->replicate(batch_of(32, 40, 5));
  REQUIRE_FALSE(gap);
  CHECK(code_of(gap.error()) == errc::log_gap);
  CHECK(describe(gap.error()).find("ends at position 30") != std::string::npos);
  // Other content at a stored position.
  auto other = batch_of(25, 31, 5);
  other.records[0][other.records[0].size() - 1] ^= 1;
  auto differs = standby->replicate(other);
  REQUIRE_FALSE(differs);
  CHECK(code_of(differs.error()) == errc::log_gap);
  // A damaged record.
  auto damaged = batch_of(31, 31, 5);
  damaged.records[0][20] ^= 0x40;
  auto bad = standby->replicate(damaged);
  REQUIRE_FALSE(bad);
  CHECK(code_of(bad.error()) == errc::corrupt_record);
  CHECK(standby->last_position() == 30);
  // Nothing of the refused batches was stored; the right one continues.
  auto ok = standby->replicate(batch_of(31, 40, 5));
  REQUIRE(ok);
  CHECK(*ok == 40);
  CHECK(log_of(*primary) == log_of(*standby));
  require_clean(*standby);
  // A newer token is taken and kept (it survives a restart through its term).
  replicated_batch newer;
  newer.token = 9;
  newer.first_position = 41;
  newer.terms = {{5, 1}, {9, 41}};
  REQUIRE(standby->replicate(newer));
  standby.reset();
  standby = open_store(dir.path() + "/s");
  CHECK(standby->replication().token == 9);
  CHECK(code_of(standby->replicate(batch_of(31, 40, 5)).error()) == errc::stale_token);
  CHECK(code_of(standby->begin_term(9)) == errc::stale_token);
  REQUIRE_FALSE(standby->begin_term(10));
}

TEST_CASE("agreed_prefix finds where a log leaves the group's", "[replication]") {
  using storage::agreed_prefix;
  // Same term, one log longer: the shorter end.
  CHECK(agreed_prefix({{1, 1}}, 100, {{1, 1}}, 95) == 95);
  // The old primary (term 1) wrote 96..100 unacknowledged; the standby
  // took over at 96 with term 2.
  CHECK(agreed_prefix({{1, 1}}, 100, {{1, 1}, {2, 96}}, 120) == 95);
  // Promoted but wrote nothing before it lost the role again.
  CHECK(agreed_prefix({{1, 1}, {2, 101}}, 100, {{1, 1}, {3, 101}}, 150) == 100);
  CHECK(agreed_prefix({{1, 1}, {2, 101}}, 104, {{1, 1}, {3, 101}}, 150) == 100);
  // Two failovers while it was away.
  CHECK(agreed_prefix({{1, 1}}, 100, {{1, 1}, {2, 90}, {4, 130}}, 200) == 89);
  // A log from before replication (no terms) and its continuation.
  CHECK(agreed_prefix({}, 50, {{1, 51}}, 80) == 50);
  CHECK(agreed_prefix({}, 60, {{1, 51}}, 80) == 50);
  CHECK(agreed_prefix({}, 0, {{1, 1}}, 80) == 0);
  CHECK(storage::token_at({{1, 1}, {2, 96}}, 95) == 1);
  CHECK(storage::token_at({{1, 1}, {2, 96}}, 96) == 2);
  CHECK(storage::well_formed({{1, 1}, {2, 1}, {5, 9}}));
  CHECK_FALSE(storage::well_formed({{2, 1}, {2, 9}}));
  CHECK_FALSE(storage::well_formed({{1, 9}, {2, 5}}));
}

TEST_CASE("an old primary discards the tail its group never acknowledged and follows the new one",
          "[replication]") {
  temp_dir dir;
  auto a = open_store(dir.path() + "/a"); // the first primary
  auto b = open_store(dir.path() + "/b"); // its synchronous standby
  REQUIRE_FALSE(a->begin_term(1));
  catch_up(*a, *b, 1);
  bool reachable = true;
  a->set_commit_gate([&](replicated_batch& batch) -> caf::error {
    if (!reachable)
      return make_error(errc::unavailable, "the standby cannot be reached");
    batch.token = 1;
    auto r = b->replicate(batch);
    return r ? caf::error{} : r.error();
  });
  append_range(*a, 4, 1, 100, "order-", 10);
  REQUIRE(b->last_position() == 100);
  // A takes a snapshot of order-3 at its version 10 (position 93), then
  // writes one more batch that only its own disk gets.
  REQUIRE_FALSE(a->save_snapshot("order-3", {10, "test", 1, "x"}));
  reachable = false;
  auto lost = a->append("order-3", expected_version::any(), one(make_event(4, 101)));
  REQUIRE_FALSE(lost);
  {
    storage::write_batch wb;
    wb.set_checkpoint("projection/x", 100);
    wb.set_checkpoint("projection/y", 101); // it saw the tail (after a restart, say)
    REQUIRE_FALSE(a->commit(std::move(wb)));
  }
  // B is promoted: term 2 begins at 101, and it takes new orders.
  REQUIRE_FALSE(b->begin_term(2));
  append_range(*b, 5, 101, 110, "order-", 10);
  // A returns. Its log and B's agree up to 100: 101 is a tail to drop.
  a->set_commit_gate({});
  a.reset();
  a = open_store(dir.path() + "/a");
  CHECK(a->last_position() == 101); // after a restart the tail looks committed
  auto agreed = storage::agreed_prefix(*a->terms(), a->last_position(), *b->terms(),
                                       b->last_position());
  CHECK(agreed == 100);
  // The snapshot of order-3 was taken at version 10, before the tail: kept.
  REQUIRE_FALSE(a->save_snapshot("order-3", {11, "test", 1, "y"})); // one that covers the tail
  auto cut = a->truncate_after(agreed);
  REQUIRE(cut);
  CHECK(cut->removed_events == 1);
  CHECK(cut->snapshots_dropped == 1);
  CHECK(cut->checkpoints_beyond == std::vector<std::string>{"projection/y"});
  CHECK_FALSE(a->find_event(events::event_id::from_seed(4, 101)));
  CHECK_FALSE(*a->load_snapshot("order-3"));
  catch_up(*b, *a, 2);
  CHECK(log_of(*a) == log_of(*b));
  CHECK(*a->terms() == *b->terms());
  CHECK(*a->terms() == term_history{{1, 1}, {2, 101}});
  require_clean(*a);
  // The old primary's batches are refused now by both.
  replicated_batch stale;
  stale.token = 1;
  stale.first_position = 111;
  CHECK(code_of(a->replicate(stale).error()) == errc::stale_token);
  CHECK(code_of(b->replicate(stale).error()) == errc::stale_token);
}

TEST_CASE("a checkpoint of a store taking writes plus its log tail makes an identical standby",
          "[replication]") {
  temp_dir dir;
  auto primary = open_store(dir.path() + "/p");
  REQUIRE_FALSE(primary->begin_term(2));
  append_range(*primary, 6, 1, 500, "order-", 50);
  std::atomic<bool> stop{false};
  std::thread writer{[&] {
    for (std::uint64_t i = 501; !stop; ++i)
      REQUIRE(primary->append("order-" + std::to_string(i % 50), expected_version::any(),
                              one(make_event(6, i))));
  }};
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto copied = primary->export_checkpoint(dir.path() + "/copy");
  REQUIRE(copied);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  stop = true;
  writer.join();
  CHECK(*copied >= 500);
  CHECK(*copied < primary->last_position()); // writes went on around it
  // The copy is a store of its own, at exactly the position it reported.
  std::filesystem::rename(dir.path() + "/copy", dir.path() + "/s");
  auto standby = open_store(dir.path() + "/s");
  CHECK(standby->last_position() == *copied);
  CHECK(*standby->terms() == term_history{{2, 1}});
  catch_up(*primary, *standby, 2, 64);
  CHECK(log_of(*primary) == log_of(*standby));
  require_clean(*standby);
}
