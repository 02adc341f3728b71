// keel-node: one process, all roles (gateway, orders, inventory, payment,
// shipping, projections), embedded defaults.
//
//   keel-node run --data DIR --http HOST:PORT --jwt-secret-file FILE [--kafka ...] [--config FILE]
//                 [--etcd URL --node-id ID --cluster-listen HOST:PORT [--cluster NAME]
//                  [--slots N] [--group G [--sync strict] [--sync-timeout-ms MS]
//                                        [--seed-after-events N]]]
//   keel-node mint-token --jwt-secret-file FILE --sub ID [--role admin] [--tier premium]
//                        [--ttl SECONDS]
// The secret may come from KEEL_JWT_SECRET instead; never from the command
// line, where every local user can read it.

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <pthread.h>
#include <thread>
#include <unistd.h>
#include <vector>
#include <cerrno>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "auth.hpp"
#include "keel/events/error.hpp"
#include "node.hpp"

namespace {

using namespace keel;

std::int64_t wall_s() {
  using namespace std::chrono;
  return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

void setup_logging(const std::string& level) {
  auto logger = spdlog::stderr_logger_mt("keel");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%fZ level=%l %v", spdlog::pattern_time_type::utc);
  spdlog::set_level(spdlog::level::from_str(level));
  spdlog::flush_on(spdlog::level::info);
}

struct run_options {
  runtime::node_config cfg;
  std::string http = "127.0.0.1:8080";
  std::string port_file;
  std::string log_level = "info";
  std::int64_t breaker_wait_ms = 30000;
  std::int64_t retry_initial_ms = 1000;
  std::int64_t drain_s = 30;
  std::int64_t read_timeout_s = 5;
  std::int64_t idle_timeout_s = 5;
  std::int64_t call_timeout_ms = 10000;
  std::string secret_file;
  std::string providers_file;
  std::int64_t max_token_ttl_s = 24 * 3600;
  // A cluster (all empty: the node runs alone).
  std::string etcd;
  std::string node_id;
  std::string cluster_listen = "127.0.0.1:0";
  runtime::cluster_config cluster;
  std::int64_t settle_ms = 2000;
  std::string sync_mode = "available";
  std::int64_t sync_timeout_ms = 500;
  std::uint64_t seed_after_events = 100000;
  std::int64_t etcd_wait_s = 60;
  /// The command line, for starting again as a standby (exec).
  std::vector<std::string> argv;
};

/// The cluster settings of `o`, when --etcd is given; false (after saying
/// why) when they are incomplete.
bool cluster_settings(run_options& o) {
  if (o.etcd.empty()) {
    if (!o.node_id.empty()) {
      std::cerr << "keel-node: --node-id needs --etcd (a node alone has no id)\n";
      return false;
    }
    return true;
  }
  if (o.node_id.empty()) {
    std::cerr << "keel-node: --etcd needs --node-id\n";
    return false;
  }
  auto& c = o.cluster;
  c.etcd = o.etcd;
  c.node_id = o.node_id;
  if (!runtime::split_endpoint(o.cluster_listen, c.listen_host, c.listen_port)) {
    std::cerr << "keel-node: --cluster-listen must be HOST:PORT, not \"" << o.cluster_listen
              << "\"\n";
    return false;
  }
  c.settle = std::chrono::milliseconds{o.settle_ms};
  c.strict_sync = o.sync_mode == "strict";
  c.sync_timeout = std::chrono::milliseconds{o.sync_timeout_ms};
  c.seed_after_events = o.seed_after_events;
  c.etcd_wait = std::chrono::seconds{o.etcd_wait_s};
  c.keep_waiting = [] {
    // SIGTERM and SIGINT are blocked while the node starts: pending ones stop the wait.
    sigset_t pending;
    sigemptyset(&pending);
    return sigpending(&pending) != 0
           || (sigismember(&pending, SIGTERM) != 1 && sigismember(&pending, SIGINT) != 1);
  };
  o.cfg.cluster = c;
  return true;
}

/// Starts this program again with the same arguments, but the HTTP address
/// it bound (a demoted primary rejoins its group as a standby where the
/// clients and tests found it). Returns only when exec fails.
int start_again(run_options& o, int port) {
  // It waits for etcd as long as it takes (etcd may be what it lost).
  std::vector<std::string> args;
  for (std::size_t i = 0; i < o.argv.size(); ++i) {
    if (o.argv[i] == "--etcd-wait") {
      ++i;
      continue;
    }
    if (o.argv[i].rfind("--etcd-wait=", 0) != 0)
      args.push_back(o.argv[i]);
  }
  args.push_back("--etcd-wait=-1");
  for (std::size_t i = 0; i + 1 < args.size(); ++i)
    if (args[i] == "--http")
      args[i + 1] = o.cfg.http_host + ":" + std::to_string(port);
  for (auto& a : args)
    if (a.rfind("--http=", 0) == 0)
      a = "--http=" + o.cfg.http_host + ":" + std::to_string(port);
  std::vector<char*> raw;
  for (auto& a : args)
    raw.push_back(a.data());
  raw.push_back(nullptr);
  spdlog::warn("component=node msg=\"lost the primary role: starting again as a standby\"");
  spdlog::default_logger()->flush();
  ::execv("/proc/self/exe", raw.data());
  spdlog::critical("component=node msg=\"cannot start again\" errno={}", errno);
  return 1;
}

int run(run_options& o) {
  if (!runtime::split_endpoint(o.http, o.cfg.http_host, o.cfg.http_port)) {
    std::cerr << "keel-node: --http must be HOST:PORT, not \"" << o.http << "\"\n";
    return 2;
  }
  auto secret = runtime::load_secret(o.secret_file);
  if (!secret) {
    std::cerr << "keel-node: " << describe(secret.error()) << '\n';
    return 2;
  }
  o.cfg.jwt_secret = std::move(*secret);
  if (!o.providers_file.empty()) {
    auto providers = runtime::load_providers(o.providers_file);
    if (!providers) {
      std::cerr << "keel-node: " << describe(providers.error()) << '\n';
      return 2;
    }
    o.cfg.providers = std::move(*providers);
  }
  o.cfg.max_token_ttl = std::chrono::seconds{o.max_token_ttl_s};
  o.cfg.breaker_wait = std::chrono::milliseconds{o.breaker_wait_ms};
  o.cfg.payment_retry_initial = std::chrono::milliseconds{o.retry_initial_ms};
  o.cfg.drain_timeout = std::chrono::seconds{o.drain_s};
  o.cfg.http.request_deadline = std::chrono::seconds{o.read_timeout_s};
  o.cfg.http.write_timeout = std::chrono::seconds{o.read_timeout_s};
  o.cfg.http.idle_timeout = std::chrono::seconds{o.idle_timeout_s};
  o.cfg.request_timeout = std::chrono::milliseconds{o.call_timeout_ms};
  if (!cluster_settings(o))
    return 2;
  setup_logging(o.log_level);
  // Signals go to one thread that asks the node to stop; every other thread
  // (actors, HTTP, Kafka, RocksDB) inherits the blocked mask.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  auto started = runtime::node::start(o.cfg);
  if (!started) {
    spdlog::critical("component=node msg=\"cannot start\" error=\"{}\"", describe(started.error()));
    return 1;
  }
  auto& n = **started;
  std::printf("keel-node: serving http://%s:%d (data %s)\n", o.cfg.http_host.c_str(), n.port(),
              o.cfg.data.c_str());
  std::fflush(stdout);
  if (!o.port_file.empty() && !runtime::write_port_file(o.port_file, n.port()))
    spdlog::error("component=node msg=\"cannot write the port file\" file={}", o.port_file);
  std::thread waiter{[&n, set] {
    int sig = 0;
    sigwait(&set, &sig);
    spdlog::info("component=node msg=\"signal {}: draining\"", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    n.request_stop();
  }};
  n.wait_for_stop();
  auto again = n.restart_requested();
  auto port = n.port();
  if (again)
    ::kill(::getpid(), SIGTERM); // ends the signal thread's wait (the node still exists)
  auto left = n.shutdown();
  waiter.join();
  started->reset();
  if (again)
    return start_again(o, port);
  if (left > 0)
    spdlog::warn("component=node msg=\"stopped with sagas in flight; they resume at the next start\" "
                 "sagas={}", left);
  return 0;
}

/// Options of the store, Kafka and tokens.
void add_store_options(CLI::App* run_cmd, run_options& o) {
  run_cmd->add_option("--data", o.cfg.data, "event store directory")->capture_default_str();
  run_cmd->add_option("--http", o.http, "HTTP listen address HOST:PORT (port 0: any)")
    ->capture_default_str();
  run_cmd->add_option("--kafka", o.cfg.kafka,
                      "\"embedded\" (mock cluster in this process), \"off\", or brokers host:port,...")
    ->capture_default_str();
  run_cmd->add_option("--min-free-disk-mb", o.cfg.min_free_disk_mb,
                      "free space kept on the store's disk: below it writes get 503 "
                      "storage_unavailable, above it they resume (0: none)")
    ->capture_default_str();
  run_cmd->add_option("--store-memory-mb", o.cfg.store_memory_mb,
                      "memory of the store's memtables and block cache together (memtables "
                      "are flushed at half of it)")
    ->check(CLI::Range(4, 1 << 20))
    ->capture_default_str();
  run_cmd->add_option("--kafka-config", o.cfg.kafka_config,
                      "librdkafka properties file for TLS/SASL to the brokers (security.protocol, "
                      "sasl.*, ssl.*; keeps passwords off the command line)");
  run_cmd->add_option("--kafka-partitions", o.cfg.kafka_partitions, "partitions per topic")
    ->check(CLI::Range(1, 256))->capture_default_str();
  run_cmd->add_option("--jwt-secret-file", o.secret_file,
                      "file holding the HS256 secret, >= 32 bytes (or KEEL_JWT_SECRET)");
  run_cmd->add_option("--max-token-ttl", o.max_token_ttl_s,
                      "seconds a token may still be valid; longer-lived tokens are refused")
    ->check(CLI::Range(60, 30 * 24 * 3600))->capture_default_str();
  run_cmd->add_option("--token-issuer", o.cfg.token_issuer, "required `iss` claim (empty: not checked)");
  run_cmd->add_option("--token-audience", o.cfg.token_audience,
                      "required `aud` claim (empty: not checked)");
  run_cmd->add_option("--currencies", o.cfg.currencies,
                      "ISO 4217 codes catalogue prices and orders may use (comma-separated)")
    ->delimiter(',')->capture_default_str();
}

/// Options of the HTTP edge, the pipeline and the process.
void add_edge_options(CLI::App* run_cmd, run_options& o) {
  run_cmd->add_option("--rate-limit", o.cfg.rate_limit, "requests per customer per second")
    ->check(CLI::Range(1u, 10000000u))->capture_default_str();
  run_cmd->add_option("--auth-failure-limit", o.cfg.auth_failure_limit,
                      "failed authentications per client address per second; beyond: 429")
    ->check(CLI::Range(1u, 1000000u))->capture_default_str();
  run_cmd->add_option("--ops-rate-limit", o.cfg.ops_rate_limit,
                      "requests of /metrics, /health, /ready per client address per second")
    ->check(CLI::Range(1u, 1000000u))->capture_default_str();
  run_cmd->add_option("--http-threads", o.cfg.http.workers, "requests served at once (handler threads)")
    ->check(CLI::Range(1, 4096))->capture_default_str();
  run_cmd->add_option("--http-queue", o.cfg.http.queue, "complete requests waiting for a thread; beyond: 503")
    ->check(CLI::Range(0, 100000))->capture_default_str();
  run_cmd->add_option("--max-connections", o.cfg.http.max_connections,
                      "open HTTP connections (lowered to fit the file-descriptor limit)")
    ->check(CLI::Range(1, 1000000))->capture_default_str();
  run_cmd->add_option("--max-connections-per-ip", o.cfg.http.max_connections_per_address,
                      "open HTTP connections per client address (0: no cap)")
    ->check(CLI::Range(0, 1000000))->capture_default_str();
  run_cmd->add_option("--max-sagas", o.cfg.max_sagas, "sagas in flight at once; more new orders get 503")
    ->check(CLI::Range(1, 1000000))->capture_default_str();
  run_cmd->add_option("--threads", o.cfg.threads, "actor scheduler threads")
    ->check(CLI::Range(1, 64))->capture_default_str();
  run_cmd->add_option("--breaker-wait-ms", o.breaker_wait_ms, "how long a provider breaker stays open")
    ->check(CLI::Range(10, 3600000))->capture_default_str();
  run_cmd->add_option("--payment-retry-ms", o.retry_initial_ms, "first delay of a parked payment")
    ->check(CLI::Range(1, 3600000))->capture_default_str();
  run_cmd->add_option("--drain-timeout", o.drain_s, "seconds SIGTERM waits for sagas in flight")
    ->check(CLI::Range(0, 3600))->capture_default_str();
  run_cmd->add_option("--read-timeout", o.read_timeout_s,
                      "seconds a whole request (headers and body) may take to arrive")
    ->check(CLI::Range(1, 3600))->capture_default_str();
  run_cmd->add_option("--idle-timeout", o.idle_timeout_s, "seconds an idle keep-alive connection is kept")
    ->check(CLI::Range(1, 3600))->capture_default_str();
  run_cmd->add_option("--call-timeout-ms", o.call_timeout_ms,
                      "how long an HTTP request waits for the pipeline; then 503 timeout")
    ->check(CLI::Range(10, 600000))->capture_default_str();
  run_cmd->add_flag("!--no-fsync", o.cfg.fsync, "acknowledge appends once in the WAL, without fsync");
  run_cmd->add_option("--providers", o.providers_file,
                      "JSON file naming the payment gateways (in order of preference) and "
                      "carriers, simulated or HTTP (default: four simulated ones)");
  run_cmd->add_option("--port-file", o.port_file, "write the bound HTTP port to this file");
  run_cmd->add_option("--log-level", o.log_level, "trace, debug, info, warn, error")
    ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}))->capture_default_str();
}

