#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "keel/events/codec.hpp"
#include "keel/storage/verify.hpp"
#include "store_support.hpp"

using namespace keel;
using namespace keel::storage;
using keel::test::make_event;
using keel::test::one;

TEST_CASE("appends get gap-free versions and positions", "[store]") {
  keel::temp_dir dir;
  auto store = test::open_store(dir.path());
  CHECK(store->last_position() == 0);
  auto a = store->append("order-1", expected_version::no_stream(), one(make_event(1, 1)));
  REQUIRE(a);
  CHECK(a->first_version == 1);
  CHECK(a->first_position == 1);
  std::vector<new_event> two;
  two.push_back(make_event(1, 2));
  two.push_back(make_event(1, 3));
  auto b = store->append("order-1", expected_version::exact(1), std::move(two));
  REQUIRE(b);
  CHECK(b->first_version == 2);
  CHECK(b->last_version == 3);
  CHECK(b->first_position == 2);
  CHECK(b->last_position == 3);
  auto c = store->append("order-2", expected_version::any(), one(make_event(1, 4)));
  REQUIRE(c);
  CHECK(c->first_version == 1);
  CHECK(c->first_position == 4);
  CHECK(store->last_position() == 4);
  CHECK(*store->stream_version("order-1") == 3);
  CHECK(*store->stream_version("order-2") == 1);
  CHECK(*store->stream_version("order-3") == 0);
}

TEST_CASE("a wrong expected version is a version_conflict that changes nothing", "[store]") {
  keel::temp_dir dir;
  auto store = test::open_store(dir.path());
  REQUIRE(store->append("s", expected_version::no_stream(), one(make_event(2, 1))));
  auto again = store->append("s", expected_version::no_stream(), one(make_event(2, 2)));
  REQUIRE_FALSE(again);
  CHECK(code_of(again.error()) == errc::version_conflict);
  CHECK_THAT(describe(again.error()), Catch::Contains("stream s: expected version 0, actual 1"));
  auto stale = store->append("s", expected_version::exact(5), one(make_event(2, 3)));
  REQUIRE_FALSE(stale);
  CHECK(code_of(stale.error()) == errc::version_conflict);
  CHECK(store->last_position() == 1);
  CHECK(*store->stream_version("s") == 1);
  // The refused event ids are free to use later.
  CHECK(store->append("s", expected_version::exact(1), one(make_event(2, 2))));
}

TEST_CASE("appends are idempotent by event id", "[store]") {
  keel::temp_dir dir;
  auto store = test::open_store(dir.path());
  std::vector<new_event> batch{make_event(3, 1), make_event(3, 2)};
  auto first = store->append("s", expected_version::no_stream(), batch);
  REQUIRE(first);
  REQUIRE(store->append("t", expected_version::any(), one(make_event(3, 9))));

  // The same append again (a client retry after a lost acknowledgement),
  // even with its now stale expected version, returns the first result.
  auto retry = store->append("s", expected_version::no_stream(), batch);
  REQUIRE(retry);
  CHECK(retry->duplicate);
  CHECK(retry->first_position == first->first_position);
  CHECK(retry->last_version == 2);
  CHECK(store->last_position() == 3);

  // Reusing an id for other content is refused and changes nothing.
  auto other_stream = store->append("u", expected_version::any(), one(make_event(3, 1)));
  REQUIRE_FALSE(other_stream);
  CHECK(code_of(other_stream.error()) == errc::duplicate_event_id);
  std::vector<new_event> partial{make_event(3, 2), make_event(3, 5)};
  auto overlap = store->append("s", expected_version::any(), partial);
  REQUIRE_FALSE(overlap);
  CHECK(code_of(overlap.error()) == errc::duplicate_event_id);
  CHECK(store->last_position() == 3);
  CHECK(*store->stream_version("u") == 0);
}

