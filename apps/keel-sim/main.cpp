// keel-sim: simulated payment gateways and carriers over HTTP, for keel-node
// configured with HTTP providers (see docs/operations.md "Providers").
//
//   keel-sim --http HOST:PORT [--gateways a,b] [--carriers c,d] [--api-key-file FILE]
//            [--port-file FILE] [--seed N]

#include <csignal>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <thread>

#include <pthread.h>

#include <CLI/CLI.hpp>

#include "keel/events/error.hpp"
#include "node.hpp"
#include "sim_server.hpp"

namespace {

int fail(const std::string& why) {
  std::cerr << "keel-sim: " << why << '\n';
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"keel-sim: simulated payment gateways and carriers over HTTP"};
  keel::sim::sim_config cfg;
  std::string http = "127.0.0.1:9100";
  std::string key_file;
  std::string port_file;
  app.add_option("--http", http, "listen address HOST:PORT (port 0: any)")->capture_default_str();
  app.add_option("--gateways", cfg.gateways, "names of the simulated gateways")
    ->delimiter(',')
    ->capture_default_str();
  app.add_option("--carriers", cfg.carriers, "names of the simulated carriers")
    ->delimiter(',')
    ->capture_default_str();
  app.add_option("--api-key-file", key_file, "callers must send this key as a bearer token");
  app.add_option("--port-file", port_file, "write the bound port to this file");
  app.add_option("--seed", cfg.seed, "seed of the simulated latencies and faults")
    ->capture_default_str();
  app.add_option("--threads", cfg.threads, "calls served at once")
    ->check(CLI::Range(1, 4096))
    ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (!keel::runtime::split_endpoint(http, cfg.host, cfg.port))
    return fail("--http must be HOST:PORT, not \"" + http + "\"");
  if (!key_file.empty()) {
    auto key = keel::runtime::read_key_file(key_file);
    if (!key)
      return fail(keel::describe(key.error()));
    cfg.api_key = std::move(*key);
  }
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  auto server = keel::sim::sim_server::start(cfg);
  if (!server)
    return fail(keel::describe(server.error()));
  std::printf("keel-sim: serving http://%s:%d\n", cfg.host.c_str(), (*server)->port());
  std::fflush(stdout);
  if (!port_file.empty() && !keel::runtime::write_port_file(port_file, (*server)->port()))
    std::fprintf(stderr, "keel-sim: cannot write the port file %s\n", port_file.c_str());
  std::thread waiter{[&server, set] {
    int sig = 0;
    sigwait(&set, &sig);
    (*server)->stop();
  }};
  (*server)->wait();
  server->reset();
  waiter.join();
  return 0;
}