/// Options of a cluster.
void add_cluster_options(CLI::App* run_cmd, run_options& o) {
  run_cmd->add_option("--etcd", o.etcd,
                      "etcd's client URL http://HOST:PORT: run as a member of a cluster "
                      "(without it the node runs alone)");
  run_cmd->add_option("--node-id", o.node_id,
                      "this node's id in the cluster (1-64 of A-Z a-z 0-9 - _ .); one process "
                      "per id");
  run_cmd->add_option("--cluster-listen", o.cluster_listen,
                      "where other nodes reach this one (HOST:PORT; port 0: any)")
    ->capture_default_str();
  run_cmd->add_option("--cluster", o.cluster.cluster, "the cluster's name (its etcd prefix)")
    ->capture_default_str();
  run_cmd->add_option("--slots", o.cluster.slots,
                      "slots of a new cluster (the key space's parts; ignored once it exists)")
    ->check(CLI::Range(1u, 65536u))->capture_default_str();
  run_cmd->add_option("--lease-ttl", o.cluster.ttl_seconds,
                      "seconds of the node's etcd lease: a lost node's slots answer 503 "
                      "within this (+ etcd's expiry check)")
    ->check(CLI::Range(1, 60))->capture_default_str();
  run_cmd->add_flag("--leave", o.cluster.leave_on_stop,
                    "on SIGTERM, hand this node's slots over to the others before stopping "
                    "(without it they wait for the node, answered with 503)");
  run_cmd->add_option("--group", o.cluster.group,
                      "replicate this group's log: its nodes are one primary and standbys "
                      "(without it the node is a group of its own, without a copy)");
  run_cmd->add_option("--sync", o.sync_mode,
                      "without a synchronous standby: \"available\" writes go on alone once "
                      "etcd records it, \"strict\" writes wait for a standby")
    ->check(CLI::IsMember({"available", "strict"}))->capture_default_str();
  run_cmd->add_option("--sync-timeout-ms", o.sync_timeout_ms,
                      "how long writes wait for the synchronous standby before the primary "
                      "gives up on it")
    ->check(CLI::Range(50, 60000))->capture_default_str();
  run_cmd->add_option("--seed-after-events", o.seed_after_events,
                      "a standby further behind than this many events is sent a checkpoint of "
                      "the primary's store instead of the log (0: never)")
    ->capture_default_str();
  run_cmd->add_option("--etcd-wait", o.etcd_wait_s,
                      "seconds a starting node waits for etcd to answer before it gives up "
                      "(-1: until stopped)")
    ->check(CLI::Range(-1, 86400))->capture_default_str();
  run_cmd->add_option("--settle-ms", o.settle_ms,
                      "a new cluster's first slot map waits until no node joined for this long")
    ->check(CLI::Range(0, 600000))->capture_default_str();
}