TEST_CASE("bad appends get a clear error and change nothing", "[store]") {
  keel::temp_dir dir;
  auto store = test::open_store(dir.path());
  auto expect_error = [&](caf::expected<append_result> r, errc code, const char* text) {
    REQUIRE_FALSE(r);
    CHECK(code_of(r.error()) == code);
    CHECK_THAT(describe(r.error()), Catch::Contains(text));
  };
  expect_error(store->append("has space", expected_version::any(), one(make_event(4, 1))),
               errc::invalid_argument, "stream id");
  expect_error(store->append("", expected_version::any(), one(make_event(4, 1))),
               errc::invalid_argument, "stream id");
  expect_error(store->append("s", expected_version::any(), {}), errc::invalid_argument,
               "no events");
  auto zero = make_event(4, 2);
  zero.id = {};
  expect_error(store->append("s", expected_version::any(), one(zero)), errc::invalid_argument,
               "zero id");
  auto garbage = make_event(4, 3);
  garbage.payload = "\xff\xff\xff\xff";
  expect_error(store->append("s", expected_version::any(), one(garbage)),
               errc::malformed_payload, "length prefix");
  auto unknown = make_event(4, 4);
  unknown.type = "order_teleported";
  expect_error(store->append("s", expected_version::any(), one(unknown)),
               errc::unknown_event_type, "order_teleported");
  auto huge = make_event(4, 5);
  huge.payload.assign(events::max_payload_size + 1, 'x');
  expect_error(store->append("s", expected_version::any(), one(huge)), errc::invalid_argument,
               "payload");
  std::vector<new_event> twins{make_event(4, 6), make_event(4, 6)};
  expect_error(store->append("s", expected_version::any(), twins), errc::invalid_argument,
               "share id");
  CHECK(store->last_position() == 0);
  auto streams = store->list_streams();
  REQUIRE(streams);
  CHECK(streams->empty());
}

TEST_CASE("readers return streams and the global log in order, bounded", "[store][read]") {
  keel::temp_dir dir;
  auto store = test::open_store(dir.path());
  test::append_range(*store, 5, 1, 300, "s-", 3);
  std::uint64_t expected = 41;
  auto all = store->read_all(41, 100);
  while (all.next()) {
    CHECK(all.current().position == expected);
    CHECK(all.current().decode_payload());
    ++expected;
  }
  CHECK_FALSE(all.error());
  CHECK(expected == 141);

  std::uint64_t version = 10;
  auto stream = store->read_stream("s-1", 10);
  while (stream.next()) {
    CHECK(stream.current().stream == "s-1");
    CHECK(stream.current().version == version);
    ++version;
  }
  CHECK_FALSE(stream.error());
  CHECK(version == 101);

  auto event = store->read_event(7);
  REQUIRE(event);
  CHECK(event->id == events::event_id::from_seed(5, 7));
  CHECK(*store->find_event(events::event_id::from_seed(5, 7)) == 7);
  CHECK(code_of(store->read_event(301).error()) == errc::not_found);
  CHECK(code_of(store->find_event(events::event_id::from_seed(9, 9)).error()) == errc::not_found);

  auto streams = store->list_streams("s-");
  REQUIRE(streams);
  REQUIRE(streams->size() == 3);
  CHECK((*streams)[0].stream == "s-0");
  CHECK((*streams)[0].last_version == 100);
  auto page = store->list_streams("s-", 1, "s-0");
  REQUIRE(page);
  REQUIRE(page->size() == 1);
  CHECK((*page)[0].stream == "s-1");
}

TEST_CASE("stream ids that extend each other keep separate streams", "[store][read]") {
  keel::temp_dir dir;
  auto store = test::open_store(dir.path());
  REQUIRE(store->append("a", expected_version::any(), one(make_event(6, 1))));
  REQUIRE(store->append("ab", expected_version::any(), one(make_event(6, 2))));
  REQUIRE(store->append("a", expected_version::any(), one(make_event(6, 3))));
  REQUIRE(store->append("a-", expected_version::any(), one(make_event(6, 4))));
  CHECK(*store->stream_version("a") == 2);
  CHECK(*store->stream_version("ab") == 1);
  std::uint64_t n = 0;
  auto r = store->read_stream("a");
  while (r.next())
    ++n;
  CHECK(n == 2);
  auto streams = store->list_streams();
  REQUIRE(streams);
  CHECK(streams->size() == 3);
}

