#include "server_process.hpp"

#include <algorithm>
#include <atomic>
#include <csignal>
#include <deque>
#include <fstream>
#include <sstream>
#include <thread>

#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <httplib.h>

namespace keel::bench {

namespace {

/// The port the server wrote, 0 while there is none.
int read_port(const std::string& file) {
  std::ifstream in{file};
  int port = 0;
  if (in >> port && port > 0 && port < 65536)
    return port;
  return 0;
}

/// Runs in the forked child: environment, the log as stdout and stderr, exec.
[[noreturn]] void exec_server(std::vector<std::string> args, const std::string& log,
                              const std::map<std::string, std::string>& env) {
  for (auto& [name, value] : env)
    ::setenv(name.c_str(), value.c_str(), 1);
  // The server must not outlive a parent that crashed.
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  int null_fd = ::open("/dev/null", O_RDONLY);
  if (fd >= 0) {
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
  }
  if (null_fd >= 0)
    ::dup2(null_fd, STDIN_FILENO);
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv(argv[0], argv.data());
  std::fprintf(stderr, "cannot run %s\n", argv[0]);
  ::_exit(127);
}

bool serves(const std::string& host, int port, const std::string& path) {
  httplib::Client c{host, port};
  c.set_connection_timeout(2, 0);
  c.set_read_timeout(5, 0);
  auto res = c.Get(path.c_str());
  return res && res->status == 200;
}

} // namespace

server_process::server_process(options o) : o_(std::move(o)) {
  static std::atomic<int> counter{0};
  log_path_ = o_.base + ".log." + std::to_string(++counter);
}

std::unique_ptr<server_process> server_process::start(options o, std::string& why) {
  std::unique_ptr<server_process> p{new server_process(std::move(o))};
  if (!p->spawn(why))
    return nullptr; // the destructor kills a child still running
  return p;
}

bool server_process::spawn(std::string& why) {
  auto port_file = o_.base + ".port";
  ::unlink(port_file.c_str());
  std::vector<std::string> args{o_.program};
  args.insert(args.end(), o_.args.begin(), o_.args.end());
  if (o_.port == 0)
    args.insert(args.end(), {"--port-file", port_file});
  port_ = 0;
  pid_ = ::fork();
  if (pid_ < 0) {
    why = "fork failed";
    return false;
  }
  if (pid_ == 0)
    exec_server(std::move(args), log_path_, o_.env);
  auto deadline = std::chrono::steady_clock::now() + o_.start_timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      why = o_.program + " exited at start; its log ends:\n" + log_tail(20);
      return false;
    }
    port_ = o_.port != 0 ? o_.port : read_port(port_file);
    if (port_ > 0 && (o_.ready_path.empty() || serves(o_.host, port_, o_.ready_path)))
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  why = o_.program + " did not become ready within "
        + std::to_string(o_.start_timeout.count() / 1000) + " s; its log ends:\n" + log_tail(20);
  return false;
}

bool server_process::restart(const std::string& replace, const std::string& with,
                             std::string& why) {
  if (running()) {
    why = o_.program + " is still running";
    return false;
  }
  if (!replace.empty())
    std::replace(o_.args.begin(), o_.args.end(), replace, with);
  return spawn(why);
}

server_process::~server_process() {
  if (pid_ > 0)
    signal_and_wait(SIGKILL, std::chrono::seconds(10));
  ::unlink(log_path_.c_str());
  ::unlink((o_.base + ".port").c_str());
}

int server_process::signal_and_wait(int sig, std::chrono::milliseconds timeout) {
  if (pid_ <= 0)
    return -1;
  ::kill(pid_, sig);
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return status;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return -1;
}

int server_process::stop(std::chrono::milliseconds timeout) {
  auto status = signal_and_wait(SIGTERM, timeout);
  return status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string server_process::log() const {
  std::ifstream in{log_path_};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string server_process::log_tail(std::size_t lines) const {
  std::istringstream in{log()};
  std::deque<std::string> tail;
  std::string line;
  while (std::getline(in, line)) {
    tail.push_back(line);
    if (tail.size() > lines)
      tail.pop_front();
  }
  std::string out;
  for (auto& l : tail)
    out += "  | " + l + "\n";
  return out;
}

} // namespace keel::bench