/// What `mint-token` prints a token from.
struct mint_options {
  std::string secret_file;
  std::string iss;
  std::string aud;
  std::string sub;
  std::string role = "customer";
  std::string tier = "standard";
  std::int64_t ttl = 24 * 3600;
};

CLI::App* add_mint(CLI::App& app, mint_options& m) {
  auto* mint = app.add_subcommand("mint-token", "print a bearer token (JWT HS256)");
  mint->add_option("--jwt-secret-file", m.secret_file, "file holding the HS256 secret (or KEEL_JWT_SECRET)");
  mint->add_option("--iss", m.iss, "issuer claim");
  mint->add_option("--aud", m.aud, "audience claim");
  mint->add_option("--sub", m.sub, "customer id (claim sub)")->required();
  mint->add_option("--role", m.role, "customer or admin")
    ->check(CLI::IsMember({"customer", "admin"}))->capture_default_str();
  mint->add_option("--tier", m.tier, "standard or premium (premium orders' payments are retried first)")
    ->check(CLI::IsMember({"standard", "premium"}))->capture_default_str();
  mint->add_option("--ttl", m.ttl, "seconds until it expires")->check(CLI::Range(1, 30 * 24 * 3600))
    ->capture_default_str();
  return mint;
}

int mint(const mint_options& m) {
  auto secret = runtime::load_secret(m.secret_file);
  if (!secret) {
    std::cerr << "keel-node: " << describe(secret.error()) << '\n';
    return 2;
  }
  auto token = runtime::mint_token(*secret, m.sub, m.role == "admin", wall_s(),
                                std::chrono::seconds{m.ttl}, m.iss, m.aud, m.tier == "premium");
  if (token.empty()) {
    std::cerr << "keel-node: cannot mint a token\n";
    return 1;
  }
  std::cout << token << '\n';
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"keel-node: Keel's order-processing node (all roles, embedded defaults)"};
  app.require_subcommand(1);
  run_options o;
  auto* run_cmd = app.add_subcommand("run", "run a node until SIGTERM/SIGINT");
  // The config file belongs to the app (CLI11 reads it there); `run` lets the
  // option fall through so `keel-node run --config FILE` works. Keys of the
  // file: `[run]` section, long option names.
  app.set_config("--config", "", "read options from a TOML/INI file ([run] section, keys = long option names)");
  run_cmd->fallthrough();
  add_store_options(run_cmd, o);
  add_edge_options(run_cmd, o);
  add_cluster_options(run_cmd, o);
  mint_options m;
  auto* mint_cmd = add_mint(app, m);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    auto rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  if (*mint_cmd)
    return mint(m);
  o.argv.assign(argv, argv + argc);
  return run(o);
}