TEST_CASE("a reopened store continues where it stopped", "[store]") {
  keel::temp_dir dir;
  {
    auto store = test::open_store(dir.path());
    REQUIRE(store->append("s", expected_version::any(), one(make_event(7, 1))));
    REQUIRE(store->append("s", expected_version::any(), one(make_event(7, 2))));
  }
  auto store = test::open_store(dir.path());
  CHECK(store->last_position() == 2);
  auto r = store->append("s", expected_version::exact(2), one(make_event(7, 3)));
  REQUIRE(r);
  CHECK(r->first_position == 3);
  CHECK(r->first_version == 3);
  // Idempotency survives the restart.
  auto retry = store->append("s", expected_version::any(), one(make_event(7, 1)));
  REQUIRE(retry);
  CHECK(retry->duplicate);
}

TEST_CASE("subscriptions catch up, then follow live commits, each event once", "[store][subscribe]") {
  keel::temp_dir dir;
  auto store = test::open_store(dir.path(), open_mode::writer, durability::wal);
  test::append_range(*store, 8, 1, 500, "s-", 7);
  std::mutex mtx;
  std::vector<std::uint64_t> seen;
  auto sub = store->subscribe(1, [&](const std::vector<events::record_view>& batch) {
    std::lock_guard<std::mutex> guard{mtx};
    for (const auto& r : batch) {
      seen.push_back(r.position);
      REQUIRE(r.decode_payload());
    }
    return true;
  }, {64});
  std::thread writer{[&] {
    test::append_range(*store, 8, 501, 2000, "s-", 7);
  }};
  writer.join();
  for (int i = 0; i < 1000; ++i) {
    {
      std::lock_guard<std::mutex> guard{mtx};
      if (seen.size() >= 2000)
        break;
    }
    store->wait_for(~std::uint64_t{0}, std::chrono::milliseconds{5});
  }
  sub->stop();
  REQUIRE(seen.size() == 2000);
  for (std::size_t i = 0; i < seen.size(); ++i)
    REQUIRE(seen[i] == i + 1);
  CHECK(sub->next_position() == 2001);
  CHECK_FALSE(sub->error());
}

