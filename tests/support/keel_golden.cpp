// keel-golden: writes the golden corpus (tests/golden/) from the samples:
// <type>.v<N>.bin (the payload encoded at schema N) and <type>.v<N>.json
// (how this build renders it), and record.v1.bin (one complete record).
// Run it only when adding an event type or a schema version; never rewrite
// existing files (the build must keep reading them).

#include <filesystem>
#include <fstream>
#include <iostream>

#include "keel/events/codec.hpp"
#include "keel/events/json.hpp"
#include "keel/events/record.hpp"
#include "samples.hpp"

int main(int argc, char** argv) {
  using namespace keel;
  if (argc != 2) {
    std::cerr << "usage: keel-golden DIR\n";
    return 2;
  }
  std::filesystem::path dir = argv[1];
  std::filesystem::create_directories(dir);
  int written = 0;
  for (const auto& info : events::event_types()) {
    auto ev = test::sample_event(info.index);
    for (std::uint16_t v = 1; v <= info.current_version; ++v) {
      auto base = dir / (std::string{info.name} + ".v" + std::to_string(v));
      auto bin = base.string() + ".bin";
      if (std::filesystem::exists(bin))
        continue; // the corpus only grows
      auto bytes = events::encode(ev, v);
      std::ofstream{bin, std::ios::binary} << bytes;
      auto decoded = events::decode(info.name, v, bytes);
      if (!decoded) {
        std::cerr << "keel-golden: " << info.name << " v" << v << " does not decode\n";
        return 1;
      }
      std::ofstream{base.string() + ".json"} << events::to_json(*decoded) << '\n';
      ++written;
    }
  }
  auto rec_path = dir / "record.v1.bin";
  if (!std::filesystem::exists(rec_path)) {
    events::record rec;
    rec.id = *events::event_id::parse("0190f3a4-5b6c-7d8e-9fa0-b1c2d3e4f506");
    rec.stream = "order-order-2026-0001";
    rec.version = 3;
    rec.position = 4711;
    rec.type = "order_payment_authorized";
    rec.schema_version = 1;
    rec.timestamp_us = 1795300000123456;
    rec.correlation_id = *events::event_id::parse("11111111222233334444555555555555");
    rec.causation_id = *events::event_id::parse("66666666777788889999aaaaaaaaaaaa");
    rec.payload = events::encode(test::sample_event(3));
    std::ofstream{rec_path, std::ios::binary} << events::encode_record(rec);
    ++written;
  }
  std::cout << "keel-golden: wrote " << written << " new file(s) to " << dir << '\n';
  return 0;
}
