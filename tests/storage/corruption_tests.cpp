#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <fstream>

#include "keel/storage/verify.hpp"
#include "damage.hpp"
#include "store_support.hpp"

using namespace keel;
using namespace keel::storage;
using keel::test::make_event;
using keel::test::one;

namespace {

void fill(const std::string& path, std::uint64_t n) {
  auto store = test::open_store(path, open_mode::writer, durability::wal);
  test::append_range(*store, 21, 1, n, "s-", 5, std::string(100, 'p'));
  REQUIRE_FALSE(store->flush());
}

} // namespace

TEST_CASE("a record damaged behind the store's back is reported with its position",
          "[store][corruption]") {
  keel::temp_dir dir;
  fill(dir.path(), 200);
  test::damage_record(dir.path(), 77);
  auto store = test::open_store(dir.path());

  auto one_event = store->read_event(77);
  REQUIRE_FALSE(one_event);
  CHECK(code_of(one_event.error()) == errc::corrupt_record);
  CHECK_THAT(describe(one_event.error()), Catch::Contains("position 77"));
  CHECK_THAT(describe(one_event.error()), Catch::Contains("checksum"));

  // A scan stops at it (never skips it, never decodes garbage).
  auto all = store->read_all();
  std::uint64_t last = 0;
  while (all.next())
    last = all.current().position;
  CHECK(last == 76);
  REQUIRE(all.error());
  CHECK_THAT(describe(all.error()), Catch::Contains("position 77"));

  // So does the stream that holds it (77 % 5 == 2).
  auto stream = store->read_stream("s-2");
  while (stream.next()) {
  }
  REQUIRE(stream.error());
  CHECK_THAT(describe(stream.error()), Catch::Contains("position 77"));

  auto rep = verify(*store);
  REQUIRE(rep);
  REQUIRE(rep->findings.size() == 1);
  CHECK(rep->findings[0].kind == "corrupt_record");
  CHECK(rep->findings[0].position == 77);
  CHECK(rep->events == 200);
}

TEST_CASE("a subscription delivers every record before a damaged one, then reports it",
          "[store][corruption][subscribe]") {
  keel::temp_dir dir;
  fill(dir.path(), 200);
  test::damage_record(dir.path(), 77);
  auto store = test::open_store(dir.path());
  std::mutex mtx;
  std::condition_variable cv;
  std::vector<std::uint64_t> seen;
  std::vector<std::string> errors;
  subscription::options opts;
  opts.max_batch = 50; // 77 falls inside the second batch: 51..76 still arrive
  opts.on_error = [&](const caf::error& err) {
    std::lock_guard<std::mutex> guard{mtx};
    errors.push_back(describe(err));
    cv.notify_all();
  };
  auto sub = store->subscribe(
    1,
    [&](const std::vector<events::record_view>& batch) {
      std::lock_guard<std::mutex> guard{mtx};
      for (auto& rec : batch)
        seen.push_back(rec.position);
      return true;
    },
    opts);
  {
    std::unique_lock<std::mutex> guard{mtx};
    REQUIRE(cv.wait_for(guard, std::chrono::seconds(10), [&] { return !errors.empty(); }));
  }
  sub->stop();
  REQUIRE(seen.size() == 76);
  CHECK(seen.front() == 1);
  CHECK(seen.back() == 76);
  REQUIRE(errors.size() == 1);
  CHECK_THAT(errors[0], Catch::Contains("position 77"));
  CHECK(sub->next_position() == 77);
  CHECK_FALSE(sub->running());
  CHECK(code_of(sub->error()) == errc::corrupt_record);
}

TEST_CASE("a flipped byte inside an SST file is reported, and verify keeps going",
          "[store][corruption]") {
  keel::temp_dir dir;
  fill(dir.path(), 3000);
  std::string sst;
  {
    auto store = test::open_store(dir.path(), open_mode::read_only);
    for (const auto& f : store->live_files())
      if (f.column_family == "global")
        sst = f.path;
  }
  REQUIRE_FALSE(sst.empty());
  auto size = std::filesystem::file_size(sst);
  REQUIRE(size > 10'000);
  {
    // Data blocks come first in an SST file; flip one byte in the middle of
    // the data area.
    std::fstream f{sst, std::ios::in | std::ios::out | std::ios::binary};
    auto offset = static_cast<std::streamoff>(size / 3);
    f.seekg(offset);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5a);
    f.seekp(offset);
    f.write(&c, 1);
  }
  auto store = test::open_store(dir.path());
  auto all = store->read_all();
  std::uint64_t good = 0;
  while (all.next())
    ++good;
  REQUIRE(all.error());
  CHECK(code_of(all.error()) == errc::corrupt_record);
  CHECK_THAT(describe(all.error()), Catch::Contains("position " + std::to_string(good + 1)));

  auto rep = verify(*store);
  REQUIRE(rep);
  REQUIRE_FALSE(rep->findings.empty());
  std::uint64_t unreadable = 0;
  for (const auto& f : rep->findings) {
    // A damaged record (its own checksum fails), or records hidden by a
    // block that does not decompress.
    CHECK((f.kind == "unreadable" || f.kind == "corrupt_record"));
    CHECK(f.position > good);
    if (f.kind == "unreadable")
      ++unreadable;
  }
  CHECK(rep->findings.front().position == good + 1);
  // Every event is accounted for: read, or named as unreadable.
  CHECK(rep->events + unreadable == 3000);
  CHECK(rep->last_position == 3000);
}