TEST_CASE("a subscription stops when its handler says so and from a middle position",
          "[store][subscribe]") {
  keel::temp_dir dir;
  auto store = test::open_store(dir.path(), open_mode::writer, durability::wal);
  test::append_range(*store, 9, 1, 100, "s");
  std::atomic<std::uint64_t> first{0};
  std::atomic<int> calls{0};
  auto sub = store->subscribe(50, [&](const std::vector<events::record_view>& batch) {
    if (calls++ == 0)
      first = batch.front().position;
    return false;
  }, {10});
  for (int i = 0; i < 2000 && sub->running(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  CHECK_FALSE(sub->running());
  CHECK(first == 50);
  CHECK(calls == 1);
  CHECK(sub->next_position() == 60);
}

TEST_CASE("wait_for wakes on commit and times out without one", "[store][subscribe]") {
  keel::temp_dir dir;
  auto store = test::open_store(dir.path(), open_mode::writer, durability::wal);
  CHECK_FALSE(store->wait_for(1, std::chrono::milliseconds{20}));
  std::thread writer{[&] {
    std::this_thread::sleep_for(std::chrono::milliseconds{20});
    REQUIRE(store->append("s", expected_version::any(), one(make_event(10, 1))));
  }};
  CHECK(store->wait_for(1, std::chrono::seconds{10}));
  writer.join();
}

TEST_CASE("snapshots keep the latest state of a stream, checksummed", "[store][snapshot]") {
  keel::temp_dir dir;
  auto store = test::open_store(dir.path());
  CHECK_FALSE(*store->load_snapshot("order-1"));
  REQUIRE_FALSE(store->save_snapshot("order-1", {10, "order_state", 1, "state@10"}));
  REQUIRE_FALSE(store->save_snapshot("order-1", {20, "order_state", 1, std::string("s\0@20", 5)}));
  auto snap = store->load_snapshot("order-1");
  REQUIRE(snap);
  REQUIRE(*snap);
  CHECK((*snap)->version == 20);
  CHECK((*snap)->type == "order_state");
  CHECK((*snap)->payload == std::string("s\0@20", 5));
}

TEST_CASE("checkpoints commit atomically with read-model writes", "[store][checkpoint]") {
  keel::temp_dir dir;
  auto store = test::open_store(dir.path());
  CHECK_FALSE(*store->load_checkpoint("orders"));
  write_batch batch;
  batch.put("orders/1", "placed");
  batch.put("orders/2", "placed");
  batch.set_checkpoint("orders", 2);
  CHECK(batch.size() == 3);
  REQUIRE_FALSE(store->commit(std::move(batch)));
  write_batch next;
  next.erase("orders/1");
  next.put("orders/2", "completed");
  next.set_checkpoint("orders", 5);
  REQUIRE_FALSE(store->commit(std::move(next)));
  auto cp = store->load_checkpoint("orders");
  REQUIRE(cp);
  REQUIRE(*cp);
  CHECK((*cp)->position == 5);
  CHECK((*cp)->updated_us > 0);
  CHECK_FALSE(*store->get_model("orders/1"));
  CHECK(**store->get_model("orders/2") == "completed");
  auto all = store->list_checkpoints();
  REQUIRE(all);
  REQUIRE(all->size() == 1);
  CHECK((*all)[0].first == "orders");
}

TEST_CASE("read-only and secondary stores read beside a running writer", "[store][secondary]") {
  keel::temp_dir dir;
  auto writer = test::open_store(dir.path());
  test::append_range(*writer, 11, 1, 100, "s");
  auto secondary = test::open_store(dir.path(), open_mode::secondary);
  CHECK(secondary->last_position() == 100);
  test::append_range(*writer, 11, 101, 150, "s");
  REQUIRE_FALSE(secondary->refresh());
  CHECK(secondary->last_position() == 150);
  CHECK(*secondary->stream_version("s") == 150);
  auto refused = secondary->append("s", expected_version::any(), one(make_event(11, 999)));
  REQUIRE_FALSE(refused);
  CHECK(code_of(refused.error()) == errc::not_writable);
  auto ro = test::open_store(dir.path(), open_mode::read_only);
  CHECK(ro->last_position() == 150);

  // A second writer is kept out by the lock.
  options opts;
  opts.path = dir.path();
  auto second = event_store::open(opts);
  REQUIRE_FALSE(second);
  CHECK(code_of(second.error()) == errc::storage_failure);
}

TEST_CASE("opening a directory that holds no store is an error for readers", "[store]") {
  keel::temp_dir dir;
  options opts;
  opts.path = dir.sub("nothing");
  opts.mode = open_mode::secondary;
  auto store = event_store::open(opts);
  REQUIRE_FALSE(store);
  CHECK(code_of(store.error()) == errc::storage_failure);
}

TEST_CASE("verify finds nothing on a healthy store", "[store][verify]") {
  keel::temp_dir dir;
  auto store = test::open_store(dir.path(), open_mode::writer, durability::wal);
  test::append_range(*store, 12, 1, 1000, "s-", 13);
  REQUIRE_FALSE(store->flush());
  auto rep = verify(*store);
  REQUIRE(rep);
  CHECK(rep->findings.empty());
  CHECK(rep->events == 1000);
  CHECK(rep->streams == 13);
  CHECK(rep->index_entries == 1000);
  CHECK(rep->last_position == 1000);
}

TEST_CASE("a retry racing its unacknowledged first attempt never stores the events twice",
          "[store]") {
  keel::temp_dir dir;
  auto store = test::open_store(dir.path());
  constexpr std::uint64_t pairs = 200;
  std::mutex mtx;
  std::condition_variable cv;
  std::uint64_t done = 0;
  std::vector<caf::expected<append_result>> first(pairs, append_result{});
  std::vector<caf::expected<append_result>> retry(pairs, append_result{});
  for (std::uint64_t i = 0; i < pairs; ++i) {
    auto record = [&](caf::expected<append_result>& slot) {
      return [&](caf::expected<append_result> r) {
        std::lock_guard<std::mutex> guard{mtx};
        slot = std::move(r);
        ++done;
        cv.notify_one();
      };
    };
    // Both attempts are queued before either is acknowledged: they land in
    // one batch or in two.
    store->append_async("s-" + std::to_string(i), expected_version::no_stream(),
                        one(make_event(40, i)), record(first[i]));
    store->append_async("s-" + std::to_string(i), expected_version::no_stream(),
                        one(make_event(40, i)), record(retry[i]));
  }
  {
    std::unique_lock<std::mutex> guard{mtx};
    cv.wait(guard, [&] { return done == 2 * pairs; });
  }
  std::uint64_t refused = 0;
  for (std::uint64_t i = 0; i < pairs; ++i) {
    INFO("pair " << i);
    REQUIRE(first[i]);
    CHECK_FALSE(first[i]->duplicate);
    if (retry[i]) {
      CHECK(retry[i]->duplicate);
      CHECK(retry[i]->first_position == first[i]->first_position);
    } else {
      CHECK(code_of(retry[i].error()) == errc::duplicate_event_id);
      ++refused;
    }
    CHECK(*store->stream_version("s-" + std::to_string(i)) == 1);
  }
  CHECK(store->last_position() == pairs);
  // With both attempts queued together, most pairs share a batch: the
  // in-batch path ran.
  CHECK(refused > 0);
}

TEST_CASE("memtables and cached blocks stay within the store's memory budget",
          "[store][memory][alone]") {
  keel::temp_dir dir;
  storage::options opts;
  opts.path = dir.sub("store");
  opts.durable = storage::durability::wal;
  opts.memory_budget_bytes = 8u << 20;
  opts.stream_cache_entries = 5000;
  auto store = storage::event_store::open(opts);
  REQUIRE(store);
  auto& s = **store;
  // 120,000 events into 20,000 streams: ~50 MB of memtable inserts, which
  // the per-column-family write buffers alone (64 MiB for the global log)
  // would keep in memory.
  std::uint64_t peak_memtables = 0;
  std::uint64_t peak_total = 0;
  std::uint64_t peak_versions = 0;
  for (std::uint64_t b = 0; b < 1200; ++b) {
    std::vector<storage::new_event> batch;
    for (std::uint64_t i = 0; i < 100; ++i)
      batch.push_back(make_event(7, b * 100 + i, std::string(200, 'x')));
    auto r = s.append("order-" + std::to_string(b * 7919 % 20000), storage::expected_version::any(),
                      std::move(batch));
    REQUIRE(r);
    auto m = s.memory();
    peak_memtables = std::max(peak_memtables, m.memtables);
    peak_total = std::max(peak_total, m.memtables + m.block_cache);
    peak_versions = std::max(peak_versions, m.version_cache_entries);
    // Reads fill the block cache from the flushed files.
    if (b % 10 == 0)
      for (auto reader = s.read_stream("order-" + std::to_string(b * 31 % 20000), 1, 100);
           reader.next();)
        ;
  }
  auto m = s.memory();
  CHECK(m.budget == 8u << 20);
  CHECK(m.block_cache > 0);
  // The write buffer manager starts flushing at half the budget; memtables
  // being flushed still count until their files are written, and on a
  // loaded machine flushes lag (7 MB seen under the sanitizer build), but
  // memtables never take more than the whole budget.
  CHECK(peak_memtables <= 8u << 20);
  CHECK(peak_total <= (8u << 20) * 11 / 10);
  CHECK(peak_versions <= 5000);
  bool global_flushed = false;
  for (auto& f : s.live_files())
    global_flushed = global_flushed || f.column_family == "global";
  CHECK(global_flushed);
}

TEST_CASE("a memory budget below 4 MiB is refused", "[store][memory]") {
  keel::temp_dir dir;
  storage::options opts;
  opts.path = dir.sub("store");
  opts.memory_budget_bytes = 1u << 20;
  auto store = storage::event_store::open(opts);
  REQUIRE_FALSE(store);
  CHECK(describe(store.error()).find("at least 4 MiB") != std::string::npos);
}
