// keel-crash-projector: runs the standard projections over the store at DIR
// while it appends more seeded history, and (odd runs) rebuilds every
// projection again and again, until it is killed. Prints progress lines:
//   projecting                   the runner started
//   appended <last position>     after each planned chunk
//   rebuilt <count>              after each rebuild_all
//   status <orders> <stock> <figures>   committed positions, every 10 ms
// Used by the projection crash tests, which SIGKILL it at random moments.

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "history.hpp"
#include "keel/events/error.hpp"
#include "keel/projections/runner.hpp"
#include "keel/storage/event_store.hpp"

namespace {

void say(const std::string& line) {
  auto text = line + "\n";
  // One write per line (< PIPE_BUF): lines never interleave.
  if (::write(STDOUT_FILENO, text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    std::_Exit(4);
}

[[noreturn]] void die(const std::string& what, const caf::error& err) {
  say("error " + what + ": " + keel::describe(err));
  std::_Exit(3);
}

} // namespace

int main(int argc, char** argv) {
  using namespace keel;
  if (argc != 4) {
    std::fprintf(stderr, "usage: keel-crash-projector DIR SEED RUN\n");
    return 2;
  }
  auto seed = std::stoull(argv[2]);
  auto run = std::stoull(argv[3]);
  storage::options opts;
  opts.path = argv[1];
  opts.durable = storage::durability::wal; // survives a process crash
  auto store = storage::event_store::open(opts);
  if (!store)
    die("open", store.error());

  // Batches from one event per commit to large ones, by run.
  projections::runner_options ropts;
  const std::size_t batch_sizes[] = {32768, 1, 13, 200};
  ropts.max_batch_events = batch_sizes[run % 4];
  ropts.delivery_batch = run % 4 == 1 ? 3 : 256;
  ropts.retire_grace = std::chrono::milliseconds{5};
  projections::projection_runner runner{**store, ropts};
  runner.add_standard();
  if (auto err = runner.start())
    die("start", err);
  say("projecting");

  // More history, continuing the stock of what is stored (read while the
  // runner already projects).
  test::history_options hopts;
  hopts.seed = seed * 1000 + run + 1;
  hopts.tag = "r" + std::to_string(run);
  test::history history{hopts};
  if (auto err = history.adopt(**store))
    die("adopt", err);

  std::atomic<bool> stop{false};
  std::thread appender{[&] {
    while (!stop) {
      auto plan = history.plan(10, false);
      if (auto err = test::append_events(**store, plan))
        die("append", err);
      say("appended " + std::to_string((*store)->last_position()));
    }
  }};
  std::thread rebuilder;
  if (run % 2 == 1)
    rebuilder = std::thread{[&] {
      for (int n = 1; !stop; ++n) {
        if (auto err = runner.rebuild_all())
          die("rebuild", err);
        say("rebuilt " + std::to_string(n));
      }
    }};
  // Killed long before this.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
  while (std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds{10});
    std::string line = "status";
    for (auto& s : runner.status())
      line += " " + std::to_string(s.position);
    say(line);
  }
  stop = true;
  appender.join();
  if (rebuilder.joinable())
    rebuilder.join();
  return 0;
}
