// keel-bench: benchmarks that print figures. The LAST line of every run is
// one JSON object with the figures, for scripts.

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "bench.hpp"
#include "http_client.hpp"

namespace keel::bench {

namespace {

[[noreturn]] void fail(const std::string& msg) {
  std::cerr << "keel-bench: " << msg << '\n';
  std::exit(2);
}

} // namespace

std::uint64_t arguments::number(const std::string& name, std::uint64_t fallback) const {
  auto i = values.find(name);
  if (i == values.end())
    return fallback;
  const auto& t = i->second;
  if (t.empty() || t.size() > 19 || t.find_first_not_of("0123456789") != std::string::npos)
    fail(name + " must be a non-negative integer, got '" + t + "'");
  return std::stoull(t);
}

std::string arguments::text(const std::string& name, const std::string& fallback) const {
  auto i = values.find(name);
  return i == values.end() ? fallback : i->second;
}

bool arguments::flag(const std::string& name) const {
  return flags.count(name) > 0;
}

arguments parse(int argc, char** argv, int first, const std::vector<std::string>& options,
                const std::vector<std::string>& flags) {
  arguments a;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (std::find(flags.begin(), flags.end(), arg) != flags.end()) {
      a.flags[arg] = true;
    } else if (std::find(options.begin(), options.end(), arg) != options.end()) {
      if (i + 1 >= argc)
        fail(arg + " needs a value");
      a.values[arg] = argv[++i];
    } else {
      fail("unknown argument '" + arg + "'");
    }
  }
  return a;
}

double sorted_percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty())
    return 0;
  auto rank = static_cast<std::size_t>(p / 100.0 * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(rank, sorted.size() - 1)];
}

double percentile(std::vector<double>& values, double p) {
  std::sort(values.begin(), values.end());
  return sorted_percentile(values, p);
}

double median(std::vector<double>& values) {
  return percentile(values, 50);
}

temp_dir::temp_dir(const std::string& prefix) {
  auto base = std::filesystem::temp_directory_path() / (prefix + "-XXXXXX");
  std::string tmpl = base.string();
  if (::mkdtemp(tmpl.data()) == nullptr)
    fail("cannot create a temporary directory");
  path_ = tmpl;
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

double seconds_now() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

} // namespace keel::bench

int main(int argc, char** argv) {
  using namespace keel::bench;
  const char* usage = R"(usage: keel-bench <benchmark> [options]

  store  --writers W --count N --size BYTES --durability sync|wal [--data DIR] [--compare]
         N single-event appends from W concurrent writers to random streams among
         10,000; --compare also runs db_bench fillseq with the same value size and
         durability and reports the ratio
  replay [--data DIR] [--runs R]
         global-log and single-stream replay, every event checksum-verified and
         decoded; without DIR it first builds a 2,000,000-event store
  sample --data DIR [--orders N] [--seed S] [--start-us T]
         writes N orders of realistic saga traffic into DIR (demo, tools); orders are
         2 ms apart, the last about now, or from T (microseconds since the epoch):
         with a fixed T and seed the store is the same in every run
  sagas  --orders N --concurrency C --skus S [--faults none|payment-outage] [--lines L]
         [--rate R] [--seed X] [--data DIR] [--timeout SECONDS]
         order sagas end to end through the pipeline on a durable store: C orders
         in flight (closed loop), or R orders/s with at most C in flight (open loop);
         payment-outage fails both gateways for 3 s after 20% of the orders
  projections [--events N] [--data DIR] [--runs R] [--lag-orders N] [--saga-rate R] [--no-lag]
         writes N events of order traffic (or reuses the events in DIR), measures the
         projections' first build and R full rebuilds of every read model, then the
         read models' lag behind the saga pipeline running at half its maximum rate
         (or R/s) on the same store
  demo   [--data DIR] [--seed X]
         a short Black Friday through the pipeline: normal load, a spike, a payment
         outage while orders keep coming, the recovery, and the invariant audit
  http   --orders N --connections C [--url http://HOST:PORT --jwt-secret-file FILE] [--skus K]
         [--data DIR] [--seed X]
         N orders through a keel-node's HTTP API from C keep-alive connections, until
         every saga ended; without --url it runs its own keel-node (fsync on, embedded
         Kafka, store in DIR or a temporary directory) and stops it with SIGTERM
  demo-http --url http://HOST:PORT --jwt-secret-file FILE
         the Black Friday of `./keel demo` against a running keel-node (started with
         --breaker-wait-ms 3000 --payment-retry-ms 500): normal load, a 50x spike,
         slow payments that open the gateway breakers, the recovery, and a report
)";
  if (argc < 2) {
    std::cerr << usage;
    return 2;
  }
  std::string what = argv[1];
  if (what == "store")
    return run_store(argc, argv);
  if (what == "replay")
    return run_replay(argc, argv);
  if (what == "sample")
    return run_sample(argc, argv);
  if (what == "sagas")
    return run_sagas(argc, argv);
  if (what == "demo")
    return run_demo(argc, argv);
  if (what == "projections")
    return run_projections(argc, argv);
  if (what == "http")
    return run_http(argc, argv);
  if (what == "demo-http")
    return run_demo_http(argc, argv);
  if (what == "-h" || what == "--help") {
    std::cout << usage;
    return 0;
  }
  std::cerr << "keel-bench: unknown benchmark '" << what << "'\n" << usage;
  return 2;
}
