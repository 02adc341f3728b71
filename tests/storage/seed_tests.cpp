// Seeding a standby from a checkpoint of its primary's store: the files a
// primary prepares and hands out, and the swap a standby makes before its
// store opens, including after a crash in the middle of it.

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "keel/events/error.hpp"
#include "keel/storage/seed.hpp"
#include "store_support.hpp"

using namespace keel;
using namespace keel::storage;
namespace fs = std::filesystem;

namespace {

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out{path, std::ios::trunc};
  out << text;
}

std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  return {std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
}

/// Copies checkpoint `seed` into the incoming directory of `data` as a
/// standby does: piece by piece through read_seed.
void fetch(const std::string& primary_data, const seed_files& seed, const std::string& data) {
  auto dir = incoming_seed_dir(data);
  fs::create_directories(dir);
  for (std::size_t i = 0; i < seed.files.size(); ++i) {
    auto path = dir + "/" + seed.files[i];
    REQUIRE_FALSE(append_to(path, ""));
    for (std::uint64_t at = 0; at < seed.sizes[i];) {
      auto piece = read_seed(primary_data, seed.id, seed.files[i], at, 4096);
      REQUIRE(piece);
      REQUIRE(!piece->empty());
      REQUIRE_FALSE(append_to(path, *piece));
      at += piece->size();
    }
  }
}

} // namespace

TEST_CASE("a checkpoint handed out piece by piece opens as a store with the primary's log",
          "[replication]") {
  temp_dir dir;
  auto primary = dir.sub("p");
  seed_files seed;
  {
    auto store = test::open_store(primary);
    test::append_range(*store, 7, 1, 300, "order-s", 13);
    auto prepared = prepare_seed(*store, primary, 5);
    INFO((prepared ? std::string{} : describe(prepared.error())));
    REQUIRE(prepared);
    seed = *prepared;
    test::append_range(*store, 7, 301, 310, "order-s", 13); // after the checkpoint
  }
  CHECK(seed.position == 300);
  CHECK(seed.id == "5-300");
  CHECK(!seed.files.empty());
  CHECK(seed.files.size() == seed.sizes.size());
  // Names outside the checkpoint are refused; a replaced checkpoint is gone.
  CHECK(code_of(read_seed(primary, seed.id, "../p/CURRENT", 0, 10).error()) == errc::invalid_argument);
  CHECK(code_of(read_seed(primary, "..", "CURRENT", 0, 10).error()) == errc::invalid_argument);
  CHECK(code_of(read_seed(primary, seed.id, "NO_SUCH_FILE", 0, 10).error()) == errc::invalid_argument);
  CHECK(code_of(read_seed(primary, "5-1", "CURRENT", 0, 10).error()) == errc::not_found);

  auto standby = dir.sub("s");
  test::append_range(*test::open_store(standby), 9, 1, 5, "order-x"); // what it had
  fetch(primary, seed, standby);
  REQUIRE_FALSE(finish_seed(standby, "checkpoint 5-300"));
  auto adopted = adopt_seed(standby);
  REQUIRE(adopted);
  CHECK(*adopted == "checkpoint 5-300");
  CHECK(!fs::exists(incoming_seed_dir(standby)));
  CHECK(!fs::exists(standby + ".replaced"));
  CHECK(!fs::exists(standby + "/KEEL_SEED"));
  auto store = test::open_store(standby);
  CHECK(store->last_position() == 300);
  auto e = store->read_event(300);
  REQUIRE(e);
  CHECK(e->id == events::event_id::from_seed(7, 300));
  drop_seeds(primary);
  CHECK(!fs::exists(primary + ".seed-out"));
}

TEST_CASE("a standby's seed swap: nothing without a complete seed, and a crash at any point of "
          "the swap is finished at the next start",
          "[replication]") {
  temp_dir dir;
  auto data = dir.sub("d");
  auto seed = incoming_seed_dir(data);
  fs::create_directories(data);
  write_file(data + "/old", "old");

  SECTION("no seed: nothing changes") {
    auto r = adopt_seed(data);
    REQUIRE(r);
    CHECK(r->empty());
    CHECK(read_file(data + "/old") == "old");
  }
  SECTION("an incomplete seed is dropped, the data stays") {
    fs::create_directories(seed);
    write_file(seed + "/new", "new");
    auto r = adopt_seed(data);
    REQUIRE(r);
    CHECK(r->empty());
    CHECK(!fs::exists(seed));
    CHECK(read_file(data + "/old") == "old");
  }
  SECTION("a crash after the data was moved aside") {
    fs::create_directories(seed);
    write_file(seed + "/new", "new");
    REQUIRE_FALSE(finish_seed(data, "s1"));
    fs::rename(data, data + ".replaced");
    auto r = adopt_seed(data);
    REQUIRE(r);
    CHECK(*r == "s1");
    CHECK(read_file(data + "/new") == "new");
    CHECK(!fs::exists(data + "/old"));
    CHECK(!fs::exists(data + ".replaced"));
  }
  SECTION("a crash after the seed was moved in") {
    fs::create_directories(seed);
    write_file(seed + "/new", "new");
    REQUIRE_FALSE(finish_seed(data, "s2"));
    fs::rename(data, data + ".replaced");
    fs::rename(seed, data);
    auto r = adopt_seed(data);
    REQUIRE(r);
    CHECK(r->empty()); // adopted already
    CHECK(read_file(data + "/new") == "new");
    CHECK(!fs::exists(data + "/KEEL_SEED"));
    CHECK(!fs::exists(data + ".replaced"));
  }
}
