// keel-demo: the Black Friday of `./keel demo` against a running keel-node
// whose providers are served by keel-sim.
//
//   keel-demo --node http://HOST:PORT --jwt-secret-file FILE
//             [--sim http://HOST:PORT [--sim-api-key-file FILE]] [--gateways a,b]
//   keel-demo cluster [--slots N] [--phase-seconds S]   (./keel cluster-demo)

#include <cctype>
#include <fstream>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>

#include "auth.hpp"
#include "black_friday.hpp"
#include "cluster_demo.hpp"
#include "node.hpp"
#include "keel/events/error.hpp"

namespace {

int fail(const std::string& why) {
  std::cerr << "keel-demo: " << why << '\n';
  return 2;
}

} // namespace

static int cluster_demo(int argc, char** argv) {
  CLI::App app{"keel-demo cluster: etcd and keel-nodes; traffic, a node killed and restarted, "
               "a node added"};
  keel::bench::cluster_demo_options o;
  app.add_option("--slots", o.slots, "slots of the cluster")->check(CLI::Range(4u, 4096u))
    ->capture_default_str();
  app.add_option("--phase-seconds", o.phase_seconds, "seconds of traffic per phase")
    ->check(CLI::Range(1u, 600u))->capture_default_str();
  CLI11_PARSE(app, argc - 1, argv + 1);
  return keel::bench::run_cluster_demo(o);
}

int main(int argc, char** argv) {
  if (argc > 1 && std::string{argv[1]} == "cluster")
    return cluster_demo(argc, argv);
  CLI::App app{"keel-demo: the Black Friday scenario through a keel-node's HTTP API"};
  std::string node_url, sim_url, secret_file, sim_key_file;
  keel::bench::black_friday_options o;
  app.add_option("--node", node_url, "the node's API, http://HOST:PORT")->required();
  app.add_option("--jwt-secret-file", secret_file, "the node's JWT secret")->required();
  app.add_option("--sim", sim_url, "keel-sim serving the node's providers, http://HOST:PORT "
                                   "(without it: the node's in-process simulators)");
  app.add_option("--sim-api-key-file", sim_key_file, "keel-sim's API key");
  app.add_option("--gateways", o.gateways, "the node's gateways, whose breakers are followed")
    ->delimiter(',')
    ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  auto node = keel::bench::parse_url(node_url);
  if (!node)
    return fail("--node must be http://HOST:PORT, not \"" + node_url + "\"");
  o.node = *node;
  if (!sim_url.empty()) {
    o.sim = keel::bench::parse_url(sim_url);
    if (!o.sim)
      return fail("--sim must be http://HOST:PORT, not \"" + sim_url + "\"");
  }
  auto secret = keel::runtime::load_secret(secret_file);
  if (!secret)
    return fail(keel::describe(secret.error()));
  o.jwt_secret = std::move(*secret);
  if (!sim_key_file.empty()) {
    auto key = keel::runtime::read_key_file(sim_key_file);
    if (!key)
      return fail(keel::describe(key.error()));
    o.sim_key = std::move(*key);
  }
  return keel::bench::run_black_friday(std::move(o));
}
