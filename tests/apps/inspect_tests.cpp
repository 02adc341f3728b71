// keel-inspect as users run it: a real process on a real store.

#include <sys/wait.h>

#include <array>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "damage.hpp"
#include "store_support.hpp"

using namespace keel;
using namespace keel::storage;

namespace {

struct result {
  int code;
  std::string out;
};

result inspect(const std::string& args) {
  auto cmd = std::string{KEEL_INSPECT} + " " + args + " 2>&1";
  auto pipe = ::popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  result r;
  std::array<char, 4096> buf{};
  std::size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0)
    r.out.append(buf.data(), n);
  auto status = ::pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

void fill(event_store& store, std::uint64_t n, std::uint64_t seed = 31) {
  test::append_range(store, seed, 1, n, "order-", 4);
}

} // namespace

TEST_CASE("keel-inspect verify exits 0 on a healthy store and 1 naming a corrupt record",
          "[inspect]") {
  test::temp_dir dir;
  {
    auto store = test::open_store(dir.path());
    fill(*store, 40);
  }
  auto healthy = inspect("verify --data " + dir.path());
  INFO(healthy.out);
  CHECK(healthy.code == 0);
  CHECK_THAT(healthy.out, Catch::Contains("40 events in 4 streams, last position 40: healthy"));

  test::damage_record(dir.path(), 13);
  auto damaged = inspect("verify --data " + dir.path());
  INFO(damaged.out);
  CHECK(damaged.code == 1);
  CHECK_THAT(damaged.out, Catch::Contains("corrupt_record"));
  CHECK_THAT(damaged.out, Catch::Contains("13"));
  CHECK_THAT(damaged.out, Catch::Contains("1 finding(s)"));

  auto json = inspect("verify --json --data " + dir.path());
  CHECK(json.code == 1);
  auto first = nlohmann::json::parse(json.out.substr(0, json.out.find('\n')));
  CHECK(first["kind"] == "corrupt_record");
  CHECK(first["position"] == 13);

  // Reading through the damage stops there, with exit code 1.
  auto tail = inspect("tail --data " + dir.path());
  CHECK(tail.code == 1);
  CHECK_THAT(tail.out, Catch::Contains("position 13"));
}

TEST_CASE("keel-inspect lists, reads and tails beside a running writer", "[inspect]") {
  test::temp_dir dir;
  auto store = test::open_store(dir.path());
  fill(*store, 20);

  auto streams = inspect("streams --data " + dir.path());
  INFO(streams.out);
  CHECK(streams.code == 0);
  CHECK_THAT(streams.out, Catch::Contains("STREAM"));
  CHECK_THAT(streams.out, Catch::Contains("order-1  5"));

  auto read = inspect("read order-2 --from 2 --limit 2 --data " + dir.path());
  INFO(read.out);
  CHECK(read.code == 0);
  CHECK_THAT(read.out, Catch::Contains("order-2@2"));
  CHECK_THAT(read.out, Catch::Contains("order-2@3"));
  CHECK_THAT(read.out, !Catch::Contains("order-2@4"));

  // New appends by the running writer are visible to the next invocation.
  fill(*store, 5, 32);
  auto tail = inspect("tail --json --from 24 --data " + dir.path());
  INFO(tail.out);
  CHECK(tail.code == 0);
  std::vector<nlohmann::json> lines;
  std::size_t start = 0;
  while (start < tail.out.size()) {
    auto end = tail.out.find('\n', start);
    lines.push_back(nlohmann::json::parse(tail.out.substr(start, end - start)));
    start = end + 1;
  }
  REQUIRE(lines.size() == 2);
  CHECK(lines[0]["position"] == 24);
  CHECK(lines[1]["position"] == 25);
  CHECK(lines[1]["type"] == "order_rejected");
  CHECK(lines[1]["data"]["reason"] == "test");
}

TEST_CASE("keel-inspect answers usage and I/O errors with exit code 2", "[inspect]") {
  test::temp_dir dir;
  CHECK(inspect("").code == 2);
  CHECK(inspect("verify").code == 2);
  CHECK(inspect("frobnicate --data " + dir.path()).code == 2);
  CHECK(inspect("tail --from x --data " + dir.path()).code == 2);
  CHECK(inspect("tail --bogus --data " + dir.path()).code == 2);
  auto missing = inspect("verify --data " + dir.sub("nope"));
  CHECK(missing.code == 2);
  CHECK_THAT(missing.out, Catch::Contains("no Keel store"));
  CHECK(inspect("--help").code == 0);
}
