#include "etcd_process.hpp"

#include <filesystem>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace keel::bench {

namespace {

/// A port nothing listens on right now (the kernel's choice for port 0).
int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0)
    return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0
      && ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0)
    port = ntohs(addr.sin_port);
  ::close(fd);
  return port;
}

} // namespace

std::string etcd_program() {
  for (const char* p : {"/usr/bin/etcd", "/usr/local/bin/etcd"})
    if (::access(p, X_OK) == 0)
      return p;
  return {};
}

std::unique_ptr<etcd_process> etcd_process::start(std::string& why,
                                                   const std::vector<std::string>& also_on) {
  auto program = etcd_program();
  if (program.empty()) {
    why = "etcd is not installed (Debian package etcd-server; ./keel deps installs it)";
    return nullptr;
  }
  std::unique_ptr<etcd_process> e{new etcd_process};
  auto shm = std::filesystem::path{"/dev/shm"};
  e->dir_ = std::make_unique<temp_dir>(
    std::filesystem::is_directory(shm) ? (shm / "keel-etcd").string() : "keel-etcd");
  // Between probing a port and etcd binding it another process may take it:
  // try again with other ports.
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto client = std::to_string(free_port());
    auto peer = std::to_string(free_port());
    auto listen = "http://127.0.0.1:" + client;
    for (auto& host : also_on)
      listen += ",http://" + host + ":" + client;
    server_process::options o;
    o.program = program;
    o.base = e->dir_->sub("etcd");
    o.port = std::stoi(client);
    o.ready_path = "/health";
    o.start_timeout = std::chrono::seconds(20);
    o.args = {"--name", "keel", "--data-dir", e->dir_->sub("data"),
              "--listen-client-urls", listen,
              "--advertise-client-urls", "http://127.0.0.1:" + client,
              "--listen-peer-urls", "http://127.0.0.1:" + peer,
              "--initial-advertise-peer-urls", "http://127.0.0.1:" + peer,
              "--initial-cluster", "keel=http://127.0.0.1:" + peer,
              "--initial-cluster-state", "new",
              "--heartbeat-interval", "10", "--election-timeout", "100",
              "--experimental-watch-progress-notify-interval", "1s",
              "--log-level", "warn"};
    e->server_ = server_process::start(std::move(o), why);
    if (e->server_)
      return e;
  }
  return nullptr;
}

etcd_process::~etcd_process() {
  server_.reset(); // SIGKILL, before its directory goes
}

std::string etcd_process::url() const {
  return "http://127.0.0.1:" + std::to_string(server_->port());
}

std::string etcd_process::url_on(const std::string& host) const {
  return "http://" + host + ":" + std::to_string(server_->port());
}

int etcd_process::port() const noexcept {
  return server_->port();
}

} // namespace keel::bench
