// keel-bench replay: how fast the global log and single streams read back,
// every record checksum-verified and its payload decoded.
//
// keel-bench sample: realistic saga traffic into a store (demo, tools).

#include <iostream>
#include <optional>
#include <random>

#include <nlohmann/json.hpp>

#include "bench.hpp"
#include "keel/events/error.hpp"
#include "traffic.hpp"

namespace keel::bench {

namespace {

std::unique_ptr<storage::event_store> open_store(const std::string& path, storage::open_mode mode,
                                                 storage::durability d) {
  storage::options opts;
  opts.path = path;
  opts.mode = mode;
  opts.durable = d;
  opts.create_if_missing = mode == storage::open_mode::writer;
  auto store = storage::event_store::open(opts);
  if (!store) {
    std::cerr << "keel-bench: " << describe(store.error()) << '\n';
    std::exit(2);
  }
  return std::move(*store);
}

/// Reads one stream completely, decoding every payload; reports a failure
/// on stderr and returns no value.
std::optional<std::uint64_t> replay_stream(const storage::event_store& store,
                                           const std::string& stream) {
  std::uint64_t n = 0;
  auto reader = store.read_stream(stream);
  while (reader.next()) {
    if (!reader.current().decode_payload()) {
      std::cerr << "keel-bench: stream " << stream << " does not decode\n";
      return std::nullopt;
    }
    ++n;
  }
  if (reader.error()) {
    std::cerr << "keel-bench: " << describe(reader.error()) << '\n';
    return std::nullopt;
  }
  return n;
}

} // namespace

int run_sample(int argc, char** argv) {
  auto args = parse(argc, argv, 2, {"--data", "--orders", "--seed", "--start-us"}, {});
  auto path = args.text("--data", "");
  if (path.empty()) {
    std::cerr << "keel-bench: sample needs --data DIR\n";
    return 2;
  }
  auto orders = args.number("--orders", 1000);
  auto seed = args.number("--seed", 7);
  auto store = open_store(path, storage::open_mode::writer, storage::durability::sync);
  auto before = store->last_position();
  auto t0 = seconds_now();
  // A fixed start gives the same store in every run (tool tests, docs).
  auto start_us = static_cast<std::int64_t>(args.number("--start-us", 0));
  auto written = write_traffic(*store, seed, orders, 4096, start_us);
  auto elapsed = seconds_now() - t0;
  if (!written) {
    std::cerr << "keel-bench: " << describe(written.error()) << '\n';
    return 1;
  }
  auto stats = store->stats();
  std::printf("sample: %llu orders, %llu events (positions %llu..%llu) in %.2f s, %llu batches\n",
              static_cast<unsigned long long>(orders), static_cast<unsigned long long>(*written),
              static_cast<unsigned long long>(before + 1),
              static_cast<unsigned long long>(store->last_position()), elapsed,
              static_cast<unsigned long long>(stats.batches));
  nlohmann::json out{{"bench", "sample"}, {"orders", orders}, {"events", *written},
                     {"seconds", elapsed}, {"events_per_s", *written / elapsed}};
  std::cout << out.dump() << std::endl;
  return 0;
}

int run_replay(int argc, char** argv) {
  auto args = parse(argc, argv, 2, {"--data", "--runs", "--streams"}, {});
  auto runs = std::max<std::uint64_t>(1, args.number("--runs", 3));
  auto stream_sample = std::max<std::uint64_t>(1, args.number("--streams", 20'000));
  std::unique_ptr<temp_dir> tmp;
  auto path = args.text("--data", "");
  if (path.empty()) {
    tmp = std::make_unique<temp_dir>("keel-bench-replay");
    path = tmp->path();
    std::printf("replay: building a store of ~2,000,000 events of saga traffic in %s\n",
                path.c_str());
    auto writer = open_store(path, storage::open_mode::writer, storage::durability::wal);
    auto t0 = seconds_now();
    std::uint64_t orders = 0;
    std::uint64_t seed = 11;
    while (writer->last_position() < 2'000'000) {
      // About 12 events per order (saga, stock, payment and shipment streams).
      auto n = std::max<std::uint64_t>(1000, (2'000'000 - writer->last_position()) / 12);
      auto written = write_traffic(*writer, seed++, n);
      if (!written) {
        std::cerr << "keel-bench: " << describe(written.error()) << '\n';
        return 1;
      }
      orders += n;
    }
    if (auto err = writer->flush()) {
      std::cerr << "keel-bench: " << describe(err) << '\n';
      return 1;
    }
    std::printf("  %llu events of %llu orders written in %.1f s\n",
                static_cast<unsigned long long>(writer->last_position()),
                static_cast<unsigned long long>(orders), seconds_now() - t0);
  }
  auto store = open_store(path, storage::open_mode::read_only, storage::durability::sync);

  // Global log: every record verified and decoded.
  std::vector<double> global_rates;
  std::uint64_t events = 0;
  for (std::uint64_t r = 0; r < runs; ++r) {
    auto t0 = seconds_now();
    auto reader = store->read_all(1);
    std::uint64_t n = 0;
    while (reader.next()) {
      auto ev = reader.current().decode_payload();
      if (!ev) {
        std::cerr << "keel-bench: position " << reader.current().position << ": "
                  << describe(ev.error()) << '\n';
        return 1;
      }
      ++n;
    }
    if (reader.error()) {
      std::cerr << "keel-bench: " << describe(reader.error()) << '\n';
      return 1;
    }
    auto elapsed = seconds_now() - t0;
    events = n;
    global_rates.push_back(static_cast<double>(n) / elapsed);
    std::printf("  global run %llu: %llu events in %.3f s = %.0f events/s\n",
                static_cast<unsigned long long>(r + 1), static_cast<unsigned long long>(n),
                elapsed, global_rates.back());
  }

  // Single streams: a random sample of streams, each read completely (most
  // are short, as order streams are), and the longest stream (the shape of an
  // actor's recovery without a snapshot).
  std::vector<std::string> streams;
  std::string longest;
  std::uint64_t longest_version = 0;
  {
    auto all = store->list_streams({}, ~std::size_t{0});
    if (!all) {
      std::cerr << "keel-bench: " << describe(all.error()) << '\n';
      return 1;
    }
    std::mt19937_64 rng{99};
    for (auto& s : *all) {
      if (s.last_version > longest_version) {
        longest_version = s.last_version;
        longest = s.stream;
      }
      streams.push_back(std::move(s.stream));
    }
    std::shuffle(streams.begin(), streams.end(), rng);
    if (streams.size() > stream_sample)
      streams.resize(stream_sample);
  }
  std::vector<double> stream_rates;
  std::uint64_t stream_events = 0;
  for (std::uint64_t r = 0; r < runs; ++r) {
    auto t0 = seconds_now();
    std::uint64_t n = 0;
    for (const auto& s : streams) {
      auto count = replay_stream(*store, s);
      if (!count)
        return 1;
      n += *count;
    }
    auto elapsed = seconds_now() - t0;
    stream_events = n;
    stream_rates.push_back(static_cast<double>(n) / elapsed);
    std::printf("  stream run %llu: %zu streams, %llu events in %.3f s = %.0f events/s\n",
                static_cast<unsigned long long>(r + 1), streams.size(),
                static_cast<unsigned long long>(n), elapsed, stream_rates.back());
  }
  std::vector<double> long_rates;
  for (std::uint64_t r = 0; r < runs && !longest.empty(); ++r) {
    auto t0 = seconds_now();
    auto count = replay_stream(*store, longest);
    if (!count)
      return 1;
    auto n = *count;
    auto elapsed = seconds_now() - t0;
    long_rates.push_back(static_cast<double>(n) / elapsed);
    std::printf("  longest stream run %llu: %s, %llu events in %.2f ms = %.0f events/s\n",
                static_cast<unsigned long long>(r + 1), longest.c_str(),
                static_cast<unsigned long long>(n), elapsed * 1e3, long_rates.back());
  }
  nlohmann::json out{{"bench", "replay"},
                     {"events", events},
                     {"runs", runs},
                     {"global_events_per_s", median(global_rates)},
                     {"streams_read", streams.size()},
                     {"stream_events", stream_events},
                     {"stream_events_per_s", median(stream_rates)},
                     {"longest_stream", longest},
                     {"longest_stream_events", longest_version},
                     {"longest_stream_events_per_s", median(long_rates)}};
  std::printf("replay: global %.0f events/s, streams %.0f events/s (medians of %llu runs)\n",
              out["global_events_per_s"].get<double>(), out["stream_events_per_s"].get<double>(),
              static_cast<unsigned long long>(runs));
  std::cout << out.dump() << std::endl;
  return 0;
}

} // namespace keel::bench
