#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace keel::test {

/// A finished child process: its stdout and its wait status.
struct child_result {
  std::string out;
  int status = 0;

  /// Whether the child was ended by SIGKILL.
  bool killed() const;
};

/// A child process whose stdout is the pipe `out` (the caller reads and
/// closes it, and waits for `pid`).
struct running_child {
  int pid = -1;
  int out = -1;
};

/// Starts `program` (a full path) with `args`, its stdout on a pipe.
running_child start_child(const std::string& program, std::vector<std::string> args);

/// Runs `program` with `args`, collecting its stdout; SIGKILLs it once
/// `kill_after` has passed unless it exited before. With `counted_from`, the
/// time counts from when the child's stdout first holds that text (so a slow
/// start-up, e.g. under ASan, does not eat the window); a child that does not
/// print it within 60 s is killed then.
child_result run_child(const std::string& program, std::vector<std::string> args,
                       std::chrono::milliseconds kill_after, const std::string& counted_from = {});

} // namespace keel::test
