#include "child_process.hpp"

#include <csignal>

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

namespace keel::test {

bool child_result::killed() const {
  return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
}

running_child start_child(const std::string& program, std::vector<std::string> args) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  auto pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    std::vector<char*> argv{const_cast<char*>(program.c_str())};
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(program.c_str(), argv.data());
    ::_exit(127);
  }
  ::close(fds[1]);
  return {pid, fds[0]};
}

child_result run_child(const std::string& program, std::vector<std::string> args,
                       std::chrono::milliseconds kill_after, const std::string& counted_from) {
  auto child = start_child(program, std::move(args));
  child_result res;
  char buf[65536];
  bool counting = counted_from.empty();
  auto deadline = std::chrono::steady_clock::now()
                  + (counting ? kill_after : std::chrono::milliseconds{60000});
  bool killed = false;
  for (;;) {
    if (!counting && res.out.find(counted_from) != std::string::npos) {
      counting = true;
      deadline = std::chrono::steady_clock::now() + kill_after;
    }
    auto now = std::chrono::steady_clock::now();
    if (!killed && now >= deadline) {
      ::kill(child.pid, SIGKILL);
      killed = true;
    }
    auto wait = killed ? std::chrono::milliseconds{1000}
                       : std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    pollfd p{child.out, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) > 0) {
      auto n = ::read(child.out, buf, sizeof buf);
      if (n <= 0)
        break; // EOF: the child is gone
      res.out.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(child.out);
  ::waitpid(child.pid, &res.status, 0);
  return res;
}

} // namespace keel::test
