// keel-crash-writer: appends durably from several threads until killed,
// printing one line per acknowledged append:
//   ack <stream> <first version> <first position> <count> <first event id index>
// Used by the crash tests, which SIGKILL it at random moments.

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "keel/events/error.hpp"
#include "keel/storage/event_store.hpp"

int main(int argc, char** argv) {
  using namespace keel;
  if (argc != 4) {
    std::fprintf(stderr, "usage: keel-crash-writer DIR SEED RUN\n");
    return 2;
  }
  storage::options opts;
  opts.path = argv[1];
  auto seed = std::stoull(argv[2]);
  auto run = std::stoull(argv[3]);
  auto store = storage::event_store::open(opts);
  if (!store) {
    std::fprintf(stderr, "keel-crash-writer: %s\n", describe(store.error()).c_str());
    return 2;
  }
  std::vector<std::thread> threads;
  for (std::uint64_t t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (std::uint64_t i = 0;; ++i) {
        // Ids unique across runs on the same directory.
        auto base = (run * 16 + t) * 100'000'000 + i * 4;
        auto count = 1 + i % 3;
        std::vector<storage::new_event> evs;
        for (std::uint64_t k = 0; k < count; ++k)
          evs.push_back(storage::new_event::from(
            events::event{events::order_rejected{std::to_string(base + k), std::string(64, 'r')}},
            events::event_id::from_seed(seed, base + k), 1'700'000'000'000'000));
        auto stream = "crash-" + std::to_string(t) + "-" + std::to_string(i % 5);
        auto r = (*store)->append(stream, storage::expected_version::any(), std::move(evs));
        if (!r) {
          std::fprintf(stderr, "keel-crash-writer: %s\n", describe(r.error()).c_str());
          std::_Exit(3);
        }
        char line[256];
        int n = std::snprintf(line, sizeof line, "ack %s %llu %llu %llu %llu\n", stream.c_str(),
                              static_cast<unsigned long long>(r->first_version),
                              static_cast<unsigned long long>(r->first_position),
                              static_cast<unsigned long long>(count),
                              static_cast<unsigned long long>(base));
        // One write per line (< PIPE_BUF): lines never interleave.
        if (::write(STDOUT_FILENO, line, static_cast<std::size_t>(n)) != n)
          std::_Exit(4);
      }
    });
  }
  for (auto& t : threads)
    t.join();
}
