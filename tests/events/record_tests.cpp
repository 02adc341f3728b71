#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "keel/events/codec.hpp"
#include "keel/events/crc32c.hpp"
#include "keel/events/error.hpp"
#include "keel/events/json.hpp"
#include "keel/events/record.hpp"
#include "samples.hpp"

using namespace keel;
using namespace keel::events;

namespace {

record sample_record() {
  record rec;
  rec.id = event_id::from_seed(1, 2);
  rec.stream = "order-42";
  rec.version = 7;
  rec.position = 123456789;
  rec.type = "order_completed";
  rec.schema_version = 1;
  rec.timestamp_us = 1'795'300'000'000'000;
  rec.correlation_id = event_id::from_seed(1, 3);
  rec.causation_id = event_id::from_seed(1, 4);
  rec.payload = encode(event{order_completed{"42"}});
  return rec;
}

std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace

TEST_CASE("CRC32C matches the standard check value", "[record]") {
  CHECK(crc32c("123456789", 9) == 0xe3069283u);
  CHECK(crc32c("", 0) == 0u);
  // Incremental computation equals one pass.
  CHECK(crc32c("6789", 4, crc32c("12345", 5)) == 0xe3069283u);
}

TEST_CASE("records decode to what was encoded", "[record]") {
  auto rec = sample_record();
  auto bytes = encode_record(rec);
  CHECK(bytes.size() == record_header_size + rec.type.size() + rec.stream.size()
                          + rec.payload.size());
  auto view = decode_record(bytes);
  REQUIRE(view);
  CHECK(view->id == rec.id);
  CHECK(view->stream == rec.stream);
  CHECK(view->version == 7);
  CHECK(view->position == 123456789);
  CHECK(view->type == rec.type);
  CHECK(view->timestamp_us == rec.timestamp_us);
  CHECK(view->correlation_id == rec.correlation_id);
  CHECK(view->causation_id == rec.causation_id);
  CHECK(view->payload == rec.payload);
  auto ev = view->decode_payload();
  REQUIRE(ev);
  CHECK(std::get<order_completed>(*ev).order_id == "42");
}

TEST_CASE("sealing sets version and position and keeps the checksum valid", "[record]") {
  auto rec = sample_record();
  rec.version = 0;
  rec.position = 0;
  auto bytes = encode_record(rec);
  seal_record(bytes, 9, 77);
  auto view = decode_record(bytes);
  REQUIRE(view);
  CHECK(view->version == 9);
  CHECK(view->position == 77);
}

TEST_CASE("every single flipped byte of a record is detected", "[record]") {
  auto bytes = encode_record(sample_record());
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    for (unsigned char mask : {0x01, 0x80, 0xff}) {
      auto damaged = bytes;
      damaged[i] = static_cast<char>(damaged[i] ^ mask);
      auto view = decode_record(damaged);
      INFO("byte " << i << " mask " << int{mask});
      REQUIRE_FALSE(view);
      CHECK(code_of(view.error()) == errc::corrupt_record);
    }
  }
}

TEST_CASE("short, long and inconsistent records are corrupt, never read out of bounds",
          "[record]") {
  auto bytes = encode_record(sample_record());
  for (std::size_t cut : {std::size_t{0}, std::size_t{10}, record_header_size - 1,
                          bytes.size() - 1}) {
    auto view = decode_record(std::string_view{bytes}.substr(0, cut));
    REQUIRE_FALSE(view);
    CHECK(code_of(view.error()) == errc::corrupt_record);
  }
  auto view = decode_record(bytes + "extra");
  REQUIRE_FALSE(view);
}

TEST_CASE("ids render and parse as 32 hex digits", "[ids]") {
  auto id = event_id::random();
  CHECK(id.valid());
  auto text = to_string(id);
  CHECK(text.size() == 32);
  auto parsed = event_id::parse(text);
  REQUIRE(parsed);
  CHECK(*parsed == id);
  CHECK(event_id::parse("0190f3a4-5b6c-7d8e-9fa0-b1c2d3e4f506"));
  CHECK_FALSE(event_id::parse("xyz"));
  CHECK_FALSE(event_id::parse(text + "00"));
  CHECK_FALSE(event_id{}.valid());
  // Time-ordered: ids made later never sort before ids made earlier by more
  // than the millisecond they share.
  auto a = event_id::random();
  auto b = event_id::random();
  CHECK(std::memcmp(a.bytes.data(), b.bytes.data(), 6) <= 0);
}

TEST_CASE("stream ids are printable ASCII without spaces, 1..200 bytes", "[ids]") {
  CHECK(valid_stream_id("order-1"));
  CHECK(valid_stream_id("$system-breaker-payment.primary"));
  CHECK_FALSE(valid_stream_id(""));
  CHECK_FALSE(valid_stream_id("a b"));
  CHECK_FALSE(valid_stream_id(std::string{"a\0b", 3}));
  CHECK_FALSE(valid_stream_id(std::string(201, 'x')));
  CHECK(valid_stream_id(std::string(200, 'x')));
}

TEST_CASE("the golden corpus holds every type and version and still decodes", "[golden]") {
  const std::string dir = KEEL_GOLDEN_DIR;
  for (const auto& info : event_types()) {
    for (std::uint16_t v = 1; v <= info.current_version; ++v) {
      auto base = dir + "/" + std::string{info.name} + ".v" + std::to_string(v);
      INFO(base);
      REQUIRE(std::filesystem::exists(base + ".bin"));
      auto bytes = read_file(base + ".bin");
      auto decoded = decode(info.name, v, bytes);
      REQUIRE(decoded);
      CHECK(decoded->index() == info.index);
      auto expected_json = read_file(base + ".json");
      CHECK(to_json(*decoded) + "\n" == expected_json);
      // Re-encoding at the same schema gives the same bytes: the format did
      // not drift.
      CHECK(encode(*decoded, v) == bytes);
    }
  }
}

TEST_CASE("the golden record still decodes field by field", "[golden]") {
  auto bytes = read_file(std::string{KEEL_GOLDEN_DIR} + "/record.v1.bin");
  auto view = decode_record(bytes);
  REQUIRE(view);
  CHECK(to_string(view->id) == "0190f3a45b6c7d8e9fa0b1c2d3e4f506");
  CHECK(view->stream == "order-order-2026-0001");
  CHECK(view->version == 3);
  CHECK(view->position == 4711);
  CHECK(view->type == "order_payment_authorized");
  CHECK(view->timestamp_us == 1795300000123456);
  CHECK(to_string(view->correlation_id) == "11111111222233334444555555555555");
  auto ev = view->decode_payload();
  REQUIRE(ev);
  CHECK(std::get<order_payment_authorized>(*ev).amount_cents == 53998);
}

TEST_CASE("records render as JSON with metadata and data", "[json]") {
  auto json = to_json_value(sample_record());
  CHECK(json["stream"] == "order-42");
  CHECK(json["position"] == 123456789);
  CHECK(json["data"]["order_id"] == "42");
  CHECK(json["time"] == "2026-11-21T22:26:40.000000Z");
  auto bad = sample_record();
  bad.payload = "\x01";
  auto bad_json = to_json_value(bad);
  CHECK(bad_json.contains("error"));
  CHECK_FALSE(bad_json.contains("data"));
}
