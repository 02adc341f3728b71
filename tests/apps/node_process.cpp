#include "node_process.hpp"

#include <algorithm>
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "auth.hpp"
#include "keel/storage/event_store.hpp"

namespace keel::test {

server_process::server_process(std::string base, std::string program,
                               std::vector<std::string> args, std::string ready_path)
  : base_(std::move(base)),
    program_(std::move(program)),
    args_(std::move(args)),
    ready_path_(std::move(ready_path)) {
  static int counter = 0;
  log_path_ = base_ + ".log." + std::to_string(++counter);
  spawn();
}

void server_process::spawn() {
  auto port_file = base_ + ".port";
  ::unlink(port_file.c_str());
  std::vector<std::string> args{program_};
  args.insert(args.end(), args_.begin(), args_.end());
  args.insert(args.end(), {"--port-file", port_file});
  pid_ = ::fork();
  REQUIRE(pid_ >= 0);
  if (pid_ == 0) {
    auto fd = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(fd, STDERR_FILENO);
    ::dup2(fd, STDOUT_FILENO);
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      FAIL(program_ << " exited at start:\n" << log());
    }
    std::ifstream in{port_file};
    if (in >> port_ && port_ > 0) {
      auto c = client();
      if (auto res = c.Get(ready_path_.c_str()); res && res->status == 200)
        return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  FAIL(program_ << " did not become ready:\n" << log());
}

void server_process::restart(const std::string& replace, const std::string& with) {
  REQUIRE(pid_ <= 0);
  if (!replace.empty())
    std::replace(args_.begin(), args_.end(), replace, with);
  spawn();
}

server_process::~server_process() {
  if (pid_ > 0)
    signal_and_wait(SIGKILL, std::chrono::seconds(10));
  ::unlink(log_path_.c_str());
  ::unlink((base_ + ".port").c_str());
}

httplib::Client server_process::client() const {
  httplib::Client c{"127.0.0.1", port_};
  c.set_keep_alive(true);
  c.set_connection_timeout(5, 0);
  c.set_read_timeout(30, 0);
  return c;
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

std::string server_process::log() const {
  std::ifstream in{log_path_};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {

std::vector<std::string> node_args(const std::string& data, std::vector<std::string> extra) {
  auto secret_file = data + ".secret";
  std::ofstream{secret_file} << test_secret << '\n';
  std::vector<std::string> args{"run",           "--data",    data,         "--http",
                                "127.0.0.1:0",   "--jwt-secret-file", secret_file,
                                "--log-level",   "info"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

std::vector<std::string> with_http(std::vector<std::string> extra) {
  extra.insert(extra.begin(), {"--http", "127.0.0.1:0"});
  return extra;
}

} // namespace

node_process::node_process(const std::string& data, std::vector<std::string> extra)
  : server_process(data, KEEL_NODE, node_args(data, std::move(extra)), "/ready"), data_(data) {
}

node_process::~node_process() {
  ::unlink((data_ + ".secret").c_str());
}

sim_process::sim_process(const std::string& base, std::vector<std::string> extra)
  : server_process(base, KEEL_SIM, with_http(std::move(extra)), "/health") {
}

std::string bearer(const std::string& sub, bool admin) {
  using namespace std::chrono;
  auto now = duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
  return "Bearer " + runtime::mint_token(test_secret, sub, admin, now, std::chrono::hours(1));
}

httplib::Headers auth(const std::string& sub, bool admin) {
  return {{"Authorization", bearer(sub, admin)}};
}

httplib::Result post(httplib::Client& c, const std::string& path, const nlohmann::json& body,
                     const httplib::Headers& h) {
  return c.Post(path.c_str(), h, body.dump(), "application/json");
}

std::uint64_t head_of(const std::string& data) {
  auto store = storage::event_store::open_beside(data);
  REQUIRE(store);
  std::uint64_t n = 0;
  auto reader = (*store)->read_all();
  while (reader.next())
    n += reader.current().stream.rfind("$system-", 0) != 0;
  REQUIRE_FALSE(reader.error());
  return n;
}

nlohmann::json wait_status(httplib::Client& c, const std::string& id,
                           const std::set<std::string>& wanted, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  nlohmann::json last;
  while (std::chrono::steady_clock::now() < deadline) {
    auto res = c.Get(("/v1/orders/" + id).c_str(), auth("ops", true));
    if (res && res->status == 200) {
      last = nlohmann::json::parse(res->body);
      if (wanted.count(last["status"].get<std::string>()))
        return last;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  FAIL("order " << id << " did not reach the wanted status; last: " << last.dump());
  return last;
}

void stock(httplib::Client& c, const std::string& sku, int quantity) {
  auto res = c.Put(("/admin/stock/" + sku).c_str(), auth("ops", true),
                   nlohmann::json{{"quantity", quantity}}.dump(), "application/json");
  REQUIRE(res);
  REQUIRE(res->status == 200);
}

void put_on_sale(httplib::Client& c, const std::string& sku, std::int64_t price_cents) {
  auto res = c.Put(("/admin/catalog/" + sku).c_str(), {{"Authorization", bearer("ops", true)}},
                   nlohmann::json{{"price_cents", price_cents}, {"currency", "EUR"}}.dump(),
                   "application/json");
  REQUIRE(res);
  INFO(res->body);
  REQUIRE(res->status == 200);
}

nlohmann::json order_json(const std::string& id, const std::string& customer,
                          const std::string& sku, int quantity) {
  return {{"order_id", id},
          {"customer_id", customer},
          {"items", {{{"sku", sku}, {"quantity", quantity}, {"unit_price_cents", 1250}}}},
          {"currency", "EUR"},
          {"shipping_address",
           {{"name", "Ada"}, {"street", "Main 1"}, {"city", "Berlin"}, {"postal_code", "10115"},
            {"country", "DE"}}},
          {"premium", false}};
}

int connect_from(const char* source, int port) {
  auto fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in src{};
  src.sin_family = AF_INET;
  REQUIRE(::inet_pton(AF_INET, source, &src.sin_addr) == 1);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src) == 0);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(static_cast<std::uint16_t>(port));
  dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst) == 0);
  return fd;
}

double metric(httplib::Client& c, const std::string& sample) {
  auto res = c.Get("/metrics");
  REQUIRE(res);
  auto at = res->body.find("\n" + sample + " ");
  if (at == std::string::npos)
    return -1;
  return std::stod(res->body.substr(at + sample.size() + 2));
}

} // namespace keel::test
