// keel-bench store: durable single-event appends from concurrent writers.
//
// Writers are logical clients, as actors are: each has one append in flight
// and issues the next when the previous one is acknowledged. They run on a
// small pool of producer threads (one per core by default), so the figures
// measure the store, not 64 OS threads waking up.

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "bench.hpp"
#include "keel/events/codec.hpp"
#include "keel/events/error.hpp"
#include "keel/storage/event_store.hpp"

namespace keel::bench {

namespace {

struct producer {
  std::mutex mtx;
  std::condition_variable cv;
  std::vector<std::size_t> ready;
};

struct writer {
  std::uint64_t todo = 0;
  std::uint64_t outstanding = 0;
  std::vector<double> latencies_us;
  std::mt19937_64 rng;
};

/// Runs db_bench fillseq and returns its ops/s (0 on failure).
double run_db_bench(std::uint64_t count, std::uint64_t size, bool sync, std::string& cmd_out) {
  temp_dir dir{"keel-db-bench"};
  std::ostringstream cmd;
  cmd << "db_bench --benchmarks=fillseq --num=" << count << " --value_size=" << size
      << " --batch_size=1000 --sync=" << (sync ? 1 : 0) << " --disable_wal=0 --threads=1"
      << " --db=" << dir.path() << " 2>&1";
  cmd_out = cmd.str();
  auto pipe = ::popen(cmd_out.c_str(), "r");
  if (pipe == nullptr)
    return 0;
  std::array<char, 512> line{};
  double ops = 0;
  while (std::fgets(line.data(), line.size(), pipe) != nullptr) {
    std::string l = line.data();
    if (l.rfind("fillseq", 0) == 0) {
      // "fillseq      :       1.671 micros/op 598448 ops/sec 0.835 seconds ..."
      auto p = l.find("micros/op");
      if (p != std::string::npos)
        ops = std::strtod(l.c_str() + p + 9, nullptr);
    }
  }
  ::pclose(pipe);
  return ops;
}

} // namespace

int run_store(int argc, char** argv) {
  auto args = parse(argc, argv, 2,
                    {"--writers", "--count", "--size", "--durability", "--data", "--producers",
                     "--streams", "--seed", "--in-flight"},
                    {"--compare"});
  auto writers = std::max<std::uint64_t>(1, args.number("--writers", 64));
  auto count = std::max<std::uint64_t>(1, args.number("--count", 500'000));
  auto size = args.number("--size", 200);
  auto streams = std::max<std::uint64_t>(1, args.number("--streams", 10'000));
  auto seed = args.number("--seed", 42);
  auto in_flight = std::max<std::uint64_t>(1, args.number("--in-flight", 1));
  auto producers = std::max<std::uint64_t>(
    1, args.number("--producers", std::max(1u, std::thread::hardware_concurrency())));
  auto durability_name = args.text("--durability", "sync");
  if (durability_name != "sync" && durability_name != "wal") {
    std::cerr << "keel-bench: --durability must be sync or wal\n";
    return 2;
  }
  std::unique_ptr<temp_dir> tmp;
  std::string path = args.text("--data", "");
  if (path.empty()) {
    tmp = std::make_unique<temp_dir>("keel-bench-store");
    path = tmp->path();
  }

  storage::options opts;
  opts.path = path;
  opts.durable = durability_name == "sync" ? storage::durability::sync : storage::durability::wal;
  auto opened = storage::event_store::open(opts);
  if (!opened) {
    std::cerr << "keel-bench: " << describe(opened.error()) << '\n';
    return 2;
  }
  auto& store = **opened;

  // A payload of exactly `size` bytes: a real event type, padded.
  events::stock_adjusted proto{"bench", 1, ""};
  auto base = events::encode(events::event{proto}).size();
  proto.reason.assign(size > base ? size - base : 0, 'x');
  const auto payload = events::encode(events::event{proto});

  std::vector<writer> ws(writers);
  for (std::uint64_t i = 0; i < writers; ++i) {
    ws[i].todo = count / writers + (i < count % writers ? 1 : 0);
    ws[i].rng.seed(seed * 1000003 + i);
    ws[i].latencies_us.reserve(ws[i].todo);
  }
  std::vector<producer> ps(producers);
  std::mutex done_mtx;
  caf::error failure;

  auto issue = [&](std::size_t w) {
    auto& wr = ws[w];
    storage::new_event ev;
    ev.id = events::event_id::random();
    ev.type = events::stock_adjusted::type_name;
    ev.schema_version = events::stock_adjusted::schema_version;
    ev.timestamp_us = storage::now_us();
    ev.payload = payload;
    std::vector<storage::new_event> batch;
    batch.push_back(std::move(ev));
    auto stream = "bench-" + std::to_string(wr.rng() % streams);
    auto started = seconds_now();
    store.append_async(std::move(stream), storage::expected_version::any(), std::move(batch),
                       [&, w, started](caf::expected<storage::append_result> res) {
                         auto& self = ws[w];
                         self.latencies_us.push_back((seconds_now() - started) * 1e6);
                         if (!res) {
                           std::lock_guard<std::mutex> guard{done_mtx};
                           if (!failure)
                             failure = res.error();
                         }
                         auto& p = ps[w % ps.size()];
                         bool wake;
                         {
                           std::lock_guard<std::mutex> guard{p.mtx};
                           wake = p.ready.empty();
                           p.ready.push_back(w);
                         }
                         if (wake)
                           p.cv.notify_one();
                       });
  };

  auto start = seconds_now();
  std::vector<std::thread> threads;
  for (std::size_t p = 0; p < ps.size(); ++p) {
    threads.emplace_back([&, p] {
      // Each writer keeps up to `in_flight` appends outstanding; it is done
      // when it has nothing left to send and nothing outstanding.
      std::uint64_t active = 0;
      auto top_up = [&](std::size_t w) {
        auto& wr = ws[w];
        while (wr.todo > 0 && wr.outstanding < in_flight) {
          --wr.todo;
          ++wr.outstanding;
          issue(w);
        }
        if (wr.todo == 0 && wr.outstanding == 0)
          --active;
      };
      for (std::size_t w = p; w < ws.size(); w += ps.size())
        ++active;
      for (std::size_t w = p; w < ws.size(); w += ps.size())
        top_up(w);
      std::vector<std::size_t> ready;
      while (active > 0) {
        {
          std::unique_lock<std::mutex> guard{ps[p].mtx};
          ps[p].cv.wait(guard, [&] { return !ps[p].ready.empty(); });
          ready.swap(ps[p].ready);
        }
        for (auto w : ready) {
          --ws[w].outstanding;
          top_up(w);
        }
        ready.clear();
      }
    });
  }
  for (auto& t : threads)
    t.join();
  auto elapsed = seconds_now() - start;
  if (failure) {
    std::cerr << "keel-bench: an append failed: " << describe(failure) << '\n';
    return 1;
  }
  auto stats = store.stats();
  std::vector<double> lat;
  lat.reserve(count);
  for (auto& w : ws)
    lat.insert(lat.end(), w.latencies_us.begin(), w.latencies_us.end());
  nlohmann::json out;
  out["bench"] = "store";
  out["writers"] = writers;
  out["in_flight"] = in_flight;
  out["count"] = count;
  out["size"] = size;
  out["durability"] = durability_name;
  out["seconds"] = elapsed;
  out["events_per_s"] = static_cast<double>(count) / elapsed;
  out["p50_us"] = percentile(lat, 50);
  out["p99_us"] = percentile(lat, 99);
  out["p999_us"] = percentile(lat, 99.9);
  out["max_us"] = lat.empty() ? 0.0 : lat.back();
  out["batches"] = stats.batches;
  out["events_per_batch"] = stats.batches ? static_cast<double>(stats.events) / stats.batches : 0;
  std::printf("store: %llu single-event appends, %llu writers x %llu in flight, %llu-byte payloads, "
              "durability %s\n",
              static_cast<unsigned long long>(count), static_cast<unsigned long long>(writers),
              static_cast<unsigned long long>(in_flight),
              static_cast<unsigned long long>(size), durability_name.c_str());
  std::printf("  %.0f events/s in %.2f s; latency p50 %.0f us, p99 %.0f us, p99.9 %.0f us\n",
              out["events_per_s"].get<double>(), elapsed, out["p50_us"].get<double>(),
              out["p99_us"].get<double>(), out["p999_us"].get<double>());
  std::printf("  %llu write batches, %.1f events per batch (one WAL %s each)\n",
              static_cast<unsigned long long>(stats.batches),
              out["events_per_batch"].get<double>(),
              durability_name == "sync" ? "fsync" : "write");
  auto busy = [&](std::uint64_t ns) { return 100.0 * static_cast<double>(ns) / 1e9 / elapsed; };
  std::printf("  committer time: %.0f%% preparing, %.0f%% writing (WAL + fsync + memtables), "
              "%.0f%% acknowledging, %.0f%% waiting for appends\n",
              busy(stats.prepare_ns), busy(stats.write_ns), busy(stats.acknowledge_ns),
              std::max(0.0, 100.0 - busy(stats.prepare_ns) - busy(stats.write_ns)
                              - busy(stats.acknowledge_ns)));
  out["committer_prepare_pct"] = busy(stats.prepare_ns);
  out["committer_write_pct"] = busy(stats.write_ns);
  if (stats.batches > 0)
    out["write_us_per_batch"] = static_cast<double>(stats.write_ns) / 1e3 / stats.batches;
  opened->reset(); // close before db_bench competes for the disk
  if (args.flag("--compare")) {
    std::string cmd;
    auto ops = run_db_bench(count, size, durability_name == "sync", cmd);
    std::printf("  db_bench: %s\n  db_bench fillseq: %.0f ops/s\n", cmd.c_str(), ops);
    if (ops <= 0) {
      std::cerr << "keel-bench: db_bench did not report a figure (is rocksdb-tools installed?)\n";
      return 2;
    }
    out["db_bench_ops_per_s"] = ops;
    out["ratio"] = out["events_per_s"].get<double>() / ops;
    std::printf("  ratio keel / db_bench: %.3f\n", out["ratio"].get<double>());
  }
  std::fflush(stdout);
  std::cout << out.dump() << std::endl;
  return 0;
}

} // namespace keel::bench
